"""Prediction on unlabelled long recordings: decode, log-mel with the training parameters,
consecutive 5 s windows, the mean of the fold models' probabilities, in the BirdCLEF
submission layout (row_id = <file>_<end-second>, one column per class)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm import tqdm

from .annotations import StrongLabels, read_annotations
from .atomic import write_csv
from .audio import AudioDecodeError, CountedBlocks, skip_unusable, stream_mono
from .datasets import window_input, window_plan, window_start_frame
from .mel import LogMel, MelParams
from .metrics import classification_report
from .model import load_model
from .sources import list_audio_files
from .training import pick_device

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


def load_ensemble(model_paths: list[str | Path], device: torch.device) -> tuple[list[torch.nn.Module], dict]:
    """The fold models; they must agree on classes, mel parameters and window length."""
    models, metas = zip(*(load_model(p, device) for p in model_paths))
    first = metas[0]
    for path, meta in zip(model_paths, metas):
        for key in ("classes", "mel_params", "segment_seconds", "segment_frames", "activation", "short_clip"):
            if meta[key] != first[key]:
                raise PredictionError(f"{path}: its {key} differ from those of {model_paths[0]}; "
                                      "train all fold models with the same data and config")
    return list(models), first


def stream_windows(path: str | Path, logmel: LogMel, window_seconds: float,
                   n_frames: int, short_clip: str = "pad") -> Iterator[tuple[float, np.ndarray]]:
    """(end second, model input) of each window of a recording (the windows of window_plan),
    produced while the audio streams in: memory holds one decoded block and one window of
    frames, however long the recording. A recording shorter than a window is looped or padded
    as the model was trained (`short_clip`); the last window of a longer one is pulled back to
    end at its end, so the frames of the last window are kept until the stream ends."""
    params = logmel.params
    step = window_seconds * params.frames_per_second
    frames = np.zeros((params.n_mels, 0), dtype=np.float32)
    offset = j = 0  # frames[:, 0] is frame `offset` of the recording
    audio = CountedBlocks(stream_mono(path, params.sample_rate))
    for block in logmel.stream_db(audio):
        frames = np.concatenate([frames, block], axis=1)
        # a window is yielded once frames beyond it exist: only then is it not the last one
        while round(j * step) + n_frames < offset + frames.shape[1]:
            start = round(j * step) - offset
            yield (j + 1) * window_seconds, window_input(frames[:, start : start + n_frames], n_frames, params.top_db, short_clip)
            j += 1
        drop = max(0, min(round(j * step) - offset, frames.shape[1] - n_frames))
        frames, offset = frames[:, drop:], offset + drop
    total = offset + frames.shape[1]
    for _, start, _, end in window_plan(audio.samples / params.sample_rate, window_seconds, params)[j:]:
        start = window_start_frame(start, n_frames, total) - offset
        yield end, window_input(frames[:, start : start + n_frames], n_frames, params.top_db, short_clip)


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


class WindowBatches(IterableDataset):
    """Model-input batches over many files, for DataLoader workers: each worker streams every
    k-th file (stream_windows: memory bounded however long a file is) and yields batches of up
    to `batch_size` windows across file boundaries, each window with its file's index and end
    second; `done` lists the files whose last window is in this or an earlier batch of the
    worker, `failed` the files that would not decode (index, reason, fix)."""

    def __init__(self, files: list[Path], params: MelParams, window_seconds: float, n_frames: int,
                 short_clip: str, batch_size: int):
        self.files, self.params, self.window_seconds = files, params, window_seconds
        self.n_frames, self.short_clip, self.batch_size = n_frames, short_clip, batch_size

    def __iter__(self):
        worker = get_worker_info()
        mine = range(worker.id, len(self.files), worker.num_workers) if worker else range(len(self.files))
        logmel = LogMel(self.params)
        windows, index, ends, done, failed = [], [], [], [], []
        for i in mine:
            try:
                for end, window in stream_windows(self.files[i], logmel, self.window_seconds, self.n_frames,
                                                  self.short_clip):
                    windows.append(window)
                    index.append(i)
                    ends.append(end)
                    if len(windows) == self.batch_size:
                        yield self._batch(windows, index, ends, done, failed)
                        windows, index, ends, done, failed = [], [], [], [], []
                done.append(i)
            except AudioDecodeError as err:
                failed.append((i, err.reason, err.fix))
        if windows or done or failed:
            yield self._batch(windows, index, ends, done, failed)

    def _batch(self, windows, index, ends, done, failed) -> dict:
        x = torch.from_numpy(np.stack(windows))[:, None] if windows else torch.zeros(0)
        return {"x": x, "index": index, "ends": ends, "done": done, "failed": failed}


def torch_scorer(model: torch.nn.Module) -> Callable[[torch.Tensor], np.ndarray]:
    """Probabilities of a batch of windows from a fold model, on its device (mixed precision
    and channels-last on CUDA)."""
    device = next(model.parameters()).device

    @torch.no_grad()
    def score(x: torch.Tensor) -> np.ndarray:
        x = x.to(device)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            return model.probabilities(model(x, n_segments=1)).cpu().numpy()

    return score


def time_shift_tta(score: Callable[[torch.Tensor], np.ndarray], shift_frames: int) -> Callable[[torch.Tensor], np.ndarray]:
    """Test-time augmentation: the mean of a scorer's probabilities on each window as it is and
    rolled circularly along time by +/- `shift_frames` (the training augmentation
    train.time_shift_seconds); 0: the scorer itself."""
    if not shift_frames:
        return score

    def shifted(x: torch.Tensor) -> np.ndarray:
        return np.mean([score(torch.roll(x, s, dims=-1)) for s in (0, shift_frames, -shift_frames)], axis=0)

    return shifted


def predict_files(files: list[Path], scorers: list[Callable[[torch.Tensor], np.ndarray]], meta: dict, batch_size: int,
                  num_workers: int = 0, on_bad_audio: str = "skip", parts_dir: str | Path | None = None) -> pd.DataFrame:
    """Submission table of many files, the mean of the fold `scorers` (torch_scorer,
    onnx_model.OnnxScorer): decoding and log-mels in `num_workers` DataLoader workers (0: in
    this process), the models on batches that cross file boundaries; each file's rows
    committed to `parts_dir` once its last window is scored, and a file already committed
    there not predicted again (a killed job, rerun, continues)."""
    classes = meta["classes"]
    committed = {i for i, path in enumerate(files) if parts_dir and part_path(parts_dir, path).is_file()}
    todo = [i for i in range(len(files)) if i not in committed]
    if committed:
        log.info("resumed: %d of %d files were predicted by an earlier, interrupted run (%s)", len(committed),
                 len(files), parts_dir)
    dataset = WindowBatches([files[i] for i in todo], MelParams(**meta["mel_params"]), meta["segment_seconds"],
                            meta["segment_frames"], meta["short_clip"], batch_size)
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    scored: dict[int, list] = {}
    frames: dict[int, pd.DataFrame] = {}
    for batch in tqdm(loader, desc="predict", unit="batch"):
        if len(batch["index"]):
            p = np.mean([score(batch["x"]) for score in scorers], axis=0)
            for i, end, row in zip(batch["index"], batch["ends"], p):
                scored.setdefault(i, []).append((end, row))
        for i, reason, fix in batch["failed"]:
            scored.pop(i, None)
            skip_unusable(files[todo[i]], AudioDecodeError(files[todo[i]], reason, fix), on_bad_audio)
        for i in batch["done"]:
            path = files[todo[i]]
            ends, rows = zip(*scored.pop(i))
            frame = pd.DataFrame(np.stack(rows), columns=classes)
            frame.insert(0, "row_id", [row_id(path, e) for e in ends])
            log.info("%s: %d windows", path, len(frame))
            frames[todo[i]] = commit_part(frame, parts_dir, path, classes) if parts_dir else frame
    for i in committed:
        frames[i] = read_part(part_path(parts_dir, files[i]), classes)
    if not frames:
        return pd.DataFrame(columns=["row_id", *classes])
    return pd.concat([frames[i] for i in sorted(frames)], ignore_index=True)


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


def predict_folder(files: list[Path], model_paths: list[str | Path], batch_size: int,
                   on_bad_audio: str = "skip", device: torch.device | None = None,
                   parts_dir: str | Path | None = None, num_workers: int = 0,
                   onnx_paths: list[str | Path] | None = None, tta_shift_seconds: float = 0.0) -> pd.DataFrame:
    """Submission table: row_id, then one probability column per class (the fold mean), with
    torch, or with onnxruntime on the fold models' ONNX exports (`onnx_paths`), optionally
    averaged over time-shifted copies of each window (time_shift_tta)."""
    models, meta = load_ensemble(model_paths, device or pick_device())
    if onnx_paths:
        from .onnx_model import OnnxScorer

        scorers = [OnnxScorer(path) for path in onnx_paths]
    else:
        scorers = [torch_scorer(model) for model in models]
    shift = int(round(tta_shift_seconds * MelParams(**meta["mel_params"]).frames_per_second))
    scorers = [time_shift_tta(score, shift) for score in scorers]
    return predict_files(files, scorers, meta, batch_size, num_workers, on_bad_audio, parts_dir)


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
    classes = list(submission.columns[1:])
    truth = window_truth(labels, submission, window_seconds, annotations)
    report = classification_report(truth, submission[classes].to_numpy(), nocall_threshold)
    return {"n_windows": len(submission), "n_positive_windows": int(truth.any(axis=1).sum()), **report}
