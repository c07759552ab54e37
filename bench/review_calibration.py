"""Calibration from reviewed windows, measured with an oracle reviewer on held-out folds.

    python bench/review_calibration.py xenocanto /work/runs/xc/results birdnet_probe

Reads an experiment's OOF windows (results/experiments/<exp>/oof/oof_windows.csv), its folds
and classes. For each outer fold k:

- review sets are drawn the way the `review_set` rule draws them (soundclf.review.sampling:
  per class, `--per-class` windows stratified over score-quantile bins) from the OOF windows
  of fold k and, separately, from those of the other folds;
- the oracle marks each drawn window from the known labels: 'yes' when the class is a label
  (primary or secondary) of the window's recording, else 'no'. Caveat: the labels are weak (a
  recording's species need not call in every one of its windows), so the oracle says 'yes' to
  some windows a listener would call 'no'; it is a stand-in, not a person;
- the calibration is fitted on the other folds' marks (soundclf.review.calibration, as the
  `calibrate` rule fits it) and judged on fold k's marks, which it never saw:
  expected calibration error (10 equal-width bins) of the raw scores read as probabilities
  and of the calibrated probabilities;
- per class, the threshold for probability 0.95 against the F1-optimal threshold chosen on the
  other folds' OOF windows (what `choose_thresholds` does), each with the precision it gives
  on *all* of fold k's windows (the oracle knows every window's label).

Then, for the marks needed: the 90 % bootstrap interval of the fitted probability at the 0.95
threshold, its half-width per class, as the sample grows (all folds' windows pooled).
Writes results/bench/review/<name>/review.json and the review.<name>.* keys of results.json."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).resolve().parents[1] / "src")]
from common import REPO, record_figures  # noqa: E402
from soundclf.detections import class_thresholds  # noqa: E402
from soundclf.folds import multi_hot  # noqa: E402
from soundclf.indexing import read_classes, read_index  # noqa: E402
from soundclf.review.calibration import (LogisticCalibration, calibration_table, expected_calibration_error,  # noqa: E402
                                         fit_logistic, logit, sigmoid)
from soundclf.review.sampling import draw_review_set, oof_source  # noqa: E402

TARGET = 0.95


def window_truth(oof: pd.DataFrame, folds: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """(windows, classes) 0/1: the class is a label of the window's recording."""
    labels = pd.DataFrame(multi_hot(folds, len(classes)), index=folds["key"])
    return labels.loc[oof["key"]].to_numpy()


def oracle_marks(items: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The items with `mark` yes/no from the truth table (index: file, start; columns: classes)."""
    right = [truth.at[(f, s), label] for f, s, label in zip(items["file"], items["start"], items["label"])]
    return items.assign(mark=np.where(right, "yes", "no"))


def precision_at(scores: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[float, int]:
    above = scores >= threshold
    return (float(truth[above].mean()) if above.any() else float("nan")), int(above.sum())


def fold_figures(source, truth_table, truth, folds_of_windows, fold, classes, per_class, seed):
    held, rest = folds_of_windows == fold, folds_of_windows != fold
    fit_items, _, _ = draw_review_set(source[rest].reset_index(drop=True), classes, per_class, 6, 0, seed)
    test_items, _, _ = draw_review_set(source[held].reset_index(drop=True), classes, per_class, 6, 0, seed + 1)
    fit_marks, test_marks = oracle_marks(fit_items, truth_table), oracle_marks(test_items, truth_table)
    scores_rest = {c: source.loc[rest, c].to_numpy() for c in classes}
    table = calibration_table(fit_marks, scores_rest, [TARGET], min_marks=5, n_boot=200, seed=seed)
    fits = {row["class"]: LogisticCalibration(row["b0"], row["b1"]) for _, row in table.iterrows() if row["status"] == "ok"}
    judged = test_marks[test_marks["label"].isin(list(fits))]
    correct = (judged["mark"] == "yes").to_numpy(float)
    calibrated = np.array([fits[c].probability([s])[0] for c, s in zip(judged["label"], judged["score"])])
    f1 = class_thresholds(truth[rest], source.loc[rest, classes].to_numpy(), classes, TARGET).set_index("class")
    per_class = []
    for c in fits:
        j = classes.index(c)
        scores, y = source.loc[held, c].to_numpy(), truth[held][:, j]
        if not y.any():
            continue
        row = {"fold": int(fold), "class": c, "calibrated_threshold": fits[c].threshold(TARGET),
               "f1_threshold": float(f1.at[c, "f1_threshold"])}
        row["calibrated_precision"], row["calibrated_n"] = precision_at(scores, y, row["calibrated_threshold"])
        row["f1_precision"], row["f1_n"] = precision_at(scores, y, row["f1_threshold"])
        per_class.append(row)
    return {"fold": int(fold), "n_fitted": len(fits), "n_classes": len(classes), "n_marks_judged": len(judged),
            "ece_raw": expected_calibration_error(judged["score"].to_numpy(), correct),
            "ece_calibrated": expected_calibration_error(calibrated, correct)}, per_class


def marks_needed(source, truth_table, classes, sizes, seed, n_boot=300):
    """Per sample size: the median over fitted classes of the half-width of the 90 % bootstrap
    interval of the fitted probability at the TARGET threshold."""
    rng, rows = np.random.default_rng(seed), []
    for n in sizes:
        items, _, _ = draw_review_set(source, classes, n, 6, 0, seed)
        marks = oracle_marks(items, truth_table)
        widths = []
        for c, m in marks.groupby("label"):
            y = (m["mark"] == "yes").to_numpy(float)
            if min(y.sum(), len(y) - y.sum()) < 5:
                continue
            x = logit(m["score"])
            b0, b1 = fit_logistic(x, y)
            if b1 <= 0:
                continue
            at = (logit(TARGET) - b0) / b1  # the threshold's logit
            boot = fit_logistic(x, y, rng.multinomial(len(x), np.full(len(x), 1 / len(x)), size=n_boot))
            p = sigmoid(boot[:, 0] + boot[:, 1] * at)
            widths.append((np.percentile(p, 95) - np.percentile(p, 5)) / 2)
        rows.append({"per_class": n, "classes_fitted": len(widths),
                     "median_half_width": float(np.median(widths)) if widths else float("nan")})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name")
    ap.add_argument("results", type=Path, help="the workflow's results folder")
    ap.add_argument("experiment")
    ap.add_argument("--per-class", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    classes = read_classes(args.results / "index/classes.csv")
    folds = read_index(args.results / "folds/folds.csv")
    oof = pd.read_csv(args.results / f"experiments/{args.experiment}/oof/oof_windows.csv", dtype={"key": str})
    source = oof_source(oof, folds, classes)
    truth = window_truth(oof, folds, classes)
    truth_table = pd.DataFrame(truth, columns=classes, index=pd.MultiIndex.from_arrays([source["file"], source["start"]]))
    fold_of = oof["key"].map(folds.set_index("key")["fold"]).to_numpy()

    per_fold, per_class = [], []
    for fold in sorted(set(fold_of)):
        summary, rows = fold_figures(source, truth_table, truth, fold_of, fold, classes, args.per_class, args.seed)
        per_fold.append(summary)
        per_class += rows
        print(json.dumps(summary))
    classes_table = pd.DataFrame(per_class)
    needed = marks_needed(source, truth_table, classes, [12, 24, 48, 96, 192], args.seed)
    for row in needed:
        print(json.dumps(row))

    def mean_std(values):
        return round(float(np.mean(values)), 4), round(float(np.std(values)), 4)

    ece_raw, ece_cal = mean_std([f["ece_raw"] for f in per_fold]), mean_std([f["ece_calibrated"] for f in per_fold])
    by_fold = classes_table.groupby("fold")
    reached = {kind: mean_std(by_fold.apply(lambda t: float((t[f"{kind}_precision"] >= TARGET).mean()), include_groups=False))
               for kind in ("calibrated", "f1")}
    precision = {kind: mean_std(by_fold[f"{kind}_precision"].mean()) for kind in ("calibrated", "f1")}
    enough = [r["per_class"] for r in needed if r["median_half_width"] <= 0.05]
    result = {"experiment": args.experiment, "per_class": args.per_class, "folds": per_fold,
              "ece_raw": ece_raw, "ece_calibrated": ece_cal, "precision_at_threshold": precision,
              "share_of_classes_reaching_0.95": reached, "marks_needed": needed,
              "per_class_thresholds": classes_table.to_dict(orient="records")}
    out = REPO / f"results/bench/review/{args.name}/review.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    record_figures({f"review.{args.name}.ece_raw": ece_raw[0], f"review.{args.name}.ece_raw_std": ece_raw[1],
                    f"review.{args.name}.ece_calibrated": ece_cal[0], f"review.{args.name}.ece_calibrated_std": ece_cal[1],
                    f"review.{args.name}.precision_calibrated_0.95": precision["calibrated"][0],
                    f"review.{args.name}.precision_f1_threshold": precision["f1"][0],
                    f"review.{args.name}.marks_for_0.05": min(enough) if enough else None})
    print(f"ECE raw {ece_raw[0]:.3f} ± {ece_raw[1]:.3f}, calibrated {ece_cal[0]:.3f} ± {ece_cal[1]:.3f}; precision at "
          f"the 0.95 threshold {precision['calibrated'][0]:.3f} ± {precision['calibrated'][1]:.3f} vs the F1 threshold "
          f"{precision['f1'][0]:.3f} ± {precision['f1'][1]:.3f}; -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
