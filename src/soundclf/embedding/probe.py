"""Probes on cached embeddings: per fold, a linear (logistic regression) or small MLP
classifier over the embeddings pooled into the project's evaluation windows, evaluated and
applied like a CNN (the same window table, metrics and submission layout)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..atomic import atomic_path
from ..datasets import window_times
from ..annotations import StrongLabels
from ..scoring import fold_metrics, window_table
from ..folds import multi_hot
from ..activations import probabilities
from ..prediction_parts import ShardParts
from ..submission import submission_table
from ..training import activation_for, per_sample_loss
from .cache import EmbeddingCache, embed_file
from .backends import DEFAULT_BACKEND, make_embedder
from .model import EmbeddingSpec

log = logging.getLogger(__name__)


POOLINGS = ("mean", "mean_std", "mean_max")


def pool(embeddings: np.ndarray, pooling: str) -> np.ndarray:
    """One feature vector of a set of embeddings (n, dim): their mean, or their mean and their
    per-dimension std (how the sound changes over a long recording) or max (a call heard in one
    window of many) side by side (2 * dim)."""
    if pooling == "mean":
        return embeddings.mean(axis=0)
    if pooling == "mean_std":
        return np.concatenate([embeddings.mean(axis=0), embeddings.std(axis=0)])
    if pooling == "mean_max":
        return np.concatenate([embeddings.mean(axis=0), embeddings.max(axis=0)])
    raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")


def pool_windows(embeddings: np.ndarray, spec: EmbeddingSpec, windows: list[tuple[float, float]],
                 pooling: str = "mean") -> np.ndarray:
    """(windows, features): the pooled embeddings whose window centre falls in each evaluation
    window (start, end) of datasets.window_times, or the nearest one where none does (a
    recording shorter than an embedding window)."""
    centres = np.arange(len(embeddings)) * spec.hop_seconds + spec.window_seconds / 2
    pooled = []
    for start, end in windows:
        inside = (centres >= start) & (centres < end)
        if not inside.any():
            inside = np.arange(len(embeddings)) == np.argmin(np.abs(centres - (start + end) / 2))
        pooled.append(pool(embeddings[inside], pooling))
    return np.stack(pooled).astype(np.float32)


def window_features(table: pd.DataFrame, cache: EmbeddingCache, spec: EmbeddingSpec,
                    segment_seconds: float, pooling: str = "mean") -> tuple[pd.DataFrame, np.ndarray]:
    """Every evaluation window of every recording: (key, start, end) and its pooled embeddings."""
    rows, features = [], []
    for key, duration in zip(table["key"], table["duration"]):
        windows = window_times(duration, segment_seconds)
        features.append(pool_windows(cache.embeddings(key), spec, windows, pooling))
        rows += [(key, start, end) for start, end in windows]
    return pd.DataFrame(rows, columns=["key", "start", "end"]), np.concatenate(features)


class Probe(nn.Module):
    """Standardised embeddings -> class logits: one linear layer (logistic regression) or an
    MLP with one hidden layer. With unit_length, each feature vector is first scaled to length
    one: the direction of a pretrained embedding, not its size (which follows loudness and how
    many windows were pooled), carries what the sound is."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 0, dropout: float = 0.2, unit_length: bool = False):
        super().__init__()
        self.unit_length = unit_length
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.body = nn.Linear(dim, n_classes) if not hidden else nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def scaled(self, x: torch.Tensor) -> torch.Tensor:
        return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12) if self.unit_length else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((self.scaled(x) - self.mean) / self.std)


@dataclass
class Examples:
    """What a probe learns from: feature rows x (n, dim) and, per example, targets y and a
    weight. Without `bags` each row is an example; with it (the example of each row) an
    example is a bag of rows, a recording's windows, scored by a smooth max of theirs
    (example_logits): the probe is trained on windows and scored per recording much as
    evaluation scores it, so a call heard in one window of many is not averaged away
    (multiple-instance learning)."""

    x: np.ndarray
    y: np.ndarray
    weights: np.ndarray
    bags: np.ndarray | None = None

    def subset(self, keep: np.ndarray) -> "Examples":
        """The examples where `keep` (one bool per example) holds, with their rows."""
        if self.bags is None:
            return Examples(self.x[keep], self.y[keep], self.weights[keep])
        rows = keep[self.bags]
        renumbered = np.cumsum(keep) - 1
        return Examples(self.x[rows], self.y[keep], self.weights[keep], renumbered[self.bags[rows]])

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """Features, targets and weights (normalised to sum 1) as float32 tensors, and the bags."""
        x, y, w = (torch.from_numpy(a.astype(np.float32)) for a in (self.x, self.y, self.weights / self.weights.sum()))
        return x, y, w, None if self.bags is None else torch.from_numpy(self.bags.astype(np.int64))


def example_logits(probe: Probe, x: torch.Tensor, bags: torch.Tensor | None, n_examples: int) -> torch.Tensor:
    """Each example's logits: its row's, or per class the log-mean-exp of its bag's rows: a
    smooth max (a hard max stalls L-BFGS), near the rows' mean while the probe is unsure and
    their max once one window stands out, as evaluation's max over windows scores it."""
    logits = probe(x)
    if bags is None:
        return logits
    index = bags[:, None].expand_as(logits)
    peak = logits.new_zeros(n_examples, logits.shape[1]).scatter_reduce(0, index, logits.detach(), "amax",
                                                                         include_self=False)
    total = logits.new_zeros(n_examples, logits.shape[1]).index_add(0, bags, torch.exp(logits - peak[bags]))
    return peak + torch.log(total / torch.bincount(bags, minlength=n_examples)[:, None])


def weighted_loss(probe: Probe, examples: tuple[torch.Tensor, ...], loss: str) -> torch.Tensor:
    x, y, w, bags = examples
    return (per_sample_loss(example_logits(probe, x, bags, len(y)), y, loss) * w).sum()


def fit_probe(examples: Examples, kind: str, loss: str, weight_decay: float, seed: int = 0, epochs: int = 300,
              unit_length: bool = False) -> Probe:
    """Full-batch training: L-BFGS for the linear probe (a convex problem without bags), AdamW
    for the MLP; with the CNN's loss (training.per_sample_loss: BCE, softmax CE or focal)."""
    torch.manual_seed(seed)
    tensors = examples.tensors()
    x_t = tensors[0]
    probe = Probe(x_t.shape[1], examples.y.shape[1], hidden=256 if kind == "mlp" else 0, unit_length=unit_length)
    seen = probe.scaled(x_t)  # what the body's standardisation sees
    probe.mean.copy_(seen.mean(0))
    probe.std.copy_(seen.std(0).clamp(min=1e-6))

    def objective():
        return weighted_loss(probe, tensors, loss)

    if kind == "linear":
        optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=epochs, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            value = objective() + weight_decay * probe.body.weight.pow(2).sum()
            value.backward()
            return value

        optimizer.step(closure)
    else:
        optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-3, weight_decay=weight_decay)
        probe.train()
        for _ in range(epochs):
            optimizer.zero_grad()
            objective().backward()
            optimizer.step()
    probe.eval()
    with torch.no_grad():
        probe.final_loss = float(objective())
    return probe


def fit_anchored(examples: Examples, prior: Probe, mapped: np.ndarray, strength: float, loss: str,
                 unmapped_decay: float = 0.0, epochs: int = 300) -> Probe:
    """A linear probe on the raw pooled embeddings that starts from `prior` (the embedding
    model's own classifier, zero_shot.zero_shot_probe) and is pulled back towards it: the
    penalty is `strength` times the squared distance of a mapped class's weights and bias to
    the prior's. An unmapped class starts from zero with the plain probe's L2 penalty
    `unmapped_decay` on its weights (its bias free): pulled hard to zero it would score a
    constant that outranks every mapped class the prior calls absent. Strength 0 (and decay
    0) is an unpenalised logistic regression; a large strength gives the prior's scores back."""
    tensors = examples.tensors()
    probe = Probe(examples.x.shape[1], examples.y.shape[1])
    mapped_t = torch.from_numpy(np.asarray(mapped, bool))
    with torch.no_grad():
        anchor_w = torch.where(mapped_t[:, None], prior.body.weight, torch.zeros_like(prior.body.weight))
        anchor_b = torch.where(mapped_t, prior.body.bias, torch.zeros_like(prior.body.bias))
        probe.body.weight.copy_(anchor_w)
        probe.body.bias.copy_(anchor_b)
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=epochs, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        optimizer.zero_grad()
        distance = (probe.body.weight - anchor_w).pow(2).sum(dim=1)
        penalty = (strength * (distance[mapped_t].sum() + (probe.body.bias - anchor_b)[mapped_t].pow(2).sum())
                   + unmapped_decay * distance[~mapped_t].sum())
        value = weighted_loss(probe, tensors, loss) + penalty
        value.backward()
        return value

    optimizer.step(closure)
    probe.eval()
    probe.final_loss = probe_loss(probe, examples, loss)
    return probe


def probe_loss(probe: Probe, examples: Examples, loss: str) -> float:
    """The weighted loss of a fitted probe on examples."""
    with torch.no_grad():
        return float(weighted_loss(probe, examples.tensors(), loss))


def choose_strength(examples: Examples, groups: np.ndarray, prior: Probe, mapped: np.ndarray, strengths: list[float],
                    loss: str, unmapped_decay: float = 0.0) -> tuple[float, dict[float, float]]:
    """The anchor strength with the lowest mean held-out loss when each group (a training
    fold) is held out in turn and the rest fitted: chosen inside the training folds, so the
    outer held-out fold never picks it. Returns it and each strength's mean loss."""
    scores = {}
    for strength in strengths:
        losses = []
        for group in np.unique(groups):
            probe = fit_anchored(examples.subset(groups != group), prior, mapped, strength, loss, unmapped_decay)
            losses.append(probe_loss(probe, examples.subset(groups == group), loss))
        scores[strength] = float(np.mean(losses))
    return min(scores, key=scores.get), scores


def training_examples(table: pd.DataFrame, labels: np.ndarray, cache: EmbeddingCache, spec: EmbeddingSpec,
                      examples: str, pooling: str, segment_seconds: float) -> tuple[Examples, np.ndarray]:
    """The examples of model.probe_examples from the recordings of `table` (labels: one row
    each), and the recording (row of `table`) of each example:
    - recordings: all of a recording's embeddings pooled into one example;
    - windows: every evaluation window with its recording's labels, each recording weighing
      one in all;
    - bags: a recording's evaluation windows as one example scored by their max."""
    if examples == "recordings":
        x = np.stack([pool(cache.embeddings(key), pooling) for key in table["key"]]).astype(np.float32)
        return Examples(x, labels, np.ones(len(table))), np.arange(len(table))
    windows, x = window_features(table, cache, spec, segment_seconds, pooling)
    row = pd.Series(range(len(table)), index=table["key"])[windows["key"]].to_numpy()
    if examples == "bags":
        return Examples(x, labels, np.ones(len(table)), bags=row), np.arange(len(table))
    weights = 1.0 / np.bincount(row)[row]
    return Examples(x, labels[row], weights), row


def train_probe_fold(folds: pd.DataFrame, classes: list[str], fold: int, cache: EmbeddingCache, spec: EmbeddingSpec,
                     model_cfg: dict, train_cfg: dict, model_path: str | Path) -> dict:
    """Fit fold `fold`'s probe on every other fold's recordings (training_examples) and save it
    with what rebuilds it."""
    train_table = folds[folds["fold"] != fold].reset_index(drop=True)
    labels = multi_hot(train_table, len(classes), train_cfg["secondary_weight"])
    pooling = model_cfg["probe_pooling"]
    examples, row = training_examples(train_table, labels, cache, spec, model_cfg["probe_examples"], pooling,
                                      train_cfg["segment_seconds"])
    dim = examples.x.shape[1]
    loss = train_cfg["loss"]
    extra = {}
    if model_cfg["probe"] == "zero_shot":  # the model's own classifier: nothing is fitted
        from .zero_shot import zero_shot_probe

        probe, _ = zero_shot_probe(classes, spec, dim, model_cfg)
        loss = "bce"  # the classifier's scores are sigmoids
        probe.final_loss = probe_loss(probe, examples, loss)
    elif model_cfg["probe"] == "anchored":  # the model's classifier, refitted on the labels
        from .zero_shot import zero_shot_probe

        prior, unmapped = zero_shot_probe(classes, spec, dim, model_cfg)
        mapped = np.array([c not in unmapped for c in classes])
        groups = train_table["fold"].to_numpy()[row]
        decay = model_cfg["probe_weight_decay"]
        strength, scores = choose_strength(examples, groups, prior, mapped, model_cfg["probe_anchor_strengths"], loss,
                                           decay)
        log.info("fold %d: anchor strength %g chosen on the %d training folds (mean held-out loss %s)", fold, strength,
                 len(np.unique(groups)), ", ".join(f"{k:g}: {v:.4f}" for k, v in scores.items()))
        probe = fit_anchored(examples, prior, mapped, strength, loss, decay)
        extra = {"anchor_strength": strength, "anchor_scores": {f"{k:g}": v for k, v in scores.items()},
                 "mapped_classes": int(mapped.sum())}
    else:
        log.info("fold %d: %s probe on %d examples (%s) of %d recordings (%d-dim %s embeddings), loss %s", fold,
                 model_cfg["probe"], len(examples.y), model_cfg["probe_examples"], len(train_table), dim, spec.model,
                 loss)
        probe = fit_probe(examples, model_cfg["probe"], loss, model_cfg["probe_weight_decay"],
                          seed=train_cfg["seed"], unit_length=model_cfg["probe_unit_length"])
    log.info("fold %d: final training loss %.4f", fold, probe.final_loss)
    meta = {"kind": "embedding_probe", "probe": model_cfg["probe"], "pooling": pooling, "classes": classes, "fold": fold,
            "unit_length": probe.unit_length,
            "train_loss": probe.final_loss,
            "embedding": spec.__dict__, "segment_seconds": train_cfg["segment_seconds"], "loss": loss,
            "dim": int(dim), "training_keys": sorted(train_table["key"]), **extra}
    with atomic_path(model_path) as tmp:
        torch.save({"model": probe.state_dict(), "meta": json.dumps(meta)}, tmp)
    return meta


def load_probe(path: str | Path) -> tuple[Probe, dict]:
    """A saved probe (weights_only: a file that would run code is refused)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    meta = json.loads(state["meta"])
    probe = Probe(meta["dim"], len(meta["classes"]), hidden=256 if meta["probe"] == "mlp" else 0,
                  unit_length=meta.get("unit_length", False))  # probes saved before it: False
    probe.load_state_dict(state["model"])
    return probe.eval(), meta


@torch.no_grad()
def score_probe_windows(model_path: str | Path, recordings: pd.DataFrame, cache: EmbeddingCache) -> tuple[pd.DataFrame, list[str]]:
    """Every evaluation window of the `recordings` (key, duration) through one fold's probe ->
    (fold (the probe's held-out fold), key, start, end and a probability column per class;
    the classes): evaluation.score_windows for a probe."""
    probe, meta = load_probe(model_path)
    windows, x = window_features(recordings, cache, EmbeddingSpec(**meta["embedding"]), meta["segment_seconds"],
                                 meta.get("pooling", "mean"))
    p = probabilities(probe(torch.from_numpy(x)), activation_for(meta["loss"])).numpy()
    table = window_table(windows, p, meta["classes"])
    table.insert(0, "fold", meta["fold"])
    return table, meta["classes"]


def evaluate_probe_fold(model_path: str | Path, folds: pd.DataFrame, fold: int, cache: EmbeddingCache,
                        nocall_threshold: float, strong: StrongLabels | None = None) -> tuple[pd.DataFrame, dict]:
    """The probe of `fold` on every evaluation window of that fold's recordings: the OOF window
    table and metrics of evaluation.evaluate_fold."""
    held_out = folds[folds["fold"] == fold].reset_index(drop=True)
    table, classes = score_probe_windows(model_path, held_out, cache)
    return table, fold_metrics(table, held_out, classes, fold, nocall_threshold, strong)


@torch.no_grad()
def predict_probe_folder(files: list[Path], model_paths: list[str | Path], on_bad_audio: str = "skip",
                         threads: int = 1, parts: ShardParts | None = None,
                         keys: list[str] | None = None, backend: str = DEFAULT_BACKEND,
                         export_dir: str | Path | None = None) -> pd.DataFrame:
    """Prediction table of the fold probes' mean on consecutive evaluation windows, the
    embeddings computed by `backend` (litert, torch or onnx: backends.make_embedder)."""
    probes, metas = zip(*(load_probe(p) for p in model_paths))
    meta, segment = metas[0], metas[0]["segment_seconds"]
    spec = EmbeddingSpec.from_config(meta["embedding"])
    embedder = make_embedder(spec, backend, threads=threads, export_dir=export_dir)

    def predict_one(path):
        embeddings, seconds = embed_file(path, embedder)
        windows = window_times(seconds, segment)
        x = torch.from_numpy(pool_windows(embeddings, spec, windows, meta.get("pooling", "mean")))
        p = torch.stack([probabilities(probe(x), activation_for(m["loss"])) for probe, m in zip(probes, metas)])
        return [end for _, end in windows], p.mean(0).numpy()

    return submission_table(files, predict_one, meta["classes"], on_bad_audio, parts, keys)
