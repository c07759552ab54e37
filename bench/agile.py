"""Agile modelling with an oracle reviewer: how close rounds of search and review come to a probe
trained on every label, with how many labels.

    python bench/agile.py xenocanto /work/runs/xc/results [--min-recordings 8] [--rounds 5] [--c 1] [--examples 1] [--example-seed S]
        [--silence-db DB]

The archive: every recording of a workflow run's index (its embedding cache, BirdNET V2.4 at
1 s hop, taken every 3rd window: the archive's 3 s hop), labels hidden. Per species with at
least --min-recordings recordings: one example call, the 3 s window in the middle of its first
recording (by key; no label-free choice is better informed; --examples N: the middle windows of
its first N recordings, searched as their mean direction, as search.queries does with several
queries of one label; --example-seed S: of N recordings drawn at random, seed S), searched by
example (search.queries.search_label: top 20, at most 3 per recording); then --rounds rounds of soundclf.search.rounds
(a probe on the marks and the query, 1000 background windows at weight 0.1, inverse L2
strength --c (search.round.c); 20 windows drawn: 10 top, 6 boundary, 4 random). The oracle
marks a window yes when its recording's primary label is the species (Xeno-canto recordings
are focal: the species calls through most of them; a window-level truth would be stricter).
--silence-db DB makes it stricter where a dataset pads its clips with digital silence (ESC-50):
a window whose level is below DB dBFS holds no call, so the oracle marks it no and the reference
learns it as a negative.

After each round: the probe's average precision over the archive's recordings (a recording's
score: its windows' max) for the species, and the share of the species' recordings with a
window marked yes so far. The reference: a probe trained on every window's label (its
recording's), scored on the same archive as the agile probe is (both have seen labels of the
recordings they score: in-sample), and, for context, out of fold (per recordist fold of the
run, trained on the other folds). Writes results/bench/agile/<name>.json and agile.<name>.* in results.json."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).resolve().parents[1] / "src")]
from common import WORK, record_figures  # noqa: E402
from soundclf.embedding.cache import EmbeddingCache  # noqa: E402
from soundclf.indexing import read_index  # noqa: E402
from soundclf.search.index import ArchiveIndex, ShardIndex  # noqa: E402
from soundclf.search.queries import label_vector, search_label  # noqa: E402
from soundclf.search.rounds import Draw, draw_next, fit_round_probe, score_archive, training_set  # noqa: E402

HOP, WINDOW, EVERY = 3.0, 3.0, 3  # the archive's hop: every 3rd window of the 1 s cache
FIRST = {"top_k": 20, "per_recording": 3}


def average_precision(scores: np.ndarray, truth: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(truth, scores))


def recording_ap(scores: pd.DataFrame, positives: set[str]) -> float:
    """AP of the recordings' scores (max over their windows) for one species."""
    per_recording = scores.groupby("file")["score"].max()
    return average_precision(per_recording.to_numpy(), per_recording.index.isin(positives))


def window_levels(windows: pd.DataFrame, paths: pd.Series) -> np.ndarray:
    """Each archive window's level in dBFS (its channels' mean, WINDOW seconds from its start)."""
    import soundfile as sf

    levels = np.empty(len(windows))
    for key, rows in windows.groupby("file").groups.items():
        audio, rate = sf.read(paths[key], always_2d=True)
        audio = audio.mean(1)
        for i in rows:
            start = int(windows.at[i, "start"] * rate)
            part = audio[start:start + int(WINDOW * rate)]
            levels[i] = 10 * np.log10(np.mean(part ** 2) + 1e-12) if len(part) else -120.0
    return levels


def example_window(windows: pd.DataFrame, key: str) -> int:
    """The row of a recording's example call: its middle window (of those not silent)."""
    rows = windows.index[(windows["file"] == key) & windows["sound"]]
    if not len(rows):
        rows = windows.index[windows["file"] == key]
    return int(rows[len(rows) // 2])


def full_probe_ap(x: np.ndarray, windows: pd.DataFrame, folds: pd.Series, positives: set[str],
                  c: float) -> tuple[float, float]:
    """The reference, a probe on every window's label (its recording's, windows of silence
    negative): (AP on the archive it was trained on, as the agile probe is scored; AP out of
    fold: per recordist fold, trained on the others)."""
    target = (windows["file"].isin(positives) & windows["sound"]).to_numpy(float)
    in_sample = fit_round_probe(x, target, np.ones(len(x)), c).predict_proba(x)[:, 1]
    fold = windows["file"].map(folds).to_numpy()
    scores = np.zeros(len(windows))
    for k in np.unique(fold):
        train = fold != k
        probe = fit_round_probe(x[train], target[train], np.ones(int(train.sum())), c)
        scores[~train] = probe.predict_proba(x[~train])[:, 1]
    return (recording_ap(windows.assign(score=in_sample), positives),
            recording_ap(windows.assign(score=scores), positives))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name")
    ap.add_argument("results", type=Path, help="a workflow run's results folder (its index, folds and embeddings)")
    ap.add_argument("--min-recordings", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--c", type=float, default=Draw.c, help="the probes' inverse L2 strength (search.round.c); "
                    "not the default: figures under agile.<name>.c<value>.*")
    ap.add_argument("--examples", type=int, default=1, help="example calls per species (the middle window of each "
                    "of its first N recordings); not 1: figures under agile.<name>.examples<N>.*")
    ap.add_argument("--silence-db", type=float, help="windows below this level (dBFS) hold no call: the oracle "
                    "marks them no (for datasets padded with digital silence); figures under .silence<-DB>")
    ap.add_argument("--example-seed", type=int, help="draw the example recordings at random with this seed instead "
                    "of the first by key; figures under agile.<name>[.examples<N>].seed<S>.*")
    args = ap.parse_args()
    run_name = args.name + (f".c{args.c:g}" if args.c != Draw.c else "") + (
        f".examples{args.examples}" if args.examples != 1 else "") + (
        f".seed{args.example_seed}" if args.example_seed is not None else "") + (
        f".silence{-args.silence_db:g}" if args.silence_db is not None else "")

    folds = read_index(args.results / "folds/folds.csv")
    [cache_dir] = [d for d in (args.results / "embeddings").iterdir() if d.is_dir()]
    cache = EmbeddingCache(cache_dir, len(list(cache_dir.glob("shard_*.h5"))))
    out = WORK / "agile"
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"{run_name}_archive.h5"  # the archive at its own hop, as archive_embed_shard writes it
    with h5py.File(archive, "w") as h5:
        for key in folds["key"]:
            h5.create_dataset(key, data=cache.embeddings(key)[::EVERY].astype(np.float16))
    shards = [archive]
    index = ArchiveIndex([ShardIndex.from_shard(archive)])
    windows = pd.DataFrame([(k, w * HOP) for k, n in zip(index.shards[0].keys, index.shards[0].counts) for w in range(n)],
                           columns=["file", "start"])
    x = index.shards[0].vectors
    windows["sound"] = True
    if args.silence_db is not None:
        windows["sound"] = window_levels(windows, folds.set_index("key")["path"]) >= args.silence_db
        print(f"{int((~windows['sound']).sum())} windows below {args.silence_db:g} dBFS hold no call", flush=True)
    sound = set(zip(windows.loc[windows["sound"], "file"], windows.loc[windows["sound"], "start"], strict=True))
    label_of = folds.set_index("key")["primary_label"]

    def oracle(files, starts, name) -> list[float]:
        """The reviewer's marks: yes where the window's recording is of the species and the
        window is not silent."""
        return [float(label_of[f] == name and (f, s) in sound) for f, s in zip(files, starts)]

    counts = folds["primary_label"].value_counts()
    species = sorted(counts[counts >= args.min_recordings].index)
    paths = dict(zip(folds["key"], folds["key"]))
    print(f"archive: {len(folds)} recordings, {len(windows)} windows of {HOP:g} s; {len(species)} species with "
          f">= {args.min_recordings} recordings", flush=True)

    per_species = {}
    for name in species:
        positives = set(folds.loc[folds["primary_label"] == name, "key"])
        keys = sorted(positives)
        if args.example_seed is not None:
            keys = list(np.random.default_rng(args.example_seed).permutation(keys))
        queries = [example_window(windows, key) for key in keys[:args.examples]]
        vector = label_vector(x[queries])
        found = search_label(index, vector, name, FIRST["top_k"], FIRST["per_recording"], HOP, WINDOW, paths)
        verdicts = oracle(found["file"], found["start"], name)
        marked = pd.DataFrame({"file": list(windows.loc[queries, "file"]) + list(found["file"]),
                               "start": list(windows.loc[queries, "start"]) + list(found["start"]),
                               "target": [1.0] * len(queries) + verdicts})
        marked = marked.drop_duplicates(["file", "start"], keep="last")
        rows = [{"round": 0, "labels": len(found), "precision_at_20": float(np.mean(verdicts)),
                 "found": len(positives & set(marked.loc[marked["target"] == 1, "file"])) / len(positives)}]
        for r in range(1, args.rounds + 1):
            draw = Draw(seed=r)
            xs, target, weight, n_by = training_set(marked, shards, HOP, draw)
            probe = fit_round_probe(xs, target, weight, args.c)
            scores = score_archive(probe, shards, HOP)
            rows[-1]["ap"] = recording_ap(scores, positives)  # the probe after the marks of the round before
            nxt = draw_next(scores, set(zip(marked["file"], marked["start"])), draw)
            new = pd.DataFrame({"file": nxt["file"], "start": nxt["start"],
                                "target": oracle(nxt["file"], nxt["start"], name)})
            marked = pd.concat([marked, new], ignore_index=True)
            rows.append({"round": r, "labels": rows[-1]["labels"] + len(nxt),
                         "found": len(positives & set(marked.loc[marked["target"] == 1, "file"])) / len(positives)})
        xs, target, weight, _ = training_set(marked, shards, HOP, Draw(seed=args.rounds + 1))
        rows[-1]["ap"] = recording_ap(score_archive(fit_round_probe(xs, target, weight, args.c), shards, HOP), positives)
        full, full_oof = full_probe_ap(x, windows, folds.set_index("key")["fold"], positives, args.c)
        per_species[name] = {"recordings": len(positives), "rounds": rows, "full_ap": full, "full_ap_oof": full_oof}
        print(name, f"full AP {full:.3f} (out of fold {full_oof:.3f})", " ".join(f"r{row['round']}: AP {row['ap']:.3f} found {row['found']:.2f}"
                                                     for row in rows), flush=True)

    archive.unlink()  # scratch: the cache holds the embeddings
    summary = []
    for r in range(args.rounds + 1):
        share = [s["rounds"][r]["ap"] / s["full_ap"] for s in per_species.values()]
        summary.append({"round": r, "labels": per_species[species[0]]["rounds"][r]["labels"],
                        "ap": float(np.mean([s["rounds"][r]["ap"] for s in per_species.values()])),
                        "share_of_full": float(np.mean(share)), "share_std": float(np.std(share)),
                        "found": float(np.mean([s["rounds"][r]["found"] for s in per_species.values()]))})
    full_ap = float(np.mean([s["full_ap"] for s in per_species.values()]))
    full_oof = float(np.mean([s["full_ap_oof"] for s in per_species.values()]))
    precision = float(np.mean([s["rounds"][0]["precision_at_20"] for s in per_species.values()]))
    result = {"species": per_species, "rounds": summary, "full_ap": full_ap, "full_ap_out_of_fold": full_oof,
              "precision_at_20": precision, "full_labels": len(windows), "examples": args.examples,
              "example_seed": args.example_seed}
    (out / f"{run_name}.json").write_text(json.dumps(result, indent=1))
    print(f"full probe AP {full_ap:.3f} on its own archive, {full_oof:.3f} out of fold ({len(windows)} window labels); "
          f"first search precision@20 {precision:.3f}")
    for row in summary:
        print(f"round {row['round']}: {row['labels']} labels, AP {row['ap']:.3f}, share of full "
              f"{row['share_of_full']:.3f} ± {row['share_std']:.3f}, recordings found {row['found']:.3f}")
    record_figures({f"agile.{run_name}.rounds": args.rounds,
                    f"agile.{run_name}.share_of_full_accuracy": summary[-1]["share_of_full"],
                    f"agile.{run_name}.labels": summary[-1]["labels"],
                    f"agile.{run_name}.full_labels": result["full_labels"],
                    f"agile.{run_name}.precision_at_20": precision})
    return 0


if __name__ == "__main__":
    sys.exit(main())
