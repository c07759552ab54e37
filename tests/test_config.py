"""The shipped configurations validate, and the real-data example keeps the recipe."""
import copy

import pytest
import yaml
from snakemake.utils import update_config, validate

from conftest import REPO
from soundclf.config import ConfigError, check_config, n_segments

SCHEMA = str(REPO / "schemas/config.schema.yaml")


def merged(*overlays):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for overlay in overlays:
        update_config(config, yaml.safe_load((REPO / overlay).read_text()))
    validate(config, SCHEMA, set_default=True)
    return config


def test_demo_config_is_valid_and_trains_honestly():
    config = merged()
    check_config(config)
    # the demo trains on plain 5 s crops with softmax CE (README: ablation) and keeps the last epoch
    assert n_segments(config["train"]) == 1 and config["train"]["loss"] == "ce"
    assert config["train"]["keep"] == "last"


def test_birdclef_example_keeps_the_recipe_settings():
    config = merged("configs/birdclef.yaml")
    assert config["folds"]["n_folds"] == 5 and config["audio"]["sample_rate"] == 32000
    assert config["mel"]["n_mels"] == 128 and config["model"]["backbone"].startswith("efficientnet")
    assert n_segments(config["train"]) == 6 and config["train"]["mixup_prob"] > 0
    assert 25 <= config["train"]["epochs"] <= 40 and config["train"]["keep"] == "last"
    with pytest.raises(ConfigError) as err:  # its data paths are placeholders for the user's own
        check_config(config)
    assert "data.audio_dir" in str(err.value) and "predict.audio_dir" in str(err.value)


def test_ablation_differs_from_the_demo_only_in_the_recipe_shape_mixup_and_epochs():
    demo, ablation = merged(), merged("configs/ablation_recipe.yaml")
    assert n_segments(ablation["train"]) == 6 and ablation["train"]["mixup_prob"] == 1
    same = copy.deepcopy(ablation)
    same["train"].update(crop_seconds=demo["train"]["crop_seconds"], mixup_prob=demo["train"]["mixup_prob"],
                         epochs=demo["train"]["epochs"])
    same["results_dir"] = demo["results_dir"]
    assert same == demo


def test_crop_must_be_a_whole_number_of_segments():
    config = merged()
    config["train"]["crop_seconds"] = 12
    with pytest.raises(ConfigError, match="train.crop_seconds"):
        check_config(config)
