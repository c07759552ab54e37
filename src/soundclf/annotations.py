"""Strong labels: annotated events (class, start, end) of indexed recordings, read from an
RFCX-style table, a folder of Raven selection tables and a table of false positives, checked
against the index; and the truth they give a training crop's segments or an evaluation window.

An event counts in a segment or window that holds at least `min_overlap_seconds` of it, or
half of it when the event is shorter than twice that (a short call cut by a window edge still
counts on the side that holds half of it)."""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .sources import decode_text

log = logging.getLogger(__name__)

# 'annotated': a recording whose annotation exists (complete when data.annotations.complete);
# 'partial': one with a rejected row, or with negatives only: weak labels outside its events
EVENT_KINDS = ("event", "negative", "annotated", "partial")
ANNOTATION_COLUMNS = ["key", "kind", "label", "class_id", "start", "end", "source"]
REJECTED_COLUMNS = ["source", "recording", "label", "start", "end", "reason", "fix"]
RAVEN_BEGIN, RAVEN_END = "Begin Time (s)", "End Time (s)"
RAVEN_FILE, RAVEN_OFFSET = "Begin File", "File Offset (s)"
# Raven Pro names a saved table <sound file>.Table.<n>.selections.txt
RAVEN_SUFFIX = re.compile(r"(\.Table\.\d+)?\.selections\.txt$|\.txt$", re.IGNORECASE)
TIME_TOLERANCE = 0.1  # seconds an event may run past a recording's end (selection drawn to the edge)


class AnnotationError(ValueError):
    """An annotation source cannot be read at all; the message names the config key and fix."""


@dataclass
class Annotations:
    """Checked annotation rows (ANNOTATION_COLUMNS) and the rejected ones (REJECTED_COLUMNS)."""

    table: pd.DataFrame
    rejected: pd.DataFrame

    def summary(self) -> str:
        kinds = self.table["kind"].value_counts()
        return (f"{int(kinds.get('event', 0))} events and {int(kinds.get('negative', 0))} negatives on "
                f"{int(kinds.get('annotated', 0))} annotated recordings and {int(kinds.get('partial', 0))} annotated "
                f"in part (a rejected row, or negatives only); {len(self.rejected)} rows rejected")


@dataclass
class AnnotationRow:
    """One annotation as its source gives it (times still text), before it is checked."""
    source: str
    recording: str
    label: str
    start: str
    end: str
    kind: str


class RecordingMatcher:
    """Finds the index key that an annotation names: the key itself, the key without its
    extension, or a file name / stem that only one recording has (also when the annotation
    names it with folders of its own)."""

    def __init__(self, keys: list[str]):
        self.by_name: dict[str, set[str]] = {}
        for key in keys:
            path = Path(key)
            for name in (key, path.with_suffix("").as_posix(), path.name, path.stem):
                self.by_name.setdefault(name, set()).add(key)

    def __call__(self, name: str) -> tuple[str | None, str]:
        """(key, '') or (None, why not)."""
        path = Path(name.strip().replace("\\", "/"))
        found = next((self.by_name[n] for n in (path.as_posix(), path.name, path.stem) if n in self.by_name), set())
        if len(found) == 1:
            return next(iter(found)), ""
        if found:
            return None, f"names {len(found)} recordings ({', '.join(sorted(found)[:3])}...)"
        return None, "names no indexed recording"


def read_annotations(config: dict[str, Any], index: pd.DataFrame, classes: list[str]) -> Annotations:
    """Every annotation `config` (data.annotations) names, checked against the index (known
    recording, times inside it, start < end) and the classes (known label). A recording with
    a Raven table or an event row is annotated; one with a rejected row, or with negatives
    only, is annotated in part ('partial': never taken as complete)."""
    rows: list[AnnotationRow] = []
    covered: dict[str, str] = {}  # key -> the source that annotates it
    matcher = RecordingMatcher(index["key"].tolist())
    rejected: list[dict] = []
    if config.get("table"):
        rows += list(_table_rows(config["table"], config["columns"], "event", "data.annotations.table"))
    if config.get("negatives"):
        rows += list(_table_rows(config["negatives"], config["columns"], "negative", "data.annotations.negatives"))
    if config.get("raven_dir"):
        for table_path, recording in _raven_tables(config["raven_dir"]):
            parsed = _raven_rows(table_path, recording, config["raven_label_column"], rejected)
            if parsed is None:  # rejected whole: it annotates nothing
                continue
            table_rows, per_file = parsed
            if not per_file:  # the table annotates the recording it is named after, even with no selection
                key, why = matcher(recording)
                if key is None:
                    rejected.append(reject(AnnotationRow(str(table_path), recording, "", "", "", "event"),
                                            f"Raven table {why}", "name the table after its sound file "
                                            "(<file>.Table.1.selections.txt) or remove it"))
                    continue
                covered.setdefault(key, str(table_path))
            rows += table_rows
    durations = dict(zip(index["key"], index["duration"]))
    kept, spoiled = check_rows(rows, matcher, durations, classes, rejected)
    negative_only = {}
    for row in kept:
        source = row["source"].rsplit(":", 1)[0]
        if row["kind"] == "event":
            covered.setdefault(row["key"], source)
        else:
            negative_only.setdefault(row["key"], source)
    coverage = {key: ("partial" if key in spoiled else "annotated", source) for key, source in covered.items()}
    coverage |= {key: ("partial", source) for key, source in negative_only.items() if key not in covered}
    result = annotations_of(kept, coverage, durations, rejected)
    log.info("annotations: %s", result.summary())
    return result


def annotations_of(kept: list[dict], coverage: dict[str, tuple[str, str]], durations: dict[str, float],
                   rejected: list[dict]) -> Annotations:
    """Annotations of checked event and negative rows (check_rows), one row per annotated
    recording (`coverage`: key -> (kind 'annotated' or 'partial', source)) and the rejected rows."""
    rows = kept + [{"key": key, "kind": kind, "label": "", "class_id": -1, "start": 0.0, "end": float(durations[key]),
                    "source": source} for key, (kind, source) in sorted(coverage.items())]
    table = pd.DataFrame(rows, columns=ANNOTATION_COLUMNS).sort_values(["key", "kind", "start"], kind="stable")
    return Annotations(table.reset_index(drop=True), pd.DataFrame(rejected, columns=REJECTED_COLUMNS))


def check_rows(rows: list[AnnotationRow], match, durations: dict[str, float], classes: list[str],
               rejected: list[dict]) -> tuple[list[dict], set[str]]:
    """The rows that pass `row_problem` as ANNOTATION_COLUMNS dicts (an event's end clipped to
    its recording) and the keys of the recordings a rejected row names; each rejected row is
    appended to `rejected` with its reason and fix. `match(name)` -> (key or None, why not)."""
    class_id = {c: i for i, c in enumerate(classes)}
    kept, spoiled = [], set()
    for row in rows:
        key, why = match(row.recording)
        problem = row_problem(row, key, why, durations, class_id)
        if problem:
            rejected.append(reject(row, *problem))
            if key is not None:
                spoiled.add(key)
            continue
        start, end = float(row.start), min(float(row.end), durations[key])
        kept.append({"key": key, "kind": row.kind, "label": row.label.strip(), "class_id": class_id[row.label.strip()],
                     "start": round(start, 4), "end": round(end, 4), "source": row.source})
    return kept, spoiled


def row_problem(row: AnnotationRow, key: str | None, why: str, durations: dict[str, float],
                class_id: dict[str, int]) -> tuple[str, str] | None:
    """(reason, fix) when `row`, matched to index `key` (None: `why` not), cannot be kept."""
    if key is None:
        return f"recording '{row.recording}' {why}", "fix the recording name, or index the recording"
    label = row.label.strip()
    if not label:
        return "no label", "fill in the label column"
    if label not in class_id:
        return f"label '{label}' names no class", "use a label of the training metadata (classes.csv)"
    try:
        start, end = float(row.start), float(row.end)
    except ValueError:
        return f"times '{row.start}', '{row.end}' are not numbers", "write the start and end in seconds"
    if not (math.isfinite(start) and math.isfinite(end)):
        return "a time is missing", "write the start and end in seconds"
    if start >= end:
        return f"start {start:g} s is not before end {end:g} s", "swap or correct the times"
    if start < 0 or start >= durations[key] or end > durations[key] + TIME_TOLERANCE:
        return (f"times {start:g}-{end:g} s lie outside the recording (0-{durations[key]:g} s)",
                "check the times and the recording they belong to")
    return None


def reject(row: AnnotationRow, reason: str, fix: str) -> dict:
    log.warning("rejected annotation %s (%s): %s; fix: %s", row.source, row.recording, reason, fix)
    return {"source": row.source, "recording": row.recording, "label": row.label, "start": row.start,
            "end": row.end, "reason": reason, "fix": fix}


def _read_delimited(path: Path, delimiter: str | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a delimited text file, decoded as the metadata table is (UTF-8, else
    Windows-1252 / Latin-1 with a notice). A given delimiter (Raven's tab) reads quotes as
    text: Raven does not quote, and a label starting with '"' must not swallow the next rows."""
    text = decode_text(path.read_bytes(), path, None, setting=None)
    quoting = csv.QUOTE_NONE if delimiter else csv.QUOTE_MINIMAL
    delimiter = delimiter or max((",", ";", "\t"), key=text.split("\n", 1)[0].count)
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter, quoting=quoting)
    return [name.strip() for name in reader.fieldnames or []], [
        {(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in r.items()} for r in reader]


def _table_rows(path: str, columns: dict[str, str], kind: str, key: str) -> Iterator[AnnotationRow]:
    """An RFCX-style table (train_tp.csv / train_fp.csv): one event per row."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{key}: file '{path}' does not exist; point it at the annotation table or set it to null")
    header, rows = _read_delimited(path)
    missing = [f"data.annotations.columns.{role} ('{name}')" for role, name in columns.items() if name not in header]
    if missing:
        raise AnnotationError(f"{path}: no column for {', '.join(missing)} (its columns: {', '.join(header)}); "
                              "set data.annotations.columns to the table's column names")
    for line, r in enumerate(rows, start=2):
        yield AnnotationRow(f"{path}:{line}", r[columns["recording"]], r[columns["label"]], r[columns["start"]],
                   r[columns["end"]], kind)


def _raven_tables(folder: str) -> Iterator[tuple[Path, str]]:
    """(table, the recording it annotates: its path under `folder` without Raven's suffix)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError(f"data.annotations.raven_dir: folder '{folder}' does not exist; point it at the "
                              "folder of Raven selection tables or set it to null")
    for path in sorted(folder.rglob("*.txt")):
        yield path, RAVEN_SUFFIX.sub("", path.relative_to(folder).as_posix())


def _raven_rows(path: Path, recording: str, label_column: str,
                rejected: list[dict]) -> tuple[list[AnnotationRow], bool] | None:
    """The rows of a Raven Pro selection table and whether each names its own file (None: the
    table is rejected). Raven writes tab-separated rows, one per selection and view (Waveform
    1, Spectrogram 1), so a selection is read once. With 'Begin File' and 'File Offset (s)'
    columns (a table over several files) each row names its file and its start in it."""
    header, rows = _read_delimited(path, "\t")
    missing = [c for c in (RAVEN_BEGIN, RAVEN_END, label_column) if c not in header]
    if missing:
        rejected.append(reject(AnnotationRow(str(path), recording, "", "", "", "event"),
                                f"Raven table without column(s) {', '.join(missing)} (its columns: {', '.join(header)})",
                                "set data.annotations.raven_label_column to the table's label column"
                                if missing == [label_column] else "export the table from Raven with its time columns"))
        return None
    per_file = RAVEN_FILE in header and RAVEN_OFFSET in header
    seen, out = set(), []
    for line, r in enumerate(rows, start=2):
        selection = (r.get("Selection"), r[RAVEN_BEGIN], r[RAVEN_END], r[label_column])
        if selection in seen:
            continue
        seen.add(selection)
        start, end, name = r[RAVEN_BEGIN], r[RAVEN_END], recording
        if per_file:
            name = r[RAVEN_FILE]
            try:
                start, end = r[RAVEN_OFFSET], str(float(r[RAVEN_OFFSET]) + float(end) - float(start))
            except ValueError:
                pass  # the time check rejects the row with its reason
        out.append(AnnotationRow(f"{path}:{line}", name, r[label_column], start, end, "event"))
    return out, per_file


def write_raven_table(path: str | Path, events: list[tuple[str, float, float]], label_column: str = "Species",
                      low_high_hz: tuple[float, float] | None = None, scores: list[float] | None = None,
                      columns: dict[str, list[str]] | None = None) -> None:
    """A Raven Pro selection table of (label, start s, end s) events, as Raven writes it (the
    demo writes one per recording), with a Score column when `scores` are given (detections)
    and then one column per entry of `columns` (name: a text per event; reviewed marks), its
    tabs and line breaks turned into spaces."""
    low, high = low_high_hz or (0.0, 0.0)
    columns = columns or {}
    header = ["Selection", "View", "Channel", RAVEN_BEGIN, RAVEN_END, "Low Freq (Hz)", "High Freq (Hz)", label_column]
    lines = ["\t".join(header + (["Score"] if scores is not None else []) + list(columns))]
    order = sorted(range(len(events)), key=lambda i: events[i][1])
    for selection, i in enumerate(order, start=1):
        label, start, end = events[i]
        extra = [re.sub(r"[\t\r\n]", " ", str(values[i])) for values in columns.values()]
        lines.append("\t".join([str(selection), "Spectrogram 1", "1", f"{start:.6f}", f"{end:.6f}", f"{low:.1f}",
                                f"{high:.1f}", label] + ([f"{scores[i]:.4f}"] if scores is not None else []) + extra))
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_annotation_table(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"key": str, "label": str, "source": str}, keep_default_na=False)


def merge_tables(base: pd.DataFrame, extra: list[pd.DataFrame]) -> pd.DataFrame:
    """The checked annotations `base` (data.annotations) with the events and negatives of
    `extra` tables (reviewed marks) added. A recording keeps the kind `base` gives it (a
    complete recording stays complete); one that only `extra` annotates is 'partial': weak
    labels outside its events, never complete."""
    if not extra:
        return base
    rows = pd.concat([base] + [t[t["kind"].isin(("event", "negative"))] for t in extra], ignore_index=True)
    coverage = [t[t["kind"].isin(("annotated", "partial"))] for t in extra]
    added = pd.concat(coverage, ignore_index=True).drop_duplicates("key").assign(kind="partial")
    added = added[~added["key"].isin(base["key"])]
    table = pd.concat([rows, added], ignore_index=True)[ANNOTATION_COLUMNS]
    return table.sort_values(["key", "kind", "start"], kind="stable").reset_index(drop=True)


@dataclass
class _Spans:
    starts: np.ndarray
    ends: np.ndarray
    class_ids: np.ndarray

    @classmethod
    def of(cls, rows: pd.DataFrame) -> "_Spans":
        return cls(rows["start"].to_numpy(float), rows["end"].to_numpy(float), rows["class_id"].to_numpy(int))


def counts(overlap: np.ndarray, length: np.ndarray, min_overlap: float) -> np.ndarray:
    """Whether each overlap (any shape, last axis: the events) makes its event count: at
    least `min_overlap`, or half the event's `length` when that is less."""
    need = np.minimum(min_overlap, length / 2.0)
    return (overlap > 0) & (overlap >= need - 1e-9)


@dataclass
class StrongLabels:
    """The annotations of a set of recordings as targets and truth. `complete`: an annotated
    recording's spans without an event are negatives for every class (not those of a
    'partial' one); otherwise they keep the recording's weak labels. Negative rows (false positives) set their class to 0 where
    they count; events set theirs to 1."""

    events: dict[str, _Spans]
    negatives: dict[str, _Spans]
    annotated: set[str]  # every annotated recording, 'partial' ones included
    partial: set[str]  # never complete: weak labels outside their events
    complete: bool = False
    min_overlap: float = 0.1
    fingerprint: str = ""  # of the table and settings: a resumed training run must match it
    table: pd.DataFrame | None = None  # the ANNOTATION_COLUMNS rows these were made of

    @classmethod
    def from_table(cls, table: pd.DataFrame, complete: bool, min_overlap: float) -> "StrongLabels":
        by_kind = {kind: table[table["kind"] == kind] for kind in EVENT_KINDS}
        fingerprint = hashlib.sha1(f"{table.to_csv(index=False)}|{complete}|{min_overlap}".encode()).hexdigest()
        return cls({k: _Spans.of(g) for k, g in by_kind["event"].groupby("key")},
                   {k: _Spans.of(g) for k, g in by_kind["negative"].groupby("key")},
                   set(by_kind["annotated"]["key"]) | set(by_kind["partial"]["key"]), set(by_kind["partial"]["key"]),
                   complete, min_overlap, fingerprint, table)

    @classmethod
    def from_config(cls, paths: list[str | Path], config: dict[str, Any],
                    extra: list[str | Path] = ()) -> "StrongLabels | None":
        """The checked annotations at `paths` ([] or [data.annotations' table]) with those of
        the `extra` tables (reviewed marks, merge_tables) and data.annotations' settings (None:
        no annotations at all)."""
        if not paths and not extra:
            return None
        base = read_annotation_table(paths[0]) if paths else pd.DataFrame(columns=ANNOTATION_COLUMNS)
        table = merge_tables(base, [read_annotation_table(path) for path in extra])
        return cls.from_table(table, config["complete"], config["min_overlap_seconds"])

    def restricted_to(self, keys) -> "StrongLabels":
        """These annotations of the recordings `keys` only (a fold's training recordings: no
        annotation of a held-out recording reaches the model that scores it)."""
        return StrongLabels.from_table(self.table[self.table["key"].isin(set(keys))], self.complete, self.min_overlap)

    def __contains__(self, key: str) -> bool:
        return key in self.annotated

    def has_events(self, key: str) -> bool:
        return key in self.events

    def _targets(self, key: str, weak: np.ndarray, rows: int, overlap_of, length_of) -> np.ndarray:
        """(rows, classes) targets from the weak labels (classes,), overlap_of(spans) -> (rows,
        events) seconds and length_of(spans) -> (events,) seconds."""
        complete = self.complete and key not in self.partial
        targets = np.zeros((rows, len(weak)), np.float32) if complete else np.tile(weak, (rows, 1)).astype(np.float32)
        for spans, value in ((self.negatives.get(key), 0.0), (self.events.get(key), 1.0)):
            if spans is None:
                continue
            hit = counts(overlap_of(spans), length_of(spans), self.min_overlap)
            for row, event in zip(*np.nonzero(hit)):
                targets[row, spans.class_ids[event]] = value
        return targets

    def window_truth(self, key: str, windows: np.ndarray, weak: np.ndarray) -> np.ndarray:
        """0/1 truth (windows, classes) of (start, end) second windows of an annotated recording."""
        windows = np.asarray(windows, float).reshape(-1, 2)

        def overlap(spans: _Spans) -> np.ndarray:
            return np.clip(np.minimum(windows[:, 1:], spans.ends) - np.maximum(windows[:, :1], spans.starts), 0, None)

        return self._targets(key, (weak > 0).astype(np.float32), len(windows), overlap, lambda s: s.ends - s.starts)

    def segment_targets(self, key: str, positions: np.ndarray, frames_per_second: float, weak: np.ndarray) -> np.ndarray:
        """Targets (segments, classes) of a crop whose frames are the recording's frames
        `positions` (segments, frames; -1: padding). Frame p holds the time p / fps (a centred
        STFT), so looped, padded or shifted crops are measured by the audio they hold, and
        event lengths are counted in whole frames (a call inside one segment always counts)."""
        times = np.where(positions >= 0, positions / frames_per_second, -np.inf)

        def overlap(spans: _Spans) -> np.ndarray:
            inside = (times[:, :, None] >= spans.starts) & (times[:, :, None] < spans.ends)
            return inside.sum(axis=1) / frames_per_second

        def length(spans: _Spans) -> np.ndarray:
            return (np.ceil(spans.ends * frames_per_second) - np.ceil(spans.starts * frames_per_second)) / frames_per_second

        return self._targets(key, weak, positions.shape[0], overlap, length)

    def event_crop_start(self, key: str, n_frames: int, crop_frames: int, frames_per_second: float,
                         rng: np.random.Generator) -> int:
        """The first frame of a crop that holds a random event of `key` (the event anywhere
        inside the crop; an event longer than the crop: the crop anywhere inside the event)."""
        spans = self.events[key]
        i = int(rng.integers(len(spans.starts)))
        first = int(np.ceil(spans.starts[i] * frames_per_second))
        last = max(first + 1, int(np.ceil(spans.ends[i] * frames_per_second)))
        low, high = sorted((last - crop_frames, first))
        low, high = max(0, low), min(high, n_frames - crop_frames)
        return int(rng.integers(low, high + 1)) if low <= high else max(0, min(low, n_frames - crop_frames))
