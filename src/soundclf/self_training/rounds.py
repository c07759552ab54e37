"""The rounds of self-training as experiments. Round r's student is the experiment
`<teacher>-st<r>`: the round-1 teacher's configuration with self_training.student's overrides
on top. Round 1's teacher is self_training.teacher: an experiment (null: the first one), or
`ensemble`, the OOF-chosen ensemble of the experiments (its students take the first
experiment's configuration); round r+1's teacher is round r's student. Standard library
only: the Snakefile calls this while it parses."""

from __future__ import annotations

from typing import Any

from ..config import ConfigError


ENSEMBLE = "ensemble"


def student_name(teacher: str, round_: int) -> str:
    return f"{teacher}-st{round_}"


def self_training_rounds(config: dict[str, Any], experiments: list[str]) -> dict[str, dict[str, Any]]:
    """student name -> {"round": r, "teacher": the experiment that labels its unlabeled
    windows}, in round order; {} when self-training is off (no self_training.audio_dir)."""
    settings = config.get("self_training") or {}
    if not settings.get("audio_dir"):
        return {}
    first = settings.get("teacher") or experiments[0]
    if first == ENSEMBLE and len(experiments) < 2:
        raise ConfigError("self_training.teacher: 'ensemble' needs two or more experiments to choose from; "
                          "add experiments or name one as the teacher")
    if first not in experiments and first != ENSEMBLE:
        raise ConfigError(f"self_training.teacher: '{first}' is not an experiment (experiments: "
                          f"{', '.join(experiments)}); name one of them, 'ensemble', or null for the first")
    rounds, teacher = {}, first
    for r in range(1, settings.get("rounds", 1) + 1):
        name = student_name(first, r)
        if name in experiments:
            raise ConfigError(f"experiments.{name}: the name is self-training round {r}'s student; rename the experiment")
        rounds[name] = {"round": r, "teacher": teacher,
                        "first_teacher": experiments[0] if first == ENSEMBLE else first}
        teacher = name
    return rounds
