"""The next step of a label's search loop (`soundclf search LABEL`), read from its round folders
alone: search by example when there is no round yet; review the latest round while any of its
windows is unmarked; otherwise run the next round (or, when asked, the latest round's
detections). The folders are the state, so the command needs no memory of its own and agrees
with whatever the Snakemake targets made."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..review.items import ITEMS_FILE, read_items
from ..review.store import MARKS_FILE, current_marks

ROUND_DIR = re.compile(r"round(\d+)")


@dataclass(frozen=True)
class Step:
    """What to do next: make `target` (a path under the workflow's directory; None: nothing to
    make), then review `review` (a round folder; None: nothing to review); `why` says so."""

    target: str | None
    review: Path | None
    why: str


def label_dir(results_dir: str | Path, label: str) -> Path:
    return Path(results_dir) / "search" / label


def drawn_rounds(results_dir: str | Path, label: str) -> list[int]:
    """The label's rounds whose review set is drawn (round<r>/items.csv), in order."""
    folder = label_dir(results_dir, label)
    found = [int(m[1]) for d in folder.glob("round*") if (m := ROUND_DIR.fullmatch(d.name)) and (d / ITEMS_FILE).is_file()]
    return sorted(found)


def round_progress(folder: Path) -> tuple[int, int]:
    """(windows in the round's review set, how many of them have a current mark)."""
    items = read_items(folder)
    return len(items), len(set(current_marks(folder / MARKS_FILE)["item"]) & set(items["item"]))


def next_step(results_dir: str | Path, label: str, go_on: bool = False, detections: bool = False) -> Step:
    """The label's next step (see the module's docstring). `go_on`: run the next round although
    some windows of the latest are unmarked; `detections`: the detections of the latest round
    that has marks (round 0 is a search and has none: then round 1)."""
    rounds = drawn_rounds(results_dir, label)
    folder = label_dir(results_dir, label)
    if not rounds:
        if detections:
            raise ValueError(f"{label}: no round is drawn yet in {folder}, so there are no marks to detect with; "
                             f"run 'soundclf search {label}' first")
        target = folder / "round0" / ITEMS_FILE
        return Step(str(target), target.parent, f"{label}: no search yet; searching by example (round 0)")
    if detections:  # the newest round with marks; earlier ones are read only if it has none
        marked = next(((r, n) for r in reversed(rounds) if (n := round_progress(folder / f"round{r}"))[1]), None)
        if marked and marked[0] >= 1:
            r, (n_items, n_marked) = marked
            return Step(str(folder / f"round{r}" / "detections.csv"), None,
                        f"{label}: round {r}'s detections over the archive ({n_marked} of {n_items} windows marked)")
        if marked and rounds == [0]:
            target = folder / "round1" / ITEMS_FILE
            return Step(str(target), target.parent,
                        f"{label}: round 0 is a search, not a probe, so it has no detections; running round 1 (its "
                        "probe learns the marks of round 0); review it, then ask for its detections")
    r = rounds[-1]
    latest = folder / f"round{r}"
    n_items, n_marked = round_progress(latest)
    if not n_marked:
        return Step(None, latest, f"{label}: round {r} has no marks yet; review it")
    if n_marked < n_items and not go_on:
        return Step(None, latest, f"{label}: {n_items - n_marked} of round {r}'s {n_items} windows are unmarked; "
                                  f"review them (or --next to run round {r + 1} on the marks so far)")
    target = folder / f"round{r + 1}" / ITEMS_FILE
    return Step(str(target), target.parent, f"{label}: round {r} marked ({n_marked} of {n_items} windows); "
                                            f"running round {r + 1}")
