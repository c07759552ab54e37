"""Lay out a small real Xeno-canto dataset in BirdCLEF form, for the benchmarks.

Source: the public GitHub repository rrodzstgo/bird_audio_xeno_canto (Puerto Rico
recordings fetched from the Xeno-canto API). Its audio lives only in history: commit
ff7d59f607205f2d7a3c788c88a7129718fc6a8d holds ``audio_files/<XC id>.mp3`` and
``data/puerto_rico_recordings.json`` (the XC API v2 response: recordist, species,
licence, ...); the current HEAD (3e08ccd6) deleted the audio. The repository carries no
licence of its own. Each recording keeps its Xeno-canto licence, given per row in the
``license`` column (mostly CC BY-NC-SA 3.0/4.0, some CC BY-NC-ND, a few CC BY-SA):
non-commercial use with attribution, and the -ND ones may not be altered, so the files
are copied byte for byte (checked against their git blob ids) and never committed.

What is written:

* ``OUT/train_audio/<primary_label>/XC<id>.mp3``: only blobs that really are MP3
  (start with ``ID3`` or an MPEG sync word). Skipped with a note: WAV files the source
  saved under an ``.mp3`` name, and blobs missing from the mirror (snapshots leave out
  files of 4 MiB or more).
* ``OUT/train_metadata.csv``: ``filename`` (relative to ``train_audio``),
  ``primary_label`` (``genus_species``, lower case), ``secondary_labels`` (always
  ``[]``; XC's background species are in ``also``), ``author`` (the XC recordist, never
  empty in this source; the XC id is the fallback), then XC metadata columns.

Run, with the bare git dir that ``fetch github:rrodzstgo/bird_audio_xeno_canto`` gave::

    .venv/bin/python bench/prepare_xenocanto.py \\
        --mirror /work/.mirror/rrodzstgo+bird_audio_xeno_canto/repo --out /work/data/xenocanto
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from common import git, read_blob

COMMIT = "ff7d59f607205f2d7a3c788c88a7129718fc6a8d"
AUDIO_DIR = "audio_files/"
METADATA = "data/puerto_rico_recordings.json"


def is_mp3(data: bytes) -> bool:
    return data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", type=Path, required=True, help="bare git dir of the source repository")
    ap.add_argument("--out", type=Path, default=Path("/work/data/xenocanto"))
    ap.add_argument("--commit", default=COMMIT)
    args = ap.parse_args()

    recordings = {r["id"]: r for r in json.loads(git(args.mirror, "show", f"{args.commit}:{METADATA}"))["recordings"]}
    tree = git(args.mirror, "ls-tree", "-r", "-z", args.commit, AUDIO_DIR).split(b"\0")

    rows, skipped = [], {"not in metadata": 0, "absent from mirror": 0, "not MP3": 0}
    for entry in filter(None, tree):
        meta, path = entry.decode().split("\t", 1)
        blob = meta.split()[2]
        rec = recordings.get(Path(path).stem)
        if rec is None:
            skipped["not in metadata"] += 1
            continue
        try:
            data = read_blob(args.mirror, blob, path)
        except subprocess.CalledProcessError:
            skipped["absent from mirror"] += 1
            continue
        if not is_mp3(data):
            skipped["not MP3"] += 1
            continue

        label = f"{rec['gen']}_{rec['sp']}".lower().replace(" ", "_")
        filename = f"{label}/XC{rec['id']}.mp3"
        target = args.out / "train_audio" / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        rows.append({
            "filename": filename,
            "primary_label": label,
            "secondary_labels": "[]",
            "author": rec.get("rec") or f"XC{rec['id']}",
            "xc_id": f"XC{rec['id']}",
            "scientific_name": f"{rec['gen']} {rec['sp']}",
            "common_name": rec.get("en", ""),
            "group": rec.get("group", ""),
            "type": rec.get("type", ""),
            "rating": rec.get("q", ""),
            "length": rec.get("length", ""),
            "date": rec.get("date", ""),
            "country": rec.get("cnt", ""),
            "locality": rec.get("loc", ""),
            "latitude": rec.get("lat", ""),
            "longitude": rec.get("lng", ""),
            "also": json.dumps(rec.get("also", [])),
            "license": "https:" + rec["lic"] if rec.get("lic", "").startswith("//") else rec.get("lic", ""),
            "url": "https://xeno-canto.org/" + rec["id"],
            "bytes": len(data),
        })

    table = pd.DataFrame(rows).sort_values("filename")
    table.to_csv(args.out / "train_metadata.csv", index=False)
    print(f"{len(table)} MP3 files, {table.primary_label.nunique()} labels, "
          f"{table.author.nunique()} authors -> {args.out}; skipped: {skipped}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
