"""Experiments: named variants of the model stages on top of the base configuration.

`experiments:` maps a name to overrides of the SECTIONS below; every experiment shares the
index and the folds, and experiments with equal mel (or embedding) parameters share one
cache (a folder named by their digest). Standard library only:
the Snakefile calls this while it parses.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from .embedding.model import cache_params  # embedding.backend: not in the digest (embedding/backends.py)
from .config import BIRDNET_BACKBONE, BIRDNET_SAMPLE_RATE, ConfigError
from .self_training.rounds import ENSEMBLE, self_training_rounds

DEFAULT_NAME = "base"  # the one experiment of a config without an `experiments` key
RESERVED_NAMES = {ENSEMBLE}  # results/experiments/ensemble holds the selected ensemble
SECTIONS = ("model", "train", "evaluate", "predict", "mel", "audio", "embedding")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def experiment_configs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each experiment's whole configuration: the base config with its overrides applied; then
    each self-training round's student (self_training.rounds): its first teacher's
    configuration with self_training.student's overrides applied."""
    overrides = config.get("experiments") or {DEFAULT_NAME: {}}
    problems, configs = [], {}
    base = {k: v for k, v in config.items() if k != "experiments"}
    for name, override in overrides.items():
        if not NAME.match(name) or name in RESERVED_NAMES:
            problems.append(f"experiments.{name}: an experiment name is letters, digits, '_', '.', '-' "
                            f"(not {', '.join(sorted(RESERVED_NAMES))}); rename it")
            continue
        configs[name] = with_overrides(base, override, f"experiments.{name}", problems)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    student, base_names = (config.get("self_training") or {}).get("student"), list(configs)
    for name, round_ in self_training_students(config).items():
        configs[name] = with_overrides(configs[round_["first_teacher"]], student, "self_training.student", problems)
        teachers = base_names if round_["teacher"] == ENSEMBLE else [round_["teacher"]]  # the ensemble: any may be a member
        for role, exp in [("teacher", t) for t in teachers] + [("student", name)]:
            if configs[exp]["model"]["kind"] != "cnn":
                problems.append(f"self_training: the {role} '{exp}' is an embedding probe; teachers and students are "
                                "CNN experiments (model.kind: cnn)")
    problems += teacher_problems(configs, self_training_students(config))
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return configs


def teacher_problems(configs: dict[str, dict[str, Any]], students: dict[str, dict[str, Any]]) -> list[str]:
    """What stops an experiment's train.teacher (distillation) from running, each with its fix."""
    problems = []
    for name, cfg in configs.items():
        teacher = cfg["train"].get("teacher")
        if teacher is None:
            continue
        key = f"experiments.{name}.train.teacher"
        if teacher not in configs or teacher == name:
            others = ", ".join(n for n in configs if n != name) or "none"
            problems.append(f"{key}: '{teacher}' is not another experiment (experiments: {others}); name one")
            continue
        if cfg["model"]["kind"] != "cnn":
            problems.append(f"{key}: a distilled student is a CNN (model.kind: cnn), not an embedding probe")
        if configs[teacher]["train"].get("teacher") is not None:
            problems.append(f"{key}: '{teacher}' is itself distilled from '{configs[teacher]['train']['teacher']}'; "
                            "name an experiment that trains on the labels alone")
        if configs[teacher]["train"]["segment_seconds"] != cfg["train"]["segment_seconds"]:
            problems.append(f"{key}: '{teacher}' scores {configs[teacher]['train']['segment_seconds']} s windows, "
                            f"the student {cfg['train']['segment_seconds']} s segments; give both one "
                            "train.segment_seconds")
        if name in students or any(r["first_teacher"] == name for r in students.values()):
            problems.append(f"{key}: '{name}' also takes part in self-training, whose pseudo-labels fill the same "
                            "share of its batches; distil another experiment, or set self_training.teacher to one "
                            "that has no train.teacher")
    return problems


def self_training_students(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """student experiment -> its round and teacher (self_training.rounds); {} when off."""
    return self_training_rounds(config, list(config.get("experiments") or {DEFAULT_NAME: {}}))


def with_overrides(config: dict[str, Any], override: dict[str, Any] | None, where: str,
                   problems: list[str]) -> dict[str, Any]:
    """A copy of `config` with the sections of `override` merged in, key by key; keys outside
    SECTIONS are reported in `problems`."""
    override = override or {}
    for section in sorted(set(override) - set(SECTIONS)):
        problems.append(f"{where}.{section}: an experiment overrides only {', '.join(SECTIONS)}; "
                        f"move '{section}' to the base config")
    merged = copy.deepcopy(config)
    for section in SECTIONS:
        merged[section] = {**merged.get(section, {}), **(override.get(section) or {})}
    return merged


PROBE_MODEL_KEYS = ("probe", "zero_shot")  # prefixes of the model keys that only probes read


# BirdNET fine-tuning's own model keys; it reads the label map of the probes' zero-shot head too
BIRDNET_MODEL_KEYS = ("backbone_lr_scale", "zero_shot_labels", "zero_shot_label_map")


def reads_model_key(model: dict[str, Any], key: str) -> bool:
    """Whether a train_fold job of this model reads the model key: a probe its own keys, a CNN
    the network's keys, BirdNET fine-tuning also BIRDNET_MODEL_KEYS."""
    if key == "kind":
        return True
    if model["kind"] == "embedding_probe":
        return key.startswith(PROBE_MODEL_KEYS)
    if key in BIRDNET_MODEL_KEYS:
        return model["backbone"] == BIRDNET_BACKBONE
    return not key.startswith(PROBE_MODEL_KEYS)


def training_params(experiment: dict[str, Any]) -> dict[str, Any]:
    """What a train_fold job of this experiment reads of the model, train, mel, audio and
    embedding sections: a CNN nothing of the embeddings or the probe's keys, a probe nothing of the
    log-mels or the network's keys. Snakemake reruns a job whose params change, so a setting
    (or a new default) of one kind does not retrain the other kind's experiments."""
    model = experiment["model"]
    probe = model["kind"] == "embedding_probe"
    # train.review_marks enters as the input files it names; the teacher's keys only where one is named
    ignored = {"review_marks"} | ({"teacher", "teacher_share"} if experiment["train"].get("teacher") is None else set())
    return {"model": {key: model[key] for key in model if reads_model_key(model, key)},
            "mel": None if probe else model_input(experiment)[1],
            "sample_rate": None if probe else model_input(experiment)[0],
            "embedding": cache_params(experiment["embedding"]) if probe else None,
            "train": {key: value for key, value in experiment["train"].items() if key not in ignored}}


def load_config(*config_files) -> dict[str, Any]:
    """The configuration Snakemake builds from the repository's config.yaml and
    `config_files` over it (nested keys merged), schema defaults filled in: for tools that
    need a workflow's paths without running it (tests, benchmarks)."""
    import yaml
    from snakemake.utils import update_config, validate

    repo = Path(__file__).resolve().parents[2]
    config = yaml.safe_load((repo / "config.yaml").read_text())
    for path in config_files:
        update_config(config, yaml.safe_load(Path(path).read_text()))
    validate(config, str(repo / "schemas/config.schema.yaml"), set_default=True)
    return config


def mel_cache_dir(config: dict[str, Any], experiment: str | None = None) -> str:
    """results/mels/<digest> of an experiment (the first by default)."""
    configs = experiment_configs(config)
    return f"{config['results_dir']}/mels/{mel_digest(configs[experiment or next(iter(configs))])}"


# Raised when the code changes what a cache of the same parameters holds, so that caches
# written before are rebuilt, not mixed with new ones. 2: MP3s are decoded without
# soundfile's seek after every read, which garbled those with an Info frame after the first
# 16 384 frames (the cached values now equal soundfile.read's), and the log-mel of issue 16.
CACHE_REVISION = 2


# what BirdNET fine-tuning reads: the 48 kHz samples themselves (mel.MelParams features)
WAVEFORM_MEL = {"features": "waveform", "n_fft": 1, "hop_length": 1, "n_mels": 1, "fmin": 0.0,
                "fmax": BIRDNET_SAMPLE_RATE / 2, "power": 1.0, "top_db": None, "mel_scale": "slaney", "norm": None}


def model_input(experiment: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(sample rate, mel section) of what an experiment's CNN reads and its cache holds: the
    log-mels of its audio and mel sections, or, with model.backbone birdnet_v24, 48 kHz audio."""
    model = experiment["model"]
    if model.get("kind", "cnn") == "cnn" and model.get("backbone") == BIRDNET_BACKBONE:
        return BIRDNET_SAMPLE_RATE, WAVEFORM_MEL
    return experiment["audio"]["sample_rate"], experiment["mel"]


def mel_cache_params(config: dict[str, Any]) -> dict[str, Any]:
    """What the cached values depend on (top_db is applied when a segment is read)."""
    sample_rate, mel = model_input(config)
    return {"sample_rate": sample_rate, "mel": {k: v for k, v in mel.items() if k != "top_db"},
            "cache": config["cache"], "revision": CACHE_REVISION}


def mel_digest(config: dict[str, Any]) -> str:
    """The name of the mel cache folder of a configuration: equal mel parameters, one cache."""
    return _digest(mel_cache_params(config))


def embedding_digest(config: dict[str, Any]) -> str:
    """The name of the embedding cache folder: equal embedding parameters, one cache."""
    return _digest({"embedding": cache_params(config["embedding"]), "n_shards": config["cache"]["n_shards"],
                    "revision": CACHE_REVISION})


def noise_digest(config: dict[str, Any]) -> str | None:
    """The name of the cached train.noise_dir (within its experiment's mel cache folder), or
    None when the experiment mixes no background noise."""
    noise_dir = config["train"].get("noise_dir")
    if config["model"].get("kind", "cnn") != "cnn" or not noise_dir:
        return None
    return _digest({"noise_dir": str(Path(noise_dir).resolve())})


def _digest(params: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
