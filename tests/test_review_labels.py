"""Reviewed marks as strong labels: which rows each mark gives, what is rejected and why, how
they merge with data.annotations, and that a fold's model never trains on its held-out marks."""
import numpy as np
import pandas as pd
import pytest

from soundclf.annotations import ANNOTATION_COLUMNS, StrongLabels, merge_tables
from soundclf.config import ConfigError
from soundclf.experiments import load_config
from soundclf.review.labels import ReviewLabelsError, marks_as_annotations
from soundclf.review.sets import check_review_marks
from soundclf.review.store import append_mark, current_marks

CLASSES = ["owl", "wren", "tit"]
INDEX = pd.DataFrame({"key": ["a/r1.wav", "a/r2.wav", "b/r3.wav"], "duration": [30.0, 12.0, 20.0]})


def marks(tmp_path, *rows):
    path = tmp_path / "marks.csv"
    for i, (file, start, label, mark, *other) in enumerate(rows):
        append_mark(path, reviewer="ana", item=f"item{i:08d}", file=file, start=start, end=start + 5, label=label,
                    mark=mark, other_label=other[0] if other else "")
    return current_marks(path), path


def test_each_mark_gives_its_rows_and_unsure_gives_none(tmp_path):
    current, path = marks(tmp_path, ("a/r1.wav", 0.0, "owl", "yes"), ("a/r1.wav", 5.0, "owl", "no"),
                          ("a/r1.wav", 10.0, "owl", "other", "wren"), ("b/r3.wav", 0.0, "tit", "other"),
                          ("b/r3.wav", 5.0, "tit", "unsure"), ("a/r2.wav", 10.0, "wren", "yes"))
    result = marks_as_annotations(current, INDEX, CLASSES, path)
    table = result.table
    assert table.columns.tolist() == ANNOTATION_COLUMNS and result.rejected.empty
    rows = set(table[["key", "kind", "label", "start", "end"]].itertuples(index=False, name=None))
    assert rows == {("a/r1.wav", "event", "owl", 0.0, 5.0), ("a/r1.wav", "negative", "owl", 5.0, 10.0),
                    ("a/r1.wav", "negative", "owl", 10.0, 15.0), ("a/r1.wav", "event", "wren", 10.0, 15.0),
                    ("b/r3.wav", "negative", "tit", 0.0, 5.0),  # 'other' with no species named: a negative only
                    ("a/r2.wav", "event", "wren", 10.0, 12.0),  # the padded last window ends with its recording
                    ("a/r1.wav", "partial", "", 0.0, 30.0), ("a/r2.wav", "partial", "", 0.0, 12.0),
                    ("b/r3.wav", "partial", "", 0.0, 20.0)}
    assert table["source"].str.startswith(str(path)).all()


def test_marks_that_cannot_train_are_rejected_with_the_fix(tmp_path):
    current, path = marks(tmp_path, ("a/r1.wav", 0.0, "owl", "yes"), ("site9/scape.wav", 0.0, "owl", "yes"),
                          ("a/r1.wav", 5.0, "owl", "other", "a gull"))
    result = marks_as_annotations(current, INDEX, CLASSES, path)
    assert set(result.table.loc[result.table["kind"] == "event", "label"]) == {"owl"}
    assert set(result.table.loc[result.table["kind"] == "negative", "label"]) == {"owl"}  # the 'other' mark's no
    reasons = dict(zip(result.rejected["recording"], result.rejected["reason"]))
    assert "not a recording of the training data" in reasons["site9/scape.wav"]
    assert "source: oof" in result.rejected.set_index("recording").loc["site9/scape.wav", "fix"]
    assert reasons["a/r1.wav"] == "label 'a gull' names no class"


def test_a_set_whose_marks_all_fail_stops_naming_the_fix(tmp_path):
    current, path = marks(tmp_path, ("site9/scape.wav", 0.0, "owl", "yes"), ("site9/scape.wav", 5.0, "owl", "no"))
    with pytest.raises(ReviewLabelsError, match=r"none of its 2 marks can train .*source: oof"):
        marks_as_annotations(current, INDEX, CLASSES, path)
    (tmp_path / "unsure").mkdir()
    only_unsure, path = marks(tmp_path / "unsure", ("a/r1.wav", 0.0, "owl", "unsure"))
    assert marks_as_annotations(only_unsure, INDEX, CLASSES, path).table.empty  # nothing to train, nothing wrong


def table(*rows):
    return pd.DataFrame([dict(zip(ANNOTATION_COLUMNS, r)) for r in rows], columns=ANNOTATION_COLUMNS)


def test_marks_merge_into_annotations_without_making_a_recording_complete():
    base = table(("a/r1.wav", "event", "owl", 0, 2.0, 4.0, "t:2"), ("a/r1.wav", "annotated", "", -1, 0.0, 30.0, "t"))
    reviewed = table(("a/r1.wav", "event", "wren", 1, 10.0, 15.0, "m"), ("a/r1.wav", "partial", "", -1, 0.0, 30.0, "m"),
                     ("b/r3.wav", "negative", "tit", 2, 0.0, 5.0, "m"), ("b/r3.wav", "partial", "", -1, 0.0, 20.0, "m"))
    merged = merge_tables(base, [reviewed])
    kinds = merged.groupby("key")["kind"].apply(set).to_dict()
    assert kinds == {"a/r1.wav": {"event", "annotated"}, "b/r3.wav": {"negative", "partial"}}
    labels = StrongLabels.from_table(merged, complete=True, min_overlap=0.5)
    windows = np.array([[0, 5], [5, 10], [10, 15]], float)
    # a complete recording stays complete: outside its events nothing calls
    assert labels.window_truth("a/r1.wav", windows, np.array([1, 0, 0])).tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 0]]
    # a recording only marks annotate keeps its weak labels outside the marked windows
    assert labels.window_truth("b/r3.wav", windows, np.array([0, 0, 1])).tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 1]]
    assert merge_tables(base, []) is base


def test_a_fold_keeps_only_its_training_recordings_annotations():
    merged = table(("a/r1.wav", "event", "owl", 0, 0.0, 5.0, "m"), ("a/r1.wav", "partial", "", -1, 0.0, 30.0, "m"),
                   ("b/r3.wav", "event", "tit", 2, 0.0, 5.0, "m"), ("b/r3.wav", "partial", "", -1, 0.0, 20.0, "m"))
    labels = StrongLabels.from_table(merged, complete=False, min_overlap=0.5)
    training = labels.restricted_to(["a/r1.wav", "a/r2.wav"])  # b/r3.wav is held out
    assert "b/r3.wav" in labels and "b/r3.wav" not in training and not training.has_events("b/r3.wav")
    assert training.has_events("a/r1.wav") and training.fingerprint != labels.fingerprint
    # a mark added on the held-out recording changes nothing this fold's model trains on
    more = pd.concat([merged, table(("b/r3.wav", "negative", "tit", 2, 5.0, 10.0, "m"))], ignore_index=True)
    assert StrongLabels.from_table(more, False, 0.5).restricted_to(["a/r1.wav", "a/r2.wav"]).fingerprint == \
        training.fingerprint


def test_review_marks_the_workflow_cannot_train_on_stop_at_config_check():
    config = load_config()
    sets = {"heard": {"experiment": "recipe"}}
    cnn = {"model": config["model"], "train": config["train"] | {"review_marks": ["heard"]}}
    check_review_marks({"recipe": cnn}, sets)  # fine
    probe = {"model": config["model"] | {"kind": "embedding_probe"}, "train": cnn["train"]}
    off = {"model": config["model"], "train": cnn["train"] | {"strong_targets": False, "review_marks": ["gone"]}}
    with pytest.raises(ConfigError) as caught:
        check_review_marks({"probe": probe, "off": off}, sets)
    message = str(caught.value)
    assert "experiments.probe.train.review_marks: an embedding probe" in message and "model.kind: cnn" in message
    assert "experiments.off.train.review_marks: gone is not a review set (heard)" in message
    assert "train.strong_targets is false" in message
