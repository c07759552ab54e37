"""Rounds of agile modelling: after a round's candidates are marked in the review page, a
linear probe for the label is trained on every window marked so far (yes: the call; no or
another species: not it) and on random archive windows as weakly weighted background negatives
(as perch-hoplite does: most of an archive is not the call); it scores the whole archive, and
the next round's review set is drawn from those scores: the top unreviewed windows, the windows
nearest the decision boundary, and a few random ones (so that a calibration from the marks
stays unbiased)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ..embedding.cache import shard_embeddings
from ..review.store import current_marks
from .index import unit_rows
from .queries import CANDIDATE_COLUMNS, capped_top

POSITIVE, NEGATIVE = ("yes",), ("no", "other")  # 'unsure' trains nothing


class RoundError(ValueError):
    """A round that cannot run yet; the message says what to do first."""


@dataclass
class Draw:
    """How many windows of each kind a round's review set holds, and what its probe learns from."""

    top: int = 10
    boundary: int = 6
    random: int = 4
    background: int = 1000  # random archive windows, weakly weighted negatives
    background_weight: float = 0.1
    per_recording: int = 3
    seed: int = 0
    c: float = 1.0  # the probe's inverse L2 strength (scikit-learn's C)


def archive_windows(shards: list[str | Path]) -> Iterator[tuple[str, np.ndarray]]:
    """(recording key, (windows, dim) float32 unit rows) of every recording of the shards."""
    for shard in shards:
        for key, embeddings in shard_embeddings(shard):
            yield key, unit_rows(embeddings)


def marked_windows(marks_files: list[str | Path], label: str, examples: pd.DataFrame) -> pd.DataFrame:
    """What the round's probe learns the label from (file, start, target): the query windows
    (`examples`: file, start; the call) and the current mark of every window marked in earlier
    rounds, a window marked twice counting once, by its latest mark; marks of other labels and
    'unsure' are left out."""
    parts = [current_marks(path) for path in marks_files]
    marks = pd.concat(parts, ignore_index=True)
    marks = marks[(marks["label"] == label) & marks["mark"].isin(POSITIVE + NEGATIVE)]
    marked = pd.DataFrame({"file": marks["file"].astype(str), "start": marks["start"].astype(float),
                           "target": marks["mark"].isin(POSITIVE).astype(float)})
    queries = examples.assign(target=1.0)[["file", "start", "target"]]
    return pd.concat([queries, marked], ignore_index=True).drop_duplicates(["file", "start"], keep="last")


def training_set(marked: pd.DataFrame, shards: list[str | Path], hop_seconds: float, draw: Draw
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """(x, target, weight, counts): the marked windows' embeddings with their marks (weight 1),
    then draw.background random unmarked archive windows as negatives (draw.background_weight)."""
    wanted = {(f, int(round(s / hop_seconds))): t for f, s, t in marked.itertuples(index=False)}
    x, y, rng, n_seen = [], [], np.random.default_rng(draw.seed), 0
    background = []  # a reservoir sample of unmarked windows over the whole archive
    for key, rows in archive_windows(shards):
        for w, row in enumerate(rows):
            if (key, w) in wanted:
                x.append(row)
                y.append(wanted[(key, w)])
                continue
            n_seen += 1
            if len(background) < draw.background:
                background.append(row)
            elif (j := rng.integers(n_seen)) < draw.background:
                background[j] = row
    if len(x) < len(wanted):
        raise RoundError(f"{len(wanted) - len(x)} marked window(s) are not in the archive's embeddings (a recording "
                         "removed from search.audio_dir?); restore it or clear those marks")
    y = np.array(y, np.float32)
    if not (y == 1).any():
        raise RoundError("no window is marked yes yet: a probe needs at least one; mark the calls you hear in the "
                         "review page, then run the round again")
    n_marked = len(x)
    x = np.stack(x + background).astype(np.float32)
    target = np.concatenate([y, np.zeros(len(background), np.float32)])
    weight = np.concatenate([np.ones(n_marked), np.full(len(background), draw.background_weight)])
    counts = {"yes": int((y == 1).sum()), "no": int((y == 0).sum()), "background": len(background)}
    return x, target, weight, counts


def fit_round_probe(x: np.ndarray, target: np.ndarray, weight: np.ndarray, c: float = 1.0):
    """A logistic regression on the unit embeddings, inverse L2 strength `c` (search.round.c;
    scikit-learn's default, 1)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=5000).fit(x, target, sample_weight=weight)


def score_archive(probe, shards: list[str | Path], hop_seconds: float) -> pd.DataFrame:
    """Every archive window's probability of the call (file, window, start, score)."""
    parts = []
    for key, rows in archive_windows(shards):
        parts.append(pd.DataFrame({"file": key, "window": np.arange(len(rows)), "score": probe.predict_proba(rows)[:, 1]}))
    scores = pd.concat(parts, ignore_index=True)
    scores.insert(2, "start", scores["window"] * hop_seconds)
    return scores


def draw_next(scores: pd.DataFrame, reviewed: set[tuple[str, float]], draw: Draw) -> pd.DataFrame:
    """The next review set's windows among those not reviewed yet (file, start, score,
    drawn_by): the top scores (at most draw.per_recording per recording), those nearest 0.5,
    and random ones, without repeats."""
    fresh = scores[[(f, s) not in reviewed for f, s in zip(scores["file"], scores["start"])]]
    fresh = fresh.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    top = capped_top(fresh["score"].to_numpy(), np.arange(len(fresh)), fresh["file"].to_numpy(object), draw.top,
                     draw.per_recording)
    rest = fresh.drop(index=top)
    boundary = (rest["score"] - 0.5).abs().sort_values(kind="stable").index[: draw.boundary]
    rest = rest.drop(index=boundary)
    rng = np.random.default_rng(draw.seed)
    random = rng.choice(rest.index.to_numpy(), size=min(draw.random, len(rest)), replace=False)
    picked = [(fresh.loc[top], "top"), (fresh.loc[boundary], "boundary"), (fresh.loc[random], "random")]
    return pd.concat([rows.assign(drawn_by=kind) for rows, kind in picked], ignore_index=True)


def round_candidates(drawn: pd.DataFrame, label: str, window_seconds: float, paths: dict[str, str]) -> pd.DataFrame:
    """The drawn windows as search candidates (CANDIDATE_COLUMNS, plus drawn_by)."""
    return pd.DataFrame({"label": label, "rank": np.arange(1, len(drawn) + 1), "file": drawn["file"],
                         "start": drawn["start"], "end": drawn["start"] + window_seconds, "score": drawn["score"],
                         "path": drawn["file"].map(paths), "drawn_by": drawn["drawn_by"]},
                        columns=CANDIDATE_COLUMNS + ["drawn_by"])
