"""Whole-workflow runs on fresh working directories (no shared build): bad input stops the
run before any job, naming the file or key and the fix, or is rejected and the rest used; a
single fold's target on a fresh folder plans that fold alone. Apart from test_workflow.py so
that the two test workers share these minutes (pytest-xdist hands out whole files)."""
import ast
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import run_snakemake
from hostile_corpus import add_hostile_corpus
from soundclf.mel_cache import MelCache
from test_workflow import SMALL, planned_jobs, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def test_hostile_corpus_is_rejected_or_used_and_the_run_finishes(tmp_path, tiny_dataset):
    """The generated hostile corpus mixed into the tiny dataset, through every stage: the
    rejected table lists exactly the cases that must be rejected, the rest is cached, trained
    on and evaluated without a NaN anywhere; a bad file among the soundscapes is skipped."""
    shutil.copytree(tiny_dataset, tmp_path / "data")
    cases = add_hostile_corpus(tmp_path / "data")
    (tmp_path / "data/soundscapes/broken.wav").write_text("not a soundscape\n" * 20)
    run = run_snakemake(tmp_path, "--configfile", write_config(tmp_path, {"data": {
        "layout": "metadata", "audio_dir": "data/train_audio", "metadata_csv": "data/train_metadata.csv",
        "max_rejected_fraction": 1.0}}))
    results = tmp_path / "results"

    rejected = pd.read_csv(results / "index/rejected.csv")
    assert set(rejected["key"]) == {c.filename for c in cases if c.expect == "rejected"}
    assert rejected["fix"].str.len().min() > 10
    index = pd.read_csv(results / "index/recordings.csv")
    assert {c.filename for c in cases if c.expect != "rejected"} <= set(index["key"])
    cache = MelCache(next((results / "mels").iterdir()), SMALL["cache"]["n_shards"])
    for key in index["key"]:
        mel = cache.full(key)
        assert mel.shape[1] > 0 and np.isfinite(mel).all(), key
    cache.close()
    for fold in range(SMALL["folds"]["n_folds"]):
        assert np.isfinite(pd.read_csv(results / f"experiments/base/models/fold{fold}/history.csv")["train_loss"]).all()
    oof = pd.read_csv(results / "experiments/base/oof/oof_windows.csv")
    assert set(oof["key"]) == set(index["key"]) and np.isfinite(oof.iloc[:, 4:].to_numpy()).all()
    index_log = (results / "logs/index_audio.log").read_text()
    assert "duplicate audio" in index_log and "odd/copy_a.wav" in index_log
    assert f"rejected {len(rejected)} file(s)" in index_log
    listed = len(pd.read_csv(tmp_path / "data/train_metadata.csv"))
    summary = f"kept {len(index)} of {listed} recordings; rejected {len(rejected)}"
    assert summary in index_log and f"soundclf input data: {summary}" in run.stdout + run.stderr  # the run's end
    assert "x truncated" in index_log and "results/index/rejected.csv" in index_log
    notes = index.set_index("key")["note"].fillna("")
    assert notes["odd/xeno_canto_style.mp3"].startswith("length by decoding")
    assert "broken.wav" in (results / "logs/predict_shard/base/shard_0.log").read_text()
    assert not pd.read_csv(results / "experiments/base/predictions/submission.csv")["row_id"].str.startswith("broken").any()


def test_index_stops_the_run_when_more_than_max_rejected_fraction_is_lost(tmp_path, tiny_dataset):
    """Two of a class's files broken (2 of 14 listed > 2 %): the index job fails before any
    training, with the summary, the lost class and both fixes; raising the key lets it run."""
    shutil.copytree(tiny_dataset, tmp_path / "data")
    meta = pd.read_csv(tmp_path / "data/train_metadata.csv")
    extra = pd.DataFrame([meta.iloc[0].to_dict() | {"filename": f"gone/XC{i}.ogg", "primary_label": "lostbird"}
                          for i in (1, 2)])
    pd.concat([meta, extra]).to_csv(tmp_path / "data/train_metadata.csv", index=False)
    (tmp_path / "data/train_audio/gone").mkdir()
    for i in (1, 2):
        (tmp_path / f"data/train_audio/gone/XC{i}.ogg").write_bytes(b"")  # an interrupted download
    result = run_snakemake(tmp_path, "--configfile", write_config(tmp_path), check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"kept {len(meta)} of {len(meta) + 2} recordings; rejected 2" in text
    assert "2 x empty file" in text and "classes that lost all their recordings: lostbird" in text
    assert "data.max_rejected_fraction" in text and "repair or remove" in text
    assert not (tmp_path / "results/index/recordings.csv").exists() and not (tmp_path / "results/experiments").exists()
    assert "gone/XC1.ogg" in (tmp_path / "results/logs/index_audio.log").read_text()

    config = write_config(tmp_path, {"data": {"layout": "metadata", "audio_dir": "data/train_audio",
                                              "metadata_csv": "data/train_metadata.csv", "max_rejected_fraction": 0.2}})
    run_snakemake(tmp_path, "results/index/summary.json", "--configfile", config)
    summary = json.loads((tmp_path / "results/index/summary.json").read_text())
    assert (summary["kept"], summary["rejected"], summary["lost_classes"]) == (len(meta), 2, ["lostbird"])


def test_invalid_config_stops_before_any_job_naming_the_key(tmp_path):
    # each run's mistakes are found by one check and all named together
    for bad, messages in [
        ({"mel": {"n_mels": "many"}, "folds": {"n_fold": 3, "n_folds": 1}},
         ["mel.n_mels: 'many' is not of type 'integer'; set it to a value of type integer",
          "folds.n_fold: unknown key; did you mean 'n_folds'?",
          "folds.n_folds: 1 is less than the minimum of 2; set it to at least 2"]),
        ({"mel": {"hop_length": 4096, "n_fft": 1024, "fmax": 20000}, "train": {"crop_seconds": 12},
          "model": {"pretrained_path": "missing.pth"}},
         ["mel.hop_length (4096) exceeds mel.n_fft (1024)", "mel.fmax (20000) is above the Nyquist frequency",
          "train.crop_seconds (12) must be a whole multiple", "model.pretrained_path: file 'missing.pth' does not exist"]),
        ({"model": {"backbone": "efficientnet_bo"}}, ["model.backbone: 'efficientnet_bo' is not a model of timm"]),
        ({"data": {"layout": "folders", "audio_dir": "no/such/dir"}}, ["data.audio_dir: folder 'no/such/dir' does not exist"]),
        ({"data": {"layout": "folders", "audio_dir": ".", "annotations": {"raven_dir": "no/tables"}}},
         ["data.annotations.raven_dir: folder 'no/tables' does not exist"]),
    ]:
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(bad))
        result = run_snakemake(tmp_path, "--configfile", "c.yaml", check=False)
        for message in messages:
            assert result.returncode != 0 and message in result.stdout + result.stderr, message
        assert not (tmp_path / "results").exists()


def test_one_fold_target_on_a_fresh_workdir_trains_no_other_fold(tmp_path, tiny_dataset):
    shutil.copytree(tiny_dataset, tmp_path / "data")
    jobs = planned_jobs(run_snakemake(tmp_path, "-n", "results/experiments/base/oof/fold0/metrics.json",
                                      "--configfile", write_config(tmp_path)))
    assert jobs == {"index_audio": 1, "index_annotations": 1, "assign_folds": 1, "mel_shard": 4, "train_fold": 1,
                    "evaluate_fold": 1}


def test_sdm_apptainer_without_apptainer_stops_before_any_job(tmp_path):
    if shutil.which("apptainer") or shutil.which("singularity"):
        pytest.skip("apptainer is installed here")
    result = run_snakemake(tmp_path, "-n", "--sdm", "apptainer", "--config",
                           'container={"image": "docker://example.org/soundclf:1"}', check=False)
    assert result.returncode != 0 and "the apptainer command is not installed here" in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()


def labels_column_dataset(tmp_path, tiny_dataset, extra_rows=()):
    """The tiny dataset with its labels in one ';'-separated column (primary first), and two
    no-call rows (an empty label, 'nocall') naming copies of two of its files."""
    shutil.copytree(tiny_dataset, tmp_path / "data")
    meta = pd.read_csv(tmp_path / "data/train_metadata.csv", keep_default_na=False)
    birds = [";".join([p, *ast.literal_eval(s)]) for p, s in zip(meta["primary_label"], meta["secondary_labels"])]
    table = pd.DataFrame({"clip": meta["filename"], "birds": birds, "author": meta["author"]})
    (tmp_path / "data/train_audio/quiet").mkdir()
    for i, label in enumerate(["", "nocall"]):
        source = tmp_path / "data/train_audio" / meta["filename"][i]
        shutil.copy(source, tmp_path / f"data/train_audio/quiet/clip{i}{source.suffix}")
        table.loc[len(table)] = [f"quiet/clip{i}{source.suffix}", label, "Recordist 01"]
    for row in extra_rows:
        table.loc[len(table)] = row
    table.to_csv(tmp_path / "data/labels.csv", index=False)
    return write_config(tmp_path, {"data": {"layout": "metadata", "audio_dir": "data/train_audio",
                                            "metadata_csv": "data/labels.csv",
                                            "columns": {"filename": "clip", "labels": "birds"}}})


def test_a_labels_column_with_no_call_rows_trains_and_leads_with_multi_label_metrics(tmp_path, tiny_dataset):
    """Multi-label data (a labels column, no-call rows) through training and the comparison:
    one plan-time warning against softmax CE, the no-call rows in both folds, and every summary
    led by macro ROC-AUC and padded cmAP."""
    config = labels_column_dataset(tmp_path, tiny_dataset)
    run = run_snakemake(tmp_path, "results/experiments/comparison.csv", "--configfile", config)
    said = run.stdout + run.stderr
    assert said.count("train with train.loss: ce") == 1 and "Set train.loss: bce (or focal)" in said
    results = tmp_path / "results"
    summary = json.loads((results / "index/summary.json").read_text())
    assert summary["no_call"] == {"empty label": 1, "label 'nocall'": 1} and summary["labels"]["multilabel"]
    folds = pd.read_csv(results / "folds/folds.csv", keep_default_na=False)
    assert sorted(folds.loc[folds["no_call"] != "", "fold"]) == [0, 1]
    assert "labels separated by ';'" in (results / "logs/index_audio.log").read_text()
    cv = json.loads((results / "experiments/base/oof/cv_metrics.json").read_text())
    assert cv["labels"]["lead_metrics"] == ["recording.macro_roc_auc", "recording.padded_cmap"]
    columns = pd.read_csv(results / "experiments/comparison.csv").columns.tolist()
    assert columns[1:5] == ["recording.macro_roc_auc.mean", "recording.macro_roc_auc.std",
                            "recording.padded_cmap.mean", "recording.padded_cmap.std"]
    assert "soundclf cross-validation:\n  base: macro ROC-AUC " in said  # the end of the run
    assert "multi-label data (" in said and "results lead with macro ROC-AUC and padded cmAP" in said


def test_a_labels_column_mixing_separators_or_a_negative_label_as_class_stops_before_any_job(tmp_path, tiny_dataset):
    for name, row, message in [
            ("mixed", ["whistler/XC104057.flac", "whistler,upsweeper", "Recordist 01"],
             "column 'birds' separates labels with ',' ('whistler,upsweeper'), but line 3 separates labels with ';'"),
            ("negative", ["whistler/XC104057.flac", "noise;whistler", "Recordist 01"],
             "label 'noise' is one of data.negative_labels")]:
        workdir = tmp_path / name
        config = labels_column_dataset(workdir, tiny_dataset, [row])
        result = run_snakemake(workdir, "-n", "--configfile", config, check=False)
        assert result.returncode != 0 and message in result.stdout + result.stderr, name
        assert "labels.csv, line 16" in result.stdout + result.stderr  # the row: header, 12 + 2 rows, then it
        assert not (workdir / "results").exists()
