"""Rows of a workflow run compared on the same folds: recording accuracy per fold, paired
differences against a reference row, and per group of classes (those the embedding model's
classifier knows, `mapped`, and the others), where zero-shot scores cannot name the others.

    python bench/probe_rows.py xenocanto /work/runs/xc/results birdnet_zero_shot \\
        birdnet_probe birdnet_anchored

The run is the workflow's own (bench/quality.py's run_soundclf config for the dataset, with
the experiments named here); this script reads its OOF windows, folds and classes, and the
mapped classes from the anchored or zero-shot training log. Writes
results/bench/probe_rows/<name>.json and the quality.<name>.<row>.* keys of results.json."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).resolve().parents[1] / "src")]
from common import WORK, record_figures  # noqa: E402
from soundclf.comparison import ensemble_recording_scores, member_scores  # noqa: E402
from soundclf.scoring import recording_scores  # noqa: E402
from soundclf.indexing import read_classes, read_index  # noqa: E402


def unmapped_classes(results: Path, experiments: list[str]) -> set[str]:
    """The classes the zero-shot mapping left out, as a zero-shot or anchored fold logged them."""
    for exp in experiments:
        for log in sorted((results / "logs/train_fold" / exp).glob("fold*.log")):
            text = log.read_text()
            if "zero-shot:" in text:
                line = text.split("zero-shot:", 1)[1].split("\n", 1)[0]
                return set(line.split("no label for ", 1)[1].split(" (they score 0)")[0].split(", ")) \
                    if "no label for" in line else set()
    raise SystemExit("no zero-shot or anchored experiment logged its class mapping")


def recording_table(results: Path, exp: str, classes: list[str], folds: pd.DataFrame) -> pd.DataFrame:
    """Per recording: its fold, whether the top class (max over windows) is its label."""
    oof = pd.read_csv(results / f"experiments/{exp}/oof/oof_windows.csv", dtype={"key": str})
    rec = recording_scores(oof, classes).merge(folds[["key", "class_id", "fold"]], on="key")
    rec["right"] = rec[classes].to_numpy().argmax(1) == rec["class_id"].to_numpy()
    return rec[["key", "fold", "class_id", "right"]]


def nested_ensemble_table(results: Path, classes: list[str], folds: pd.DataFrame) -> pd.DataFrame | None:
    """The nested ensemble's recordings as recording_table gives an experiment's: fold k
    scored by the members, weights and calibration chosen without fold k (nested/fold<k>.json)."""
    choices = sorted((results / "experiments/ensemble/nested").glob("fold*.json"))
    if not choices:
        return None
    parts = []
    for path in choices:
        choice = json.loads(path.read_text())
        k = choice["fold"]
        windows = [str(results / f"experiments/{exp}/oof/fold{k}/windows.csv") for exp in choice["weights"]]
        scores = ensemble_recording_scores(member_scores(list(choice["weights"]), windows, classes), choice)
        parts.append(scores.reset_index())
    rec = pd.concat(parts).merge(folds[["key", "class_id", "fold"]], on="key")
    rec["right"] = rec[classes].to_numpy().argmax(1) == rec["class_id"].to_numpy()
    return rec[["key", "fold", "class_id", "right"]]


def stats(values) -> dict:
    values = [float(v) for v in values]
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "folds": [round(v, 4) for v in values]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name")
    ap.add_argument("results", type=Path, help="the workflow's results folder")
    ap.add_argument("reference", help="the row the others are paired against")
    ap.add_argument("rows", nargs="+")
    args = ap.parse_args()
    classes = read_classes(args.results / "index/classes.csv")
    folds = read_index(args.results / "folds/folds.csv")
    rows = [args.reference] + args.rows
    unmapped = unmapped_classes(args.results, rows)
    group_of = np.array(["unmapped" if c in unmapped else "mapped" for c in classes])
    tables = {exp: recording_table(args.results, exp, classes, folds) for exp in rows}
    nested = nested_ensemble_table(args.results, classes, folds)
    if nested is not None:  # the workflow's honest ensemble row
        tables["ensemble_nested"] = nested
    fold_ids = sorted(folds["fold"].unique())
    result = {"metric": "recording accuracy (top class of the max over windows)", "rows": {},
              "unmapped_classes": sorted(unmapped), "n_classes": len(classes)}
    per_fold = {exp: [t.loc[t["fold"] == k, "right"].mean() for k in fold_ids] for exp, t in tables.items()}
    for exp, table in tables.items():
        row = stats(per_fold[exp]) | {"diff_vs_" + args.reference: stats(np.subtract(per_fold[exp],
                                                                                      per_fold[args.reference]))}
        for group in ("mapped", "unmapped"):
            part = table[group_of[table["class_id"]] == group]
            row[group] = stats([part.loc[part["fold"] == k, "right"].mean() for k in fold_ids]) | {
                "n_recordings": int(len(part))}
        result["rows"][exp] = row
        print(f"{exp:20s} {row['mean']:.3f} ± {row['std']:.3f}  vs {args.reference}: "
              f"{row['diff_vs_' + args.reference]['mean']:+.3f} ± {row['diff_vs_' + args.reference]['std']:.3f}  "
              f"mapped {row['mapped']['mean']:.3f}  unmapped {row['unmapped']['mean']:.3f}")
    out = WORK / "probe_rows" / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    figures = {}
    for exp, row in result["rows"].items():
        key = f"quality.{args.name}.{exp}"
        figures |= {f"{key}.mean": round(row["mean"], 4), f"{key}.std": round(row["std"], 4),
                    f"{key}.diff_mean": round(row["diff_vs_" + args.reference]["mean"], 4),
                    f"{key}.diff_std": round(row["diff_vs_" + args.reference]["std"], 4),
                    f"{key}.mapped.mean": round(row["mapped"]["mean"], 4),
                    f"{key}.unmapped.mean": round(row["unmapped"]["mean"], 4)}
    record_figures(figures)
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
