"""Datasets as they ship: a metadata `fold` column used as given (or refused when it would be
ignored), and the founding project's table (absolute paths, class ids, folds)."""
import shutil

import pandas as pd
import pytest
import yaml

from conftest import run_snakemake
from soundclf.indexing import BadInputError, build_index
from soundclf.sources import list_recordings
from test_workflow import SMALL, planned_jobs

pytestmark = [pytest.mark.workflow]

DATA = {"layout": "metadata", "audio_dir": "data/train_audio", "metadata_csv": "data/train_metadata.csv"}


@pytest.fixture
def dataset(tmp_path, tiny_dataset):
    shutil.copytree(tiny_dataset, tmp_path / "data")
    return tmp_path


def with_fold_column(workdir, values):
    meta = pd.read_csv(workdir / "data/train_metadata.csv")
    meta["fold"] = [values[i % len(values)] for i in range(len(meta))]
    meta.to_csv(workdir / "data/train_metadata.csv", index=False)
    return meta


def config(workdir, folds=None, data=None, name="c.yaml"):
    (workdir / name).write_text(yaml.safe_dump(SMALL | {"data": DATA | (data or {}), "folds": folds or {},
                                                        "predict": {"audio_dir": None}}))
    return name


def test_a_fold_column_is_never_silently_overwritten(dataset):
    with_fold_column(dataset, [1, 2, 3])
    result = run_snakemake(dataset, "-n", "--configfile", config(dataset), check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "has a 'fold' column" in text and "folds.column: fold" in text and "rename" in text


def test_given_folds_plan_per_fold_targets_exactly_as_computed_folds(dataset):
    with_fold_column(dataset, ["10", "2", "3"])
    given = planned_jobs(run_snakemake(dataset, "-n", "--configfile", config(dataset, {"column": "fold"})))
    meta = pd.read_csv(dataset / "data/train_metadata.csv").drop(columns="fold")
    meta.to_csv(dataset / "data/train_metadata.csv", index=False)
    computed = planned_jobs(run_snakemake(dataset, "-n", "--configfile", config(dataset, {"n_folds": 3})))
    assert given == computed and given["train_fold"] == 3 and given["evaluate_fold"] == 3


def test_given_folds_are_used_as_given_and_the_original_value_kept(dataset):
    meta = with_fold_column(dataset, ["10", "2", "3"])
    run_snakemake(dataset, "results/folds/folds.csv", "--configfile", config(dataset, {"column": "fold"}))
    folds = pd.read_csv(dataset / "results/folds/folds.csv")
    given = dict(zip(meta["filename"], meta["fold"]))
    assert all(str(given[k]) == str(g) for k, g in zip(folds["key"], folds["fold_given"]))
    assert (folds["fold"] == folds["fold_given"].map({2: 0, 3: 1, 10: 2})).all()  # numbers in numeric order
    assert "folds as given by the metadata" in (dataset / "results/logs/assign_folds.log").read_text()
    jobs = planned_jobs(run_snakemake(dataset, "-n", "results/experiments/base/models/fold1/model.pt",
                                      "--configfile", config(dataset, {"column": "fold"})))
    assert jobs == {"mel_shard": 4, "train_fold": 1}


def test_rows_without_a_fold_value_are_named(dataset):
    meta = with_fold_column(dataset, ["a", "b"])
    meta.loc[[1, 4], "fold"] = ""
    meta.to_csv(dataset / "data/train_metadata.csv", index=False)
    result = run_snakemake(dataset, "-n", "--configfile", config(dataset, {"column": "fold"}), check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0 and "2 row(s)" in text and meta.loc[1, "filename"] in text


def founding_table(workdir) -> pd.DataFrame:
    """The founding project's table: path (absolute), class_id, class, fold, frames, sr;
    class ids in an order that is not the alphabetical one."""
    meta = pd.read_csv(workdir / "data/train_metadata.csv")
    labels = sorted(meta["primary_label"].unique(), reverse=True)
    table = pd.DataFrame({
        "path": [str((workdir / "data/train_audio" / f).resolve()) for f in meta["filename"]],
        "class_id": meta["primary_label"].map({c: i for i, c in enumerate(labels)}),
        "class": meta["primary_label"], "fold": [i % 2 for i in range(len(meta))],
        "frames": 123, "sr": 32000,
    })
    table.to_csv(workdir / "data/founding.csv", index=False)
    return table


def test_the_founding_table_as_it_is(dataset):
    table = founding_table(dataset)
    founding = {"metadata_csv": "data/founding.csv", "audio_dir": str((dataset / "data/train_audio").resolve()),
                "columns": {"filename": "path", "label": "class", "secondary_labels": None, "class_id": "class_id"}}
    run_snakemake(dataset, "results/folds/folds.csv", "--configfile",
                  config(dataset, {"column": "fold"}, founding))
    classes = pd.read_csv(dataset / "results/index/classes.csv")
    assert classes["class"].tolist() == sorted(table["class"].unique(), reverse=True)  # the table's order
    folds = pd.read_csv(dataset / "results/folds/folds.csv")
    assert not folds["key"].str.startswith("/").any()  # keys relative to audio_dir
    assert (folds["frames_given"] == 123).all() and (folds["frames"] > 123).all()  # the table's value kept
    assert folds["fold"].tolist() == folds["fold_given"].tolist()
    assert dict(zip(folds["primary_label"], folds["class_id"])) == dict(zip(table["class"], table["class_id"]))


def test_inconsistent_class_ids_name_the_first_bad_row(dataset):
    table = founding_table(dataset)
    table.loc[5, "class_id"] = (table.loc[5, "class_id"] + 1) % table["class_id"].nunique()
    table.to_csv(dataset / "data/founding.csv", index=False)
    columns = {"filename": "path", "label": "class", "secondary_labels": None, "class_id": "class_id"}
    recordings = list_recordings({"layout": "metadata", "audio_dir": str(dataset / "data/train_audio"),
                                  "metadata_csv": str(dataset / "data/founding.csv"), "columns": columns})
    with pytest.raises(BadInputError, match=r"class ids of 'class_id' disagree with the labels at row"):
        build_index(recordings, columns)
