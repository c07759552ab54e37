"""The mark store: marks.csv in a review set folder, the one file a person writes.

It is an append-only CSV with one line per mark event (`COLUMNS`); an item's current mark is
its last line ('cleared' undoes an earlier mark: the item is unmarked again). Each line is
written with a single os.write of the whole encoded line under an flock of the file, then
os.fsync, before the server answers the request, so a mark the page shows as saved is on
disk and survives kill -9 of the server.

Why a CSV and not SQLite: the one thing a person writes must stay readable and repairable
by that person in a text editor or a spreadsheet, and diffable; marks come seconds apart, so
throughput does not matter; SQLite would be opaque to hand edits. A rule never writes this
file, and nothing here ever rewrites or truncates it: a hand-edited or torn file is refused
with `MarksFileError`, naming the file, the line and what to repair, and is left as it is.
Marks of items that are no longer in items.csv are kept (the page just does not show them).
"""

from __future__ import annotations

import csv
import fcntl
import io
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..annotations import write_raven_table
from ..atomic import write_csv

MARKS_FILE = "marks.csv"
COLUMNS = ["time", "reviewer", "item", "file", "start", "end", "label", "mark", "other_label", "note"]
# 'other': another species calls (other_label names it, or is empty); 'cleared': undo
MARKS = ("yes", "no", "unsure", "other", "cleared")
# extra columns of the exported Raven tables, beside Species (the class the model proposed)
RAVEN_EXTRA = {"Mark": "mark", "Other Species": "other_label", "Reviewer": "reviewer", "Note": "note",
               "Item": "item", "Marked": "time"}


class MarksFileError(ValueError):
    """marks.csv cannot be read or appended to as it is; the message names the line to repair."""


def _bad(path: Path, line: int, what: str) -> MarksFileError:
    return MarksFileError(f"{path}: line {line}: {what}; delete or repair line {line} in a text editor "
                          "(nothing rewrites this file: it holds your marks)")


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)  # ValueError when it is not ISO 8601
    if parsed.tzinfo is None:
        raise ValueError("no time zone")
    return parsed


def _check_row(path: Path, line: int, row: list[str]) -> dict[str, Any]:
    if len(row) != len(COLUMNS):
        raise _bad(path, line, f"{len(row)} fields where the header has {len(COLUMNS)} ({','.join(COLUMNS)}); "
                               "a comma in a note needs the note in double quotes")
    record: dict[str, Any] = dict(zip(COLUMNS, row))
    if record["mark"] not in MARKS:
        raise _bad(path, line, f"mark '{record['mark']}' is not one of {', '.join(MARKS)}")
    if not record["item"].strip():
        raise _bad(path, line, "no item id")
    try:
        _parse_time(record["time"])
    except ValueError:
        raise _bad(path, line, f"time '{record['time']}' is not an ISO 8601 time with its zone "
                               "(like 2025-05-01T06:30:00Z)") from None
    for key in ("start", "end"):
        try:
            record[key] = float(record[key])
        except ValueError:
            record[key] = math.nan
        if not math.isfinite(record[key]):
            raise _bad(path, line, f"{key} '{row[COLUMNS.index(key)]}' is not a number of seconds")
    return record


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _last_line(data: bytes) -> int:
    """The number of the line a text editor shows last (the file does not end with a newline)."""
    return data.count(b"\n") + 1


def _parse(path: Path, data: bytes) -> list[dict[str, Any]]:
    """Every mark event of marks.csv's bytes, checked; an empty file holds none."""
    if not data:
        return []
    if not data.endswith(b"\n"):
        raise _bad(path, _last_line(data), "the last line does not end with a newline (a write was cut short, "
                                           "or an editor dropped the final newline)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _bad(path, _line_of(data, e.start), "text that is not UTF-8 (save the file as UTF-8)") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records, line = [], 1
    try:
        for row in reader:
            if line == 1:
                if row != COLUMNS:
                    raise MarksFileError(f"{path}: line 1: the header is '{','.join(row)}', not "
                                         f"'{','.join(COLUMNS)}'; repair line 1 (nothing rewrites this file)")
            elif row:  # a blank line holds no mark
                records.append(_check_row(path, line, row))
            line = reader.line_num + 1  # where the next row starts: a quoted note may span lines
    except csv.Error as e:
        raise _bad(path, line, f"unreadable CSV ({e}); an unclosed double quote spans to the end") from None
    return records


def read_marks(path: str | Path) -> pd.DataFrame:
    """Every mark event of marks.csv in file order (COLUMNS; start and end floats); none
    when the file is absent. Raises MarksFileError for a file that needs repairing."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    return _frame(_parse(path, data))


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(records, columns=COLUMNS)
    text = [c for c in COLUMNS if c not in ("start", "end")]
    frame[text] = frame[text].astype(object)
    return frame.astype({"start": float, "end": float})


def current_marks(path_or_events: str | Path | pd.DataFrame) -> pd.DataFrame:
    """One row per marked item: its last mark event (latest wins), in the order items were
    last marked; items whose last event is 'cleared' are unmarked and left out."""
    events = path_or_events if isinstance(path_or_events, pd.DataFrame) else read_marks(path_or_events)
    last = events.drop_duplicates("item", keep="last")
    return last[last["mark"] != "cleared"].reset_index(drop=True)


def marked_items(items: pd.DataFrame, marks: pd.DataFrame) -> pd.DataFrame:
    """The items of a review set that have a current mark (`current_marks`), with their mark;
    marks of items the set no longer holds are left out."""
    return items.merge(marks[["item", "mark"]], on="item", how="inner")


def _encode(record: dict[str, Any]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([record[c] for c in COLUMNS])
    return out.getvalue().encode("utf-8")


def append_mark(path: str | Path, *, reviewer: str, item: str, file: str, start: float, end: float, label: str,
                mark: str, other_label: str = "", note: str = "", time: datetime | None = None) -> dict[str, Any]:
    """Append one mark event to marks.csv (created with its header) and return the stored
    row; the line is on disk (fsync) when this returns. A file whose last line lacks its
    newline is refused (MarksFileError), never glued onto."""
    path = Path(path)
    if mark not in MARKS:
        raise ValueError(f"mark '{mark}' is not one of {', '.join(MARKS)}")
    if not str(item).strip():
        raise ValueError("no item id")
    values = {"reviewer": reviewer, "item": item, "file": file, "label": label, "other_label": other_label, "note": note}
    for key, value in values.items():
        if "\x00" in str(value):
            raise ValueError(f"{key} holds a NUL character")
    start, end = float(start), float(end)
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError(f"start {start} and end {end} must be numbers of seconds")
    when = (time or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = {"time": when, **{k: str(v) for k, v in values.items()}, "start": start, "end": end, "mark": mark}
    line = _encode(record)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = os.pread(fd, size, 0)
            raise _bad(path, _last_line(data), "the last line does not end with a newline (a write was cut short, "
                                               "or an editor dropped the final newline); the mark was not saved")
        if not size:
            line = _encode(dict(zip(COLUMNS, COLUMNS))) + line
        written = os.write(fd, line)
        while written < len(line):  # a short write (a full disk raises instead); finish the line
            written += os.write(fd, line[written:])
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock
    if not size:  # a new file: make its directory entry durable too
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return record


def export_marks(review_dir: str | Path, out_csv: str | Path, raven_dir: str | Path) -> pd.DataFrame:
    """The current marks of a review set as one CSV (COLUMNS) and one Raven selection table
    per recording (<raven_dir>/<file>.Table.1.selections.txt; Species is the class the model
    proposed, beside Mark, Other Species, Reviewer, Note, Item and Marked columns). Returns
    the current marks."""
    marks = current_marks(Path(review_dir) / MARKS_FILE)
    raven_dir = Path(raven_dir)
    root = raven_dir.resolve()
    raven_dir.mkdir(parents=True, exist_ok=True)
    for file, rows in marks.groupby("file", sort=True):
        table = raven_dir / f"{file}.Table.1.selections.txt"
        if not table.resolve().is_relative_to(root):
            raise MarksFileError(f"{Path(review_dir) / MARKS_FILE}: recording '{file}' would write its Raven table "
                                 f"outside {raven_dir}; repair the file column of its lines")
        write_raven_table(table, list(zip(rows["label"], rows["start"], rows["end"])),
                          columns={name: rows[column].astype(str).tolist() for name, column in RAVEN_EXTRA.items()})
    write_csv(marks, out_csv)
    return marks
