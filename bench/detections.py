"""Detections against the calls of annotated recordings: event-level precision and recall of
an experiment's detections for each way of choosing thresholds, in one run.

    python bench/detections.py WORKDIR [--exp base] [--truth results/demo/soundscape_annotations]

WORKDIR is a finished workflow run (the demo by default: its soundscapes and their Raven
tables). A detection is correct when it overlaps a true call of its class; a true call is
found when a detection of its class overlaps it. Calls of one class less than `--gap`
seconds apart count as one bout (the unit a 5 s window can find)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from soundclf.annotations import read_annotations  # noqa: E402
from soundclf.detections import detect, thresholds_for  # noqa: E402
from soundclf.submission import window_frame  # noqa: E402


def bouts(events: pd.DataFrame, gap: float) -> pd.DataFrame:
    """Calls of one class in one file less than `gap` s apart merged into one bout."""
    rows = []
    for (file, label), group in events.sort_values("start").groupby(["key", "label"]):
        start, end = None, None
        for s, e in zip(group["start"], group["end"]):
            if start is not None and s - end < gap:
                end = max(end, e)
                continue
            if start is not None:
                rows.append((file, label, start, end))
            start, end = s, e
        rows.append((file, label, start, end))
    return pd.DataFrame(rows, columns=["file", "label", "start", "end"])


def overlaps(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """Whether each row of `a` overlaps a row of `b` with the same file and label."""
    hit = np.zeros(len(a), dtype=bool)
    for i, row in enumerate(a.itertuples()):
        same = b[(b["file"] == row.file) & (b["label"] == row.label)]
        hit[i] = bool(((same["start"] < row.end) & (same["end"] > row.start)).any())
    return hit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--exp", default="base")
    parser.add_argument("--truth", default="results/demo/soundscape_annotations")
    parser.add_argument("--window-seconds", type=float, default=5.0)
    parser.add_argument("--gap", type=float, default=1.0)
    args = parser.parse_args()
    exp = args.workdir / "results/experiments" / args.exp
    submission = pd.read_csv(exp / "predictions/submission.csv")
    classes = list(submission.columns[1:])
    windows = window_frame(submission, args.window_seconds)
    recordings = windows.groupby("file")["end"].max().rename("duration").reset_index().rename(columns={"file": "key"})
    truth = read_annotations({"raven_dir": str(args.workdir / args.truth), "raven_label_column": "Species"},
                             recordings, classes).table
    true_bouts = bouts(truth[truth["kind"] == "event"], args.gap)
    thresholds = pd.read_csv(exp / "oof/thresholds.csv", dtype={"class": str})
    rows = []
    for name, kind, fixed in [("OOF F1-optimal (default)", "f1", None), ("OOF precision 0.9", "precision", None),
                              ("fixed 0.5", "f1", 0.5)]:
        found = detect(windows, thresholds_for(thresholds, classes, kind, fixed))
        precision = overlaps(found, true_bouts).mean() if len(found) else float("nan")
        recall = overlaps(true_bouts, found).mean()
        rows.append(f"| {name} | {len(found)} | {precision:.3f} | {recall:.3f} |")
    print(f"{len(true_bouts)} true bouts (calls < {args.gap:g} s apart merged) in {len(recordings)} recordings, "
          f"{len(classes)} classes\n")
    print("| thresholds | detections | precision (detections on a true bout) | recall (bouts found) |\n| --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
