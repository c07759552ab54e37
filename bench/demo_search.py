"""Search by example on the demo's archive (configs/search.yaml) with an oracle reviewer: the
hidden truth of results/demo/archive_annotations/ marks each round's review set (a window is
the hooter's when one of its calls overlaps it by at least 0.1 s), the next round runs, and
the last reviewed round's detections are scored against the truth.

    python bench/demo_search.py --workdir . --rounds 3

Prints, per round, the precision of its review set's top windows and the share of the
archive's hooter windows found so far; then the detections' window precision and recall (and
the recall of the hooter windows nobody marked: the probe's own part).
Writes marks.csv into each round folder it reviews (a real reviewer's marks are kept: a
round that has marks is not marked again)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from soundclf.annotations import RAVEN_BEGIN, RAVEN_END
from soundclf.review.items import read_items
from soundclf.review.store import append_mark, current_marks

LABEL, MIN_OVERLAP = "hooter", 0.1
REPO = Path(__file__).resolve().parents[1]


def hooter_calls(annotation_dir: Path) -> dict[str, list[tuple[float, float]]]:
    calls = {}
    for table in annotation_dir.rglob("*.Table.1.selections.txt"):
        key = table.relative_to(annotation_dir).as_posix().replace(".Table.1.selections.txt", ".ogg")
        rows = pd.read_csv(table, sep="\t")
        rows = rows[rows["Species"] == LABEL]
        calls[key] = list(zip(rows[RAVEN_BEGIN], rows[RAVEN_END]))
    return calls


def holds_call(calls, file: str, start: float, end: float) -> bool:
    return any(min(b, end) - max(a, start) >= MIN_OVERLAP for a, b in calls.get(file, []))


def snakemake(workdir: Path, target: str) -> None:
    subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2", target,
                    "--configfile", "configs/search.yaml"], cwd=workdir, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = args.workdir / "results/search" / LABEL
    snakemake(args.workdir, f"results/search/{LABEL}/round0/items.csv")
    calls = hooter_calls(args.workdir / "results/demo/archive_annotations")
    found, report = set(), {"rounds": []}
    for r in range(args.rounds + 1):
        if r:
            snakemake(args.workdir, f"results/search/{LABEL}/round{r}/items.csv")
        items = read_items(root / f"round{r}")
        truth = [holds_call(calls, f, s, e) for f, s, e in zip(items["file"], items["start"], items["end"])]
        marks = root / f"round{r}/marks.csv"
        if not marks.exists():
            for item, yes in zip(items.itertuples(), truth):
                append_mark(marks, reviewer="oracle", item=item.item, file=item.file, start=item.start, end=item.end,
                            label=LABEL, mark="yes" if yes else "no")
        found |= {(f, s) for f, s, t in zip(items["file"], items["start"], truth) if t}
        top = [t for t, d in zip(truth, items["drawn_by"]) if d in ("top", "search")]
        report["rounds"].append({"round": r, "reviewed": len(items), "top_precision": sum(top) / max(len(top), 1),
                                 "windows_found": len(found)})
    snakemake(args.workdir, f"results/search/{LABEL}/round{args.rounds}/detections.csv")
    scores = pd.read_parquet(root / f"round{args.rounds}/scores.parquet")
    window = float((items["end"] - items["start"]).iloc[0])  # the embedding window
    truth = pd.Series([holds_call(calls, f, s, s + window) for f, s in zip(scores["file"], scores["start"])])
    detections = pd.read_csv(root / f"round{args.rounds}/detections.csv")
    detected = pd.Series([any(f == d.file and d.start <= s < d.end for d in detections.itertuples())
                          for f, s in zip(scores["file"], scores["start"])])
    yes = pd.concat([current_marks(root / f"round{r}/marks.csv") for r in range(args.rounds + 1)]).query("mark == 'yes'")
    marked_yes = set(zip(yes["file"], yes["start"].round(3)))  # the marks, a real reviewer's where kept
    marked = pd.Series([(f, round(s, 3)) in marked_yes for f, s in zip(scores["file"], scores["start"])])
    report |= {"archive_windows": len(scores), "hooter_windows": int(truth.sum()),
               "detection_precision": float(truth[detected].mean()) if detected.any() else float("nan"),
               "detection_recall": float(detected[truth].mean()),
               # the probe's own share: hooter windows nobody marked (every marked-yes window is detected)
               "unmarked_hooter_windows": int((truth & ~marked).sum()),
               "detection_recall_unmarked": float(detected[truth & ~marked].mean()) if (truth & ~marked).any() else float("nan"),
               "threshold": float(detections["threshold"].iloc[0]) if len(detections) else float("nan")}
    for row in report["rounds"]:
        row["share_found"] = row["windows_found"] / report["hooter_windows"]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
