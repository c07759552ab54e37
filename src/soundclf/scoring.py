"""Scores of 5 s windows and of recordings (the max over their windows) against their labels:
the tables and metrics of held-out evaluation, without a model (no torch), so that the stages
that only read scores start quickly."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .annotations import StrongLabels
from .folds import multi_hot
from .metrics import classification_report

WINDOW_COLUMNS = ["key", "start", "end"]


def window_table(windows: pd.DataFrame, probabilities: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """key, start, end and one probability column per class."""
    table = windows[WINDOW_COLUMNS].reset_index(drop=True)
    return pd.concat([table, pd.DataFrame(probabilities, columns=classes)], axis=1)


def recording_scores(table: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """One row per recording (in first-seen order): the max of each class over its windows."""
    return table.groupby("key", sort=False)[classes].max()


def recording_truth(recordings: pd.DataFrame, keys, n_classes: int) -> np.ndarray:
    """0/1 truth of the given recordings: primary and secondary labels are positives."""
    by_key = recordings.set_index("key").loc[list(keys)].reset_index()
    return (multi_hot(by_key, n_classes) > 0).astype(np.float32)


def recording_metrics(table: pd.DataFrame, recordings: pd.DataFrame, classes: list[str],
                      nocall_threshold: float = 0.5) -> dict[str, float]:
    """Metrics of recording scores (max over windows) against the recordings' labels."""
    scores = recording_scores(table, classes)
    truth = recording_truth(recordings, scores.index, len(classes))
    return classification_report(truth, scores.to_numpy(), nocall_threshold)


def window_truth(windows: pd.DataFrame, recordings: pd.DataFrame, n_classes: int,
                 strong: StrongLabels | None = None) -> np.ndarray:
    """0/1 truth of each window (key, start, end): where its recording is annotated, the
    classes of the events it holds (annotations.StrongLabels); elsewhere its recording's
    (weak) labels."""
    weak = recording_truth(recordings, windows["key"], n_classes)
    if strong is None:
        return weak
    truth = weak.copy()
    for key, rows in windows.groupby("key", sort=False).indices.items():
        if key in strong:
            truth[rows] = strong.window_truth(key, windows[["start", "end"]].to_numpy()[rows], weak[rows[0]])
    return truth


def fold_metrics(table: pd.DataFrame, held_out: pd.DataFrame, classes: list[str], fold: int,
                 nocall_threshold: float, strong: StrongLabels | None = None) -> dict:
    """A fold's metrics at recording level (max over its windows) and at window level:
    `window` against each window's own truth (the annotations where a recording has them),
    `window_weak` against its recording's labels on every window."""
    scores = table[classes].to_numpy()
    weak = recording_truth(held_out, table["key"], len(classes))
    return {
        "fold": fold,
        "n_recordings": len(held_out),
        "n_annotated_recordings": sum(key in strong for key in held_out["key"]) if strong is not None else 0,
        "n_windows": len(table),
        "recording": recording_metrics(table, held_out, classes, nocall_threshold),
        "window": classification_report(window_truth(table, held_out, len(classes), strong), scores, nocall_threshold),
        "window_weak": classification_report(weak, scores, nocall_threshold),
    }
