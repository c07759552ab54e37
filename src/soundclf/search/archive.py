"""The archive that search by example looks in: every audio file under search.audio_dir, keyed
by its path there (the key its embeddings and index rows carry)."""

from __future__ import annotations

from pathlib import Path

from ..sources import DataSourceError, list_audio_files, relative_key


def list_archive(audio_dir: str | Path, extensions) -> list[tuple[str, str]]:
    """(key, path) of every recording of the archive; a missing or empty folder stops the run
    with what to do."""
    folder = Path(audio_dir)
    if not folder.is_dir():
        raise DataSourceError(f"search.audio_dir: '{folder}' is not a folder; give the archive's folder, "
                              "or set search.audio_dir to null")
    files = list_audio_files(folder, extensions)
    if not files:
        raise DataSourceError(f"search.audio_dir: '{folder}' holds no audio file ({', '.join(extensions)}); "
                              "add the recordings to search, or set search.audio_dir to null")
    return [(relative_key(path, folder), path) for path in files]
