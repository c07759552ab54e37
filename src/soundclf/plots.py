"""Figures for the Snakemake report, drawn with matplotlib from the workflow's own tables:
each function takes data and writes one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display on compute nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import confusion_matrix, precision_recall_curve  # noqa: E402

from .scoring import recording_scores, recording_truth  # noqa: E402
from .submission import row_ends, row_files  # noqa: E402

if TYPE_CHECKING:  # torch is imported only by the figure that reads the mel cache (example_inputs)
    from .mel import MelParams
    from .mel_cache import MelCache

VALIDATION_METRICS = ("padded_cmap", "macro_roc_auc", "lwlrap")


def save_figure(fig, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def input_summary(summary: dict, path: str | Path) -> None:
    """What the index kept of the listed recordings and why it rejected the rest
    (indexing.IndexSummary.as_dict), as bars, with the lost classes named."""
    rows = [("kept", summary["kept"])] + [(f"rejected: {r}", n) for r, n in summary["reasons"].items()]
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.35 * len(rows)))
    y = np.arange(len(rows))
    ax.barh(y, [n for _, n in rows], color=["tab:green"] + ["tab:red"] * (len(rows) - 1))
    ax.set_yticks(y, [name for name, _ in rows], fontsize=8)
    ax.invert_yaxis()
    for i, (_, n) in enumerate(rows):
        ax.annotate(str(n), (n, i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    title = summary["text"].splitlines()[0]
    kind = summary.get("labels") or {}
    if kind.get("multilabel"):  # what the results lead with, said where the report starts
        title += (f"\nmulti-label data ({kind['n_multi_label']} with two or more labels, {kind['n_no_call']} no-call): "
                  "results lead with macro ROC-AUC and padded cmAP")
    if summary["lost_classes"]:
        title += "\nclasses with no recording left: " + ", ".join(summary["lost_classes"][:8]) + (
            " ..." if len(summary["lost_classes"]) > 8 else "")
    ax.set(title=title, xlabel="recordings")
    ax.title.set_fontsize(9)
    save_figure(fig, path)


def experiment_comparison(cvs: dict[str, dict], metric: str, reference: str, path: str | Path) -> None:
    """Per experiment and metric: its mean ± std over folds (bars) and each fold's value (dots,
    joined across experiments fold by fold, since the folds are shared). One panel per metric:
    the data's lead metrics first (macro ROC-AUC and padded cmAP on multi-label data, top-1 on
    single-label data: the reference's cv_metrics.json), then `metric` (compare.metric)."""
    from .comparison import metric_of
    from .multilabel import lead_metrics

    names = list(cvs)
    folds = [f["fold"] for f in cvs[reference]["per_fold"]]
    metrics = list(dict.fromkeys([*lead_metrics(cvs[reference]), metric]))
    width = max(4.5, 1.1 * len(names) + 2)
    fig, axes = plt.subplots(1, len(metrics), figsize=(width * len(metrics), 3.8), squeeze=False)
    x = np.arange(len(names))
    for ax, name in zip(axes[0], metrics):
        means = [metric_of(cvs[n], name) for n in names]
        stds = [np.nanstd([metric_of(cvs[n], name, k) for k in folds]) for n in names]
        ax.bar(x, means, 0.6, yerr=stds, capsize=4, color=["tab:gray" if n == reference else "tab:blue" for n in names])
        for k in folds:
            ax.plot(x, [metric_of(cvs[n], name, k) for n in names], "o-", color="black", alpha=0.35, markersize=3,
                    lw=0.8)
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set(ylabel=name, title=f"{name}: mean ± std over folds (grey: reference {reference});\nlines join each fold")
        ax.title.set_fontsize(9)
    save_figure(fig, path)


def training_curves(histories: dict[int, pd.DataFrame], path: str | Path) -> None:
    """Per fold: training and validation loss, and the validation metrics, by epoch."""
    metrics = [m for m in VALIDATION_METRICS if all(m in h for h in histories.values())]
    fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(4.2 * (1 + len(metrics)), 3.6), squeeze=False)
    axes = axes[0]
    for fold, history in sorted(histories.items()):
        line, = axes[0].plot(history["epoch"], history["train_loss"], label=f"fold {fold} train")
        if "val_loss" in history:
            axes[0].plot(history["epoch"], history["val_loss"], "--", color=line.get_color(), label=f"fold {fold} val")
        for ax, metric in zip(axes[1:], metrics):
            ax.plot(history["epoch"], history[metric], color=line.get_color(), label=f"fold {fold}")
    axes[0].set(title="BCE loss", xlabel="epoch")
    axes[0].legend(fontsize=7)
    for ax, metric in zip(axes[1:], metrics):
        ax.set(title=f"validation {metric}", xlabel="epoch")
    save_figure(fig, path)


def cv_metrics_table(cv: dict) -> pd.DataFrame:
    """One row per (level, metric): each fold's value, mean ± std and the pooled value; the
    data's lead metrics first (soundclf.multilabel: macro ROC-AUC and padded cmAP on
    multi-label data, top-1 accuracy on single-label data)."""
    from .multilabel import lead_first, lead_metrics

    rows = []
    for level, metrics in cv["mean_std"].items():
        for metric, stat in metrics.items():
            row = {"level": level, "metric": metric}
            row.update({f"fold {f['fold']}": f[level][metric] for f in cv["per_fold"]})
            row.update(mean=stat["mean"], std=stat["std"], pooled=cv["pooled"].get(level, {}).get(metric, np.nan))
            rows.append(row)
    order = lead_first([f"{r['level']}.{r['metric']}" for r in rows], lead_metrics(cv))
    position = {name: i for i, name in enumerate(order)}
    rows.sort(key=lambda r: position[f"{r['level']}.{r['metric']}"])
    return pd.DataFrame(rows).round(4)


def per_class_bars(per_class: pd.DataFrame, path: str | Path) -> None:
    """OOF recording-level average precision and ROC-AUC per class (oof.per_class_table), sorted by AP."""
    table = per_class.sort_values("ap", ascending=False)
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(table) + 2), 4))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["ap"], 0.4, label="AP")
    ax.bar(x + 0.2, table["roc_auc"], 0.4, label="ROC-AUC")
    ax.set_xticks(x, [f"{c} ({s})" for c, s in zip(table["class"], table["support"])], rotation=60, ha="right", fontsize=8)
    ax.set(ylim=(0, 1), title="per-class OOF scores at recording level\n(max over its windows; support in brackets)")
    ax.legend()
    save_figure(fig, path)


def top_classes(folds: pd.DataFrame, n: int) -> list[str]:
    return folds.loc[folds["primary_label"] != "", "primary_label"].value_counts().index[:n].tolist()


def confusion(oof: pd.DataFrame, folds: pd.DataFrame, classes: list[str], path: str | Path, n_top: int = 12) -> None:
    """Primary label vs the top-scoring class per recording, for the most frequent classes
    (rows normalised; recordings of other classes left out)."""
    scores = recording_scores(oof, classes)
    truth = folds.set_index("key").loc[scores.index, "primary_label"]
    predicted = scores.idxmax(axis=1)
    shown = top_classes(folds, n_top)
    keep = truth.isin(shown)
    matrix = confusion_matrix(truth[keep], predicted[keep].where(predicted[keep].isin(shown), "other"),
                              labels=shown + ["other"]).astype(float)[: len(shown)]
    matrix /= np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(0.5 * len(shown) + 3, 0.45 * len(shown) + 2))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(shown) + 1), shown + ["other"], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(shown)), shown, fontsize=8)
    for (i, j), value in np.ndenumerate(matrix):
        if value >= 0.005:
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value > 0.5 else "black")
    ax.set(xlabel="top-scoring class", ylabel="primary label", title="OOF recordings: confusion (row share)")
    fig.colorbar(image, ax=ax, fraction=0.04)
    save_figure(fig, path)


def pr_curves(oof: pd.DataFrame, folds: pd.DataFrame, classes: list[str], path: str | Path, n_top: int = 6) -> None:
    """Window-level precision-recall: micro-average over all classes and the most frequent ones."""
    truth = recording_truth(folds, oof["key"], len(classes))  # each window carries its recording's labels
    scores = oof[classes].to_numpy()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    precision, recall, _ = precision_recall_curve(truth.ravel(), scores.ravel())
    ax.plot(recall, precision, "k", lw=2, label="micro-average")
    for name in top_classes(folds, n_top):
        j = classes.index(name)
        if truth[:, j].any():
            precision, recall, _ = precision_recall_curve(truth[:, j], scores[:, j])
            ax.plot(recall, precision, lw=1, label=name)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="OOF 5 s windows: precision-recall")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def example_windows(windows: list[tuple[str, float, np.ndarray, str, list[tuple[str, float]]]], path: str | Path) -> None:
    """Log-mel windows as the model saw them, each titled with its labels and top predictions.
    `windows`: (key, start s, normalised mel (n_mels, t), true labels, [(class, prob)])."""
    fig, axes = plt.subplots(1, len(windows), figsize=(3.6 * len(windows), 3.4), squeeze=False)
    for ax, (key, start, mel, truth, top) in zip(axes[0], windows):
        if mel.shape[0] == 1:  # a waveform model's input (BirdNET fine-tuned): the samples
            ax.plot(mel[0], lw=0.3)
            ax.set(xlabel="sample", ylabel="amplitude")
        else:
            ax.imshow(mel, origin="lower", aspect="auto", cmap="magma")
            ax.set(xlabel="frame", ylabel="mel bin")
        ax.set_title(f"{key} @ {start:g} s\ntrue: {truth}\n" + "\n".join(f"{c} {p:.2f}" for c, p in top), fontsize=7)
    save_figure(fig, path)


def prediction_timeline(submission: pd.DataFrame, recording: str, path: str | Path, n_classes: int = 8,
                        truth: np.ndarray | None = None) -> None:
    """Probability of the most likely classes over one recording's 5 s windows; the windows
    where a class is present (`truth`: 0/1 per submission row and class) marked above them."""
    mine = (row_files(submission["row_id"]) == recording).to_numpy()
    rows = submission[mine]
    ends = row_ends(rows["row_id"])
    classes = rows.columns[1:]
    shown = rows[classes].max().sort_values(ascending=False).index[:n_classes]
    fig, ax = plt.subplots(figsize=(10, 4))
    for name in shown:
        line, = ax.step(ends, rows[name], where="post", label=name)
        if truth is not None:
            present = ends[truth[mine, list(submission.columns[1:]).index(name)] > 0]
            ax.plot(present - 2.5, np.full(len(present), 1.03 + 0.02 * list(shown).index(name)), "|",
                    color=line.get_color(), markersize=8)
    ax.set(xlabel="window end (s)", ylabel="probability (mean of the fold models)", ylim=(0, 1.2),
           title=f"{recording}: predictions per 5 s window" + (" (ticks: labelled presence)" if truth is not None else ""))
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    save_figure(fig, path)


def example_inputs(oof: pd.DataFrame, folds: pd.DataFrame, classes: list[str], cache: MelCache,
                   params: MelParams, segment_seconds: float, n: int = 4) -> list[tuple]:
    """For each of the `n` most frequent classes, the OOF window of one of its recordings
    that scores highest for it (what the model finds most typical of the class), as
    example_windows takes them: the window read from the cache as the model saw it, the
    recording's labels and the three best-scoring classes."""
    from .datasets import segment_frames, window_input, window_start_frame

    labels = folds.set_index("key")
    n_frames = segment_frames(params, segment_seconds)
    examples = []
    for name in top_classes(folds, n):
        own = oof[oof["key"].map(labels["primary_label"]) == name]
        if not len(own):
            continue
        row = own.loc[own[name].idxmax()]
        start = window_start_frame(round(row["start"] * params.frames_per_second), n_frames, cache.n_frames(row["key"]))
        mel = cache.window(row["key"], start, n_frames)
        truth = " + ".join([labels.at[row["key"], "primary_label"], *labels.at[row["key"], "secondary_labels"]])
        top = sorted(((c, float(row[c])) for c in classes), key=lambda t: -t[1])[:3]
        examples.append((row["key"], row["start"], window_input(mel, n_frames, params.top_db, scale=not params.waveform),
                         truth, top))
    return examples


def detection_activity(detections: pd.DataFrame, path: str | Path, n_classes: int = 8, max_sites: int = 12) -> None:
    """Detections per species by date (left) and by hour of day (right), one row per site, for
    the detections whose recording's name carries a start time; a note where none does."""
    dated = detections[detections["datetime"].notna()]
    if not len(dated):
        fig, ax = plt.subplots(figsize=(7, 1.6))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{len(detections)} detections; no recording's file name carries a start time "
                "(YYYYMMDD_HHMMSS), so there is no activity by date and hour", ha="center", va="center", wrap=True)
        save_figure(fig, path)
        return
    shown = dated["label"].value_counts().index[:n_classes]
    sites = dated["site"].value_counts().index[:max_sites]
    fig, axes = plt.subplots(len(sites), 2, figsize=(12, 2.6 * len(sites)), squeeze=False)
    when = pd.to_datetime(dated["datetime"])
    for row, site in zip(axes, sites):
        here = (dated["site"] == site).to_numpy()
        for label in shown:
            mine = here & (dated["label"] == label).to_numpy()
            per_day = when[mine].dt.normalize().value_counts().sort_index()
            row[0].plot(per_day.index, per_day.to_numpy(), marker="o", ms=3, lw=1, label=label)
            per_hour = when[mine].dt.hour.value_counts().reindex(range(24), fill_value=0)
            row[1].plot(per_hour.index, per_hour.to_numpy(), drawstyle="steps-mid", lw=1, label=label)
        title = site or "(top folder)"
        row[0].set(ylabel="detections", title=f"{title}: per day")
        row[1].set(xlabel="hour of day", xlim=(-0.5, 23.5), xticks=range(0, 24, 3), title=f"{title}: per hour of day")
        row[0].tick_params(axis="x", labelrotation=30, labelsize=7)
    axes[0][1].legend(fontsize=7, ncol=2, loc="upper right")
    note = f" ({len(dated['site'].unique()) - len(sites)} more sites not shown)" if dated["site"].nunique() > len(sites) else ""
    fig.suptitle(f"{len(dated)} of {len(detections)} detections with a start time{note}", fontsize=9)
    save_figure(fig, path)
