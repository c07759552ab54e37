"""Experiments side by side: CV metrics, training time and paired per-fold differences
against a reference experiment; and the ensemble of experiments chosen on OOF scores (on
all folds: the deployed, optimistic choice; without each fold: the nested, honest one)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .scoring import recording_scores, recording_truth
from .metrics import classification_report
from .multilabel import lead_metrics
from .oof import METRIC_LEVELS, fold_summary

log = logging.getLogger(__name__)

NESTED_ENSEMBLE = "ensemble (nested)"  # its row in comparison.csv


def metric_of(cv: dict, name: str, fold: int | None = None) -> float:
    """A '<level>.<metric>' value of a cv_metrics.json: one fold's, or the mean over folds."""
    level, metric = split_metric(name)
    if fold is None:
        value = cv["mean_std"].get(level, {}).get(metric, {}).get("mean")
    else:
        value = next(f for f in cv["per_fold"] if f["fold"] == fold).get(level, {}).get(metric)
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
    (mean ± std) with the folds where the experiment beats it. A cv dict with no benchmark
    files (the nested ensemble's) gets no training seconds. The first columns are the lead
    metrics of the data (the reference's cv_metrics.json: macro ROC-AUC and padded cmAP on
    multi-label data, top-1 accuracy on single-label data), then `metric` and its differences."""
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
        seconds = training_seconds(benchmarks.get(exp, []))
        row["train_seconds_per_fold"] = float(np.nanmean(seconds)) if np.isfinite(seconds).any() else np.nan
        diffs = np.array([metric_of(cv, metric, k) - metric_of(cvs[reference], metric, k) for k in ref_folds])
        defined = diffs[np.isfinite(diffs)]  # none for the nested ensemble on a window metric
        row[f"{metric}.diff_vs_{reference}.mean"] = float(defined.mean()) if defined.size else np.nan
        row[f"{metric}.diff_vs_{reference}.std"] = float(defined.std()) if defined.size else np.nan
        row[f"{metric}.folds_won_vs_{reference}"] = f"{int((diffs > 0).sum())}/{len(diffs)}"
        rows.append(row)
    table = pd.DataFrame(rows)
    lead = [f"{m}.{stat}" for m in lead_metrics(cvs[reference]) if m != metric for stat in ("mean", "std")]
    first = ["experiment", *lead, f"{level}.{name}.mean", f"{level}.{name}.std", f"{metric}.diff_vs_{reference}.mean",
             f"{metric}.diff_vs_{reference}.std", f"{metric}.folds_won_vs_{reference}", "train_seconds_per_fold"]
    return table[[c for c in first if c in table] + [c for c in table if c not in first]]


def oof_recording_scores(oof: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Recording scores (max over windows), sorted by key: experiments with different
    windows still align."""
    return recording_scores(oof, classes).sort_index()


def member_scores(experiments: list[str], windows: list[str], classes: list[str]) -> dict[str, pd.DataFrame]:
    """Each experiment's recording scores from its fold window tables (`windows`: as many per
    experiment, experiment by experiment)."""
    n = len(windows) // len(experiments)
    return {exp: oof_recording_scores(pd.concat([pd.read_csv(path, dtype={"key": str})
                                                 for path in windows[i * n:(i + 1) * n]]), classes)
            for i, exp in enumerate(experiments)}


def fit_calibration(scores: pd.DataFrame, truth: np.ndarray) -> dict[str, float]:
    """Platt scaling of one member: a scale and an offset on the logit of its scores, fitted
    by logistic regression against the one-vs-rest truth of every (recording, class), so
    that members with softmax and sigmoid scores end on one scale (probabilities)."""
    from sklearn.linear_model import LogisticRegression

    y = truth.ravel()
    if y.min() == y.max():  # one kind of truth only: nothing to fit
        return {"scale": 1.0, "offset": 0.0}
    fit = LogisticRegression().fit(logit(scores.to_numpy()).reshape(-1, 1), y)  # L2 on the scale: finite if separable
    return {"scale": float(fit.coef_[0, 0]), "offset": float(fit.intercept_[0])}


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def calibrate(scores: pd.DataFrame, calibration: dict[str, float]) -> pd.DataFrame:
    """A member's scores mapped by its fitted calibration (monotone: a member's ranking stays)."""
    z = calibration["scale"] * logit(scores.to_numpy()) + calibration["offset"]
    return pd.DataFrame(1 / (1 + np.exp(-z)), index=scores.index, columns=scores.columns)


def calibrated_mean(members: dict[str, pd.DataFrame], weights: dict[str, float],
                    calibration: dict[str, dict] | None = None) -> np.ndarray:
    """The weighted mean of the members' aligned scores (class columns), each first mapped by
    its calibration (none given: as they are)."""
    total = sum(weights[n] for n in members)
    return sum(weights[n] * (calibrate(frame, calibration[n]) if calibration else frame).to_numpy()
               for n, frame in members.items()) / total


def ensemble_recording_scores(scores: dict[str, pd.DataFrame], choice: dict) -> pd.DataFrame:
    """The weighted mean of an ensemble's members' calibrated recording scores (on the first
    member's keys)."""
    weights = choice["weights"]
    first = scores[next(iter(weights))]
    mean = calibrated_mean({n: scores[n].loc[first.index] for n in weights}, weights, choice["calibration"])
    return pd.DataFrame(mean, index=first.index, columns=first.columns)


def ensemble_score(members: list[pd.DataFrame], weights: list[float], truth: np.ndarray, metric: str,
                   nocall_threshold: float) -> float:
    scores = sum(w * m.to_numpy() for w, m in zip(weights, members)) / sum(weights)
    return float(classification_report(truth, scores, nocall_threshold).get(metric, np.nan))


def select_ensemble(scores: dict[str, pd.DataFrame], folds: pd.DataFrame, classes: list[str], metric: str,
                    max_size: int, members: list[str] | None, nocall_threshold: float) -> dict:
    """Greedy forward selection with replacement (Caruana et al. 2004) of the experiments
    whose averaged calibrated OOF recording scores maximise `metric`, or the plain mean of
    `members`. Each member's calibration is fitted on the same scores. The score is measured
    on the scores it was chosen on: optimistic."""
    level, name = split_metric(metric)
    if level != "recording":
        raise ValueError(f"ensemble.metric {metric!r}: the ensemble is chosen on recording scores (recording.<metric>)")
    names = list(scores)
    keys = scores[names[0]].index
    truth = recording_truth(folds, keys, len(classes))
    calibration = {n: fit_calibration(scores[n].loc[keys], truth) for n in names}
    frames = {n: calibrate(scores[n].loc[keys], calibration[n]) for n in names}
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
    log.info("ensemble %s: %s %.4f on the scores it was chosen on (best single: %s %.4f)", weights, metric, score,
             max(single, key=single.get), max(single.values()))
    return {"metric": metric, "weights": weights, "calibration": {n: calibration[n] for n in weights},
            "optimistic_score": score, "single_scores": single, "trace": trace,
            "note": "chosen and scored on the same OOF predictions: optimistic_score is optimistic; "
                    "the honest figure is the nested ensemble's (ensemble/nested/cv_metrics.json, comparison.csv)"}


def nested_ensemble_cv(choices: dict[int, dict], scores: dict[str, pd.DataFrame], folds: pd.DataFrame,
                       classes: list[str], nocall_threshold: float) -> dict:
    """The nested ensemble's CV metrics, shaped as an experiment's cv_metrics.json (recording
    level): fold k's recordings scored by the ensemble chosen without fold k (`choices[k]`,
    select_ensemble on the other folds), each fold's metrics, their mean ± std, and pooled."""
    fold_of = folds.set_index("key")["fold"]
    per_fold, pooled = [], []
    for k, choice in sorted(choices.items()):
        held_out = {n: s[fold_of.loc[s.index].to_numpy() == k] for n, s in scores.items()}
        ensemble = ensemble_recording_scores(held_out, choice)
        truth = recording_truth(folds, ensemble.index, len(classes))
        report = classification_report(truth, ensemble.to_numpy(), nocall_threshold)
        per_fold.append({"fold": int(k), "recording": report, "weights": choice["weights"]})
        pooled.append(ensemble)
    pooled = pd.concat(pooled)
    truth = recording_truth(folds, pooled.index, len(classes))
    return {"n_folds": len(per_fold), "n_recordings": len(pooled), "per_fold": per_fold,
            "mean_std": fold_summary(per_fold),
            "pooled": {"recording": classification_report(truth, pooled.to_numpy(), nocall_threshold)}}


def weighted_submission(submissions: dict[str, pd.DataFrame], ensemble: dict) -> pd.DataFrame:
    """The weighted mean of the members' calibrated window probabilities (an ensemble.json's
    weights and calibration; rows aligned on row_id)."""
    weights = ensemble["weights"]
    first = submissions[next(iter(weights))]
    for name in weights:
        if submissions[name]["row_id"].tolist() != first["row_id"].tolist():
            raise ValueError(f"experiment {name}'s prediction windows differ from the others': ensemble members "
                             "must share train.segment_seconds")
    classes = list(first.columns[1:])
    mean = calibrated_mean({n: submissions[n][classes] for n in weights}, weights, ensemble["calibration"])
    return pd.concat([first[["row_id"]], pd.DataFrame(mean, columns=classes)], axis=1)
