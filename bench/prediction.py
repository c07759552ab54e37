"""Benchmark 3: prediction throughput on CPU (2 threads): hours of audio classified per
minute, with the demo's backbone and mel (lcnet_050, 64 mels, hop 1024) and with the
recipe's (efficientnet_b0, 128 mels, hop 512), and the share of time spent decoding,
computing the log-mel and running the model (from timing the stream up to each stage)."""
from __future__ import annotations

import numpy as np
import torch

from common import audio_set, markdown_table, timed
from soundclf.audio import stream_mono
from soundclf.datasets import segment_frames
from soundclf.mel import LogMel, MelParams
from soundclf.model import SoundClassifier
from soundclf.prediction import predict_file

SETUPS = {
    "lcnet_050, 64 mels / hop 1024 (demo)": ("lcnet_050", MelParams(n_mels=64, hop_length=1024)),
    "efficientnet_b0, 128 mels / hop 512 (recipe)": ("efficientnet_b0", MelParams()),
}


def run(minutes: float = 10.0, threads: int = 2) -> dict:
    torch.set_num_threads(threads)
    path = audio_set("soundscape", "ogg", 1, minutes * 60)[0]  # BirdCLEF soundscapes: 10 min OGG, 32 kHz
    hours = minutes / 60
    results = {}
    for name, (backbone, params) in SETUPS.items():
        torch.manual_seed(0)
        model = SoundClassifier(backbone, 20).eval()
        meta = {"segment_seconds": 5.0, "segment_frames": segment_frames(params, 5.0)}
        logmel = LogMel(params)
        t = {}
        predict_file(path, [model], meta, logmel, batch_size=64)  # warm-up
        with timed(t, "decode"):
            for _ in stream_mono(path, params.sample_rate):
                pass
        with timed(t, "decode+mel"):
            for _ in logmel.stream_db(stream_mono(path, params.sample_rate)):
                pass
        with timed(t, "all"):
            _, probabilities = predict_file(path, [model], meta, logmel, batch_size=64)
        assert np.isfinite(probabilities).all()
        results[name] = {"hours_per_minute": hours / (t["all"] / 60), "decode": t["decode"] / t["all"],
                         "mel": (t["decode+mel"] - t["decode"]) / t["all"],
                         "model": (t["all"] - t["decode+mel"]) / t["all"], "seconds": t["all"]}
    return {"results": results, "minutes": minutes, "threads": threads}


def table(out: dict) -> str:
    rows = [[name, f"{r['hours_per_minute']:.2f}", f"{r['seconds']:.1f}",
             f"{100 * r['decode']:.0f} %", f"{100 * r['mel']:.0f} %", f"{100 * r['model']:.0f} %"]
            for name, r in out["results"].items()]
    return markdown_table(["model and mel", "hours of audio per minute",
                           f"s for {out['minutes']:g} min", "decode alone ÷ total", "log-mel alone ÷ total",
                           "rest (model, windows) ÷ total"], rows) + (
        "\n\nThe shares time each stage alone (decode; decode + log-mel, minus decode) against the "
        "whole prediction. Decoding ahead in a background thread was tried and measured no faster "
        "(7.77 vs 7.98 h/min for lcnet_050 at commit 38a4646), so it was removed.")


if __name__ == "__main__":
    print(table(run()))
