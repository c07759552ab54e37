"""Vector search over archive embeddings (soundclf.search.index): query time, recall@100 against
exact search, build time and size, on synthetic BirdNET-shaped windows (dim 1024) and on a real
archive's embedding cache.

    python bench/search_speed.py [--compare 200000] [--sizes 1000000] [--exact-int8 10000000]
                                 [--ivf 10000000] [--archive CACHE_DIR]

--compare: USearch, FAISS and hnswlib HNSW graphs (same settings; `pip install usearch hnswlib`
for the two soundclf does not use) on N windows, against exact
search. --sizes: soundclf's approximate shard index (an inverted file) on N windows. --exact-int8: exact search over N
windows stored as int8 on disk and scanned in chunks (the size where no graph fits or builds
here). --ivf: FAISS inverted-file indexes (int8 rows in memory; PQ codes re-scored from int8
on disk) on N windows generated in chunks, the sizes where no HNSW graph builds here. --archive: an embedding cache (shard_*.h5 as the embedding stage writes them; a
recording's label is the first folder of its key) searched as soundclf searches it, and cosine
against inner product scored by same-label precision@10.

Synthetic windows are not uniform noise, where every neighbour is as far as any other and
recall means nothing: they are a mixture of CENTRES clusters (call types), each window its
centre plus variation in a low-dimensional subspace plus a little noise, scaled to unit length.
Queries are fresh draws of the same mixture."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from common import WORK, machine, markdown_table, record_figures

sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
from soundclf.embedding.cache import shard_embeddings  # noqa: E402
from soundclf.search.index import PROBES, TRAIN_ROWS, ArchiveIndex, ShardIndex, n_lists, unit_rows  # noqa: E402

DIM, K, N_QUERIES = 1024, 100, 100
# The HNSW graphs compared: perch-hoplite's default USearch settings (connectivity 16,
# expansion_add 256, expansion_search 128)
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 16, 256, 128
# Windows vary around their centre mostly along a few directions (embeddings are not isotropic:
# a window's nearest neighbours differ from it in what the call does, not in every dimension),
# plus a little noise in all; norms against the unit centre: variation 0.6, noise 0.2.
CENTRES, VARIATION_DIM, VARIATION, NOISE = 2048, 32, 0.6, 0.2
CHUNK = 100_000  # rows generated or scanned at a time (400 MB as float32)
# Inverted files at sizes no HNSW graph builds here, with soundclf's shard index settings (its
# lists for n windows, PROBES, TRAIN_ROWS); and for PQ, the bytes of a code and the candidates
# re-scored from int8 rows
PQ_BYTES, RERANK = 64, 1000


def mixture() -> tuple[np.ndarray, np.ndarray]:
    """The fixed centres (unit rows) and the orthonormal basis of the variation within them."""
    rng = np.random.default_rng(0)
    return unit_rows(rng.standard_normal((CENTRES, DIM))), np.linalg.qr(rng.standard_normal((DIM, VARIATION_DIM)))[0].T


def clustered(n: int, seed: int, dtype=np.float16) -> np.ndarray:
    """n unit windows of the mixture (seed picks the draws)."""
    centres, basis = mixture()
    out = np.empty((n, DIM), dtype)
    for start in range(0, n, CHUNK):
        out[start : start + CHUNK] = clustered_chunk(centres, basis, min(CHUNK, n - start), seed * 100_003 + start)
    return out


def clustered_chunk(centres: np.ndarray, basis: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    variation = rng.standard_normal((n, VARIATION_DIM), np.float32) @ (basis * np.float32(VARIATION / np.sqrt(VARIATION_DIM)))
    noise = rng.standard_normal((n, DIM), np.float32) * np.float32(NOISE / np.sqrt(DIM))
    return unit_rows(centres[rng.integers(len(centres), size=n)] + variation + noise)


def exact_top_k(chunks, queries: np.ndarray, k: int = K) -> np.ndarray:
    """Ids of the k best rows per query over float32-able chunks (row offsets follow on)."""
    best_scores = np.full((len(queries), 0), -np.inf, np.float32)
    best_ids = np.zeros((len(queries), 0), np.int64)
    offset = 0
    for chunk in chunks:
        sims = queries @ chunk.astype(np.float32).T
        best_scores = np.concatenate([best_scores, sims], axis=1)
        best_ids = np.concatenate([best_ids, np.broadcast_to(np.arange(offset, offset + len(chunk)), sims.shape)], axis=1)
        keep = np.argpartition(-best_scores, k - 1, axis=1)[:, :k]
        best_scores, best_ids = np.take_along_axis(best_scores, keep, 1), np.take_along_axis(best_ids, keep, 1)
        offset += len(chunk)
    return best_ids  # recall compares sets: the order within the k does not matter


def in_chunks(vectors: np.ndarray):
    return (vectors[i : i + CHUNK] for i in range(0, len(vectors), CHUNK))


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def query_times(search, queries: np.ndarray) -> tuple[float, float]:
    """(ms per query one at a time, ms per query in one batch of all)."""
    start = time.perf_counter()
    for q in queries:
        search(q[None, :])
    single = (time.perf_counter() - start) / len(queries) * 1000
    start = time.perf_counter()
    search(queries)
    return single, (time.perf_counter() - start) / len(queries) * 1000


def graphs(dim: int) -> dict:
    """name -> (build(vectors) -> index, search(index, queries, k) -> ids, save(index, path))."""
    import faiss
    import hnswlib
    from usearch.index import Index

    def usearch_build(dtype):
        def build(vectors):
            index = Index(ndim=dim, metric="ip", dtype=dtype, connectivity=CONNECTIVITY,
                          expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)
            index.add(np.arange(len(vectors)), vectors)
            return index
        return build

    def faiss_build(make):
        def build(vectors):
            index = make()
            index.hnsw.efConstruction, index.hnsw.efSearch = EXPANSION_ADD, EXPANSION_SEARCH
            index.train(vectors)
            index.add(vectors)
            return index
        return build

    def hnswlib_build(vectors):
        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(len(vectors), ef_construction=EXPANSION_ADD, M=CONNECTIVITY)
        index.add_items(vectors, np.arange(len(vectors)))
        index.set_ef(EXPANSION_SEARCH)
        return index

    def usearch_search(index, queries, k):
        return np.reshape(index.search(queries, k).keys, (len(queries), -1))

    def faiss_search(index, queries, k):
        return index.search(queries, k)[1]

    def hnswlib_search(index, queries, k):
        return index.knn_query(queries, k)[0]

    ip = faiss.METRIC_INNER_PRODUCT
    return {
        "usearch f16": (usearch_build("f16"), usearch_search, lambda i, p: i.save(str(p))),
        "usearch i8": (usearch_build("i8"), usearch_search, lambda i, p: i.save(str(p))),
        "faiss HNSWFlat f32": (faiss_build(lambda: faiss.IndexHNSWFlat(dim, CONNECTIVITY, ip)), faiss_search,
                               lambda i, p: faiss.write_index(i, str(p))),
        "faiss HNSWSQ f16": (faiss_build(lambda: faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, CONNECTIVITY, ip)),
                             faiss_search, lambda i, p: faiss.write_index(i, str(p))),
        "hnswlib f32": (hnswlib_build, hnswlib_search, lambda i, p: i.save_index(str(p))),
    }


def compare(n: int) -> list[dict]:
    """Each library's HNSW graph on the same n windows and queries."""
    vectors, queries = clustered(n, seed=1).astype(np.float32), clustered(N_QUERIES, seed=2, dtype=np.float32)
    truth = exact_top_k(in_chunks(vectors), queries)
    rows = []
    for name, (build, search, save) in graphs(DIM).items():
        start = time.perf_counter()
        index = build(vectors)
        build_s = time.perf_counter() - start
        single, batched = query_times(lambda q: search(index, q, K), queries)
        path = WORK / "search" / "graph.bin"
        save(index, path)
        rows.append({"library": name, "n": n, "build_s": build_s, "query_ms": single, "batch_query_ms": batched,
                     "recall_at_100": recall(search(index, queries, K), truth),
                     "bytes_per_vector": path.stat().st_size / n})
        path.unlink()
        del index
        print(rows[-1], flush=True)
    exact = ShardIndex.build([("all", vectors)], exact_max_rows=n)
    single, batched = query_times(lambda q: exact.search(q, K), queries)
    rows.append({"library": "exact (numpy, float32)", "n": n, "build_s": 0.0, "query_ms": single,
                 "batch_query_ms": batched, "recall_at_100": 1.0, "bytes_per_vector": 4 * DIM})
    print(rows[-1], flush=True)
    return rows


def soundclf_index(n: int) -> dict:
    """soundclf's approximate shard index (FAISS inverted file, int8) on n windows, saved and
    loaded as a file."""
    vectors, queries = clustered(n, seed=1), clustered(N_QUERIES, seed=2, dtype=np.float32)
    truth = exact_top_k(in_chunks(vectors), queries)
    exact_single, exact_batched = query_times(lambda q: exact_top_k(in_chunks(vectors), q), queries[:10])
    start = time.perf_counter()
    # recordings of 1 000 windows (50 min at hop 3 s), as views: no copy of the windows
    index = ShardIndex.build([(f"rec{i}", vectors[i : i + 1000]) for i in range(0, n, 1000)], exact_max_rows=0)
    build_s = time.perf_counter() - start
    del vectors
    path = WORK / "search" / f"shard_{n}.npz"
    index.save(path)
    del index
    index = ShardIndex.load(path)
    single, batched = query_times(lambda q: index.search(q, K), queries)
    row = {"library": f"soundclf ShardIndex (faiss IVF{n_lists(n)},SQ8, {PROBES} probes)", "n": n, "build_s": build_s, "query_ms": single,
           "batch_query_ms": batched, "recall_at_100": recall(index.search(queries, K)[1], truth),
           "bytes_per_vector": path.stat().st_size / n,
           "exact_f16_chunked_query_ms": exact_single, "exact_f16_chunked_batch_query_ms": exact_batched}
    path.unlink()
    print(row, flush=True)
    return row


def exact_int8(n: int) -> dict:
    """Exact search over n windows kept as int8 (x127) on disk, scanned in chunks; recall
    against exact float32 search, computed while the windows are generated."""
    centres, basis = mixture()
    queries = clustered(N_QUERIES, seed=2, dtype=np.float32)
    path = WORK / "search" / f"int8_{n}.bin"

    def generated():
        with open(path, "wb") as f:
            for start in range(0, n, CHUNK):
                chunk = clustered_chunk(centres, basis, min(CHUNK, n - start), 1 * 100_003 + start)
                np.round(chunk * 127).astype(np.int8).tofile(f)
                yield chunk

    start = time.perf_counter()
    truth = exact_top_k(generated(), queries)
    generate_s = time.perf_counter() - start

    def scanned():
        with open(path, "rb") as f:
            while len(chunk := np.fromfile(f, np.int8, CHUNK * DIM)):
                yield chunk.reshape(-1, DIM)

    # a single query scans all n windows (seconds): 5 of them, not 100
    single, _ = query_times(lambda q: exact_top_k(scanned(), q), queries[:5])
    start = time.perf_counter()
    found = exact_top_k(scanned(), queries)
    batched = (time.perf_counter() - start) / len(queries) * 1000
    row = {"library": "exact int8 on disk (numpy, chunked)", "n": n, "build_s": generate_s, "query_ms": single,
           "batch_query_ms": batched, "recall_at_100": recall(found, truth), "bytes_per_vector": DIM,
           "single_queries": 5}
    path.unlink()
    print(row, flush=True)
    return row


def ivf(n: int) -> list[dict]:
    """Two FAISS inverted-file indexes over n windows, built while the windows are generated (n
    float32 windows do not fit in memory), on one coarse quantizer (soundclf's n_lists(n)
    k-means centres trained on the first TRAIN_ROWS windows; each window assigned once, for both):
    - IVF-SQ8: each window as 1 024 int8 values in memory;
    - IVF-PQ: PQ_BYTES bytes per window in memory, and the top RERANK candidates re-scored from
      the windows' int8 rows in a file on disk (read through a memory map).
    Both search the PROBES nearest lists. Recall against exact float32 search, computed on
    the same pass."""
    import faiss
    from faiss.contrib.ivf_tools import add_preassigned

    centres, basis = mixture()
    queries = clustered(N_QUERIES, seed=2, dtype=np.float32)
    path = WORK / "search" / f"ivf_int8_{n}.bin"
    quantizer, lists = faiss.IndexFlatIP(DIM), n_lists(n)
    indexes = {"sq8": faiss.IndexIVFScalarQuantizer(quantizer, DIM, lists, faiss.ScalarQuantizer.QT_8bit,
                                                    faiss.METRIC_INNER_PRODUCT),
               "pq": faiss.IndexIVFPQ(quantizer, DIM, lists, PQ_BYTES, 8, faiss.METRIC_INNER_PRODUCT)}
    seconds = {"assign": 0.0, "sq8": 0.0, "pq": 0.0, "train_quantizer": 0.0}

    def timed(what, call):
        start = time.perf_counter()
        result = call()
        seconds[what] += time.perf_counter() - start
        return result

    def generated():
        with open(path, "wb") as f:
            for start in range(0, n, CHUNK):
                chunk = clustered_chunk(centres, basis, min(CHUNK, n - start), 1 * 100_003 + start)
                np.round(chunk * 127).astype(np.int8).tofile(f)
                if start == 0:  # the training sample: the first TRAIN_ROWS windows
                    sample = np.concatenate([chunk] + [clustered_chunk(centres, basis, CHUNK, 1 * 100_003 + s)
                                                       for s in range(CHUNK, TRAIN_ROWS, CHUNK)])
                    timed("train_quantizer", lambda: indexes["sq8"].train(sample))
                    for name, index in indexes.items():
                        timed(name, lambda: index.train(sample))  # the quantizer is trained: each its own codes
                    del sample
                lists = timed("assign", lambda: quantizer.search(chunk, 1)[1].ravel())
                for name, index in indexes.items():
                    timed(name, lambda: add_preassigned(index, chunk, lists))
                if start // CHUNK % 10 == 0:
                    print(f"ivf: {start + len(chunk):,} of {n:,} windows added ({seconds})", flush=True)
                yield chunk

    truth = exact_top_k(generated(), queries)
    rows8 = np.memmap(path, np.int8, "r", shape=(n, DIM))

    def reranked(q):
        _, candidates = indexes["pq"].search(q, RERANK)
        found = []
        for query, ids in zip(q, candidates):
            ids = np.sort(ids[ids >= 0])  # in file order: fewer seeks
            found.append(ids[np.argsort(-(rows8[ids].astype(np.float32) @ query))[:K]])
        return np.stack(found)

    searches = {"sq8": lambda q: indexes["sq8"].search(q, K)[1], "pq": lambda q: indexes["pq"].search(q, K)[1],
                "pq+rerank": reranked}
    names = {"sq8": "faiss IVF-SQ8 (int8 in memory)", "pq": f"faiss IVF-PQ{PQ_BYTES}",
             "pq+rerank": f"faiss IVF-PQ{PQ_BYTES}, top {RERANK} re-scored from int8 on disk"}
    memory = {"sq8": DIM + 8, "pq": PQ_BYTES + 8, "pq+rerank": PQ_BYTES + 8}  # codes and ids per window
    rows = []
    for index in indexes.values():
        index.nprobe = PROBES
    for name, search in searches.items():
        single, batched = query_times(search, queries)
        build = seconds["train_quantizer"] + seconds["assign"] + seconds["sq8" if name == "sq8" else "pq"]
        rows.append({"library": names[name], "n": n, "build_s": build, "query_ms": single, "batch_query_ms": batched,
                     "recall_at_100": recall(search(queries), truth), "bytes_per_vector": memory[name],
                     "disk_bytes_per_vector": DIM if name == "pq+rerank" else 0, "lists": lists,
                     "probes": PROBES, "seconds": dict(seconds)})
        print(rows[-1], flush=True)
    path.unlink()
    return rows


def archive(cache_dir: Path) -> dict:
    """A real archive's embeddings searched as soundclf searches them, and cosine against inner
    product: precision@10 of the same label among other recordings' windows."""
    shards = sorted(cache_dir.glob("shard_*.h5"))
    start = time.perf_counter()
    index = ArchiveIndex([ShardIndex.from_shard(p) for p in shards])
    build_s = time.perf_counter() - start
    # one inverted file over every window (the rows in the same order): per small shard the 64
    # probes would scan every list, which is exact search
    approximate = ShardIndex.build([rec for p in shards for rec in shard_embeddings(p)], exact_max_rows=0)
    rows = np.concatenate([s.vectors for s in index.shards])
    # the same row order: from_shard reads the shards the same way
    raw = np.concatenate([embeddings for p in shards for _, embeddings in shard_embeddings(p)]).astype(np.float32)
    keys = [key for key, _ in index.locate(np.arange(len(rows)))]
    labels, recording = np.array([k.split("/", 1)[0] for k in keys]), np.array(keys)
    picks = np.random.default_rng(3).choice(len(rows), N_QUERIES, replace=False)
    queries = rows[picks]
    truth = index.search(queries, K)[1]
    single, batched = query_times(lambda q: index.search(q, K), queries)
    approximate_single, approximate_batched = query_times(lambda q: approximate.search(q, K), queries)

    def precision_at_10(vectors):
        sims = vectors[picks] @ vectors.T
        sims[recording[None, :] == recording[picks][:, None]] = -np.inf  # other recordings only
        top = np.argsort(-sims, axis=1)[:, :10]
        return float(np.mean(labels[top] == labels[picks][:, None]))

    norms = np.linalg.norm(raw, axis=1)
    out = {"cache_dir": str(cache_dir), "n": len(rows), "recordings": len(set(keys)), "labels": len(set(labels)),
           "build_s": build_s, "query_ms": single, "batch_query_ms": batched,
           "ivf_query_ms": approximate_single, "ivf_batch_query_ms": approximate_batched,
           "ivf_lists": approximate.inverted.nlist,
           "ivf_recall_at_100": recall(approximate.search(queries, K)[1], truth),
           "norm_cv": float(norms.std() / norms.mean()),
           "precision_at_10_cosine": precision_at_10(rows), "precision_at_10_ip": precision_at_10(raw)}
    print(out, flush=True)
    return out


def table(out: dict) -> str:
    rows = [[r["library"], f"{r['n']:,}", f"{r['build_s']:.1f}", f"{r['query_ms']:.2f}", f"{r['batch_query_ms']:.2f}",
             f"{r['recall_at_100']:.3f}", f"{r['bytes_per_vector']:.0f}", f"{r['bytes_per_vector'] * 1e6 / 1e9:.2f}"]
            for r in out["rows"]]
    text = f"Machine: {out['machine']}.\n\n" + markdown_table(
        ["index", "windows", "build (s)", "query (ms, one at a time)", f"query (ms each, batch of {N_QUERIES})",
         "recall@100 vs exact", "bytes per window", "GB per million"], rows)
    if a := out.get("archive"):
        text += "\n\n" + markdown_table(
            ["real archive", "windows", "exact query (ms)", "exact batch (ms each)", "inverted file query (ms)",
             "inverted file recall@100", "precision@10 cosine", "precision@10 inner product"],
            [[f"{a['recordings']} recordings, {a['labels']} labels", f"{a['n']:,}", f"{a['query_ms']:.2f}",
              f"{a['batch_query_ms']:.2f}", f"{a['ivf_query_ms']:.2f}", f"{a['ivf_recall_at_100']:.3f}",
              f"{a['precision_at_10_cosine']:.3f}", f"{a['precision_at_10_ip']:.3f}"]])
    return text


def flat(out: dict) -> dict:
    figures = {}
    for r in out["rows"]:
        keys = []
        # search.<n>: soundclf's own index, or at --ivf sizes the IVF-SQ8 row (its settings there)
        if r["library"].startswith(("soundclf", "exact int8", "faiss IVF-SQ8")):
            keys.append(f"search.{r['n']}")
        if r["library"].startswith("faiss IVF"):  # search.<n>.ivf-sq8, .ivf-pq64, .ivf-pq64.rerank
            keys.append(f"search.{r['n']}.{r['library'].split(' ')[1].lower().rstrip(',')}"
                        + (".rerank" if "re-scored" in r["library"] else ""))
        for key in keys:
            figures |= {f"{key}.query_ms": round(r["query_ms"], 2), f"{key}.batch_query_ms": round(r["batch_query_ms"], 2),
                        f"{key}.recall_at_100": round(r["recall_at_100"], 4), f"{key}.build_s": round(r["build_s"], 1),
                        f"{key}.gb_per_million": round(r["bytes_per_vector"] * 1e6 / 1e9, 3)}
    if a := out.get("archive"):
        figures |= {"search.archive.query_ms": round(a["query_ms"], 2),
                    "search.archive.ivf_recall_at_100": round(a["ivf_recall_at_100"], 4),
                    "search.archive.precision_at_10_cosine": round(a["precision_at_10_cosine"], 4),
                    "search.archive.precision_at_10_ip": round(a["precision_at_10_ip"], 4)}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", type=int, default=200_000)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--exact-int8", type=int, nargs="*", default=[10_000_000])
    parser.add_argument("--ivf", type=int, nargs="*", default=[])
    parser.add_argument("--archive", type=Path)
    args = parser.parse_args()
    (WORK / "search").mkdir(parents=True, exist_ok=True)
    out = {"machine": machine(), "rows": compare(args.compare) if args.compare else []}
    out["rows"] += [soundclf_index(n) for n in args.sizes] + [exact_int8(n) for n in args.exact_int8]
    out["rows"] += [row for n in args.ivf for row in ivf(n)]
    if args.archive:
        out["archive"] = archive(args.archive)
    (WORK / "search" / "search_speed.json").write_text(json.dumps(out, indent=1))
    record_figures(flat(out))
    print(table(out))


if __name__ == "__main__":
    main()
