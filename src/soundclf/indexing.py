"""Build the recordings table (one row per usable recording) and the class list."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .atomic import write_csv
from .audio import DEFAULT_MIN_DECODED_FRACTION, SILENCE_DBFS, AudioCheck, AudioDecodeError, check
from .multilabel import LabelKind, label_kind
from .sources import Recording, parse_label_list  # noqa: F401 (parse_label_list: also read from here)

log = logging.getLogger(__name__)

INDEX_COLUMNS = [
    "key", "path", "primary_label", "class_id", "secondary_labels", "secondary_class_ids",
    "frames", "sample_rate", "duration", "channels", "format", "subtype", "peak", "clipped_fraction",
    "content_hash", "note", "no_call",
]
NO_CLASS = -1  # the class id of a no-call recording, and of one labelled by secondary labels alone
REJECTED_COLUMNS = ["key", "path", "label", "stage", "reason", "fix"]
# A recording with more clipped samples than this is logged (and kept: the call is still there).
CLIPPED_WARNING = 0.01


class BadInputError(Exception):
    """Raised under `on_bad_audio: fail` / `on_bad_metadata: fail`; lists every problem."""


@dataclass
class Problems:
    """Rejected rows and files, by stage ('metadata' or 'audio'), with the reason and the fix."""

    rows: list[dict[str, str]] = field(default_factory=list)

    def add(self, rec: Recording, stage: str, reason: str, fix: str) -> None:
        log.warning("rejected %s (%s): %s; fix: %s", rec.path, stage, reason, fix)
        self.rows.append({"key": rec.key, "path": rec.path, "label": rec.label, "stage": stage, "reason": reason,
                          "fix": fix})

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=REJECTED_COLUMNS)

    def raise_if(self, stage: str, policy_key: str, extra: list[str] = ()) -> None:
        """Under a 'fail' policy: stop, listing every problem of that stage."""
        lines = [f"  {r['path']}: {r['reason']} -> {r['fix']}" for r in self.rows if r["stage"] == stage] + list(extra)
        if lines:
            raise BadInputError(
                f"{len(lines)} {stage} problem(s) and {policy_key} is 'fail':\n" + "\n".join(lines) +
                f"\nFix them, or set {policy_key}: skip to leave the rows out (listed in results/index/rejected.csv)."
            )


def build_index(
    recordings: list[Recording],
    columns: dict[str, str | None],
    on_bad_audio: str = "skip",
    on_bad_metadata: str = "skip",
    min_seconds: float = 0.0,
    min_decoded_fraction: float = DEFAULT_MIN_DECODED_FRACTION,
    threads: int = 1,
    secondary_classes: str = "keep",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Check every metadata row and decode-check every recording; returns (index, classes,
    rejected). See docs/data.md, "What happens to bad input", for each rule.

    Classes: every primary label, and with `secondary_classes` 'keep' (data.secondary_classes)
    or a labels column (data.columns.labels) every secondary label too; 'drop' drops the
    secondary labels that are no primary label (logged, a metadata problem under
    on_bad_metadata 'fail'). classes.csv's `secondary_only` marks the kept classes that are
    no recording's primary label (background species: left out of the BirdCLEF submission)."""
    problems = Problems()
    candidates = _check_metadata(recordings, columns, problems)
    inspect = partial(_inspect, min_decoded_fraction=min_decoded_fraction)
    with ThreadPoolExecutor(max(1, threads)) as pool:  # libsndfile releases the GIL
        results = list(tqdm(pool.map(inspect, [rec for rec, _ in candidates]), total=len(candidates),
                            desc="index", unit="file"))

    mapped = {c for c in columns.values() if c}
    rows = []
    given_ids: dict[str, str] = {}
    for (rec, secondary), result in zip(candidates, results):
        problem = _audio_problem(result, min_seconds)
        if problem:
            problems.add(rec, "audio", *problem)
            continue
        info = result.info
        if result.clipped_fraction > CLIPPED_WARNING:
            log.warning("clipped: %.1f %% of the samples of %s are at full scale (kept)", 100 * result.clipped_fraction, rec.path)
        row = {
            "key": rec.key, "path": rec.path, "primary_label": rec.label,
            "secondary_labels": secondary, "frames": info.frames, "sample_rate": info.sample_rate,
            "duration": round(info.duration, 4), "channels": info.channels, "format": info.format,
            "subtype": info.subtype, "peak": round(result.peak, 6),
            "clipped_fraction": round(result.clipped_fraction, 6), "content_hash": result.content_hash,
            "note": result.note, "no_call": rec.no_call,
        }
        if result.note:
            log.info("kept %s: %s", rec.path, result.note)
        for column, value in rec.row.items():  # other metadata (author, rating...) rides along
            if column not in mapped:  # one that an index column would overwrite is kept as <column>_given
                row[column if column not in INDEX_COLUMNS else f"{column}_given"] = value
        if columns.get("class_id") and rec.label:
            given_ids[rec.key] = rec.row[columns["class_id"]].strip()
        rows.append(row)

    if on_bad_audio == "fail":
        problems.raise_if("audio", "data.on_bad_audio")
    if not rows:
        raise BadInputError("no usable recordings: every listed file was rejected (see the rejected table)")
    index = pd.DataFrame(rows)
    labelled = index[index["primary_label"] != ""]  # "": no-call recordings (and secondary labels alone), no class
    classes = (given_class_order(labelled, given_ids, columns["class_id"]) if given_ids
               else sorted(set(labelled["primary_label"])))
    primaries = set(classes)
    every_label_a_class = bool(columns.get("labels")) or secondary_classes == "keep"
    if every_label_a_class:
        heard_only = sorted({s for sec in index["secondary_labels"] for s in sec} - primaries)
        if heard_only:
            log.info("%d class(es) no recording has as primary label, kept from the secondary labels "
                     "(data.secondary_classes: keep%s): %s", len(heard_only),
                     "; after the classes of data.columns.class_id" if given_ids else "", ", ".join(heard_only))
        classes = classes + heard_only
    class_id = {c: i for i, c in enumerate(classes)}
    unknown = _unknown_secondary_labels(index, class_id)
    if on_bad_metadata == "fail":
        problems.raise_if("metadata", "data.on_bad_metadata", [
            f"  {key}: secondary label(s) {', '.join(labels)} name no class (no recording has them as primary label; "
            "data.secondary_classes: keep makes them classes)" for key, labels in unknown.items()])
    if unknown:
        log.warning("secondary labels that name no class were dropped from %d recording(s) (no recording has them "
                    "as primary label; data.secondary_classes: keep makes them classes): %s", len(unknown),
                    "; ".join(f"{k}: {', '.join(v)}" for k, v in unknown.items()))
    index["class_id"] = index["primary_label"].map(class_id).fillna(NO_CLASS).astype(int)
    n_negative = int((index["no_call"] != "").sum())
    if n_negative:
        log.info("%d no-call recordings (data.negative_folders, data.negative_labels or an empty label): no label, "
                 "a 0 target for every class", n_negative)
    index["secondary_labels"] = [[s for s in sec if s in class_id and s != p]
                                 for sec, p in zip(index["secondary_labels"], index["primary_label"])]
    index["secondary_class_ids"] = [[class_id[s] for s in sec] for sec in index["secondary_labels"]]
    extra = [c for c in index.columns if c not in INDEX_COLUMNS]
    index = index[INDEX_COLUMNS + extra].sort_values("key").reset_index(drop=True)

    counts = index["primary_label"].value_counts()
    secondary_counts = pd.Series([s for sec in index["secondary_labels"] for s in sec]).value_counts()
    classes_df = pd.DataFrame({
        "class_id": range(len(classes)),
        "class": classes,
        "n_recordings": [int(counts.get(c, 0)) for c in classes],
        "n_secondary": [int(secondary_counts.get(c, 0)) for c in classes],
        "secondary_only": [not columns.get("labels") and c not in primaries for c in classes],
    })
    rejected = problems.table()
    _log_duplicates(index)
    log.info(
        "indexed %d recordings (%.2f h) in %d classes; rejected %d file(s)",
        len(index), index["duration"].sum() / 3600, len(classes), len(rejected),
    )
    return index, classes_df, rejected


def given_class_order(index: pd.DataFrame, given_ids: dict[str, str], column: str) -> list[str]:
    """The class names in the order of the metadata's class ids (the founding table's
    class_id), when every label has one integer id and every id one label; ids left with
    gaps (a class whose files were all rejected) are renumbered in the same order."""
    label_of: dict[int, tuple[str, str]] = {}
    id_of: dict[str, tuple[int, str]] = {}
    for key, label in zip(index["key"], index["primary_label"]):
        text = given_ids[key]
        if not text.lstrip("-").isdigit():
            raise BadInputError(f"data.columns.class_id: row {key}: class id {text!r} is not an integer; "
                                "fix the table or set data.columns.class_id: null to number classes by name")
        class_id = int(text)
        clash = (f"label {label!r} has class id {class_id}, but {id_of[label][1]} gave it {id_of[label][0]}"
                 if label in id_of and id_of[label][0] != class_id else
                 f"class id {class_id} names {label!r}, but {label_of[class_id][1]} gave it to {label_of[class_id][0]!r}"
                 if class_id in label_of and label_of[class_id][0] != label else None)
        if clash:
            raise BadInputError(f"data.columns.class_id: the class ids of {column!r} disagree with the labels at "
                                f"row {key}: {clash}; fix the table or set data.columns.class_id: null to number "
                                "classes by name")
        id_of[label], label_of[class_id] = (class_id, key), (label, key)
    order = [label_of[i][0] for i in sorted(label_of)]
    if sorted(label_of) != list(range(len(order))):
        log.warning("class ids of %r renumbered 0..%d in their order (some ids have no usable recording)",
                    column, len(order) - 1)
    return order


def _check_metadata(recordings: list[Recording], columns: dict[str, str | None],
                    problems: Problems) -> list[tuple[Recording, list[str]]]:
    """The rows worth decoding, with their parsed secondary labels; the others go to `problems`."""
    candidates = []
    seen: set[str] = set()
    for rec in recordings:
        problem = None
        secondary: list[str] = []
        if rec.key in seen:
            problem = ("listed twice in the metadata; the first row was kept", "remove the duplicate row")
        elif not Path(rec.path).is_file():
            problem = ("the metadata names a file that does not exist",
                       "correct the file name (relative to data.audio_dir) or remove the row")
        elif rec.labels is not None:  # data.columns.labels: the first is the primary label, every one a class
            secondary = list(rec.labels[1:])
        else:
            try:
                secondary = parse_label_list(rec.row.get(columns.get("secondary_labels") or "", ""))
            except ValueError as err:
                problem = (f"secondary labels: {err}", "write them as ['a', 'b'], as 'a b', or leave the cell empty")
        seen.add(rec.key)
        if problem:
            problems.add(rec, "metadata", *problem)
        else:
            candidates.append((rec, secondary))
    return candidates


def _inspect(rec: Recording, min_decoded_fraction: float) -> AudioCheck | AudioDecodeError:
    try:
        return check(rec.path, min_decoded_fraction)
    except AudioDecodeError as err:
        return err


def _audio_problem(result: AudioCheck | AudioDecodeError, min_seconds: float) -> tuple[str, str] | None:
    """(reason, fix) when a decoded file is not usable for training, else None."""
    if isinstance(result, AudioDecodeError):
        return result.reason, result.fix
    if result.peak_dbfs < SILENCE_DBFS:
        return (f"silent: peak level {result.peak_dbfs:.1f} dBFS (below {SILENCE_DBFS:g} dBFS)",
                "check the recording (a muted input?) or remove it")
    if result.info.duration < min_seconds:
        return (f"too short: {result.info.duration:.3f} s, below data.min_seconds ({min_seconds:g} s)",
                "remove it, or lower data.min_seconds")
    return None


def _unknown_secondary_labels(index: pd.DataFrame, class_id: dict[str, int]) -> dict[str, list[str]]:
    unknown = {}
    for key, secondary in zip(index["key"], index["secondary_labels"]):
        missing = sorted(set(secondary) - set(class_id))
        if missing:
            unknown[key] = missing
    return unknown


def _log_duplicates(index: pd.DataFrame) -> None:
    for _, group in index.groupby("content_hash"):
        if len(group) > 1:
            log.warning("duplicate audio: %s have identical samples (kept all; consider removing copies, "
                        "which can leak between folds)", ", ".join(group["key"]))


@dataclass(frozen=True)
class IndexSummary:
    """How much of the listed input the index kept, and why the rest was rejected."""

    listed: int
    kept: int
    reasons: dict[str, int]  # rejected rows per kind of reason, most frequent first
    lost_classes: list[str]  # labels whose every recording was rejected
    rejected_csv: str
    no_call: dict[str, int] = field(default_factory=dict)  # kept no-call recordings by source ('noise/', "label 'nocall'")
    secondary_only: list[str] = field(default_factory=list)  # classes kept from secondary labels alone
    labels: LabelKind | None = None  # multi-label or not: which metrics lead

    @property
    def rejected(self) -> int:
        return self.listed - self.kept

    @property
    def rejected_fraction(self) -> float:
        return self.rejected / self.listed if self.listed else 0.0

    def text(self) -> str:
        lines = [f"kept {self.kept} of {self.listed} recordings; rejected {self.rejected}"
                 + (f" ({self.rejected_fraction:.1%})" if self.rejected else "")]
        lines += [f"  {count} x {reason}" for reason, count in self.reasons.items()]
        if self.lost_classes:
            lines.append(f"  classes that lost all their recordings: {', '.join(self.lost_classes)}")
        if self.rejected:
            lines.append(f"  every rejected file, with its reason and fix: {self.rejected_csv}")
        if self.no_call:
            sources = ", ".join(f"{n} in {s}" if s.endswith("/") else f"{n} with {'an ' * (s == 'empty label')}{s}"
                                for s, n in self.no_call.items())
            fixes = (["set data.negative_folders: [] to make those folders classes"] * any(s.endswith("/") for s in self.no_call)
                     + ["remove a label from data.negative_labels to make it a class"]
                     * any(s.startswith("label ") for s in self.no_call))
            lines.append(f"  no-call recordings (no label, 0 for every class): {sources}" + "".join(f"; {f}" for f in fixes))
        if self.secondary_only:
            lines.append(f"  {len(self.secondary_only)} class(es) heard only as secondary labels, kept "
                         f"(data.secondary_classes: keep; not in submission.csv): {', '.join(self.secondary_only[:10])}"
                         + (" ..." if len(self.secondary_only) > 10 else ""))
        if self.labels is not None and self.labels.multilabel:
            lines.append(f"  {self.labels.text()}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"listed": self.listed, "kept": self.kept, "rejected": self.rejected,
                "rejected_fraction": self.rejected_fraction, "reasons": self.reasons,
                "lost_classes": self.lost_classes, "rejected_csv": self.rejected_csv, "no_call": self.no_call,
                "secondary_only": self.secondary_only,
                "labels": self.labels.as_dict() if self.labels is not None else None, "text": self.text()}


def labels_per_recording(index: pd.DataFrame) -> pd.Series:
    """How many classes label each recording of an index (or folds) table: its primary label
    (a class id >= 0) and its secondary labels; 0 for a no-call recording."""
    return (index["class_id"] >= 0).astype(int) + index["secondary_class_ids"].map(len)


def summarise(index: pd.DataFrame, rejected: pd.DataFrame, rejected_csv: str,
              classes: pd.DataFrame | None = None) -> IndexSummary:
    """The kept/rejected counts, the rejection reasons counted by kind, the classes left
    with no recording, the no-call recordings by source, the classes kept from secondary
    labels alone (`classes`' secondary_only) and whether the data are multi-label."""
    kinds = rejected["reason"].map(reason_kind).value_counts()
    kept_labels = set(index["primary_label"]) if len(index) else set()
    lost = sorted(set(rejected["label"]) - kept_labels - {""})
    if "no_call" in index:
        no_call = index.loc[index["no_call"] != "", "no_call"].value_counts() if len(index) else {}
    else:  # an index written before the column: no-call recordings came from folders
        no_call = (index.loc[index["class_id"] == NO_CLASS, "key"].str.split("/").str[0] + "/").value_counts() \
            if len(index) else {}
    secondary_only = (classes.loc[classes["secondary_only"], "class"].tolist()
                      if classes is not None and "secondary_only" in classes else [])
    return IndexSummary(listed=len(index) + len(rejected), kept=len(index),
                        reasons={str(k): int(v) for k, v in kinds.items()}, lost_classes=lost,
                        rejected_csv=rejected_csv, no_call={str(k): int(v) for k, v in dict(no_call).items()},
                        secondary_only=secondary_only,
                        labels=label_kind(labels_per_recording(index)) if len(index) else None)


def reason_kind(reason: str) -> str:
    """A rejection reason without its file-specific details: 'truncated', 'too short', ..."""
    return re.split(r"[:(;]", reason, maxsplit=1)[0].strip()


def too_many_rejected(summary: IndexSummary, max_fraction: float) -> BadInputError | None:
    """The error that stops the run when more of the input was rejected than
    data.max_rejected_fraction allows, else None."""
    if summary.rejected_fraction <= max_fraction:
        return None
    return BadInputError(
        f"the index rejected {summary.rejected_fraction:.1%} of the listed recordings, more than "
        f"data.max_rejected_fraction ({max_fraction:g}):\n{summary.text()}\n"
        "Fix: repair or remove the rejected files (each has its reason and fix in the list), "
        "or raise data.max_rejected_fraction to train on what is left.")


LIST_COLUMNS = ("secondary_labels", "secondary_class_ids")


def read_classes(path: str | Path) -> list[str]:
    """The class names of classes.csv, as text (labels such as '01' or RFCX's species ids stay
    the names they are, not numbers)."""
    return pd.read_csv(path, dtype={"class": str}, keep_default_na=False)["class"].tolist()


def secondary_only_classes(path: str | Path) -> list[str]:
    """The classes of classes.csv kept from secondary labels alone (data.secondary_classes:
    keep): species heard only in the background, which a BirdCLEF submission does not list."""
    classes = pd.read_csv(path, dtype={"class": str}, keep_default_na=False)
    if "secondary_only" not in classes:
        return []
    return classes.loc[classes["secondary_only"].astype(str).str.lower() == "true", "class"].tolist()


def read_index(path: str | Path) -> pd.DataFrame:
    """The recordings (or folds) table with its list columns parsed back from JSON and its
    keys and labels as text."""
    index = pd.read_csv(path, keep_default_na=False, dtype={"key": str, "primary_label": str})
    for column in LIST_COLUMNS:
        index[column] = index[column].map(json.loads)
    return index


def write_index(index: pd.DataFrame, path: str) -> None:
    """Inverse of read_index, written atomically."""
    out = index.copy()
    for column in LIST_COLUMNS:
        out[column] = [json.dumps(list(v)) for v in out[column]]
    write_csv(out, path)

