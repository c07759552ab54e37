"""Lay out ESC-10 (400 labelled 5 s clips, 10 classes, 5 official folds) for the benchmarks.

Source: the public GitHub repository karolpiczak/ESC-10 (formerly karoldvl/ESC-10), the
author's own release of ESC-10. Its audio lives only in history: commit
553c8f1743b9dba6b282e1323c3ca8fa76923448 (2015-10-08) holds
``<NNN - Class name>/<fold>-<Freesound id>-<take>.ogg`` (Ogg Vorbis, 44.1 kHz mono) and
``README.txt`` (per-clip attribution); the current HEAD (b3c13676, 2017) deleted everything
when ESC-10 was folded into karolpiczak/ESC-50.

Dataset: K. J. Piczak, "ESC: Dataset for Environmental Sound Classification", Proc. 23rd
ACM International Conference on Multimedia (MM '15), 2015, pp. 1015-1018,
doi:10.1145/2733373.2806390 (data: doi:10.7910/DVN/YDEPUT). ESC-10 is released under
CC BY 3.0 (its README; unlike the CC BY-NC ESC-50), built from Freesound recordings under
CC0, CC BY or CC Sampling+, listed per clip in ``clip_license``. The files are copied
byte for byte (checked against their git blob ids) and are never committed.

Folds are the published ones: the first field of each file name, as the README states
("prearranged into 5 folds; clips stemming from the same original source file are contained
in a single fold"). ``src_file`` is the Freesound id of that source recording (the group).

What is written:

* ``OUT/audio/<fold>-<src_file>-<take>.ogg`` (names are unique across classes).
* ``OUT/metadata.csv``: ``filename`` (relative to ``audio``), ``label`` (class name in
  snake case), ``fold``, ``src_file``, ``take``, ``target`` (the README's class number,
  1-10), ``category`` (class folder name), attribution (``author``, ``clip_license``,
  ``freesound_url``, ``source_title``) and ``duration_s``, ``sample_rate``, ``channels``,
  ``bytes``.

Run, with the bare git dir that ``fetch github:karolpiczak/ESC-10`` gave::

    .venv/bin/python bench/prepare_esc10.py \\
        --mirror /work/.mirror/karolpiczak+ESC-10/repo --out /work/data/esc10
"""
from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

import pandas as pd
import soundfile as sf

from common import git, read_blob

COMMIT = "553c8f1743b9dba6b282e1323c3ca8fa76923448"
NAME = re.compile(r"^(?P<target>\d{3}) - (?P<category>[^/]+)/"
                  r"(?P<file>(?P<fold>[1-5])-(?P<src_file>\d+)-(?P<take>[A-Z])\.ogg)$")
CREDIT = re.compile(r"^- \[(?P<file>[^\]]+)\]:\s+clip derived from (?P<source_title>.*) "
                    r"\((?P<freesound_url>https?://\S+)\) by (?P<author>.*) "
                    r"\[(?P<clip_license>[^\]]+)\]$")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", type=Path, required=True, help="bare git dir of karolpiczak/ESC-10")
    ap.add_argument("--out", type=Path, default=Path("/work/data/esc10"))
    ap.add_argument("--commit", default=COMMIT)
    args = ap.parse_args()

    readme = git(args.mirror, "show", f"{args.commit}:README.txt").decode("utf-8")
    credits = {m["file"]: m.groupdict() for m in map(CREDIT.match, readme.splitlines()) if m}

    rows = []
    for entry in filter(None, git(args.mirror, "ls-tree", "-r", "-z", args.commit).split(b"\0")):
        meta, path = entry.decode().split("\t", 1)
        m = NAME.match(path)
        if m is None:
            continue
        blob = meta.split()[2]
        data = read_blob(args.mirror, blob, path)  # fails loudly if absent from the mirror
        if data[:4] != b"OggS":
            raise SystemExit(f"{path}: not an Ogg file")
        if m["file"] not in credits:
            raise SystemExit(f"{path}: no attribution line in README.txt")
        info = sf.info(io.BytesIO(data))

        target = args.out / "audio" / m["file"]
        if target.exists() and target.read_bytes() != data:
            raise SystemExit(f"{target}: exists with other content")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        credit = credits[m["file"]]
        rows.append({
            "filename": m["file"],
            "label": m["category"].lower().replace(" ", "_"),
            "fold": int(m["fold"]),
            "src_file": int(m["src_file"]),
            "take": m["take"],
            "target": int(m["target"]),
            "category": m["category"],
            "author": credit["author"],
            "clip_license": credit["clip_license"],
            "freesound_url": credit["freesound_url"],
            "source_title": credit["source_title"],
            "duration_s": round(info.duration, 4),
            "sample_rate": info.samplerate,
            "channels": info.channels,
            "bytes": len(data),
        })

    table = pd.DataFrame(rows).sort_values(["fold", "filename"])
    if table.filename.duplicated().any():
        raise SystemExit("duplicate file names across classes")
    if (table.groupby("src_file").fold.nunique() > 1).any():
        raise SystemExit("a source recording spans several folds")
    table.to_csv(args.out / "metadata.csv", index=False)
    print(f"{len(table)} clips, {table.label.nunique()} labels, folds "
          f"{table.fold.value_counts().sort_index().to_dict()}, {table.src_file.nunique()} "
          f"source recordings -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
