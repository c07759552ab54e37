"""An archive of long field recordings predicted by the workflow in shards: wall time, hours
of audio per minute and each job's peak memory (Snakemake's benchmark files).

    python bench/archive.py WORKDIR [--hours 10] [--files 20] [--shards 4]

WORKDIR is a finished run of the demo (its fold models are used). The archive is `--files`
OGG files (32 kHz) of hours/files each under results/bench/archive/: two distinct recordings
are generated and copied, so the files decode like field recordings without encoding 10 h.
Prediction runs with predict.backend onnx and 2 decoding workers per shard job, one shard
job at a time (`--cores 1`: one torch thread beside the workers on the 2-core machine)."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from common import REPO, WORK, audio_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--hours", type=float, default=10.0)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args()
    seconds = args.hours * 3600 / args.files
    sources = audio_set("archive_source", "ogg", 2, seconds)
    archive = WORK / "archive" / f"{args.files}x{seconds:g}s"
    archive.mkdir(parents=True, exist_ok=True)
    for i in range(args.files):
        target = archive / f"site_{i % 4}" / f"rec_{i:03d}.ogg"
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            shutil.copy(sources[i % 2], target)
    config = args.workdir / "archive.yaml"
    config.write_text(yaml.safe_dump({"predict": {"audio_dir": str(archive), "labels_csv": None, "n_shards": args.shards,
                                                  "backend": "onnx", "num_workers": 2}, "threads": {"predict": 1}}))
    exp = args.workdir / "results/experiments/base"
    shutil.rmtree(exp / "predictions", ignore_errors=True)
    for onnx in exp.glob("models/fold*/model.onnx"):
        onnx.unlink()
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(args.workdir), "--cores", "1",
               "results/experiments/base/predictions/submission.csv", "--configfile", str(config)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - started
    benchmarks = args.workdir / "results/benchmarks"
    shards = [pd.read_csv(p, sep="\t").iloc[0] for p in sorted((benchmarks / "predict_shard/base").glob("shard_*.tsv"))]
    merge = pd.read_csv(benchmarks / "predict_recordings/base.tsv", sep="\t").iloc[0]
    rows = len(pd.read_csv(exp / "predictions/submission.csv", usecols=["row_id"]))
    print(f"{args.hours:g} h of audio in {args.files} OGG files of {seconds / 60:g} min, {args.shards} shards, "
          f"4 fold models (lcnet_050, ONNX), 2 decoding workers per shard: {rows} windows\n")
    print("| what | value |\n| --- | --- |")
    print(f"| workflow wall time (ONNX export of 4 folds, {args.shards} shard jobs one at a time, merge) | {wall:.0f} s |")
    print(f"| hours of audio per minute, whole workflow | {args.hours / (wall / 60):.1f} |")
    seconds_each = ", ".join(f"{s['s']:.0f}" for s in shards)
    peaks = ", ".join(f"{s['max_rss']:.0f}" for s in shards)
    print(f"| shard jobs: seconds each | {seconds_each} |")
    print(f"| shard jobs: peak memory (max RSS, MB) | {peaks} |")
    print(f"| merge (`predict_recordings`): seconds, peak memory (MB) | {merge['s']:.0f}, {merge['max_rss']:.0f} |")


if __name__ == "__main__":
    main()
