"""Review sets: which windows a person listens to.

Per class, the windows of a source (a prediction run or the OOF windows) are ranked by the
class's score and split into score-quantile bins that halve towards the top (Perch's call
density bins: the lower half, the next quarter, the next eighth, ...), so that a sample sees
the whole score range and still reaches the rare high scores where detections live. Each bin
gets an equal share of the class's sample, drawn uniformly at random within the bin: every
bin's share of the windows is known, so the marks give an unbiased estimate of the share of
windows holding the call (call density) as well as the points a calibration curve is fitted
on. An optional top-N adds the highest-scoring windows, marked as such (they are not part of
the stratified estimate).

Draws are seeded per class (the seed and the class name), and each bin's draw is a prefix of
one fixed permutation of it: adding a class leaves the other classes' items as they were, and
a larger sample keeps every item of the smaller one, so the marks made on it still count."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..indexing import read_classes, read_index
from ..submission import WINDOW_COLUMNS

SOURCE_COLUMNS = ["file", "path", "site", "start", "end"]  # then one score column per class
ITEM_COLUMNS = ["item", "file", "start", "end", "label", "score", "bin", "drawn_by", "site", "path"]
BIN_COLUMNS = ["label", "bin", "lo", "hi", "n_windows", "share"]
SITE_BIN_COLUMNS = ["label", "site", "bin", "n_windows"]
STRATIFIED, TOP = "stratified", "top"


class ReviewSetError(ValueError):
    """A review set cannot be drawn; the message names the config key or file and the fix."""


def site_of(file: str) -> str:
    """A recording's site: the folder it lies in ('' at the top of its audio folder)."""
    parent = Path(file).parent.as_posix()
    return "" if parent == "." else parent


def oof_source(oof: pd.DataFrame, index: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """OOF windows (key, start, end, classes) with each recording's path and site."""
    paths = index.set_index("key")["path"]
    frame = pd.DataFrame({"file": oof["key"].astype(str), "path": oof["key"].map(paths),
                          "site": oof["key"].map(site_of), "start": oof["start"], "end": oof["end"]})
    return pd.concat([frame, oof[classes].reset_index(drop=True)], axis=1)


def prediction_source(windows: pd.DataFrame, audio_dir: str | Path, classes: list[str]) -> pd.DataFrame:
    """A prediction's windows (recording key, start, end, classes: predictions/windows.parquet)
    with each recording's path and site (its folder under the prediction's audio folder)."""
    paths = windows["file"].drop_duplicates().map(lambda key: Path(audio_dir) / key)
    missing = paths[~paths.map(Path.is_file)]
    if len(missing):
        raise ReviewSetError(f"predictions name {len(missing)} recording(s) no longer in {audio_dir} (e.g. "
                             f"{missing.iloc[0]}): predict again (the prediction rules rerun when the folder changes)")
    frame = pd.DataFrame({"file": windows["file"].astype(str), "path": windows["file"].map(lambda k: str(Path(audio_dir) / k)),
                          "start": windows["start"].astype(float), "end": windows["end"].astype(float)})
    frame.insert(2, "site", frame["file"].map(site_of))
    return pd.concat([frame, windows[classes].astype(float).reset_index(drop=True)], axis=1)


def read_source(kind: str, windows: str, index: str | None = None, classes: str | None = None,
                audio_dir: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """A review set's source table and its classes: an experiment's OOF windows (kind 'oof',
    with the index and classes tables) or its prediction windows (windows.parquet, with the
    prediction's audio folder)."""
    if kind == "oof":
        names = read_classes(classes)
        return oof_source(pd.read_csv(windows, dtype={"key": str}), read_index(index), names), names
    frame = pd.read_parquet(windows)
    names = [c for c in frame.columns if c not in WINDOW_COLUMNS]
    return prediction_source(frame, audio_dir, names), names


def read_scores(windows: str | Path, labels: list[str]) -> dict[str, np.ndarray]:
    """label -> every window's score, from a source's windows table (CSV or Parquet)."""
    table = (pd.read_parquet(windows, columns=labels) if str(windows).endswith(".parquet")
             else pd.read_csv(windows, usecols=labels))
    return {label: table[label].to_numpy(float) for label in labels}


def item_id(file: str, start: float, end: float, label: str) -> str:
    """A window-and-class's stable id (the key of its marks)."""
    return hashlib.sha1(f"{file}\t{start:.3f}\t{end:.3f}\t{label}".encode()).hexdigest()[:12]


def quantile_bins(n_windows: int, n_bins: int) -> np.ndarray:
    """The bin of each rank (0 = lowest score) of n_windows ranked windows: bin b holds the
    ranks from quantile 1 - 2^-b up to 1 - 2^-(b+1) (the last bin: to the top)."""
    quantile = np.arange(n_windows) / max(n_windows, 1)
    edges = 1.0 - 0.5 ** np.arange(1, n_bins)
    return np.searchsorted(edges, quantile, side="right")


def class_rng(seed: int, label: str) -> np.random.Generator:
    return np.random.default_rng([seed, int(hashlib.sha1(label.encode()).hexdigest()[:8], 16)])


def allocate(per_class: int, sizes: np.ndarray) -> np.ndarray:
    """Items per bin: equal shares (the remainder to the top bins), what a bin cannot hold
    passed to the bins that can, the top ones first."""
    n_bins = len(sizes)
    counts = np.full(n_bins, per_class // n_bins) + (np.arange(n_bins) >= n_bins - per_class % n_bins)
    counts = np.minimum(counts, sizes)
    spare = min(per_class, int(sizes.sum())) - int(counts.sum())
    while spare > 0:
        for b in reversed(range(n_bins)):
            if spare and counts[b] < sizes[b]:
                counts[b] += 1
                spare -= 1
    return counts


def draw_class(source: pd.DataFrame, label: str, per_class: int, n_bins: int, top_n: int, seed: int
               ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One class's items, its bins (score range, windows, share) and its windows per site and bin."""
    scores = source[label].to_numpy(float)
    order = np.argsort(scores, kind="stable")  # ranks: lowest score first
    bins = np.empty(len(scores), int)
    bins[order] = quantile_bins(len(scores), n_bins)
    sizes = np.bincount(bins, minlength=n_bins)
    rng = class_rng(seed, label)
    chosen, drawn_by = [], []
    for b, k in enumerate(allocate(per_class, sizes)):
        members = np.flatnonzero(bins == b)
        chosen += list(members[rng.permutation(len(members))[:k]])
        drawn_by += [STRATIFIED] * int(k)
    if top_n:
        taken = set(chosen)
        top = [i for i in order[::-1] if i not in taken][:top_n]
        chosen += top
        drawn_by += [TOP] * len(top)
    rows = source.iloc[chosen]
    items = pd.DataFrame({"file": rows["file"].to_numpy(), "start": rows["start"].to_numpy(float),
                          "end": rows["end"].to_numpy(float), "label": label, "score": scores[chosen],
                          "bin": bins[chosen], "drawn_by": drawn_by, "site": rows["site"].to_numpy(),
                          "path": rows["path"].to_numpy()})
    items.insert(0, "item", [item_id(f, s, e, label) for f, s, e in zip(items["file"], items["start"], items["end"])])
    bin_table = pd.DataFrame({"label": label, "bin": np.arange(n_bins),
                              "lo": [scores[bins == b].min() if sizes[b] else np.nan for b in range(n_bins)],
                              "hi": [scores[bins == b].max() if sizes[b] else np.nan for b in range(n_bins)],
                              "n_windows": sizes, "share": sizes / max(len(scores), 1)})
    per_site = (pd.DataFrame({"site": source["site"].to_numpy(), "bin": bins}).value_counts()
                .rename("n_windows").reset_index())
    per_site.insert(0, "label", label)
    return items, bin_table, per_site[SITE_BIN_COLUMNS]


def draw_review_set(source: pd.DataFrame, classes: list[str], per_class: int, n_bins: int, top_n: int, seed: int
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every class's items (ITEM_COLUMNS), bins (BIN_COLUMNS) and windows per site and bin
    (SITE_BIN_COLUMNS) of a source table (SOURCE_COLUMNS + class scores)."""
    unknown = [c for c in classes if c not in source.columns]
    if unknown:
        raise ReviewSetError(f"classes {', '.join(unknown)} are not classes of the experiment: fix the review set's "
                             f"'classes' (known: {', '.join(c for c in source.columns if c not in SOURCE_COLUMNS)})")
    if source.empty:
        raise ReviewSetError("the source has no windows to review: check the experiment's predictions or OOF windows")
    drawn = [draw_class(source, label, per_class, n_bins, top_n, seed) for label in classes]
    items, bins, sites = (pd.concat(parts, ignore_index=True) for parts in zip(*drawn))
    return items[ITEM_COLUMNS], bins[BIN_COLUMNS], sites
