"""Metrics against hand-worked cases from the competitions' definitions and scikit-learn."""
import numpy as np
import pytest
from sklearn.metrics import label_ranking_average_precision_score, roc_auc_score

from soundclf.metrics import (classification_report, lwlrap, macro_roc_auc, map_at_k, padded_cmap,
                              row_f1_nocall, top_k_accuracy)


def test_accuracy_and_top_k_by_hand():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    true = np.array([1, 1, 0])
    assert top_k_accuracy(true, scores, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(true, scores, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(true, scores, 3) == 1.0


def test_map_at_3_by_hand():
    # true class at rank 1, 2, 3 and 4 -> 1, 1/2, 1/3, 0
    scores = np.array([[0.9, 0.5, 0.3, 0.1]] * 4)
    assert map_at_k(np.array([0, 1, 2, 3]), scores, 3) == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)


def test_lwlrap_by_hand():
    # row 0: positives ranked 1st and 3rd -> precisions 1/1, 2/3; row 1: positive ranked 2nd -> 1/2
    truth = np.array([[1, 0, 1, 0], [0, 1, 0, 0]])
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.9, 0.8, 0.1, 0.2]])
    assert lwlrap(truth, scores) == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)


def test_lwlrap_equals_sklearn_lrap_weighted_by_positives():
    rng = np.random.default_rng(0)
    truth = (rng.random((60, 8)) < 0.25).astype(int)
    truth[truth.sum(axis=1) == 0, 0] = 1
    scores = rng.random((60, 8))  # continuous: no ties
    reference = label_ranking_average_precision_score(truth, scores, sample_weight=truth.sum(axis=1))
    assert lwlrap(truth, scores) == pytest.approx(reference)


def test_padded_cmap_by_hand():
    # one class, truth [1, 0], scores [0.2, 0.8]; padded with 5 positives scoring 1:
    # ranking: 5 pads (pos), 0.8 (neg), 0.2 (pos): AP = (5 * 1 + 6/7) / 6
    value = padded_cmap(np.array([[1], [0]]), np.array([[0.2], [0.8]]), padding=5)
    assert value == pytest.approx((5 + 6 / 7) / 6)


def test_padded_cmap_scores_classes_without_positives():
    truth = np.array([[1, 0], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.2, 0.3]])
    assert np.isfinite(padded_cmap(truth, scores))


def test_macro_roc_auc_skips_classes_without_positives():
    rng = np.random.default_rng(1)
    truth = (rng.random((40, 5)) < 0.3).astype(int)
    truth[:, 4] = 0
    scores = rng.random((40, 5))
    expected = np.mean([roc_auc_score(truth[:, c], scores[:, c]) for c in range(4)])
    assert macro_roc_auc(truth, scores) == pytest.approx(expected)


def test_row_f1_nocall_by_hand():
    truth = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 0, 0]])
    scores = np.array([[0.9, 0.6, 0.0], [0.1, 0.1, 0.1], [0.9, 0.1, 0.1], [0.7, 0.0, 0.0]])
    # row0: P={0,1}, T={0} -> 2/3; row1: nocall/nocall -> 1; row2: P={0}, T={0,1} -> 2/3; row3: P={0}, T=nocall -> 0
    assert row_f1_nocall(truth, scores, 0.5) == pytest.approx((2 / 3 + 1 + 2 / 3 + 0) / 4)


def test_report_has_every_metric():
    truth = np.eye(4)[[0, 1, 2, 3, 0, 1]]
    report = classification_report(truth, truth * 0.8 + 0.1)
    assert report["accuracy"] == 1.0 and report["macro_roc_auc"] == 1.0
    assert set(report) == {"padded_cmap", "macro_roc_auc", "lwlrap", "row_f1_nocall", "accuracy",
                           "top3_accuracy", "map_at_3"}
