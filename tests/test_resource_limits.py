"""Long recordings: caching and prediction stream in bounded memory, and training reads only
the crop's frames from the cache."""
import json
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from hostile_corpus import write_long_wav
from soundclf.datasets import CropDataset
from soundclf.mel_cache import MelCache

HOUR = 3600


@pytest.mark.slow
def test_one_hour_recording_is_cached_and_predicted_in_bounded_memory(tmp_path):
    """A one-hour 48 kHz file: its samples alone are 660 MB as float32 (460 MB after
    resampling to 32 kHz); caching and predicting it must each add less than 150 MB."""
    long_wav = write_long_wav(tmp_path / "one hour.wav", HOUR, sr=48000)
    result = subprocess.run([sys.executable, str(REPO / "tests/memory_probe.py"), str(long_wav), str(tmp_path / "w")],
                            capture_output=True, text=True, timeout=900, env={"PYTHONPATH": str(REPO / "src")})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(report)
    assert report["cache_mb"] - report["baseline_mb"] < 150
    assert report["predict_mb"] - report["baseline_mb"] < 150
    assert report["windows"] == HOUR // 5
    with h5py.File(tmp_path / "w/long.h5") as h5:
        assert h5["long"].shape == (64, 1 + HOUR * 32000 // 1024)
        assert np.isfinite(h5["long"][:, -1000:]).all()


class CountingCache(MelCache):
    """A MelCache that records how many frames each read returns."""

    def __init__(self, *args):
        super().__init__(*args)
        self.frames_read = []

    def window(self, key, start, n):
        out = super().window(key, start, n)
        self.frames_read.append(out.shape[1])
        return out

    def full(self, key):
        out = super().full(key)
        self.frames_read.append(out.shape[1])
        return out


def test_training_crops_read_only_their_frames_from_a_long_recording(tmp_path):
    """A 30-minute recording is never read whole: each crop reads its own frames."""
    from soundclf.mel import MelParams
    from soundclf.mel_cache import shard_path, write_shard

    params = MelParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=16, fmin=50, fmax=7000)
    wav = write_long_wav(tmp_path / "long.wav", 30 * 60, sr=16000)
    write_shard(shard_path(tmp_path / "mels", 0), [("long", str(wav))], params)
    cache = CountingCache(tmp_path / "mels", 1)
    table = pd.DataFrame({"key": ["long"], "class_id": [0], "secondary_class_ids": [[]]})
    crops = CropDataset(table, cache, n_classes=1, seg_frames=313, n_segments=6)
    for _ in range(5):
        x, *_ = crops[0]
        assert x.shape[-1] == 6 * 313
    assert cache.frames_read == [6 * 313] * 5 and cache.n_frames("long") > 50 * 6 * 313
