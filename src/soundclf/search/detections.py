"""A round's probe as a detector over the whole archive: its window scores (scores.parquet)
turned into detections with the prediction stage's machinery (runs of windows over a
threshold merged into events, Raven tables and Audacity labels), the threshold calibrated on
the marks of that round's own review set.

Why the round's own marks: the probe trained on every earlier mark, so its scores of those
windows are in-sample and too sure; the round's review set was drawn after it was fitted
(top, boundary and random windows, chosen by its score alone), so P(right | score) fitted on
those marks is not biased by how they were drawn."""

from __future__ import annotations

import pandas as pd

from ..detections import calibrated_thresholds, detect, with_probability
from ..review.calibration import calibration_table

UNCALIBRATED_THRESHOLD = 0.5  # the probe's own probability, where the marks give no fit


def archive_window_frame(scores: pd.DataFrame, label: str, window_seconds: float) -> pd.DataFrame:
    """scores.parquet (file, window, start, score) as the prediction stage's window frame:
    file, start, end and one column per class."""
    return pd.DataFrame({"file": scores["file"], "start": scores["start"],
                         "end": scores["start"] + window_seconds, label: scores["score"]})


def round_detections(scores: pd.DataFrame, marked: pd.DataFrame, label: str, window_seconds: float,
                     targets: list[float], target: float, min_marks: int, bootstrap: int
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(detections with their probability of being right, calibration.csv's rows) of a round:
    `marked` are its review items joined to their current marks (label, score, mark)."""
    calibration = calibration_table(marked, {label: scores["score"].to_numpy(float)},
                                    sorted(set(targets) | {target}), min_marks, bootstrap)
    thresholds, fits = calibrated_thresholds(calibration, {label: UNCALIBRATED_THRESHOLD}, target)
    events = detect(archive_window_frame(scores, label, window_seconds), thresholds)
    events = with_probability(events, fits)
    return events, calibration
