"""A teacher's window scores on unlabeled recordings turned into pseudo-labels, and the rule
that keeps cross-validation honest: the pseudo-labels a fold-k student learns from were made
by a model that never saw fold k's recordings (the fold-k teacher, its held-out fold k)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..comparison import calibrated_mean

WINDOW_COLUMNS = ["fold", "key", "start", "end"]


class PseudoLabelLeak(ValueError):
    """Pseudo-labels of a model that trained on the fold they would be scored on."""


def transform_scores(scores: np.ndarray, power: float = 1.0, threshold: float = 0.0,
                     top_k: int | None = None) -> np.ndarray:
    """Pseudo-labels (windows, classes) from a teacher's scores in [0, 1]: scores below
    `threshold` and, with `top_k`, all but each window's k highest are set to 0; the rest are
    raised to `power` (> 1 pushes uncertain scores towards 0, < 1 towards 1)."""
    scores = np.asarray(scores, dtype=np.float32)
    kept = scores >= threshold
    if top_k is not None and top_k < scores.shape[1]:
        top = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
        in_top = np.zeros_like(kept)
        np.put_along_axis(in_top, top, True, axis=1)
        kept &= in_top
    return np.where(kept, scores ** power, 0.0).astype(np.float32)


def check_fold(table: pd.DataFrame, fold: int, source: str) -> None:
    """Stop when any row of `table` was scored by a model that trained on fold `fold` (its
    `fold` column is the held-out fold of the model that scored the row)."""
    other = sorted(set(table["fold"].astype(int)) - {fold})
    if other:
        raise PseudoLabelLeak(f"{source}: rows scored by the models of fold(s) {other}, which trained on fold "
                              f"{fold}'s recordings; fold {fold}'s student may only learn from fold {fold}'s teacher")


def weighted_scores(tables: dict[str, pd.DataFrame], weights: dict[str, float], classes: list[str],
                    calibration: dict[str, dict] | None = None) -> pd.DataFrame:
    """The ensemble's window scores: the weighted mean of its members' (an ensemble.json's
    weights and calibration; members of weight 0 or absent are left out). Every member scored
    the same windows with the model of the same held-out fold."""
    members = [exp for exp, weight in weights.items() if weight > 0]
    missing = [exp for exp in members if exp not in tables]
    if missing:
        raise ValueError(f"ensemble members {missing} have no scores on the unlabeled windows (not CNN experiments?)")
    first = tables[members[0]][WINDOW_COLUMNS].reset_index(drop=True)
    for exp in members[1:]:
        if not tables[exp][WINDOW_COLUMNS].reset_index(drop=True).equals(first):
            raise ValueError(f"{exp} and {members[0]} scored different windows; their mel or window settings differ")
    mean = calibrated_mean({exp: tables[exp][classes] for exp in members}, weights, calibration)
    return pd.concat([first, pd.DataFrame(mean, columns=classes)], axis=1)


def pseudo_label_table(teacher_windows: pd.DataFrame, classes: list[str], fold: int, power: float = 1.0,
                       threshold: float = 0.0, top_k: int | None = None, source: str = "teacher scores") -> pd.DataFrame:
    """fold, key, start, end and one pseudo-label column per class, for fold `fold`'s student."""
    check_fold(teacher_windows, fold, source)
    missing = [c for c in classes if c not in teacher_windows.columns]
    if missing:
        raise ValueError(f"{source}: no score column for class(es) {missing}: the teacher was trained on other classes")
    labels = transform_scores(teacher_windows[classes].to_numpy(), power, threshold, top_k)
    return pd.concat([teacher_windows[WINDOW_COLUMNS].reset_index(drop=True),
                      pd.DataFrame(labels, columns=classes)], axis=1)
