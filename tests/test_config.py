"""The shipped configurations validate, and the real-data example keeps the recipe."""
import copy

import pytest

from conftest import REPO
from soundclf.config import ConfigError, check_config, n_segments
from soundclf.experiments import SECTIONS, experiment_configs, load_config, mel_digest, training_params


def merged(*overlays):
    return load_config(*(REPO / overlay for overlay in overlays))


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


def test_the_experiments_example_differs_only_in_the_recipe_shape_mixup_and_epochs():
    """configs/experiments.yaml: the demo as config.yaml has it, and the recipe's 30 s crops."""
    demo = merged()
    configs = experiment_configs(merged("configs/experiments.yaml"))
    assert list(configs) == ["demo", "recipe"]
    assert all(configs["demo"][section] == demo[section] for section in SECTIONS)
    recipe = copy.deepcopy(configs["recipe"])
    assert n_segments(recipe["train"]) == 6 and recipe["train"]["mixup_prob"] == 1
    recipe["train"].update(crop_seconds=demo["train"]["crop_seconds"], mixup_prob=demo["train"]["mixup_prob"],
                           epochs=demo["train"]["epochs"])
    assert recipe == configs["demo"]


def test_the_strong_labels_example_changes_only_how_annotations_and_the_loss_train():
    demo = merged()
    configs = experiment_configs(merged("configs/strong_labels.yaml"))
    assert list(configs) == ["weak", "strong", "events", "weak_bce", "events_bce"]
    assert all(configs["events"][section] == demo[section] for section in SECTIONS)
    assert demo["train"]["strong_targets"] and demo["train"]["event_crop_prob"] > 0
    for name, cfg in configs.items():
        train = cfg["train"]
        assert (train["strong_targets"], train["event_crop_prob"] > 0) == {
            "weak": (False, False), "strong": (True, False), "events": (True, True),
            "weak_bce": (False, False), "events_bce": (True, True)}[name]
        assert train["loss"] == ("bce" if name.endswith("_bce") else demo["train"]["loss"])


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


def test_a_train_fold_job_reads_only_its_own_kinds_settings():
    config = merged()
    config["experiments"] = {"cnn": None, "probe": {"model": {"kind": "embedding_probe"}}}
    configs = experiment_configs(config)
    cnn, probe = training_params(configs["cnn"]), training_params(configs["probe"])
    assert "backbone" in cnn["model"] and not any(k.startswith(("probe", "zero_shot")) for k in cnn["model"])
    assert cnn["embedding"] is None and cnn["mel"] == configs["cnn"]["mel"]
    assert {"kind", "probe", "probe_unit_length", "zero_shot_labels"} <= set(probe["model"])
    assert "backbone" not in probe["model"] and probe["mel"] is None and probe["sample_rate"] is None
    # how the embeddings are computed (embedding.backend) is not what they are: no retraining
    assert probe["embedding"] == {k: v for k, v in configs["probe"]["embedding"].items() if k != "backend"}


def test_crop_must_be_a_whole_number_of_segments():
    config = merged()
    config["train"]["crop_seconds"] = 12
    with pytest.raises(ConfigError, match="train.crop_seconds"):
        check_config(config)


def test_the_short_clip_preset_is_the_default_plus_its_augmentations():
    """configs/clips.yaml: SpecAugment, time shift and gain on, noise and mixup off; every
    other model and training key as the default (what bench/quality.py measures as
    cnn_augmented)."""
    default, clips = merged(), merged("configs/clips.yaml")
    changed = {k for k in clips["train"] if clips["train"][k] != default["train"][k]}
    assert changed == {"freq_mask", "time_mask", "time_shift_seconds", "gain_db"}
    assert clips["model"] == default["model"] and clips["mel"] == default["mel"]
    assert clips["train"]["mixup_prob"] == 0 and not clips["train"]["white_noise_snr_db"]
    with pytest.raises(ConfigError, match="data.audio_dir"):  # placeholders for the user's own data
        check_config(clips)


def test_profiles_are_found_by_name_from_the_repository_root(monkeypatch):
    """`snakemake --profile local` / `--profile slurm` as the README writes them: Snakemake
    looks the name up in the current folder (then ~/.config/snakemake)."""
    from snakemake.cli import get_profile_dir

    monkeypatch.chdir(REPO)
    for name in ("local", "slurm"):
        folder, config_file = get_profile_dir(name)
        assert config_file.resolve() == (REPO / "profiles" / name / "config.yaml").resolve()


def test_a_missing_zero_shot_label_map_is_named_before_any_job():
    config = merged()
    config["model"]["zero_shot_label_map"] = "nowhere/map.csv"
    with pytest.raises(ConfigError, match="model.zero_shot_label_map: file 'nowhere/map.csv' does not exist"):
        check_config(config)


def test_apptainer_without_an_image_or_the_command_says_what_to_set_and_install(tmp_path):
    from soundclf.config import container_problems

    nothing = lambda name: None  # noqa: E731  (no apptainer, no singularity)
    installed = lambda name: f"/usr/bin/{name}" if name == "apptainer" else None  # noqa: E731
    assert container_problems(None, False, nothing) == []  # no --sdm apptainer: nothing to check
    assert container_problems("docker://example.org/soundclf:1", True, installed) == []
    missing = container_problems(None, True, nothing)
    assert "set container.image" in missing[0] and "apptainer command is not installed" in missing[1]
    assert "does not exist" in container_problems(str(tmp_path / "soundclf.sif"), True, installed)[0]
    (tmp_path / "soundclf.sif").write_bytes(b"sif")
    assert container_problems(str(tmp_path / "soundclf.sif"), True, installed) == []


def test_gpu_requests_live_in_the_profiles_alone_and_both_name_the_same_rules():
    """No rule decides a GPU from the host that plans (a login node's /dev says nothing of a
    compute node's); the SLURM and local profiles list the same GPU rules."""
    import re

    import yaml

    rules = "".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    assert not re.search(r"^\s*gpu\s*=", rules, re.M) and "/dev/nvidia" not in rules
    gpu_rules = {}
    for profile in ("local", "slurm"):
        settings = yaml.safe_load((REPO / f"profiles/{profile}/config.yaml").read_text())["set-resources"]
        gpu_rules[profile] = {rule for rule, resources in settings.items() if resources.get("gpu")}
    assert gpu_rules["local"] == gpu_rules["slurm"] >= {"train_fold", "predict_shard", "teacher_windows", "teacher_scores"}
    declared = set(re.findall(r"^rule (\w+):", rules, re.M)) | set(re.findall(r"^use rule \w+ as (\w+)", rules, re.M))
    assert gpu_rules["slurm"] <= declared
