"""Shared pieces of the benchmarks: the machine description, a timer, generated test audio.

Everything is written under results/bench/ (git-ignored)."""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "results" / "bench"


RESULTS_JSON = Path(__file__).parent / "results.json"


def record_figures(figures: dict) -> None:
    """Merge `figures` (flat: figure name -> number or string) into bench/results.json, so
    that a benchmark run alone updates its own figures and keeps the others'."""
    import json

    known = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    RESULTS_JSON.write_text(json.dumps(known | figures, indent=1, sort_keys=True) + "\n")


def machine() -> str:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}")


@contextmanager
def timed(result: dict, key: str):
    start = time.perf_counter()
    yield
    result[key] = time.perf_counter() - start


def field_recording(seconds: float, sr: int, seed: int) -> np.ndarray:
    """Coloured noise with chirping calls: content that compresses like a field recording."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    noise = np.cumsum(rng.standard_normal(n)).astype(np.float32)
    noise = 0.05 * (noise - np.convolve(noise, np.ones(64) / 64, mode="same")) / (noise.std() + 1e-9)
    t = np.arange(n) / sr
    calls = 0.3 * np.sin(2 * np.pi * (2000 + 800 * np.sin(2 * np.pi * 0.7 * t)) * t) * (np.sin(2 * np.pi * 0.5 * t) > 0.6)
    return (noise + calls).astype(np.float32)


def audio_set(name: str, fmt: str, n_files: int, seconds: float, sr: int = 32000) -> list[Path]:
    """n_files generated recordings in one format (OGG Vorbis or FLAC), written once."""
    folder = WORK / "audio" / f"{name}_{fmt}_{n_files}x{seconds:g}s_{sr}"
    files = [folder / f"rec_{i:03d}.{fmt}" for i in range(n_files)]
    if not all(f.exists() for f in files):
        folder.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(files):
            subtype = "VORBIS" if fmt == "ogg" else "PCM_16"
            wave = field_recording(seconds, sr, i)
            # in 10 s blocks: libsndfile's Vorbis encoder crashes on some long single writes
            with sf.SoundFile(path, "w", sr, 1, subtype=subtype, format=fmt.upper()) as f:
                for start in range(0, len(wave), 10 * sr):
                    f.write(wave[start : start + 10 * sr])
    return files


def run_workflow(workdir: Path, configfiles: list[str], targets: list[str] = ()) -> float:
    """Seconds the workflow takes in `workdir` with the local profile (all cores)."""
    started = time.time()
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--profile",
           str(REPO / "profiles/local"), *targets, "--configfile", *(str(Path(c).resolve()) for c in configfiles)]
    subprocess.run(cmd, check=True, cwd=workdir, env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    return time.time() - started


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def git(mirror: str | Path, *args: str) -> bytes:
    """stdout of a git command on a bare mirror that the fetch tool brought (prepare_*.py)."""
    return subprocess.run(["git", "--git-dir", str(mirror), *args], check=True, capture_output=True).stdout


def read_blob(mirror: str | Path, blob: str, path: str) -> bytes:
    """A file's bytes from the mirror, checked against its git blob id (CalledProcessError
    when the snapshot left it out)."""
    data = git(mirror, "cat-file", "blob", blob)
    if hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() != blob:
        raise SystemExit(f"{path}: content does not match its git blob id")
    return data
