"""Build the recordings table (one row per usable recording) and the class list."""

from __future__ import annotations

import ast
import json
import logging
from concurrent.futures import ThreadPoolExecutor
import pandas as pd
from tqdm import tqdm

from .atomic import write_csv
from .audio import AudioDecodeError, check
from .sources import Recording

log = logging.getLogger(__name__)

INDEX_COLUMNS = [
    "key", "path", "primary_label", "class_id", "secondary_labels", "secondary_class_ids",
    "frames", "sample_rate", "duration", "channels", "format", "subtype", "peak", "content_hash",
]
REJECTED_COLUMNS = ["key", "path", "stage", "reason"]


class BadInputError(Exception):
    """Raised under `on_bad_audio: fail`; lists every rejected file."""


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


def build_index(
    recordings: list[Recording],
    columns: dict[str, str | None],
    on_bad_audio: str = "skip",
    threads: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Decode-check every recording; returns (index, classes, rejected)."""
    mapped = {c for c in columns.values() if c}
    rejected: list[dict[str, str]] = []
    candidates: list[tuple[Recording, list[str]]] = []
    seen: set[str] = set()
    for rec in recordings:
        reason = None
        secondary: list[str] = []
        if rec.key in seen:
            reason = "listed twice in the metadata; the first row was kept"
        elif not rec.label:
            reason = "empty primary label"
        else:
            try:
                secondary = parse_label_list(rec.row.get(columns.get("secondary_labels") or "", ""))
            except ValueError as err:
                reason = f"secondary labels: {err}"
        seen.add(rec.key)
        if reason:
            rejected.append(_rejection(rec, reason))
        else:
            candidates.append((rec, secondary))

    def inspect(item):
        rec, _ = item
        try:
            return check(rec.path)
        except AudioDecodeError as err:
            return err

    with ThreadPoolExecutor(max(1, threads)) as pool:  # libsndfile releases the GIL
        results = list(tqdm(pool.map(inspect, candidates), total=len(candidates), desc="index", unit="file"))

    rows = []
    for (rec, secondary), result in zip(candidates, results):
        if isinstance(result, AudioDecodeError):
            rejected.append(_rejection(rec, result.reason))
            continue
        info = result.info
        row = {
            "key": rec.key, "path": rec.path, "primary_label": rec.label,
            "secondary_labels": secondary, "frames": info.frames, "sample_rate": info.sample_rate,
            "duration": round(info.duration, 4), "channels": info.channels, "format": info.format,
            "subtype": info.subtype, "peak": round(result.peak, 6), "content_hash": result.content_hash,
        }
        for column, value in rec.row.items():  # other metadata (author, rating...) rides along
            if column not in mapped and column not in row:
                row[column] = value
        rows.append(row)

    rejected_df = pd.DataFrame(rejected, columns=REJECTED_COLUMNS)
    if on_bad_audio == "fail" and len(rejected_df):
        listing = "\n".join(f"  {r.path}: {r.reason}" for r in rejected_df.itertuples())
        raise BadInputError(
            f"{len(rejected_df)} input file(s) rejected and data.on_bad_audio is 'fail':\n{listing}\n"
            "Fix or remove these files, or set data.on_bad_audio: skip to leave them out."
        )
    if not rows:
        raise BadInputError("no usable recordings: every listed file was rejected (see the rejected table)")

    index = pd.DataFrame(rows)
    classes = sorted(index["primary_label"].unique())
    class_id = {c: i for i, c in enumerate(classes)}
    unknown = sorted({s for sec in index["secondary_labels"] for s in sec} - set(class_id))
    if unknown:
        log.warning("secondary labels that are no class's primary label are ignored: %s", ", ".join(unknown))
    index["class_id"] = index["primary_label"].map(class_id)
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
    })
    _log_duplicates(index)
    log.info(
        "indexed %d recordings (%.2f h) in %d classes; rejected %d file(s)",
        len(index), index["duration"].sum() / 3600, len(classes), len(rejected_df),
    )
    return index, classes_df, rejected_df


def _rejection(rec: Recording, reason: str) -> dict[str, str]:
    log.warning("rejected %s: %s", rec.path, reason)
    return {"key": rec.key, "path": rec.path, "stage": "index", "reason": reason}


def _log_duplicates(index: pd.DataFrame) -> None:
    for _, group in index.groupby("content_hash"):
        if len(group) > 1:
            log.warning("same audio under several names (kept all): %s", ", ".join(group["key"]))


LIST_COLUMNS = ("secondary_labels", "secondary_class_ids")


def read_index(path: str) -> pd.DataFrame:
    """The recordings (or folds) table with its list columns parsed back from JSON."""
    index = pd.read_csv(path, keep_default_na=False)
    for column in LIST_COLUMNS:
        index[column] = index[column].map(json.loads)
    return index


def write_index(index: pd.DataFrame, path: str) -> None:
    """Inverse of read_index, written atomically."""
    out = index.copy()
    for column in LIST_COLUMNS:
        out[column] = [json.dumps(list(v)) for v in out[column]]
    write_csv(out, path)

