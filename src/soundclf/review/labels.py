"""Reviewed marks as strong labels (train.review_marks): the current marks of a review set as
checked annotation rows of `annotations`, which training merges into data.annotations'.

- yes: an event of the item's class over the item's window;
- no: a negative of the item's class over the window (as a false positive of train_fp.csv);
- other: a negative of the item's class, and an event of the species the reviewer named
  (other_label) when it names one;
- unsure: no label (counted in the log).

A mark names its recording by the file the review set drew it from. Only an indexed
recording of the training data can be trained on, so a mark on any other file (a prediction
set's recordings, a recording since removed) is rejected with its reason and fix, as is a
mark naming an unknown class or a window outside the recording. Every recording a mark
touches is annotated in part ('partial'): weak labels stay outside the marked windows.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..annotations import AnnotationRow, Annotations, annotations_of, check_rows, reject

log = logging.getLogger(__name__)


class ReviewLabelsError(ValueError):
    """A review set's marks give no training label at all; the message names the fix."""


def mark_rows(marks: pd.DataFrame, source: str) -> tuple[list[AnnotationRow], Counter]:
    """The annotation rows of current marks (store.current_marks) and how many marks of
    each kind gave none (unsure)."""
    rows, unused = [], Counter()
    for mark in marks.itertuples(index=False):
        where, start, end = f"{source}:{mark.item}", str(mark.start), str(mark.end)
        if mark.mark == "yes":
            rows.append(AnnotationRow(where, mark.file, mark.label, start, end, "event"))
        elif mark.mark in ("no", "other"):
            rows.append(AnnotationRow(where, mark.file, mark.label, start, end, "negative"))
            if mark.mark == "other" and str(mark.other_label).strip():
                rows.append(AnnotationRow(where, mark.file, str(mark.other_label), start, end, "event"))
        else:
            unused[mark.mark] += 1
    return rows, unused


def marks_as_annotations(marks: pd.DataFrame, index: pd.DataFrame, classes: list[str],
                         source: str | Path) -> Annotations:
    """Checked annotation rows (ANNOTATION_COLUMNS) of a review set's current marks, read
    from `source` (its marks.csv), against the index and classes; the rejected ones with their
    reasons. Raises ReviewLabelsError when marks exist but none of them can train."""
    rows, unused = mark_rows(marks, str(source))
    durations = dict(zip(index["key"], index["duration"]))
    rejected: list[dict] = []
    indexed = []
    for row in rows:
        if row.recording in durations:  # a window may run past the end: the last one is padded
            indexed.append(replace(row, end=str(min(float(row.end), durations[row.recording]))))
        else:
            rejected.append(reject(row, f"'{row.recording}' is not a recording of the training data",
                                   "marks train only on indexed recordings: review the experiment's OOF windows "
                                   "(review set source: oof), or add the recording to data.audio_dir with its labels"))
    kept, _ = check_rows(indexed, lambda name: (name, ""), durations, classes, rejected)
    result = annotations_of(kept, {row["key"]: ("partial", str(source)) for row in kept}, durations, rejected)
    if rows and len(result.table) == 0:
        raise ReviewLabelsError(
            f"{source}: none of its {len(marks)} marks can train ({len(rejected)} rejected, e.g. "
            f"{rejected[0]['reason']}): {rejected[0]['fix']}; or take the set out of train.review_marks")
    log.info("marks of %s: %s; not used as labels: %s", source, result.summary(),
             ", ".join(f"{n} {kind}" for kind, n in sorted(unused.items())) or "none")
    return result
