"""A synthetic bird-call dataset that imitates the real problem, deterministic from a seed.

Ten "species" with distinct call shapes call at random, unrecorded times over coloured
noise; recordings carry weak labels (and sometimes a secondary species), come in mixed
formats, sample rates and channel counts; 60 s soundscapes carry per-5 s-window labels.
Every call is also written to a Raven selection table per recording and soundscape
(annotations/, soundscape_annotations/): the strong labels. With n_archive_recordings, an
unlabeled archive of soundscapes in site folders (archive/) where, beside the labelled
species, one that has no training labels calls ("hooter", in every other recording, and
always at ARCHIVE_EXAMPLE: the example call a search starts from); archive_annotations/ holds
its hidden truth, for checking what a search finds.

    python -m soundclf.demo results/demo --seed 0
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.fft import irfft, next_fast_len, rfft

from .annotations import write_raven_table
from .atomic import atomic_path, write_csv

SAMPLE_RATES = (16000, 22050, 32000, 44100, 48000)
FORMATS = {"ogg": ("OGG", "VORBIS"), "flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16")}
# libsndfile hangs on one Vorbis write of >= 120 s; write every format in 10 s blocks.
_WRITE_BLOCK_SECONDS = 10


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    n_species: int = 10
    recordings_per_species: int = 12
    min_seconds: float = 5.0
    max_seconds: float = 60.0
    secondary_fraction: float = 0.3
    stereo_fraction: float = 0.2
    n_authors: int = 24
    n_soundscapes: int = 4
    n_unlabeled_soundscapes: int = 0
    n_archive_recordings: int = 0
    soundscape_seconds: int = 60
    soundscape_sample_rate: int = 32000

    @classmethod
    def from_dict(cls, values: dict) -> "DemoConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# --- call shapes ---------------------------------------------------------------------------
# Each takes (sample rate, pitch factor, duration factor, rng) and returns one call in [-1, 1].


def _sine(freq: np.ndarray, sr: int) -> np.ndarray:
    return np.sin(2 * np.pi * np.cumsum(freq) / sr)


def _envelope(n: int, ramp: float = 0.15) -> np.ndarray:
    k = max(1, int(n * ramp))
    env = np.ones(n)
    env[:k] = np.sin(np.linspace(0, np.pi / 2, k)) ** 2
    env[-k:] = env[:k][::-1]
    return env


def _n(sr: int, seconds: float) -> int:
    return max(16, int(sr * seconds))


def whistle(sr, p, d, rng):
    n = _n(sr, 0.6 * d)
    return _sine(np.full(n, 2800.0 * p), sr) * _envelope(n)


def upsweep(sr, p, d, rng):
    n = _n(sr, 0.4 * d)
    return _sine(np.linspace(1800, 4500, n) * p, sr) * _envelope(n)


def downsweep(sr, p, d, rng):
    n = _n(sr, 0.35 * d)
    return _sine(np.linspace(5500, 2500, n) * p, sr) * _envelope(n)


def trill(sr, p, d, rng):
    n = _n(sr, 1.2 * d)
    t = np.arange(n) / sr
    am = 0.5 * (1 + np.sin(2 * np.pi * 35 * t)) ** 2 / 2
    return _sine(np.full(n, 3800.0 * p), sr) * am * _envelope(n)


def harmonic_stack(sr, p, d, rng):
    n = _n(sr, 0.5 * d)
    f0 = np.full(n, 700.0 * p)
    out = sum(_sine(f0 * h, sr) / h for h in range(1, 7))
    return out / 2.45 * _envelope(n)


def buzz(sr, p, d, rng):
    n = _n(sr, 0.8 * d)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    spectrum[(freqs < 2500 * p) | (freqs > 6300 * p)] = 0
    band = np.fft.irfft(spectrum, n)
    band /= np.abs(band).max() + 1e-9
    t = np.arange(n) / sr
    pulses = (np.sin(2 * np.pi * 120 * t) > 0).astype(float)
    return band * (0.3 + 0.7 * pulses) * _envelope(n)


def croak(sr, p, d, rng):
    pulse_n, gap_n = _n(sr, 0.04 * d), _n(sr, 0.06 * d)
    f0 = np.full(pulse_n, 250.0 * p)
    pulse = sum(_sine(f0 * h, sr) / h for h in range(1, 5)) / 2.1 * _envelope(pulse_n, 0.3)
    return np.concatenate([np.concatenate([pulse, np.zeros(gap_n)]) for _ in range(5)])


def warble(sr, p, d, rng):
    n = _n(sr, 1.0 * d)
    t = np.arange(n) / sr
    return _sine((3200 + 600 * np.sin(2 * np.pi * 9 * t)) * p, sr) * _envelope(n)


def two_note(sr, p, d, rng):
    a, b = _n(sr, 0.2 * d), _n(sr, 0.25 * d)
    return np.concatenate([
        _sine(np.full(a, 3000.0 * p), sr) * _envelope(a),
        np.zeros(_n(sr, 0.05)),
        _sine(np.full(b, 2200.0 * p), sr) * _envelope(b),
    ])


def chip_series(sr, p, d, rng):
    chip_n, gap_n = _n(sr, 0.03 * d), _n(sr, 0.08 * d)
    chip = _sine(np.linspace(6300, 5000, chip_n) * p, sr) * _envelope(chip_n, 0.3)
    return np.concatenate([np.concatenate([chip, np.zeros(gap_n)]) for _ in range(4)])


CALL_SHAPES: dict[str, Callable] = {
    "whistler": whistle,
    "upsweeper": upsweep,
    "downsweeper": downsweep,
    "triller": trill,
    "harmonist": harmonic_stack,
    "buzzer": buzz,
    "croaker": croak,
    "warbler": warble,
    "twonoter": two_note,
    "chipper": chip_series,
}


def hoot(sr, p, d, rng):
    n = _n(sr, 0.7 * d)
    t = np.arange(n) / sr
    f0 = (450 + 80 * np.sin(2 * np.pi * 3 * t)) * p
    return sum(_sine(f0 * h, sr) / h for h in (1, 2, 3)) / 1.8 * _envelope(n)


# calls only in the demo's archive: a species nobody labelled, for search by example
UNLABELLED_SHAPES: dict[str, Callable] = {"hooter": hoot}
# (file under archive/, start s, end s): a hooter call always sits here, the demo search's example
ARCHIVE_EXAMPLE = ("site_1/archive_000.ogg", 6.0, 9.0)
ALL_SHAPES = CALL_SHAPES | UNLABELLED_SHAPES


# --- scenes ----------------------------------------------------------------------------------


def coloured_noise(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with a 1/f^alpha power spectrum (alpha 1: pink, 2: brown), unit RMS."""
    m = next_fast_len(n, real=True)  # FFTs of awkward (e.g. prime) lengths are very slow
    spectrum = rfft(rng.standard_normal(m).astype(np.float32))
    freqs = np.fft.rfftfreq(m).astype(np.float32)
    freqs[0] = freqs[1]
    noise = irfft(spectrum / freqs ** (alpha / 2), m)[:n]
    return noise / (noise.std() + 1e-12)


def place_calls(scene, species, sr, rate_per_s, level, rng, events=None, start=0.0, stop=None):
    """Add calls of one species at random times (Poisson, `rate_per_s`), each jittered in
    pitch (±8 %), duration (±20 %) and level (±6 dB). Records (species, t0, t1) in `events`."""
    stop = min(len(scene) / sr, stop or np.inf)
    t = start + rng.exponential(1 / rate_per_s)
    while t < stop:
        t += add_call(scene, species, sr, t, level, rng, events) + rng.exponential(1 / rate_per_s)


def add_call(scene, species, sr, t, level, rng, events=None) -> float:
    """Add one call of `species` at `t` s (jittered as place_calls says); returns its length in s."""
    call = ALL_SHAPES[species](sr, rng.uniform(0.92, 1.08), rng.uniform(0.8, 1.2), rng)
    i0 = int(t * sr)
    i1 = min(len(scene), i0 + len(call))
    gain = level * 10 ** (rng.uniform(-6, 6) / 20)
    scene[i0:i1] += gain * call[: i1 - i0]
    if events is not None:
        events.append((species, i0 / sr, i1 / sr))
    return len(call) / sr


def write_audio(path: Path, data: np.ndarray, sr: int) -> None:
    fmt, subtype = FORMATS[path.suffix.lstrip(".")]
    with atomic_path(path) as tmp:
        with sf.SoundFile(tmp, "w", sr, data.shape[1] if data.ndim > 1 else 1, subtype, format=fmt) as f:
            step = _WRITE_BLOCK_SECONDS * sr
            for i in range(0, len(data), step):
                f.write(data[i : i + step])


def _normalise(scene: np.ndarray) -> np.ndarray:
    peak = np.abs(scene).max()
    return (scene * (0.95 / peak) if peak > 0.95 else scene).astype(np.float32)


def make_recording(species, secondary, seconds, sr, rng, events=None):
    """One training recording; its calls (species, start s, end s) are added to `events`."""
    n = int(seconds * sr)
    noise_rms = rng.uniform(0.003, 0.02)
    scene = coloured_noise(n, rng.uniform(0.5, 2.0), rng) * noise_rms
    snr_db = rng.uniform(0, 20)
    level = noise_rms * 10 ** (snr_db / 20) * np.sqrt(2)
    calls: list[tuple[str, float, float]] = []
    place_calls(scene, species, sr, rng.uniform(0.3, 0.8), level, rng, calls)
    if secondary:
        place_calls(scene, secondary, sr, rng.uniform(0.05, 0.2), level * 0.5, rng, calls)
    if rng.random() < 0.1:  # a stretch of digital silence, as from a muted recorder
        s0 = rng.uniform(0, seconds * 0.7)
        i0, i1 = int(s0 * sr), int((s0 + rng.uniform(1, 3)) * sr)
        scene[i0:i1] = 0
        calls = silence_events(calls, i0 / sr, min(i1, n) / sr)
    if events is not None:
        events.extend(calls)
    return _normalise(scene)


def silence_events(events, start, end):
    """The parts of (species, t0, t1) events that lie outside the silenced span [start, end)."""
    kept = []
    for species, a, b in events:
        kept += [(species, x, y) for x, y in ((a, min(b, start)), (max(a, end), b)) if y > x]
    return kept


def make_soundscape(species: list[str], cfg: DemoConfig, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """A soundscape (coloured noise, 3-5 species calling in one or two bouts each, leaving
    windows without them) and its (species, t0, t1) calls."""
    sr = cfg.soundscape_sample_rate
    scene = coloured_noise(cfg.soundscape_seconds * sr, rng.uniform(0.8, 1.5), rng) * rng.uniform(0.005, 0.015)
    events: list[tuple[str, float, float]] = []
    for sp in rng.choice(species, size=min(len(species), int(rng.integers(3, 6))), replace=False):
        for _ in range(int(rng.integers(1, 3))):
            t0 = rng.uniform(0, cfg.soundscape_seconds - 8)
            place_calls(scene, str(sp), sr, rng.uniform(0.4, 1.0), 0.1 * rng.uniform(0.3, 1.0), rng,
                        events, start=t0, stop=t0 + rng.uniform(4, 15))
    return _normalise(scene), events


def make_archive_recording(i: int, species: list[str], cfg: DemoConfig, rng: np.random.Generator
                           ) -> tuple[np.ndarray, list]:
    """Archive recording i: a soundscape of the labelled species, and in every other one (the
    first always, with a call inside ARCHIVE_EXAMPLE) a bout of the unlabelled hooter."""
    scene, events = make_soundscape(species, cfg, rng)
    if i % 2 == 0:
        sr, level = cfg.soundscape_sample_rate, 0.1 * rng.uniform(0.5, 1.0)
        if i == 0:
            add_call(scene, "hooter", sr, ARCHIVE_EXAMPLE[1] + 0.5, level, rng, events)
        t0 = rng.uniform(10, cfg.soundscape_seconds - 10)
        place_calls(scene, "hooter", sr, 0.8, level, rng, events, start=t0, stop=t0 + rng.uniform(4, 10))
    return _normalise(scene), events


def generate(out_dir: str | Path, cfg: DemoConfig = DemoConfig(), progress: bool = True) -> dict[str, Path]:
    """Write the demo dataset under out_dir; returns the paths of its parts."""
    if not 2 <= cfg.n_species <= len(CALL_SHAPES):
        raise ValueError(f"demo.n_species must be between 2 and {len(CALL_SHAPES)}, got {cfg.n_species}")
    out = Path(out_dir)
    audio_dir, scape_dir, unlabeled_dir = out / "train_audio", out / "soundscapes", out / "unlabeled_soundscapes"
    annotation_dir, scape_annotation_dir = out / "annotations", out / "soundscape_annotations"
    archive_dir, archive_annotation_dir = out / "archive", out / "archive_annotations"
    for d in (audio_dir, scape_dir, unlabeled_dir, annotation_dir, scape_annotation_dir, archive_dir,
              archive_annotation_dir):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    rng = np.random.default_rng(cfg.seed)
    species = list(CALL_SHAPES)[: cfg.n_species]
    authors = [f"Recordist {i:02d}" for i in range(cfg.n_authors)]
    rows, started, xc = [], time.time(), 100000
    for label in species:
        for _ in range(cfg.recordings_per_species):
            xc += int(rng.integers(1, 5000))
            # log-uniform lengths: many short recordings, a few long ones, as in xeno-canto
            seconds = float(np.exp(rng.uniform(np.log(cfg.min_seconds), np.log(cfg.max_seconds))))
            others = [s for s in species if s != label]
            secondary = str(rng.choice(others)) if rng.random() < cfg.secondary_fraction else None
            sr = int(rng.choice(SAMPLE_RATES))
            ext = str(rng.choice(list(FORMATS), p=[0.4, 0.3, 0.3]))
            calls: list[tuple[str, float, float]] = []
            wave = make_recording(label, secondary, seconds, sr, rng, calls)
            if rng.random() < cfg.stereo_fraction:
                right = wave * rng.uniform(0.6, 1.0) + rng.standard_normal(len(wave)).astype(np.float32) * 1e-3
                wave = np.stack([wave, np.clip(right, -1, 1)], axis=1)
            filename = f"{label}/XC{xc}.{ext}"
            (audio_dir / label).mkdir(exist_ok=True)
            write_audio(audio_dir / filename, wave, sr)
            write_raven_table(annotation_dir / f"{label}/XC{xc}.Table.1.selections.txt", calls,
                              low_high_hz=(0.0, sr / 2))
            rows.append({
                "primary_label": label,
                "secondary_labels": str([secondary] if secondary else []),
                "filename": filename,
                "rating": float(rng.choice([2.5, 3.0, 3.5, 4.0, 4.5, 5.0])),
                "author": str(rng.choice(authors)),
            })
        if progress:
            print(f"demo: {label}: {cfg.recordings_per_species} recordings ({time.time() - started:.1f} s)", flush=True)
    write_csv(pd.DataFrame(rows), out / "train_metadata.csv")

    labels = []
    sr, window = cfg.soundscape_sample_rate, 5
    for i in range(cfg.n_soundscapes):
        scene, events = make_soundscape(species, cfg, rng)
        stem = f"soundscape_{i:02d}"
        write_audio(scape_dir / f"{stem}.ogg", scene, sr)
        write_raven_table(scape_annotation_dir / f"{stem}.Table.1.selections.txt", events, low_high_hz=(0.0, sr / 2))
        for end in range(window, cfg.soundscape_seconds + 1, window):
            present = sorted({sp for sp, a, b in events if min(b, end) - max(a, end - window) >= min(0.1, (b - a) / 2)})
            labels.append({"row_id": f"{stem}_{end}", "soundscape": stem, "start": end - window, "end": end,
                           "birds": " ".join(present) if present else "nocall"})
    write_csv(pd.DataFrame(labels), out / "soundscape_labels.csv")
    # drawn after everything else: the labelled data is the same with or without them
    for i in range(cfg.n_unlabeled_soundscapes):
        write_audio(unlabeled_dir / f"unlabeled_{i:03d}.ogg", make_soundscape(species, cfg, rng)[0], sr)
    for i in range(cfg.n_archive_recordings):
        key = f"site_{i % 3 + 1}/archive_{i:03d}.ogg"
        scene, events = make_archive_recording(i, species, cfg, rng)
        (archive_dir / key).parent.mkdir(exist_ok=True)
        write_audio(archive_dir / key, scene, sr)
        write_raven_table(archive_annotation_dir / key.replace(".ogg", ".Table.1.selections.txt"), events,
                          low_high_hz=(0.0, sr / 2))
    if progress:
        print(f"demo: {len(rows)} recordings, {cfg.n_soundscapes} soundscapes, {cfg.n_unlabeled_soundscapes} "
              f"unlabeled ones and {cfg.n_archive_recordings} archive ones in {time.time() - started:.1f} s", flush=True)
    return {"audio_dir": audio_dir, "metadata": out / "train_metadata.csv",
            "soundscapes": scape_dir, "soundscape_labels": out / "soundscape_labels.csv",
            "annotations": annotation_dir, "soundscape_annotations": scape_annotation_dir,
            "unlabeled_soundscapes": unlabeled_dir, "archive": archive_dir, "archive_annotations": archive_annotation_dir}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m soundclf.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default="results/demo")
    defaults = DemoConfig()
    for f in fields(DemoConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)),
                            default=getattr(defaults, f.name))
    args = vars(parser.parse_args(argv))
    out_dir = args.pop("out_dir")
    os.makedirs(out_dir, exist_ok=True)
    generate(out_dir, DemoConfig(**args))


if __name__ == "__main__":
    main()

