"""Cross-validation fold assignment: seeded, stratified, group-aware, multi-label aware."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from .sources import is_int

log = logging.getLogger(__name__)


class FoldError(ValueError):
    pass


def multi_hot(index: pd.DataFrame, n_classes: int, secondary_weight: float = 1.0) -> np.ndarray:
    """(recordings, classes) float32 matrix: 1 for the primary label, `secondary_weight` for
    secondary labels, 0 elsewhere (a no-call recording, class id -1: 0 everywhere)."""
    y = np.zeros((len(index), n_classes), dtype=np.float32)
    for row, ids in enumerate(index["secondary_class_ids"]):
        y[row, list(ids)] = secondary_weight
    class_id = index["class_id"].to_numpy()
    labelled = class_id >= 0
    y[np.flatnonzero(labelled), class_id[labelled]] = 1.0
    return y


def given_folds(values: pd.Series, order: list[str]) -> pd.Series:
    """Fold numbers 0..K-1 from a metadata column's values, in `order` (the values sorted at
    planning time); a value outside it (the table changed since) is an error."""
    numeric = all(map(is_int, order))  # as sources.given_fold_values sorted them; 1 and "01" name one fold
    position = {int(v) if numeric else v: k for k, v in enumerate(order)}
    text = values.astype(str).str.strip()
    if numeric:
        text = text.map(lambda v: int(v) if is_int(v) else v)
    unknown = sorted(map(str, set(text) - set(position)))
    if unknown:
        raise FoldError(f"fold values {', '.join(unknown)} were not in the metadata when the workflow was planned; "
                        "run Snakemake again")
    fold = text.map(position).astype(int)
    sizes = np.bincount(fold, minlength=len(order))
    log.info("folds as given by the metadata: %s", ", ".join(f"{v} -> fold {k} ({n} recordings)"
                                                           for k, (v, n) in enumerate(zip(order, sizes))))
    empty = [v for v, n in zip(order, sizes) if n == 0]
    if empty:
        raise FoldError(f"given fold(s) {', '.join(empty)} hold no usable recording (all rejected by the index); "
                        "fix those files or drop the fold's rows from the metadata")
    return pd.Series(fold.to_numpy(), index=values.index, name="fold")


def assign_folds(
    index: pd.DataFrame,
    n_folds: int,
    seed: int,
    group_column: str | None = None,
    multilabel: bool = False,
) -> pd.Series:
    """Fold number (0..n_folds-1) of every recording, aligned with `index`.

    - with a group column: StratifiedGroupKFold on the primary label, so no group spans folds;
    - else with `multilabel` and secondary labels present: iterative stratification on the
      multi-hot labels (Sechidis et al. 2011, via the iterative-stratification package);
    - else StratifiedKFold on the primary label.
    Classes with fewer recordings than folds are spread over as many folds as they have
    recordings (the other folds hold none of them in validation).
    """
    if n_folds < 2:
        raise FoldError(f"folds.n_folds is {n_folds}; cross-validation needs at least 2")
    if len(index) < n_folds:
        raise FoldError(f"folds.n_folds is {n_folds} but only {len(index)} recordings were indexed; lower folds.n_folds")
    labels = index["class_id"].to_numpy()
    counts = pd.Series(labels).value_counts()
    rare = sorted(index.loc[index["class_id"].isin(counts[counts < n_folds].index), "primary_label"]
                  .replace("", "(no-call recordings)").unique())
    if rare:
        log.warning("classes with fewer recordings than folds (absent from some validation folds): %s", ", ".join(rare))

    dummy = np.zeros(len(index))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        if group_column:
            groups = index[group_column].astype(str).to_numpy()
            if len(set(groups)) < n_folds:
                raise FoldError(
                    f"folds.group_column '{group_column}' has {len(set(groups))} distinct values, fewer than "
                    f"folds.n_folds={n_folds}; lower n_folds or set group_column: null"
                )
            splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            splits = splitter.split(dummy, labels, groups)
            method = f"StratifiedGroupKFold (groups: {group_column})"
        elif multilabel and index["secondary_class_ids"].map(len).any():
            from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

            # classes kept from secondary labels alone (data.secondary_classes: keep) come after the primary ones
            n_classes = max([int(labels.max()), *(max(ids) for ids in index["secondary_class_ids"] if len(ids))]) + 1
            y = multi_hot(index, n_classes)
            splits = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(dummy, y)
            method = "MultilabelStratifiedKFold (iterative stratification)"
        else:
            splits = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(dummy, labels)
            method = "StratifiedKFold"
        fold = np.full(len(index), -1, dtype=int)
        for k, (_, valid) in enumerate(splits):
            fold[valid] = k
    sizes = np.bincount(fold, minlength=n_folds)
    log.info("%s: %d folds of sizes %s", method, n_folds, sizes.tolist())
    return pd.Series(fold, index=index.index, name="fold")
