"""Neighbour-window smoothing (predict.neighbour_weight) on labelled long recordings: the
window metrics of one prediction at several weights, in one run.

    python bench/smoothing.py WORKDIR [--exp base] [--labels results/demo/soundscape_labels.csv]

WORKDIR is a finished workflow run whose prediction was not smoothed (the default)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from soundclf.submission import prediction_metrics, smooth_neighbours  # noqa: E402

WEIGHTS = (0.0, 0.1, 0.2, 0.25, 1 / 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--exp", nargs="+", default=["base"])
    parser.add_argument("--labels", default="results/demo/soundscape_labels.csv")
    args = parser.parse_args()
    print("| experiment | w | macro ROC-AUC | padded cmAP | row F1 (nocall at 0.5) |\n| --- | --- | --- | --- | --- |")
    for exp in args.exp:
        submission = pd.read_csv(args.workdir / "results/experiments" / exp / "predictions/submission.csv")
        for weight in WEIGHTS:
            m = prediction_metrics(smooth_neighbours(submission, weight), args.workdir / args.labels, 0.5)
            print(f"| {exp} | {weight:.2f} | {m['macro_roc_auc']:.3f} | {m['padded_cmap']:.3f} | {m['row_f1_nocall']:.3f} |")


if __name__ == "__main__":
    main()
