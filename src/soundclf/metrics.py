"""Metrics users compare on. `truth` is a (rows, classes) 0/1 matrix, `scores` the same shape
(higher = more likely); single-label metrics take the true class id per row instead."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def top_k_accuracy(true_ids: np.ndarray, scores: np.ndarray, k: int = 1) -> float:
    """Share of rows whose true class is among the k highest scores (k=1: accuracy)."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == np.asarray(true_ids)[:, None]).any(axis=1).mean())


def map_at_k(true_ids: np.ndarray, scores: np.ndarray, k: int = 3) -> float:
    """Mean average precision at k with one true label per row (Freesound 2018's MAP@3):
    1/rank of the true class when it is within the top k, else 0."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = top == np.asarray(true_ids)[:, None]
    ranks = np.argmax(hits, axis=1) + 1
    return float(np.where(hits.any(axis=1), 1.0 / ranks, 0.0).mean())


def lwlrap(truth: np.ndarray, scores: np.ndarray) -> float:
    """Label-weighted label-ranking average precision (Freesound 2019): for every positive
    (row, class), the share of the row's labels ranked at or above it that are positive;
    averaged over all positives, so every positive label counts equally."""
    truth = np.asarray(truth).astype(bool)
    precisions = []
    for row_truth, row_scores in zip(truth, np.asarray(scores)):
        if not row_truth.any():
            continue
        order = np.argsort(-row_scores, kind="stable")
        rank_of = np.empty(len(order), dtype=int)
        rank_of[order] = np.arange(1, len(order) + 1)
        hits_at_rank = np.cumsum(row_truth[order])
        for c in np.flatnonzero(row_truth):
            precisions.append(hits_at_rank[rank_of[c] - 1] / rank_of[c])
    return float(np.mean(precisions)) if precisions else float("nan")


def padded_cmap(truth: np.ndarray, scores: np.ndarray, padding: int = 5) -> float:
    """BirdCLEF 2023's class-mean average precision: `padding` rows of all-positive truth and
    all-one scores are appended, so classes without positives score instead of breaking."""
    n_classes = truth.shape[1]
    pad = np.ones((padding, n_classes))
    return float(average_precision_score(np.vstack([truth, pad]), np.vstack([scores, pad]), average="macro"))


def macro_roc_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    """BirdCLEF 2024/25: macro ROC-AUC over the classes that have at least one positive."""
    truth = np.asarray(truth)
    scored = truth.sum(axis=0) > 0
    if not scored.any() or truth[:, scored].all():
        return float("nan")
    return float(roc_auc_score(truth[:, scored], np.asarray(scores)[:, scored], average="macro"))


def row_f1_nocall(truth: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """BirdCLEF 2021's row-wise F1: a row predicts the classes scoring >= threshold, or
    'nocall' when none does; a row without labels is 'nocall'. Mean of the rows' F1."""
    truth = np.asarray(truth).astype(bool)
    predicted = np.asarray(scores) >= threshold
    nocall_true, nocall_pred = ~truth.any(axis=1), ~predicted.any(axis=1)
    overlap = (truth & predicted).sum(axis=1) + (nocall_true & nocall_pred)
    sizes = truth.sum(axis=1) + nocall_true + predicted.sum(axis=1) + nocall_pred
    return float((2 * overlap / sizes).mean())


def classification_report(truth: np.ndarray, scores: np.ndarray, nocall_threshold: float = 0.5) -> dict[str, float]:
    """The multi-label metrics of one prediction table, plus top-1/top-3 on rows with a
    single positive label."""
    report = {
        "padded_cmap": padded_cmap(truth, scores),
        "macro_roc_auc": macro_roc_auc(truth, scores),
        "lwlrap": lwlrap(truth, scores),
        "row_f1_nocall": row_f1_nocall(truth, scores, nocall_threshold),
    }
    single = truth.sum(axis=1) == 1
    if single.any():
        ids = truth[single].argmax(axis=1)
        report["accuracy"] = top_k_accuracy(ids, scores[single], 1)
        report["top3_accuracy"] = top_k_accuracy(ids, scores[single], 3)
        report["map_at_3"] = map_at_k(ids, scores[single], 3)
    return report
