"""The review sets the config names, each with its settings resolved (its own keys over the
review section's defaults) and checked against the experiments."""

from __future__ import annotations

from typing import Any

from ..config import ConfigError
from ..experiments import NAME

SET_KEYS = ("per_class", "bins", "top_n", "seed", "context_seconds")


def review_sets(config: dict[str, Any], experiments: list[str], predicting: list[str]) -> dict[str, dict[str, Any]]:
    """name -> {experiment, source, classes, per_class, bins, top_n, seed, context_seconds}."""
    review, sets, problems = config["review"], {}, []
    for name, own in (review.get("sets") or {}).items():
        own = own or {}
        if not NAME.match(name):
            problems.append(f"review.sets.{name}: a review set's name is letters, digits, '_', '.', '-'; rename it")
        settings = {key: own.get(key, review[key]) for key in SET_KEYS}
        settings.update(experiment=own.get("experiment") or experiments[0], source=own.get("source", "predictions"),
                        classes=own.get("classes"))
        if settings["experiment"] not in experiments:
            problems.append(f"review.sets.{name}.experiment: '{settings['experiment']}' is not an experiment "
                            f"({', '.join(experiments)})")
        elif settings["source"] == "predictions" and settings["experiment"] not in predicting:
            problems.append(f"review.sets.{name}: experiment '{settings['experiment']}' predicts no recordings "
                            "(predict.audio_dir is null): set predict.audio_dir, or review its OOF windows "
                            "(source: oof)")
        sets[name] = settings
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return sets


def check_review_marks(experiments: dict[str, dict[str, Any]], sets: dict[str, dict[str, Any]]) -> None:
    """Raise ConfigError for a train.review_marks the workflow cannot train on."""
    problems = []
    for name, cfg in experiments.items():
        wanted = cfg["train"]["review_marks"]
        if not wanted:
            continue
        key = f"experiments.{name}.train.review_marks"
        unknown = [s for s in wanted if s not in sets]
        if unknown:
            known = ", ".join(sets) or "review.sets is empty"
            problems.append(f"{key}: {', '.join(unknown)} is not a review set ({known}); name sets of review.sets")
        if cfg["model"]["kind"] == "embedding_probe":
            problems.append(f"{key}: an embedding probe trains on each recording's mean embedding and reads no "
                            "strong labels; train a CNN experiment (model.kind: cnn) on the marks")
        elif not cfg["train"]["strong_targets"]:
            problems.append(f"{key}: train.strong_targets is false, so the marks would not be read; set it to true")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
