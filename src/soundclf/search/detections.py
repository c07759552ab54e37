"""A round's probe as a detector over the whole archive: its window scores (scores.parquet)
turned into detections with the prediction stage's machinery (runs of windows over a
threshold merged into events, Raven tables and Audacity labels), the threshold calibrated on
the marks of that round's own review set; what the person heard overrides the probe.

Why the round's own marks: the probe trained on every earlier mark, so its scores of those
windows are in-sample and too sure; the round's review set was drawn after it was fitted
(top, boundary and random windows, chosen by its score alone), so P(right | score) fitted on
those marks is not biased by how they were drawn.

Why the marks override: a window marked yes in any round is a call whatever the probe scores
(its event's probability is 1), and one marked no (or another species) is never detected. A
late round whose review set holds no call (everything the probe ranks high was already found)
has no fit; its set still says that nothing scoring like the windows it rejected is the call,
so the threshold goes above the highest of them (never below the probe's 0.5), and the found
calls are the marked ones."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..detections import calibrated_thresholds, detect, with_probability
from ..review.calibration import calibration_table
from .rounds import NEGATIVE, POSITIVE

UNCALIBRATED_THRESHOLD = 0.5  # the probe's own probability, where the marks give no fit

log = logging.getLogger(__name__)


def archive_window_frame(scores: pd.DataFrame, label: str, window_seconds: float) -> pd.DataFrame:
    """scores.parquet (file, window, start, score) as the prediction stage's window frame:
    file, start, end and one column per class."""
    return pd.DataFrame({"file": scores["file"], "start": scores["start"],
                         "end": scores["start"] + window_seconds, label: scores["score"]})


def round_detections(scores: pd.DataFrame, marked: pd.DataFrame, label: str, window_seconds: float,
                     targets: list[float], target: float, min_marks: int, bootstrap: int,
                     known: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(detections with their probability of being right and `marked_yes`, the windows of each
    event a person marked yes; calibration.csv's rows) of a round: `marked` are its review items
    joined to their current marks (label, score, mark); `known` (file, start, target: 1 yes,
    0 no) the latest mark of every window marked in any round so far."""
    calibration = calibration_table(marked, {label: scores["score"].to_numpy(float)},
                                    sorted(set(targets) | {target}), min_marks, bootstrap)
    own = marked[marked["label"] == label]
    rejected = own.loc[own["mark"].isin(NEGATIVE), "score"]
    fallback = UNCALIBRATED_THRESHOLD
    if len(rejected) and not own["mark"].isin(POSITIVE).any():
        # never below the probe's own 0.5: the marks say nothing of the windows under it
        fallback = max(UNCALIBRATED_THRESHOLD, float(np.nextafter(rejected.max(), np.inf)))
        log.info("%s: the round's %d marks hold no call (highest score marked not the call: %.4g): without a fit, "
                 "the threshold is %.4g; the windows marked yes in earlier rounds are detections", label,
                 len(rejected), rejected.max(), fallback)
    thresholds, fits = calibrated_thresholds(calibration, {label: fallback}, target)
    windows = archive_window_frame(scores, label, window_seconds)
    verdict = np.zeros(len(windows))  # 1 marked yes, -1 marked no, 0 unmarked
    if known is not None and len(known):
        latest = known.assign(start=known["start"].round(3)).drop_duplicates(["file", "start"], keep="last")
        mark = windows[["file"]].assign(start=windows["start"].round(3)).merge(latest, on=["file", "start"], how="left")
        verdict = np.select([mark["target"] == 1, mark["target"] == 0], [1.0, -1.0], 0.0)
    # the person's word decides a marked window: above every threshold, or below
    decided = windows.assign(**{label: np.where(verdict > 0, np.inf, np.where(verdict < 0, -np.inf, windows[label]))})
    events = detect(decided, thresholds)
    events = with_probability(events.assign(**event_windows(events, windows.assign(verdict=verdict), label)), fits)
    events.loc[events["marked_yes"] > 0, "probability"] = 1.0
    return events, calibration


def event_windows(events: pd.DataFrame, windows: pd.DataFrame, label: str) -> dict[str, np.ndarray]:
    """Per event: `score`, its windows' highest probe score, and `marked_yes`, how many of its
    windows a person marked yes (windows: file, start, end, the label's score, verdict). Each
    window joins the event of its file that starts last at or before it, if it ends inside it
    (one join, not a pass over the file per event: an archive has many events)."""
    spans = events[["file", "start", "end"]].rename(columns={"start": "event_start", "end": "event_end"}).astype(
        {"file": windows["file"].dtype, "event_start": float, "event_end": float})  # an empty table's are objects
    joined = pd.merge_asof(windows.assign(yes=windows["verdict"] > 0).sort_values("start"),
                           spans.rename_axis("event").reset_index().sort_values("event_start"),
                           left_on="start", right_on="event_start", by="file", direction="backward")
    inside = joined[joined["end"] <= joined["event_end"] + 1e-6].groupby("event")
    return {"score": inside[label].max().reindex(events.index).to_numpy(float),
            "marked_yes": inside["yes"].sum().reindex(events.index, fill_value=0).to_numpy(int)}
