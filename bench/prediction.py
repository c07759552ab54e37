"""Benchmark 3: prediction throughput on CPU (2 threads): hours of audio classified per
minute, with the demo's backbone and mel (lcnet_050, 64 mels, hop 1024) and with the
recipe's (efficientnet_b0, 128 mels, hop 512), decoding and log-mels in 0, 1 or 2 DataLoader
workers (predict.num_workers; 0: in the main process), and the share of time spent decoding
and computing the log-mel alone (timing the stream up to each stage, in the main process)."""
from __future__ import annotations

import numpy as np
import torch

from common import audio_set, markdown_table, timed
from soundclf.audio import stream_mono
from soundclf.datasets import segment_frames
from soundclf.mel import LogMel, MelParams
from soundclf.model import SoundClassifier
from soundclf.prediction import predict_files

SETUPS = {
    "lcnet_050, 64 mels / hop 1024 (demo)": ("lcnet_050", MelParams(n_mels=64, hop_length=1024)),
    "efficientnet_b0, 128 mels / hop 512 (recipe)": ("efficientnet_b0", MelParams()),
}
# (torch threads, DataLoader workers): the 2 cores to the model, or 1 to it and the rest to decoding
CONFIGS = ((2, 0), (1, 1), (1, 2))


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
        predict_files(files[:1], [model], meta, batch_size=64)  # warm-up
        with timed(t, "decode"):
            for f in files:
                for _ in stream_mono(f, params.sample_rate):
                    pass
        with timed(t, "decode+mel"):
            for f in files:
                for _ in logmel.stream_db(stream_mono(f, params.sample_rate)):
                    pass
        per_config, reference = {}, None
        for threads, workers in CONFIGS:
            torch.set_num_threads(threads)
            with timed(t, f"{threads}+{workers}"):
                table = predict_files(files, [model], meta, batch_size=64, num_workers=workers)
            scores = table.iloc[:, 1:].to_numpy()
            assert np.isfinite(scores).all()
            if reference is None:
                reference = scores
            np.testing.assert_allclose(scores, reference, atol=1e-5)  # the same predictions however decoded
            per_config[f"{threads}+{workers}"] = {"hours_per_minute": hours / (t[f"{threads}+{workers}"] / 60),
                                                  "seconds": t[f"{threads}+{workers}"]}
        results[name] = {"configs": per_config, "decode": t["decode"] / t["2+0"],
                         "mel": (t["decode+mel"] - t["decode"]) / t["2+0"]}
    return {"results": results, "minutes": minutes, "n_files": n_files}


def table(out: dict) -> str:
    rows = []
    for name, r in out["results"].items():
        c = r["configs"]
        best = max(c, key=lambda k: c[k]["hours_per_minute"])
        rows.append([name] + [f"{c[f'{t}+{w}']['hours_per_minute']:.2f}" for t, w in CONFIGS]
                    + [f"{c[best]['hours_per_minute'] / c['2+0']['hours_per_minute']:.2f}× ({best})",
                       f"{100 * r['decode']:.0f} %", f"{100 * r['mel']:.0f} %"])
    return markdown_table(["model and mel"] + [f"h/min: {t} torch thread(s), {w} workers" for t, w in CONFIGS]
                          + ["best ÷ (2 threads, 0 workers)", "decode alone ÷ total", "log-mel alone ÷ total"], rows) + (
        f"\n\n{out['minutes']:g} min of audio in {out['n_files']} OGG files (32 kHz) on the 2-core machine. Workers "
        "(predict.num_workers) decode and compute the log-mels of whole files in parallel (a file goes to one "
        "worker) while the main process runs the model on batches that cross file boundaries; the predictions "
        "are checked equal for every configuration. The shares time decoding and decoding + log-mel alone "
        "against the whole prediction with 2 threads and no worker. One core per decoding worker and the "
        "rest to torch is the split to give a decode-bound model; a compute-bound one wants every core for "
        "the model (or a GPU, where the workers keep it fed).")


if __name__ == "__main__":
    print(table(run()))
