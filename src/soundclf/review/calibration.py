"""Calibration from marks (Wood & Kahl 2024): per class, the probability that a window the model
scores s really holds the call, P(correct | s) = sigmoid(b0 + b1 logit(s)), fitted by logistic
regression on the reviewed windows; the score threshold for a target probability p is then
logit^-1((logit(p) - b0) / b1). Beside it:

- the threshold's 90 % interval from a bootstrap of the marks, and the observed precision of
  the marks at or above it with its 90 % Wilson interval;
- the precision-mode threshold: the lowest score above which the *mean* fitted probability of
  the source's windows reaches the target (what a detection list at that cut-off holds);
- call density (Perch): the share of windows that hold the call, from the stratified marks of
  each score-quantile bin (Beta(0.1 + yes, 0.1 + no) posterior per bin) weighted by the bin's share
  of the windows, per class and per site, with its 5-95 % interval. Per site it uses the
  site's own bin shares and the bins' pooled marks (a bin's rate of calls is assumed alike
  across sites: a site needs no marks of its own).

A mark counts as correct for 'yes', as wrong for 'no' and 'other' (another species); 'unsure'
marks are left out of the fit and counted. What the probability means: for windows of this
class drawn the way the review set was drawn, at the sites and season reviewed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

OUTCOMES = {"yes": 1, "no": 0, "other": 0}
EPS = 1e-6  # scores are clipped to [EPS, 1 - EPS] before the logit
RIDGE = 1e-2  # a weak L2 penalty on the slope: finite fits when the marks are separable
CALIBRATION_COLUMNS = ["class", "status", "n_marks", "n_yes", "n_no", "n_unsure", "b0", "b1", "target", "threshold",
                       "threshold_lo", "threshold_hi", "extrapolated", "n_above", "precision_above",
                       "precision_above_lo", "precision_above_hi", "precision_mode_threshold"]
DENSITY_COLUMNS = ["class", "site", "n_windows", "n_marks", "density", "density_lo", "density_hi"]
# Beta prior pseudo-counts per bin: larger ones lift a rare call's density in the large low bins, whose
# marks are mostly 'no' (a 2 % density simulated 20 times, 120 marks: the 90 % interval held the truth
# 10 times with Jeffreys' 0.5, 18 times with 0.1)
PRIOR = 0.1
Z90 = 1.6448536269514722  # two-sided 90 %


def logit(scores) -> np.ndarray:
    s = np.clip(np.asarray(scores, float), EPS, 1 - EPS)
    return np.log(s) - np.log1p(-s)


def sigmoid(x) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, float)))


def fit_logistic(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, iterations: int = 50
                 ) -> np.ndarray:
    """(b0, b1) of P(y = 1 | x) = sigmoid(b0 + b1 x) by Newton's method, for one fit (weights of
    shape (n,)) or many at once (weights (B, n): bootstrap counts) -> (2,) or (B, 2)."""
    single = weights is None or np.ndim(weights) == 1
    w = np.atleast_2d(np.ones(len(x)) if weights is None else weights).astype(float)
    design = np.stack([np.ones_like(x), x], axis=1)  # (n, 2)
    beta = np.zeros((len(w), 2))
    penalty = np.diag([0.0, RIDGE])
    for _ in range(iterations):
        p = sigmoid(beta @ design.T)  # (B, n)
        gradient = (w * (y - p)) @ design - beta * np.diag(penalty)
        hessian = np.einsum("bn,ni,nj->bij", w * p * (1 - p), design, design) + penalty
        step = np.linalg.solve(hessian + 1e-9 * np.eye(2), gradient[..., None])[..., 0]
        beta += step
        if np.abs(step).max() < 1e-8:
            break
    return beta[0] if single else beta


@dataclass
class LogisticCalibration:
    """P(correct | score) = sigmoid(b0 + b1 logit(score))."""

    b0: float
    b1: float

    def probability(self, scores) -> np.ndarray:
        return sigmoid(self.b0 + self.b1 * logit(scores))

    def threshold(self, target: float) -> float:
        """The score at which the fitted probability is `target` (NaN unless b1 > 0)."""
        return float(sigmoid((logit(target) - self.b0) / self.b1)) if self.b1 > 0 else float("nan")


def wilson(successes: int, n: int, z: float = Z90) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaNs when n is 0)."""
    if n == 0:
        return float("nan"), float("nan")
    p, z2 = successes / n, z * z
    centre, half = (p + z2 / (2 * n)) / (1 + z2 / n), z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return float(centre - half), float(centre + half)


def precision_mode_threshold(fit: LogisticCalibration, window_scores: np.ndarray, target: float) -> float:
    """The lowest window score t such that the mean fitted probability of the windows scoring
    at least t reaches `target` (NaN when even the top window's does not)."""
    scores = np.sort(np.asarray(window_scores, float))[::-1]
    if not len(scores) or fit.b1 <= 0:
        return float("nan")
    mean = np.cumsum(fit.probability(scores)) / np.arange(1, len(scores) + 1)
    reaching = np.flatnonzero(mean >= target)
    return float(scores[reaching[-1]]) if len(reaching) else float("nan")


def outcomes(marks: pd.DataFrame) -> pd.DataFrame:
    """The marks that decide (yes / no / other) with `correct` 0/1."""
    decided = marks[marks["mark"].isin(list(OUTCOMES))]
    return decided.assign(correct=decided["mark"].map(OUTCOMES).astype(int))


def calibrate_class(label: str, marks: pd.DataFrame, window_scores: np.ndarray, targets: list[float],
                    min_marks: int, n_boot: int, rng: np.random.Generator) -> list[dict]:
    """calibration.csv's rows of one class (one per target) from its marks (score, mark)."""
    decided = outcomes(marks)
    n_yes, n_no = int(decided["correct"].sum()), int((decided["correct"] == 0).sum())
    base = {"class": label, "n_marks": len(marks), "n_yes": n_yes, "n_no": n_no,
            "n_unsure": int((marks["mark"] == "unsure").sum())}
    if min(n_yes, n_no) < min_marks:
        lacking = "yes" if n_yes < min_marks else "no"
        status = (f"too few marks: {min(n_yes, n_no)} '{lacking}' of the {min_marks} needed of each outcome "
                  "(review more items of this class, or lower review.min_marks)")
        return [dict(base, status=status, target=t) for t in targets]
    x, y = logit(decided["score"]), decided["correct"].to_numpy(float)
    fit = LogisticCalibration(*fit_logistic(x, y))
    if fit.b1 <= 0:
        status = f"no threshold: the marks are not more often right at higher scores (slope {fit.b1:.3g})"
        return [dict(base, status=status, b0=fit.b0, b1=fit.b1, target=t) for t in targets]
    boot = fit_logistic(x, y, rng.multinomial(len(x), np.full(len(x), 1 / len(x)), size=n_boot))
    boot = boot[boot[:, 1] > 0]
    rows, scores = [], decided["score"].to_numpy(float)
    for target in targets:
        threshold = fit.threshold(target)
        spread = sigmoid((logit(target) - boot[:, 0]) / boot[:, 1]) if len(boot) else np.array([np.nan])
        above = y[scores >= threshold]
        lo, hi = wilson(int(above.sum()), len(above))
        rows.append(dict(base, status="ok", b0=fit.b0, b1=fit.b1, target=target, threshold=threshold,
                         threshold_lo=float(np.nanpercentile(spread, 5)), threshold_hi=float(np.nanpercentile(spread, 95)),
                         extrapolated=bool(threshold > scores.max()), n_above=len(above),
                         precision_above=float(above.mean()) if len(above) else np.nan,
                         precision_above_lo=lo, precision_above_hi=hi,
                         precision_mode_threshold=precision_mode_threshold(fit, window_scores, target)))
    return rows


def calibration_table(marks: pd.DataFrame, window_scores: dict[str, np.ndarray], targets: list[float],
                      min_marks: int = 5, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """CALIBRATION_COLUMNS for every class of `window_scores` from the current marks of a
    review set joined to its items (label, score, mark)."""
    rng = np.random.default_rng(seed)
    by_class = dict(tuple(marks.groupby("label")))
    rows = [row for label, scores in window_scores.items()
            for row in calibrate_class(label, by_class.get(label, marks.iloc[:0]), scores, targets, min_marks, n_boot, rng)]
    return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)


def fitted(calibration: pd.DataFrame) -> dict[str, LogisticCalibration]:
    """The classes that have a fit, from calibration.csv."""
    ok = calibration[calibration["status"] == "ok"].drop_duplicates("class")
    return {str(c): LogisticCalibration(float(b0), float(b1)) for c, b0, b1 in zip(ok["class"], ok["b0"], ok["b1"])}


def density_draws(bin_marks: pd.DataFrame, shares: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """Draws of sum_b share_b * p_b with p_b ~ Beta(PRIOR + yes_b, PRIOR + no_b) (stratified marks of
    each bin: columns bin, correct)."""
    yes = np.bincount(bin_marks["bin"], weights=bin_marks["correct"], minlength=len(shares))[: len(shares)]
    total = np.bincount(bin_marks["bin"], minlength=len(shares))[: len(shares)]
    rates = rng.beta(PRIOR + yes, PRIOR + total - yes, size=(n_draws, len(shares)))
    return rates @ shares


def call_density(marks: pd.DataFrame, bins: pd.DataFrame, site_bins: pd.DataFrame, n_draws: int = 4000,
                 seed: int = 0) -> pd.DataFrame:
    """DENSITY_COLUMNS per class (site '' = all windows) and per class and site, from the
    stratified items' marks (label, bin, site, mark, drawn_by) and the set's bin tables."""
    rng = np.random.default_rng(seed)
    decided = outcomes(marks[marks["drawn_by"] == "stratified"])
    rows = []
    for label, class_bins in bins.groupby("label", sort=False):
        class_bins = class_bins.sort_values("bin")
        class_marks = decided[decided["label"] == label]
        groups = [("", class_bins["n_windows"].to_numpy(float))]
        for site, counts in site_bins[site_bins["label"] == label].groupby("site", sort=True):
            groups.append((site, counts.set_index("bin")["n_windows"].reindex(class_bins["bin"], fill_value=0)
                           .to_numpy(float)))
        for site, counts in groups:
            draws = density_draws(class_marks, counts / max(counts.sum(), 1), n_draws, rng)
            rows.append({"class": label, "site": site, "n_windows": int(counts.sum()),
                         "n_marks": int(len(class_marks) if site == "" else (class_marks["site"] == site).sum()),
                         "density": float(draws.mean()), "density_lo": float(np.percentile(draws, 5)),
                         "density_hi": float(np.percentile(draws, 95))})
    return pd.DataFrame(rows, columns=DENSITY_COLUMNS)


def expected_calibration_error(probability: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    """ECE: the mean |observed share correct - mean probability| over equal-width probability
    bins, weighted by the bins' sizes."""
    probability, correct = np.asarray(probability, float), np.asarray(correct, float)
    which = np.minimum((probability * n_bins).astype(int), n_bins - 1)
    error = 0.0
    for b in np.unique(which):
        inside = which == b
        error += inside.mean() * abs(correct[inside].mean() - probability[inside].mean())
    return float(error)
