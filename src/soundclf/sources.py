"""Which recordings a dataset holds, and which cache shard each belongs to.

Standard library only: the Snakefile calls this while it parses, to give every mel-shard
job exactly its own audio files as inputs (so adding a recording reruns one shard).
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUDIO_EXTENSIONS = ("ogg", "flac", "wav", "mp3", "opus", "aiff", "aif")


class DataSourceError(Exception):
    """The configured data cannot be listed; the message names the config key and the fix."""


@dataclass(frozen=True)
class Recording:
    key: str  # path relative to the audio folder, with '/' separators: the cache key
    path: str  # path to open, as configured (relative to the working directory or absolute)
    label: str  # primary label ('' when the metadata row has none)
    row: dict[str, str]  # the metadata row, or {} for a folder tree


def shard_of(key: str, n_shards: int) -> int:
    """Stable shard number of a recording key (independent of the other recordings)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_shards


def list_recordings(data: dict[str, Any]) -> list[Recording]:
    """All recordings the `data` config section names, sorted by key."""
    audio_dir = Path(data["audio_dir"])
    if data["layout"] == "folders":
        recordings = _scan_folders(audio_dir, data.get("extensions", AUDIO_EXTENSIONS))
    else:
        recordings = _read_metadata(audio_dir, Path(data["metadata_csv"]), data["columns"])
    return sorted(recordings, key=lambda r: r.key)


def _scan_folders(audio_dir: Path, extensions) -> list[Recording]:
    if not audio_dir.is_dir():
        raise DataSourceError(
            f"data.audio_dir: folder '{audio_dir}' does not exist; point it at a folder "
            "holding one sub-folder of recordings per class."
        )
    found = []
    for path in list_audio_files(audio_dir, extensions):
        key = Path(os.path.relpath(path, audio_dir)).as_posix()
        if "/" not in key:
            continue  # files directly under audio_dir have no class folder
        found.append(Recording(key, str(audio_dir / key), key.split("/", 1)[0], {}))
    return found


def _read_metadata(audio_dir: Path, metadata_csv: Path, columns: dict[str, str]) -> list[Recording]:
    if not metadata_csv.is_file():
        raise DataSourceError(
            f"data.metadata_csv: file '{metadata_csv}' does not exist; set it to your metadata "
            "table, or use data.layout: folders for a folder-per-class tree."
        )
    with open(metadata_csv, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        for role in ("filename", "label"):
            if columns[role] not in header:
                raise DataSourceError(
                    f"data.columns.{role}: column '{columns[role]}' is not in {metadata_csv} "
                    f"(its columns: {', '.join(header)}); set data.columns.{role} to the right name."
                )
        rows = list(reader)
    recordings = []
    for row in rows:
        key = Path(row[columns["filename"]].strip()).as_posix()
        recordings.append(Recording(key, str(audio_dir / key), row[columns["label"]].strip(), row))
    return recordings


def list_audio_files(folder: str | Path, extensions=AUDIO_EXTENSIONS) -> list[str]:
    """Every audio file under `folder` (recursively, hidden files skipped), sorted."""
    wanted = {e.lower().lstrip(".") for e in extensions}
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, name) for name in files
                  if not name.startswith(".") and name.rsplit(".", 1)[-1].lower() in wanted]
    return sorted(found)
