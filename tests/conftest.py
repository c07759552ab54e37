"""Shared fixtures: small audio files and a tiny generated dataset."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

TINY_DEMO = {"n_species": 3, "recordings_per_species": 4, "min_seconds": 3.0, "max_seconds": 8.0,
             "n_soundscapes": 1, "soundscape_seconds": 10, "n_authors": 4,
             "n_unlabeled_soundscapes": 3}


def tone(seconds: float, sr: int, freq: float = 1000.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def write(path: Path, data: np.ndarray, sr: int, fmt: str | None = None, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, format=fmt, subtype=subtype)
    return path


def snakemake_command(workdir: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run the repository's Snakefile in `workdir`."""
    cmd = SNAKEMAKE + ["-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2", *args]
    return cmd, dict(os.environ, PYTHONPATH=str(REPO / "src"))


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile with `workdir` as working directory."""
    cmd, env = snakemake_command(workdir, *args)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def mel_cache_dir(workdir: Path, *configfiles: str) -> str:
    """results/mels/<digest> of the first experiment of config.yaml + `configfiles` (in workdir)."""
    from soundclf import experiments

    return experiments.mel_cache_dir(experiments.load_config(*(workdir / name for name in configfiles)))


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A small demo-style dataset (metadata layout) written once per session; copy before mutating."""
    from soundclf.demo import DemoConfig, generate

    out = tmp_path_factory.mktemp("tiny_dataset")
    generate(out, DemoConfig(seed=3, **TINY_DEMO), progress=False)
    return out
