"""The prediction table in the BirdCLEF submission layout (row_id = <file>_<end-second>, one
probability column per class): the files it covers, its rows and per-file parts, merging and
smoothing, and its truth and metrics against labels. No model and no torch here (that is
soundclf.prediction), so that the stages that only read predictions start quickly."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .annotations import StrongLabels, read_annotations
from .atomic import write_csv
from .audio import AudioDecodeError, skip_unusable
from .sources import list_audio_files

log = logging.getLogger(__name__)


class PredictionError(ValueError):
    pass


def list_audio(audio_dir: str | Path, extensions: list[str]) -> list[Path]:
    """Audio files under `audio_dir` (recursively), sorted; names must be unique by stem
    because the stem becomes the row id."""
    files = [Path(p) for p in list_audio_files(audio_dir, extensions)]
    stems = pd.Series([p.stem for p in files], dtype=str)
    if stems.duplicated().any():
        raise PredictionError(f"{audio_dir}: several files share the name(s) {sorted(set(stems[stems.duplicated()]))}; "
                              "row ids are <file name>_<end second>, so rename them")
    return files


def row_id(path: str | Path, end: float) -> str:
    return f"{Path(path).stem}_{end:g}"


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


def part_path(parts_dir: str | Path, path: str | Path) -> Path:
    return Path(parts_dir) / f"{Path(path).stem}.csv"


def read_part(part: Path, classes: list[str]) -> pd.DataFrame:
    return pd.read_csv(part, dtype={"row_id": str}).set_axis(["row_id", *classes], axis=1)


def commit_part(frame: pd.DataFrame, parts_dir: str | Path, path: str | Path, classes: list[str]) -> pd.DataFrame:
    """Write a file's rows to its part (atomically) and return them as read back, so that a
    resumed run's rows are the very same."""
    part = part_path(parts_dir, path)
    write_csv(frame, part)
    return read_part(part, classes)


def submission_table(files: list[Path], predict_one, classes: list[str], on_bad_audio: str = "skip",
                     parts_dir: str | Path | None = None) -> pd.DataFrame:
    """row_id and one probability column per class for every window of every file, from
    predict_one(path) -> (window end seconds, probabilities); unusable files are skipped
    (or stop the run under on_bad_audio 'fail'). With `parts_dir` each file's rows are
    committed there (atomically) as soon as they exist, and a file whose part is there is not
    predicted again: a killed job, rerun, continues at the first unfinished file."""
    parts, resumed = [], 0
    for path in tqdm(files, desc="predict", unit="file"):
        part = part_path(parts_dir, path) if parts_dir else None
        if part is not None and part.is_file():
            resumed += 1
            parts.append(read_part(part, classes))
            continue
        try:
            ends, probabilities = predict_one(path)
        except AudioDecodeError as err:
            skip_unusable(path, err, on_bad_audio)
            continue
        frame = pd.DataFrame(probabilities, columns=classes)
        frame.insert(0, "row_id", [row_id(path, e) for e in ends])
        log.info("%s: %d windows", path, len(frame))
        parts.append(commit_part(frame, parts_dir, path, classes) if part is not None else frame)
    if resumed:
        log.info("resumed: %d of %d files were predicted by an earlier, interrupted run (%s)", resumed, len(files), parts_dir)
    if not parts:
        return pd.DataFrame(columns=["row_id", *classes])
    return pd.concat(parts, ignore_index=True)


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


def merge_shards(shards: list[pd.DataFrame], files: list[Path]) -> pd.DataFrame:
    """The shards' rows in one submission, files in the order of `files` (sorted), each
    file's windows in time order."""
    table = pd.concat(shards, ignore_index=True)
    position = {Path(f).stem: i for i, f in enumerate(files)}
    order = row_files(table["row_id"]).map(position)
    return table.assign(_file=order).sort_values("_file", kind="stable").drop(columns="_file").reset_index(drop=True)


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
