"""Audio decoding: soundfile for reading, torchaudio for resampling, always mono float32.

Long files are read as a stream of blocks (`stream_mono`), so nothing here holds a whole
recording in memory; a file that cannot be used raises AudioDecodeError with the reason and
what to do about it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

# Frames handed on at a time: 256 kB per channel, whatever the file's length, so a block
# is still in the CPU's cache when its log-mel is computed (bench/cache_build.py) ...
BLOCK_FRAMES = 1 << 16
# ... decoded in pieces this long, so a decoder error costs at most this much audio.
READ_FRAMES = 1 << 14
# A recording that decodes less than this share of the frames its header promises is
# rejected as truncated; above it, the decoded part is kept with a note (data.min_decoded_fraction).
DEFAULT_MIN_DECODED_FRACTION = 0.9
# A recording whose loudest sample is below this is silent (1 LSB of 16-bit audio is -90.3 dBFS).
SILENCE_DBFS = -90.0
# Samples at or above this magnitude count as clipped.
CLIP_LEVEL = 0.999

FIX_REENCODE = "re-export or re-download the file from its source, or remove it"


class AudioDecodeError(Exception):
    """A file that is not usable audio; names the file, the reason and the fix."""

    def __init__(self, path: str | Path, reason: str, fix: str = FIX_REENCODE):
        self.path = str(path)
        self.reason = reason
        self.fix = fix
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
    clipped_fraction: float
    content_hash: str
    note: str = ""  # why the length differs from the header's, when it does

    @property
    def peak_dbfs(self) -> float:
        return 20 * math.log10(self.peak) if self.peak > 0 else -math.inf


def probe(path: str | Path) -> AudioInfo:
    """Header information, raising AudioDecodeError for anything soundfile cannot open."""
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(path, "file does not exist",
                               "check the file name (it is relative to data.audio_dir) or remove the row")
    if path.stat().st_size == 0:
        raise AudioDecodeError(path, "empty file (0 bytes)", "copy the file again from its source, or remove it")
    try:
        info = sf.info(str(path))
    except Exception as err:  # libsndfile raises several types for unreadable input
        raise AudioDecodeError(path, f"not readable as audio: {_sniff(path)} ({_short(err)})",
                               "convert it to FLAC, WAV or OGG (e.g. ffmpeg -i in.m4a out.flac), or remove it") from err
    if info.frames <= 0:
        raise AudioDecodeError(path, "no audio frames (truncated or empty stream)")
    return AudioInfo(info.frames, info.samplerate, info.channels, info.format, info.subtype)


def check(path: str | Path, min_decoded_fraction: float = DEFAULT_MIN_DECODED_FRACTION) -> AudioCheck:
    """Decode the whole file block by block: catches truncation and corrupt pages that
    headers hide, and measures peak level, clipping and a hash of the decoded samples.

    The recording's length is what decodes, never what the header says. When fewer frames
    decode than the header promises (a cut file, an MP3 whose header only estimates its
    length, a decoder error near the end), the decoded part is kept if it is at least
    `min_decoded_fraction` of the promise, with a `note` saying so; below that, the file is
    rejected as truncated."""
    info = probe(path)
    peak, clipped = 0.0, 0
    digest = hashlib.blake2b(digest_size=16)
    decoded = DecodedBlocks(path, always_2d=True)
    for block in decoded:
        magnitude = np.abs(block)
        peak = max(peak, float(magnitude.max(initial=0.0)))
        clipped += int((magnitude >= CLIP_LEVEL).sum())
        digest.update(block.tobytes())
    frames = decoded.frames
    promised = _wav_data_chunk_frames(path, info) or info.frames  # libsndfile clamps a cut WAV's count
    note = _length_note(path, replace(info, frames=max(promised, info.frames)), frames, decoded.error,
                        min_decoded_fraction)
    if info.format == "OGG" and not _ogg_ends_with_eos(path):
        raise AudioDecodeError(path, "truncated: the Ogg stream stops without its end-of-stream page")
    info = AudioInfo(frames, info.sample_rate, info.channels, info.format, info.subtype)
    return AudioCheck(info=info, peak=peak, clipped_fraction=clipped / (frames * info.channels),
                      content_hash=digest.hexdigest(), note=note)


def header_length_is_estimate(path: str | Path, info: AudioInfo) -> bool:
    """MPEG audio states no length of its own: unless its encoder wrote a Xing/Info/VBRI
    frame, libsndfile estimates the length from the file size and the first frame's bit rate,
    so variable bit rates, trailing tags or cover art make it promise more than decodes.
    MP3 data inside a WAV container counts as estimated too."""
    if not info.subtype.startswith("MPEG_LAYER"):
        return False
    return info.format not in ("MPEG", "MP3") or not _mp3_has_length_frame(path)


def _length_note(path: str | Path, info: AudioInfo, frames: int, error: str | None,
                 min_decoded_fraction: float) -> str:
    """'' when the decoded length is what the header states. Otherwise a note for the index,
    or AudioDecodeError when the file is truncated: less than `min_decoded_fraction` of an
    exact header length decodes, or of an estimated one before a decoder error (a clean end
    short of an estimate is no sign of damage: such files play to their end)."""
    if frames == info.frames and error is None:
        return ""
    fraction = frames / info.frames
    estimated = header_length_is_estimate(path, info)
    what = (f"the header estimates {info.frames} frames (no Xing/Info length frame)" if estimated
            else f"the header promises {info.frames} frames")
    stop = f"decoding stops with an error ({error})" if error else "decoding ends"
    if fraction < min_decoded_fraction and (error or not estimated):
        raise AudioDecodeError(
            path, f"truncated: {what}, {stop} after {frames} ({fraction:.1%}, below data.min_decoded_fraction "
                  f"{min_decoded_fraction:g})",
            f"{FIX_REENCODE}; or lower data.min_decoded_fraction to keep the part that decodes")
    return f"length by decoding: {what}, {stop} after {frames} ({fraction:.1%})"


def _wav_data_chunk_frames(path: str | Path, info: AudioInfo) -> int | None:
    """Frames the data chunk of a PCM/float WAV declares (None for other files), which
    libsndfile does not report when the file was cut short."""
    if info.format != "WAV" or not info.subtype.startswith(("PCM", "FLOAT", "DOUBLE")):
        return None
    with open(path, "rb") as f:
        if f.read(12)[8:] != b"WAVE":
            return None
        block_align = None
        while len(header := f.read(8)) == 8:
            chunk, size = header[:4], int.from_bytes(header[4:], "little")
            if chunk == b"fmt ":
                block_align = int.from_bytes(f.read(16)[12:14], "little")
                f.seek(size - 16 + (size & 1), 1)
            elif chunk == b"data":
                return size // block_align if block_align else None
            else:
                f.seek(size + (size & 1), 1)
    return None


def _mp3_has_length_frame(path: str | Path) -> bool:
    """Whether the first MPEG frame (after any ID3v2 tag) is a Xing, Info or VBRI frame,
    which states the exact number of frames."""
    with open(path, "rb") as f:
        head = f.read(10)
        offset = 0
        if head[:3] == b"ID3" and len(head) == 10:  # ID3v2: a 10-byte header, then a syncsafe size
            offset = 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F))
        f.seek(offset)
        data = f.read(8192)
    for i in range(len(data) - 1):
        if data[i] == 0xFF and data[i + 1] & 0xE0 == 0xE0:  # the first frame's sync word
            frame = data[i : i + 200]
            return b"Xing" in frame or b"Info" in frame or frame[36:40] == b"VBRI"
    return False


class DecodedBlocks:
    """Iterates over a file's decoded float32 blocks of BLOCK_FRAMES frames.

    Reads READ_FRAMES at a time, so that a decoder error (a cut FLAC, junk after an MP3's
    last frame) loses at most that much: decoding then stops, `error` holds the decoder's
    message and `frames` what was decoded before it (the same on every read of the file, so
    the index, the mel cache and prediction agree on the length). A file that decodes no
    frame at all, or holds NaN/Inf samples, raises AudioDecodeError."""

    def __init__(self, path: str | Path, always_2d: bool = False):
        self.path, self.always_2d = path, always_2d
        self.frames = 0
        self.error: str | None = None
        self.sample_rate: int | None = None  # the file's, once iteration has opened it

    def __iter__(self) -> Iterator[np.ndarray]:
        path = self.path
        try:
            handle = sf.SoundFile(str(path))
        except Exception as err:
            probe(path)  # names the problem (missing, empty, not audio)
            raise AudioDecodeError(path, f"not readable as audio ({_short(err)})") from err
        block, filled = np.empty((BLOCK_FRAMES, handle.channels), np.float32), 0
        self.sample_rate = handle.samplerate
        with handle:
            while True:
                try:
                    n = _read_into(handle, block[filled : filled + READ_FRAMES])
                except Exception as err:
                    if self.frames + filled == 0:
                        raise AudioDecodeError(path, f"corrupt: decoding fails at the first frame ({_short(err)})") from err
                    self.error = _short(err)
                    log.warning("%s: decoding stopped with an error after %d frames (%s); using the frames before it",
                                path, self.frames + filled, self.error)
                    break
                if n == 0:
                    break
                piece = block[filled : filled + n]
                if not np.isfinite(piece).all():
                    finite = np.isfinite(piece).all(axis=1)
                    raise AudioDecodeError(path, f"contains NaN or infinite samples (the first at frame "
                                                 f"{self.frames + filled + int(np.argmin(finite))})")
                filled += n
                if filled == BLOCK_FRAMES:
                    yield self._emit(block, filled)
                    block, filled = np.empty_like(block), 0
        if filled:
            yield self._emit(block, filled)
        if self.frames == 0:
            raise AudioDecodeError(path, "no audio frames could be decoded")

    def _emit(self, block: np.ndarray, filled: int) -> np.ndarray:
        self.frames += filled
        return block[:filled] if self.always_2d or block.shape[1] > 1 else block[:filled, 0]


def _read_into(handle: sf.SoundFile, out: np.ndarray) -> int:
    """Decode up to len(out) frames into `out` (contiguous float32, (frames, channels)) and
    return how many. This is the libsndfile call soundfile's read makes, without the three
    seeks around it that keep soundfile's own position (never used here): ~1 ms per minute of
    audio, 3-4 % of a mel cache build (bench/cache_build.py). soundfile is pinned in
    pyproject.toml, whose 0.14 these names belong to."""
    n = sf._snd.sf_readf_float(handle._file, sf._ffi.cast("float *", out.ctypes.data), len(out))
    sf._error_check(handle._errorcode)
    return n


def skip_unusable(path: str | Path, err: AudioDecodeError, on_bad_audio: str) -> None:
    """What a stage that meets an unusable file does: re-raise under on_bad_audio 'fail', else
    log that the file is skipped (the index reports it)."""
    if on_bad_audio == "fail":
        raise err
    log.warning("skipped %s: %s", path, err.reason)


def stream_mono(path: str | Path, sample_rate: int) -> Iterator[np.ndarray]:
    """The file as consecutive mono float32 blocks at `sample_rate`: decoded and resampled a
    block at a time; the blocks joined equal load_resampled(path, sample_rate)."""
    resampler = None
    blocks = DecodedBlocks(path, always_2d=True)
    for block in blocks:
        if resampler is None:
            resampler = StreamResampler(blocks.sample_rate, sample_rate)
        out = resampler.push(block.mean(axis=1) if block.shape[1] > 1 else block[:, 0])
        if len(out):
            yield out
    tail = resampler.flush()
    if len(tail):
        yield tail


class CountedBlocks:
    """Iterates over audio blocks and counts their samples (known only once the stream ends)."""

    def __init__(self, blocks: Iterator[np.ndarray]):
        self.blocks = blocks
        self.samples = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for block in self.blocks:
            self.samples += len(block)
            yield block


def load_mono(path: str | Path) -> tuple[np.ndarray, int]:
    """The whole file down-mixed to mono float32, and its sample rate (for short files)."""
    decoded = DecodedBlocks(path, always_2d=True)
    blocks = [b.mean(axis=1) if b.shape[1] > 1 else b[:, 0] for b in decoded]
    return np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32), decoded.sample_rate


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited sinc resampling (torchaudio's default kernel)."""
    if orig_sr == target_sr:
        return wave
    import torch

    with torch.inference_mode():
        return _sinc_resampler(orig_sr, target_sr)(torch.from_numpy(np.ascontiguousarray(wave))).numpy()


@functools.lru_cache(maxsize=16)
def _sinc_resampler(orig_sr: int, target_sr: int):
    """torchaudio's Resample, whose kernel is computed once: functional.resample recomputes it
    on every call, which cost 2/3 of resampling a 65 536-frame block from 44.1 to 32 kHz. The
    same float32 kernel, so the same output bit for bit."""
    import torch
    import torchaudio.transforms

    return torchaudio.transforms.Resample(orig_sr, target_sr, dtype=torch.float32)


def load_resampled(path: str | Path, sample_rate: int) -> np.ndarray:
    wave, sr = load_mono(path)
    return resample(wave, sr, sample_rate)


class StreamResampler:
    """`resample` applied block by block. Each block is resampled with `context` input
    samples of real signal on either side (zeros before the start, as torchaudio pads), and
    only the outputs those cannot reach past are kept, so the joined output equals resampling
    the whole signal at once (to float rounding)."""

    def __init__(self, orig_sr: int, target_sr: int):
        g = math.gcd(orig_sr, target_sr)
        self.orig_sr, self.target_sr = orig_sr, target_sr
        self.period_in, self.period_out = orig_sr // g, target_sr // g
        # torchaudio's kernel half-width (lowpass_filter_width 6, rolloff 0.99), in input
        # samples, rounded up to whole periods so blocks start on a period boundary
        width = math.ceil(6 * self.period_in / (min(self.period_in, self.period_out) * 0.99)) + 1
        self.context = -(-width // self.period_in) * self.period_in
        self.buffer = np.zeros(self.context, dtype=np.float32)  # the signal from (next output's input) - context

    def push(self, block: np.ndarray) -> np.ndarray:
        if self.orig_sr == self.target_sr:
            return block
        self.buffer = np.concatenate([self.buffer, block])
        ready = (len(self.buffer) - 2 * self.context) // self.period_in * self.period_in
        if ready <= 0:
            return np.zeros(0, dtype=np.float32)
        out = resample(self.buffer[: ready + 2 * self.context], self.orig_sr, self.target_sr)
        first = self.context // self.period_in * self.period_out
        self.buffer = self.buffer[ready:]
        return out[first : first + ready // self.period_in * self.period_out]

    def flush(self) -> np.ndarray:
        """The outputs of the last samples (the signal ends; zeros follow)."""
        if self.orig_sr == self.target_sr:
            return np.zeros(0, dtype=np.float32)
        out = resample(self.buffer, self.orig_sr, self.target_sr)
        self.buffer = np.zeros(0, dtype=np.float32)
        return out[self.context // self.period_in * self.period_out :]


def _ogg_ends_with_eos(path: str | Path) -> bool:
    """Walk the Ogg pages: the file must end exactly after a whole page flagged end-of-stream."""
    size = Path(path).stat().st_size
    last_flags = 0
    with open(path, "rb") as f:
        position = 0
        while position < size:
            header = f.read(27)
            if len(header) < 27 or header[:4] != b"OggS":
                return False
            last_flags = header[5]
            table = f.read(header[26])
            if len(table) < header[26]:
                return False
            position += 27 + len(table) + sum(table)
            f.seek(position)
    return position == size and bool(last_flags & 0x04)


_MAGIC = [
    (b"ftyp", 4, "an MP4/M4A (AAC) container"), (b"PK\x03\x04", 0, "a ZIP archive"),
    (b"%PDF", 0, "a PDF document"), (b"\x1aE\xdf\xa3", 0, "a Matroska/WebM container"),
    (b"ID3", 0, "an MP3 with an ID3 tag this libsndfile cannot decode"), (b"\x89PNG", 0, "a PNG image"),
    (b"\xff\xd8\xff", 0, "a JPEG image"),
]


def _sniff(path: str | Path) -> str:
    """What an unreadable file looks like, from its first bytes."""
    with open(path, "rb") as f:
        head = f.read(512)
    for magic, offset, what in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return what
    if all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "a text file"
    return "unrecognised content"


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__
