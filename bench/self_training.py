"""Self-training on the demo: the student of each round against its teacher on the same
folds, in cross-validation and on the labelled soundscapes (each fold's model alone, so that
both figures are mean ± std over folds with paired differences).

    python bench/self_training.py [--name demo] [--configfile configs/self_training.yaml ...]
                                  [--start-from NAME] [--transform threshold=0.5 top_k=1 ...]

Runs the workflow (up to the comparison table) in results/bench/self_training/<name>/, then
scores it; --start-from copies a finished run first, so that a variant of the self_training
keys retrains only the students. Writes self_training.json there; bench/run.py collects it."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).resolve().parents[1] / "src")]
from common import WORK, record_figures, run_workflow  # noqa: E402
from soundclf.experiments import load_config, self_training_students  # noqa: E402
from soundclf.prediction import predict_folder  # noqa: E402
from soundclf.sources import list_audio_files  # noqa: E402
from soundclf.submission import prediction_metrics, submission_form  # noqa: E402

METRICS = ("recording.accuracy", "recording.padded_cmap", "window.padded_cmap", "soundscape.macro_roc_auc",
           "soundscape.padded_cmap")


def fold_scores(workdir: Path, exp: str, folds: list[int], soundscapes: list[Path], labels: Path) -> dict[str, list]:
    """Per fold: its CV metrics, and its model alone on the labelled soundscapes."""
    out = {m: [] for m in METRICS}
    for k in folds:
        cv = json.loads((workdir / f"results/experiments/{exp}/oof/fold{k}/metrics.json").read_text())
        for m in METRICS[:3]:
            level, name = m.split(".")
            out[m].append(cv[level][name])
        table = predict_folder(soundscapes, [workdir / f"results/experiments/{exp}/models/fold{k}/model.pt"], 64)
        scored = prediction_metrics(submission_form(table), labels, 0.5)
        out["soundscape.macro_roc_auc"].append(scored["macro_roc_auc"])
        out["soundscape.padded_cmap"].append(scored["padded_cmap"])
    return out


def run(name: str, configfiles: list[str], start_from: str | None, transform: dict | None = None) -> dict:
    workdir = WORK / "self_training" / name
    if start_from and not workdir.exists():
        shutil.copytree(WORK / "self_training" / start_from, workdir, symlinks=True)
    workdir.mkdir(parents=True, exist_ok=True)
    if transform:  # the variant's self_training.transform, over the config files
        variant = workdir / "transform.yaml"
        variant.write_text(json.dumps({"self_training": {"transform": transform}}))
        configfiles = [*configfiles, str(variant)]
    seconds = run_workflow(workdir, configfiles, ["results/experiments/comparison.csv"])
    config = load_config(*configfiles)
    students = self_training_students(config)
    teacher = next(iter(students.values()))["first_teacher"]
    folds = list(range(config["folds"]["n_folds"]))
    soundscapes = list_audio_files(workdir / "results/demo/soundscapes", ["ogg"])
    labels = workdir / "results/demo/soundscape_labels.csv"
    rows = {exp: fold_scores(workdir, exp, folds, soundscapes, labels) for exp in [teacher, *students]}
    result = {"name": name, "configfiles": configfiles, "folds": folds, "teacher": teacher,
              "self_training": config["self_training"], "workflow_seconds": seconds, "rows": {}}
    for exp, scores in rows.items():
        result["rows"][exp] = {}
        for m, values in scores.items():
            diff = np.array(values) - np.array(rows[teacher][m])
            result["rows"][exp][m] = {"folds": values, "mean": float(np.mean(values)), "std": float(np.std(values)),
                                      "diff_mean": float(diff.mean()), "diff_std": float(diff.std()),
                                      "won": int((diff > 0).sum())}
    (workdir / "self_training.json").write_text(json.dumps(result, indent=2))
    return result


def table(result: dict) -> str:
    transform = result["self_training"]["transform"]
    lines = [f"{result['name']} ({', '.join(result['configfiles'])}): transform {transform}, pseudo share "
             f"{result['self_training']['pseudo_share']}; mean ± std over {len(result['folds'])} folds; "
             f"student − teacher paired per fold (folds won); workflow {result['workflow_seconds']:.0f} s on 2 cores "
             "(the students' jobs alone when started from another run)", "",
             "| experiment | " + " | ".join(METRICS) + " |", "| --- |" + " --- |" * len(METRICS)]
    for exp, row in result["rows"].items():
        cells = []
        for m in METRICS:
            r = row[m]
            cell = f"{r['mean']:.3f} ± {r['std']:.3f}"
            if exp != result["teacher"]:
                cell += f" ({r['diff_mean']:+.3f} ± {r['diff_std']:.3f}; {r['won']}/{len(r['folds'])})"
            cells.append(cell)
        lines.append(f"| {exp} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def flat(result: dict) -> dict:
    """bench/results.json keys: self_training.<name>.<experiment>.<metric>.mean/std/diff_mean."""
    return {f"self_training.{result['name']}.{exp}.{m}.{key}": round(r[key], 4)
            for exp, row in result["rows"].items() for m, r in row.items() for key in ("mean", "std", "diff_mean")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="demo")
    parser.add_argument("--configfile", nargs="+", default=["configs/self_training.yaml"])
    parser.add_argument("--start-from", help="a finished run of this script to copy first (its teacher is reused)")
    parser.add_argument("--transform", nargs="+", default=[], metavar="KEY=VALUE",
                        help="self_training.transform keys of this variant (threshold, top_k, power)")
    args = parser.parse_args()
    transform = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.transform)}
    result = run(args.name, args.configfile, args.start_from, transform)
    record_figures(flat(result))
    print(table(result))


if __name__ == "__main__":
    main()
