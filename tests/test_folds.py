"""Fold assignment: disjoint, complete, balanced, group-safe, deterministic."""
import numpy as np
import pandas as pd
import pytest

from soundclf.folds import FoldError, assign_folds


def synthetic_index(n_per_class=(10, 9, 7, 3, 1), n_groups=12, seed=0, secondary=False):
    rng = np.random.default_rng(seed)
    class_id = np.repeat(np.arange(len(n_per_class)), n_per_class)
    n = len(class_id)
    return pd.DataFrame({
        "key": [f"r{i}" for i in range(n)],
        "primary_label": [f"c{c}" for c in class_id],
        "class_id": class_id,
        "secondary_class_ids": [[int((c + 1) % len(n_per_class))] if secondary and i % 3 == 0 else []
                                for i, c in enumerate(class_id)],
        "author": rng.integers(0, n_groups, n).astype(str),
    })


@pytest.mark.parametrize("group_column,multilabel", [(None, False), ("author", False), (None, True)])
def test_folds_cover_every_recording_once(group_column, multilabel):
    index = synthetic_index(secondary=multilabel)
    fold = assign_folds(index, 5, seed=1, group_column=group_column, multilabel=multilabel)
    assert len(fold) == len(index) and set(fold) == set(range(5))  # each recording exactly one fold


def test_per_class_counts_within_one_without_groups():
    index = synthetic_index()
    fold = assign_folds(index, 5, seed=1)
    counts = pd.crosstab(index["class_id"], fold)
    assert ((counts.max(axis=1) - counts.min(axis=1)) <= 1).all()


def test_groups_never_span_folds():
    index = synthetic_index(n_groups=15)
    fold = assign_folds(index, 4, seed=3, group_column="author")
    assert (index.assign(fold=fold).groupby("author")["fold"].nunique() == 1).all()


@pytest.mark.parametrize("group_column,multilabel", [(None, False), ("author", False), (None, True)])
def test_same_seed_same_folds_other_seed_differs(group_column, multilabel):
    index = synthetic_index(secondary=True)
    a = assign_folds(index, 5, 7, group_column, multilabel)
    b = assign_folds(index, 5, 7, group_column, multilabel)
    c = assign_folds(index, 5, 8, group_column, multilabel)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


def test_rare_classes_do_not_crash_and_are_logged(caplog):
    index = synthetic_index(n_per_class=(6, 6, 2, 1))
    fold = assign_folds(index, 5, seed=0)
    assert set(fold[index["class_id"] == 3]) <= set(range(5))
    assert "fewer recordings than folds" in caplog.text and "c3" in caplog.text


def test_impossible_fold_counts_raise():
    with pytest.raises(FoldError, match="at least 2"):
        assign_folds(synthetic_index(), 1, 0)
    with pytest.raises(FoldError, match="distinct values"):
        assign_folds(synthetic_index(n_groups=3), 5, 0, group_column="author")
