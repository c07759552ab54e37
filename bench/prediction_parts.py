"""What a prediction shard's committed parts cost at 100 000 recordings per shard: files
created, commit time and merge time, for the journal (soundclf.prediction_parts.ShardParts)
against the per-file CSV parts it replaced (one atomic CSV per recording, read back one by
one, as soundclf.submission did at 176cd52), in the same run.

    python bench/prediction_parts.py [--files 100000] [--windows 12] [--classes 20] [--formats journal] [--record]

Rows are synthetic (a 60 s recording: 12 windows); no model runs, so the figures are the
parts' own cost, to hold against the prediction of the same recordings. Everything is
written under results/bench/parts/ and removed after."""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import REPO, WORK, record_figures

sys.path.insert(0, str(REPO / "src"))
from soundclf.atomic import write_csv  # noqa: E402
from soundclf.prediction_parts import ShardParts  # noqa: E402


def recording_rows(i: int, windows: int, classes: list[str], rng: np.random.Generator) -> pd.DataFrame:
    key = f"site_{i % 500:03d}/20240501_{i // 500:06d}.WAV"
    frame = pd.DataFrame(rng.random((windows, len(classes)), dtype=np.float32), columns=classes)
    frame.insert(0, "row_id", [f"{key}_{5 * (w + 1)}" for w in range(windows)])
    return key, frame


def per_file_parts(folder: Path, frames, classes) -> tuple[float, float, int]:
    """The former layout: one CSV per recording, written atomically, then each read back."""
    started = time.perf_counter()
    for i, (_, frame) in enumerate(frames):
        write_csv(frame, folder / f"{i}.csv")
    commit = time.perf_counter() - started
    started = time.perf_counter()
    parts = [pd.read_csv(folder / f"{i}.csv", dtype={"row_id": str}) for i in range(len(frames))]
    table = pd.concat(parts, ignore_index=True)
    merge = time.perf_counter() - started
    assert len(table) == sum(len(f) for _, f in frames)
    return commit, merge, sum(1 for _ in folder.iterdir())


def journal_parts(folder: Path, frames, classes) -> tuple[float, float, int]:
    started = time.perf_counter()
    parts = ShardParts(folder, "bench")
    for key, frame in frames:
        parts.commit(key, frame)
    commit = time.perf_counter() - started
    started = time.perf_counter()
    table = ShardParts(folder, "bench").read(classes)  # as a resumed job opens and reads it
    merge = time.perf_counter() - started
    assert len(table) == sum(len(f) for _, f in frames)
    return commit, merge, sum(1 for _ in folder.iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--windows", type=int, default=12)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--formats", nargs="+", default=["per_file_csv", "journal"], choices=["per_file_csv", "journal"],
                        help="per-file CSV parts glob their folder at every write (atomic_path): quadratic, "
                             "hours at 100 000; measure them at fewer files")
    parser.add_argument("--record", action="store_true", help="write the figures into bench/results.json")
    args = parser.parse_args()
    classes = [f"class_{c:02d}" for c in range(args.classes)]
    rng = np.random.default_rng(0)
    frames = [recording_rows(i, args.windows, classes, rng) for i in range(args.files)]
    root = WORK / "parts"
    shutil.rmtree(root, ignore_errors=True)
    figures = {}
    for name, run in (("per_file_csv", per_file_parts), ("journal", journal_parts)):
        if name not in args.formats:
            continue
        folder = root / name
        folder.mkdir(parents=True)
        commit, merge, n_files = run(folder, frames, classes)
        figures[name] = {"files_created": n_files, "commit_seconds": round(commit, 2), "merge_seconds": round(merge, 2),
                         "commit_ms_per_recording": round(1000 * commit / args.files, 3)}
        shutil.rmtree(folder)
    shutil.rmtree(root, ignore_errors=True)
    print(f"{args.files} recordings x {args.windows} windows x {args.classes} classes per shard\n")
    print("| parts | files created | commit (s) | ms per recording | merge (s) |\n| --- | --- | --- | --- | --- |")
    for name, f in figures.items():
        print(f"| {name} | {f['files_created']} | {f['commit_seconds']} | {f['commit_ms_per_recording']} | "
              f"{f['merge_seconds']} |")
    flat = {f"archive.parts.{args.files}.{name}.{k}": v for name, f in figures.items() for k, v in f.items()}
    if len(figures) == 2:
        ratio = figures["per_file_csv"]["merge_seconds"] / max(figures["journal"]["merge_seconds"], 1e-9)
        print(f"\nmerge: the journal is {ratio:.1f}x faster")
        flat[f"archive.parts.{args.files}.merge_speedup"] = round(ratio, 1)
    if args.record:
        record_figures(flat)


if __name__ == "__main__":
    main()
