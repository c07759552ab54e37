"""Benchmark 2: the training input pipeline. Random 30 s crops (six 5 s segments at the
recipe's 128 mels / hop 512) per second from the training DataLoader reading the HDF5 cache,
against a dataset that decodes the audio and computes the log-mel of each crop on the fly;
with the loading in the main process and with 2 worker processes. The cache is measured as it
runs (its 32 recordings stay open with their chunk caches, as any dataset up to
mel_cache.OPEN_CACHE_BYTES would) and with every crop read from a freshly opened dataset (as
most crops of a much larger dataset are)."""
from __future__ import annotations

import shutil
import time

import pandas as pd
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset

import soundclf.mel_cache
from common import WORK, audio_set, markdown_table, record_figures
from soundclf.datasets import CropDataset, normalise_db, segment_frames
from soundclf.mel import LogMel, MelParams, floor_segments
from soundclf.mel_cache import MelCache, shard_path, write_shard

PARAMS = MelParams()
SEGMENTS = 6
BATCH = 16


class OnTheFlyCrops(Dataset):
    """What a notebook does: read a random 30 s of the file, log-mel it, scale it."""

    def __init__(self, files, n_classes: int):
        self.files = files
        self.frames = [sf.info(str(f)).frames for f in files]
        self.logmel = LogMel(PARAMS)
        self.seg_frames = segment_frames(PARAMS, 5.0)
        self.n_classes = n_classes

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        crop = 30 * PARAMS.sample_rate
        start = int(torch.randint(0, max(1, self.frames[i] - crop), (1,)))
        wave, _ = sf.read(str(self.files[i]), start=start, frames=crop, dtype="float32")
        mel = self.logmel.power_to_db(self.logmel.power_mel(torch.from_numpy(wave))).numpy()
        mel = floor_segments(mel[:, : SEGMENTS * self.seg_frames], PARAMS.top_db, self.seg_frames)
        return torch.from_numpy(normalise_db(mel))[None], torch.zeros(self.n_classes), torch.tensor(1.0)


def crops_per_second(dataset, workers: int, batches: int) -> float:
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=workers > 0)
    done = 0
    iterator = iter(loader)
    next(iterator)  # warm-up: worker start, file handles
    start = time.perf_counter()
    while done < batches * BATCH:
        try:
            x = next(iterator)[0]  # (input, targets, weight[, strong])
        except StopIteration:
            iterator = iter(loader)
            continue
        done += len(x)
    return done / (time.perf_counter() - start)


def fresh_datasets(dataset, workers: int, batches: int) -> float:
    """crops_per_second with no dataset kept open beyond the crop being read."""
    budget = soundclf.mel_cache.OPEN_CACHE_BYTES
    soundclf.mel_cache.OPEN_CACHE_BYTES = 0
    try:
        return crops_per_second(dataset, workers, batches)
    finally:
        soundclf.mel_cache.OPEN_CACHE_BYTES = budget


def run(n_files: int = 32, seconds: float = 90.0, batches: int = 12) -> dict:
    files = audio_set("loader", "ogg", n_files, seconds)
    mel_dir = WORK / "loader_cache"
    if not shard_path(mel_dir, 0).exists():
        shutil.rmtree(mel_dir, ignore_errors=True)
        write_shard(shard_path(mel_dir, 0), [(f.name, str(f)) for f in files], PARAMS)
    table = pd.DataFrame({"key": [f.name for f in files], "class_id": 0, "secondary_class_ids": [[]] * n_files})
    cached = CropDataset(table, MelCache(mel_dir, 1), 1, segment_frames(PARAMS, 5.0), SEGMENTS, top_db=PARAMS.top_db)
    on_the_fly = OnTheFlyCrops(files, 1)
    results = {}
    for workers in (0, 2):
        # the cache is ~30x faster: 4x the batches for as steady a figure
        results[(CACHE, workers)] = crops_per_second(cached, workers, 4 * batches)
        results[(FRESH, workers)] = fresh_datasets(cached, workers, 4 * batches)
        results[(ON_THE_FLY, workers)] = crops_per_second(on_the_fly, workers, batches)
    return {"results": results, "torch_threads": torch.get_num_threads()}


CACHE, FRESH, ON_THE_FLY = "HDF5 cache (CropDataset)", "HDF5 cache, fresh datasets", "decode + log-mel per crop"


def table(out: dict) -> str:
    r = out["results"]
    rows = []
    for workers in (0, 2):
        cached, fresh, baseline = (r[(name, workers)] for name in (CACHE, FRESH, ON_THE_FLY))
        rows.append([f"{workers} (main process)" if workers == 0 else workers, f"{cached:.1f}", f"{fresh:.1f}",
                     f"{baseline:.1f}", f"{cached / baseline:.1f}×", f"{fresh / baseline:.1f}×"])
    return markdown_table(["DataLoader workers", "cache: 30 s crops/s", "cache, every crop from a freshly opened "
                           "dataset: crops/s", "on the fly: 30 s crops/s", "cache ÷ on the fly",
                           "fresh datasets ÷ on the fly"], rows)


def flat(out: dict) -> dict:
    """bench/results.json keys: loader.workers<n>.cache_crops_per_s / .cache_fresh_crops_per_s /
    .on_the_fly_crops_per_s / .vs_on_the_fly / .fresh_vs_on_the_fly."""
    r, figures = out["results"], {}
    for workers in (0, 2):
        cached, fresh, baseline = (r[(name, workers)] for name in (CACHE, FRESH, ON_THE_FLY))
        figures |= {f"loader.workers{workers}.cache_crops_per_s": round(cached, 1),
                    f"loader.workers{workers}.cache_fresh_crops_per_s": round(fresh, 1),
                    f"loader.workers{workers}.on_the_fly_crops_per_s": round(baseline, 1),
                    f"loader.workers{workers}.vs_on_the_fly": round(cached / baseline, 2),
                    f"loader.workers{workers}.fresh_vs_on_the_fly": round(fresh / baseline, 2)}
    return figures

if __name__ == "__main__":
    out = run()
    record_figures(flat(out))
    print(table(out))
