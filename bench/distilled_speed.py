"""Prediction speed of a distilled CNN against its teacher (an embedding probe), on one CPU
core, the same files in one run: the student's fold models through the workflow's prediction
(torch, and onnxruntime on their ONNX exports), the teacher's fold probes through theirs
(BirdNET embeddings + probe). Both predict every 5 s window of each file and average their
fold models, as `predict_shard` does.

    python bench/distilled_speed.py /work/runs/xc/results distilled birdnet_anchored_bags \\
        /work/data/xenocanto/train_audio --files 40

Writes results/bench/distilled_speed.json and the prediction.distilled_vs_teacher.* keys of
bench/results.json (speedup: the teacher's seconds over the student's, the faster backend)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import soundfile  # noqa: F401  (loaded before torch, as the workflow's scripts do)
import torch

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).resolve().parents[1] / "src")]
from common import WORK, record_figures  # noqa: E402
from soundclf.audio import probe  # noqa: E402
from soundclf.embedding.probe import predict_probe_folder  # noqa: E402
from soundclf.onnx_model import export_onnx  # noqa: E402
from soundclf.prediction import predict_folder  # noqa: E402


def seconds_of(run) -> tuple[float, object]:
    start = time.perf_counter()
    out = run()
    return time.perf_counter() - start, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="the workflow's results folder")
    ap.add_argument("student", help="the distilled CNN experiment")
    ap.add_argument("teacher", help="its teacher, an embedding_probe experiment")
    ap.add_argument("audio_dir", type=Path)
    ap.add_argument("--files", type=int, default=40, help="how many files (the first, sorted)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    files = sorted(p for p in args.audio_dir.rglob("*") if p.suffix.lower() in {".mp3", ".wav", ".ogg", ".flac"})
    files = files[:args.files]
    audio_hours = sum(probe(f).duration for f in files) / 3600
    folds = sorted((args.results / f"experiments/{args.student}/models").glob("fold*/model.pt"))
    probes = sorted((args.results / f"experiments/{args.teacher}/models").glob("fold*/model.pt"))
    out_dir = WORK / "distilled_speed"
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx = [out_dir / f"{args.student}_{p.parent.name}.onnx" for p in folds]
    for model, path in zip(folds, onnx):
        export_onnx(model, path)
    predict_folder(files[:1], folds, batch_size=16)  # warm-up: imports, first allocations
    runs = {
        "student_torch": lambda: predict_folder(files, folds, batch_size=16, device=torch.device("cpu")),
        "student_onnx": lambda: predict_folder(files, folds, batch_size=16, device=torch.device("cpu"),
                                               onnx_paths=onnx),
        "teacher": lambda: predict_probe_folder(files, probes, threads=1),
    }
    seconds, windows = {}, {}
    for name, run in runs.items():
        seconds[name], table = seconds_of(run)
        windows[name] = len(table)
        print(f"{name}: {seconds[name]:.1f} s for {audio_hours:.2f} h of audio ({len(table)} windows)", flush=True)
    student = min(seconds["student_torch"], seconds["student_onnx"])
    result = {"files": len(files), "audio_hours": audio_hours, "seconds": seconds, "windows": windows,
              "real_time_factor": {k: audio_hours * 3600 / v for k, v in seconds.items()},
              "speedup": seconds["teacher"] / student, "student_folds": len(folds), "teacher_folds": len(probes),
              "threads": 1}
    (out_dir.parent / "distilled_speed.json").write_text(json.dumps(result, indent=1))
    record_figures({"prediction.distilled_vs_teacher.speedup": round(result["speedup"], 2),
                    "prediction.distilled_vs_teacher.student_real_time": round(audio_hours * 3600 / student, 1),
                    "prediction.distilled_vs_teacher.teacher_real_time":
                        round(result["real_time_factor"]["teacher"], 1)})
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
