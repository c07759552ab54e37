"""The embedding stage and probes: BirdNET V2.4 embeddings (the optional extra .[birdnet]),
pooling into evaluation windows, per-fold probes that never see their fold, and a probe
experiment beside a CNN experiment in one workflow."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import run_snakemake, tone, write
from soundclf.embedding.model import EmbeddingSpec, embedding_available, window_starts
from soundclf.datasets import window_times
from soundclf.embedding.probe import pool, pool_windows, train_probe_fold
from soundclf.embedding.zero_shot import match_classes
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


@pytest.mark.parametrize("examples, pooling", [("windows", "mean"), ("recordings", "mean_max"), ("bags", "mean")])
def test_a_folds_probe_never_sees_that_folds_recordings(tmp_path, examples, pooling):
    folds = pd.DataFrame({"key": [f"r{i}" for i in range(30)], "class_id": [i % 3 for i in range(30)],
                          "secondary_class_ids": [[] for _ in range(30)], "duration": 6.0,
                          "fold": [i % 3 for i in range(30)]})
    cache = FakeCache(folds)
    train = {"segment_seconds": 5.0, "secondary_weight": 1.0, "seed": 0, "loss": "ce"}
    meta = train_probe_fold(folds, ["a", "b", "c"], 1, cache, EmbeddingSpec(),
                            {"probe": "linear", "probe_weight_decay": 1e-3, "probe_examples": examples,
                             "probe_pooling": pooling, "probe_unit_length": True}, train, tmp_path / "model.pt")
    held_out = set(folds.loc[folds["fold"] == 1, "key"])
    assert not held_out & set(cache.read) and not held_out & set(meta["training_keys"])
    assert len(meta["training_keys"]) == 20 and meta["dim"] == 8 * (2 if pooling == "mean_max" else 1)


@pytest.mark.parametrize("unit_length", [True, False])
def test_a_unit_length_probe_reads_the_direction_and_keeps_it_when_saved(tmp_path, unit_length):
    from soundclf.embedding.probe import Examples, fit_probe, load_probe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8)).astype(np.float32) + 2.0
    labels = np.eye(3, dtype=np.float32)[np.arange(60) % 3]
    x[np.arange(60), np.arange(60) % 3] += 3.0
    x *= rng.uniform(0.2, 5.0, size=(60, 1)).astype(np.float32)  # loud and quiet recordings
    probe = fit_probe(Examples(x, labels, np.ones(60)), "linear", "ce", 1e-3, unit_length=unit_length)
    with torch.no_grad():
        logits, louder = probe(torch.from_numpy(x)), probe(torch.from_numpy(10 * x))
        standardised = (probe.scaled(torch.from_numpy(x)) - probe.mean) / probe.std
    assert torch.allclose(logits, louder, atol=1e-4) == unit_length  # only the direction counts
    assert standardised.mean(0).abs().max() < 1e-4  # the statistics are those of what the body sees
    torch.save({"model": probe.state_dict(), "meta": json.dumps(
        {"dim": 8, "classes": ["a", "b", "c"], "probe": "linear", "unit_length": unit_length})}, tmp_path / "p.pt")
    loaded, _ = load_probe(tmp_path / "p.pt")
    with torch.no_grad():
        assert torch.equal(loaded(torch.from_numpy(x)), logits)


def test_mean_std_pooling_puts_the_std_beside_the_mean():
    embeddings = np.array([[0.0, 1.0], [2.0, 1.0]], np.float32)
    assert pool(embeddings, "mean_std").tolist() == [1.0, 1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="mean_std"):
        pool(embeddings, "median")


LABELS = ["Agelaius xanthomus_Yellow-shouldered Blackbird", "Dog_Dog", "Turdus merula_Eurasian Blackbird"]


def test_classes_match_model_labels_by_scientific_or_common_name():
    classes = ["agelaius_xanthomus", "eurasian-blackbird", "dog", "coqui"]
    assert match_classes(classes, LABELS) == [0, 2, 1, None]


def test_a_label_map_decides_alone_and_names_labels_the_model_lacks(tmp_path):
    (tmp_path / "map.csv").write_text("class,label\nbark,Dog_Dog\n")
    assert match_classes(["bark", "dog"], LABELS, tmp_path / "map.csv") == [1, None]  # no matching by name
    (tmp_path / "bad.csv").write_text("class,label\nbark,Dog\n")
    with pytest.raises(ValueError, match="names labels the model does not have: Dog"):
        match_classes(["bark"], LABELS, tmp_path / "bad.csv")
    (tmp_path / "cols.csv").write_text("name,birdnet\nbark,Dog_Dog\n")
    with pytest.raises(ValueError, match="needs the columns class, label"):
        match_classes(["bark"], LABELS, tmp_path / "cols.csv")


def run_model(windows: np.ndarray, back: int = 0) -> np.ndarray:
    """BirdNET V2.4 run straight through LiteRT, every tensor kept: the tensor `back` places
    before its output (0: the output, its species logits)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(EmbeddingSpec().resolved_path()), experimental_preserve_all_tensors=True)
    source = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(source, list(windows.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(source, windows)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"] - back)


@needs_model
def test_zero_shot_scores_are_the_models_own_output_for_mapped_classes():
    from soundclf.embedding.model import Embedder
    from soundclf.embedding.zero_shot import zero_shot_probe

    spec = EmbeddingSpec()
    window = tone(3.0, 48000, 3000.0)[None].astype(np.float32)
    embedding = Embedder(spec)(window)
    output = run_model(window)[0]  # the model's logits
    classes = ["turdus_merula", "not a bird", "Strix aluco"]
    probe, unmapped = zero_shot_probe(classes, spec, 2048, {})  # mean_std: the std half weighs 0
    labels = [line.strip() for line in (spec.resolved_path().parent / "BirdNET_GLOBAL_6K_V2.4_Labels.txt").open()]
    rows = [labels.index(next(l for l in labels if l.startswith(name))) for name in ("Turdus merula_", "Strix aluco_")]
    with torch.no_grad():
        logits = probe(torch.from_numpy(np.concatenate([embedding, np.ones_like(embedding)], 1)))[0].numpy()
    assert unmapped == ["not a bird"] and logits[1] < -20  # scores 0
    np.testing.assert_allclose(logits[[0, 2]], output[rows], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="zero_shot_label_map"):
        zero_shot_probe(["a", "b"], spec, 1024, {})
    with pytest.raises(ValueError, match=r"model.probe anchored: none of the 2 classes .* use model.probe: linear"):
        zero_shot_probe(["baby_cry", "chainsaw"], spec, 1024, {"probe": "anchored"})  # ESC-10 as a new user tried it


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
def test_recordings_sharing_batches_get_their_own_embeddings_and_a_bad_one_drops_alone(tmp_path):
    from soundclf.audio import AudioDecodeError
    from soundclf.embedding.cache import embed_file, embed_files
    from soundclf.embedding.model import Embedder

    paths = [write(tmp_path / "a.wav", tone(5.0, 22050, 2500.0), 22050),
             tmp_path / "broken.wav", write(tmp_path / "c.wav", tone(4.2, 48000, 900.0), 48000)]
    paths[1].write_bytes(b"RIFF0000WAVEjunk")
    alone = Embedder(EmbeddingSpec(), batch_size=1)
    shared = Embedder(EmbeddingSpec(), batch_size=3)  # a's 3 windows + c's 2: batches span both
    results = {index: (embeddings, seconds) for index, embeddings, seconds in embed_files(paths, shared)}
    assert sorted(results) == [0, 1, 2] and isinstance(results[1][0], AudioDecodeError)
    for index in (0, 2):
        expected, seconds = embed_file(paths[index], alone)
        np.testing.assert_allclose(results[index][0], expected, atol=1e-4)
        assert results[index][1] == seconds
    with pytest.raises(AudioDecodeError):
        embed_file(paths[1], alone)


def test_the_backend_is_not_in_the_cache_digest_nor_in_the_training_params():
    from soundclf.embedding.backends import birdnet_problem
    from soundclf.experiments import embedding_digest, training_params

    section = {k: v for k, v in EmbeddingSpec().__dict__.items()}
    configs = [{"embedding": section | backend, "cache": {"n_shards": 4}} for backend in
               ({}, {"backend": "litert"}, {"backend": "torch"}, {"backend": "onnx"})]
    assert len({embedding_digest(c) for c in configs}) == 1  # caches of before the key stay valid
    probe = {"model": {"kind": "embedding_probe"}, "train": {}}
    assert len({json.dumps(training_params(probe | c)) for c in configs}) == 1
    assert EmbeddingSpec.from_config(section | {"backend": "torch"}) == EmbeddingSpec()
    assert birdnet_problem(EmbeddingSpec(model_path="other.tflite"), "litert") is None
    assert "set embedding.backend: litert" in birdnet_problem(EmbeddingSpec(model_path="other.tflite"), "onnx")
    assert "set embedding.backend: litert" in birdnet_problem(EmbeddingSpec(output_tensor=-3), "torch")


@needs_model
def test_every_backend_writes_the_same_shard_within_1e_3(tmp_path):
    import h5py

    from soundclf.embedding.backends import export_name
    from soundclf.embedding.cache import write_shard

    recordings = [("a", write(tmp_path / "a.wav", tone(5.0, 22050, 2500.0), 22050)),
                  ("c", write(tmp_path / "c.wav", tone(4.2, 48000, 900.0), 48000))]
    stored = {}
    for backend in ("litert", "torch", "onnx"):
        write_shard(tmp_path / f"{backend}.h5", recordings, EmbeddingSpec(), backend=backend, export_dir=tmp_path / "onnx")
        with h5py.File(tmp_path / f"{backend}.h5") as h5:
            assert h5.attrs["backend"] == backend
            stored[backend] = {key: h5[key][()].astype(np.float32) for key in ("a", "c")}
    export = tmp_path / "onnx" / export_name(EmbeddingSpec())
    assert export.is_file()
    for backend in ("torch", "onnx"):  # pure tones: the worst case seen (7.6e-4; 2 float16 steps at 1-2)
        for key, litert in stored["litert"].items():
            np.testing.assert_allclose(stored[backend][key], litert, rtol=5e-3, atol=1e-3, err_msg=f"{backend} {key}")
    before = export.stat().st_mtime_ns
    write_shard(tmp_path / "again.h5", recordings[:1], EmbeddingSpec(), backend="onnx", export_dir=tmp_path / "onnx")
    assert export.stat().st_mtime_ns == before  # the export is made once per run folder


@needs_model
def test_the_embedding_solved_from_the_output_is_the_tensor_before_it():
    from soundclf.embedding.model import Embedder

    spec = EmbeddingSpec()
    windows = np.stack([tone(3.0, 48000, f) for f in (1500.0, 4000.0)]).astype(np.float32)
    embedder = Embedder(spec)
    assert embedder.unmix is not None  # BirdNET ends in a dense layer: no intermediate tensors kept
    np.testing.assert_allclose(embedder(windows), run_model(windows, back=1), atol=1e-4)


@needs_model
@pytest.mark.workflow
@pytest.mark.slow
def test_a_probe_and_a_cnn_experiment_in_one_comparison(tmp_path, tiny_dataset):
    shutil.copytree(tiny_dataset, tmp_path / "data")
    config = SMALL | {
        "data": {"layout": "metadata", "audio_dir": "data/train_audio", "metadata_csv": "data/train_metadata.csv"},
        "predict": {"audio_dir": "data/soundscapes", "labels_csv": "data/soundscape_labels.csv"},
        "experiments": {"cnn": None, "probe": {"model": {"kind": "embedding_probe"}},
                        "zero": {"model": {"kind": "embedding_probe", "probe": "zero_shot",
                                           "zero_shot_label_map": "map.csv"}}},
        "compare": {"reference": "cnn"},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "map.csv").write_text("class,label\nwhistler,Turdus merula_Eurasian Blackbird\n")
    # what the assertions read: no figures, thresholds or detections (the workflow tests run those)
    targets = ["results/experiments/comparison.csv", "results/experiments/ensemble/predictions/submission.csv"]
    run_snakemake(tmp_path, *targets, "--configfile", "c.yaml")
    table = pd.read_csv(tmp_path / "results/experiments/comparison.csv").set_index("experiment")
    assert set(table.index) == {"cnn", "probe", "zero", "ensemble (nested)"}  # zero-shot, probe and CNN members
    assert table["recording.padded_cmap.mean"].notna().all()
    zero = pd.read_csv(tmp_path / "results/experiments/zero/oof/oof_windows.csv")
    assert (zero.drop(columns=["fold", "key", "start", "end", "whistler"]).to_numpy() < 1e-9).all()  # unmapped: 0
    assert "no label for downsweeper, upsweeper" in (tmp_path / "results/logs/train_fold/zero/fold0.log").read_text()
    oof = {e: pd.read_csv(tmp_path / f"results/experiments/{e}/oof/oof_windows.csv") for e in ("cnn", "probe")}
    assert oof["cnn"][["key", "start", "end"]].equals(oof["probe"][["key", "start", "end"]])  # the same windows
    probe_pred = pd.read_csv(tmp_path / "results/experiments/probe/predictions/submission.csv")
    cnn_pred = pd.read_csv(tmp_path / "results/experiments/cnn/predictions/submission.csv")
    assert probe_pred["row_id"].tolist() == cnn_pred["row_id"].tolist()
    assert (tmp_path / "results/experiments/ensemble/predictions/submission.csv").is_file()

    # the embedding backend computes the same values (below the cache's float16 step on real
    # audio): switching it reruns no job, neither the embedding shards nor the probes after them
    for backend in ("litert", "torch"):
        (tmp_path / "b.yaml").write_text(yaml.safe_dump({"embedding": {"backend": backend}}))
        assert planned_jobs(run_snakemake(tmp_path, "-n", *targets, "--configfile", "c.yaml", "b.yaml")) == {}, backend

    # a setting of one kind plans only that kind's training again (experiments.training_params)
    n_folds = len(list((tmp_path / "results/experiments/cnn/models").glob("fold*")))
    for section, kind_runs in (({"probe_unit_length": False}, 2), ({"drop_rate": 0.3}, 1)):
        (tmp_path / "k.yaml").write_text(yaml.safe_dump({"model": section}))
        jobs = planned_jobs(run_snakemake(tmp_path, "-n", "--configfile", "c.yaml", "k.yaml"))
        assert jobs["train_fold"] == kind_runs * n_folds, section  # probe and zero, or cnn alone

    # a CNN distilled from the probe, on its training recordings and the unlabeled ones: the probe
    # scores the unlabeled recordings' embeddings, the student reads their log-mels
    distil = {"experiments": {"probe": {"model": {"kind": "embedding_probe"}}, "distilled": {"train": {"teacher": "probe",
              "epochs": 1}}}, "self_training": {"audio_dir": "data/unlabeled_soundscapes", "rounds": 0}}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(distil))
    target = "results/experiments/distilled/models/fold0/model.pt"
    jobs = planned_jobs(run_snakemake(tmp_path, "-n", target, "--configfile", "c.yaml", "d.yaml"))
    assert {job: jobs[job] for job in ("probe_teacher_scores", "teacher_windows", "train_fold")} == {
        "probe_teacher_scores": 1, "teacher_windows": 1, "train_fold": 1}  # fold 0's, the probe not retrained
    assert jobs["unlabeled_embed_shard"] == jobs["unlabeled_mel_shard"] and "embed_shard" not in jobs
    run_snakemake(tmp_path, target, "--configfile", "c.yaml", "d.yaml")
    scores = pd.read_csv(tmp_path / "results/experiments/probe/unlabeled/fold0.csv")
    assert set(scores["fold"]) == {0} and scores["key"].nunique() == 3 and len(scores) == 6  # 3 soundscapes of 10 s
    windows = pd.read_csv(tmp_path / "results/experiments/probe/teacher_windows/fold0.csv")
    log = (tmp_path / "results/logs/train_fold/distilled/fold0.log").read_text()
    assert f"distillation from probe: {len(windows) + len(scores)} soft-labelled windows" in log

    meta = pd.read_csv(tmp_path / "data/train_metadata.csv")
    first = meta.iloc[0]
    new_name = first["filename"].rsplit("/", 1)[0] + "/XC_new.ogg"
    write(tmp_path / "data/train_audio" / new_name, tone(4.0, 32000, 2500.0), 32000, "OGG", "VORBIS")
    pd.concat([meta, pd.DataFrame([first.to_dict() | {"filename": new_name}])]).to_csv(
        tmp_path / "data/train_metadata.csv", index=False)
    jobs = planned_jobs(run_snakemake(tmp_path, "-n", "--configfile", "c.yaml"))
    assert jobs["embed_shard"] == 1 and jobs["mel_shard"] == 1
