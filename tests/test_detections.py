"""Detections: OOF thresholds, runs of windows merged into events, Raven / Audacity / table outputs."""
import numpy as np
import pandas as pd
import pytest

from soundclf.annotations import read_annotations
from soundclf.detections import class_thresholds, detect, thresholds_for, write_detections
from soundclf.submission import window_frame


def test_thresholds_are_f1_optimal_and_reach_the_target_precision():
    truth = np.array([[1, 0], [1, 0], [0, 0], [0, 0], [1, 0], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.35, 0.4], [0.3, 0.5], [0.1, 0.6]])
    table = class_thresholds(truth, scores, ["a", "b"], target_precision=0.95).set_index("class")
    # a: at 0.8 P=1 R=2/3 (F1 0.8); at 0.3 P=3/5 R=1 (F1 0.75): 0.8 is F1-optimal and the precision threshold
    assert table.loc["a", "f1_threshold"] == 0.8 and table.loc["a", "f1"] == pytest.approx(0.8)
    assert table.loc["a", "precision_threshold"] == 0.8 and table.loc["a", "recall"] == pytest.approx(2 / 3)
    assert table.loc["a", "support"] == 3
    assert table.loc["b", "support"] == 0 and np.isnan(table.loc["b", "f1_threshold"])  # no positive window
    chosen = thresholds_for(table.reset_index(), ["a", "b"], "f1", None)
    assert chosen == {"a": 0.8, "b": 0.5}  # 0.5 where there is no threshold
    assert thresholds_for(table.reset_index(), ["a", "b"], "precision", 0.3) == {"a": 0.3, "b": 0.3}


def submission(rows):
    return pd.DataFrame(rows, columns=["row_id", "owl", "wren"])


def test_consecutive_windows_of_a_class_merge_into_one_event():
    sub = submission([["rec_5", 0.9, 0.1], ["rec_10", 0.7, 0.6], ["rec_15", 0.2, 0.1], ["rec_20", 0.8, 0.1],
                      ["rec_22", 0.9, 0.7],  # the last window, pulled back to end at 22 s: overlaps the one before
                      ["b_5", 0.1, 0.2]])
    windows = window_frame(sub, 5.0)
    assert windows[["file", "start", "end"]].values.tolist()[3:5] == [["rec", 15.0, 20.0], ["rec", 17.0, 22.0]]
    events = detect(windows, {"owl": 0.5, "wren": 0.55})
    assert events[["file", "label", "start", "end", "n_windows"]].values.tolist() == [
        ["rec", "owl", 0.0, 10.0, 2], ["rec", "wren", 5.0, 10.0, 1], ["rec", "owl", 15.0, 22.0, 2],
        ["rec", "wren", 17.0, 22.0, 1]]
    assert events["score"].tolist() == [0.9, 0.6, 0.9, 0.7] and (events.loc[events["label"] == "owl", "threshold"] == 0.5).all()


def test_detections_are_written_as_raven_tables_audacity_labels_and_a_table(tmp_path):
    windows = window_frame(submission([["rec_5", 0.9, 0.1], ["rec_10", 0.7, 0.6], ["quiet_5", 0.1, 0.1]]), 5.0)
    events = detect(windows, {"owl": 0.5, "wren": 0.5})
    write_detections(events, ["rec", "quiet"], tmp_path / "raven", tmp_path / "audacity", tmp_path / "detections.csv")
    assert pd.read_csv(tmp_path / "detections.csv").equals(events)
    table = (tmp_path / "raven/rec.Table.1.selections.txt").read_text().splitlines()
    assert table[0].split("\t") == ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                                    "High Freq (Hz)", "Species", "Score"]
    assert len((tmp_path / "raven/quiet.Table.1.selections.txt").read_text().splitlines()) == 1  # header: none found
    # the tables parse back into the same events
    index = pd.DataFrame({"key": ["rec.ogg", "quiet.ogg"], "duration": [10.0, 5.0]})
    back = read_annotations({"raven_dir": str(tmp_path / "raven"), "raven_label_column": "Species"}, index, ["owl", "wren"])
    assert back.rejected.empty
    got = back.table[back.table["kind"] == "event"][["label", "start", "end"]].values.tolist()
    assert got == events[["label", "start", "end"]].values.tolist()
    assert (tmp_path / "audacity/rec.txt").read_text().splitlines() == ["0.000\t10.000\towl 0.900", "5.000\t10.000\twren 0.600"]
    assert (tmp_path / "audacity/quiet.txt").read_text() == ""
