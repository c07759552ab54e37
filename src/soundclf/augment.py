"""Augmentations of a training crop in the log-mel (dB) domain, each a named action switched
on by its own training key: time shift, background noise from a folder of recordings
(cached as log-mels like the training audio), white and pink noise, random gain.

Noise is mixed in the power domain, P = 10^(dB/10): mixing the mel powers of a signal and an
independent noise is what mixing their waveforms gives on average, so no waveform is needed
and the cached crops stay the input. The SNR is the ratio of the crop's mean mel power to the
added noise's mean mel power, in dB."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from .mel import LogMel, MelParams, fill_short
from .mel_cache import as_dtype

log = logging.getLogger(__name__)


def to_power(db: np.ndarray) -> np.ndarray:
    return np.power(10.0, db.astype(np.float64) / 10.0)


def mix_at_snr(signal_db: np.ndarray, noise_db: np.ndarray, snr_db: float) -> np.ndarray:
    """signal + noise in the power domain, the noise scaled so that mean signal power / mean
    noise power is `snr_db`; returned in dB (float32)."""
    signal, noise = to_power(signal_db), to_power(noise_db)
    scale = signal.mean() / (noise.mean() * 10.0 ** (snr_db / 10.0))
    return (10.0 * np.log10(signal + scale * noise)).astype(np.float32)


def realised_snr_db(signal_db: np.ndarray, mixed_db: np.ndarray) -> float:
    """The SNR of a mix, from the signal and the mix (what mix_at_snr added)."""
    signal = to_power(signal_db)
    return float(10.0 * np.log10(signal.mean() / (to_power(mixed_db) - signal).mean()))


def draw_window(lengths: np.ndarray, n_frames: int, rng: np.random.Generator) -> tuple[int, int]:
    """(item, start frame) of a random n_frames window from items of `lengths` frames, each
    frame of all items equally likely to start it (a long recording is drawn more often)."""
    item = int(rng.choice(len(lengths), p=lengths / lengths.sum()))
    return item, int(rng.integers(0, max(1, lengths[item] - n_frames + 1)))


class NoiseRecordings:
    """Random windows of the noise recordings in one HDF5 file (written by
    mel_cache.write_shard: one (n_mels, frames) dB dataset per recording); a recording
    shorter than the window is looped. Opens the file once per process (h5py handles must not
    cross a fork into DataLoader workers)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with h5py.File(self.path, "r") as h5:
            self.keys = []  # a key with '/' (a sub-folder) is a dataset inside groups
            h5.visititems(lambda name, item: self.keys.append(name) if isinstance(item, h5py.Dataset) else None)
            self.keys.sort()
            self.lengths = np.array([h5[k].shape[1] for k in self.keys], dtype=np.float64)
        if not self.keys:
            raise ValueError(f"{self.path} holds no noise recording")
        self._file, self._pid = None, None

    def draw(self, n_frames: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """(dB window, key of the recording it was read from)."""
        if self._pid != os.getpid():
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        item, start = draw_window(self.lengths, n_frames, rng)
        window = as_dtype(self._file[self.keys[item]][:, start : start + n_frames], np.float32)
        return fill_short(window, n_frames, "loop"), self.keys[item]


NOISE_COLOURS = ("white", "pink")


def synthetic_noise(colour: str, params: MelParams, seconds: float = 30.0, seed: int = 0) -> np.ndarray:
    """dB log-mel of `seconds` of white (flat spectrum) or pink (power ∝ 1/f) Gaussian noise,
    computed with the cache's own transform."""
    if colour not in NOISE_COLOURS:
        raise ValueError(f"noise colour must be one of {NOISE_COLOURS}, not {colour!r}")
    rng = np.random.default_rng(seed)
    wave = rng.standard_normal(int(seconds * params.sample_rate))
    if colour == "pink":
        spectrum = np.fft.rfft(wave)
        f = np.fft.rfftfreq(wave.size, 1 / params.sample_rate)
        spectrum[1:] /= np.sqrt(f[1:])
        spectrum[0] = 0
        wave = np.fft.irfft(spectrum, n=wave.size)
    wave = (wave / wave.std()).astype(np.float32)
    with torch.inference_mode():
        return LogMel(params)(torch.from_numpy(wave)).numpy()


class SyntheticNoise:
    """Random windows of a precomputed synthetic-noise log-mel."""

    def __init__(self, colour: str, params: MelParams):
        self.colour = colour
        self.mel = synthetic_noise(colour, params)

    def draw(self, n_frames: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        _, start = draw_window(np.array([self.mel.shape[1]], dtype=np.float64), n_frames, rng)
        return fill_short(self.mel[:, start : start + n_frames], n_frames, "loop"), self.colour


@dataclass
class NoiseMix:
    """With probability `prob`, mix a window of `source` into the crop at an SNR drawn
    uniformly from `snr_db` (low, high)."""

    source: NoiseRecordings | SyntheticNoise
    snr_db: tuple[float, float]
    prob: float

    def __call__(self, crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.prob:
            return crop
        noise, _ = self.source.draw(crop.shape[1], rng)
        return mix_at_snr(crop, noise, float(rng.uniform(*self.snr_db)))


@dataclass
class CropAugment:
    """The switchable augmentations of a dB crop, in order: circular time shift by up to
    ±`shift_frames`, each noise mix, a gain drawn uniformly in ±`gain_db`. With the defaults
    it returns the crop unchanged."""

    shift_frames: int = 0
    noises: list[NoiseMix] = field(default_factory=list)
    gain_db: float = 0.0

    def draw_shift(self, rng: np.random.Generator) -> int:
        """A time shift in frames (0 when shifting is off)."""
        return int(rng.integers(-self.shift_frames, self.shift_frames + 1)) if self.shift_frames else 0

    def __call__(self, crop: np.ndarray, rng: np.random.Generator, shift: int | None = None) -> np.ndarray:
        """`shift`: a shift drawn beforehand (draw_shift), so that a crop's segment targets
        can follow its frames."""
        shift = self.draw_shift(rng) if shift is None else shift
        if shift:
            crop = np.roll(crop, shift, axis=1)
        for noise in self.noises:
            crop = noise(crop, rng)
        if self.gain_db:
            crop = crop + np.float32(rng.uniform(-self.gain_db, self.gain_db))
        return crop

    @classmethod
    def from_config(cls, train: dict, params: MelParams, noise_mels: str | Path | None = None) -> "CropAugment":
        """From the training keys time_shift_seconds, gain_db, noise_snr_db, noise_prob,
        white_noise_snr_db and pink_noise_snr_db; `noise_mels` is the cached noise_dir (or
        None: no background noise)."""
        noises = []
        if noise_mels:
            recordings = NoiseRecordings(noise_mels)
            log.info("background noise: %d recordings (%.0f s) from %s, SNR %s dB, p %.2f", len(recordings.keys),
                     recordings.lengths.sum() / params.frames_per_second, noise_mels, train["noise_snr_db"],
                     train["noise_prob"])
            noises.append(NoiseMix(recordings, tuple(train["noise_snr_db"]), train["noise_prob"]))
        for colour in NOISE_COLOURS:
            snr = train[f"{colour}_noise_snr_db"]
            if snr:
                log.info("%s noise: SNR %s dB, p %.2f", colour, snr, train["noise_prob"])
                noises.append(NoiseMix(SyntheticNoise(colour, params), tuple(snr), train["noise_prob"]))
        return cls(shift_frames=int(round(train["time_shift_seconds"] * params.frames_per_second)),
                   noises=noises, gain_db=float(train["gain_db"]))
