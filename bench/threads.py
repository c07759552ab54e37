"""Benchmark 11: threads per training job. The README's demo run (the whole workflow, all cores)
with `threads.train` and `threads.evaluate` at 1 (folds side by side) and at 2 (one fold at a
time on both cores), with its 4 folds and with 3 (where the last fold trains alone):

    python bench/threads.py [--folds 4 3] [--threads 1 2]

Each run starts from an empty working folder (the demo audio is generated in each)."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).resolve().parents[1] / "src")]

from common import WORK, markdown_table, record_figures, run_workflow  # noqa: E402


def job_seconds(workdir: Path, rule: str) -> float:
    """Summed wall seconds of a rule's jobs (their Snakemake benchmark files)."""
    files = sorted((workdir / "results" / "benchmarks" / rule).rglob("*.tsv"))
    return float(sum(pd.read_csv(f, sep="\t")["s"].sum() for f in files))


def run(folds: list[int], threads: list[int]) -> dict:
    rows = []
    for n_folds in folds:
        for n_threads in threads:
            workdir = WORK / "threads" / f"folds{n_folds}_threads{n_threads}"
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
            config = workdir / "threads.yaml"
            config.write_text(json.dumps({"folds": {"n_folds": n_folds},
                                          "threads": {"train": n_threads, "evaluate": n_threads}}))
            seconds = run_workflow(workdir, [str(config)])
            rows.append({"folds": n_folds, "threads": n_threads, "workflow_s": seconds,
                         "train_job_s": job_seconds(workdir, "train_fold"),
                         "evaluate_job_s": job_seconds(workdir, "evaluate_fold")})
    return {"rows": rows}


def table(out: dict) -> str:
    return markdown_table(
        ["folds", "threads per training/evaluation job", "whole demo workflow (wall)", "training jobs (sum)",
         "evaluation jobs (sum)"],
        [[r["folds"], r["threads"], f"{r['workflow_s']:.0f} s", f"{r['train_job_s']:.0f} s",
          f"{r['evaluate_job_s']:.0f} s"] for r in out["rows"]])


def flat(out: dict) -> dict:
    """bench/results.json keys: threads.folds<n>.threads<t>.workflow_s / .train_job_s / .evaluate_job_s."""
    return {f"threads.folds{r['folds']}.threads{r['threads']}.{key}": round(r[key], 1)
            for r in out["rows"] for key in ("workflow_s", "train_job_s", "evaluate_job_s")}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folds", type=int, nargs="+", default=[4, 3])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    out = run(args.folds, args.threads)
    (WORK / "threads" / "threads.json").write_text(json.dumps(out, indent=1))
    record_figures(flat(out))
    print(table(out))
