"""Self-training: pseudo-labels from a teacher's scores, the students' batches, the rounds as
experiments, and a real round on a tiny dataset (its outputs, the no-leak rule, the rerun
contract and a killed student's resume); and distillation (train.teacher), which trains a
student on the same machinery with its teacher's scores of the labelled recordings."""
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_snakemake, tone, upstream, write
from soundclf.comparison import calibrate
from soundclf.config import ConfigError
from soundclf.experiments import experiment_configs, load_config, training_params
from soundclf.indexing import read_classes
from soundclf.mel import MelParams
from soundclf.mel_cache import MelCache, write_shard
from soundclf.self_training.batches import MixedBatches, PseudoCrops
from soundclf.self_training.pseudo_labels import (PseudoLabelLeak, check_fold, pseudo_label_table, transform_scores,
                                                 weighted_scores)
from soundclf.self_training.rounds import self_training_rounds

CLASSES = ["a", "b", "c"]


def test_transform_thresholds_keeps_top_k_and_raises_to_the_power():
    scores = np.array([[0.9, 0.5, 0.05], [0.2, 0.3, 0.25]], dtype=np.float32)
    assert np.array_equal(transform_scores(scores), scores)
    np.testing.assert_allclose(transform_scores(scores, threshold=0.1), [[0.9, 0.5, 0], [0.2, 0.3, 0.25]])
    np.testing.assert_allclose(transform_scores(scores, top_k=1), [[0.9, 0, 0], [0, 0.3, 0]])
    np.testing.assert_allclose(transform_scores(scores, power=2, top_k=2), [[0.81, 0.25, 0], [0, 0.09, 0.0625]], rtol=1e-6)
    np.testing.assert_allclose(transform_scores(scores, power=0.5, threshold=0.4), [[0.9**0.5, 0.5**0.5, 0], [0, 0, 0]], rtol=1e-6)


def teacher_windows(fold, n=4):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"fold": fold, "key": [f"r{i // 2}.ogg" for i in range(n)], "start": [0.0, 5.0] * (n // 2),
                          "end": [5.0, 10.0] * (n // 2)})
    return pd.concat([table, pd.DataFrame(rng.random((n, len(CLASSES))), columns=CLASSES)], axis=1)


def test_pseudo_label_table_has_one_row_per_window_and_a_column_per_class():
    scores = teacher_windows(fold=1)
    table = pseudo_label_table(scores, CLASSES, fold=1, threshold=0.5)
    assert list(table.columns) == ["fold", "key", "start", "end", *CLASSES] and len(table) == len(scores)
    np.testing.assert_allclose(table[CLASSES].to_numpy(), np.where(scores[CLASSES] >= 0.5, scores[CLASSES], 0), rtol=1e-6)
    with pytest.raises(ValueError, match="'c'"):
        pseudo_label_table(scores.drop(columns="c"), CLASSES, fold=1)


def test_pseudo_labels_of_another_folds_model_are_refused():
    with pytest.raises(PseudoLabelLeak, match=r"fold\(s\) \[0\].*fold 1's student"):
        pseudo_label_table(teacher_windows(fold=0), CLASSES, fold=1)
    mixed = pd.concat([teacher_windows(fold=1), teacher_windows(fold=2)])
    with pytest.raises(PseudoLabelLeak):
        check_fold(mixed, 1, "pseudo-labels")
    check_fold(teacher_windows(fold=1), 1, "pseudo-labels")


def test_mixed_batches_hold_the_share_and_every_labelled_item_once():
    torch.manual_seed(0)
    batches = MixedBatches(n_labelled=10, n_pseudo=3, batch_size=4, share=0.5)
    epoch = list(batches)
    assert len(epoch) == len(batches) == 5
    for batch in epoch:
        assert len(batch) == 4 and sum(i >= 10 for i in batch) == 2
    labelled = [i for b in epoch for i in b if i < 10]
    assert sorted(labelled) == list(range(10))
    pseudo = [i - 10 for b in epoch for i in b if i >= 10]
    assert set(pseudo) == {0, 1, 2} and len(pseudo) == 10  # recycled: 3 windows, 10 places
    assert MixedBatches(10, 3, 4, 0.05).per_batch_pseudo == 1 and MixedBatches(10, 3, 4, 0.95).per_batch_pseudo == 3
    with pytest.raises(ValueError, match="pseudo_share"):
        MixedBatches(10, 3, 4, 1.0)


@pytest.fixture(scope="module")
def unlabeled_cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unlabeled")
    params = MelParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=16, fmin=50, fmax=8000)
    recordings = [("long.wav", str(write(folder / "long.wav", tone(12, 16000, 500), 16000))),
                  ("short.wav", str(write(folder / "short.wav", tone(2, 16000, 2000), 16000)))]
    write_shard(shard_path := folder / "mels/shard_000.h5", recordings, params)
    assert shard_path.exists()
    return MelCache(folder / "mels", 1), params


def test_pseudo_crops_put_each_window_under_its_own_label(unlabeled_cache):
    cache, params = unlabeled_cache
    recordings = cache.recordings()
    assert sorted(recordings["key"]) == ["long.wav", "short.wav"]
    assert recordings.set_index("key")["duration"].to_dict() == pytest.approx({"long.wav": 12.0, "short.wav": 2.0})
    table = pd.DataFrame({"fold": 0, "key": ["long.wav", "long.wav", "long.wav", "short.wav"],
                          "start": [0.0, 5.0, 7.0, 0.0], "end": [5.0, 10.0, 12.0, 5.0],
                          "a": [1.0, 0, 0, 0.2], "b": [0, 1.0, 0, 0.3], "c": [0, 0, 1.0, 0.4]})
    seg = params.n_frames(5 * 16000)
    crops = PseudoCrops(table, CLASSES, cache, seg, n_segments=2, frames_per_second=params.frames_per_second)
    x, y, weight, strong = crops[3]  # the short window, then (wrapping) the first
    assert x.shape == (1, 16, 2 * seg) and y.shape == (2, 3) and bool(strong) and float(weight) == 1.0
    np.testing.assert_allclose(y.numpy(), [[0.2, 0.3, 0.4], [1, 0, 0]])
    # the last window of the long recording ends at its end: its frames are the recording's last
    last = crops.window_db(2)
    np.testing.assert_array_equal(last, cache.window("long.wav", cache.n_frames("long.wav") - seg, seg))
    assert crops.window_db(3).shape == (16, seg)  # 2 s looped to a window


def test_rounds_chain_teachers_and_students_are_experiments():
    config = load_config()
    config["self_training"] |= {"audio_dir": "somewhere", "rounds": 2, "student": {"model": {"drop_path_rate": 0.2}}}
    config["experiments"] = {"small": {"train": {"epochs": 3}}, "big": {"train": {"epochs": 9}}}
    assert self_training_rounds(config, ["small", "big"]) == {
        "small-st1": {"round": 1, "teacher": "small", "first_teacher": "small"},
        "small-st2": {"round": 2, "teacher": "small-st1", "first_teacher": "small"}}
    configs = experiment_configs(config)
    assert list(configs) == ["small", "big", "small-st1", "small-st2"]
    assert configs["small-st2"]["train"]["epochs"] == 3 and configs["small-st2"]["model"]["drop_path_rate"] == 0.2
    assert configs["small"]["model"]["drop_path_rate"] == 0.0
    config["self_training"]["teacher"] = "big"
    assert list(experiment_configs(config))[2:] == ["big-st1", "big-st2"]
    config["self_training"]["teacher"] = "huge"
    with pytest.raises(ConfigError, match="self_training.teacher: 'huge' is not an experiment"):
        experiment_configs(config)
    config["self_training"] |= {"teacher": None, "student": {"folds": {"n_folds": 3}}}
    with pytest.raises(ConfigError, match="self_training.student.folds"):
        experiment_configs(config)
    config["self_training"]["audio_dir"] = None
    assert list(experiment_configs(config)) == ["small", "big"]


def test_a_teacher_is_another_undistilled_experiment_with_the_same_windows():
    config = load_config()
    config["experiments"] = {"probe": {"model": {"kind": "embedding_probe"}}, "cnn": {"train": {"teacher": "probe"}}}
    configs = experiment_configs(config)
    assert configs["cnn"]["train"]["teacher_share"] == 0.5
    assert training_params(configs["cnn"])["train"]["teacher"] == "probe"
    assert "teacher" not in training_params(configs["probe"])["train"]  # none named: no param, nothing retrains
    for experiments, problem in [
            ({"cnn": {"train": {"teacher": "cnn"}}}, "'cnn' is not another experiment"),
            ({"probe": {"model": {"kind": "embedding_probe"}, "train": {"teacher": "cnn"}}, "cnn": {}},
             "a distilled student is a CNN"),
            ({"a": {}, "b": {"train": {"teacher": "a"}}, "c": {"train": {"teacher": "b"}}},
             "'b' is itself distilled from 'a'"),
            ({"a": {"train": {"segment_seconds": 3}}, "b": {"train": {"teacher": "a"}}},
             "'a' scores 3 s windows, the student 5 s segments")]:
        config["experiments"] = experiments
        with pytest.raises(ConfigError, match=problem):
            experiment_configs(config)
    config["experiments"] = {"a": {"train": {"teacher": "b"}}, "b": {}}
    config["self_training"] |= {"audio_dir": "somewhere"}
    with pytest.raises(ConfigError, match="'a' also takes part in self-training"):
        experiment_configs(config)


# --- one real round on the tiny dataset ------------------------------------------------------

STUDENT = "results/experiments/base-st1"
ROUND = {"audio_dir": "data/unlabeled_soundscapes", "student": {"train": {"epochs": 3}}}


def round_config(workdir, self_training=None, name="config.st.yaml"):
    from test_workflow import write_config

    return write_config(workdir, {"self_training": ROUND | (self_training or {})}, name)


def planned(workdir, config, *targets):
    from test_workflow import planned_jobs

    return planned_jobs(run_snakemake(workdir, "-n", *targets, "--configfile", config))


@pytest.fixture(scope="module")
def round_workdir(tmp_path_factory, tiny_dataset):
    """A working directory where one self-training round has run up to the comparison table."""
    workdir = tmp_path_factory.mktemp("self_training")
    shutil.copytree(tiny_dataset, workdir / "data")
    run_snakemake(workdir, "results/experiments/comparison.csv", "--configfile", round_config(workdir))
    return workdir


@pytest.mark.workflow
@pytest.mark.slow
def test_a_round_writes_pseudo_labels_and_compares_the_student_with_its_teacher(round_workdir):
    classes = read_classes(round_workdir / "results/index/classes.csv")
    for fold in (0, 1):
        scores = pd.read_csv(round_workdir / f"results/experiments/base/unlabeled/fold{fold}.csv")
        labels = pd.read_csv(round_workdir / f"results/pseudo/round1/fold{fold}.csv")
        assert len(labels) == 3 * 2  # 3 unlabeled 10 s soundscapes, two 5 s windows each
        assert set(labels["fold"]) == {fold} and labels["key"].nunique() == 3
        assert list(labels.columns) == ["fold", "key", "start", "end", *classes] and len(classes) == 3
        np.testing.assert_allclose(labels[classes], scores[classes], rtol=1e-6)  # the identity transform
        log = (round_workdir / f"results/logs/train_fold/base-st1/fold{fold}.log").read_text()
        assert "self-training: 6 soft-labelled windows, 2 of every 4 crops per batch" in log
    comparison = pd.read_csv(round_workdir / "results/experiments/comparison.csv")
    assert set(comparison["experiment"]) == {"base", "base-st1", "ensemble (nested)"}


def upstream_files(workdir, config, target):
    """Every file `target` was made from, directly or not (--detailed-summary's output ->
    input table, from Snakemake's records of the jobs that ran)."""
    summary = run_snakemake(workdir, target, "--detailed-summary", "--configfile", config).stdout
    inputs = {}
    for line in summary.splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) >= 5:
            inputs[fields[0]] = [f for f in fields[4].split(",") if f]
    return upstream(inputs, target)


@pytest.mark.workflow
@pytest.mark.slow
def test_fold_k_student_learns_only_from_models_that_never_saw_fold_k(round_workdir):
    """From the files each job of the run really read (Snakemake's records); round r > 1 is
    the same rule with round r - 1's fold-k student as the teacher, and every pseudo-label
    table and student checks the fold of the model that scored its rows (the unit tests)."""
    for fold in (0, 1):
        made_from = upstream_files(round_workdir, "config.st.yaml", f"{STUDENT}/models/fold{fold}/model.pt")
        assert {f for f in made_from if f.endswith("model.pt")} == {f"results/experiments/base/models/fold{fold}/model.pt"}
        assert {f for f in made_from if "/pseudo/" in f} == {f"results/pseudo/round1/fold{fold}.csv"}


@pytest.mark.workflow
@pytest.mark.slow
def test_changing_the_transform_reruns_the_students_not_the_teacher(round_workdir, tmp_path):
    workdir = tmp_path / "w"
    shutil.copytree(round_workdir, workdir, symlinks=True)
    target = "results/experiments/comparison.csv"
    assert planned(workdir, "config.st.yaml", target) == {}
    sharper = round_config(workdir, {"transform": {"power": 2.0, "threshold": 0.1}}, "config.power.yaml")
    nested = {"nested_ensemble_fold": 2, "nested_ensemble": 1}  # the student is a candidate member
    assert planned(workdir, sharper, target) == {"pseudo_labels": 2, "train_fold": 2, "evaluate_fold": 2,
                                                 "aggregate_oof": 1, "compare_experiments": 1} | nested
    share = round_config(workdir, {"pseudo_share": 0.25}, "config.share.yaml")
    assert planned(workdir, share, target) == {"train_fold": 2, "evaluate_fold": 2, "aggregate_oof": 1,
                                               "compare_experiments": 1} | nested


@pytest.mark.workflow
@pytest.mark.slow
def test_a_killed_student_resumes_from_its_checkpoint(round_workdir, tmp_path):
    from test_killed_jobs import kill_when, saved_epoch, start_snakemake

    workdir = tmp_path / "w"
    shutil.copytree(round_workdir, workdir, symlinks=True)
    target = [f"{STUDENT}/models/fold0/model.pt", "--force", "--configfile", "config.st.yaml"]
    epoch_at_kill = kill_when(start_snakemake(workdir, *target), saved_epoch(workdir / f"{STUDENT}/models/fold0/work/last.pt"))
    assert 1 <= epoch_at_kill < 3
    run_snakemake(workdir, "--unlock", *target)
    run_snakemake(workdir, *target, "--rerun-incomplete")
    log = (workdir / "results/logs/train_fold/base-st1/fold0.log").read_text()
    assert int(log.split("after epoch ")[1].split()[0]) >= epoch_at_kill
    # the same epochs, losses and scores as the uninterrupted run of the fixture
    pd.testing.assert_frame_equal(pd.read_csv(workdir / f"{STUDENT}/models/fold0/history.csv"),
                                  pd.read_csv(round_workdir / f"{STUDENT}/models/fold0/history.csv"), check_exact=True)


def test_an_ensemble_teacher_weights_its_members_scores():
    a, b = teacher_windows(fold=2), teacher_windows(fold=2)
    b[CLASSES] = 1 - b[CLASSES]
    mixed = weighted_scores({"a": a, "b": b, "c": a}, {"a": 0.75, "b": 0.25, "c": 0.0}, CLASSES)
    np.testing.assert_allclose(mixed[CLASSES], 0.75 * a[CLASSES] + 0.25 * b[CLASSES])
    assert mixed[["fold", "key", "start", "end"]].equals(a[["fold", "key", "start", "end"]])
    with pytest.raises(ValueError, match="'d'"):
        weighted_scores({"a": a}, {"a": 0.5, "d": 0.5}, CLASSES)
    calibration = {"a": {"scale": 2.0, "offset": 0.5}, "b": {"scale": 1.0, "offset": -1.0}}  # ensemble.json's
    mixed = weighted_scores({"a": a, "b": b}, {"a": 0.75, "b": 0.25}, CLASSES, calibration)
    np.testing.assert_allclose(mixed[CLASSES], 0.75 * calibrate(a[CLASSES], calibration["a"])
                               + 0.25 * calibrate(b[CLASSES], calibration["b"]), rtol=1e-6)


def test_the_ensemble_as_teacher_is_chosen_among_the_other_experiments():
    config = load_config()
    config["experiments"] = {"small": {}, "big": {"train": {"epochs": 9}}}
    config["self_training"] |= {"audio_dir": "somewhere", "teacher": "ensemble"}
    configs = experiment_configs(config)
    assert list(configs) == ["small", "big", "ensemble-st1"] and configs["ensemble-st1"]["train"]["epochs"] == config["train"]["epochs"]
    config["experiments"] = {"small": {}}
    with pytest.raises(ConfigError, match="two or more experiments"):
        experiment_configs(config)


@pytest.mark.workflow
def test_an_ensemble_teacher_plans_without_a_cycle(tmp_path, tiny_dataset):
    from test_workflow import write_config

    shutil.copytree(tiny_dataset, tmp_path / "data")
    config = write_config(tmp_path, {"experiments": {"a": None, "b": {"train": {"crop_seconds": 5}}},
                                     "self_training": ROUND | {"teacher": "ensemble"}})
    jobs = planned(tmp_path, config, "results/experiments/ensemble-st1/models/fold0/model.pt")
    # fold 0's pseudo-labels: the fold-0 models of a and b, weighted by the ensemble of a and b
    assert jobs["select_ensemble"] == 1 and jobs["pseudo_labels"] == 1 and jobs["teacher_scores"] == 2
    assert jobs["train_fold"] == 5  # a and b, both folds (their OOF scores choose the ensemble), and the student


@pytest.mark.workflow
@pytest.mark.slow
def test_a_distilled_students_fold_k_learns_from_fold_k_teacher_windows_of_its_training_recordings(round_workdir, tmp_path):
    """With self_training.audio_dir (and no self-training round) also from fold k's teacher
    scores of the unlabeled recordings."""
    workdir = tmp_path / "w"
    shutil.copytree(round_workdir, workdir, symlinks=True)
    from test_workflow import write_config

    config = write_config(workdir, {"experiments": {"base": {}, "distilled": {"train": {"teacher": "base", "epochs": 1}}},
                                    "self_training": ROUND | {"rounds": 0}}, "config.distil.yaml")
    target = "results/experiments/distilled/models/fold0/model.pt"
    # the teacher is not retrained, nor are its scores of the unlabeled recordings (the round's) made again
    assert planned(workdir, config, target) == {"teacher_windows": 1, "train_fold": 1}
    run_snakemake(workdir, target, "--configfile", config)
    windows = pd.read_csv(workdir / "results/experiments/base/teacher_windows/fold0.csv", dtype={"key": str})
    folds = pd.read_csv(workdir / "results/folds/folds.csv", dtype={"key": str})
    assert set(windows["fold"]) == {0} and set(windows["key"]) == set(folds.loc[folds["fold"] != 0, "key"])
    unlabeled = pd.read_csv(workdir / "results/experiments/base/unlabeled/fold0.csv")
    assert set(unlabeled["fold"]) == {0} and len(unlabeled) == 6  # 3 soundscapes of 10 s
    log = (workdir / "results/logs/train_fold/distilled/fold0.log").read_text()
    assert f"distillation from base: {len(windows) + len(unlabeled)} soft-labelled windows" in log
    made_from = upstream_files(workdir, config, target)
    assert {f for f in made_from if f.endswith("model.pt")} == {"results/experiments/base/models/fold0/model.pt"}
    assert {f for f in made_from if "teacher_windows" in f or "/unlabeled/fold" in f} == {
        "results/experiments/base/teacher_windows/fold0.csv", "results/experiments/base/unlabeled/fold0.csv"}
