"""The training loop: AdamW, cosine schedule with warm-up, mixup, gradient clipping, an
optional exponential moving average of the weights, mixed precision and channels-last on
CUDA, atomic per-epoch checkpoints and automatic resume."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from .atomic import atomic_path
from .model import mixup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_epochs: float = 1.0
    mixup_alpha: float = 1.0
    mixup_prob: float = 1.0
    grad_clip: float = 5.0
    n_segments: int = 6
    seed: int = 0
    loss: str = "bce"
    ema_decay: float = 0.0  # 0: off

    def fingerprint(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


LOSSES = ("bce", "ce", "focal")
FOCAL_GAMMA = 2.0


def activation_for(loss: str) -> str:
    """The output activation that matches a loss: softmax for ce, sigmoid otherwise."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    return "softmax" if loss == "ce" else "sigmoid"


def per_sample_loss(logits: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
    """Loss of each row (B,) of logits (B, classes) against soft targets in [0, 1].

    bce: BCE with logits, mean over classes. ce: softmax cross-entropy against the targets
    normalised per row (a mixed or smoothed multi-hot row becomes a distribution). focal:
    sigmoid focal BCE, (1 - p_t)^2 * BCE, mean over classes."""
    if loss == "bce":
        return nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(dim=1)
    if loss == "ce":
        dist = targets / targets.sum(dim=1, keepdim=True).clamp(min=1e-8)
        return -(dist * torch.log_softmax(logits, dim=1)).sum(dim=1)
    if loss == "focal":
        bce = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        p = torch.sigmoid(logits)
        p_t = p * targets + (1 - p) * (1 - targets)
        return (bce * (1 - p_t).pow(FOCAL_GAMMA)).mean(dim=1)
    raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")


def crop_loss(logits: torch.Tensor, segment_logits: torch.Tensor, targets: torch.Tensor,
              strong: torch.Tensor, loss: str) -> torch.Tensor:
    """Loss of each crop (B,): a weak crop's logits (B, classes) against its targets (equal on
    every segment of targets (B, segments, classes)); a `strong` crop's (annotated) segment
    logits (B, segments, classes) against each segment's own targets, averaged over segments."""
    weak = per_sample_loss(logits, targets[:, 0], loss)
    if not bool(strong.any()):
        return weak
    b, n, c = targets.shape
    per_segment = per_sample_loss(segment_logits.reshape(b * n, c), targets.reshape(b * n, c), loss).view(b, n)
    return torch.where(strong, per_segment.mean(dim=1), weak)


def pick_device() -> torch.device:
    """CUDA when a device is really usable (a SLURM GPU request may set CUDA_VISIBLE_DEVICES
    on a node without one), else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() and torch.cuda.device_count() > 0 else "cpu")


def cosine_with_warmup(optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def save_checkpoint(path: str | Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict:
    """Tensors and plain containers only: a pickle that would run code is refused."""
    return torch.load(path, map_location="cpu", weights_only=True)


def train(
    model: nn.Module,
    loader,
    cfg: TrainConfig,
    checkpoint_path: str | Path,
    history_csv: str | Path,
    validate: Callable[[nn.Module], dict[str, float]] | None = None,
    device: torch.device | None = None,
    context: str = "",
    monitor: str | None = None,
    best_path: str | Path | None = None,
) -> list[dict]:
    """Train for cfg.epochs, resuming from `checkpoint_path` when it holds a run of the same
    config and `context` (e.g. a digest of the training data); returns the per-epoch history
    (also written to `history_csv` each epoch). With `monitor` (a key `validate` returns;
    lower is better for names ending in 'loss') the weights of the best epoch so far are
    written to `best_path`. With cfg.ema_decay an exponential moving average of the weights is
    updated after every step; it is what validation scores, what `best_path` keeps and what
    `model` holds at the end."""
    device = device or pick_device()
    fingerprint = hashlib.sha1(f"{cfg.fingerprint()}:{context}".encode()).hexdigest()[:16]
    cuda = device.type == "cuda"
    torch.manual_seed(cfg.seed)
    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    # a pretrained backbone may learn slower than its new head (discriminative learning rates)
    groups = model.parameter_groups(cfg.lr) if hasattr(model, "parameter_groups") else model.parameters()
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(loader)
    scheduler = cosine_with_warmup(optimizer, int(cfg.warmup_epochs * steps_per_epoch), cfg.epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    activation_for(cfg.loss)  # an unknown loss fails before any epoch
    ema = weight_average(model, cfg.ema_decay)
    history: list[dict] = []
    start_epoch = 0
    best = None

    checkpoint_path = Path(checkpoint_path)
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
            torch.set_rng_state(state["rng"])
            history = json.loads(state["history"])
            start_epoch = int(state["epoch"])
            best = state.get("best")
            log.info("resumed from %s after epoch %d", checkpoint_path, start_epoch)
        else:
            log.info("ignoring %s: it was written with another training config", checkpoint_path)

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        total, count = 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False)
        for x, y, w, strong in bar:
            x, y, w, strong = x.to(device), y.to(device), w.to(device), strong.to(device)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            mixed = cfg.mixup_prob > 0 and torch.rand(1).item() < cfg.mixup_prob
            if mixed:
                x, w, lam, perm = mixup(x, w, cfg.mixup_alpha)
            with torch.autocast(device.type, enabled=cuda):
                logits, segment_logits = model(x, n_segments=cfg.n_segments, per_segment=True)
            logits, segment_logits = logits.float(), segment_logits.float()
            per_crop = crop_loss(logits, segment_logits, y, strong, cfg.loss)
            if mixed:  # the loss of each crop's two sources, each in its own kind (weak or strong)
                per_crop = lam * per_crop + (1 - lam) * crop_loss(logits, segment_logits, y[perm], strong[perm], cfg.loss)
            loss = (per_crop * w).mean()
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            total, count = total + loss.item() * len(x), count + len(x)
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        row = {"epoch": epoch + 1, "train_loss": total / max(1, count), "lr": scheduler.get_last_lr()[0]}
        scored = model if ema is None else ema.module
        if validate is not None:
            scored.eval()
            with torch.no_grad():
                row.update(validate(scored))
        history.append(row)
        if monitor is not None and _improves(row.get(monitor), best, lower_is_better=monitor.endswith("loss")):
            best = float(row[monitor])
            save_checkpoint(best_path, {"epoch": epoch + 1, "model": scored.state_dict()})
        log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))
        _write_history(history, history_csv)
        save_checkpoint(checkpoint_path, {
            "fingerprint": fingerprint, "epoch": epoch + 1, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "rng": torch.get_rng_state(), "history": json.dumps(history), "best": best,
            **({"ema": ema.state_dict()} if ema is not None else {}),
        })
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())
    return history


def weight_average(model: nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of `model`'s weights and buffers (None when decay is 0),
    updated after every optimizer step with timm's warm-up: the n-th update uses
    min(decay, (1 + n) / (10 + n)), so the average follows the recent weights early on and,
    in a run shorter than ~9 / (1 - decay) steps, spans about its last ninth. Without it a
    from-scratch run of a few thousand steps at decay 0.999 averages weights too far apart
    to be one network (ESC-10: chance accuracy)."""
    if not decay:
        return None

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        n = int(n_averaged)
        weight = 1.0 - min(decay, (1.0 + n) / (10.0 + n))
        for a, c in zip(averaged, current):
            if a.is_floating_point():
                a.lerp_(c, weight)
            else:  # e.g. BatchNorm's num_batches_tracked
                a.copy_(c)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def _improves(value: float | None, best: float | None, lower_is_better: bool) -> bool:
    if value is None or not math.isfinite(value):
        return best is None  # keep some weights even when the metric is undefined
    if best is None or not math.isfinite(best):
        return True
    return value < best if lower_is_better else value > best


def _write_history(history: list[dict], path: str | Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[-1]))
        writer.writeheader()
        writer.writerows(history)
