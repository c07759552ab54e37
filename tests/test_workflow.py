"""Snakemake runs of the whole workflow on small generated datasets (tiny model, one epoch):
real runs, their outputs, and the rerun contracts (what a dry run plans after each kind of
change, and what a single fold's target builds)."""
import json
import re
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from conftest import REPO, run_snakemake, tone, write
from soundclf.comparison import calibrate

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

SMALL = {
    "folds": {"n_folds": 2},
    "mel": {"n_mels": 32, "n_fft": 1024, "hop_length": 512},
    "cache": {"n_shards": 4},
    "model": {"backbone": "lcnet_050"},
    "train": {"epochs": 1, "crop_seconds": 10, "batch_size": 4, "num_workers": 0},
}


# the built workflow's two experiments: the recipe's crops and plain 5 s crops
EXPERIMENTS = {"recipe": None, "crop5": {"train": {"crop_seconds": 5}}}
RECIPE = "results/experiments/recipe"
BIRDNET = "results/experiments/birdnet"  # BirdNET V2.4 fine-tuned (test_birdnet_fine_tuned_...)


def after_training(n_experiments=2, nested_folds=2):
    """What follows retraining n experiments: aggregation, prediction, figures, comparison
    and (with two experiments) the ensemble, and the nested ensemble's choice of every fold
    whose training folds were retrained (`nested_folds`)."""
    n = n_experiments
    return {"aggregate_oof": n, "choose_thresholds": n, "predict_shard": n, "predict_recordings": n, "detect_events": n,
            "plot_detections": n, "plot_training": n, "plot_oof": n, "plot_predictions": n, "compare_experiments": 1, "select_ensemble": 1,
            "ensemble_predictions": 1, "nested_ensemble_fold": nested_folds, "nested_ensemble": 1, "all": 1}


def planned_jobs(result) -> dict[str, int]:
    """Job counts from a dry run's 'Job stats' table ({} when nothing is to be done)."""
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def write_config(workdir, extra=None, name="config.test.yaml"):
    config = {"data": {"layout": "metadata", "audio_dir": "data/train_audio",
                       "metadata_csv": "data/train_metadata.csv",
                       "annotations": {"raven_dir": "data/annotations", "complete": True}},
              "predict": {"audio_dir": "data/soundscapes", "labels_csv": "data/soundscape_labels.csv"}} | SMALL | (extra or {})
    (workdir / name).write_text(yaml.safe_dump(config))
    return name


def built_config(workdir, extra=None, name="config.test.yaml"):
    """The built workflow's config (two experiments) with `extra` on top."""
    return write_config(workdir, {"experiments": EXPERIMENTS, "compare": {"reference": "recipe"},
                                  "threads": {"evaluate": 2}} | (extra or {}), name)


@pytest.fixture(scope="module")
def built_workdir(tmp_path_factory, tiny_dataset):
    """A working directory where the whole workflow of two experiments has run once."""
    workdir = tmp_path_factory.mktemp("built")
    shutil.copytree(tiny_dataset, workdir / "data")
    run_snakemake(workdir, "--configfile", built_config(workdir))
    return workdir


@pytest.fixture
def workdir(built_workdir, tmp_path):
    """A private copy (mtimes and Snakemake's metadata included) for a test to change."""
    copy = tmp_path / "w"
    shutil.copytree(built_workdir, copy, symlinks=True)
    return copy


def dry_run(workdir, *configfiles):
    args = [a for c in configfiles for a in ("--configfile", c)]
    return planned_jobs(run_snakemake(workdir, "-n", *args))


def test_outputs_are_complete(built_workdir):
    folds = pd.read_csv(built_workdir / "results/folds/folds.csv")
    meta = pd.read_csv(built_workdir / "data/train_metadata.csv")
    assert len(folds) == len(meta) and set(folds["fold"]) == {0, 1}
    keys = set()
    for shard in sorted((built_workdir / "results/mels").glob("*/shard_*.h5")):
        with h5py.File(shard) as h5:
            h5.visititems(lambda name, obj: keys.add(name) if isinstance(obj, h5py.Dataset) else None)
            assert all(h5[k].shape[0] == 32 for k in keys if k in h5)
    assert keys == set(folds["key"])
    logs = built_workdir / "results/logs"
    assert "1 torch threads" in (logs / "train_fold/recipe/fold0.log").read_text()  # threads.train, the default
    assert "2 torch threads" in (logs / "evaluate_fold/recipe/fold0.log").read_text()  # threads.evaluate: 2
    digests = [d.name for d in (built_workdir / "results/mels").iterdir()]
    assert len(digests) == 1  # both experiments share one cache
    for rule in ("index_audio", "assign_folds", f"mel_shard/{digests[0]}/000", "train_fold/crop5/fold1"):
        assert (built_workdir / f"results/logs/{rule}.log").stat().st_size > 0
        assert (built_workdir / f"results/benchmarks/{rule}.tsv").exists()


def test_unchanged_workflow_has_nothing_to_do(workdir):
    assert dry_run(workdir, "config.test.yaml") == {}


def test_changing_n_mels_reruns_every_mel_shard_and_no_index(workdir):
    config = built_config(workdir, {"mel": SMALL["mel"] | {"n_mels": 24}}, "config.mels.yaml")
    jobs = dry_run(workdir, config)
    assert jobs.get("mel_shard") == 4  # one new cache, shared by both experiments
    assert "index_audio" not in jobs and "assign_folds" not in jobs


def test_changing_top_db_retrains_but_reruns_no_mel_job(workdir):
    """top_db is applied when a segment is read, so the cache does not depend on it."""
    jobs = dry_run(workdir, built_config(workdir, {"mel": SMALL["mel"] | {"top_db": 60}}, "config.top_db.yaml"))
    assert jobs == {"train_fold": 4, "evaluate_fold": 4} | after_training()


def test_changing_annotations_retrains_and_reevaluates_but_reruns_no_index_or_mel_job(workdir):
    data = yaml.safe_load((workdir / "config.test.yaml").read_text())["data"]
    overlap = built_config(workdir, {"data": data | {"annotations": data["annotations"] | {"min_overlap_seconds": 0.3}}},
                           "config.overlap.yaml")
    assert dry_run(workdir, overlap) == {"train_fold": 4, "evaluate_fold": 4} | after_training()
    table = next((workdir / "data/annotations").rglob("*.selections.txt"))
    lines = table.read_text().splitlines()
    table.write_text("\n".join(lines[:-1]) + "\n")  # one selection fewer
    jobs = dry_run(workdir, "config.test.yaml")
    assert jobs == {"index_annotations": 1, "train_fold": 4, "evaluate_fold": 4} | after_training()


def test_changing_fold_count_reruns_no_index_or_mel_job(workdir):
    jobs = dry_run(workdir, built_config(workdir, {"folds": {"n_folds": 3}}, "config.folds.yaml"))
    assert jobs == {"assign_folds": 1, "train_fold": 6, "evaluate_fold": 6} | after_training(nested_folds=3)


def test_adding_one_recording_reruns_exactly_one_mel_shard(workdir):
    meta = pd.read_csv(workdir / "data/train_metadata.csv")
    first = meta.iloc[0]
    new_name = first["filename"].rsplit("/", 1)[0] + "/XC_new recording.ogg"
    write(workdir / "data/train_audio" / new_name, tone(4.0, 32000, 2500.0), 32000, "OGG", "VORBIS")
    meta = pd.concat([meta, pd.DataFrame([first.to_dict() | {"filename": new_name}])])
    meta.to_csv(workdir / "data/train_metadata.csv", index=False)
    jobs = dry_run(workdir, "config.test.yaml")
    assert jobs.get("mel_shard") == 1
    assert jobs.get("index_audio") == 1 and jobs.get("assign_folds") == 1


def test_editing_one_recording_reruns_exactly_one_mel_shard(workdir):
    """Shard jobs depend on manifests (key, path, size, mtime), not on the audio files: a
    replaced recording changes one manifest line, so one shard is planned again."""
    meta = pd.read_csv(workdir / "data/train_metadata.csv")
    path = workdir / "data/train_audio" / meta.iloc[0]["filename"]
    manifests = sorted((workdir / "results/index/manifests").glob("shard_*.tsv"))
    before = {m.name: m.stat().st_mtime_ns for m in manifests}
    data, sr = sf.read(path)
    sf.write(path, data[: len(data) // 2], sr)  # the recording cut in half, same name
    jobs = dry_run(workdir, "config.test.yaml")
    assert jobs.get("mel_shard") == 1 and jobs.get("index_audio") == 1
    changed = [m.name for m in manifests if m.stat().st_mtime_ns != before[m.name]]
    assert len(changed) == 1 and str(meta.iloc[0]["filename"]) in (workdir / "results/index/manifests" / changed[0]).read_text()


def test_model_stage_outputs(built_workdir):
    folds = pd.read_csv(built_workdir / "results/folds/folds.csv")
    classes = pd.read_csv(built_workdir / "results/index/classes.csv")["class"].tolist()
    results = built_workdir / RECIPE
    oof = pd.read_csv(results / "oof/oof_windows.csv")
    assert set(oof["key"]) == set(folds["key"])  # every recording evaluated, by its own fold
    held_out_by = oof.groupby("key")["fold"].first()
    assert (held_out_by == folds.set_index("key").loc[held_out_by.index, "fold"]).all()
    for key, duration in zip(folds["key"], folds["duration"]):  # 5 s windows, the last ending at the end
        ends = oof.loc[oof["key"] == key, "end"].tolist()
        assert ends[:-1] == [5.0 * (j + 1) for j in range(len(ends) - 1)] and len(ends) == max(1, -(-duration // 5))
        assert ends[-1] == pytest.approx(max(duration, 5.0), abs=1e-3)
    assert list(oof.columns) == ["fold", "key", "start", "end", *classes]
    assert oof[classes].to_numpy().min() >= 0 and oof[classes].to_numpy().max() <= 1
    cv = json.loads((results / "oof/cv_metrics.json").read_text())
    assert [m["fold"] for m in cv["per_fold"]] == [0, 1]
    assert {"mean", "std"} <= set(cv["mean_std"]["recording"]["padded_cmap"])
    assert "macro_roc_auc" in cv["pooled"]["recording"]
    # strong labels: every recording is annotated (the tiny dataset's Raven tables), window
    # metrics against the events each window holds, and against the weak labels apart
    annotations = pd.read_csv(built_workdir / "results/index/annotations.csv")
    assert set(annotations.loc[annotations["kind"] == "annotated", "key"]) == set(folds["key"])
    assert pd.read_csv(built_workdir / "results/index/annotations_rejected.csv").empty
    assert sum(m["n_annotated_recordings"] for m in cv["per_fold"]) == len(folds)
    assert {"window", "window_weak"} <= set(cv["mean_std"])
    assert "strong labels: " in (built_workdir / "results/logs/train_fold/recipe/fold0.log").read_text()
    per_class = pd.read_csv(results / "oof/per_class.csv")
    assert per_class["class"].tolist() == classes and (per_class["support"] > 0).all()
    for k in (0, 1):
        history = pd.read_csv(results / f"models/fold{k}/history.csv")
        assert history["epoch"].tolist() == [1] and {"train_loss", "val_loss", "padded_cmap"} <= set(history.columns)
        assert not (results / f"models/fold{k}/work").exists()  # checkpoint removed once the model is kept
    submission = pd.read_csv(results / "predictions/submission.csv")
    assert submission["row_id"].tolist() == ["soundscape_00_5", "soundscape_00_10"]
    assert list(submission.columns[1:]) == classes
    # detections: thresholds chosen on the OOF windows, a Raven table and Audacity labels per soundscape
    thresholds = pd.read_csv(results / "oof/thresholds.csv")
    assert thresholds["class"].tolist() == classes and (thresholds["support"] > 0).all()
    assert thresholds["f1_threshold"].between(0, 1).all()
    # (a recording at the top of predict.audio_dir has site '': empty in the CSV)
    detections = pd.read_csv(results / "predictions/detections.csv", parse_dates=["datetime"]).fillna({"site": ""})
    assert list(detections.columns) == ["file", "site", "datetime", "label", "start", "end", "score", "n_windows",
                                        "threshold"]
    assert (detections["score"] >= detections["threshold"]).all()
    assert (results / "predictions/raven/soundscape_00.Table.1.selections.txt").is_file()
    # Parquet: the window scores (file: the recording's path under predict.audio_dir, site,
    # datetime, start, end, a float32 column per class) and the detections
    windows = pd.read_parquet(results / "predictions/windows.parquet")
    assert list(windows.columns) == ["file", "site", "datetime", "start", "end", *classes]
    assert windows[["file", "site", "start", "end"]].values.tolist() == [["soundscape_00.ogg", "", 0.0, 5.0],
                                                                         ["soundscape_00.ogg", "", 5.0, 10.0]]
    assert windows["datetime"].isna().all()  # a name without a start time: no date-time, never a guessed one
    assert (windows[classes].dtypes == "float32").all()
    np.testing.assert_allclose(windows[classes].to_numpy(), submission[classes].to_numpy(), atol=1e-6)
    # (the CSV's empty datetime reads back in seconds, the Parquet's in nanoseconds)
    pd.testing.assert_frame_equal(pd.read_parquet(results / "predictions/detections.parquet"), detections, check_dtype=False)
    assert (results / "predictions/audacity/soundscape_00.txt").is_file()


def test_one_fold_target_builds_that_fold_only(workdir):
    shutil.rmtree(workdir / f"{RECIPE}/models/fold1")
    shutil.rmtree(workdir / f"{RECIPE}/oof/fold1")
    assert planned_jobs(run_snakemake(workdir, "-n", f"{RECIPE}/models/fold1/model.pt",
                                      "--configfile", "config.test.yaml")) == {"train_fold": 1}
    # fold 1's new windows: fold 0's nested choice is made again, fold 1's (made without them) is not
    assert dry_run(workdir, "config.test.yaml") == {"train_fold": 1, "evaluate_fold": 1} | after_training(1, 1)


def test_deleting_one_experiment_rebuilds_only_it(workdir):
    shutil.rmtree(workdir / "results/experiments/crop5")
    jobs = dry_run(workdir, "config.test.yaml")
    assert jobs == {"train_fold": 2, "evaluate_fold": 2} | after_training(1)


def test_adding_an_experiment_plans_only_its_jobs(workdir):
    experiments = EXPERIMENTS | {"lr": {"train": SMALL["train"] | {"lr": 0.003}}}
    jobs = dry_run(workdir, built_config(workdir, {"experiments": experiments}, "config.more.yaml"))
    assert jobs == {"train_fold": 2, "evaluate_fold": 2} | after_training(1)


def test_changing_one_experiment_reruns_only_that_experiment(workdir):
    experiments = EXPERIMENTS | {"crop5": {"train": {"crop_seconds": 5, "lr": 0.02}}}
    jobs = dry_run(workdir, built_config(workdir, {"experiments": experiments}, "config.one.yaml"))
    assert jobs == {"train_fold": 2, "evaluate_fold": 2} | after_training(1)


def test_an_experiment_with_other_mels_gets_its_own_cache(workdir):
    experiments = EXPERIMENTS | {"mels24": {"mel": {"n_mels": 24}}}
    jobs = dry_run(workdir, built_config(workdir, {"experiments": experiments}, "config.mels24.yaml"))
    assert jobs == {"mel_shard": 4, "train_fold": 2, "evaluate_fold": 2} | after_training(1)


def test_an_experiment_with_background_noise_caches_the_noise_folder_and_mixes_it_in(workdir):
    for name, freq in [("rain.wav", 700.0), ("sub/wind.wav", 2500.0)]:
        write(workdir / "data/noise" / name, tone(2.0, 16000, freq), 16000)
    noisy = {"train": SMALL["train"] | {"noise_dir": "data/noise", "noise_prob": 1.0, "white_noise_snr_db": [10, 20],
                                        "gain_db": 3, "time_shift_seconds": 1, "ema_decay": 0.9},
             "model": {"head": "attention"}}
    config = built_config(workdir, {"experiments": EXPERIMENTS | {"noisy": noisy}}, "config.noisy.yaml")
    assert dry_run(workdir, config) == {"noise_mels": 1, "train_fold": 2, "evaluate_fold": 2} | after_training(1)
    run_snakemake(workdir, "results/experiments/noisy/models/fold0/model.pt", "--configfile", config)
    (noise_cache,) = (workdir / "results/mels").glob("*/noise_*.h5")
    with h5py.File(noise_cache) as h5:
        assert sorted(h5) == ["rain.wav", "sub"] and "wind.wav" in h5["sub"]
    log = (workdir / "results/logs/train_fold/noisy/fold0.log").read_text()
    assert "background noise: 2 recordings" in log and "white noise: SNR [10, 20] dB" in log
    write(workdir / "data/noise/thunder.wav", tone(1.0, 16000, 150.0), 16000)  # one more noise file
    assert planned_jobs(run_snakemake(workdir, "-n", "results/experiments/noisy/models/fold0/model.pt",
                                      "--configfile", config)) == {"noise_mels": 1, "train_fold": 1}


def test_a_missing_noise_folder_stops_the_run_naming_the_key(workdir):
    config = built_config(workdir, {"train": SMALL["train"] | {"noise_dir": "data/no_such_folder"}}, "config.bad.yaml")
    result = run_snakemake(workdir, "-n", "--configfile", config, check=False)
    assert result.returncode != 0 and "train.noise_dir: folder 'data/no_such_folder' does not exist" in result.stdout + result.stderr


def test_changing_a_training_key_retrains_but_reruns_no_data_stage(workdir):
    config = built_config(workdir, {"train": SMALL["train"] | {"lr": 0.002}}, "config.lr.yaml")
    assert dry_run(workdir, config) == {"train_fold": 4, "evaluate_fold": 4} | after_training()


def test_changing_thread_counts_reruns_nothing(workdir):
    assert dry_run(workdir, built_config(workdir, {"threads": {"evaluate": 1, "train": 2}}, "config.threads.yaml")) == {}


def test_changing_a_prediction_key_retrains_nothing(workdir):
    config = built_config(workdir, {"predict": {"audio_dir": "data/soundscapes",
                                                "labels_csv": "data/soundscape_labels.csv", "batch_size": 8}}, "config.predict.yaml")
    assert dry_run(workdir, config) == {"predict_shard": 2, "predict_recordings": 2, "detect_events": 2, "plot_detections": 2,
                                        "plot_predictions": 2, "ensemble_predictions": 1, "all": 1}
    config = built_config(workdir, {"predict": {"audio_dir": "data/soundscapes", "labels_csv": "data/soundscape_labels.csv",
                                                "min_score": 0.3}}, "config.min_score.yaml")
    assert dry_run(workdir, config) == {"detect_events": 2, "plot_detections": 2, "all": 1}  # a detection key: detections only
    config = built_config(workdir, {"predict": {"audio_dir": "data/soundscapes", "labels_csv": "data/soundscape_labels.csv",
                                                "neighbour_weight": 0.1}}, "config.smooth.yaml")
    assert dry_run(workdir, config) == {"predict_recordings": 2, "detect_events": 2, "plot_detections": 2, "plot_predictions": 2,
                                        "ensemble_predictions": 1, "all": 1}  # post-processing: no shard predicts again


def test_prediction_in_shards_reruns_only_the_shard_a_new_file_falls_in(workdir):
    from soundclf.sources import shard_of

    soundscape = next((workdir / "data/soundscapes").glob("*.ogg"))
    for i in range(5):
        shutil.copy(soundscape, workdir / f"data/soundscapes/site_{i}.ogg")
    sharded = built_config(workdir, {"predict": {"audio_dir": "data/soundscapes", "n_shards": 3}}, "config.shards.yaml")
    run_snakemake(workdir, "--configfile", sharded)
    submission = pd.read_csv(workdir / f"{RECIPE}/predictions/submission.csv")
    stems = submission["row_id"].str.rsplit("_", n=1).str[0]
    assert stems.unique().tolist() == sorted({p.stem for p in (workdir / "data/soundscapes").glob("*.ogg")})
    assert len(list((workdir / f"{RECIPE}/predictions/shards").glob("shard_*.csv"))) == 3
    assert not list((workdir / f"{RECIPE}/predictions/shards").glob("*.parts"))  # complete shards keep no parts
    shutil.copy(soundscape, workdir / "data/soundscapes/site_new.ogg")
    jobs = dry_run(workdir, sharded)  # one shard of each experiment, and what follows from it
    assert jobs == {"predict_shard": 2, "predict_recordings": 2, "detect_events": 2, "plot_detections": 2, "plot_predictions": 2,
                    "ensemble_predictions": 1, "all": 1}
    planned = run_snakemake(workdir, "-n", "--configfile", sharded).stdout
    assert f"shard_{shard_of('site_new.ogg', 3)}.csv" in planned


def test_an_archive_of_three_recorders_with_the_same_file_names_is_predicted_whole(workdir):
    """AudioMoth cards name files by start time, so every recorder's folder holds the same names."""
    names = ["20240501_060000.WAV", "20240501_070000.WAV"]
    for site in ("site_A", "site_B", "site_C"):
        for i, name in enumerate(names):
            write(workdir / "data/recorders" / site / name, tone(12.0, 16000, 600.0 + 300 * i), 16000)
    write(workdir / "data/recorders/site_C/notes.WAV", tone(6.0, 16000), 16000)  # no time stamp
    write(workdir / "data/recorders/site_B/20241301_060000.WAV", tone(6.0, 16000), 16000)  # month 13
    config = built_config(workdir, {"predict": {"audio_dir": "data/recorders", "n_shards": 2, "min_score": 0.0}},
                          "config.recorders.yaml")
    out = f"{RECIPE}/predictions"
    run_snakemake(workdir, f"{out}/detections.csv", f"{RECIPE}/report/detection_activity.png", "--configfile", config)
    windows = pd.read_parquet(workdir / f"{out}/windows.parquet")
    keys = sorted(f"{site}/{name}" for site in ("site_A", "site_B", "site_C") for name in names)
    keys = sorted(keys + ["site_C/notes.WAV", "site_B/20241301_060000.WAV"])
    assert sorted(windows["file"].unique()) == keys
    assert windows.groupby("file").size().to_dict() == {k: 2 if k.endswith(("notes.WAV", "20241301_060000.WAV")) else 3
                                                        for k in keys}  # 12 s: 0-5, 5-10, 7-12
    assert (windows["site"] == windows["file"].str.split("/").str[0]).all()
    dated = windows[windows["file"] == "site_B/20240501_070000.WAV"]
    assert dated["datetime"].tolist() == [pd.Timestamp("2024-05-01 07:00:00") + pd.Timedelta(seconds=s)
                                          for s in dated["start"]]
    undated = windows["file"].isin(["site_C/notes.WAV", "site_B/20241301_060000.WAV"])
    assert windows.loc[undated, "datetime"].isna().all() and windows.loc[~undated, "datetime"].notna().all()
    log = (workdir / "results/logs/predict_recordings/recipe.log").read_text()
    assert log.count("20241301_060000") == 1 and "site_B: 1 file name(s) carry a time stamp that is no date-time" in log
    submission = pd.read_csv(workdir / f"{out}/submission.csv")  # stems repeat: row ids name the path
    assert submission["row_id"].str.rsplit("_", n=1).str[0].unique().tolist() == [k.rsplit(".", 1)[0] for k in keys]
    detections = pd.read_csv(workdir / f"{out}/detections.csv")
    assert sorted(detections["file"].unique()) == keys and set(detections["site"]) == {"site_A", "site_B", "site_C"}
    for key in keys:
        stem = key.rsplit(".", 1)[0]
        assert (workdir / f"{out}/raven/{stem}.Table.1.selections.txt").is_file()
        assert (workdir / f"{out}/audacity/{stem}.txt").read_text()
    first = detections[detections["file"] == "site_A/20240501_060000.WAV"].iloc[0]
    assert pd.Timestamp(first["datetime"]) == pd.Timestamp("2024-05-01 06:00:00") + pd.Timedelta(seconds=first["start"])
    assert (workdir / f"{RECIPE}/report/detection_activity.png").stat().st_size > 10_000


def test_birdnet_fine_tuned_per_fold_is_an_experiment_like_any_cnn(workdir):
    """model.backbone birdnet_v24: its own 48 kHz waveform cache, per-fold training from
    BirdNET's weights, evaluation, OOF metrics and prediction through the same rules."""
    from soundclf.embedding.model import embedding_available

    if embedding_available() is not None:
        pytest.skip(f"BirdNET V2.4 not available: {embedding_available()}")
    config = built_config(workdir, {"experiments": {"birdnet": {"model": {"backbone": "birdnet_v24"}}},
                                    "train": SMALL["train"] | {"batch_size": 2}}, "config.birdnet.yaml")
    planned = dry_run(workdir, config)
    assert planned["mel_shard"] == SMALL["cache"]["n_shards"] and "index_audio" not in planned  # a cache of its own
    run_snakemake(workdir, f"{BIRDNET}/oof/cv_metrics.json",
                  f"{BIRDNET}/predictions/windows.parquet", "--configfile", config)
    log = (workdir / "results/logs/train_fold/birdnet/fold0.log").read_text()
    assert "CC BY-NC-SA 4.0" in log and "BirdNET V2.4 fine-tuned" in log
    cv = json.loads((workdir / f"{BIRDNET}/oof/cv_metrics.json").read_text())
    assert 0 <= cv["pooled"]["recording"]["macro_roc_auc"] <= 1
    windows = pd.read_parquet(workdir / f"{BIRDNET}/predictions/windows.parquet")
    soundscapes = pd.read_parquet(workdir / f"{RECIPE}/predictions/windows.parquet")
    assert windows[["file", "start", "end"]].equals(soundscapes[["file", "start", "end"]])  # the same 5 s windows


def test_prediction_with_onnxruntime_matches_torch(workdir):
    by_torch = pd.read_csv(workdir / f"{RECIPE}/predictions/submission.csv")
    onnx = built_config(workdir, {"predict": {"audio_dir": "data/soundscapes", "labels_csv": "data/soundscape_labels.csv",
                                              "backend": "onnx"}}, "config.onnx.yaml")
    assert dry_run(workdir, onnx) == {"export_onnx": 4, "predict_shard": 2, "predict_recordings": 2, "detect_events": 2, "plot_detections": 2,
                                      "plot_predictions": 2, "ensemble_predictions": 1, "all": 1}
    run_snakemake(workdir, "--configfile", onnx)
    assert (workdir / f"{RECIPE}/models/fold1/model.onnx").is_file()
    by_onnx = pd.read_csv(workdir / f"{RECIPE}/predictions/submission.csv")
    assert by_onnx["row_id"].tolist() == by_torch["row_id"].tolist()
    np.testing.assert_allclose(by_onnx.iloc[:, 1:].to_numpy(), by_torch.iloc[:, 1:].to_numpy(), atol=1e-4)


REPORT_SECTIONS = {  # category: (files under results/, a phrase of the caption)
    "0. Input data": (["report/input_data.png"], "Input data: how many of the listed recordings"),
    "1. Training": ([f"experiments/{e}/report/training_curves.png" for e in EXPERIMENTS], "Training curves: per fold"),
    "2. Cross-validation": ([f"experiments/{e}/report/{n}" for e in EXPERIMENTS for n in
                             ("cv_metrics.csv", "per_class.png", "confusion.png", "pr_curves.png")],
                            "Precision-recall on OOF 5 s windows"),
    "3. Examples": ([f"experiments/{e}/report/examples.png" for e in EXPERIMENTS],
                    "Example log-mel windows as the model sees them"),
    "4. Prediction": ([f"experiments/{e}/report/{n}.png" for e in EXPERIMENTS for n in
                       ("prediction_timeline", "detection_activity")], "Prediction timeline"),
    "5. Experiments": (["experiments/comparison.png"], "Experiments compared on the same folds"),
}


def test_report_figures_are_made_and_the_html_report_has_every_section(built_workdir):
    results = built_workdir / "results"
    for files, _ in REPORT_SECTIONS.values():
        for name in files:
            content = (results / name).read_bytes()
            assert content.startswith(b"level,") if name.endswith(".csv") else (
                content.startswith(b"\x89PNG") and len(content) > 5000), name
    cv = pd.read_csv(results / RECIPE.removeprefix("results/") / "report/cv_metrics.csv")
    assert set(cv["level"]) == {"window", "window_weak", "recording"} and cv["mean"].notna().all()
    assert {"fold 0", "fold 1", "pooled"} <= set(cv.columns)
    for rule in ("plot_index", "plot_training/recipe", "plot_oof/crop5", "plot_predictions/recipe",
                 "compare_experiments", "select_ensemble", "ensemble_predictions", "nested_ensemble_fold/fold0",
                 "nested_ensemble"):
        assert (results / f"logs/{rule}.log").exists(), rule

    run_snakemake(built_workdir, "--report", "report.html", "--configfile", "config.test.yaml")
    html = (built_workdir / "report.html").read_text()
    for category, (files, caption) in REPORT_SECTIONS.items():
        assert category in html and caption in html, category
        assert all(name.rsplit("/", 1)[-1] in html for name in files)
    pngs = sum(name.endswith(".png") for files, _ in REPORT_SECTIONS.values() for name in files)
    assert html.count("iVBORw0KGgo") == pngs  # each PNG embedded (base64 of the PNG signature)


def test_experiments_are_compared_fold_by_fold_and_ensembled(built_workdir):
    results = built_workdir / "results/experiments"
    table = pd.read_csv(results / "comparison.csv").set_index("experiment")
    assert set(table.index) == {"recipe", "crop5", "ensemble (nested)"}
    metric = "recording.padded_cmap"
    cvs = {e: json.loads((results / f"{e}/oof/cv_metrics.json").read_text()) for e in ("recipe", "crop5")}
    diffs = [a[metric.split(".")[0]]["padded_cmap"] - b[metric.split(".")[0]]["padded_cmap"]
             for a, b in zip(cvs["crop5"]["per_fold"], cvs["recipe"]["per_fold"])]
    assert table.loc["crop5", f"{metric}.diff_vs_recipe.mean"] == pytest.approx(np.mean(diffs))
    assert table.loc["recipe", f"{metric}.diff_vs_recipe.mean"] == 0
    assert table.loc["crop5", f"{metric}.folds_won_vs_recipe"] == f"{sum(d > 0 for d in diffs)}/2"
    assert (table["train_seconds_per_fold"].drop("ensemble (nested)") > 0).all()
    assert table[f"{metric}.mean"].notna().all() and np.isnan(table.loc["ensemble (nested)", "train_seconds_per_fold"])
    ensemble = json.loads((results / "ensemble/ensemble.json").read_text())
    assert set(ensemble["weights"]) <= {"recipe", "crop5"} and sum(ensemble["weights"].values()) == pytest.approx(1)
    assert ensemble["optimistic_score"] >= max(ensemble["single_scores"].values()) - 1e-9  # greedy starts at the best single
    # the nested ensemble: each fold scored with the choice made on the other fold, a row of the table
    nested = json.loads((results / "ensemble/nested/cv_metrics.json").read_text())
    assert [f["fold"] for f in nested["per_fold"]] == [0, 1]
    assert json.loads((results / "ensemble/nested/fold0.json").read_text())["training_folds"] == [1]
    ensemble_diffs = [f["recording"]["padded_cmap"] - r["recording"]["padded_cmap"]
                      for f, r in zip(nested["per_fold"], cvs["recipe"]["per_fold"])]
    assert table.loc["ensemble (nested)", f"{metric}.diff_vs_recipe.mean"] == pytest.approx(np.mean(ensemble_diffs))
    submission = pd.read_csv(results / "ensemble/predictions/submission.csv")
    members = {e: pd.read_csv(results / f"{e}/predictions/submission.csv") for e in ensemble["weights"]}
    expected = sum(w * calibrate(members[e].iloc[:, 1:], ensemble["calibration"][e]).to_numpy()
                   for e, w in ensemble["weights"].items())
    assert np.allclose(submission.iloc[:, 1:].to_numpy(), expected, atol=1e-6)


@pytest.mark.slow
def test_the_results_notebook_runs_on_a_run_and_names_what_has_not_run(built_workdir, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    committed = nbformat.read(REPO / "notebooks/explore_results.ipynb", as_version=4)
    assert all(not c.get("outputs") and not c.get("execution_count") for c in committed.cells if c.cell_type == "code")

    def run(results, cwd):
        monkeypatch.setenv("SOUNDCLF_RESULTS", str(results))
        nb = nbformat.read(REPO / "notebooks/explore_results.ipynb", as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        text = "\n".join(o.get("text", "") for o in outputs)
        return outputs, text

    outputs, text = run(built_workdir / "results", built_workdir)  # a finished run of two experiments
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # per-class AP, confusion, the worst windows, the timeline
    assert sum("<audio" in o.get("data", {}).get("text/html", "") for o in outputs) == 3
    assert "has not run yet" not in text

    (tmp_path / "empty").mkdir()  # nothing has run: each section says which stage is missing
    outputs, text = run(tmp_path / "empty", tmp_path)
    assert not any(o.output_type == "error" for o in outputs)
    assert "(rule train_fold) has not run yet" in text and "(rule compare_experiments) has not run yet" in text


# --- review sets (docs/review.md) on the built workflow's predictions --------------------------

REVIEW = {"review": {"sets": {"listen": {"experiment": "recipe", "per_class": 6, "bins": 3},
                              "heard": {"experiment": "recipe", "source": "oof", "per_class": 12, "bins": 3}},
                     "min_marks": 2, "bootstrap": 50}}


def oracle_marks(review_dir):
    """Marks from a stand-in listener: the upper half of each class's items by score right,
    the rest wrong (both outcomes for every class), written through the mark store."""
    from soundclf.review.items import read_items
    from soundclf.review.store import append_mark

    items = read_items(review_dir)
    upper = items.groupby("label")["score"].rank(method="first") > items.groupby("label")["score"].transform("size") / 2
    for row, right in zip(items.itertuples(), upper):
        append_mark(review_dir / "marks.csv", reviewer="oracle", item=row.item, file=row.file, start=row.start,
                    end=row.end, label=row.label, mark="yes" if right else "no")
    return items


def test_review_sets_are_drawn_and_calibrated_from_their_marks(workdir):
    config = built_config(workdir, REVIEW, "config.review.yaml")
    assert dry_run(workdir, config) == {"review_set": 2, "all": 1}
    result = run_snakemake(workdir, "--configfile", config, "--", "results/review/heard/calibration.csv", check=False)
    assert result.returncode != 0 and "no marks yet" in result.stderr and "soundclf review results/review/heard" in result.stderr
    run_snakemake(workdir, "--configfile", config)
    n_classes = len(pd.read_csv(workdir / "results/index/classes.csv"))
    windows = pd.read_parquet(workdir / f"{RECIPE}/predictions/windows.parquet")
    listened = oracle_marks(workdir / "results/review/listen")
    assert len(listened) == n_classes * min(6, len(windows))  # from the predictions
    review_dir = workdir / "results/review/heard"
    items = oracle_marks(review_dir)
    assert len(items) == 12 * n_classes and set(items["drawn_by"]) == {"stratified"}
    assert all((review_dir / "clips" / f"{item}{ext}").stat().st_size > 0 for item in items["item"] for ext in (".wav", ".png"))
    assert (items["clip_start"] <= items["start"]).all() and (items["clip_end"] > items["start"]).all()  # short
    # recordings (looped into a 5 s window for the model) end their clip where their audio ends

    marks_before = (review_dir / "marks.csv").read_bytes()
    assert dry_run(workdir, config) == {"calibrate": 2, "export_marks": 2, "all": 1}  # marks exist: calibrated in `all`
    run_snakemake(workdir, "--configfile", config)
    calibration = pd.read_csv(review_dir / "calibration.csv")
    assert set(calibration["target"]) == {0.9, 0.95, 0.99} and calibration["class"].nunique() == n_classes
    assert (calibration["n_marks"] == 12).all() and (calibration["status"] == "ok").any()
    density = pd.read_csv(review_dir / "call_density.csv", keep_default_na=False)
    assert "" in set(density["site"])
    exported = pd.read_csv(review_dir / "export/marks.csv")
    assert len(exported) == len(items) and any((review_dir / "export/raven").iterdir())

    # a larger sample reruns that review set only and keeps every mark; the marks of the items
    # it still holds count
    review16 = {"review": REVIEW["review"] | {"sets": REVIEW["review"]["sets"] | {
        "heard": REVIEW["review"]["sets"]["heard"] | {"per_class": 16}}}}
    bigger = built_config(workdir, review16, "config.review16.yaml")
    assert dry_run(workdir, bigger) == {"review_set": 1, "calibrate": 1, "export_marks": 1, "all": 1}
    run_snakemake(workdir, "--configfile", bigger)
    assert (review_dir / "marks.csv").read_bytes() == marks_before
    assert set(items["item"]) <= set(pd.read_csv(review_dir / "items.csv")["item"])

    # a new mark reruns that set's calibration and export, nothing else
    from soundclf.review.store import append_mark

    row = items.iloc[0]
    append_mark(review_dir / "marks.csv", reviewer="oracle", item=row["item"], file=row["file"], start=row["start"],
                end=row["end"], label=row["label"], mark="unsure")
    assert dry_run(workdir, bigger) == {"calibrate": 1, "export_marks": 1, "all": 1}

    # calibrated detections: only detect_events of that experiment reruns
    calibrated = built_config(workdir, review16 | {"experiments": EXPERIMENTS | {"recipe": {"predict": {
        "threshold": "calibrated", "review_set": "heard"}}}}, "config.calibrated.yaml")
    run_snakemake(workdir, "--configfile", bigger)
    assert dry_run(workdir, calibrated) == {"detect_events": 1, "plot_detections": 1, "all": 1}
    run_snakemake(workdir, "--configfile", calibrated)
    assert "probability" in pd.read_csv(workdir / f"{RECIPE}/predictions/detections.csv").columns
    assert "calibrated, probability 0.95" in (workdir / "results/logs/detect_events/recipe.log").read_text()

    # marks as training labels (train.review_marks): only the experiment that reads them
    # retrains, and a fold's model leaves out its held-out recordings' marks
    experiments = EXPERIMENTS | {"recipe": {"predict": {"threshold": "calibrated", "review_set": "heard"}},
                                 "crop5": {"train": {"crop_seconds": 5, "review_marks": ["heard"]}}}
    trained = built_config(workdir, review16 | {"experiments": experiments}, "config.marks.yaml")
    assert dry_run(workdir, trained) == {"review_labels": 1, "train_fold": 2, "evaluate_fold": 2} | after_training(1)
    crop5 = "results/experiments/crop5"
    run_snakemake(workdir, "--configfile", trained, "--", f"{crop5}/models/fold0/model.pt")
    labels = pd.read_csv(review_dir / "labels.csv")
    assert set(labels["kind"]) == {"event", "negative", "partial"} and (labels["source"].str.contains("marks.csv")).all()
    folds = pd.read_csv(workdir / "results/folds/folds.csv")
    held_out = folds.loc[folds["fold"] == 0, "key"]
    data_annotations = pd.read_csv(workdir / "results/index/annotations.csv")
    annotated = set(labels["key"]) | set(data_annotations["key"])
    n_held_out = len(annotated & set(held_out))
    assert held_out.isin(labels["key"]).any()
    assert f"the annotations of {n_held_out} held-out recordings left out" in \
        (workdir / "results/logs/train_fold/crop5/fold0.log").read_text()
