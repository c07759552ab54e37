"""The embedding cache: per recording, the embeddings of its consecutive windows, in HDF5
shards (the mel cache's sharding: a recording's shard is a hash of its key)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Iterator

import h5py
import numpy as np
from tqdm import tqdm

from ..atomic import atomic_path
from ..audio import AudioDecodeError, CountedBlocks, skip_unusable, stream_mono
from ..sources import shard_of, shard_path
from .backends import DEFAULT_BACKEND, make_embedder
from .model import EmbeddingSpec, Embedder, window_starts

log = logging.getLogger(__name__)


def audio_windows(audio: CountedBlocks, spec: EmbeddingSpec) -> Iterator[np.ndarray]:
    """The embedding windows (window_starts) of a recording streaming in at the model's rate;
    the last one zero-padded."""
    hop, width = int(round(spec.hop_seconds * spec.sample_rate)), spec.window_samples
    buffer, offset, k = np.zeros(0, np.float32), 0, 0  # buffer[0] is sample `offset`
    for block in audio:
        buffer = np.concatenate([buffer, block])
        while k * hop + width <= offset + len(buffer):
            yield buffer[k * hop - offset : k * hop - offset + width]
            k += 1
        drop = k * hop - offset  # hop <= window: never beyond the buffer
        buffer, offset = buffer[drop:], offset + drop
    for start in window_starts(audio.samples, spec)[k:]:
        window = buffer[start - offset : start - offset + width]
        yield np.pad(window, (0, width - len(window)))


def embed_files(paths: Iterable[str | Path], embedder: Embedder) -> Iterator[tuple[int, np.ndarray | AudioDecodeError, float]]:
    """Per recording (not always in order): its index, its (windows, dim) embeddings or the
    AudioDecodeError that stopped it, and its decoded duration in seconds. The windows of
    consecutive recordings share batches: a 5 s clip has two or three windows, and a batch of 2
    costs the interpreter ~2.6x as much per window as a batch of 16 or 32 when two jobs share
    the cores."""
    batch, owners = [], []  # windows waiting for the interpreter, and whose they are
    parts: dict[int, list[np.ndarray]] = {}  # embeddings so far, per recording
    queued: list[tuple[int, float]] = []  # recordings whose last window is in the batch or done

    def run_batch():
        if batch:
            for owner, embedding in zip(owners, embedder(np.stack(batch))):
                parts[owner].append(embedding)
            batch.clear()
            owners.clear()
        for index, seconds in queued:
            yield index, np.stack(parts.pop(index)), seconds
        queued.clear()

    for index, path in enumerate(paths):
        parts[index] = []
        audio = CountedBlocks(stream_mono(path, embedder.spec.sample_rate))
        try:
            for window in audio_windows(audio, embedder.spec):
                batch.append(window)
                owners.append(index)
                if len(batch) == embedder.batch_size:
                    yield from run_batch()
        except AudioDecodeError as err:
            kept = [k for k, owner in enumerate(owners) if owner != index]
            batch[:], owners[:] = [batch[k] for k in kept], [owners[k] for k in kept]
            del parts[index]
            yield index, err, 0.0
            continue
        queued.append((index, audio.samples / embedder.spec.sample_rate))
    yield from run_batch()


def embed_file(path: str | Path, embedder: Embedder) -> tuple[np.ndarray, float]:
    """(windows, dim) embeddings of one recording and its decoded duration in seconds."""
    [(_, embeddings, seconds)] = embed_files([path], embedder)
    if isinstance(embeddings, AudioDecodeError):
        raise embeddings
    return embeddings, seconds


def write_shard(out_path: str | Path, recordings: Iterable[tuple[str, str]], spec: EmbeddingSpec,
                threads: int = 1, on_bad_audio: str = "skip", backend: str = DEFAULT_BACKEND,
                export_dir: str | Path | None = None) -> list[tuple[str, str, str]]:
    """Embed every (key, path) into one HDF5 shard (float16), written atomically; unusable
    audio is skipped (it is the index's to report) unless on_bad_audio is 'fail'. `backend`
    computes the embeddings (backends.make_embedder); the shard's attributes say which."""
    embedder = make_embedder(spec, backend, threads=threads, export_dir=export_dir)
    recordings = list(recordings)
    skipped = []
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["embedding"] = json.dumps(asdict(spec))
        h5.attrs["backend"] = backend
        results = embed_files([path for _, path in recordings], embedder)
        for index, embeddings, seconds in tqdm(results, desc=Path(out_path).name, unit="file", total=len(recordings)):
            key, path = recordings[index]
            if isinstance(embeddings, AudioDecodeError):
                skip_unusable(path, embeddings, on_bad_audio)
                skipped.append((key, path, embeddings.reason))
                continue
            h5.create_dataset(key, data=embeddings.astype(np.float16)).attrs["duration"] = seconds
    log.info("wrote %s: %d recordings, %d skipped (embeddings by %s)", out_path, len(recordings) - len(skipped),
             len(skipped), backend)
    return skipped


def shard_embeddings(shard_h5: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """(recording key, (windows, dim) embeddings as stored: float16) of every recording of one
    shard, in the shard's order (a key that is a path, "folder/file.ogg", is dataset file.ogg in
    group folder: every dataset is visited). Float16 keeps a whole shard in half the memory of
    float32 for those who hold it (the search index)."""
    with h5py.File(shard_h5, "r") as h5:
        keys = []
        h5.visititems(lambda key, item: keys.append(key) if isinstance(item, h5py.Dataset) else None)
        for key in keys:
            yield key, h5[key][()]


class EmbeddingCache:
    """Reads a recording's embeddings from the shards (each process opens its own handles)."""

    def __init__(self, cache_dir: str | Path, n_shards: int):
        self.cache_dir, self.n_shards = Path(cache_dir), n_shards
        self._files: dict[int, h5py.File] = {}
        self._pid = os.getpid()

    def embeddings(self, key: str) -> np.ndarray:
        if os.getpid() != self._pid:
            self._files, self._pid = {}, os.getpid()
        shard = shard_of(key, self.n_shards)
        if shard not in self._files:
            self._files[shard] = h5py.File(shard_path(self.cache_dir, shard), "r")
        try:
            return self._files[shard][key][()].astype(np.float32)
        except KeyError:
            raise KeyError(f"recording '{key}' is not in {shard_path(self.cache_dir, shard)}") from None
