"""BirdNET's range model as a prior (issue 44 item 4), measured offline on a bench/quality.py
work folder: with and without, same folds.

    python bench/range_prior.py results/bench/quality/xenocanto [--record]

Per recording the prior comes from its metadata (latitude, longitude, date: Xeno-canto's) and
BirdNET's range model (soundclf.embedding.birdnet.range_prior; the birdnet extra). Two parts:

- model-free (always): per fold, the share of recordings whose true class the prior would
  mask at --sf_thresh (each one a top-1 error the prior forces), the share of their true
  labels masked, and how many of the classes stay candidates; for the week of the recording
  and for the whole year (week -1);
- with a model (where the work folder holds OOF windows of birdnet_zero_shot or
  birdnet_anchored: results/experiments/<exp>/oof/oof_windows.csv): recording top-1 accuracy
  per fold (max over windows, argmax) without the prior, with the mask and with the weight,
  mean ± std and the paired difference over folds; --record writes them into
  bench/results.json as quality.<set>.birdnet_{zero_shot,anchored}_range_prior.{mean,std,diff_mean}.

Writes results/bench/range_prior/<set>.json either way."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORK, record_figures  # noqa: E402

SWEEP = (0.1, 0.03, 0.01, 0.003, 0.001, 0.0001)
EXPERIMENTS = {"birdnet_zero_shot": "birdnet_zero_shot_range_prior", "birdnet_anchored": "birdnet_anchored_range_prior"}


def stats(values) -> dict:
    values = [float(v) for v in values]
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "folds": values}


def truth_lists(folds: pd.DataFrame, classes: list[str]) -> list[list[int]]:
    """Per recording, its true class ids (primary and secondary)."""
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for _, row in folds.iterrows():
        ids = [int(row["class_id"])] if str(row["class_id"]).strip() not in ("", "-1") else []
        secondary = str(row.get("secondary_class_ids", "") or "")
        ids += [int(s) for s in secondary.strip("[]").replace("'", "").split(",") if s.strip().lstrip("-").isdigit()
                and int(s) >= 0]
        ids += [index[s] for s in str(row.get("secondary_labels", "")).strip("[]").replace("'", "").split(",")
                if s.strip() in index]
        out.append(sorted(set(ids)))
    return out


def recall_cost(folds: pd.DataFrame, priors: pd.DataFrame, rows: list, classes: list[str]) -> dict:
    """Model-free: what the mask would cost and leave, per fold."""
    weights = priors.loc[folds["key"].astype(str)].to_numpy()
    truths = truth_lists(folds, classes)
    mapped = np.array([r is not None for r in rows])
    primary = folds["class_id"].to_numpy(int)
    primary_masked = weights[np.arange(len(folds)), primary] == 0
    label_masked = [sum(weights[i, c] == 0 for c in t) for i, t in enumerate(truths)]
    per_fold = {"primary_masked": [], "labels_masked": [], "candidates": [], "mapped_candidates": []}
    for k in sorted(folds["fold"].unique()):
        at = folds["fold"].to_numpy() == k
        per_fold["primary_masked"].append(primary_masked[at].mean())
        n_labels = sum(len(truths[i]) for i in np.flatnonzero(at))
        per_fold["labels_masked"].append(sum(label_masked[i] for i in np.flatnonzero(at)) / max(n_labels, 1))
        per_fold["candidates"].append((weights[at] > 0).sum(axis=1).mean())
        per_fold["mapped_candidates"].append((weights[at][:, mapped] > 0).sum(axis=1).mean())
    masked_classes = sorted({classes[primary[i]] for i in np.flatnonzero(primary_masked)})
    return {name: stats(values) for name, values in per_fold.items()} | {
        "n_recordings": int(len(folds)), "n_primary_masked": int(primary_masked.sum()),
        "classes": len(classes), "mapped_classes": int(mapped.sum()), "masked_true_classes": masked_classes}


def accuracy_per_fold(windows: pd.DataFrame, folds: pd.DataFrame, classes: list[str]) -> list[float]:
    from soundclf.metrics import top_k_accuracy
    from soundclf.scoring import recording_scores

    truth = folds.set_index("key")["class_id"]
    out = []
    for k in sorted(windows["fold"].unique()):
        scores = recording_scores(windows[windows["fold"] == k], classes)
        out.append(top_k_accuracy(truth.loc[scores.index].to_numpy(int), scores.to_numpy(), 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="a bench/quality.py work folder (results/bench/quality/<set>)")
    parser.add_argument("--sf-thresh", type=float, default=0.03)
    parser.add_argument("--floor", type=float, default=0.0, help="the weight mode's lowest weight")
    parser.add_argument("--record", action="store_true", help="write the accuracy figures into bench/results.json")
    args = parser.parse_args()

    from soundclf.embedding.birdnet.range_prior import RangeModel, recording_points, recording_priors
    from soundclf.embedding.model import EmbeddingSpec
    from soundclf.embedding.zero_shot import match_classes, model_labels

    name = args.work.name
    results = args.work / "results"
    folds = pd.read_csv(results / "folds/folds.csv", keep_default_na=False)
    folds = folds[folds["fold"].astype(str) != ""].assign(fold=lambda t: t["fold"].astype(int))
    classes = pd.read_csv(results / "index/classes.csv", keep_default_na=False)["class"].tolist()
    rows = match_classes(classes, model_labels(EmbeddingSpec(), None))
    model = RangeModel()
    points = recording_points(folds)
    year = points.assign(week=-1)
    out: dict = {"set": name, "sf_thresh": args.sf_thresh, "floor": args.floor,
                 "located": int(points[["latitude", "longitude"]].notna().all(axis=1).sum()),
                 "distinct_weeks": int(points["week"].nunique()), "year_round_weeks": int((points["week"] == -1).sum())}
    priors = {mode: recording_priors(points, classes, rows, mode, args.sf_thresh, args.floor, model)
              for mode in ("mask", "weight")}
    out["recall_cost"] = {"week": recall_cost(folds, priors["mask"], rows, classes),
                          "year": recall_cost(folds, recording_priors(year, classes, rows, "mask", args.sf_thresh,
                                                                      model=model), rows, classes)}
    # the share of recordings whose true class each threshold masks (week, whole year)
    out["primary_masked_by_threshold"] = {
        f"{t:g}": {when: recall_cost(folds, recording_priors(p, classes, rows, "mask", t, model=model), rows,
                                     classes)["primary_masked"]["mean"] for when, p in (("week", points), ("year", year))}
        for t in SWEEP}
    from soundclf.embedding.birdnet.range_prior import apply_range_prior

    figures = {}
    for exp, figure in EXPERIMENTS.items():
        path = results / "experiments" / exp / "oof" / "oof_windows.csv"
        if not path.is_file():
            out[exp] = f"no OOF windows at {path}"
            continue
        windows = pd.read_csv(path, keep_default_na=False)
        windows["key"] = windows["key"].astype(str)
        base = accuracy_per_fold(windows, folds, classes)
        row = {"without": stats(base)}
        for mode, prior in priors.items():
            with_prior = accuracy_per_fold(apply_range_prior(windows, prior), folds, classes)
            row[mode] = stats(with_prior) | {"diff": stats(np.subtract(with_prior, base))}
        out[exp] = row
        key = f"quality.{name}.{figure}"
        figures |= {f"{key}.mean": row["mask"]["mean"], f"{key}.std": row["mask"]["std"],
                    f"{key}.diff_mean": row["mask"]["diff"]["mean"],
                    f"{key}_weight.mean": row["weight"]["mean"], f"{key}_weight.std": row["weight"]["std"],
                    f"{key}_weight.diff_mean": row["weight"]["diff"]["mean"]}
    target = WORK / "range_prior" / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    if args.record and figures:
        record_figures(figures)
        print(f"recorded {len(figures)} figures in bench/results.json")


if __name__ == "__main__":
    main()
