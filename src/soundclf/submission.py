"""The prediction table (row_id = <recording key>_<end-second>, one probability column per
class) and its BirdCLEF submission form: its rows, merging and smoothing, and its truth and
metrics against labels. No model and no torch here (that is
soundclf.prediction), so that the stages that only read predictions start quickly."""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from tqdm import tqdm

from .annotations import StrongLabels, read_annotations
from .audio import AudioDecodeError, skip_unusable
from .deployment import deployment_columns
from .prediction_parts import ShardParts

log = logging.getLogger(__name__)


WINDOW_COLUMNS = ("file", "site", "datetime", "start", "end")  # windows.parquet's columns before the classes


class PredictionError(ValueError):
    pass


def row_id(key: str, end: float) -> str:
    """A window's id while predicting: its recording's key (its path under predict.audio_dir)
    and end second; submission_row_ids gives the BirdCLEF form."""
    return f"{key}_{end:g}"


def submission_row_ids(files: pd.Series, ends: pd.Series) -> tuple[pd.Series, str]:
    """BirdCLEF row ids of windows (recording key, end second) and what they name the file by:
    <stem>_<end> where no two recordings share a stem, else <key without extension>_<end>
    for every row (an archive of several recorders, each naming files by start time)."""
    unique = files.drop_duplicates().map(lambda key: PurePosixPath(key).stem).is_unique
    names = files.map(lambda key: PurePosixPath(key).stem if unique else str(PurePosixPath(key).with_suffix("")))
    ids = [row_id(name, end) for name, end in zip(names, ends)]
    return pd.Series(ids, index=files.index, dtype=str), "stem" if unique else "path"


def row_files(row_ids: pd.Series) -> pd.Series:
    """The file part of row ids (row_id's inverse, with row_ends)."""
    return row_ids.str.rsplit("_", n=1).str[0]


def row_ends(row_ids: pd.Series) -> pd.Series:
    return row_ids.str.rsplit("_", n=1).str[1].astype(float)


def window_frame(submission: pd.DataFrame, window_seconds: float) -> pd.DataFrame:
    """A submission (row_id = <file>_<end second>, class columns) as file, start, end, classes
    (a window starts `window_seconds` before its end, or at 0)."""
    end = row_ends(submission["row_id"])
    frame = submission.drop(columns="row_id")
    frame.insert(0, "end", end)
    frame.insert(0, "start", (end - window_seconds).clip(lower=0.0))
    frame.insert(0, "file", row_files(submission["row_id"]))
    return frame


def windows_table(table: pd.DataFrame, window_seconds: float, site_level: int = 1) -> pd.DataFrame:
    """A prediction table as the table of window scores every writer reads: file (the
    recording's key), site, datetime (deployment.deployment_columns), start, end, classes."""
    frame = window_frame(table, window_seconds)
    where = deployment_columns(frame["file"], frame["start"], site_level)
    frame.insert(1, "site", where["site"])
    frame.insert(2, "datetime", where["datetime"])
    return frame


def submission_form(table: pd.DataFrame) -> pd.DataFrame:
    """A prediction table with BirdCLEF row ids (submission_row_ids; logged when the stems
    are not unique and the file is named by its path)."""
    ids, named_by = submission_row_ids(row_files(table["row_id"]), row_ends(table["row_id"]))
    if named_by == "path":
        log.warning("several recordings share a file name (e.g. one per recorder): submission.csv's row ids are "
                    "<path under predict.audio_dir without extension>_<end second>, not <file name>_<end second>")
    return table.assign(row_id=ids.to_numpy())


def submission_table(files: list[Path], predict_one, classes: list[str], on_bad_audio: str = "skip",
                     parts: ShardParts | None = None, keys: list[str] | None = None) -> pd.DataFrame:
    """row_id (recording key and end second) and one probability column per class for every
    window of every file, from predict_one(path) -> (window end seconds, probabilities);
    unusable files are skipped (or stop the run under on_bad_audio 'fail'). A file's key is its
    entry of `keys` (its name when None). With `parts` each file's rows are committed there as
    soon as they exist, and a file already committed is not predicted again: a killed job,
    rerun, continues at the first unfinished file."""
    keys = keys or [Path(f).name for f in files]
    frames, resumed = [], 0
    for path, key in tqdm(list(zip(files, keys)), desc="predict", unit="file"):
        if parts is not None and key in parts.keys:
            resumed += 1
            continue
        try:
            ends, probabilities = predict_one(path)
        except AudioDecodeError as err:
            skip_unusable(path, err, on_bad_audio)
            continue
        frame = pd.DataFrame(probabilities, columns=classes)
        frame.insert(0, "row_id", [row_id(key, e) for e in ends])
        log.info("%s: %d windows", key, len(frame))
        if parts is not None:
            parts.commit(key, frame)
        frames.append(frame)
    if parts is not None:
        log_resumed(resumed, len(files), parts)
        return parts.read(classes)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["row_id", *classes])


def log_resumed(resumed: int, total: int, parts: ShardParts) -> None:
    if resumed:
        log.info("resumed: %d of %d files were predicted by an earlier, interrupted run (%s)", resumed, total,
                 parts.folder)


def smooth_neighbours(submission: pd.DataFrame, weight: float) -> pd.DataFrame:
    """Each window's probabilities mixed with its neighbours' in the same file (the BirdCLEF
    2024 winners' post-processing): (1 - 2w) p[t] + w (p[t-1] + p[t+1]); at a file's first
    or last window the missing neighbour's weight stays with the window itself. w = 0: the
    table unchanged."""
    if not weight:
        return submission
    classes = submission.columns[1:]
    files = row_files(submission["row_id"])
    p = submission[classes].to_numpy(dtype=np.float64)
    same_before = np.r_[False, files.to_numpy()[1:] == files.to_numpy()[:-1]]
    same_after = np.r_[same_before[1:], False]
    before = np.where(same_before[:, None], np.roll(p, 1, axis=0), p)
    after = np.where(same_after[:, None], np.roll(p, -1, axis=0), p)
    smoothed = submission.copy()
    smoothed[classes] = ((1 - 2 * weight) * p + weight * (before + after)).astype(np.float32)
    return smoothed


def merge_shards(shards: list[pd.DataFrame]) -> pd.DataFrame:
    """The shards' rows in one table, recordings in key order, each one's windows in time order."""
    table = pd.concat(shards, ignore_index=True)
    order = pd.DataFrame({"file": row_files(table["row_id"]), "end": row_ends(table["row_id"])})
    return table.loc[order.sort_values(["file", "end"], kind="stable").index].reset_index(drop=True)


def label_matrix(labels_csv: str | Path, row_ids, classes: list[str]) -> np.ndarray:
    """0/1 truth of the given rows from a BirdCLEF 2021-style table (row_id, birds: labels
    separated by spaces or 'nocall'). Labels that are no trained class are ignored (logged)."""
    labels = pd.read_csv(labels_csv, dtype={"row_id": str, "birds": str}).set_index("row_id")
    missing = [r for r in row_ids if r not in labels.index]
    if missing:
        raise PredictionError(f"{labels_csv} has no row for {len(missing)} predicted window(s), e.g. {missing[:3]}")
    column = {c: i for i, c in enumerate(classes)}
    truth = np.zeros((len(row_ids), len(classes)), dtype=np.float32)
    unknown = set()
    for row, birds in enumerate(labels.loc[list(row_ids), "birds"].fillna("nocall")):
        for bird in birds.split():
            if bird in column:
                truth[row, column[bird]] = 1
            elif bird != "nocall":
                unknown.add(bird)
    if unknown:
        log.warning("labels not among the trained classes, ignored: %s", sorted(unknown))
    return truth


def annotated_window_truth(raven_dir: str | Path, row_ids, classes: list[str], window_seconds: float,
                           annotations: dict) -> np.ndarray:
    """0/1 truth of the given rows (<file>_<end second>) from a folder of Raven tables that
    list every call of the predicted recordings: a window is positive for the classes of the
    events it holds (annotations.StrongLabels, with data.annotations' label column and
    overlap). Labels that are no trained class are left out (logged)."""
    windows = window_frame(pd.DataFrame({"row_id": pd.Series(row_ids, dtype=str).to_numpy()}), window_seconds)
    windows = windows.rename(columns={"file": "key"})
    recordings = windows.groupby("key", sort=False)["end"].max().rename("duration").reset_index()
    found = read_annotations({"table": None, "negatives": None, "raven_dir": str(raven_dir),
                              "raven_label_column": annotations["raven_label_column"]}, recordings, classes)
    strong = StrongLabels.from_table(found.table, complete=True, min_overlap=annotations["min_overlap_seconds"])
    missing = [key for key in recordings["key"] if key not in strong]
    if missing:
        raise PredictionError(f"{raven_dir} has no Raven table for {len(missing)} predicted recording(s), e.g. "
                              f"{missing[:3]}; add <file>.Table.1.selections.txt for each (an empty one: no call)")
    truth = np.zeros((len(windows), len(classes)), dtype=np.float32)
    no_labels = np.zeros(len(classes), dtype=np.float32)
    for key, rows in windows.groupby("key", sort=False).indices.items():
        truth[rows] = strong.window_truth(key, windows[["start", "end"]].to_numpy()[rows], no_labels)
    return truth


def window_truth(labels: str | Path, submission: pd.DataFrame, window_seconds: float = 5.0,
                 annotations: dict | None = None) -> np.ndarray:
    """0/1 truth (rows, classes) of a submission's windows from a labels table (label_matrix)
    or a folder of Raven tables (annotated_window_truth, with `annotations`: data.annotations)."""
    classes = list(submission.columns[1:])
    if not Path(labels).is_dir():
        return label_matrix(labels, submission["row_id"], classes)
    if annotations is None:
        raise ValueError("window truth from Raven tables needs the data.annotations settings")
    return annotated_window_truth(labels, submission["row_id"], classes, window_seconds, annotations)


def prediction_metrics(submission: pd.DataFrame, labels: str | Path, nocall_threshold: float,
                       window_seconds: float = 5.0, annotations: dict | None = None) -> dict:
    """The submission's window-level metrics against its window truth (window_truth)."""
    from .metrics import classification_report  # sklearn: imported here, not by every reader of submissions

    classes = list(submission.columns[1:])
    truth = window_truth(labels, submission, window_seconds, annotations)
    report = classification_report(truth, submission[classes].to_numpy(), nocall_threshold)
    return {"n_windows": len(submission), "n_positive_windows": int(truth.any(axis=1).sum()), **report}
