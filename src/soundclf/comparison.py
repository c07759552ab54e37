"""Experiments side by side: CV metrics, training time and paired per-fold differences
against a reference experiment; and the ensemble of experiments chosen on OOF scores."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .evaluation import recording_scores, recording_truth
from .metrics import classification_report
from .oof import METRIC_LEVELS

log = logging.getLogger(__name__)


def metric_of(cv: dict, name: str, fold: int | None = None) -> float:
    """A '<level>.<metric>' value of a cv_metrics.json: one fold's, or the mean over folds."""
    level, metric = split_metric(name)
    if fold is None:
        value = cv["mean_std"].get(level, {}).get(metric, {}).get("mean")
    else:
        value = next(f for f in cv["per_fold"] if f["fold"] == fold)[level].get(metric)
    return np.nan if value is None else float(value)


def split_metric(name: str) -> tuple[str, str]:
    level, _, metric = name.partition(".")
    if level not in METRIC_LEVELS or not metric:
        raise ValueError(f"metric {name!r}: write it as recording.<metric>, window.<metric> or window_weak.<metric> "
                         "(e.g. recording.padded_cmap, recording.accuracy)")
    return level, metric


def training_seconds(benchmarks: list[str]) -> list[float]:
    """Wall seconds of each training job, from Snakemake's benchmark files (NaN if missing)."""
    return [float(pd.read_csv(p, sep="\t")["s"].iloc[0]) if Path(p).is_file() else np.nan for p in benchmarks]


def comparison_table(cvs: dict[str, dict], benchmarks: dict[str, list[str]], reference: str, metric: str) -> pd.DataFrame:
    """One row per experiment: every CV metric (mean, std over folds, pooled OOF), training
    seconds per fold, and on `metric` the paired per-fold difference against `reference`
    (mean ± std) with the folds where the experiment beats it."""
    level, name = split_metric(metric)
    ref_folds = [f["fold"] for f in cvs[reference]["per_fold"]]
    rows = []
    for exp, cv in cvs.items():
        row = {"experiment": exp}
        for lvl, metrics in cv["mean_std"].items():
            for m, stat in metrics.items():
                row[f"{lvl}.{m}.mean"], row[f"{lvl}.{m}.std"] = stat["mean"], stat["std"]
        for m, value in cv["pooled"].get("recording", {}).items():
            row[f"pooled.recording.{m}"] = value
        seconds = training_seconds(benchmarks[exp])
        row["train_seconds_per_fold"] = float(np.nanmean(seconds)) if np.isfinite(seconds).any() else np.nan
        diffs = np.array([metric_of(cv, metric, k) - metric_of(cvs[reference], metric, k) for k in ref_folds])
        row[f"{metric}.diff_vs_{reference}.mean"] = float(np.nanmean(diffs))
        row[f"{metric}.diff_vs_{reference}.std"] = float(np.nanstd(diffs))
        row[f"{metric}.folds_won_vs_{reference}"] = f"{int((diffs > 0).sum())}/{len(diffs)}"
        rows.append(row)
    table = pd.DataFrame(rows)
    first = ["experiment", f"{level}.{name}.mean", f"{level}.{name}.std", f"{metric}.diff_vs_{reference}.mean",
             f"{metric}.diff_vs_{reference}.std", f"{metric}.folds_won_vs_{reference}", "train_seconds_per_fold"]
    return table[[c for c in first if c in table] + [c for c in table if c not in first]]


def oof_recording_scores(oof: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Recording scores (max over windows), sorted by key: experiments with different
    windows still align."""
    return recording_scores(oof, classes).sort_index()


def ensemble_score(members: list[pd.DataFrame], weights: list[float], truth: np.ndarray, metric: str,
                   nocall_threshold: float) -> float:
    scores = sum(w * m.to_numpy() for w, m in zip(weights, members)) / sum(weights)
    return float(classification_report(truth, scores, nocall_threshold).get(metric, np.nan))


def select_ensemble(scores: dict[str, pd.DataFrame], folds: pd.DataFrame, classes: list[str], metric: str,
                    max_size: int, members: list[str] | None, nocall_threshold: float) -> dict:
    """Greedy forward selection with replacement (Caruana et al. 2004) of the experiments
    whose averaged OOF recording scores maximise `metric`, or the plain mean of `members`.
    The score is measured on the same OOF it was chosen on: optimistic."""
    level, name = split_metric(metric)
    if level != "recording":
        raise ValueError(f"ensemble.metric {metric!r}: the ensemble is chosen on recording scores (recording.<metric>)")
    names = list(scores)
    keys = scores[names[0]].index
    truth = recording_truth(folds, keys, len(classes))
    frames = {n: scores[n].loc[keys] for n in names}
    single = {n: ensemble_score([frames[n]], [1.0], truth, name, nocall_threshold) for n in names}
    if members:
        unknown = sorted(set(members) - set(names))
        if unknown:
            raise ValueError(f"ensemble.members: {', '.join(unknown)} are not experiments ({', '.join(names)})")
        counts = {n: members.count(n) for n in dict.fromkeys(members)}
        trace = []
    else:
        picks, trace = [], []
        for _ in range(max_size):
            gains = {n: ensemble_score([frames[p] for p in picks + [n]], [1.0] * (len(picks) + 1), truth, name,
                                       nocall_threshold) for n in names}
            best = max(gains, key=lambda n: (gains[n], -names.index(n)))
            picks.append(best)
            trace.append({"added": best, "score": gains[best]})
        best_size = int(np.argmax([t["score"] for t in trace])) + 1  # the best prefix
        counts = {n: picks[:best_size].count(n) for n in dict.fromkeys(picks[:best_size])}
    total = sum(counts.values())
    weights = {n: c / total for n, c in counts.items()}
    score = ensemble_score([frames[n] for n in weights], list(weights.values()), truth, name, nocall_threshold)
    log.info("ensemble %s: OOF %s %.4f (best single: %s %.4f)", weights, metric, score,
             max(single, key=single.get), max(single.values()))
    return {"metric": metric, "weights": weights, "oof_score": score, "single_scores": single, "trace": trace,
            "note": "chosen and scored on the same OOF predictions: the score is optimistic"}


def nested_ensemble_scores(scores: dict[str, pd.DataFrame], folds: pd.DataFrame, classes: list[str], metric: str,
                           max_size: int, members: list[str] | None, nocall_threshold: float) -> dict:
    """An honest CV estimate of the ensemble: for each fold, the weights chosen (as
    select_ensemble does) on the other folds' OOF scores alone, scored on that fold."""
    _, name = split_metric(metric)
    fold_of = folds.set_index("key")["fold"]
    per_fold = []
    for k in sorted(folds["fold"].unique()):
        held_out = fold_of.index[fold_of == k]
        rest = {n: s.drop(held_out, errors="ignore") for n, s in scores.items()}
        choice = select_ensemble(rest, folds[folds["fold"] != k], classes, metric, max_size, members, nocall_threshold)
        keys = scores[next(iter(scores))].index.intersection(held_out)
        truth = recording_truth(folds, keys, len(classes))
        value = ensemble_score([scores[n].loc[keys] for n in choice["weights"]], list(choice["weights"].values()),
                               truth, name, nocall_threshold)
        per_fold.append({"fold": int(k), "weights": choice["weights"], "score": value})
    values = [f["score"] for f in per_fold]
    return {"per_fold": per_fold, "mean": float(np.nanmean(values)), "std": float(np.nanstd(values))}


def weighted_submission(submissions: dict[str, pd.DataFrame], weights: dict[str, float]) -> pd.DataFrame:
    """The weighted mean of the members' window probabilities (rows aligned on row_id)."""
    first = submissions[next(iter(weights))]
    for name in weights:
        if submissions[name]["row_id"].tolist() != first["row_id"].tolist():
            raise ValueError(f"experiment {name}'s prediction windows differ from the others': ensemble members "
                             "must share train.segment_seconds")
    classes = list(first.columns[1:])
    mean = sum(w * submissions[n][classes].to_numpy() for n, w in weights.items()) / sum(weights.values())
    return pd.concat([first[["row_id"]], pd.DataFrame(mean, columns=classes)], axis=1)
