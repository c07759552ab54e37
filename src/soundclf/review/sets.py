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
