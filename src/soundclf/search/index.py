"""The vector index over archive window embeddings: one index file per embedding shard, and
queries merged over the shards, so a changed shard rebuilds only its own file.

Similarity is cosine: rows and queries are scaled to unit length, and the score is their dot
product. A shard up to EXACT_MAX_ROWS windows is searched exactly (one matrix product); a larger
one through a FAISS inverted file over int8 vectors (bench/RESULTS.md §15 has the figures that
chose both)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..atomic import atomic_path
from ..embedding.cache import shard_embeddings

# Up to here a shard is searched exactly: no index to train, exact results, ~11 ms per query at
# 30 000 windows (bench/RESULTS.md §15).
EXACT_MAX_ROWS = 100_000
# Above it, an inverted file: k-means lists (about 4 sqrt(rows), FAISS's rule of thumb, at most
# MAX_LISTS and at least TRAIN_ROWS_PER_LIST training rows each), trained on up to TRAIN_ROWS
# rows spread over the shard; rows stored as int8; a query scans its PROBES nearest lists (the
# default of search.probes). Against
# the HNSW graph it replaced (perch-hoplite's USearch settings) at 100 000 synthetic windows: a 9x
# faster build and half the bytes, at recall@100 0.73 against 0.81; 0.995 on real BirdNET
# embeddings and at 10 M windows, which fit this machine's memory (10 GB) and build in 13 min (§15).
MAX_LISTS, TRAIN_ROWS_PER_LIST, TRAIN_ROWS, PROBES = 4096, 39, 200_000, 64


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """A float32 copy of the rows scaled to unit length (all-zero rows stay zero)."""
    vectors = np.array(vectors, np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


def row_batches(arrays: Sequence[np.ndarray], rows: int = 10_000) -> Iterator[np.ndarray]:
    """The arrays' rows as unit float32 batches of at least `rows` (the last one less): the
    index takes them without a float32 copy of the whole shard, in batches large enough for
    its threads."""
    batch, size = [], 0
    for array in arrays:
        batch.append(array)
        size += len(array)
        if size >= rows:
            yield unit_rows(np.concatenate(batch))
            batch, size = [], 0
    if batch:
        yield unit_rows(np.concatenate(batch))


def n_lists(rows: int) -> int:
    return int(max(1, min(MAX_LISTS, 4 * np.sqrt(rows), rows // TRAIN_ROWS_PER_LIST)))


def inverted_file(arrays: Sequence[np.ndarray]):
    """A FAISS IVF index (int8 rows, inner product) over the arrays' unit rows, its lists
    trained on every step-th row of the shard."""
    import faiss

    rows = sum(len(a) for a in arrays)
    index = faiss.index_factory(arrays[0].shape[1], f"IVF{n_lists(rows)},SQ8", faiss.METRIC_INNER_PRODUCT)
    step, starts = max(1, rows // TRAIN_ROWS), np.cumsum([0] + [len(a) for a in arrays])
    index.train(unit_rows(np.concatenate([a[-start % step :: step] for a, start in zip(arrays, starts)])))
    for batch in row_batches(arrays):
        index.add(batch)
    return index


@dataclass
class ShardIndex:
    """The index of one shard: its recordings' keys and window counts (row r is window
    r - start of the recording it falls in), and either the unit rows themselves (exact) or
    an inverted file over them (approximate)."""

    keys: np.ndarray  # recording keys, in row order
    counts: np.ndarray  # windows per recording
    vectors: np.ndarray | None = None  # (rows, dim) float32 unit rows: exact search
    inverted: object | None = None  # faiss.IndexIVFScalarQuantizer: approximate search

    @classmethod
    def build(cls, recordings: Iterable[tuple[str, np.ndarray]], exact_max_rows: int = EXACT_MAX_ROWS) -> ShardIndex:
        """From (recording key, (windows, dim) embeddings) pairs."""
        recordings = list(recordings)
        keys, arrays = zip(*recordings) if recordings else ((), ())
        keys, counts = np.array(keys, dtype=str), np.array([len(a) for a in arrays], dtype=np.int64)
        if counts.sum() <= exact_max_rows:
            return cls(keys, counts, vectors=unit_rows(np.concatenate(arrays)) if arrays else np.zeros((0, 0), np.float32))
        return cls(keys, counts, inverted=inverted_file(arrays))

    @classmethod
    def from_shard(cls, shard_h5: str | Path, exact_max_rows: int = EXACT_MAX_ROWS) -> ShardIndex:
        """From an embedding cache shard (soundclf.embedding.cache: key -> (windows, dim))."""
        return cls.build(shard_embeddings(shard_h5), exact_max_rows)

    def __len__(self) -> int:
        return int(self.counts.sum())

    def save(self, path: str | Path) -> None:
        """One .npz file, written atomically (exact rows stored as float16, as in the cache)."""
        arrays = {"keys": self.keys, "counts": self.counts}
        if self.inverted is None:
            arrays["vectors"] = self.vectors.astype(np.float16)
        else:
            import faiss

            arrays["faiss"] = faiss.serialize_index(self.inverted)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> ShardIndex:
        with np.load(path) as npz:
            if "vectors" in npz:
                return cls(npz["keys"], npz["counts"], vectors=npz["vectors"].astype(np.float32))
            import faiss

            inverted = faiss.deserialize_index(npz["faiss"])
            if not isinstance(inverted, faiss.IndexIVF):  # an HNSW graph, as earlier versions built them
                raise ValueError(f"{path}: an index of the older kind (an HNSW graph); delete the file and run the "
                                 "workflow again, which rebuilds it as an inverted file")
            return cls(npz["keys"], npz["counts"], inverted=inverted)

    def search(self, queries: np.ndarray, k: int, probes: int = PROBES) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (q, k), best first; where the shard has fewer than k rows (or the
        lists searched hold fewer), the tail is score -inf, row -1. An inverted file scans the
        `probes` lists nearest each query (more: closer to exact search, slower)."""
        queries = unit_rows(np.atleast_2d(queries))
        scores = np.full((len(queries), k), -np.inf, np.float32)
        rows = np.full((len(queries), k), -1, np.int64)
        n = min(k, len(self))
        if n == 0:
            return scores, rows
        if self.inverted is None:
            sims = queries @ self.vectors.T
            top = np.argpartition(-sims, n - 1, axis=1)[:, :n]
            order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1, kind="stable")
            rows[:, :n] = np.take_along_axis(top, order, 1)
            scores[:, :n] = np.take_along_axis(sims, rows[:, :n], 1)
            return scores, rows
        import faiss

        dots, found = self.inverted.search(queries, n, params=faiss.SearchParametersIVF(nprobe=probes))
        scores[:, :n] = np.where(found >= 0, dots, -np.inf)  # row -1: the lists searched hold fewer than n
        rows[:, :n] = found
        return scores, rows

    def locate(self, rows: np.ndarray) -> list[tuple[str, int]]:
        """(recording key, window) of each row."""
        starts = np.cumsum(self.counts) - self.counts
        recording = np.searchsorted(starts, rows, side="right") - 1
        return [(str(self.keys[r]), int(row - starts[r])) for r, row in zip(recording, rows)]


class ArchiveIndex:
    """The shards' indexes searched as one: ids number the rows of shard 0, then shard 1, …"""

    def __init__(self, shards: Sequence[ShardIndex]):
        self.shards = list(shards)
        self.offsets = np.cumsum([0] + [len(s) for s in self.shards])

    @classmethod
    def load(cls, paths: Iterable[str | Path]) -> ArchiveIndex:
        return cls([ShardIndex.load(p) for p in paths])

    def search(self, queries: np.ndarray, k: int, probes: int = PROBES) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (q, k), best first: every shard's top k, merged. Where the
        archive has fewer than k windows, the tail is score -inf, id -1."""
        queries = np.atleast_2d(queries)
        parts = [shard.search(queries, k, probes) for shard in self.shards]
        if not parts:
            return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
        scores = np.concatenate([s for s, _ in parts], axis=1)
        ids = np.concatenate([np.where(r >= 0, r + offset, -1) for (_, r), offset in zip(parts, self.offsets)], axis=1)
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, best, 1), np.take_along_axis(ids, best, 1)

    def locate(self, ids: np.ndarray) -> list[tuple[str, int]]:
        """(recording key, window) of each id."""
        shard = np.searchsorted(self.offsets, ids, side="right") - 1
        return [self.shards[s].locate(np.array([i - self.offsets[s]]))[0] for s, i in zip(shard, ids)]

