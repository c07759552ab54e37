"""Where and when a field recording was made, read off its path under the archive folder: the
site (a folder level) and the start time that AudioMoth, Song Meter and other Wildlife
Acoustics recorders write into file names (`20240501_060000.WAV`,
`SMM01234_20240501_060000.wav`). Derived once, where recordings enter prediction; a window's
date-time is its recording's start plus its offset."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# YYYYMMDD_HHMMSS at the end of the stem, alone or after a recorder prefix and '_'
START_TIME = re.compile(r"(?:^|_)(\d{8})_(\d{6})$")


def site_of(key: str, level: int = 1) -> str:
    """The first `level` folders of a recording's key (its path under the archive folder), ''
    for a file at the top; level 0: '' for every recording (no sites)."""
    folders = PurePosixPath(key).parts[:-1]
    return "/".join(folders[:level]) if level else ""


def start_time(key: str) -> tuple[datetime | None, str | None]:
    """(start time, None) from the file name's YYYYMMDD_HHMMSS; (None, None) for a name that
    carries none; (None, the digits) for one that does not parse as a date-time (month 13)."""
    found = START_TIME.search(PurePosixPath(key).stem)
    if not found:
        return None, None
    text = f"{found.group(1)}_{found.group(2)}"
    try:
        return datetime.strptime(text, "%Y%m%d_%H%M%S"), None
    except ValueError:
        return None, text


def recording_starts(keys) -> dict[str, datetime | None]:
    """Start time (None where unknown) of each recording key; a time stamp that does not parse
    is logged once per recorder folder (the folder, how many, one example), never guessed."""
    starts, bad = {}, {}
    for key in dict.fromkeys(keys):
        starts[key], text = start_time(key)
        if text:
            bad.setdefault(str(PurePosixPath(key).parent), []).append(key)
    for folder, names in bad.items():
        log.warning("%s: %d file name(s) carry a time stamp that is no date-time (e.g. %s); their windows get an "
                    "empty datetime (rename them YYYYMMDD_HHMMSS to have one)", folder, len(names), names[0])
    return starts


def deployment_columns(files: pd.Series, starts_seconds: pd.Series, site_level: int = 1) -> pd.DataFrame:
    """`site` and `datetime` (recording start + window start; NaT where the name carries no
    start time) of each window, from its recording key and start second."""
    starts = recording_starts(files)
    begin = pd.Series([starts[key] for key in files], dtype="datetime64[ns]")
    when = begin + pd.to_timedelta(np.asarray(starts_seconds, dtype=float), unit="s")
    return pd.DataFrame({"site": pd.Series([site_of(key, site_level) for key in files], dtype=str), "datetime": when})
