"""The mark store: marks.csv appended one durable line per mark, read back strictly, never rewritten."""
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from multiprocessing import get_context

import pandas as pd
import pytest

from conftest import REPO
from soundclf.review.store import (COLUMNS, MarksFileError, append_mark, current_marks, export_marks,
                                   read_marks)

HEADER = ",".join(COLUMNS) + "\n"
ROW = "2025-05-01T06:30:00Z,ana,abc123abc123,site1/rec01.wav,5.0,10.0,owl,yes,,\n"


def mark(path, item="abc123abc123", value="yes", **kw):
    fields = {"reviewer": "ana", "file": "site1/rec01.wav", "start": 5.0, "end": 10.0, "label": "owl"} | kw
    return append_mark(path, item=item, mark=value, **fields)


def test_marks_round_trip_with_quoted_notes_and_latest_wins(tmp_path):
    path = tmp_path / "marks.csv"
    assert read_marks(path).columns.tolist() == COLUMNS and read_marks(path).empty  # absent: no marks
    stored = mark(path, note='two calls, "faint"\nsecond line')
    mark(path, item="b" * 12, value="other", other_label="wren", start=1.5, end=6.5)
    mark(path, item="c" * 12, value="unsure")
    mark(path, item="b" * 12, value="no")
    mark(path, item="c" * 12, value="cleared")
    text = path.read_text()
    assert text.startswith(HEADER) and text.count("time,reviewer") == 1
    assert '"two calls, ""faint""\nsecond line"' in text  # a spreadsheet's quoting, a newline inside
    assert stored["mark"] == "yes" and datetime.strptime(stored["time"], "%Y-%m-%dT%H:%M:%SZ")

    events = read_marks(path)
    assert events["mark"].tolist() == ["yes", "other", "unsure", "no", "cleared"]
    assert events["start"].tolist() == [5.0, 1.5, 5.0, 5.0, 5.0] and events["start"].dtype == float
    assert events.loc[0, "note"] == 'two calls, "faint"\nsecond line'
    assert events.loc[1, "other_label"] == "wren"
    current = current_marks(path)  # one row per item, its last mark; cleared ones gone
    assert current[["item", "mark"]].values.tolist() == [["abc123abc123", "yes"], ["b" * 12, "no"]]
    pd.testing.assert_frame_equal(current_marks(events), current)


def test_a_spreadsheet_save_with_bom_crlf_and_blank_lines_still_reads_and_appends(tmp_path):
    path = tmp_path / "marks.csv"
    path.write_bytes(("\ufeff" + HEADER + ROW + "\n").replace("\n", "\r\n").encode())
    mark(path, item="d" * 12, value="no")
    assert read_marks(path)["mark"].tolist() == ["yes", "no"]
    assert read_marks(tmp_path / "empty.csv").empty
    (tmp_path / "empty.csv").write_bytes(b"")  # created, killed before its header: no marks
    assert read_marks(tmp_path / "empty.csv").empty


@pytest.mark.parametrize("body, line, what", [
    ("time,reviewer,item\n" + ROW, 1, "the header is 'time,reviewer,item'"),
    (HEADER + ROW + ROW.replace(",,\n", ",,,\n"), 3, "11 fields where the header has 10"),
    (HEADER + ROW + ROW.replace(",yes,", ",maybe,"), 3, "mark 'maybe' is not one of"),
    (HEADER + ROW.replace("2025-05-01T06:30:00Z", "yesterday"), 2, "time 'yesterday' is not an ISO 8601"),
    (HEADER + ROW.replace("2025-05-01T06:30:00Z", "2025-05-01T06:30:00"), 2, "with its zone"),
    (HEADER + ROW.replace(",5.0,", ",five,"), 2, "start 'five' is not a number"),
    (HEADER + ROW.replace(",10.0,", ",inf,"), 2, "end 'inf' is not a number"),
    (HEADER + ROW.replace(",abc123abc123,", ",,"), 2, "no item id"),
    (HEADER + ROW.replace(",,\n", ',,"a\nlong note"\n') + ROW.replace("yes", "nope"), 4, "mark 'nope'"),
    (HEADER + ROW + ROW.rstrip("\n"), 3, "does not end with a newline"),
    (HEADER + ROW + ROW.replace(",,\n", ',,"unclosed\n'), 3, "unreadable CSV"),
    (HEADER + ROW + "2025-05-01T06:30:00Z,J\xf6rg,x,f,1,2,owl,yes,,\n", 3, "not UTF-8"),
])
def test_a_hand_edited_or_torn_file_names_its_line_and_is_left_as_it_is(tmp_path, body, line, what):
    path = tmp_path / "marks.csv"
    data = body.encode("latin-1") if "\xf6" in body else body.encode()
    path.write_bytes(data)
    with pytest.raises(MarksFileError) as error:
        read_marks(path)
    message = str(error.value)
    assert str(path) in message and f"line {line}:" in message and what in message, message
    assert f"repair line {line}" in message
    if "does not end with a newline" in what:
        with pytest.raises(MarksFileError, match=f"line {line}: .*not saved"):
            mark(path)  # never glued onto a torn line
    assert path.read_bytes() == data  # nothing rewrote or truncated it


def _append_many(path, worker, n):
    for i in range(n):
        mark(path, item=f"{worker:06d}{i:06d}", note=f"worker {worker}, mark {i}\nline two")


def test_concurrent_appends_from_processes_keep_every_line_whole(tmp_path):
    path = tmp_path / "marks.csv"
    procs = [get_context("fork").Process(target=_append_many, args=(path, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    events = read_marks(path)
    assert len(events) == 160 and events["item"].nunique() == 160
    assert path.read_text().count("time,reviewer") == 1


def test_a_writer_killed_at_any_moment_leaves_only_whole_lines(tmp_path):
    path = tmp_path / "marks.csv"
    code = ("import sys\nfrom soundclf.review.store import append_mark\ni = 0\nwhile True:\n"
            "    append_mark(sys.argv[1], reviewer='ana', item=f'{i:012d}', file='f.wav', start=0, end=5, label='owl',"
            " mark='yes', note='x' * 3000)\n    print(i, flush=True)\n    i += 1\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    acknowledged = [proc.stdout.readline() for _ in range(30)]
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    events = read_marks(path)
    assert len(events) >= len(acknowledged) and (events["note"].str.len() == 3000).all()


def test_export_writes_the_current_marks_and_a_raven_table_per_recording(review_set, tmp_path):
    items = pd.read_csv(review_set / "items.csv", dtype={"item": str})
    first, second, third = items.iloc[0], items.iloc[1], items.iloc[2]
    path = review_set / "marks.csv"
    for row, value, kw in [(first, "yes", {"note": "clear\tcall\nloud"}), (second, "other", {"other_label": "lark"}),
                           (third, "no", {}), (third, "cleared", {})]:
        append_mark(path, reviewer="ana", item=row["item"], file=row["file"], start=row["start"], end=row["end"],
                    label=row["label"], mark=value, **kw)
    before = path.read_bytes()
    marks = export_marks(review_set, tmp_path / "out/marks.csv", tmp_path / "out/raven")
    table = pd.read_csv(tmp_path / "out/marks.csv", dtype={"item": str}, keep_default_na=False)
    assert table.columns.tolist() == COLUMNS and table["mark"].tolist() == ["yes", "other"] == marks["mark"].tolist()
    assert table["item"].tolist() == [first["item"], second["item"]]  # "000000001234" stays a string
    raven = pd.read_csv(tmp_path / f"out/raven/{first['file']}.Table.1.selections.txt", sep="\t", keep_default_na=False)
    assert raven[["Begin Time (s)", "End Time (s)", "Species", "Mark", "Reviewer", "Note"]].values.tolist() == [
        [first["start"], first["end"], first["label"], "yes", "ana", "clear call loud"]]
    other = pd.read_csv(tmp_path / f"out/raven/{second['file']}.Table.1.selections.txt", sep="\t", keep_default_na=False)
    assert other[["Species", "Mark", "Other Species"]].values.tolist() == [[second["label"], "other", "lark"]]
    tables = sorted(p.relative_to(tmp_path / "out/raven").as_posix() for p in (tmp_path / "out/raven").rglob("*.txt"))
    assert tables == sorted(f"{f}.Table.1.selections.txt" for f in {first["file"], second["file"]})  # one per recording
    assert path.read_bytes() == before


def test_export_refuses_a_file_name_that_leaves_the_raven_folder(tmp_path):
    (tmp_path / "marks.csv").write_text(HEADER + ROW.replace("site1/rec01.wav", "../../evil"))
    with pytest.raises(MarksFileError, match="outside"):
        export_marks(tmp_path, tmp_path / "out.csv", tmp_path / "raven")
    assert not (tmp_path / "evil.Table.1.selections.txt").exists()


def test_append_checks_its_values(tmp_path):
    path = tmp_path / "marks.csv"
    for bad in [{"value": "maybe"}, {"item": " "}, {"note": "a\x00b"}, {"start": float("nan")}]:
        with pytest.raises(ValueError):
            mark(path, **bad)
    assert not path.exists()
    stored = mark(path, time=datetime(2025, 5, 1, 8, 30, tzinfo=timezone.utc))
    assert stored["time"] == "2025-05-01T08:30:00Z"
