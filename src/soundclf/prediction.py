"""Prediction on unlabelled long recordings: decode, log-mel with the training parameters,
consecutive 5 s windows, the mean of the fold models' probabilities (row_id = <recording
key>_<end-second>, one column per class; soundclf.submission handles that table)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm import tqdm

from .audio import AudioDecodeError, CountedBlocks, skip_unusable, stream_mono
from .datasets import window_input, window_plan, window_start_frame
from .mel import LogMel, MelParams
from .model import load_model
from .prediction_parts import ShardParts
from .submission import PredictionError, log_resumed, row_id
from .training import pick_device

log = logging.getLogger(__name__)


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
            yield (j + 1) * window_seconds, window_input(frames[:, start : start + n_frames], n_frames, params.top_db,
                                                         short_clip, not params.waveform)
            j += 1
        drop = max(0, min(round(j * step) - offset, frames.shape[1] - n_frames))
        frames, offset = frames[:, drop:], offset + drop
    total = offset + frames.shape[1]
    for _, start, _, end in window_plan(audio.samples / params.sample_rate, window_seconds, params)[j:]:
        start = window_start_frame(start, n_frames, total) - offset
        yield end, window_input(frames[:, start : start + n_frames], n_frames, params.top_db, short_clip,
                                not params.waveform)


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
                  num_workers: int = 0, on_bad_audio: str = "skip", parts: ShardParts | None = None,
                  keys: list[str] | None = None) -> pd.DataFrame:
    """Prediction table of many files (row ids by `keys`, the file names when None), the mean
    of the fold `scorers` (torch_scorer, onnx_model.OnnxScorer): decoding and log-mels in
    `num_workers` DataLoader workers (0: in this process), the models on batches that cross
    file boundaries; each file's rows committed to `parts` once its last window is scored, and
    a file already committed there not predicted again (a killed job, rerun, continues)."""
    classes = meta["classes"]
    keys = keys or [Path(f).name for f in files]
    todo = [i for i in range(len(files)) if parts is None or keys[i] not in parts.keys]
    if parts is not None:
        log_resumed(len(files) - len(todo), len(files), parts)
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
            key = keys[todo[i]]
            ends, rows = zip(*scored.pop(i))
            frame = pd.DataFrame(np.stack(rows), columns=classes)
            frame.insert(0, "row_id", [row_id(key, e) for e in ends])
            log.info("%s: %d windows", key, len(frame))
            if parts is not None:
                parts.commit(key, frame)
            frames[todo[i]] = frame
    if parts is not None:
        return parts.read(classes)
    if not frames:
        return pd.DataFrame(columns=["row_id", *classes])
    return pd.concat([frames[i] for i in sorted(frames)], ignore_index=True)


def predict_folder(files: list[Path], model_paths: list[str | Path], batch_size: int,
                   on_bad_audio: str = "skip", device: torch.device | None = None,
                   parts: ShardParts | None = None, num_workers: int = 0,
                   onnx_paths: list[str | Path] | None = None, tta_shift_seconds: float = 0.0,
                   keys: list[str] | None = None) -> pd.DataFrame:
    """Prediction table: row_id, then one probability column per class (the fold mean), with
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
    return predict_files(files, scorers, meta, batch_size, num_workers, on_bad_audio, parts, keys)
