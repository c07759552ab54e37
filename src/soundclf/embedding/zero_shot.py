"""Zero-shot scores: the embedding model's own classifier (BirdNET's species layer) read out
for the project's classes, as a probe that is not trained (`model.probe: zero_shot`).

The classifier is the dense layer from the embedding tensor to the model's output, so a class
that maps to one of the model's labels gets that label's weights and bias, and the window
scores are what the model itself would say of the pooled embeddings. Classes map to labels
through a CSV (`model.zero_shot_label_map`, columns `class, label`) or, without one, by name:
a class named like a label's scientific or common name ("agelaius_xanthomus" → "Agelaius
xanthomus_Yellow-shouldered Blackbird"). An unmapped class scores 0."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .model import EmbeddingModelError, EmbeddingSpec, dense_head
from .probe import Probe

log = logging.getLogger(__name__)

BIRDNET_LABELS = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
UNMAPPED_LOGIT = -30.0  # sigmoid(-30) ~ 1e-13: a class the model has no label for scores 0


def model_classifier(spec: EmbeddingSpec) -> tuple[np.ndarray, np.ndarray]:
    """(weight (labels, dim), bias (labels,)) of the dense layer that turns the embedding tensor
    into the model's output."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(spec.resolved_path()))
    embedding = spec.embedding_tensor(interpreter.get_output_details()[0]["index"])
    head = dense_head(interpreter, embedding)
    if head is None:
        raise EmbeddingModelError(f"{spec.resolved_path()}: its output is not a dense layer on the embedding tensor "
                                  f"({embedding}), so it has no classifier to read zero-shot scores from; use "
                                  "model.probe: linear or mlp")
    return head


def model_labels(spec: EmbeddingSpec, labels_path: str | Path | None) -> list[str]:
    """The model's output labels, one per line (null: BirdNET V2.4's, shipped beside its model)."""
    if labels_path is None:
        if spec.model_path:
            raise EmbeddingModelError("model.zero_shot_labels: set the labels file of embedding.model_path "
                                      f"'{spec.model_path}' (one label per line, in the order of its outputs)")
        labels_path = spec.resolved_path().parent / BIRDNET_LABELS
    path = Path(labels_path)
    if not path.is_file():
        raise EmbeddingModelError(f"model.zero_shot_labels: '{path}' does not exist")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _name(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").replace("-", " ").split())


def match_classes(classes: list[str], labels: list[str], label_map: str | Path | None = None) -> list[int | None]:
    """Per class, the index of its model label, or None. With a label map (CSV `class, label`)
    only its rows count, and a label it names that the model lacks stops the run; without one a
    class matches a label whose full text, scientific name or common name (BirdNET's
    `Scientific_Common`) reads the same, ignoring case, `_` and `-`."""
    if label_map is not None:
        table = pd.read_csv(label_map, dtype=str, keep_default_na=False)
        if not {"class", "label"} <= set(table.columns):
            raise ValueError(f"model.zero_shot_label_map: '{label_map}' needs the columns class, label "
                             f"(it has {', '.join(table.columns)})")
        index = {label: i for i, label in enumerate(labels)}
        unknown = sorted(set(table["label"]) - set(index))
        if unknown:
            raise ValueError(f"model.zero_shot_label_map: '{label_map}' names labels the model does not have: "
                             f"{', '.join(unknown[:5])}; copy them from the model's labels file")
        mapped = dict(zip(table["class"], table["label"]))
        return [index[mapped[c]] if c in mapped else None for c in classes]
    by_name: dict[str, int] = {}
    for i, label in enumerate(labels):
        for name in (label, *label.split("_", 1)):
            by_name.setdefault(_name(name), i)
    return [by_name.get(_name(c)) for c in classes]


def zero_shot_probe(classes: list[str], spec: EmbeddingSpec, dim: int, model_cfg: dict) -> tuple[Probe, list[str]]:
    """A linear probe holding the model's classifier rows of the mapped classes (over the mean
    embedding; other pooled features, such as the std of mean_std, weigh 0), and the names of
    the classes left unmapped."""
    weight, bias = model_classifier(spec)
    labels = model_labels(spec, model_cfg.get("zero_shot_labels"))
    if len(labels) != len(weight):
        raise EmbeddingModelError(f"model.zero_shot_labels: {len(labels)} labels for a classifier of {len(weight)} outputs")
    rows = match_classes(classes, labels, model_cfg.get("zero_shot_label_map"))
    if all(row is None for row in rows):
        # anchored and zero_shot both read the model's classifier: with nothing mapped there is nothing to read
        raise ValueError(f"model.probe {model_cfg.get('probe', 'zero_shot')}: none of the {len(classes)} classes "
                         f"({', '.join(classes[:3])}, …) is a label of the model ({labels[0]}, …); map them in a "
                         "CSV of columns class, label and set model.zero_shot_label_map, or, for classes the model "
                         "does not know (other taxa, sounds that are not species), use model.probe: linear")
    probe = Probe(dim, len(classes))
    with torch.no_grad():
        probe.body.weight.zero_()
        probe.body.bias.fill_(UNMAPPED_LOGIT)
        for c, row in enumerate(rows):
            if row is not None:
                probe.body.weight[c, : weight.shape[1]] = torch.from_numpy(weight[row])
                probe.body.bias[c] = float(bias[row])
    unmapped = [c for c, row in zip(classes, rows) if row is None]
    log.info("zero-shot: %d of %d classes read from the model's classifier%s", len(classes) - len(unmapped),
             len(classes), f"; no label for {', '.join(unmapped)} (they score 0)" if unmapped else "")
    return probe.eval(), unmapped
