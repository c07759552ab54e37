"""Training crops and evaluation windows read from the log-mel cache."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torchaudio.transforms import FrequencyMasking, TimeMasking

from .annotations import StrongLabels
from .augment import CropAugment
from .folds import multi_hot
from .mel import SHORT_CLIP_MODES, MelParams, fill_short, floor_segments
from .mel_cache import MelCache


def segment_frames(params: MelParams, segment_seconds: float) -> int:
    """Frames of one segment: what a centred STFT yields for `segment_seconds` of audio, so
    a 5 s training segment and a 5 s inference window have the same width."""
    return params.n_frames(int(round(segment_seconds * params.sample_rate)))


def normalise_db(mel: np.ndarray, copy: bool = True) -> np.ndarray:
    """The recipe's scaling of dB values to roughly [0, 1]: (dB + 80) / 80 (`copy=False`:
    in `mel` itself)."""
    if copy:
        return (mel + 80.0) / 80.0
    np.add(mel, 80.0, out=mel)
    return np.divide(mel, 80.0, out=mel)


def crop_input(crop: np.ndarray, top_db: float | None, seg_frames: int, scale: bool = True) -> torch.Tensor:
    """A training crop (n_mels, frames) in dB as the model's (1, n_mels, frames) input: each
    segment floored at top_db below its maximum, scaled (not `scale`: a waveform, as it is);
    done in `crop`, which the caller owns (a crop is ~1 MB, and each copy of it costs as much
    as reading it from the cache)."""
    floored = floor_segments(crop, top_db, seg_frames, copy=False)
    return torch.from_numpy(normalise_db(floored, copy=False) if scale else floored)[None]


def sample_weights(table: pd.DataFrame, column: str | None) -> np.ndarray:
    """Per-recording loss weight from a numeric column (e.g. rating), scaled to mean 1;
    missing or zero values (BirdCLEF's 'unrated') get the mean."""
    if not column:
        return np.ones(len(table), dtype=np.float32)
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64, copy=True)
    values[~(values > 0)] = np.nan
    mean = np.nanmean(values) if np.isfinite(values).any() else 1.0
    values = np.where(np.isfinite(values), values, mean)
    return (values / mean).astype(np.float32)


@dataclass(frozen=True)
class SpecAugment:
    freq_mask: int = 0  # widest frequency mask, in mel bins (0: off)
    time_mask: int = 0  # widest time mask, in frames (0: off)
    n_masks: int = 2

    def build(self) -> torch.nn.Module:
        layers = []
        for _ in range(self.n_masks):
            if self.freq_mask:
                layers.append(FrequencyMasking(self.freq_mask))
            if self.time_mask:
                layers.append(TimeMasking(self.time_mask))
        return torch.nn.Sequential(*layers)


class CropDataset(Dataset):
    """Random `n_segments * seg_frames`-frame crops of whole recordings (the recipe's 30 s),
    short recordings looped (tiled) to length from a random frame, or with `short_clip='pad'`
    placed at a random offset in their floor, then `crop_augment` (shift, noise, gain: see
    augment.py), each segment floored at `top_db` below its maximum, scaled, SpecAugment.
    Only the crop's frames are read.

    An item is (input, targets (n_segments, classes), loss weight, strong): weak multi-hot
    targets on every segment, or, for a recording with annotations (`strong`), each segment's
    targets from the events it holds (annotations.StrongLabels); with probability
    `event_crop_prob` such a recording's crop is placed around one of its events. Waveform
    crops (`scale_db` False) are neither floored nor scaled."""

    def __init__(self, table: pd.DataFrame, cache: MelCache, n_classes: int, seg_frames: int,
                 n_segments: int, top_db: float | None = 80.0, secondary_weight: float = 1.0,
                 label_smoothing: float = 0.0, weight_column: str | None = None,
                 augment: SpecAugment = SpecAugment(), short_clip: str = "loop",
                 crop_augment: CropAugment | None = None, strong: StrongLabels | None = None,
                 event_crop_prob: float = 0.0, frames_per_second: float = 1.0, scale_db: bool = True):
        if short_clip not in SHORT_CLIP_MODES:
            raise ValueError(f"short_clip must be one of {SHORT_CLIP_MODES}, not {short_clip!r}")
        self.short_clip = short_clip
        self.keys = table["key"].tolist()
        self.cache = cache
        self.seg_frames = seg_frames
        self.n_segments = n_segments
        self.top_db = top_db
        self.crop_frames = seg_frames * n_segments
        self.label_smoothing = label_smoothing
        self.weak = multi_hot(table, n_classes, secondary_weight)
        self.weights = sample_weights(table, weight_column)
        self.augment = augment.build()
        self.crop_augment = crop_augment or CropAugment()
        self.strong = strong
        self.event_crop_prob = event_crop_prob
        self.frames_per_second = frames_per_second
        self.scale_db = scale_db  # False: waveform crops, given to the model as they are

    def __len__(self) -> int:
        return len(self.keys)

    def crop(self, key: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(dB crop, the recording frame each crop frame holds: -1 for padding)."""
        n = self.cache.n_frames(key)
        span = np.arange(self.crop_frames)
        if n >= self.crop_frames:
            if self.strong is not None and self.strong.has_events(key) and rng.random() < self.event_crop_prob:
                start = self.strong.event_crop_start(key, n, self.crop_frames, self.frames_per_second, rng)
            else:
                start = int(rng.integers(0, n - self.crop_frames + 1))
            return self.cache.window(key, start, self.crop_frames), start + span
        full = self.cache.full(key)  # short: it is small, read it whole
        if self.short_clip == "loop":
            offset = int(rng.integers(0, n))
            return fill_short(full, self.crop_frames, "loop", offset), (offset + span) % n
        offset = int(rng.integers(0, self.crop_frames - n + 1))
        positions = span - offset
        return fill_short(full, self.crop_frames, "pad", offset), np.where(positions < n, positions, -1)

    def targets(self, i: int, positions: np.ndarray) -> tuple[np.ndarray, bool]:
        key = self.keys[i]
        strong = self.strong is not None and key in self.strong
        if strong:
            y = self.strong.segment_targets(key, positions.reshape(self.n_segments, self.seg_frames),
                                            self.frames_per_second, self.weak[i])
        else:
            y = np.tile(self.weak[i], (self.n_segments, 1))
        return y * (1 - self.label_smoothing) + self.label_smoothing / 2, strong

    def __getitem__(self, i: int):
        # torch seeds each worker and each epoch differently; draw the crop offset from it
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)).item()))
        crop, positions = self.crop(self.keys[i], rng)
        shift = self.crop_augment.draw_shift(rng)
        mel = crop_input(self.crop_augment(crop, rng, shift), self.top_db, self.seg_frames, self.scale_db)
        y, strong = self.targets(i, np.roll(positions, shift))
        return self.augment(mel), torch.from_numpy(y.astype(np.float32)), torch.tensor(self.weights[i]), torch.tensor(strong)


def window_times(duration: float, window_seconds: float) -> list[tuple[float, float]]:
    """(start, end) seconds of the windows that score a recording: consecutive windows from 0,
    as many as cover `duration` once. A recording shorter than one window has one window (its
    clip looped or padded, as in training). In a longer recording the last window, where it
    would run past the end, is pulled back to end at the end (OpenSoundscape's
    final_clip='full'): every window is full of audio, none is a few milliseconds of the
    recording's tail stretched to a whole window, and no audio is left out."""
    n_windows = max(1, int(np.ceil(duration / window_seconds - 1e-6)))
    starts = [j * window_seconds for j in range(n_windows)]
    if duration > window_seconds:
        starts = [min(start, duration - window_seconds) for start in starts]
    return [(start, start + window_seconds) for start in starts]


def window_plan(duration: float, window_seconds: float, params: MelParams) -> list[tuple[int, int, float, float]]:
    """window_times with frames: (index, start frame, start s, end s)."""
    return [(j, int(round(start * params.frames_per_second)), start, end)
            for j, (start, end) in enumerate(window_times(duration, window_seconds))]


def window_start_frame(start_frame: int, n_frames: int, recording_frames: int) -> int:
    """A planned window's first frame, pulled back so that the window ends within the
    recording's frames where the recording is at least a window long (the frame count from
    seconds may round one frame past the cache's)."""
    return max(0, min(start_frame, recording_frames - n_frames))


def window_input(mel: np.ndarray, n_frames: int, top_db: float | None, short_clip: str = "pad",
                 scale: bool = True) -> np.ndarray:
    """A (n_mels, <=n_frames) dB window as the model sees it: floored at top_db below its
    maximum, a clip shorter than the window brought to n_frames as in training (fill_short:
    looped, or padded with its floor), scaled."""
    mel = floor_segments(mel, top_db, n_frames)
    if mel.shape[1] < n_frames:
        mel = fill_short(mel, n_frames, short_clip)
    return normalise_db(mel) if scale else mel


class WindowDataset(Dataset):
    """Every `seg_frames`-frame window of each recording (window_plan: consecutive, the last
    pulled back to end at the recording's end); a recording shorter than a window is looped or
    padded as in training (`short_clip`)."""

    def __init__(self, table: pd.DataFrame, cache: MelCache, params: MelParams,
                 window_seconds: float, seg_frames: int, short_clip: str = "pad"):
        self.short_clip = short_clip
        self.cache = cache
        self.seg_frames = seg_frames
        self.top_db = params.top_db
        self.scale = not params.waveform
        rows = [(key, *w) for key, duration in zip(table["key"], table["duration"])
                for w in window_plan(duration, window_seconds, params)]
        self.windows = pd.DataFrame(rows, columns=["key", "window", "start_frame", "start", "end"])

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> torch.Tensor:
        w = self.windows.iloc[i]
        start = window_start_frame(int(w.start_frame), self.seg_frames, self.cache.n_frames(w.key))
        mel = self.cache.window(w.key, start, self.seg_frames)
        return torch.from_numpy(window_input(mel, self.seg_frames, self.top_db, self.short_clip, self.scale))[None]
