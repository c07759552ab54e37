"""The shipped configurations validate, and the real-data example keeps the recipe."""
import copy

import pytest

from conftest import REPO
from soundclf.config import ConfigError, check_config, n_segments
from soundclf.experiments import SECTIONS, experiment_configs, load_config, mel_digest


def merged(*overlays):
    return load_config(*(REPO / overlay for overlay in overlays))


def test_demo_config_is_valid_and_runs_the_recipe_shape():
    config = merged()
    check_config(config)
    assert n_segments(config["train"]) == 6 and config["train"]["mixup_prob"] == 1.0


def test_birdclef_example_keeps_the_recipe_settings():
    config = merged("configs/birdclef.yaml")
    assert config["folds"]["n_folds"] == 5 and config["audio"]["sample_rate"] == 32000
    assert config["mel"]["n_mels"] == 128 and config["model"]["backbone"].startswith("efficientnet")
    assert n_segments(config["train"]) == 6 and config["train"]["mixup_prob"] > 0
    assert 25 <= config["train"]["epochs"] <= 40
    with pytest.raises(ConfigError) as err:  # its data paths are placeholders for the user's own
        check_config(config)
    assert "data.audio_dir" in str(err.value) and "predict.audio_dir" in str(err.value)


def test_the_experiments_example_differs_only_in_segments_and_mixup():
    """configs/experiments.yaml: the recipe as the demo config has it, and plain 5 s crops."""
    demo = merged()
    configs = experiment_configs(merged("configs/experiments.yaml"))
    assert list(configs) == ["recipe", "plain_5s"]
    assert all(configs["recipe"][section] == demo[section] for section in SECTIONS)
    plain = copy.deepcopy(configs["plain_5s"])
    assert n_segments(plain["train"]) == 1 and plain["train"]["mixup_prob"] == 0
    plain["train"].update(crop_seconds=demo["train"]["crop_seconds"], mixup_prob=demo["train"]["mixup_prob"])
    assert plain == configs["recipe"]


def test_experiment_overrides_are_merged_per_section_and_checked():
    config = merged()
    config["experiments"] = {"a": None, "b": {"train": {"lr": 0.5}, "mel": {"n_mels": 32}}}
    configs = experiment_configs(config)
    assert configs["a"]["train"] == config["train"] and configs["b"]["train"]["epochs"] == config["train"]["epochs"]
    assert configs["b"]["train"]["lr"] == 0.5 and mel_digest(configs["a"]) != mel_digest(configs["b"])
    assert mel_digest(configs["a"]) == mel_digest(configs["a"] | {"mel": configs["a"]["mel"] | {"top_db": 60}})
    config["experiments"] = {"ensemble": {}, "c": {"folds": {"n_folds": 3}}}
    with pytest.raises(ConfigError) as err:
        experiment_configs(config)
    assert "experiments.ensemble:" in str(err.value) and "experiments.c.folds: an experiment overrides only" in str(err.value)


def test_crop_must_be_a_whole_number_of_segments():
    config = merged()
    config["train"]["crop_seconds"] = 12
    with pytest.raises(ConfigError, match="train.crop_seconds"):
        check_config(config)
