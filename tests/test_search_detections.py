"""A marked round's detections over the archive (soundclf.search.detections): what the person
marked overrides the probe, and a review set that holds no call still bounds the threshold."""
import numpy as np
import pandas as pd
import pytest

from soundclf.search.detections import UNCALIBRATED_THRESHOLD, round_detections

HOP = WINDOW = 3.0


def archive_scores(by_file: dict[str, list[float]]) -> pd.DataFrame:
    """scores.parquet: the probe's score of every window, side by side."""
    return pd.concat([pd.DataFrame({"file": f, "window": np.arange(len(s)), "start": np.arange(len(s)) * HOP, "score": s})
                      for f, s in by_file.items()], ignore_index=True)


def review(scores: pd.DataFrame, windows: list[tuple[str, int, str]]) -> pd.DataFrame:
    """The round's review items joined to their marks (label, score, mark)."""
    rows = [(f, w * HOP, scores.query("file == @f and window == @w")["score"].iloc[0], m) for f, w, m in windows]
    return pd.DataFrame(rows, columns=["file", "start", "score", "mark"]).assign(label="hooter")


def detections(scores, marked, known=None):
    return round_detections(scores, marked, "hooter", WINDOW, [0.9], 0.95, min_marks=2, bootstrap=10, known=known)[0]


def test_windows_marked_yes_are_detections_and_those_marked_no_never_are():
    scores = archive_scores({"a.wav": [0.1, 0.2, 0.9, 0.95, 0.1], "b.wav": [0.99, 0.1, 0.1]})
    known = pd.DataFrame({"file": ["a.wav", "b.wav", "b.wav"], "start": [0.0, 0.0, 2 * HOP], "target": [1.0, 0.0, 1.0]})
    events = detections(scores, review(scores, []), known)  # no marks of its own: the probe's 0.5
    assert events[["file", "start", "end"]].values.tolist() == [["a.wav", 0.0, 3.0], ["a.wav", 6.0, 12.0],
                                                                ["b.wav", 6.0, 9.0]]
    assert events["marked_yes"].tolist() == [1, 0, 1]
    assert events["score"].tolist() == pytest.approx([0.1, 0.95, 0.1])  # the probe's own scores, not the mark
    assert events["probability"].iloc[[0, 2]].tolist() == [1.0, 1.0] and np.isnan(events["probability"].iloc[1])
    assert events["threshold"].eq(UNCALIBRATED_THRESHOLD).all()
    # without the earlier marks, the probe alone: b.wav's first window (marked no) would be a detection
    assert detections(scores, review(scores, []))[["file", "start"]].values.tolist() == [["a.wav", 6.0], ["b.wav", 0.0]]


def test_a_round_whose_set_holds_no_call_detects_nothing_scoring_like_what_it_rejected():
    scores = archive_scores({"a.wav": [0.6, 0.7, 0.8, 0.85, 0.2, 0.3], "b.wav": [0.55, 0.9, 0.1]})
    marked = review(scores, [("a.wav", 0, "no"), ("a.wav", 1, "no"), ("a.wav", 2, "no"), ("a.wav", 4, "no")])
    known = pd.DataFrame({"file": ["b.wav"], "start": [2 * HOP], "target": [1.0]})  # found in an earlier round
    events = detections(scores, marked, known)
    assert events[["file", "start"]].values.tolist() == [["a.wav", 9.0], ["b.wav", 3.0]]  # above 0.8, then the found call
    assert events["threshold"].iloc[0] == pytest.approx(0.8) and events["threshold"].iloc[0] > 0.8
    assert events["marked_yes"].tolist() == [0, 1]
    # the round's own marks are among the known ones too; 'other' (another species) is not the call
    # and raises the bar above its 0.85; 'unsure' and another label's yes say nothing
    own = marked.assign(target=0.0)[["file", "start", "target"]]
    assert detections(scores, pd.concat([marked, review(scores, [("a.wav", 5, "unsure")]),
                                         review(scores, [("b.wav", 1, "yes")]).assign(label="chirp"),
                                         review(scores, [("a.wav", 3, "other")])]),
                      pd.concat([own, known]))[["file", "start"]].values.tolist() == [["b.wav", 3.0]]
    # nothing over the threshold and nothing marked yes: no detection, the columns all there
    quiet = archive_scores({"a.wav": [0.1, 0.2]})
    none = detections(quiet, review(quiet, []), pd.DataFrame({"file": ["a.wav"], "start": [0.0], "target": [0.0]}))
    assert none.empty and {"marked_yes", "probability", "score"} <= set(none.columns)
    # rejected windows all under 0.5: the threshold stays the probe's own
    low = archive_scores({"a.wav": [0.1, 0.2, 0.3, 0.7]})
    events = detections(low, review(low, [("a.wav", w, "no") for w in range(3)]))
    assert events["threshold"].eq(UNCALIBRATED_THRESHOLD).all() and events["start"].tolist() == [9.0]
    # a set with a call but too few marks to fit keeps the probe's 0.5
    marked.loc[3, "mark"] = "yes"
    assert detections(scores, marked)["threshold"].eq(UNCALIBRATED_THRESHOLD).all()
