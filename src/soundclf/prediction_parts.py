"""A prediction shard's committed rows, so that a killed shard job, rerun, continues at the
first unfinished recording: a journal, not a file per recording (100 000 recordings per shard
would be 100 000 files on a cluster's network file system; bench/RESULTS.md §18).

    shard_N.parts/made_by.json   the digest of the models and prediction keys that made them
    shard_N.parts/rows.csv       row_id + class columns, each recording's rows appended at once
    shard_N.parts/done.jsonl     one line per committed recording: its key and rows.csv's size after it

A recording is committed once its done line is written (after its rows); at open, rows.csv is
cut back to the last done line's size, so a half-written tail is never read. No fsync (two
per recording, on a network file system): a SIGKILL loses nothing written, and after a node
crash a done line whose rows were lost is dropped (`_committed`). Parts made by other models
or keys are discarded when the shard opens, with a log line counting them: a retrain never
leaves the old models' windows in the merged table."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

log = logging.getLogger(__name__)


def parts_digest(model_paths: Iterable[str | Path], settings: dict[str, Any]) -> str:
    """sha256 of the fold models' bytes (in order) and of the settings that shape the rows."""
    digest = hashlib.sha256()
    for path in model_paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _append(path: Path, data: bytes) -> int:
    """Append `data` (one write: a SIGKILL leaves it whole or cut at its end); the file's size after it."""
    with open(path, "ab") as f:
        f.write(data)
        return f.tell()


def _committed(done_file: Path, rows: Path) -> list[dict[str, Any]]:
    """The commits both files hold, both files cut back to them: done lines cut by a kill (no
    newline) and, after a node crash that lost the end of rows.csv but not of done.jsonl, the
    lines beyond what rows.csv holds."""
    if not done_file.is_file():
        rows.unlink(missing_ok=True)
        return []
    held = rows.stat().st_size if rows.is_file() else 0
    lines = [json.loads(line) for line in done_file.read_bytes().split(b"\n")[:-1]]
    kept = [line for line in lines if line["size"] <= held]
    text = "".join(json.dumps(line) + "\n" for line in kept).encode()
    if text != done_file.read_bytes():
        done_file.write_bytes(text)
    if kept:
        with open(rows, "r+b") as f:
            f.truncate(kept[-1]["size"])  # drop rows written after the last commit
    else:
        rows.unlink(missing_ok=True)
    return kept


class ShardParts:
    """The journal of one shard (see the module's docstring), opened for `digest`."""

    def __init__(self, folder: str | Path, digest: str):
        self.folder = Path(folder)
        self.rows, self.done_file, self.made_by = (self.folder / n for n in ("rows.csv", "done.jsonl", "made_by.json"))
        if self.folder.exists() and self._digest() != digest:
            stale = len(self.done_file.read_bytes().splitlines()) if self.done_file.is_file() else 0
            shutil.rmtree(self.folder)
            if stale:
                log.info("discarded %d recording(s) of %s predicted by other models or prediction keys", stale,
                         self.folder)
        if not self.made_by.is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.made_by.with_suffix(".tmp")
            tmp.write_text(json.dumps({"digest": digest}))
            os.replace(tmp, self.made_by)
        self.keys = {line["key"] for line in _committed(self.done_file, self.rows)}

    def _digest(self) -> str | None:
        try:
            return json.loads(self.made_by.read_text())["digest"]
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def commit(self, key: str, frame: pd.DataFrame) -> None:
        """Append one recording's rows (row_id + classes; the header before the first) and mark
        it committed."""
        text = io.StringIO()
        frame.to_csv(text, header=not self.keys, index=False)
        size = _append(self.rows, text.getvalue().encode())
        _append(self.done_file, (json.dumps({"key": key, "size": size}) + "\n").encode())
        self.keys.add(key)

    def read(self, classes: list[str]) -> pd.DataFrame:
        """Every committed row, in commit order (class columns as written: a resumed shard's
        rows equal an uninterrupted one's)."""
        if not self.keys:
            return pd.DataFrame(columns=["row_id", *classes])
        return pd.read_csv(self.rows, dtype={"row_id": str}).set_axis(["row_id", *classes], axis=1)
