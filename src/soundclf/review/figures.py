"""The calibration report's figures: per class, the marks along the score, the fitted curve,
the observed precision per score bin (a reliability diagram) and the thresholds; and the call
density per class with its interval."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..plots import plt, save_figure
from .calibration import logit, outcomes, sigmoid, wilson

TICKS = np.array([0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999])


def calibration_curves(marks: pd.DataFrame, calibration: pd.DataFrame, path: str | Path, n_top: int = 12) -> None:
    """A panel per class (the n_top with most decided marks): marks at 0 / 1 (jittered) against
    logit(score), the observed share correct per score bin with 90 % Wilson bars, the fitted
    curve and the threshold of each target probability."""
    decided = outcomes(marks)
    classes = decided["label"].value_counts().index[:n_top].tolist() or calibration["class"].drop_duplicates()[:1].tolist()
    n_cols = min(3, max(len(classes), 1))
    n_rows = int(np.ceil(max(len(classes), 1) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.2 * n_rows), squeeze=False)
    rng = np.random.default_rng(0)
    grid = np.linspace(logit(TICKS[0]), logit(TICKS[-1]), 200)
    for ax, label in zip(axes.flat, classes):
        rows = decided[decided["label"] == label]
        x, y = logit(rows["score"]), rows["correct"].to_numpy()
        ax.scatter(x, y + rng.uniform(-0.04, 0.04, len(y)), s=10, alpha=0.5, color="0.3", label="marks")
        for b, in_bin in rows.groupby("bin"):
            lo, hi = wilson(int(in_bin["correct"].sum()), len(in_bin))
            share, centre = in_bin["correct"].mean(), logit(in_bin["score"]).mean()
            bars = [[max(share - lo, 0.0)], [max(hi - share, 0.0)]]  # Wilson's ends can miss 0 / 1 by rounding
            ax.errorbar(centre, share, yerr=bars, fmt="s", color="tab:blue", ms=5,
                        label="share correct per bin" if b == rows["bin"].min() else None)
        fit = calibration[(calibration["class"] == label)].iloc[0]
        if fit["status"] == "ok":
            ax.plot(grid, sigmoid(fit["b0"] + fit["b1"] * grid), color="tab:red", label="fitted P(correct)")
            for _, row in calibration[calibration["class"] == label].iterrows():
                ax.axvline(logit(row["threshold"]), color="tab:green", ls=":", lw=1)
                ax.text(logit(row["threshold"]), 0.5, f" p={row['target']:g}", rotation=90, fontsize=7, va="center")
        else:
            ax.text(0.5, 0.5, "no fit:\n" + str(fit["status"])[:60], transform=ax.transAxes, ha="center", fontsize=7)
        ax.set_title(f"{label} ({len(rows)} marks)", fontsize=9)
        ax.set_xticks(logit(TICKS), [f"{t:g}" for t in TICKS], fontsize=7)
        ax.set_ylim(-0.1, 1.1)
    for ax in axes.flat[len(classes):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.supxlabel("model score (logit scale)")
    fig.supylabel("correct (marks) / P(correct)")
    save_figure(fig, path)


def call_density_bars(density: pd.DataFrame, path: str | Path, n_top: int = 30) -> None:
    """Each class's estimated share of windows that hold its call (all sites), 5-95 % bars."""
    overall = density[density["site"] == ""].sort_values("density", ascending=False).head(n_top)
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(overall) + 1.2))
    y = np.arange(len(overall))[::-1]
    ax.errorbar(overall["density"], y, xerr=[overall["density"] - overall["density_lo"],
                                             overall["density_hi"] - overall["density"]], fmt="o", color="tab:blue")
    ax.set_yticks(y, overall["class"], fontsize=8)
    ax.set_xlabel("call density: share of windows with the call (5-95 % interval)")
    save_figure(fig, path)

