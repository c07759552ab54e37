"""Run every benchmark and write bench/RESULTS.md: `python bench/run.py` (add --quick for a
smaller, faster run to check the scripts). Figures are ratios taken in the same run."""
from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "src")]

import ablation  # noqa: E402
import cache_build  # noqa: E402
import embedding  # noqa: E402
import input_loss  # noqa: E402
import quality  # noqa: E402
import loader  # noqa: E402
import prediction  # noqa: E402
import self_training  # noqa: E402
import threads  # noqa: E402
import workflow_overhead  # noqa: E402
from common import REPO, WORK, machine, record_figures  # noqa: E402

GPU_NOTE = ("Not measured: this project had no GPU machine available when the benchmarks ran "
            "(the device tool reported none could be started, and CI has none). The training loop "
            "uses AMP and channels-last on CUDA; measuring samples/s with and without them, and the "
            "loader's share of step time, is left for a run on a GPU node.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small inputs: checks the scripts, figures not for reporting")
    parser.add_argument("--out", default=str(Path(__file__).parent / "RESULTS.md"))
    parser.add_argument("--xenocanto", default="/work/data/xenocanto",
                        help="real Xeno-canto MP3 dataset written by bench/prepare_xenocanto.py")
    args = parser.parse_args()
    q = args.quick
    # quality.py takes tens of minutes per dataset: its own run writes the JSON collected here
    qualities = [json.loads(p.read_text()) for p in sorted((WORK / "quality").glob("*/quality.json"))]
    ablations = [json.loads(p.read_text()) for p in sorted((WORK / "quality").glob("*/ablation.json"))]
    self_trainings = [json.loads(p.read_text()) for p in sorted((WORK / "self_training").glob("*/self_training.json"))]
    embedding_json = WORK / "embedding" / "embedding.json"  # bench/embedding.py (needs the birdnet extra)
    embeddings = [json.loads(embedding_json.read_text())] if embedding_json.exists() else []
    threads_json = WORK / "threads" / "threads.json"  # bench/threads.py: four demo runs, ~12 min
    thread_runs = [json.loads(threads_json.read_text())] if threads_json.exists() else []
    cache = cache_build.run(n_files=3 if q else 16, seconds=20 if q else 60)
    loading = loader.run(n_files=6 if q else 32, seconds=40 if q else 90, batches=2 if q else 12)
    predicting = prediction.run(minutes=6 if q else 60)
    overheads = [workflow_overhead.run(n_recordings=n, n_classes=20 if q else 300) for n in ([500] if q else [20000, 200000])]
    sections = [
        ("1. Mel cache build", "python bench/cache_build.py", cache_build.table(cache)),
        ("2. Training input pipeline", "python bench/loader.py", loader.table(loading)),
        ("3. Prediction throughput (CPU, 2 cores)", "python bench/prediction.py", prediction.table(predicting)),
        ("4. Workflow overhead", "python bench/workflow_overhead.py 20000 200000", "\n\n".join(
            workflow_overhead.table(o) for o in overheads)),
        ("5. GPU training", "-", GPU_NOTE),
        ("6. Real MP3 field recordings kept by the index", f"python bench/input_loss.py {args.xenocanto}",
         input_loss.table(input_loss.run(args.xenocanto)) if Path(args.xenocanto).is_dir() else
         "Not run: prepare the dataset first with `python bench/prepare_xenocanto.py` (see its docstring)."),
        ("7. Model quality on real recordings", "python bench/quality.py NAME DATA_DIR",
         "\n\n".join(quality.table(r) for r in qualities) or
         "Not run: `python bench/quality.py esc10 /work/data/esc10` (and xenocanto) writes the figures."),
        ("8. CNN ablation on real recordings", "python bench/ablation.py NAME --folds 0 1 2",
         "\n\n".join(ablation.table(r) for r in ablations) or
         "Not run: after bench/quality.py, `python bench/ablation.py esc10` writes the figures."),
        ("9. Self-training on the demo", "python bench/self_training.py [--name NAME --start-from demo --transform KEY=VALUE ...]",
         "\n\n".join(self_training.table(r) for r in self_trainings) or
         "Not run: `python bench/self_training.py` writes the figures."),
        ("10. Embedding throughput (BirdNET V2.4, CPU)", "python bench/embedding.py [AUDIO_DIR]",
         "\n\n".join(embedding.table(r) for r in embeddings) or
         "Not run: `python bench/embedding.py` (the birdnet extra and the Xeno-canto set) writes the figures."),
        ("11. Threads per training job", "python bench/threads.py",
         "\n\n".join(threads.table(r) for r in thread_runs) or "Not run: `python bench/threads.py` writes the figures."),
    ]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    lines = ["# Benchmarks", "",
             f"Written by `python bench/run.py{' --quick' if q else ''}` on {datetime.date.today()} at commit {commit}.",
             f"Machine: {machine()}.", ""]
    for title, command, body in sections:
        lines += [f"## {title}", "", f"Command: `{command}` (or all: `python bench/run.py`)." if command != "-" else "", "",
                  body, ""]
    Path(args.out).write_text("\n".join(lines))
    figures = {k: v for r in qualities for k, v in quality.flat(r).items()}
    figures |= cache_build.flat(cache) | loader.flat(loading) | prediction.flat(predicting)
    figures |= {k: v for o in overheads for k, v in workflow_overhead.flat(o).items()}
    figures |= {k: v for r in ablations for k, v in ablation.flat(r).items()}
    figures |= {k: v for r in self_trainings for k, v in self_training.flat(r).items()}
    figures |= {k: v for r in embeddings for k, v in embedding.flat(r).items()}
    figures |= {k: v for r in thread_runs for k, v in threads.flat(r).items()}
    record_figures(figures)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
