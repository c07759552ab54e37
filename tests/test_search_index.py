"""The archive's vector index (soundclf.search.index): exact and inverted-file search, files, shards."""


import h5py
import numpy as np
import pytest

from soundclf.search.index import PROBES, ArchiveIndex, ShardIndex

DIM = 64


def clustered(n: int, seed: int, centres: int = 20) -> np.ndarray:
    """Windows around a few call types, as embeddings are (uniform noise has no neighbours)."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centres, DIM))
    return (means[rng.integers(centres, size=n)] + 0.5 * rng.standard_normal((n, DIM))).astype(np.float32)


def recordings(n_recordings: int, windows: int, seed: int) -> list[tuple[str, np.ndarray]]:
    vectors = clustered(n_recordings * windows, seed)
    return [(f"shard{seed}/rec{i:03d}", vectors[i * windows : (i + 1) * windows]) for i in range(n_recordings)]


def write_shard(path, recs) -> None:
    with h5py.File(path, "w") as h5:
        for key, embeddings in recs:
            h5.create_dataset(key, data=embeddings.astype(np.float16))


@pytest.mark.parametrize("exact_max_rows", [10_000, 0], ids=["exact", "inverted_file"])
def test_a_window_finds_itself_first(exact_max_rows):
    recs = recordings(50, 20, seed=1)
    index = ShardIndex.build(recs, exact_max_rows)
    assert (index.inverted is None) == (exact_max_rows > 0)
    key, embeddings = recs[17]
    scores, rows = index.search(embeddings[5] * 3.0, k=5)  # cosine: the query's length does not matter
    assert index.locate(rows[0, :1]) == [(key, 5)]
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-3)
    assert np.all(np.diff(scores[0]) <= 0)


def test_the_inverted_file_agrees_with_exact_search():
    recs = recordings(600, 20, seed=2)
    queries = clustered(30, seed=3)
    _, exact = ShardIndex.build(recs, exact_max_rows=100_000).search(queries, k=10)
    approximate_index = ShardIndex.build(recs, exact_max_rows=0)
    assert approximate_index.inverted.nlist > 2 * PROBES  # a query scans a part of the lists, not all
    _, approximate = approximate_index.search(queries, k=10)
    recall = np.mean([len(set(e) & set(a)) / 10 for e, a in zip(exact, approximate)])
    assert recall >= 0.95
    # search.probes: one list misses neighbours in the lists beside it; scanning every list finds
    # as many as the default (only the int8 rows keep it from exact)
    _, one_list = approximate_index.search(queries, k=10, probes=1)
    assert np.mean([len(set(e) & set(a)) / 10 for e, a in zip(exact, one_list)]) < recall
    _, every_list = approximate_index.search(queries, k=10, probes=approximate_index.inverted.nlist)
    assert np.mean([len(set(e) & set(a)) / 10 for e, a in zip(exact, every_list)]) >= recall


@pytest.mark.parametrize("exact_max_rows", [10_000, 0], ids=["exact", "inverted_file"])
def test_save_load_round_trip(tmp_path, exact_max_rows):
    index = ShardIndex.build(recordings(20, 10, seed=4), exact_max_rows)
    index.save(tmp_path / "shard.npz")
    loaded = ShardIndex.load(tmp_path / "shard.npz")
    assert list(tmp_path.iterdir()) == [tmp_path / "shard.npz"]  # no temporary left behind
    queries = clustered(5, seed=5)
    scores, rows = index.search(queries, k=7)
    loaded_scores, loaded_rows = loaded.search(queries, k=7)
    np.testing.assert_array_equal(loaded_rows, rows)
    np.testing.assert_allclose(loaded_scores, scores, atol=2e-3)  # the file keeps float16
    assert loaded.locate(rows[0]) == index.locate(rows[0])


def test_an_older_hnsw_shard_index_names_its_file_and_the_fix(tmp_path):
    import faiss

    graph = faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)
    graph.add(clustered(50, seed=10))
    np.savez(tmp_path / "shard_000.npz", keys=np.array(["a"]), counts=np.array([50]), faiss=faiss.serialize_index(graph))
    with pytest.raises(ValueError, match="shard_000.npz: an index of the older kind.*delete the file"):
        ShardIndex.load(tmp_path / "shard_000.npz")


def test_merged_shards_give_the_global_top_k():
    shards = [recordings(10, 8, seed=s) for s in (6, 7, 8)]
    sharded = ArchiveIndex([ShardIndex.build(recs) for recs in shards])
    whole = ShardIndex.build([rec for recs in shards for rec in recs])
    queries = clustered(10, seed=9)
    scores, ids = sharded.search(queries, k=25)
    whole_scores, rows = whole.search(queries, k=25)
    np.testing.assert_allclose(scores, whole_scores, atol=1e-6)
    for q in range(len(queries)):
        assert sharded.locate(ids[q]) == whole.locate(rows[q])
    # fewer windows than k: the tail is empty
    scores, ids = sharded.search(queries[:1], k=300)
    assert np.all(ids[0, 240:] == -1) and np.all(np.isinf(scores[0, 240:])) and np.all(ids[0, :240] >= 0)


def test_a_changed_shard_needs_only_its_own_index_rebuilt(tmp_path):
    """(The workflow plans one archive_index_shard job per changed shard: tests/test_search.py.)"""
    shards = [tmp_path / f"shard_{s:03d}.h5" for s in range(3)]
    for s, path in enumerate(shards):
        write_shard(path, recordings(5, 4, seed=s))
    indexes = [tmp_path / f"shard_{s:03d}.npz" for s in range(3)]
    for shard, index in zip(shards, indexes):
        ShardIndex.from_shard(shard).save(index)
    added = recordings(6, 4, seed=1)  # shard 1 gains a recording
    write_shard(shards[1], added)
    ShardIndex.from_shard(shards[1]).save(indexes[1])
    archive = ArchiveIndex.load(indexes)
    key, embeddings = added[5]
    _, ids = archive.search(embeddings[2], k=1)
    assert archive.locate(ids[0]) == [(key, 2)]
