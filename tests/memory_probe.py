"""Peak memory of caching and predicting one long recording, measured in a fresh process:
`python tests/memory_probe.py LONG_AUDIO WORK_DIR [--whole]` prints a JSON report.

Peaks are ru_maxrss (the process's high-water mark): the baseline is taken after imports and
a warm-up on a 320 s file (one full batch of 64 windows), so `*_mb - baseline_mb` is what the long file added. With --whole it
also measures the old way (decode and transform the whole file at once) for comparison."""
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from soundclf.audio import load_resampled
from soundclf.datasets import segment_frames
from soundclf.mel import LogMel, MelParams
from soundclf.mel_cache import write_shard
from soundclf.model import SoundClassifier, save_model
from soundclf.prediction import predict_folder

PARAMS = MelParams(n_mels=64, hop_length=1024)  # the demo config's mel (32 kHz)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(long_audio: Path, work: Path, whole: bool) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model_path = work / "model.pt"
    save_model(model_path, SoundClassifier("lcnet_050", 3), {
        "backbone": "lcnet_050", "classes": ["a", "b", "c"], "fold": 0, "mel_params": PARAMS.as_dict(),
        "segment_seconds": 5.0, "segment_frames": segment_frames(PARAMS, 5.0)})
    short = work / "warm_up.wav"  # 64 windows: one full prediction batch
    sf.write(short, (0.1 * np.random.default_rng(0).standard_normal(320 * 48000)).astype(np.float32), 48000)
    write_shard(work / "warm.h5", [("warm", str(short))], PARAMS)
    predict_folder([short], [model_path], batch_size=64, device=torch.device("cpu"))
    report = {"baseline_mb": peak_mb(), "seconds": sf.info(str(long_audio)).duration}

    start = time.perf_counter()
    write_shard(work / "long.h5", [("long", str(long_audio))], PARAMS)
    report["cache_mb"], report["cache_s"] = peak_mb(), time.perf_counter() - start
    start = time.perf_counter()
    submission = predict_folder([long_audio], [model_path], batch_size=64, device=torch.device("cpu"))
    report["predict_mb"], report["predict_s"] = peak_mb(), time.perf_counter() - start
    report["windows"] = len(submission)
    if whole:
        mel = LogMel(PARAMS)(torch.from_numpy(load_resampled(long_audio, PARAMS.sample_rate)))
        report["whole_file_mb"] = peak_mb()
        report["whole_file_frames"] = mel.shape[-1]
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]), "--whole" in sys.argv)))
