"""Audio decoding: soundfile for reading, torchaudio for resampling, always mono float32."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

# Decode in blocks so validation of long files never holds the whole file in memory.
_BLOCK_FRAMES = 1 << 18


class AudioDecodeError(Exception):
    """A file that is not usable audio; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    frames: int
    sample_rate: int
    channels: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class AudioCheck:
    """What a full decode of a file found."""

    info: AudioInfo
    peak: float
    content_hash: str


def probe(path: str | Path) -> AudioInfo:
    """Header information, raising AudioDecodeError for anything soundfile cannot open."""
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise AudioDecodeError(path, "empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception as err:  # libsndfile raises several types for unreadable input
        raise AudioDecodeError(path, f"not readable as audio ({_short(err)})") from err
    if info.frames <= 0:
        raise AudioDecodeError(path, "no audio frames")
    return AudioInfo(info.frames, info.samplerate, info.channels, info.format, info.subtype)


def check(path: str | Path) -> AudioCheck:
    """Decode the whole file block by block: catches truncation and corrupt pages that
    headers hide, and measures peak level and a hash of the decoded samples."""
    info = probe(path)
    peak = 0.0
    frames = 0
    digest = hashlib.blake2b(digest_size=16)
    try:
        with sf.SoundFile(str(path)) as f:
            for block in f.blocks(blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    raise AudioDecodeError(path, "contains NaN or infinite samples")
                frames += len(block)
                peak = max(peak, float(np.abs(block).max(initial=0.0)))
                digest.update(block.tobytes())
    except AudioDecodeError:
        raise
    except Exception as err:
        raise AudioDecodeError(path, f"decoding failed after {frames} frames ({_short(err)})") from err
    if frames == 0:
        raise AudioDecodeError(path, "no audio frames could be decoded")
    if frames != info.frames:
        info = AudioInfo(frames, info.sample_rate, info.channels, info.format, info.subtype)
    return AudioCheck(info=info, peak=peak, content_hash=digest.hexdigest())


def load_mono(path: str | Path, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, int]:
    """Frames [start, stop) of a file, down-mixed to mono float32, and its sample rate."""
    try:
        data, sr = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except Exception as err:
        raise AudioDecodeError(path, f"decoding failed ({_short(err)})") from err
    if len(data) == 0:
        raise AudioDecodeError(path, "no audio frames could be decoded")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(mono).all():
        raise AudioDecodeError(path, "contains NaN or infinite samples")
    return np.ascontiguousarray(mono), sr


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited sinc resampling (torchaudio's default kernel)."""
    if orig_sr == target_sr:
        return wave
    import torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(wave), orig_sr, target_sr)
    return out.numpy()


def load_resampled(path: str | Path, sample_rate: int) -> np.ndarray:
    wave, sr = load_mono(path)
    return resample(wave, sr, sample_rate)


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__
