"""Checks of the configuration that a JSON schema cannot express, and derived settings.

Standard library only (the Snakefile runs this while it parses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEMO_COLUMNS = {"filename": "filename", "label": "primary_label", "secondary_labels": "secondary_labels"}


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key and the fix."""


def demo_dir(config: dict[str, Any]) -> Path:
    return Path(config["results_dir"]) / "demo"


def effective_data(config: dict[str, Any]) -> dict[str, Any]:
    """The data section with the demo's own paths and columns filled in for layout 'demo'."""
    data = dict(config["data"])
    if data["layout"] == "demo":
        data.update(
            audio_dir=str(demo_dir(config) / "train_audio"),
            metadata_csv=str(demo_dir(config) / "train_metadata.csv"),
            columns=dict(DEMO_COLUMNS),
        )
    return data


def effective_predict(config: dict[str, Any]) -> dict[str, Any]:
    """The predict section with the demo soundscapes and their labels filled in for layout
    'demo' when no folder is configured."""
    predict = dict(config["predict"])
    if config["data"]["layout"] == "demo" and not predict["audio_dir"]:
        predict["audio_dir"] = str(demo_dir(config) / "soundscapes")
        predict["labels_csv"] = predict["labels_csv"] or str(demo_dir(config) / "soundscape_labels.csv")
    return predict


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
        if data["layout"] == "folders" and config["folds"]["group_column"]:
            problems.append("folds.group_column needs a metadata table; a folder tree has no metadata columns (set it to null)")
    train = config["train"]
    segments = n_segments(train)
    if segments < 1 or abs(segments * train["segment_seconds"] - train["crop_seconds"]) > 1e-9:
        problems.append(f"train.crop_seconds ({train['crop_seconds']}) must be a whole multiple of train.segment_seconds ({train['segment_seconds']}): the crop is cut into equal segments")
    model = config["model"]
    if model["pretrained_path"] and not Path(model["pretrained_path"]).is_file():
        problems.append(f"model.pretrained_path: file '{model['pretrained_path']}' does not exist; point it at a local weights file or set it to null")
    predict = config["predict"]
    if predict["audio_dir"] and not Path(predict["audio_dir"]).is_dir():
        problems.append(f"predict.audio_dir: folder '{predict['audio_dir']}' does not exist; set it to the recordings to classify or to null")
    if predict["labels_csv"] and not Path(predict["labels_csv"]).is_file():
        problems.append(f"predict.labels_csv: file '{predict['labels_csv']}' does not exist; set it to a row_id,birds table or to null")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
