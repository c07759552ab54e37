"""Detections: per-class score thresholds chosen on the out-of-fold windows, and a
prediction's windows that pass them, consecutive windows of one class merged into one
event, written as Raven selection tables, Audacity labels and one table."""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

from .annotations import write_raven_table
from .atomic import atomic_path, write_csv
from .review.calibration import LogisticCalibration, fitted

log = logging.getLogger(__name__)

THRESHOLD_COLUMNS = ["class", "support", "f1_threshold", "f1", "precision_threshold", "precision", "recall"]
DETECTION_COLUMNS = ["file", "label", "start", "end", "score", "n_windows", "threshold"]
FALLBACK_THRESHOLD = 0.5  # a class without a positive OOF window has no threshold of its own


def class_thresholds(truth: np.ndarray, scores: np.ndarray, classes: list[str], target_precision: float) -> pd.DataFrame:
    """Per class, from OOF window truth (0/1) and scores: the F1-optimal threshold (ties: the
    higher one) and the lowest threshold whose precision reaches `target_precision` (the most
    recall at that precision; NaN where no threshold reaches it), with support (positive
    windows) and the F1, precision and recall they give."""
    rows = []
    for c, name in enumerate(classes):
        y, s = truth[:, c], scores[:, c]
        row = {"class": name, "support": int(y.sum())}
        if 0 < y.sum() < len(y):
            precision, recall, thresholds = precision_recall_curve(y, s)
            precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
            f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
            best = len(f1) - 1 - int(np.argmax(f1[::-1]))
            reaching = np.flatnonzero(precision >= target_precision)
            row.update(f1_threshold=float(thresholds[best]), f1=float(f1[best]))
            if reaching.size:
                i = int(reaching[0])
                row.update(precision_threshold=float(thresholds[i]), precision=float(precision[i]), recall=float(recall[i]))
        rows.append(row)
    return pd.DataFrame(rows, columns=THRESHOLD_COLUMNS)


def thresholds_for(table: pd.DataFrame, classes: list[str], kind: str, min_score: float | None) -> dict[str, float]:
    """The threshold detection uses for each class: `min_score` for all when given, else the
    table's `kind` ('f1' or 'precision') threshold, FALLBACK_THRESHOLD where it has none."""
    if min_score is not None:
        return {c: float(min_score) for c in classes}
    chosen = table.set_index("class")[f"{kind}_threshold"].reindex(classes)
    missing = chosen.index[chosen.isna()].tolist()
    if missing:
        log.warning("no %s threshold for %s (no positive OOF window, or the target precision is out of reach): %g",
                    kind, ", ".join(map(str, missing)), FALLBACK_THRESHOLD)
    return chosen.fillna(FALLBACK_THRESHOLD).astype(float).to_dict()


def calibrated_thresholds(calibration: pd.DataFrame, fallback: dict[str, float], target: float
                          ) -> tuple[dict[str, float], dict[str, LogisticCalibration]]:
    """Each class's score whose calibrated probability of being right is `target` (a review
    set's calibration.csv), the `fallback` threshold for a class without a fit (logged by
    name), and the fits (a detection's probability)."""
    fits = fitted(calibration)
    thresholds = {c: fits[c].threshold(target) if c in fits else t for c, t in fallback.items()}
    missing = [c for c in fallback if c not in fits]
    if missing:
        log.warning("no calibration for %s (too few marks, or none: calibration.csv says why): their fallback "
                    "thresholds %s are used and their detections carry no probability", ", ".join(missing),
                    {c: fallback[c] for c in missing})
    return thresholds, {c: f for c, f in fits.items() if c in fallback}


def with_probability(events: pd.DataFrame, fits: dict[str, LogisticCalibration]) -> pd.DataFrame:
    """Detections with their calibrated probability of being right (NaN for a class without a fit)."""
    probability = np.full(len(events), np.nan)
    for label, fit in fits.items():
        rows = (events["label"] == label).to_numpy()
        probability[rows] = fit.probability(events.loc[rows, "score"])
    return events.assign(probability=probability)


def runs(passing: np.ndarray, joined: np.ndarray):
    """(first, last) indices of the runs of passing windows, each window after the first
    continuing the one before it (`joined`)."""
    first = None
    for i, ok in enumerate(passing):
        if ok and first is not None and joined[i]:
            continue
        if first is not None:
            yield first, i - 1
        first = i if ok else None
    if first is not None:
        yield first, len(passing) - 1


def detect(windows: pd.DataFrame, thresholds: dict[str, float]) -> pd.DataFrame:
    """Events of every class in every file of `windows` (prediction.window_frame): runs of consecutive windows (each starting at or
    before the previous one's end) scoring at least the class's threshold, from the first
    window's start to the last one's end, scored by their highest window."""
    events = []
    for file, rows in windows.groupby("file", sort=False):
        rows = rows.sort_values("start")
        starts, ends = rows["start"].to_numpy(), rows["end"].to_numpy()
        joined = np.r_[False, starts[1:] <= ends[:-1] + 1e-6]
        for label, threshold in thresholds.items():
            scores = rows[label].to_numpy()
            for a, b in runs(scores >= threshold, joined):
                events.append({"file": file, "label": label, "start": float(starts[a]), "end": float(ends[b]),
                               "score": float(scores[a : b + 1].max()), "n_windows": b - a + 1, "threshold": threshold})
    table = pd.DataFrame(events, columns=DETECTION_COLUMNS)
    return table.sort_values(["file", "start", "label"], kind="stable").reset_index(drop=True)


def write_detections(events: pd.DataFrame, files: list[str], raven_dir: str | Path, audacity_dir: str | Path,
                     table_csv: str | Path) -> None:
    """One Raven selection table (with a Score column) and one Audacity label file per
    predicted file (its key without the extension: the archive's sub-folders kept), empty
    where nothing was detected, and the table of all detections."""
    by_file = dict(tuple(events.groupby("file", sort=False)))
    for folder in (raven_dir, audacity_dir):
        Path(folder).mkdir(parents=True, exist_ok=True)
    for file in files:
        rows = by_file.get(file, events.iloc[:0])
        triples = list(zip(rows["label"], rows["start"], rows["end"]))
        name = PurePosixPath(file).with_suffix("").as_posix()  # site_A/20240501_060000.WAV: site_A/20240501_060000
        for folder in (raven_dir, audacity_dir):
            (Path(folder) / name).parent.mkdir(parents=True, exist_ok=True)
        write_raven_table(Path(raven_dir) / f"{name}.Table.1.selections.txt", triples, scores=rows["score"].tolist())
        with atomic_path(Path(audacity_dir) / f"{name}.txt") as tmp:
            Path(tmp).write_text("".join(f"{s:.3f}\t{e:.3f}\t{label} {score:.3f}\n" for label, s, e, score
                                         in zip(rows["label"], rows["start"], rows["end"], rows["score"])))
    write_csv(events, table_csv)
