"""Atomic file writing: a killed job never leaves a file that looks complete."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only if the block succeeds.
    Temporaries a killed process left for the same path are removed first (Snakemake runs
    one job per output at a time, so they have no owner)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(obj, path: str | Path) -> None:
    """A JSON document (indented), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2))


def write_parquet(frame, path: str | Path) -> None:
    """pandas DataFrame -> Parquet (pyarrow), atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv(frame, path: str | Path) -> None:
    """pandas DataFrame -> CSV, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
