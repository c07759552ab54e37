"""A hostile-input corpus, generated (never committed): broken, odd and awkwardly named files
and bad metadata rows, added to a good metadata-layout dataset. Each case says what it must
get; docs/data.md's "What happens to bad input" table lists the same cases."""
from __future__ import annotations

import csv
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

LABEL = "whistler"  # a class of the tiny demo dataset
SR = 16000


@dataclass(frozen=True)
class Case:
    filename: str  # relative to the audio folder, as the metadata row names it
    expect: str  # "indexed", "rejected", "no call" (indexed without a label), "background class" (an unknown
    # secondary label: a class with data.secondary_classes keep, removed from the row with drop)
    stage: str = ""  # for rejected: "audio" or "metadata"
    reason: str = ""  # a substring of the rejection reason
    label: str = LABEL
    secondary: str = "[]"


def _tone(seconds: float, sr: int = SR, channels: int = 1, freq: float = 1200.0, amplitude: float = 0.4) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    wave = (amplitude * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1) if channels > 1 else wave


def _truncate(path: Path, keep: float) -> None:
    path.write_bytes(path.read_bytes()[: int(keep * path.stat().st_size)])


def _write(path: Path, data, sr=SR, subtype=None, fmt=None) -> None:
    sf.write(path, data, sr, subtype=subtype, format=fmt)


def mp3_without_length_frame(path: Path, seconds: float = 6.0, tail: bytes = b"", sr: int = 44100) -> Path:
    """A constant-bit-rate MP3 as many field recorders and web services write it: no Xing/Info
    frame (libsndfile's encoder writes one; it is cut out here) and `tail` bytes after the last
    frame (an APEv2 tag, cover art), so libsndfile can only estimate the length from the file
    size."""
    with sf.SoundFile(path, "w", sr, 1, format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="CONSTANT",
                      compression_level=0.5) as f:
        f.write(_tone(seconds, sr))
    data = path.read_bytes()
    header = int.from_bytes(data[:4], "big")  # the Info frame: MPEG-1 layer III at 44.1 kHz
    bitrate = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320][(header >> 12) & 0xF] * 1000
    info_frame = 144 * bitrate // sr + ((header >> 9) & 1)
    assert b"Info" in data[:info_frame] or b"Xing" in data[:info_frame]
    path.write_bytes(data[info_frame:] + tail)
    return path


APE_TAG = b"APETAGEX" + bytes(24) + b"x" * 600  # tag bytes after the last frame (the decoder ends cleanly)


def mp3_in_wav(path: Path, seconds: float = 3.0, sr: int = 44100) -> Path:
    """MP3 frames inside a WAV container (format tag 0x55, as some published animal-sound sets
    ship): libsndfile only estimates its length, above what decodes."""
    mp3 = mp3_without_length_frame(path.with_suffix(".inner.mp3"), seconds, sr=sr)
    frames = mp3.read_bytes()
    mp3.unlink()
    fmt = struct.pack("<HHIIHHHHIHHH", 0x55, 1, sr, 20000, 1, 0, 12, 1, 2, 522, 1, 1393)  # MPEGLAYER3WAVEFORMAT
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(frames)) + frames
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    return path


def _cut_end(path: Path, fraction: float) -> None:
    """Cut the last `fraction` of the file off (its header still promises the whole)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - int(fraction * len(data))])


def _mp3_cut_in_half(path: Path) -> None:
    _write(path, _tone(6.0, 44100), 44100, subtype="MPEG_LAYER_III", fmt="MP3")  # with an exact Info frame
    _truncate(path, 0.5)


def _nan_wave() -> np.ndarray:
    wave = _tone(2.0)
    wave[1000:1010] = np.nan
    return wave


def _inf_wave() -> np.ndarray:
    wave = _tone(2.0)
    wave[5000] = np.inf
    return wave


# (case, writer of its file; None: the row names a file that is not there)
CASES: list[tuple[Case, Callable[[Path], object] | None]] = [
    # unreadable or truncated: rejected, the run goes on
    (Case("bad/zero_byte.ogg", "rejected", "audio", "empty file"), lambda p: p.write_bytes(b"")),
    (Case("bad/truncated.ogg", "rejected", "audio", "truncated"),
     lambda p: (_write(p, _tone(4.0), fmt="OGG", subtype="VORBIS"), _truncate(p, 0.8))),
    (Case("bad/truncated.flac", "rejected", "audio", "truncated"),
     lambda p: (_write(p, _tone(6.0), fmt="FLAC"), _truncate(p, 0.6))),
    (Case("bad/mp3_cut_in_half.mp3", "rejected", "audio", "below data.min_decoded_fraction"), _mp3_cut_in_half),
    (Case("bad/truncated.wav", "rejected", "audio", "truncated: the header promises 48000 frames"),
     lambda p: (_write(p, _tone(3.0)), _cut_end(p, 0.5))),
    (Case("bad/random_bytes.flac", "rejected", "audio", "not readable as audio"),
     lambda p: p.write_bytes(np.random.default_rng(1).bytes(20000))),
    (Case("bad/notes.wav", "rejected", "audio", "a text file"),
     lambda p: p.write_text("site 4, dawn chorus, wind 2 Bft\n" * 40)),
    (Case("bad/phone_memo.m4a", "rejected", "audio", "MP4/M4A"),
     lambda p: p.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + np.random.default_rng(2).bytes(5000))),
    # decodable but unusable: rejected by a documented rule
    (Case("bad/nan.wav", "rejected", "audio", "NaN or infinite samples (the first at frame 1000)"), lambda p: _write(p, _nan_wave(), subtype="FLOAT")),
    (Case("bad/inf.wav", "rejected", "audio", "NaN or infinite"), lambda p: _write(p, _inf_wave(), subtype="FLOAT")),
    (Case("bad/silent.wav", "rejected", "audio", "silent"), lambda p: _write(p, np.zeros(3 * SR, np.float32))),
    (Case("bad/blip.wav", "rejected", "audio", "too short"), lambda p: _write(p, _tone(0.02))),
    # odd but usable: indexed, cached, trained on
    (Case("odd/xeno_canto_style.mp3", "indexed"), lambda p: mp3_without_length_frame(p, tail=APE_TAG)),
    (Case("odd/mp3_in_wav.wav", "indexed"), mp3_in_wav),
    (Case("odd/wav_1pct_short.wav", "indexed"), lambda p: (_write(p, _tone(3.0)), _cut_end(p, 0.01))),
    (Case("odd/short_0.15s.wav", "indexed"), lambda p: _write(p, _tone(0.15))),
    (Case("odd/clipped.wav", "indexed"), lambda p: _write(p, np.clip(_tone(3.0, amplitude=4.0), -1, 1))),
    (Case("odd/pcm_u8.wav", "indexed"), lambda p: _write(p, _tone(2.5), subtype="PCM_U8")),
    (Case("odd/pcm_24.wav", "indexed"), lambda p: _write(p, _tone(2.5), subtype="PCM_24")),
    (Case("odd/float32.wav", "indexed"), lambda p: _write(p, _tone(2.5), subtype="FLOAT")),
    (Case("odd/six_channels.wav", "indexed"), lambda p: _write(p, _tone(2.5, channels=6))),
    (Case("odd/rate_8k.flac", "indexed"), lambda p: _write(p, _tone(3.0, 8000, freq=900.0), 8000)),
    (Case("odd/rate_96k.wav", "indexed"), lambda p: _write(p, _tone(3.0, 96000), 96000)),
    (Case("odd/short_0.3s.wav", "indexed"), lambda p: _write(p, _tone(0.3))),
    (Case("odd/with space.wav", "indexed"), lambda p: _write(p, _tone(2.0, freq=1500.0))),
    (Case("odd/naïve ñandú 鳥.flac", "indexed"), lambda p: _write(p, _tone(2.0, freq=1700.0))),
    (Case("odd/it's $HOME; rm -rf x.wav", "indexed"), lambda p: _write(p, _tone(2.0, freq=1900.0))),
    (Case("odd/copy_a.wav", "indexed"), lambda p: _write(p, _tone(2.0, freq=2100.0))),
    (Case("odd/copy_b.wav", "indexed"), lambda p: _write(p, _tone(2.0, freq=2100.0))),
    # bad metadata rows
    (Case("odd/ghost.ogg", "rejected", "metadata", "does not exist"), None),
    (Case("odd/unlabelled.wav", "no call", label=""), lambda p: _write(p, _tone(2.0, freq=2300.0))),
    (Case("odd/bad_secondary.wav", "rejected", "metadata", "malformed label list", secondary="['upsweeper"),
     lambda p: _write(p, _tone(2.0))),
    (Case("odd/unknown_secondary.wav", "background class", secondary="['upsweeper', 'nosuchbird']"),
     lambda p: _write(p, _tone(2.0, freq=2500.0))),
]

DUPLICATES = ("odd/copy_a.wav", "odd/copy_b.wav")


def add_hostile_corpus(dataset: Path) -> list[Case]:
    """Write every case's file under dataset/train_audio and its row into
    dataset/train_metadata.csv (a demo-layout dataset); returns the cases."""
    audio = dataset / "train_audio"
    with open(dataset / "train_metadata.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header, rows = reader.fieldnames, list(reader)
    for case, writer in CASES:
        if writer is not None:
            path = audio / case.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            writer(path)
        rows.append({**dict.fromkeys(header, ""), "filename": case.filename, "primary_label": case.label,
                     "secondary_labels": case.secondary, "rating": "3.0", "author": "Recordist hostile"})
    with open(dataset / "train_metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return [case for case, _ in CASES]


def write_long_wav(path: Path, seconds: float, sr: int = 32000, block_seconds: float = 60.0) -> Path:
    """A long mono 16-bit WAV written a block at a time (the writer never holds it whole)."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        done = 0.0
        while done < seconds:
            n = int(min(block_seconds, seconds - done) * sr)
            t = (np.arange(n) + done * sr) / sr
            f.write((0.2 * np.sin(2 * np.pi * 1500 * t) + 0.02 * rng.standard_normal(n)).astype(np.float32))
            done += n / sr
    return path

