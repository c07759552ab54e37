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


# The files that take minutes, longest first: the two xdist workers (--dist loadfile, see
# pyproject.toml) start on them and fill in with the quick files, rather than ending on a
# SLURM run (mostly waiting on the scheduler) alone.
SLOW_FILES = ("test_slurm.py", "test_workflow.py", "test_killed_jobs.py", "test_embedding.py",
              "test_self_training.py", "test_resource_limits.py", "test_search.py", "test_workflow_inputs.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FILES)))  # stable: a file's own order kept


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


def upstream(inputs: dict[str, list[str]], target: str) -> set[str]:
    """Every file `target` is made from, directly or not, given each output's input files."""
    seen, todo = set(), [target]
    while todo:
        for path in inputs.get(todo.pop(), ()):
            if path not in seen:
                seen.add(path)
                todo.append(path)
    return seen


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


REVIEW_CLASSES = ["owl", "wren", "lark"]


def _call_clip(seconds: float, sr: int, freq: float, rng: np.random.Generator) -> np.ndarray:
    """Faint noise with three falling whistles in the clip's middle third (the scored window)."""
    clip = 0.01 * rng.standard_normal(int(seconds * sr))
    t = np.arange(int(0.18 * sr)) / sr
    call = 0.4 * np.sin(2 * np.pi * (freq * t - 0.5 * 2500 * t**2)) * np.hanning(len(t))
    for at in (0.1, 0.4, 0.7):  # of the window
        begin = int((1 + at) * seconds / 3 * sr)
        clip[begin : begin + len(t)] += call
    return clip.astype(np.float32)


def write_review_set(folder: Path, n_items: int = 9, clip_seconds: float = 3.0, sr: int = 16000) -> Path:
    """A small review set as the review_set rule writes it: items.csv, review.json and per item
    a mono 16-bit clip (the window with 1 s of context each side) and its spectrogram PNG."""
    import hashlib
    import json

    import matplotlib.pyplot as plt
    import pandas as pd

    (folder / "clips").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_items):
        item = "000000001234" if i == 0 else hashlib.sha1(str(i).encode()).hexdigest()[:12]  # one looks like a number
        label = REVIEW_CLASSES[i % len(REVIEW_CLASSES)]
        start = 5.0 * i + 2.0
        rows.append({"item": item, "file": f"site{i % 2 + 1}/rec{i // 3:02d}.wav", "start": start, "end": start + 1.0,
                     "label": label, "score": round(0.1 + 0.1 * i, 3), "bin": i % 3, "drawn_by": "stratified",
                     "site": f"site{i % 2 + 1}", "path": f"/data/site{i % 2 + 1}/rec{i // 3:02d}.wav",
                     "clip_start": start - 1.0, "clip_end": start - 1.0 + clip_seconds})
        clip = _call_clip(clip_seconds, sr, 2000.0 + 600 * (i % 3), rng)
        sf.write(folder / "clips" / f"{item}.wav", clip, sr, subtype="PCM_16")
        frames = np.lib.stride_tricks.sliding_window_view(clip, 512)[::160] * np.hanning(512)
        power = np.log10(np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-6).T  # frequency x time, whole clip
        plt.imsave(folder / "clips" / f"{item}.png", power, cmap="magma", origin="lower")
    pd.DataFrame(rows).to_csv(folder / "items.csv", index=False)
    (folder / "review.json").write_text(json.dumps({"name": folder.name, "classes": REVIEW_CLASSES,
                                                    "source": "oof", "experiment": "base"}))
    return folder


@pytest.fixture
def review_set(tmp_path) -> Path:
    """A fresh small review set (write_review_set) in tmp_path/review/demo."""
    return write_review_set(tmp_path / "review" / "demo")
