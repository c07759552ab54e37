"""Logging set-up shared by the workflow scripts: one log file per job. The terminal, shared
by every job Snakemake runs side by side, gets only Snakemake's line per job start and end
and the jobs' warnings and errors; progress bars and INFO lines go to the job's log, where
`tail -f results/logs/<rule>/….log` follows them."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path

# tqdm reads TQDM_* variables for its defaults: a bar in a log file updates every few seconds
PROGRESS_INTERVAL_SECONDS = "5"


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Log to `log_file` (truncated) and, at WARNING and above, to the terminal; with a log
    file, whatever else the job writes to stderr (tqdm bars, library messages) goes to the log
    too, and an uncaught error is written to both. Without one, everything goes to stderr."""
    terminal = sys.__stderr__
    handlers: list[logging.Handler] = [logging.StreamHandler(terminal)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        open(log_file, "w").close()
        handlers[0].setLevel(logging.WARNING)
        handlers.append(logging.FileHandler(log_file, mode="a", encoding="utf-8"))  # append: shared with stderr
        sys.stderr = open(log_file, "a", buffering=1, encoding="utf-8")
        os.environ.setdefault("TQDM_MININTERVAL", PROGRESS_INTERVAL_SECONDS)
        sys.excepthook = _to_log_and_terminal(terminal)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    return logging.getLogger("soundclf")


def _to_log_and_terminal(terminal):
    def excepthook(kind, value, tb):
        text = "".join(traceback.format_exception(kind, value, tb))
        for stream in (sys.stderr, terminal):
            stream.write(text)
            stream.flush()

    return excepthook
