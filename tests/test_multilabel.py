"""Multi-label datasets as they ship: a labels column (each separator, mixes refused), species
heard only as secondary labels (kept or dropped, their events accepted), no-call rows of the
metadata layout (folds, targets, summary), and the metrics that lead on such data."""
import json
import logging

import pytest

from conftest import tone, write
from soundclf.annotations import read_annotations
from soundclf.config import check_config
from soundclf.folds import assign_folds, multi_hot
from soundclf.indexing import build_index, read_index, summarise, write_index
from soundclf.multilabel import headline, label_kind, lead_first, loss_warning
from soundclf.sources import DataSourceError, list_recordings

# one clip per row: file, its labels in a labels column
ROWS = [("a.wav", ["owl", "wren"]), ("b.wav", ["owl"]), ("c.wav", ["wren", "lark"]), ("d.wav", ["lark"]),
        ("e.wav", ["owl", "lark", "wren"]), ("f.wav", ["wren"]), ("g.wav", []), ("h.wav", ["nocall"])]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    audio = tmp_path_factory.mktemp("clips")
    for i, (name, _) in enumerate(ROWS):
        write(audio / name, tone(0.3, 8000, 300.0 + 150 * i), 8000)
    return audio


def labels_table(path, cells, quote=False):
    q = '"' if quote else ""
    path.write_text("clip,birds,site\n" + "".join(f"{name},{q}{cell}{q},s{i % 2}\n"
                                                  for i, (name, cell) in enumerate(cells)))
    return path


def labels_data(clips, table, **data):
    return {"layout": "metadata", "audio_dir": str(clips), "metadata_csv": str(table),
            "columns": {"filename": "clip", "labels": "birds"}} | data


@pytest.mark.parametrize("separator, write_cell, quote", [
    (";", ";".join, False), (",", ",".join, True), (" ", " ".join, False),
    ("list", lambda labels: str(list(labels)), True)], ids=["semicolon", "comma", "space", "python-list"])
def test_a_labels_column_with_each_separator_makes_every_label_a_class(clips, tmp_path, caplog, separator,
                                                                       write_cell, quote):
    table = labels_table(tmp_path / "meta.csv", [(name, write_cell(labels)) for name, labels in ROWS], quote)
    data = labels_data(clips, table)
    with caplog.at_level(logging.INFO, logger="soundclf"):
        index, classes, rejected = build_index(list_recordings(data), data["columns"])
    said = {";": "labels separated by ';'", ",": "labels separated by ','", " ": "labels separated by spaces",
            "list": "labels written as Python lists"}[separator]
    assert f"data.columns.labels 'birds' of {table}: {said}" in caplog.text  # the separator, stated in the log
    assert rejected.empty and classes["class"].tolist() == ["lark", "owl", "wren"]
    assert not classes["secondary_only"].any()  # with a labels column no class is "only secondary"
    y = multi_hot(index.set_index("key").loc[[name for name, _ in ROWS]].reset_index(), 3)
    expected = [[float(c in labels) for c in ("lark", "owl", "wren")] for _, labels in ROWS[:6]]
    assert y[:6].tolist() == expected
    assert index.set_index("key").loc["a.wav", "site"] == "s0"  # other columns ride along


def test_a_labels_column_that_mixes_separators_stops_naming_the_row(clips, tmp_path):
    cells = [("a.wav", "owl;wren"), ("b.wav", "owl"), ("c.wav", "wren,lark"), ("d.wav", "lark")]
    data = labels_data(clips, labels_table(tmp_path / "mixed.csv", cells, quote=True))
    with pytest.raises(DataSourceError, match=r"mixed.csv, line 4: column 'birds' separates labels with ',' "
                                              r"\('wren,lark'\), but line 2 separates labels with ';'"):
        list_recordings(data)
    spaces = labels_table(tmp_path / "spaces.csv", [("a.wav", "owl wren"), ("b.wav", "owl;lark")])
    with pytest.raises(DataSourceError, match="spaces.csv, line 2: column 'birds' separates labels with spaces"):
        list_recordings(labels_data(clips, spaces))
    unquoted = tmp_path / "unquoted.csv"
    unquoted.write_text("clip,birds\na.wav,owl\nb.wav,owl,wren\n")
    with pytest.raises(DataSourceError, match=r"line 3 \(b.wav\) has more fields than the header"):
        list_recordings(labels_data(clips, unquoted))
    # labels that hold spaces beside ';' are no mix: 'Turdus merula' is one label
    names = labels_table(tmp_path / "names.csv", [("a.wav", "Turdus merula;Erithacus rubecula"),
                                                  ("b.wav", "Turdus merula")])
    assert [r.labels for r in list_recordings(labels_data(clips, names))] == [
        ("Turdus merula", "Erithacus rubecula"), ("Turdus merula",)]


def test_empty_and_negative_labels_are_no_call_recordings_spread_over_the_folds_with_zero_targets(clips, tmp_path):
    cells = [(name, ";".join(labels)) for name, labels in ROWS] + [("h2.wav", "NoCall"), ("g2.wav", "")]
    for name in ("h2.wav", "g2.wav"):
        write(tmp_path / "audio" / name, tone(0.3, 8000, 2000.0), 8000)
    for name, _ in ROWS:
        (tmp_path / "audio" / name).symlink_to(clips / name)
    data = labels_data(tmp_path / "audio", labels_table(tmp_path / "meta.csv", cells))
    index, classes, rejected = build_index(list_recordings(data), data["columns"])
    assert rejected.empty and len(index) == 10 and "nocall" not in set(classes["class"])
    no_call = index[index["no_call"] != ""].set_index("key")
    assert sorted(no_call.index) == ["g.wav", "g2.wav", "h.wav", "h2.wav"]
    assert (no_call["class_id"] == -1).all() and (no_call["primary_label"] == "").all()
    assert no_call.loc["h2.wav", "no_call"] == "label 'NoCall'" and no_call.loc["g.wav", "no_call"] == "empty label"
    write_index(index, tmp_path / "index.csv")
    index = read_index(tmp_path / "index.csv")  # as the folds job reads it
    y = multi_hot(index, len(classes))
    assert y[index["no_call"] != ""].sum() == 0 and (y[index["no_call"] == ""].sum(axis=1) >= 1).all()
    for multilabel in (True, False):
        folds = assign_folds(index, 2, seed=0, multilabel=multilabel)
        assert sorted(folds[index["no_call"] != ""].value_counts().tolist()) == [2, 2]  # no-calls in both folds
    text = summarise(index, rejected, "rejected.csv", classes).text()
    assert "no-call recordings (no label, 0 for every class): 2 with an empty label, 1 with label 'nocall', " \
           "1 with label 'NoCall'" in text
    assert "remove a label from data.negative_labels to make it a class" in text
    assert "multi-label data (3 with two or more labels and 4 no-call of 10 recordings)" in text


def primary_secondary_data(clips, tmp_path):
    """Primary + secondary labels where 'lark' is only ever a secondary label, and a table of
    its (and owl's) events."""
    (tmp_path / "meta.csv").write_text(
        "clip,primary,also\n"
        "a.wav,owl,['lark']\nb.wav,owl,[]\nc.wav,wren,\"['lark', 'owl']\"\nd.wav,wren,[]\ng.wav,,[]\n")
    (tmp_path / "events.csv").write_text("recording_id,species_id,t_min,t_max\na,lark,0.0,0.2\nb,owl,0.1,0.2\n")
    return {"layout": "metadata", "audio_dir": str(clips), "metadata_csv": str(tmp_path / "meta.csv"),
            "columns": {"filename": "clip", "label": "primary", "secondary_labels": "also"}}


def test_a_class_that_is_only_ever_secondary_is_kept_with_its_events_or_dropped(clips, tmp_path):
    data = primary_secondary_data(clips, tmp_path)
    events = {"table": str(tmp_path / "events.csv"), "negatives": None, "raven_dir": None,
              "columns": {"recording": "recording_id", "label": "species_id", "start": "t_min", "end": "t_max"}}
    index, classes, rejected = build_index(list_recordings(data), data["columns"], secondary_classes="keep")
    assert classes[["class", "secondary_only"]].values.tolist() == [["owl", False], ["wren", False], ["lark", True]]
    by_key = index.set_index("key")
    assert by_key.loc["c.wav", "secondary_labels"] == ["lark", "owl"] and by_key.loc["g.wav", "no_call"] == "empty label"
    folds = assign_folds(index, 2, seed=0, multilabel=True)  # its class id comes after the primary ones'
    assert set(folds) == {0, 1}
    assert "1 class(es) heard only as secondary labels, kept (data.secondary_classes: keep; not in submission.csv): " \
           "lark" in summarise(index, rejected, "r.csv", classes).text()
    kept = read_annotations(events, index, classes["class"].tolist())
    assert kept.rejected.empty and set(kept.table.loc[kept.table["kind"] == "event", "label"]) == {"lark", "owl"}

    index, classes, _ = build_index(list_recordings(data), data["columns"], secondary_classes="drop")
    assert classes["class"].tolist() == ["owl", "wren"]
    assert index.set_index("key").loc["c.wav", "secondary_labels"] == ["owl"]
    dropped = read_annotations(events, index, classes["class"].tolist())
    assert dropped.rejected["reason"].str.contains("label 'lark' names no class").tolist() == [True]


def test_a_label_both_a_class_and_a_negative_label_stops_naming_the_row_and_the_fix(clips, tmp_path):
    beside = labels_data(clips, labels_table(tmp_path / "beside.csv", [("a.wav", "owl"), ("b.wav", "noise;owl")]))
    with pytest.raises(DataSourceError, match=r"beside.csv, line 3 \(b.wav\): label 'noise' is one of "
                                              r"data.negative_labels .* Remove 'noise' from data.negative_labels"):
        list_recordings(beside)
    assert len(list_recordings(beside | {"negative_labels": ["nocall"]})) == 2  # the fix: then it is a class
    (tmp_path / "meta.csv").write_text("clip,primary,also\na.wav,owl,['noise']\nb.wav,noise,[]\n")
    secondary = {"layout": "metadata", "audio_dir": str(clips), "metadata_csv": str(tmp_path / "meta.csv"),
                 "columns": {"filename": "clip", "label": "primary", "secondary_labels": "also"}}
    with pytest.raises(DataSourceError, match=r"line 2 \(a.wav\): secondary label 'noise' is one of "
                                              r"data.negative_labels, and with data.secondary_classes: keep"):
        list_recordings(secondary)
    assert [r.negative for r in list_recordings(secondary | {"secondary_classes": "drop"})] == [False, True]


def test_a_labels_column_refuses_class_ids_and_a_secondary_weight(tmp_path):
    from soundclf.config import ConfigError
    from soundclf.experiments import load_config

    config = load_config()
    config["data"] |= {"layout": "metadata", "audio_dir": str(tmp_path), "metadata_csv": str(tmp_path / "m.csv"),
                       "columns": {"filename": "f", "label": None, "labels": "birds", "secondary_labels": None,
                                   "class_id": "id"}}
    config["train"]["secondary_weight"] = 0.5
    (tmp_path / "m.csv").write_text("f,birds,id\n")
    with pytest.raises(ConfigError) as err:
        check_config(config)
    assert "data.columns.class_id ('id') numbers one label per row" in str(err.value)
    assert "train.secondary_weight (0.5) weighs secondary labels" in str(err.value)


def cv(lead, **means):
    return {"n_folds": 2, "labels": {"lead_metrics": lead}, "mean_std": {"recording": {
        name: {"mean": value, "std": 0.01} for name, value in means.items()}}}


def test_the_lead_metric_switches_with_the_data():
    single, multi = label_kind([1, 1, 1]), label_kind([1, 2, 0])
    assert (single.multilabel, single.lead_metrics) == (False, ["recording.accuracy"])
    assert multi.lead_metrics == ["recording.macro_roc_auc", "recording.padded_cmap"] and single.text() == ""
    scores = {"accuracy": 0.9, "macro_roc_auc": 0.8, "padded_cmap": 0.7}
    assert headline("base", cv(multi.lead_metrics, **scores)).startswith(
        "base: macro ROC-AUC 0.800 ± 0.010, padded cmAP 0.700 ± 0.010 (recording level, mean ± std over 2 folds); "
        "top-1 accuracy 0.900")
    assert headline("base", cv(single.lead_metrics, **scores)).startswith("base: top-1 accuracy 0.900 ± 0.010 (")
    assert lead_first(["recording.accuracy", "recording.lwlrap", "recording.padded_cmap", "recording.macro_roc_auc"],
                      multi.lead_metrics)[:2] == ["recording.macro_roc_auc", "recording.padded_cmap"]

    from soundclf.comparison import comparison_table
    from soundclf.plots import cv_metrics_table

    def full(lead):
        one = cv(lead, **scores) | {"pooled": {"recording": scores}}
        one["per_fold"] = [{"fold": k, "recording": scores} for k in (0, 1)]
        return one

    for kind, first in ((multi, ["recording.macro_roc_auc.mean", "recording.macro_roc_auc.std",
                                 "recording.padded_cmap.mean", "recording.padded_cmap.std"]),
                        (single, ["recording.accuracy.mean", "recording.accuracy.std", "recording.padded_cmap.mean"])):
        table = comparison_table({"a": full(kind.lead_metrics), "b": full(kind.lead_metrics)}, {}, "a",
                                 "recording.padded_cmap")
        assert table.columns.tolist()[1:1 + len(first)] == first
        rows = cv_metrics_table(full(kind.lead_metrics))
        assert (rows["level"] + "." + rows["metric"]).tolist()[:len(kind.lead_metrics)] == kind.lead_metrics


def test_multi_label_data_trained_with_ce_get_one_warning_naming_bce():
    cnn = {"model": {"kind": "cnn"}, "train": {"loss": "ce"}}
    experiments = {"base": cnn, "bce": {"model": {"kind": "cnn"}, "train": {"loss": "bce"}},
                   "probe": {"model": {"kind": "embedding_probe"}, "train": {"loss": "ce"}}}
    warning = loss_warning(label_kind([1, 2, 0, 1]), experiments)
    assert "experiment(s) base train with train.loss: ce" in warning and "train.loss: bce (or focal)" in warning
    assert "no-call" in warning and "half each" in warning  # why
    assert loss_warning(label_kind([1, 1]), experiments) is None
    assert loss_warning(label_kind([2, 0]), {"bce": experiments["bce"]}) is None
    assert json.loads(json.dumps(label_kind([2, 0]).as_dict()))["lead_metrics"][0] == "recording.macro_roc_auc"
