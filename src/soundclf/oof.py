"""Out-of-fold aggregation: every fold's held-out windows -> one OOF table, cross-validated
metrics (per fold, mean ± std, pooled) and a per-class table."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from .indexing import labels_per_recording
from .multilabel import label_kind
from .scoring import recording_metrics, recording_scores, recording_truth


METRIC_LEVELS = ("recording", "window", "window_weak")


def cv_metrics(fold_metrics: list[dict], oof: pd.DataFrame, folds: pd.DataFrame, classes: list[str],
               nocall_threshold: float) -> dict:
    """Per-fold metrics as given, their mean and std (over folds where defined), the metrics
    of all folds' recording scores pooled, and the kind of labels the training data have
    (`labels`: multi-label or not, the metrics that lead: soundclf.multilabel)."""
    return {
        "labels": label_kind(labels_per_recording(folds)).as_dict(),
        "n_folds": len(fold_metrics),
        "n_recordings": int(oof["key"].nunique()),
        "n_windows": len(oof),
        "per_fold": sorted(fold_metrics, key=lambda m: m["fold"]),
        "mean_std": fold_summary(fold_metrics),
        "pooled": {"recording": recording_metrics(oof, folds, classes, nocall_threshold)},
    }


def fold_summary(fold_metrics: list[dict]) -> dict:
    """Each metric's mean and std over folds (where defined), at every level all folds have."""
    summary = {}
    for level in [level for level in METRIC_LEVELS if all(level in m for m in fold_metrics)]:
        names = sorted({name for m in fold_metrics for name in m[level]})
        summary[level] = {}
        for name in names:
            values = np.array([m[level].get(name, np.nan) for m in fold_metrics], dtype=float)
            finite = values[np.isfinite(values)]
            summary[level][name] = {"mean": float(finite.mean()) if finite.size else None,
                                    "std": float(finite.std()) if finite.size else None}
    return summary


def per_class_table(oof: pd.DataFrame, folds: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """AP and ROC-AUC of each class over all OOF recording scores, with its support (recordings
    where it is a primary or secondary label); undefined AUC/AP (no positive) left empty."""
    scores = recording_scores(oof, classes)
    truth = recording_truth(folds, scores.index, len(classes))
    rows = []
    for c, name in enumerate(classes):
        y, s = truth[:, c], scores[name].to_numpy()
        defined = 0 < y.sum() < len(y)
        rows.append({
            "class_id": c, "class": name, "support": int(y.sum()),
            "ap": float(average_precision_score(y, s)) if defined else np.nan,
            "roc_auc": float(roc_auc_score(y, s)) if defined else np.nan,
        })
    return pd.DataFrame(rows)
