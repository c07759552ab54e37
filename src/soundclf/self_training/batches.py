"""The student's training data: pseudo-labelled windows of the unlabeled recordings as crops
shaped like the labelled ones, and batches that hold both in a fixed share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from ..augment import CropAugment
from ..datasets import SpecAugment, crop_input, window_start_frame
from ..mel import fill_short
from ..mel_cache import MelCache


class PseudoCrops(Dataset):
    """Item i: the pseudo-labelled windows i, i+1, ... (n_segments of them, wrapping around the
    table) side by side, each `seg_frames` frames read from the unlabeled recordings' mel
    cache, with the labelled crops' augmentations (a time shift only with one segment per
    crop: with several it would move calls across windows of other labels). Items are
    (input, per-window targets (n_segments, classes), weight 1, strong=True): each segment is
    trained on its own window's pseudo-label, as an annotated crop is."""

    def __init__(self, table: pd.DataFrame, classes: list[str], cache: MelCache, seg_frames: int, n_segments: int,
                 frames_per_second: float, top_db: float | None = 80.0, short_clip: str = "loop",
                 crop_augment: CropAugment | None = None, augment: SpecAugment = SpecAugment()):
        if table.empty:
            raise ValueError("no pseudo-labelled window: the unlabeled recordings gave no window to learn from")
        self.keys = table["key"].tolist()
        self.start_frames = np.round(table["start"].to_numpy() * frames_per_second).astype(int)
        self.targets = table[classes].to_numpy(dtype=np.float32)
        self.cache, self.seg_frames, self.n_segments = cache, seg_frames, n_segments
        self.top_db, self.short_clip = top_db, short_clip
        self.crop_augment = crop_augment or CropAugment()
        self.augment = augment.build()

    def __len__(self) -> int:
        return len(self.keys)

    def window_db(self, j: int) -> np.ndarray:
        key = self.keys[j]
        start = window_start_frame(int(self.start_frames[j]), self.seg_frames, self.cache.n_frames(key))
        mel = self.cache.window(key, start, self.seg_frames)
        return fill_short(mel, self.seg_frames, self.short_clip) if mel.shape[1] < self.seg_frames else mel

    def __getitem__(self, i: int):
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)).item()))
        rows = [(i + s) % len(self) for s in range(self.n_segments)]
        crop = np.concatenate([self.window_db(j) for j in rows], axis=1)
        shift = self.crop_augment.draw_shift(rng) if self.n_segments == 1 else 0
        mel = crop_input(self.crop_augment(crop, rng, shift), self.top_db, self.seg_frames)
        return self.augment(mel), torch.from_numpy(self.targets[rows]), torch.tensor(1.0), torch.tensor(True)


class MixedBatches(Sampler[list[int]]):
    """Batches of `batch_size` indices into ConcatDataset([labelled, pseudo]): round(share *
    batch_size) pseudo-labelled items (at least one, at most batch_size - 1), the rest
    labelled. An epoch passes over every labelled item once (the last partial batch dropped)
    and draws the pseudo items from a fresh permutation, recycled when there are fewer than
    the epoch needs. Drawn from torch's global generator, so a resumed run draws alike."""

    def __init__(self, n_labelled: int, n_pseudo: int, batch_size: int, share: float):
        if not 0 < share < 1:
            raise ValueError(f"self_training.pseudo_share must be between 0 and 1, not {share}")
        self.n_labelled, self.n_pseudo = n_labelled, n_pseudo
        self.per_batch_pseudo = min(batch_size - 1, max(1, round(share * batch_size)))
        self.per_batch_labelled = batch_size - self.per_batch_pseudo
        if n_labelled < self.per_batch_labelled:
            raise ValueError(f"{n_labelled} labelled recordings cannot fill the {self.per_batch_labelled} labelled "
                             "places of a batch; lower train.batch_size or self_training.pseudo_share")

    def __len__(self) -> int:
        return self.n_labelled // self.per_batch_labelled

    def __iter__(self):
        labelled = torch.randperm(self.n_labelled).tolist()
        needed = len(self) * self.per_batch_pseudo
        pseudo = torch.cat([torch.randperm(self.n_pseudo) for _ in range(-(-needed // self.n_pseudo))]).tolist()
        for b in range(len(self)):
            yield (labelled[b * self.per_batch_labelled:(b + 1) * self.per_batch_labelled]
                   + [self.n_labelled + j for j in pseudo[b * self.per_batch_pseudo:(b + 1) * self.per_batch_pseudo]])
