"""Search by example: a table of example calls (search.queries), each checked against the
archive before any job runs, turned into query vectors from the archive's own embeddings,
and searched in the archive's index for the most similar windows, at most a few per recording
(one loud recording must not fill the list)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..audio import AudioDecodeError, probe
from ..experiments import NAME
from ..review.sampling import ITEM_COLUMNS, site_of
from ..sources import relative_key
from .index import PROBES, ArchiveIndex, unit_rows

QUERY_COLUMNS = ["query", "file", "start", "end"]  # and an optional label (default: the query's name)
CANDIDATE_COLUMNS = ["label", "rank", "file", "start", "end", "score", "path"]
# an MP3's header only estimates its length: a query may end this far past it
LENGTH_TOLERANCE_SECONDS = 0.5


class QueryError(ValueError):
    """A query that cannot be searched; the message names the file, the row and the fix."""


def read_queries(path: str | Path, archive_dir: str | Path, archive_files: list[str]) -> pd.DataFrame:
    """search.queries checked against the archive: every column there, a label per row (the
    query's name where none is given), each file one of the archive's recordings (a path under
    search.audio_dir, or absolute), readable as audio, and each span inside it. Returns the
    queries with their recording's key (its path under the archive) and path."""
    return check_queries(read_query_table(path), path, archive_dir, archive_files)


def read_query_table(path: str | Path) -> pd.DataFrame:
    """search.queries as a table, checked on its own (columns, rows, a label per row that can
    name a folder), before the archive is looked at."""
    path = Path(path)
    if not path.is_file():
        raise QueryError(f"search.queries: '{path}' does not exist; write a CSV of columns "
                         f"{', '.join(QUERY_COLUMNS)}[, label] (docs/search.md)")
    table = pd.read_csv(path, dtype={"query": str, "file": str, "label": str}, keep_default_na=False)
    missing = [c for c in QUERY_COLUMNS if c not in table.columns]
    if missing:
        raise QueryError(f"{path}: no column(s) {', '.join(missing)}; a query is a row of "
                         f"{', '.join(QUERY_COLUMNS)}[, label]: a span of seconds in a recording of the archive")
    if table.empty:
        raise QueryError(f"{path} holds no query; add a row per example call, or set search.queries to null")
    if "label" not in table.columns:
        table["label"] = table["query"]
    table["label"] = table["label"].where(table["label"] != "", table["query"])
    unsafe = sorted({label for label in table["label"] if not NAME.match(label)})
    if unsafe:  # a label names its results folder
        raise QueryError(f"{path}: label(s) {', '.join(map(repr, unsafe))} are not letters, digits, '_', '.', '-' "
                         "(a label names its folder results/search/<label>/); rename them")
    return table


def check_queries(table: pd.DataFrame, path: str | Path, archive_dir: str | Path, archive_files: list[str]
                  ) -> pd.DataFrame:
    """The queries of `table` (read from `path`) checked against the archive's recordings."""
    archive_dir = Path(archive_dir)
    by_key = {relative_key(f, archive_dir): f for f in archive_files}
    problems, keys, paths = [], [], []
    for row, query in enumerate(table.itertuples(index=False), start=2):  # the CSV's line
        where = f"{path} line {row} (query '{query.query}')"
        key = relative_key(query.file, archive_dir) if Path(query.file).is_absolute() else Path(query.file).as_posix()
        keys.append(key)
        paths.append(by_key.get(key, ""))
        if key not in by_key:
            problems.append(f"{where}: '{query.file}' is not a recording of the archive (search.audio_dir "
                            f"'{archive_dir}'); copy it there, or name it by its path under that folder")
            continue
        try:
            duration = probe(by_key[key]).duration
        except AudioDecodeError as err:
            problems.append(f"{where}: {err.reason}; {err.fix}")
            continue
        start, end = float(query.start), float(query.end)
        if not 0 <= start < end:
            problems.append(f"{where}: start {start:g} s and end {end:g} s are not a span (0 <= start < end)")
        elif end > duration + LENGTH_TOLERANCE_SECONDS:
            problems.append(f"{where}: ends at {end:g} s but '{query.file}' lasts {duration:.1f} s; "
                            "give a span inside the recording")
    if problems:
        raise QueryError("search.queries:\n  " + "\n  ".join(problems))
    return table.assign(key=keys, path=paths, start=table["start"].astype(float), end=table["end"].astype(float))


def span_windows(n_windows: int, hop_seconds: float, window_seconds: float, start: float, end: float) -> np.ndarray:
    """The embedding windows (indices) that lie inside [start, end]; for a span shorter than a
    window, the one window whose centre is nearest the span's."""
    starts = np.arange(n_windows) * hop_seconds
    inside = np.flatnonzero((starts >= start - 1e-6) & (starts + window_seconds <= end + 1e-6))
    if len(inside):
        return inside
    return np.array([int(np.argmin(np.abs(starts + window_seconds / 2 - (start + end) / 2)))])


def query_vector(embeddings: np.ndarray, hop_seconds: float, window_seconds: float, start: float,
                 end: float) -> np.ndarray:
    """One query's vector: the mean direction of its span's windows in the archive's embeddings."""
    rows = unit_rows(embeddings[span_windows(len(embeddings), hop_seconds, window_seconds, start, end)])
    return unit_rows(rows.mean(0, keepdims=True))[0]


def label_vector(vectors: np.ndarray) -> np.ndarray:
    """A label's search vector: the mean direction of its queries' (several examples of one call
    search as one)."""
    return unit_rows(unit_rows(vectors).mean(0, keepdims=True))[0]


def capped_top(scores: np.ndarray, ids: np.ndarray, recording_of: np.ndarray, k: int, per_recording: int) -> np.ndarray:
    """Positions of the best `k` hits (scores best first) with at most `per_recording` from one
    recording; hits without an id (-1) are skipped."""
    kept, taken = [], {}
    for position in np.flatnonzero(ids >= 0):
        recording = recording_of[position]
        if taken.get(recording, 0) < per_recording:
            taken[recording] = taken.get(recording, 0) + 1
            kept.append(position)
            if len(kept) == k:
                break
    return np.array(kept, dtype=np.int64)


def search_label(index: ArchiveIndex, vector: np.ndarray, label: str, top_k: int, per_recording: int,
                 hop_seconds: float, window_seconds: float, paths: dict[str, str], probes: int = PROBES
                 ) -> pd.DataFrame:
    """The label's candidates (CANDIDATE_COLUMNS): the archive's windows most similar to its
    vector, at most `per_recording` per recording, `top_k` in all (fewer in a small archive);
    `probes`: the lists an inverted-file shard scans (search.probes).
    Asks the index for more hits than it keeps, growing the request until the cap leaves
    `top_k` or the archive is exhausted."""
    fetch = top_k * per_recording
    while True:
        scores, ids = (a[0] for a in index.search(vector[None], min(fetch, index.offsets[-1]), probes))
        located = index.locate(ids[ids >= 0])
        recording_of = np.array([key for key, _ in located] + [""] * int((ids < 0).sum()), dtype=object)
        keep = capped_top(scores, ids, recording_of, top_k, per_recording)
        if len(keep) == top_k or fetch >= index.offsets[-1]:
            break
        fetch *= 4
    keys = [located[p][0] for p in keep]
    starts = np.array([located[p][1] for p in keep], dtype=float) * hop_seconds
    return pd.DataFrame({"label": label, "rank": np.arange(1, len(keep) + 1), "file": keys, "start": starts,
                         "end": starts + window_seconds, "score": scores[keep], "path": [paths[k] for k in keys]},
                        columns=CANDIDATE_COLUMNS)


def candidate_items(candidates: pd.DataFrame) -> pd.DataFrame:
    """The candidates as a review set's items (review.sampling.ITEM_COLUMNS), in rank order;
    drawn by the search, or as a round's `drawn_by` column says (top, boundary, random)."""
    drawn_by = candidates["drawn_by"] if "drawn_by" in candidates else "search"
    return pd.DataFrame({"item": [f"{label}-{rank:04d}".replace(".", "_") for label, rank
                                  in zip(candidates["label"], candidates["rank"])],
                         "file": candidates["file"], "start": candidates["start"], "end": candidates["end"],
                         "label": candidates["label"], "score": candidates["score"], "bin": drawn_by,
                         "drawn_by": drawn_by, "site": candidates["file"].map(site_of), "path": candidates["path"]},
                        columns=ITEM_COLUMNS)
