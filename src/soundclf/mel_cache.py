"""The log-mel cache: HDF5 shards with one (n_mels, frames) dataset per recording."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np
import pandas as pd
from tqdm import tqdm

from . import __version__
from .atomic import atomic_path
from .audio import AudioDecodeError, CountedBlocks, probe, skip_unusable, stream_mono
from .mel import LogMel, MelParams
from .sources import shard_of

log = logging.getLogger(__name__)

SHARD_PATTERN = "shard_{:03d}.h5"


def shard_path(mel_dir: str | Path, shard: int) -> Path:
    return Path(mel_dir) / SHARD_PATTERN.format(shard)


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
    """Append one recording's log-mel frames, block by block, to a growable dataset."""
    params = logmel.params
    info = probe(path)
    expected = params.n_frames(math.ceil(info.frames * params.sample_rate / info.sample_rate))
    ds = h5.create_dataset(key, shape=(params.n_mels, 0), maxshape=(params.n_mels, None), dtype=dtype,
                           chunks=(params.n_mels, min(chunk_frames, expected)), compression=compression)
    audio = CountedBlocks(stream_mono(path, params.sample_rate))
    for frames in logmel.stream_db(audio):
        ds.resize(ds.shape[1] + frames.shape[1], axis=1)
        ds[:, -frames.shape[1]:] = frames
    ds.attrs["source"] = path
    ds.attrs["samples"] = audio.samples
    ds.attrs["duration"] = audio.samples / params.sample_rate


class MelCache:
    """Reads frame windows from the shards; each process opens its own file handles
    (h5py handles must not cross a fork, e.g. into DataLoader workers)."""

    def __init__(self, mel_dir: str | Path, n_shards: int):
        self.mel_dir = Path(mel_dir)
        self.n_shards = n_shards
        self._files: dict[int, h5py.File] = {}
        self._pid = os.getpid()

    def _dataset(self, key: str) -> h5py.Dataset:
        if os.getpid() != self._pid:  # forked: the inherited handles are not ours to use
            self._files, self._pid = {}, os.getpid()
        shard = shard_of(key, self.n_shards)
        if shard not in self._files:
            self._files[shard] = h5py.File(shard_path(self.mel_dir, shard), "r")
        try:
            return self._files[shard][key]
        except KeyError:
            raise KeyError(f"recording '{key}' is not in mel shard {shard_path(self.mel_dir, shard)}") from None

    def n_frames(self, key: str) -> int:
        return self._dataset(key).shape[1]

    def window(self, key: str, start: int, n: int) -> np.ndarray:
        """Frames [start, start+n) as float32 (n_mels, <=n): reads only that hyperslab."""
        return self._dataset(key)[:, start : start + n].astype(np.float32)

    def full(self, key: str) -> np.ndarray:
        return self._dataset(key)[()].astype(np.float32)

    def recordings(self) -> pd.DataFrame:
        """key and duration (s) of every recording in the shards, in shard then key order."""
        rows = []
        for shard in range(self.n_shards):
            with h5py.File(shard_path(self.mel_dir, shard), "r") as h5:
                h5.visititems(lambda name, obj: rows.append((name, float(obj.attrs["duration"])))
                              if isinstance(obj, h5py.Dataset) else None)
        return pd.DataFrame(rows, columns=["key", "duration"])

    def mel_params(self, key: str) -> dict:
        return json.loads(self._dataset(key).file.attrs["mel_params"])

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}
