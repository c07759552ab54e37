"""A results folder read for exploration (notebooks/explore_results.ipynb): the tables each
stage wrote, the worst out-of-fold windows with their audio, and which stage has not run yet
when a table is missing. Figures come from soundclf.plots, as in the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .audio import load_mono, resample
from .scoring import recording_scores
from .indexing import read_classes, read_index
from .mel import LogMel, MelParams

# what a results folder holds after each stage, and the rule that writes it
STAGES = {
    "index": ("index/recordings.csv", "index_audio"),
    "folds": ("folds/folds.csv", "assign_folds"),
    "oof": ("experiments/{exp}/oof/oof_windows.csv", "aggregate_oof"),
    "comparison": ("experiments/comparison.csv", "compare_experiments"),
    "predictions": ("experiments/{exp}/predictions/submission.csv", "predict_recordings"),
}


class StageNotRun(FileNotFoundError):
    pass


class ResultsFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def file(self, stage: str, exp: str | None = "") -> Path:
        """The stage's table, or StageNotRun saying which rule writes it."""
        pattern, rule = STAGES[stage]
        if "{exp}" in pattern and not exp:
            raise StageNotRun(f"no experiment in {self.path / 'experiments'} has trained yet: the training stage "
                              "(rule train_fold) has not run yet; run `snakemake --profile local` and reopen")
        path = self.path / pattern.format(exp=exp)
        if not path.is_file():
            where = f" of experiment '{exp}'" if exp else ""
            raise StageNotRun(f"{path} is missing: the {stage} stage{where} (rule {rule}) has not run yet; "
                              f"run `snakemake --profile local` (or ask for {path}) and reopen")
        return path

    def status(self) -> pd.DataFrame:
        """One row per stage (and experiment): done or not, and the file it looks for."""
        rows = []
        for stage, (pattern, rule) in STAGES.items():
            for exp in (self.experiments() or ["?"]) if "{exp}" in pattern else [""]:
                path = self.path / pattern.format(exp=exp)
                rows.append({"stage": stage, "experiment": exp, "rule": rule, "done": path.is_file(), "file": str(path)})
        return pd.DataFrame(rows)

    def experiments(self) -> list[str]:
        folder = self.path / "experiments"
        return sorted(p.name for p in folder.iterdir() if (p / "models").is_dir()) if folder.is_dir() else []

    def folds(self) -> pd.DataFrame:
        return read_index(self.file("folds"))

    def classes(self) -> list[str]:
        self.file("index")
        return read_classes(self.path / "index/classes.csv")

    def comparison(self) -> pd.DataFrame:
        return pd.read_csv(self.file("comparison"))

    def cv_metrics(self, exp: str) -> dict:
        return json.loads((self.file("oof", exp).parent / "cv_metrics.json").read_text())

    def per_class(self, exp: str) -> pd.DataFrame:
        return pd.read_csv(self.file("oof", exp).parent / "per_class.csv")

    def oof(self, exp: str) -> pd.DataFrame:
        return pd.read_csv(self.file("oof", exp), dtype={"key": str})

    def submission(self, exp: str) -> pd.DataFrame:
        return pd.read_csv(self.file("predictions", exp))

    def worst_windows(self, exp: str, n: int = 5) -> pd.DataFrame:
        """The OOF recordings whose primary label scored lowest (at recording level), each with
        the window where it scored highest and the class that won there."""
        oof, folds, classes = self.oof(exp), self.folds(), self.classes()
        labelled = folds[folds["class_id"] >= 0].set_index("key")
        scores = recording_scores(oof, classes).loc[lambda s: s.index.isin(labelled.index)]
        truth = labelled.loc[scores.index, "primary_label"]
        own = pd.Series([scores.at[k, c] for k, c in truth.items()], index=scores.index)
        rows = []
        for key in own.sort_values().index[:n]:
            windows = oof[oof["key"] == key]
            best = windows.loc[windows[truth[key]].idxmax()]
            top = best[classes].astype(float).idxmax()
            rows.append({"key": key, "label": truth[key], "score": own[key], "start": best["start"], "end": best["end"],
                         "top_class": top, "top_score": float(best[top]), "path": labelled.at[key, "path"]})
        return pd.DataFrame(rows)


def window_audio(path: str | Path, start: float, end: float) -> tuple[np.ndarray, int]:
    """The samples of one window of a recording (mono, its own rate)."""
    wave, rate = load_mono(path)
    return wave[int(start * rate): int(end * rate)], rate


def log_mel(wave: np.ndarray, rate: int, params: MelParams | None = None) -> np.ndarray:
    """The log-mel (n_mels, frames) of a waveform, as the mel cache computes it (default params)."""
    params = params or MelParams()
    wave = resample(wave, rate, params.sample_rate)
    return LogMel(params)(torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None])[0].numpy()
