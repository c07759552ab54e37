"""How much of a real dataset the index keeps: soundclf's decode check against the strict
header check it used before (a file decoding fewer frames than its header states was
rejected as truncated, MP3 exempt only when libsndfile called the format MPEG).

    python bench/input_loss.py /work/data/xenocanto      # a metadata-layout dataset

The dataset comes from bench/prepare_xenocanto.py (real Xeno-canto MP3 downloads)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from soundclf.indexing import build_index  # noqa: E402
from soundclf.sources import list_recordings  # noqa: E402

COLUMNS = {"filename": "filename", "label": "primary_label", "secondary_labels": "secondary_labels"}


def run(data_dir: str | Path) -> dict:
    data_dir = Path(data_dir)
    recordings = list_recordings({"layout": "metadata", "audio_dir": str(data_dir / "train_audio"),
                                  "metadata_csv": str(data_dir / "train_metadata.csv"), "columns": COLUMNS})
    start = time.perf_counter()
    index, classes, rejected = build_index(recordings, COLUMNS, min_seconds=0.0, threads=2)
    seconds = time.perf_counter() - start
    # the strict rule also threw away every kept file whose decoded length fell short of its header
    short = index["note"].str.len().gt(0) & index["format"].ne("MPEG")
    strict = index[~short]
    return {
        "listed": len(recordings), "seconds": seconds, "n_classes": len(set(r.label for r in recordings)),
        "soundclf": {"kept": len(index), "classes": index["primary_label"].nunique(), "hours": index["duration"].sum() / 3600},
        "strict": {"kept": len(strict), "classes": strict["primary_label"].nunique(), "hours": strict["duration"].sum() / 3600},
        "kept_with_note": int(short.sum()),
    }


def table(r: dict) -> str:
    rows = ["| decode check | recordings kept | classes with a recording | hours of audio |", "| --- | --- | --- | --- |"]
    for name, key in (("strict header length (before)", "strict"), ("soundclf: length by decoding", "soundclf")):
        v = r[key]
        rows.append(f"| {name} | {v['kept']} of {r['listed']} ({v['kept'] / r['listed']:.0%}) | "
                    f"{v['classes']} of {r['n_classes']} | {v['hours']:.2f} |")
    return "\n".join(rows + ["", f"{r['kept_with_note']} recordings are kept with a `note` (their header "
                             f"overstated the length); indexing took {r['seconds']:.0f} s on 2 threads."])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir")
    print(table(run(parser.parse_args().data_dir)))
