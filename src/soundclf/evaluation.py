"""Held-out evaluation on consecutive 5 s windows: window probabilities, recording scores
(max over a recording's windows) and their metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .annotations import StrongLabels
from .datasets import WindowDataset
from .folds import multi_hot
from .mel import MelParams
from .metrics import classification_report
from .model import load_model
from .training import pick_device

WINDOW_COLUMNS = ["key", "start", "end"]


@torch.no_grad()
def window_probabilities(model: nn.Module, windows: Dataset, batch_size: int) -> np.ndarray:
    """Probabilities (windows, classes) of one model over a dataset of single 5 s windows
    (batches of (B, 1, mels, frames) tensors), in eval mode, with the model's activation
    (sigmoid, or softmax for a model trained with cross-entropy)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()  # dropout off in evaluation (the founders' weeks-long bug)
    out = []
    for x in DataLoader(windows, batch_size=batch_size, shuffle=False):
        x = x.to(device)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            logits = model(x, n_segments=1)
        out.append(model.probabilities(logits).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def window_table(windows: pd.DataFrame, probabilities: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """key, start, end and one probability column per class."""
    table = windows[WINDOW_COLUMNS].reset_index(drop=True)
    return pd.concat([table, pd.DataFrame(probabilities, columns=classes)], axis=1)


def recording_scores(table: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """One row per recording (in first-seen order): the max of each class over its windows."""
    return table.groupby("key", sort=False)[classes].max()


def recording_truth(recordings: pd.DataFrame, keys, n_classes: int) -> np.ndarray:
    """0/1 truth of the given recordings: primary and secondary labels are positives."""
    by_key = recordings.set_index("key").loc[list(keys)].reset_index()
    return (multi_hot(by_key, n_classes) > 0).astype(np.float32)


def recording_metrics(table: pd.DataFrame, recordings: pd.DataFrame, classes: list[str],
                      nocall_threshold: float = 0.5) -> dict[str, float]:
    """Metrics of recording scores (max over windows) against the recordings' labels."""
    scores = recording_scores(table, classes)
    truth = recording_truth(recordings, scores.index, len(classes))
    return classification_report(truth, scores.to_numpy(), nocall_threshold)


class Validator:
    """Per-epoch validation for the training loop: loss and metrics of the held-out fold's
    recording scores."""

    def __init__(self, windows, recordings: pd.DataFrame, classes: list[str], batch_size: int):
        self.windows, self.recordings, self.classes = windows, recordings, classes
        self.batch_size = batch_size

    def __call__(self, model: nn.Module) -> dict[str, float]:
        table = window_table(self.windows.windows, window_probabilities(model, self.windows, self.batch_size),
                             self.classes)
        scores = recording_scores(table, self.classes)
        truth = recording_truth(self.recordings, scores.index, len(self.classes))
        p = np.clip(scores.to_numpy(), 1e-7, 1 - 1e-7)
        loss = float(-(truth * np.log(p) + (1 - truth) * np.log(1 - p)).mean())
        report = classification_report(truth, scores.to_numpy())
        return {"val_loss": loss, **{k: report[k] for k in ("padded_cmap", "macro_roc_auc", "lwlrap")}}


def evaluate_fold(model_path, folds: pd.DataFrame, fold: int, cache, batch_size: int,
                  nocall_threshold: float, strong: StrongLabels | None = None) -> tuple[pd.DataFrame, dict]:
    """Every 5 s window of every recording held out in `fold` through that fold's model ->
    (OOF window table, metrics at recording level and at window level)."""
    held_out = folds[folds["fold"] == fold].reset_index(drop=True)
    table, classes = score_windows(model_path, held_out, cache, batch_size)
    return table, fold_metrics(table, held_out, classes, fold, nocall_threshold, strong)


def score_windows(model_path, recordings: pd.DataFrame, cache, batch_size: int) -> tuple[pd.DataFrame, list[str]]:
    """Every window of the `recordings` (key, duration) in `cache` through one fold's model ->
    (fold (the model's held-out fold), key, start, end and a probability column per class;
    the classes)."""
    model, meta = load_model(model_path, pick_device())
    windows = WindowDataset(recordings, cache, MelParams(**meta["mel_params"]), meta["segment_seconds"],
                            meta["segment_frames"], short_clip=meta["short_clip"])
    table = window_table(windows.windows, window_probabilities(model, windows, batch_size), meta["classes"])
    table.insert(0, "fold", meta["fold"])
    return table, meta["classes"]


def window_truth(windows: pd.DataFrame, recordings: pd.DataFrame, n_classes: int,
                 strong: StrongLabels | None = None) -> np.ndarray:
    """0/1 truth of each window (key, start, end): where its recording is annotated, the
    classes of the events it holds (annotations.StrongLabels); elsewhere its recording's
    (weak) labels."""
    weak = recording_truth(recordings, windows["key"], n_classes)
    if strong is None:
        return weak
    truth = weak.copy()
    for key, rows in windows.groupby("key", sort=False).indices.items():
        if key in strong:
            truth[rows] = strong.window_truth(key, windows[["start", "end"]].to_numpy()[rows], weak[rows[0]])
    return truth


def fold_metrics(table: pd.DataFrame, held_out: pd.DataFrame, classes: list[str], fold: int,
                 nocall_threshold: float, strong: StrongLabels | None = None) -> dict:
    """A fold's metrics at recording level (max over its windows) and at window level:
    `window` against each window's own truth (the annotations where a recording has them),
    `window_weak` against its recording's labels on every window."""
    scores = table[classes].to_numpy()
    weak = recording_truth(held_out, table["key"], len(classes))
    return {
        "fold": fold,
        "n_recordings": len(held_out),
        "n_annotated_recordings": sum(key in strong for key in held_out["key"]) if strong is not None else 0,
        "n_windows": len(table),
        "recording": recording_metrics(table, held_out, classes, nocall_threshold),
        "window": classification_report(window_truth(table, held_out, len(classes), strong), scores, nocall_threshold),
        "window_weak": classification_report(weak, scores, nocall_threshold),
    }
