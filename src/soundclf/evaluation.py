"""Held-out evaluation on consecutive 5 s windows: a fold's model over its held-out
recordings, and per-epoch validation (the tables and metrics are soundclf.scoring's)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .annotations import StrongLabels
from .datasets import WindowDataset
from .mel import MelParams
from .metrics import classification_report
from .model import load_model
from .scoring import fold_metrics, recording_scores, recording_truth, window_table
from .training import pick_device


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
