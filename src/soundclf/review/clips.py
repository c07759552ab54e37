"""What the review page plays and shows for each item: the window with some context before and
after it, as a 16-bit mono WAV at the project's sample rate, and its log-mel spectrogram made
with the project's own mel settings as a PNG whose x axis is the clip's time, linearly, edge to
edge (the page draws its play cursor and the window's bounds on it)."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from ..audio import AudioDecodeError, stream_mono  # noqa: E402
from ..mel import LogMel, MelParams  # noqa: E402

log = logging.getLogger(__name__)


def read_span(path: str | Path, sample_rate: int, end_seconds: float) -> np.ndarray:
    """The file's mono samples at `sample_rate` from its start up to `end_seconds` (decoding
    stops there: a review item near the start of an hour-long file reads seconds, not the hour)."""
    needed, blocks, have = int(np.ceil(end_seconds * sample_rate)), [], 0
    for block in stream_mono(path, sample_rate):
        blocks.append(block)
        have += len(block)
        if have >= needed:
            break
    return np.concatenate(blocks)[:needed] if blocks else np.zeros(0, np.float32)


def spectrogram_image(wave: np.ndarray, logmel: LogMel, path: Path) -> None:
    """The clip's log-mel, each band from its median up, scaled into [0, 1]; low frequencies at
    the bottom, one pixel per frame and mel band (the page scales it)."""
    with torch.no_grad():
        mel = logmel(torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None])[0].numpy()
    # each band above its own median level (the clip's background in that band) up to the
    # loudest: calls stand out of the noise as they do to the ear, where a fixed dB range shows
    # mostly the noise's slope over frequency
    above = mel - np.median(mel, axis=1, keepdims=True)
    image = np.clip(above / max(float(above.max()), 1e-6), 0.0, 1.0)
    with atomic_path(path) as tmp:
        plt.imsave(tmp, image, cmap="magma", origin="lower", vmin=0.0, vmax=1.0, format="png")


def write_clips(items: pd.DataFrame, mel_params: MelParams, context_seconds: float, clips_dir: str | Path
                ) -> pd.DataFrame:
    """Each item's clip (<item>.wav) and spectrogram (<item>.png) under clips_dir; the items
    with the clip's bounds (clip_start, clip_end: seconds within the recording). A recording
    that cannot be decoded loses its items, with a warning naming it."""
    clips_dir = Path(clips_dir)
    clips_dir.mkdir(parents=True, exist_ok=True)
    sr, logmel = mel_params.sample_rate, LogMel(mel_params)
    kept = []
    for path, rows in items.groupby("path", sort=False):
        clip_start = (rows["start"] - context_seconds).clip(lower=0.0)
        try:
            wave = read_span(path, sr, float((rows["end"] + context_seconds).max()))
        except AudioDecodeError as err:
            log.warning("review items of %s left out: %s", path, err.reason)
            continue
        rows = rows.assign(clip_start=clip_start, clip_end=np.minimum(rows["end"] + context_seconds, len(wave) / sr))
        for item, a, b in zip(rows["item"], rows["clip_start"], rows["clip_end"]):
            clip = wave[int(round(a * sr)) : int(round(b * sr))]
            with atomic_path(clips_dir / f"{item}.wav") as tmp:
                sf.write(tmp, clip, sr, subtype="PCM_16", format="WAV")
            spectrogram_image(clip, logmel, clips_dir / f"{item}.png")
        kept.append(rows)
        log.info("clips of %d item(s) from %s", len(rows), path)
    columns = list(items.columns) + ["clip_start", "clip_end"]
    return pd.concat(kept, ignore_index=True)[columns] if kept else pd.DataFrame(columns=columns)
