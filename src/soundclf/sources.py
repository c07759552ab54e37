"""Which recordings a dataset holds, and which cache shard each belongs to.

Standard library only: the Snakefile calls this while it parses, to give every mel-shard
job exactly its own audio files as inputs (so adding a recording reruns one shard).
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .multilabel import LabelKind, label_kind

AUDIO_EXTENSIONS = ("ogg", "flac", "wav", "mp3", "opus", "aiff", "aif")
NEGATIVE_LABELS = ("nocall", "noise")  # data.negative_labels' default: a row labelled only so is a no-call recording

log = logging.getLogger(__name__)


class DataSourceError(Exception):
    """The configured data cannot be listed; the message names the config key and the fix."""


@dataclass(frozen=True)
class Recording:
    key: str  # path relative to the audio folder, with '/' separators: the cache key
    path: str  # path to open, as configured (relative to the working directory or absolute)
    label: str  # primary label ('' when the metadata row has none)
    row: dict[str, str]  # the metadata row, or {} for a folder tree
    negative: bool = False  # a no-call recording (negative folder, negative or empty label): 0 for every class
    labels: tuple[str, ...] | None = None  # data.columns.labels: every label of the row (label = the first)
    no_call: str = ""  # what made it a no-call recording: 'noise/' (a folder), "label 'nocall'", 'empty label'


def shard_path(cache_dir: str | Path, shard: int) -> Path:
    """The HDF5 file of shard `shard` in a cache folder (mel and embedding caches alike)."""
    return Path(cache_dir) / f"shard_{shard:03d}.h5"


def shard_of(key: str, n_shards: int) -> int:
    """Stable shard number of a recording key (independent of the other recordings)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_shards


def list_recordings(data: dict[str, Any]) -> list[Recording]:
    """All recordings the `data` config section names, sorted by key."""
    audio_dir = Path(data["audio_dir"])
    if data["layout"] == "folders":
        recordings = _scan_folders(audio_dir, data.get("extensions", AUDIO_EXTENSIONS), data.get("negative_folders", ()))
    else:
        recordings = _read_metadata(audio_dir, Path(data["metadata_csv"]), data["columns"], data.get("metadata_encoding"),
                                    data.get("negative_labels", NEGATIVE_LABELS), data.get("secondary_classes", "keep"))
    return sorted(recordings, key=lambda r: r.key)


def _scan_folders(audio_dir: Path, extensions, negative_folders=()) -> list[Recording]:
    """One recording per audio file in a class folder; the files of a folder named in
    `negative_folders` (any case: BirdNET's noise, background, other, silence) are no-call
    recordings with no label."""
    negatives = {name.lower() for name in negative_folders}
    if not audio_dir.is_dir():
        raise DataSourceError(
            f"data.audio_dir: folder '{audio_dir}' does not exist; point it at a folder "
            "holding one sub-folder of recordings per class."
        )
    found = []
    for path in list_audio_files(audio_dir, extensions):
        key = relative_key(path, audio_dir)
        if "/" not in key:
            continue  # files directly under audio_dir have no class folder
        folder = key.split("/", 1)[0]
        negative = folder.lower() in negatives
        found.append(Recording(key, str(audio_dir / key), "" if negative else folder, {}, negative,
                               no_call=f"{folder}/" if negative else ""))
    return found


def _read_metadata(audio_dir: Path, metadata_csv: Path, columns: dict[str, str], encoding: str | None = None,
                   negative_labels=NEGATIVE_LABELS, secondary_classes: str = "keep") -> list[Recording]:
    """One recording per metadata row. A row whose label is empty or one of `negative_labels`
    (any case; data.negative_labels) is a no-call recording. With data.columns.labels, the
    row's labels are that one column's, split by the separator the file uses
    (label_separator). Stops (DataSourceError, naming the row) where a negative label would be
    a class: beside other labels of a row, as a kept secondary label, or with a class id."""
    header, rows = read_metadata_table(metadata_csv, encoding)
    labels_column = columns.get("labels")
    roles = ("filename", "labels" if labels_column else "label", "class_id")
    for role in roles:
        if columns.get(role) and columns[role] not in header:
            raise DataSourceError(
                f"data.columns.{role}: column '{columns[role]}' is not in {metadata_csv} "
                f"(its columns: {', '.join(header)}); set data.columns.{role} to the right name."
            )
    if not labels_column and not columns.get("label"):
        raise DataSourceError("data.columns: set label (one label per row, with secondary_labels beside it) or labels "
                              "(one column holding every label of a row)")
    negatives = {n.casefold() for n in negative_labels}
    separator = None
    if labels_column:
        separator = label_separator([row[labels_column] for row in rows], metadata_csv, labels_column)
        log.info("data.columns.labels '%s' of %s: %s", labels_column, metadata_csv, SEPARATOR_NAMES[separator])
    recordings = []
    for line, row in enumerate(rows, start=2):  # the header is line 1
        path = Path(row[columns["filename"]].strip())
        where = f"{metadata_csv}, line {line} ({path})"
        if labels_column:
            if row.get(None):  # fields past the header's: an unquoted ',' in a comma-separated table
                raise DataSourceError(
                    f"data.columns.labels: {where} has more fields than the header ({', '.join(row[None])!r} left "
                    "over): quote a labels cell that holds the table's own separator (\"a,b\"), or separate the "
                    "labels with ';' or spaces")
            given = split_labels(row[labels_column], separator)
            extra = []
        else:
            primary = row[columns["label"]].strip()
            given = [primary] if primary else []
            extra = _lenient_labels(row.get(columns.get("secondary_labels") or "", ""))
        negative = [g for g in given if g.casefold() in negatives]
        if negative and (len(given) > len(negative) or extra):
            others = [g for g in given if g.casefold() not in negatives] + extra
            raise DataSourceError(
                f"{where}: label '{negative[0]}' is one of data.negative_labels (a row labelled only so is a no-call "
                f"recording), but this row also names {', '.join(map(repr, others))}, which would make it a class. "
                f"Remove '{negative[0]}' from data.negative_labels to train it as a class, or from this row")
        kept_negative = [e for e in extra if e.casefold() in negatives] if secondary_classes == "keep" else []
        if kept_negative:
            raise DataSourceError(
                f"{where}: secondary label '{kept_negative[0]}' is one of data.negative_labels, and with "
                "data.secondary_classes: keep every secondary label is a class. Remove it from data.negative_labels "
                "to train it as a class, or from the row's secondary labels (or set data.secondary_classes: drop)")
        no_call = (not given or bool(negative)) and not extra  # an empty label beside secondary ones: labelled by those
        if no_call and columns.get("class_id") and row[columns["class_id"]].strip():
            named = f"label '{negative[0]}' (data.negative_labels)" if negative else "an empty label"
            raise DataSourceError(
                f"{where}: {named} makes a no-call recording, but the row gives it class id "
                f"{row[columns['class_id']].strip()!r}, a class. Remove the label from data.negative_labels to train "
                "it as a class, or empty the row's class id")
        source = (f"label '{negative[0]}'" if negative else "empty label") if no_call else ""
        label = "" if no_call or not given else given[0]
        labels = (() if no_call else tuple(given)) if labels_column else None
        recordings.append(Recording(_key(path, audio_dir), str(audio_dir / path), label, row, no_call, labels, source))
    return recordings


# data.columns.labels: how one column holds every label of a row
SEPARATOR_NAMES = {";": "labels separated by ';'", ",": "labels separated by ','", " ": "labels separated by spaces",
                   "list": "labels written as Python lists (['a', 'b'])", None: "one label per row"}
_WRITES = {";": "separates labels with ';'", ",": "separates labels with ','", " ": "separates labels with spaces",
           "list": "writes labels as a Python list"}


def _cell_separator(cell: str) -> str | None:
    """The separator one labels cell uses: 'list', ';', ',', ' ', or None (a single label or
    none); ValueError for a cell that mixes them."""
    text = cell.strip()
    if text.startswith("["):
        return "list"
    found = [s for s in (";", ",") if s in text]
    if len(found) > 1:
        raise ValueError(f"mixes ';' and ',' in {text!r}")
    if found:
        return found[0]
    return " " if len(text.split()) > 1 else None


def label_separator(cells: list[str], metadata_csv: str | Path, column: str) -> str | None:
    """The one separator of a labels column's cells (data.columns.labels): ';' or ',' (labels
    may then hold spaces: 'Turdus merula;Erithacus rubecula'), spaces, or Python lists; None
    when no row has two labels. A file that mixes them stops, naming the first row that
    disagrees with the one before it."""
    first: tuple[str, int] | None = None
    spaced: int | None = None  # the first line whose cell separates by spaces alone
    for line, cell in enumerate(cells, start=2):
        try:
            kind = _cell_separator(cell)
        except ValueError as err:
            raise DataSourceError(f"data.columns.labels: {metadata_csv}, line {line}: column '{column}' {err}; "
                                  "separate every row's labels with one separator") from None
        if kind == " ":
            spaced = spaced or line
            continue
        if kind is None:
            continue
        if first is None:
            first = (kind, line)
        elif kind != first[0]:
            raise DataSourceError(
                f"data.columns.labels: {metadata_csv}, line {line}: column '{column}' {_WRITES[kind]} "
                f"({cell.strip()!r}), but line {first[1]} {_WRITES[first[0]]}; write every row's labels one way")
    if first is None:
        return " " if spaced else None
    # with ';' or ',' a space may belong to a label ('Turdus merula;Erithacus rubecula'); where none
    # of the separated labels holds one, a row separated by spaces is a mix
    spaces_in_labels = first[0] != "list" and any(
        " " in label for cell in cells if first[0] in cell for label in split_labels(cell, first[0]))
    if spaced and not spaces_in_labels:
        raise DataSourceError(
            f"data.columns.labels: {metadata_csv}, line {spaced}: column '{column}' {_WRITES[' ']} "
            f"({cells[spaced - 2].strip()!r}), but line {first[1]} {_WRITES[first[0]]}; write every row's labels one way")
    return first[0]


def split_labels(cell: str, separator: str | None) -> list[str]:
    """A labels cell's labels, by the file's separator (label_separator), each stripped, in
    their order, repeats removed."""
    text = cell.strip()
    if not text or text == "[]":
        return []
    if separator == "list" or text.startswith("["):
        labels = parse_label_list(text)
    elif separator in (";", ","):
        labels = [t.strip() for t in text.split(separator)]
    elif separator == " ":
        labels = text.split()
    else:
        labels = [text]
    return list(dict.fromkeys(label for label in labels if label))


def parse_label_list(text: str) -> list[str]:
    """BirdCLEF's "['a', 'b']" strings, or space/comma separated labels; '' and '[]' -> []."""
    text = (text or "").strip()
    if not text or text == "[]":
        return []
    if text.startswith("["):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError) as err:
            raise ValueError(f"malformed label list {text!r}") from err
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"malformed label list {text!r}")
        return [str(v).strip() for v in value if str(v).strip()]
    return [t for t in text.replace(",", " ").split() if t]


def _lenient_labels(text: str) -> list[str]:
    """Secondary labels as the index will read them; a malformed list (the index's to reject) -> []."""
    try:
        return parse_label_list(text)
    except ValueError:
        return []


def label_kind_of(recordings: list[Recording], data: dict[str, Any]) -> LabelKind:
    """What the index will find (indexing.labels_per_recording), read off the listing at plan
    time: how many recordings have two or more labels (a labels column's, or a primary label and
    the secondary labels that will be classes), and how many none."""
    if data["layout"] == "folders":
        return label_kind(0 if r.negative else 1 for r in recordings)
    column = data["columns"].get("secondary_labels")
    secondary = {r.key: [] if r.labels is not None or not column else _lenient_labels(r.row.get(column, ""))
                 for r in recordings}
    primaries = {r.label for r in recordings if r.label}
    if data.get("secondary_classes", "keep") == "drop":
        secondary = {key: [s for s in labels if s in primaries] for key, labels in secondary.items()}
    return label_kind(len(r.labels) if r.labels is not None else
                      len({r.label} - {""} | set(secondary[r.key])) for r in recordings)


def relative_key(path: str | Path, folder: str | Path) -> str:
    """The key of a file found under `folder`: its path relative to it, with '/' separators."""
    return Path(os.path.relpath(path, folder)).as_posix()


def _key(path: Path, audio_dir: Path) -> str:
    """A relative filename as it is; an absolute one (the founding table's `path`) relative to
    audio_dir when it lies below it, else without its leading '/'."""
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.relative_to(audio_dir).as_posix()
    except ValueError:
        return path.as_posix().lstrip("/")


DELIMITERS = (",", ";", "\t")
FALLBACK_ENCODING = "cp1252"  # what spreadsheet programs on Windows write for Western European text
_told = set()


def read_metadata_table(metadata_csv: str | Path, encoding: str | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """The metadata CSV's header and rows, as spreadsheet programs save them: a UTF-8
    byte-order mark removed; comma, semicolon (European exports) or tab separated, whichever
    the header line holds most of; UTF-8, or else Windows-1252 / Latin-1, said on stderr
    (`encoding` given: that one only, e.g. data.metadata_encoding)."""
    metadata_csv = Path(metadata_csv)
    if not metadata_csv.is_file():
        raise DataSourceError(
            f"data.metadata_csv: file '{metadata_csv}' does not exist; set it to your metadata "
            "table, or use data.layout: folders for a folder-per-class tree."
        )
    raw = metadata_csv.read_bytes()
    text = decode_text(raw, metadata_csv, encoding)
    header_line = text.split("\n", 1)[0]
    delimiter = max(DELIMITERS, key=header_line.count)  # ties: the first, ','
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    return list(reader.fieldnames or []), list(reader)


def decode_text(raw: bytes, path: Path, encoding: str | None, setting: str | None = "data.metadata_encoding") -> str:
    """A table's text: in `encoding` when given, else UTF-8 (byte-order mark removed), else
    Windows-1252 / Latin-1 with a notice on stderr naming the file and `setting` (the config
    key that would name its encoding)."""
    if encoding:
        try:
            return raw.decode(encoding)
        except (UnicodeDecodeError, LookupError) as err:
            raise DataSourceError(f"{path} cannot be read as data.metadata_encoding '{encoding}' ({err}); "
                                  "set data.metadata_encoding to the encoding the file was saved in") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        position = err.start
    try:
        text, used = raw.decode(FALLBACK_ENCODING), FALLBACK_ENCODING
    except UnicodeDecodeError:  # bytes Windows-1252 leaves undefined: Latin-1 decodes any byte
        text, used = raw.decode("latin-1"), "latin-1"
    if path not in _told:
        _told.add(path)
        fix = f"set {setting} to the encoding it was saved in (or save it as UTF-8)" if setting else "save it as UTF-8"
        print(f"soundclf: {path} is not UTF-8 (byte {position}); read it as {used}. If names look wrong, {fix}",
              file=sys.stderr)
    return text


def given_fold_values(data: dict[str, Any], folds: dict[str, Any]) -> list[str] | None:
    """The distinct values of the metadata column `folds.column` in fold order (numbers
    numerically, else as text), or None when folds are computed. Refuses a metadata `fold`
    column that would be ignored, and rows without a fold value."""
    column = folds.get("column")
    if data["layout"] != "metadata":
        if column:
            raise DataSourceError(f"folds.column: '{column}' needs a metadata table (data.layout: metadata); "
                                  "set it to null to compute folds")
        return None
    header, rows = read_metadata_table(data["metadata_csv"], data.get("metadata_encoding"))
    if not column:
        if "fold" in header:
            raise DataSourceError(
                f"{data['metadata_csv']} has a 'fold' column, which computed folds would ignore. Either use "
                "it: set folds.column: fold (scores then compare with results on those folds), or rename the "
                "column if it is not a cross-validation fold.")
        return None
    if column not in header:
        raise DataSourceError(f"folds.column: column '{column}' is not in {data['metadata_csv']} "
                              f"(its columns: {', '.join(header)}); set folds.column to the right name or to null")
    empty = [row[data["columns"]["filename"]] for row in rows if not row[column].strip()]
    if empty:
        raise DataSourceError(
            f"folds.column: {len(empty)} row(s) of {data['metadata_csv']} have no '{column}' value, e.g. "
            f"{', '.join(empty[:5])}; fill in their fold, remove the rows, or set folds.column: null to compute folds")
    values = {row[column].strip() for row in rows}
    if len(values) < 2:
        raise DataSourceError(f"folds.column: '{column}' has a single value ({', '.join(values)}); "
                              "cross-validation needs at least 2 folds")
    numeric = all(map(is_int, values))
    return sorted(values, key=lambda v: (int(v) if numeric else 0, v))


def noise_recordings(noise_dir: str | Path, extensions=AUDIO_EXTENSIONS) -> list[tuple[str, str]]:
    """(key, path) of every audio file under train.noise_dir (any depth); the key is the path
    relative to the folder (config.check_config has checked that the folder exists)."""
    found = [(relative_key(path, noise_dir), path) for path in list_audio_files(noise_dir, extensions)]
    if not found:
        raise DataSourceError(f"train.noise_dir: folder '{noise_dir}' holds no audio file ({', '.join(extensions)}); "
                              "add noise recordings or set it to null")
    return found


def is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def list_audio_files(folder: str | Path, extensions=AUDIO_EXTENSIONS) -> list[str]:
    """Every audio file under `folder` (recursively, hidden files skipped), sorted."""
    wanted = {e.lower().lstrip(".") for e in extensions}
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, name) for name in files
                  if not name.startswith(".") and name.rsplit(".", 1)[-1].lower() in wanted]
    return sorted(found)
