"""What kind of labels the training data have, and what follows from it: the metrics that lead
every summary (macro ROC-AUC and padded cmAP on multi-label data, top-1 accuracy on
single-label data) and the plan-time warning against softmax CE on multi-label data.

Training data are multi-label when a recording has two or more labels (a primary with kept
secondary labels, or a labels column with two), or when there are no-call recordings (no
label at all): top-1 accuracy counts only the recordings with exactly one label, so it leaves
those out. Standard library only: the Snakefile calls this while it parses, and at the end of
a run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

MULTI_LABEL_LEAD = ("recording.macro_roc_auc", "recording.padded_cmap")
SINGLE_LABEL_LEAD = ("recording.accuracy",)
METRIC_NAMES = {"macro_roc_auc": "macro ROC-AUC", "padded_cmap": "padded cmAP", "accuracy": "top-1 accuracy",
                "lwlrap": "lwlrap", "row_f1_nocall": "row F1", "top3_accuracy": "top-3 accuracy", "map_at_3": "MAP@3"}


@dataclass(frozen=True)
class LabelKind:
    """How many recordings have two or more labels, and how many none (no-call)."""

    n_recordings: int
    n_multi_label: int
    n_no_call: int

    @property
    def multilabel(self) -> bool:
        return self.n_multi_label > 0 or self.n_no_call > 0

    @property
    def lead_metrics(self) -> list[str]:
        return list(MULTI_LABEL_LEAD if self.multilabel else SINGLE_LABEL_LEAD)

    def text(self) -> str:
        """One line for the summaries, '' for single-label data."""
        if not self.multilabel:
            return ""
        parts = [f"{self.n_multi_label} with two or more labels"] * bool(self.n_multi_label) + [
            f"{self.n_no_call} no-call"] * bool(self.n_no_call)
        return (f"multi-label data ({' and '.join(parts)} of {self.n_recordings} recordings): results lead with "
                "macro ROC-AUC and padded cmAP (top-1 accuracy counts only the recordings with one label)")

    def as_dict(self) -> dict[str, Any]:
        return {"n_recordings": self.n_recordings, "n_multi_label": self.n_multi_label, "n_no_call": self.n_no_call,
                "multilabel": self.multilabel, "lead_metrics": self.lead_metrics}


def label_kind(label_counts: Iterable[int]) -> LabelKind:
    """The kind of a dataset from the number of labels of each recording."""
    counts = list(label_counts)
    return LabelKind(len(counts), sum(n >= 2 for n in counts), sum(n == 0 for n in counts))


def lead_metrics(cv: dict[str, Any]) -> list[str]:
    """The metrics that lead for a cv_metrics.json: its training data's (written by
    aggregate_oof), top-1 accuracy for one written before it said."""
    return list((cv.get("labels") or {}).get("lead_metrics") or SINGLE_LABEL_LEAD)


def lead_first(names: Iterable[str], lead: Iterable[str]) -> list[str]:
    """`names` ('<level>.<metric>') with those of `lead` first, in lead's order."""
    names, lead = list(names), [m for m in lead]
    return [m for m in lead if m in names] + [m for m in names if m not in lead]


def metric_label(name: str) -> str:
    """'recording.macro_roc_auc' -> 'macro ROC-AUC' (the level left out for recording metrics)."""
    level, _, metric = name.partition(".")
    label = METRIC_NAMES.get(metric, metric)
    return label if level == "recording" else f"{level} {label}"


def headline(experiment: str, cv: dict[str, Any]) -> str:
    """One line of the end-of-run summary: an experiment's lead metrics (mean ± std over its
    folds), then top-1 or the multi-label pair, whichever did not lead."""
    lead = lead_metrics(cv)
    others = [m for m in (*MULTI_LABEL_LEAD, *SINGLE_LABEL_LEAD) if m not in lead]

    def value(name: str) -> str | None:
        level, _, metric = name.partition(".")
        stat = cv.get("mean_std", {}).get(level, {}).get(metric) or {}
        mean, std = stat.get("mean"), stat.get("std")
        if mean is None or (isinstance(mean, float) and math.isnan(mean)):
            return None
        return f"{metric_label(name)} {mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")

    first = [v for v in map(value, lead) if v]
    rest = [v for v in map(value, others) if v]
    folds = cv.get("n_folds", len(cv.get("per_fold", [])))
    return (f"{experiment}: " + ", ".join(first or ["no metric"]) + f" (recording level, mean ± std over {folds} folds)"
            + (f"; {', '.join(rest)}" if rest else ""))


def headlines(cv_files: dict[str, str | Path]) -> list[str]:
    """The end-of-run summary's lines: headline() of each experiment whose cv_metrics.json
    exists (`cv_files`: experiment -> its path)."""
    lines = []
    for name, path in cv_files.items():
        if Path(path).is_file():
            lines.append(headline(name, json.loads(Path(path).read_text())))
    return lines


def loss_warning(kind: LabelKind | None, experiments: dict[str, dict[str, Any]]) -> str | None:
    """The plan-time warning for CNN experiments that train multi-label data with softmax CE
    (train.loss: ce), or None."""
    if kind is None or not kind.multilabel:
        return None
    with_ce = [name for name, cfg in experiments.items()
               if cfg["model"]["kind"] == "cnn" and cfg["train"]["loss"] == "ce"]
    if not with_ce:
        return None
    return (f"soundclf: {kind.text().split(':')[0]}, but experiment(s) {', '.join(with_ce)} train with train.loss: ce. "
            "Softmax CE shares one unit of probability among a recording's classes: two species heard together get "
            "half each, and a no-call recording has no class to put it on (only label smoothing gives it a uniform "
            "target), so the model cannot say 'both' or 'none' and thresholds on its scores mean little. Set "
            "train.loss: bce (or focal), which scores every class on its own.")
