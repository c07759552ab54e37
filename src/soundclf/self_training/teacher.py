"""A teacher's fold model on every window of some recordings: the soft targets of a distilled
student (its training recordings; rule teacher_windows) or of any student on the unlabeled
recordings (rules teacher_scores, probe_teacher_scores)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def teacher_window_scores(model_path: str | Path, recordings: pd.DataFrame, features_dir: str | Path, n_shards: int,
                          kind: str, batch_size: int) -> tuple[pd.DataFrame, list[str]]:
    """(fold (the model's held-out fold), key, start, end and a score column per class; the
    classes) of every evaluation window of the `recordings` (key, duration): an embedding probe
    reads them from their embedding cache in `features_dir`, a CNN from their log-mel cache."""
    if kind == "embedding_probe":
        from ..embedding.cache import EmbeddingCache
        from ..embedding.probe import score_probe_windows

        return score_probe_windows(model_path, recordings, EmbeddingCache(features_dir, n_shards))
    from ..evaluation import score_windows
    from ..mel_cache import MelCache

    return score_windows(model_path, recordings, MelCache(features_dir, n_shards), batch_size)
