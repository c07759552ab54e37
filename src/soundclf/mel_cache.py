"""The log-mel cache: HDF5 shards with one (n_mels, frames) dataset per recording."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable, Iterator

import h5py
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from . import __version__
from .atomic import atomic_path
from .audio import AudioDecodeError, CountedBlocks, skip_unusable, stream_mono
from .mel import LogMel, MelParams
from .sources import shard_of, shard_path

log = logging.getLogger(__name__)

CHUNK_CACHE_BYTES = 1 << 20  # HDF5's chunk cache per open dataset (its default)
OPEN_CACHE_BYTES = 256 << 20  # what the open datasets of one MelCache may hold in their chunk caches
WRITE_FRAMES = 4096  # frames written to HDF5 at once (1 MB of float16 at 128 mels)


def write_shard(
    out_path: str | Path,
    recordings: Iterable[tuple[str, str]],
    params: MelParams,
    dtype: str = "float16",
    chunk_frames: int = 256,
    compression: str | None = None,
    on_bad_audio: str = "skip",
) -> list[tuple[str, str, str]]:
    """Compute the log-mel (dB, no top_db floor) of every (key, path) and write them to one
    HDF5 shard, streaming: each recording is decoded, resampled and transformed a block at a
    time and appended to its dataset, so memory does not grow with a recording's length.

    The shard is written under a temporary name and renamed at the end, so a killed job
    leaves no file that looks complete. Returns the (key, path, reason) of skipped files.
    """
    recordings = list(recordings)
    logmel = LogMel(params)
    if params.waveform:  # a chunk of 256 samples would make a 5 s read touch ~1000 chunks
        chunk_frames = max(chunk_frames, params.sample_rate)
    skipped = []
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["mel_params"] = json.dumps(params.cache_key())
        h5.attrs["soundclf_version"] = __version__
        for key, path in tqdm(recordings, desc=Path(out_path).name, unit="file", mininterval=2):
            try:
                _write_recording(h5, key, path, logmel, dtype, chunk_frames, compression)
            except AudioDecodeError as err:
                skip_unusable(path, err, on_bad_audio)
                if key in h5:
                    del h5[key]
                skipped.append((key, path, err.reason))
    log.info("wrote %s: %d recordings, %d skipped", out_path, len(recordings) - len(skipped), len(skipped))
    return skipped


def _write_recording(h5: h5py.File, key: str, path: str, logmel: LogMel, dtype: str, chunk_frames: int,
                     compression: str | None) -> None:
    """Append one recording's log-mel frames, a few large blocks at a time, to a growable
    dataset (created at the first block, so a short clip gets a chunk no longer than itself)."""
    params = logmel.params
    audio = CountedBlocks(stream_mono(path, params.sample_rate))
    ds = None
    # the first piece is the whole recording, or at least a chunk long (the chunk's length)
    for frames in _gathered(logmel.stream_db(audio), max(WRITE_FRAMES, chunk_frames)):
        if ds is None:
            ds = h5.create_dataset(key, shape=(params.n_mels, 0), maxshape=(params.n_mels, None), dtype=dtype,
                                   chunks=(params.n_mels, min(chunk_frames, frames.shape[1])),
                                   compression=compression)
        frames = as_dtype(frames, ds.dtype)
        ds.resize(ds.shape[1] + frames.shape[1], axis=1)
        ds[:, -frames.shape[1]:] = frames
    ds.attrs["source"] = path
    ds.attrs["samples"] = audio.samples
    ds.attrs["duration"] = audio.samples / params.sample_rate


def _gathered(blocks: Iterable[np.ndarray], n_frames: int) -> Iterator[np.ndarray]:
    """Consecutive (n_mels, t) blocks joined into pieces of at least n_frames (the last may be
    shorter): each HDF5 write costs ~0.1 ms, whatever its size."""
    pending: list[np.ndarray] = []
    frames = 0
    for block in blocks:
        pending.append(block)
        frames += block.shape[1]
        if frames >= n_frames:
            yield np.concatenate(pending, axis=1)
            pending, frames = [], 0
    if pending:
        yield np.concatenate(pending, axis=1)


def as_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`values` in the dtype they are stored in or read as; float16 <-> float32 through torch,
    whose conversion is ~10x faster than NumPy's (or HDF5's) and rounds alike (to nearest)."""
    dtype = np.dtype(dtype)
    if values.dtype == dtype:
        return values
    if {values.dtype, dtype} == {np.dtype(np.float16), np.dtype(np.float32)}:
        return torch.from_numpy(np.ascontiguousarray(values)).to(getattr(torch, dtype.name)).numpy()
    return values.astype(dtype)


def cached_recordings(cache_dir: str | Path, n_shards: int) -> pd.DataFrame:
    """key and duration (s) of every recording in a cache's shards (mel and embedding caches
    alike: each recording a dataset with a duration attribute), in shard then key order."""
    rows = []
    for shard in range(n_shards):
        with h5py.File(shard_path(cache_dir, shard), "r") as h5:
            h5.visititems(lambda name, obj: rows.append((name, float(obj.attrs["duration"])))
                          if isinstance(obj, h5py.Dataset) else None)
    return pd.DataFrame(rows, columns=["key", "duration"])


class MelCache:
    """Reads frame windows from the shards; each process opens its own file handles
    (h5py handles must not cross a fork, e.g. into DataLoader workers)."""

    def __init__(self, mel_dir: str | Path, n_shards: int):
        self.mel_dir = Path(mel_dir)
        self.n_shards = n_shards
        self._files: dict[int, h5py.File] = {}
        # Datasets stay open with their chunk caches: a crop of an open dataset reads in a
        # quarter of the time of one freshly opened (bench/loader.py), up to OPEN_CACHE_BYTES.
        self._datasets: dict[str, h5py.Dataset] = {}
        self._open_bytes = 0
        self._pid = os.getpid()

    def _dataset(self, key: str) -> h5py.Dataset:
        if os.getpid() != self._pid:  # forked: the inherited handles are not ours to use
            self._files, self._datasets, self._open_bytes, self._pid = {}, {}, 0, os.getpid()
        if key in self._datasets:
            return self._datasets[key]
        shard = shard_of(key, self.n_shards)
        if shard not in self._files:
            self._files[shard] = h5py.File(shard_path(self.mel_dir, shard), "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
        try:
            dataset = self._files[shard][key]
        except KeyError:
            raise KeyError(f"recording '{key}' is not in mel shard {shard_path(self.mel_dir, shard)}") from None
        cache_bytes = min(CHUNK_CACHE_BYTES, dataset.nbytes)
        if self._open_bytes + cache_bytes > OPEN_CACHE_BYTES:  # close them all: crops are drawn at random
            self._datasets, self._open_bytes = {}, 0
        self._datasets[key] = dataset
        self._open_bytes += cache_bytes
        return dataset

    def n_frames(self, key: str) -> int:
        return self._dataset(key).shape[1]

    def window(self, key: str, start: int, n: int) -> np.ndarray:
        """Frames [start, start+n) as float32 (n_mels, <=n): reads only that hyperslab."""
        return as_dtype(self._dataset(key)[:, start : start + n], np.float32)

    def full(self, key: str) -> np.ndarray:
        return as_dtype(self._dataset(key)[()], np.float32)

    def recordings(self) -> pd.DataFrame:
        """key and duration (s) of every recording in the shards, in shard then key order."""
        return cached_recordings(self.mel_dir, self.n_shards)

    def mel_params(self, key: str) -> dict:
        return json.loads(self._dataset(key).file.attrs["mel_params"])

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files, self._datasets, self._open_bytes = {}, {}, 0
