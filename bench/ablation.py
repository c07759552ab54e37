"""Ablation of the CNN's training choices on a real dataset: each row is the default CNN
experiment with one change, trained and scored on the same folds and mel cache.

    python bench/quality.py esc10 /work/data/esc10      # once: index, folds, mel cache
    python bench/ablation.py esc10 --folds 0 1 2        # then the ablation on those folds

Reads the quality run's config (results/bench/quality/<name>/config.yaml), adds the
experiments below, builds only their fold metrics, and reports recording top-1 accuracy
(mean ± std over the folds, and the paired difference from the default per fold) with the
summed training + evaluation job seconds. Writes results/bench/quality/<name>/ablation.json."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path[:0] = [str(Path(__file__).parent)]
from common import REPO, WORK  # noqa: E402

VARIANTS = {  # name -> (what changed, overrides of the default config)
    "default": ("the default config", {}),
    "specaugment": ("SpecAugment: 2 frequency masks ≤ 16 bins, 2 time masks ≤ 20 frames",
                    {"train": {"freq_mask": 16, "time_mask": 20}}),
    "noise": ("white and pink noise, each at SNR 10–40 dB on half the crops",
              {"train": {"white_noise_snr_db": [10, 40], "pink_noise_snr_db": [10, 40]}}),
    "shift_gain": ("time shift ≤ ±2.5 s (circular) and gain ≤ ±6 dB",
                   {"train": {"time_shift_seconds": 2.5, "gain_db": 6}}),
    "mixup": ("mixup on every batch, α 0.4", {"train": {"mixup_prob": 1.0, "mixup_alpha": 0.4}}),
    "ema": ("EMA of the weights, decay 0.999", {"train": {"ema_decay": 0.999}}),
    "attention": ("SED attention head instead of GeM", {"model": {"head": "attention"}}),
    "specaugment_shift_gain": ("SpecAugment, time shift and gain together (the two gains above)",
                               {"train": {"freq_mask": 16, "time_mask": 20, "time_shift_seconds": 2.5, "gain_db": 6}}),
}


def run(name: str, folds: list[int], variants: list[str]) -> dict:
    work = WORK / "quality" / name
    base = yaml.safe_load((work / "config.yaml").read_text())
    config = {**base, "experiments": {f"abl_{v}": VARIANTS[v][1] or None for v in variants},
              "compare": {"reference": f"abl_{variants[0]}", "metric": "recording.accuracy"}}
    path = work / "ablation.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    results = Path(base["results_dir"])
    targets = [str(results / f"experiments/abl_{v}/oof/fold{k}/metrics.json") for v in variants for k in folds]
    with open(work / "ablation.log", "w") as log:  # Snakemake's and the jobs' progress
        subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "2",
                        *targets, "--configfile", str(path)], check=True, stdout=log, stderr=subprocess.STDOUT)
    out = {}
    for v in variants:
        accuracy = [json.loads((results / f"experiments/abl_{v}/oof/fold{k}/metrics.json").read_text())
                    ["recording"]["accuracy"] for k in folds]
        seconds = sum(float(pd.read_csv(results / f"benchmarks/{rule}/abl_{v}/fold{k}.tsv", sep="\t")["s"].iloc[0])
                      for rule in ("train_fold", "evaluate_fold") for k in folds)
        out[v] = {"what": VARIANTS[v][0], "folds": accuracy, "mean": float(np.mean(accuracy)),
                  "std": float(np.std(accuracy)), "job_seconds": seconds}
    reference = np.array(out[variants[0]]["folds"])
    for v in variants:
        diff = np.array(out[v]["folds"]) - reference
        out[v] |= {"diff_mean": float(diff.mean()), "diff_std": float(diff.std()), "won": int((diff > 0).sum())}
    return {"dataset": name, "folds": folds, "variants": out}


def table(result: dict) -> str:
    lines = [f"{result['dataset']}, folds {', '.join(map(str, result['folds']))}: recording top-1 accuracy",
             "", "| run | what changed | accuracy (mean ± std) | vs default, paired (mean ± std; folds won) | jobs |",
             "| --- | --- | --- | --- | --- |"]
    for v, r in result["variants"].items():
        lines.append(f"| {v} | {r['what']} | {r['mean']:.3f} ± {r['std']:.3f} | {r['diff_mean']:+.3f} ± {r['diff_std']:.3f}; "
                     f"{r['won']}/{len(r['folds'])} | {r['job_seconds']:.0f} s |")
    return "\n".join(lines)


def flat(result: dict) -> dict:
    """bench/results.json keys: ablation.<dataset>.<variant>.mean/std/diff_mean/diff_std."""
    return {f"ablation.{result['dataset']}.{v}.{key}": round(r[key], 4)
            for v, r in result["variants"].items() for key in ("mean", "std", "diff_mean", "diff_std")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a dataset bench/quality.py has run (its working folder is reused)")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="the first is the reference of the paired differences (give 'default' first)")
    args = parser.parse_args()
    result = run(args.name, args.folds, args.variants)
    out = WORK / "quality" / args.name / "ablation.json"
    if out.exists():  # keep the rows of earlier runs on the same folds (rerun one with --variants default NAME)
        earlier = json.loads(out.read_text())
        if earlier["folds"] == result["folds"]:
            result["variants"] = {v: (result["variants"].get(v) or earlier["variants"][v]) for v in VARIANTS
                                  if v in result["variants"] or v in earlier["variants"]}
    out.write_text(json.dumps(result, indent=2))
    print(table(result))


if __name__ == "__main__":
    main()
