"""Benchmark 3: prediction throughput on the 2-core CPU: hours of audio classified per
minute, with the demo's backbone and mel (lcnet_050, 64 mels, hop 1024) and with the
recipe's (efficientnet_b0, 128 mels, hop 512), the model run by torch or by onnxruntime
(predict.backend), decoding and log-mels in the main process or in DataLoader workers
(predict.num_workers), and the share of time spent decoding and computing the log-mel alone
(timing the stream up to each stage, in the main process)."""
from __future__ import annotations

import numpy as np
import torch

from common import WORK, audio_set, markdown_table, record_figures, timed
from soundclf.audio import stream_mono
from soundclf.datasets import segment_frames
from soundclf.mel import LogMel, MelParams
from soundclf.model import SoundClassifier, save_model
from soundclf.onnx_model import OnnxScorer, export_onnx
from soundclf.prediction import predict_files, torch_scorer

SETUPS = {
    "lcnet_050, 64 mels / hop 1024 (demo)": ("lcnet_050", MelParams(n_mels=64, hop_length=1024)),
    "efficientnet_b0, 128 mels / hop 512 (recipe)": ("efficientnet_b0", MelParams()),
}
# (backend, model threads, DataLoader workers): the 2 cores to the model, or 1 to it and the
# rest to decoding
CONFIGS = (("torch", 2, 0), ("torch", 1, 2), ("onnx", 2, 0), ("onnx", 1, 2))


def run(minutes: float = 60.0, n_files: int = 6) -> dict:
    # BirdCLEF-like soundscapes: OGG, 32 kHz, `minutes` in all over n_files files
    files = audio_set("soundscape", "ogg", n_files, minutes * 60 / n_files)
    hours = minutes / 60
    results = {}
    for name, (backbone, params) in SETUPS.items():
        torch.set_num_threads(2)
        torch.manual_seed(0)
        model = SoundClassifier(backbone, 20).eval()
        meta = {"classes": [f"c{i}" for i in range(20)], "mel_params": params.as_dict(), "segment_seconds": 5.0,
                "segment_frames": segment_frames(params, 5.0), "short_clip": "loop"}
        logmel = LogMel(params)
        t = {}
        model_path, onnx_path = WORK / f"{backbone}.pt", WORK / f"{backbone}.onnx"
        save_model(model_path, model, meta | {"backbone": backbone, "loss": "bce"})
        export_onnx(model_path, onnx_path)
        predict_files(files[:1], [torch_scorer(model)], meta, batch_size=64)  # warm-up
        with timed(t, "decode"):
            for f in files:
                for _ in stream_mono(f, params.sample_rate):
                    pass
        with timed(t, "decode+mel"):
            for f in files:
                for _ in logmel.stream_db(stream_mono(f, params.sample_rate)):
                    pass
        per_config, reference = {}, None
        for backend, threads, workers in CONFIGS:
            torch.set_num_threads(threads)
            scorer = torch_scorer(model) if backend == "torch" else OnnxScorer(onnx_path, threads)
            key = f"{backend}.{threads}+{workers}"
            with timed(t, key):
                table = predict_files(files, [scorer], meta, batch_size=64, num_workers=workers)
            scores = table.iloc[:, 1:].to_numpy()
            assert np.isfinite(scores).all()
            if reference is None:
                reference = scores
            np.testing.assert_allclose(scores, reference, atol=1e-4)  # the same predictions however run
            per_config[key] = {"hours_per_minute": hours / (t[key] / 60), "seconds": t[key]}
        results[name] = {"configs": per_config, "decode": t["decode"] / t["torch.2+0"],
                         "mel": (t["decode+mel"] - t["decode"]) / t["torch.2+0"]}
    return {"results": results, "minutes": minutes, "n_files": n_files}


def table(out: dict) -> str:
    rows = []
    for name, r in out["results"].items():
        c = r["configs"]
        best = max(c, key=lambda k: c[k]["hours_per_minute"])
        rows.append([name] + [f"{c[f'{b}.{t}+{w}']['hours_per_minute']:.2f}" for b, t, w in CONFIGS]
                    + [f"{c[best]['hours_per_minute'] / c['torch.2+0']['hours_per_minute']:.2f}× ({best})",
                       f"{100 * r['decode']:.0f} %", f"{100 * r['mel']:.0f} %"])
    return markdown_table(["model and mel"] + [f"h/min: {b}, {t} thread(s), {w} workers" for b, t, w in CONFIGS]
                          + ["best ÷ (torch, 2 threads, 0 workers)", "decode alone ÷ total", "log-mel alone ÷ total"],
                          rows) + (
        f"\n\n{out['minutes']:g} min of audio in {out['n_files']} OGG files (32 kHz) on the 2-core machine. Workers "
        "(predict.num_workers) decode and compute the log-mels of whole files in parallel (a file goes to one "
        "worker) while the main process runs the model on batches that cross file boundaries; the predictions "
        "are checked equal for every configuration. The shares time decoding and decoding + log-mel alone "
        "against the whole prediction with torch on 2 threads and no worker. ONNX: each model exported by "
        "soundclf.onnx_model (checked within 1e-4 of torch) and run by onnxruntime on CPU. One core per decoding "
        "worker and the rest to the model suits a decode-bound model; a compute-bound one wants every core for "
        "the model (or a GPU, where the workers keep it fed).")


def flat(out: dict) -> dict:
    """bench/results.json keys: prediction.<demo|recipe>.<backend>.threads<t>.workers<w>.hours_per_min."""
    return {f"prediction.{name.rsplit('(', 1)[1].rstrip(')')}.{b}.threads{t}.workers{w}.hours_per_min": round(r["configs"][f"{b}.{t}+{w}"]["hours_per_minute"], 2)
            for name, r in out["results"].items() for b, t, w in CONFIGS}

if __name__ == "__main__":
    out = run()
    record_figures(flat(out))
    print(table(out))
