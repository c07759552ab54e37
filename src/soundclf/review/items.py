"""A review set's items.csv, read and checked in one place for the review page and the rules:
the columns it must have, item ids unique and path-safe (the page serves clips by item id)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

ITEMS_FILE = "items.csv"
# what rule review_set writes: the drawn windows (sampling.ITEM_COLUMNS) and their clips' span
ITEM_FILE_COLUMNS = ["item", "file", "start", "end", "label", "score", "bin", "drawn_by", "site", "path",
                     "clip_start", "clip_end"]
SAFE_ID = re.compile(r"[A-Za-z0-9_-]+")


class ReviewError(RuntimeError):
    """A review set cannot be read or served; the message says what to run or fix."""


def draw_target(review_dir: str | Path) -> str:
    """The command that (re)draws the review set in `review_dir`."""
    return f"snakemake results/review/{Path(review_dir).resolve().name}/{ITEMS_FILE}"


def read_items(review_dir: str | Path) -> pd.DataFrame:
    """items.csv of a review set folder, checked (ITEM_FILE_COLUMNS; ids unique and path-safe;
    names and sites read as text, an empty site as '')."""
    review_dir = Path(review_dir)
    path = review_dir / ITEMS_FILE
    redraw = f"draw it again with '{draw_target(review_dir)}'"
    if not path.is_file():
        raise ReviewError(f"{review_dir} holds no {ITEMS_FILE}: draw the review set first with "
                          f"'{draw_target(review_dir)}' (add --profile and config as for your other runs)")
    items = pd.read_csv(path, dtype={c: str for c in ("item", "file", "label", "drawn_by", "site", "path")},
                        keep_default_na=False, na_values={c: [""] for c in ("score", "start", "end")})
    missing = [c for c in ITEM_FILE_COLUMNS if c not in items.columns]
    if missing:
        raise ReviewError(f"{path} has no column(s) {', '.join(missing)}: it was drawn by an older soundclf; {redraw}")
    bad = [i for i in items["item"] if not SAFE_ID.fullmatch(i)]
    if bad or items["item"].duplicated().any():
        raise ReviewError(f"{path}: item ids must be unique letters, digits, '-' or '_' "
                          f"(first bad: {(bad or items.loc[items['item'].duplicated(), 'item'].tolist())[0]!r}); {redraw}")
    return items
