"""Log-mel spectrograms with torchaudio, computed in bounded-size chunks along time or from
a stream of audio blocks, and the top_db floor applied per 5 s segment."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import nn
from torchaudio.transforms import MelSpectrogram


@dataclass(frozen=True)
class MelParams:
    """Everything that determines the cached log-mel values (and so the cache's identity).

    The defaults follow librosa's convention (slaney mel scale and area norm, zero padding),
    so a cache matches `librosa.feature.melspectrogram` + `power_to_db` to ~0.05 dB.
    """

    sample_rate: int = 32000
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 50.0
    fmax: float = 14000.0
    power: float = 2.0
    top_db: float | None = 80.0
    mel_scale: str = "slaney"
    norm: str | None = "slaney"
    # "waveform": the samples themselves as one-band "frames" (hop 1), for a model that takes
    # audio (BirdNET fine-tuned); the cache, crops, windows and streaming treat them alike
    features: str = "logmel"

    @classmethod
    def from_config(cls, audio: dict[str, Any], mel: dict[str, Any]) -> "MelParams":
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in mel.items() if k in names}
        return cls(sample_rate=int(audio["sample_rate"]), **values)

    def n_frames(self, n_samples: int) -> int:
        """Frames a centred STFT yields for n_samples of audio (waveform: the samples)."""
        return n_samples if self.waveform else 1 + n_samples // self.hop_length

    @property
    def waveform(self) -> bool:
        return self.features == "waveform"

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def cache_key(self) -> dict[str, Any]:
        """The parameters the cached values depend on: all but top_db, which is applied when
        a segment is read (see floor_segments)."""
        return {k: v for k, v in self.as_dict().items() if k != "top_db"}


def floor_segments(mel: np.ndarray, top_db: float | None, segment_frames: int, copy: bool = True) -> np.ndarray:
    """Clamp each consecutive `segment_frames`-frame segment of a (n_mels, t) dB array at
    `top_db` below that segment's own maximum. Per segment rather than per recording, so a
    window needs nothing but its own frames (a long file streams) and a 5 s training segment
    and a 5 s inference window are scaled alike. `copy=False` floors `mel` itself (for an
    array the caller owns: a training crop)."""
    if top_db is None or mel.size == 0:
        return mel
    out = mel.copy() if copy else mel
    starts = np.arange(0, out.shape[1], segment_frames)
    segment_floor = np.maximum.reduceat(out.max(axis=0), starts) - top_db
    np.maximum(out, np.repeat(segment_floor, np.diff(starts, append=out.shape[1]))[None, :], out=out)
    return out


SHORT_CLIP_MODES = ("loop", "pad")


def fill_short(mel: np.ndarray, n_frames: int, short_clip: str, offset: int = 0) -> np.ndarray:
    """A (n_mels, t <= n_frames) dB array brought to n_frames, the one way training, evaluation
    and prediction all use (train.short_clip; noise windows of augment.py loop): `loop` tiles it (starting `offset` frames into
    it), `pad` puts it `offset` frames into the window and fills the rest with its quietest
    dB (its floor)."""
    t = mel.shape[1]
    if short_clip == "loop" and t > 0:
        return np.tile(mel, (1, -(-(n_frames + offset) // t)))[:, offset : offset + n_frames]
    if short_clip not in SHORT_CLIP_MODES:
        raise ValueError(f"short_clip must be one of {SHORT_CLIP_MODES}, not {short_clip!r}")
    out = np.full((mel.shape[0], n_frames), mel.min() if mel.size else -80.0, dtype=mel.dtype)
    out[:, offset : offset + t] = mel
    return out


STFT_BLOCK_FRAMES = 256  # frames per torch.stft call: the block's spectrum (~2 MB) stays in cache


class LogMel(nn.Module):
    """Waveform (..., samples) -> log-mel in dB (..., n_mels, frames).

    Equal to torchaudio's MelSpectrogram(center=True, pad_mode="constant") followed by
    AmplitudeToDB(top_db) applied to each clip separately, but the STFT runs over
    STFT_BLOCK_FRAMES frames at a time so an hour-long recording needs no multi-GB buffer.
    """

    def __init__(self, params: MelParams):
        super().__init__()
        self.params = params
        if params.waveform:  # the samples are the features: nothing to build
            return
        self.mel = MelSpectrogram(
            sample_rate=params.sample_rate,
            n_fft=params.n_fft,
            hop_length=params.hop_length,
            f_min=params.fmin,
            f_max=params.fmax,
            n_mels=params.n_mels,
            power=params.power,
            center=False,  # centring done here, once, so chunks line up with full-signal frames
            mel_scale=params.mel_scale,
            norm=params.norm,
        )
        # The filterbank has ~2 nonzero weights per frequency bin and none outside fmin..fmax:
        # only those bins are squared, and a sparse product (~1 % of the dense one's work)
        # weighs them into bands.
        weights = self.mel.mel_scale.fb  # (n_freqs, n_mels)
        used = weights.abs().sum(dim=1).nonzero()
        self.bins = slice(int(used.min()), int(used.max()) + 1) if len(used) else slice(0, weights.shape[0])
        # dense, so that .to()/.double() move and cast it; `filters` is its sparse form
        self.register_buffer("filter_weights", weights[self.bins].T.contiguous(), persistent=False)
        self._sparse_filters: tuple[tuple, torch.Tensor] | None = None

    @property
    def filters(self) -> torch.Tensor:
        """filter_weights (n_mels, used bins) as a sparse CSR tensor, made once per device and dtype."""
        weights = self.filter_weights
        if self._sparse_filters is None or self._sparse_filters[0] != (weights.device, weights.dtype):
            with warnings.catch_warnings():  # "sparse CSR support is in beta": products are what we use
                warnings.simplefilter("ignore", UserWarning)
                self._sparse_filters = ((weights.device, weights.dtype), weights.to_sparse_csr())
        return self._sparse_filters[1]

    def __getstate__(self) -> dict:
        """Pickled and deep-copied without the sparse form (a sparse tensor cannot be deep-copied)."""
        return self.__dict__ | {"_sparse_filters": None}

    def power_mel(self, wave: torch.Tensor) -> torch.Tensor:
        half = self.params.n_fft // 2
        return self.uncentred_power_mel(F.pad(wave, (half, half)))

    def uncentred_power_mel(self, span: torch.Tensor) -> torch.Tensor:
        """torchaudio's MelSpectrogram(center=False) of `span` (..., samples) to float rounding,
        computed STFT_BLOCK_FRAMES frames at a time, with |X|² as X·conj(X) (the complex abs,
        a hypot per bin, costs more than the STFT) over the filterbank's bins only, and the
        sparse filterbank product (bench/cache_build.py)."""
        p = self.params
        n_frames = 1 + (span.shape[-1] - p.n_fft) // p.hop_length
        batch = span.shape[:-1]
        flat = span.reshape(-1, span.shape[-1])
        blocks = []
        for first in range(0, n_frames, STFT_BLOCK_FRAMES):
            last = min(first + STFT_BLOCK_FRAMES, n_frames)
            piece = flat[:, first * p.hop_length : (last - 1) * p.hop_length + p.n_fft]
            spec = torch.stft(piece, p.n_fft, p.hop_length, window=self.mel.spectrogram.window, center=False,
                              return_complex=True)[:, self.bins]  # (clips, bins, frames)
            power = (spec * spec.conj()).real if p.power == 2.0 else spec.abs().pow(p.power)
            # clips side by side along time: one (n_mels, bins) @ (bins, clips * frames) product
            power = power.transpose(0, 1).reshape(power.shape[1], -1).contiguous()
            blocks.append((self.filters @ power).reshape(-1, len(flat), last - first))
        mel = torch.cat(blocks, dim=-1).transpose(0, 1)  # (clips, n_mels, frames)
        return mel.reshape(*batch, *mel.shape[1:])

    def to_db(self, power_mel: torch.Tensor) -> torch.Tensor:
        """dB with the top_db floor taken per clip (torchaudio would share one floor across a
        3-D batch)."""
        shape = power_mel.shape
        per_clip = power_mel.reshape(-1, 1, shape[-2], shape[-1])
        return self.power_to_db(per_clip, self.params.top_db).reshape(shape)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if self.params.waveform:
            return wave.unsqueeze(-2)
        return self.to_db(self.power_mel(wave))

    def power_to_db(self, power_mel: torch.Tensor, top_db: float | None = None) -> torch.Tensor:
        """dB (amin 1e-10: digital silence is -100 dB), by default without the top_db floor;
        a floor is taken per (..., n_mels, frames) block of a 4-D input (see to_db)."""
        multiplier = 10.0 if self.params.power == 2.0 else 20.0
        if top_db is None:  # torchaudio's formula, in place on one copy (the cache's case)
            return power_mel.clamp(min=1e-10).log10_().mul_(multiplier)
        return AF.amplitude_to_DB(power_mel, multiplier, amin=1e-10, db_multiplier=0.0, top_db=top_db)

    @torch.inference_mode()
    def stream_db(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Log-mel frames (n_mels, t) in dB, without the top_db floor, from consecutive mono
        blocks of one recording; joined they equal power_to_db(power_mel(whole signal)).
        Memory holds one block and n_fft samples of overlap, whatever the length. Waveform
        features: each block as it is, (1, samples)."""
        p = self.params
        if p.waveform:
            yield from (np.asarray(block, dtype=np.float32)[None] for block in blocks)
            return
        half = p.n_fft // 2
        pending = np.zeros(half, dtype=np.float32)  # centring: n_fft/2 zeros before the signal
        emitted = samples = 0
        for block in blocks:
            samples += len(block)
            pending = np.concatenate([pending, block])
            ready = (len(pending) - p.n_fft) // p.hop_length + 1
            if ready > 0:
                yield self._db_frames(pending, ready)
                pending = pending[ready * p.hop_length :]
                emitted += ready
        remaining = p.n_frames(samples) - emitted
        if remaining > 0:
            yield self._db_frames(np.concatenate([pending, np.zeros(half, dtype=np.float32)]), remaining)

    def _db_frames(self, signal: np.ndarray, n_frames: int) -> np.ndarray:
        span = torch.from_numpy(signal[: (n_frames - 1) * self.params.hop_length + self.params.n_fft])
        return self.power_to_db(self.uncentred_power_mel(span)).numpy()
