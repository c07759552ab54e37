"""Benchmark 4: Snakemake's own overhead on a large dataset: planning time (`snakemake -n`)
and a no-op rerun for a synthetic index of 20 000 (and 200 000) recordings, 300 classes, 5
folds.

No audio is decoded, but the files must exist: the plan lists them, and each shard's manifest
(soundclf.manifests: key, path, size, mtime of its recordings) is checked while planning, so
that adding one recording reruns one shard. The benchmark writes the empty files and a
metadata table, lets a first `snakemake -n` write the manifests, writes every output of the
workflow as an empty file (older inputs first), then times Snakemake on that tree.

    python bench/workflow_overhead.py [N_RECORDINGS ...]"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time

import yaml

from common import REPO, WORK, markdown_table, record_figures
from soundclf.experiments import DEFAULT_NAME, load_config, mel_cache_dir

N_FOLDS, N_SHARDS = 5, 16


def build_tree(root, n_recordings: int, n_classes: int):
    shutil.rmtree(root, ignore_errors=True)
    audio = root / "data" / "audio"
    classes = [f"species{c:03d}" for c in range(n_classes)]
    rows = []
    for i in range(n_recordings):
        label = classes[i % n_classes]
        name = f"{label}/XC{i:06d}.ogg"
        (audio / label).mkdir(parents=True, exist_ok=True)
        (audio / name).touch()
        rows.append({"filename": name, "primary_label": label, "secondary_labels": "[]"})
    with open(root / "data" / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    config = {"data": {"layout": "metadata", "audio_dir": "data/audio", "metadata_csv": "data/metadata.csv"},
              "folds": {"n_folds": N_FOLDS}, "cache": {"n_shards": N_SHARDS}, "model": {"backbone": "lcnet_050"}}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(root, "-n")  # the first parse: the timm backbone check (cached afterwards) and the manifests
    mels = mel_cache_dir(load_config(root / "config.yaml"))
    exp = f"results/experiments/{DEFAULT_NAME}"
    outputs = ["results/index/recordings.csv", "results/index/classes.csv", "results/index/rejected.csv",
               "results/index/summary.json", "results/folds/folds.csv",
               *(f"{mels}/shard_{s:03d}.h5" for s in range(N_SHARDS)),
               *(f"{exp}/models/fold{k}/{n}" for k in range(N_FOLDS) for n in ("model.pt", "history.csv")),
               *(f"{exp}/oof/fold{k}/{n}" for k in range(N_FOLDS) for n in ("windows.csv", "metrics.json")),
               *(f"{exp}/oof/{n}" for n in ("oof_windows.csv", "cv_metrics.json", "per_class.csv", "thresholds.csv")),
               "results/report/input_data.png", f"{exp}/report/training_curves.png", f"{exp}/report/cv_metrics.csv",
               *(f"{exp}/report/{n}.png" for n in ("per_class", "confusion", "pr_curves", "examples")),
               "results/experiments/comparison.csv", "results/experiments/comparison.png"]
    now = time.time() + 1
    for rank, name in enumerate(outputs):  # in workflow order, each newer than what it depends on
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (now + rank, now + rank))


def snakemake(root, *args) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(root), "--cores", "2",
           "--configfile", str(root / "config.yaml"), *args]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return elapsed, result.stdout + result.stderr


def run(n_recordings: int = 20000, n_classes: int = 300) -> dict:
    root = WORK / f"overhead_{n_recordings}"
    build_tree(root, n_recordings, n_classes)
    plan, text = snakemake(root, "-n")
    nothing = "Nothing to be done" in text
    noop, _ = snakemake(root)
    empty_root = WORK / "overhead_empty"
    build_tree(empty_root, n_recordings, n_classes)
    shutil.rmtree(empty_root / "results")
    full_plan, text = snakemake(empty_root, "-n")
    jobs = text.split("total", 1)[1].split()[0] if "total" in text else "?"
    return {"n_recordings": n_recordings, "n_classes": n_classes, "plan_s": plan, "noop_s": noop,
            "nothing_to_do": nothing, "full_plan_s": full_plan, "full_plan_jobs": jobs}


def table(out: dict) -> str:
    return markdown_table(["what", "wall time"], [
        [f"`snakemake -n`, everything up to date ({out['n_recordings']:,} recordings, {out['n_classes']} classes, "
         f"{N_FOLDS} folds, {N_SHARDS} shards; says 'Nothing to be done': {out['nothing_to_do']})", f"{out['plan_s']:.1f} s"],
        ["`snakemake` no-op rerun (same tree)", f"{out['noop_s']:.1f} s"],
        [f"`snakemake -n` from scratch (plans {out['full_plan_jobs']} jobs)", f"{out['full_plan_s']:.1f} s"],
    ])


def flat(out: dict) -> dict:
    """bench/results.json keys: workflow_overhead.dry_run_<n>.seconds, .noop_<n>.seconds, .plan_from_scratch_<n>.seconds."""
    n = out["n_recordings"]
    return {f"workflow_overhead.dry_run_{n}.seconds": round(out["plan_s"], 2),
            f"workflow_overhead.noop_{n}.seconds": round(out["noop_s"], 2),
            f"workflow_overhead.plan_from_scratch_{n}.seconds": round(out["full_plan_s"], 2)}


if __name__ == "__main__":
    for n in map(int, sys.argv[1:] or ["20000"]):
        out = run(n)
        record_figures(flat(out))
        print(table(out))
