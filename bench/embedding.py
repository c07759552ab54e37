"""Embedding throughput from source audio: decode + resample to 48 kHz + BirdNET V2.4, as the
embed_shard jobs do it (soundclf.embedding.cache.embed_files), in real time per core and hours
of audio per minute on all cores (one process per core, one interpreter thread each).

    python bench/embedding.py [AUDIO_DIR] [--files N]   # default: the Xeno-canto MP3s of bench/prepare_xenocanto.py

Rows per embedding hop (1 s: the default, 3 windows per second of audio; 3 s: BirdNET-Analyzer's
default, no overlap): decode + resample alone, the whole embedding, and beside them the plain
loop of bench/quality.py's plain probe (whole file read, resampled, non-overlapping windows:
quality.plain_windows), run through the same Embedder."""
from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from common import WORK, markdown_table, record_figures
from soundclf.audio import stream_mono
from soundclf.embedding.cache import embed_files
from soundclf.embedding.model import EmbeddingSpec, Embedder

HOPS = (1.0, 3.0)


def decode_resample(files: list[str], hop: float) -> float:
    return sum(sum(len(b) for b in stream_mono(f, 48000)) for f in files) / 48000


def embed(files: list[str], hop: float) -> float:
    embedder = Embedder(EmbeddingSpec(hop_seconds=hop), threads=1)
    return sum(seconds for _, _, seconds in embed_files(files, embedder))


def embed_backend(backend: str, files: list[str], hop: float) -> float:
    """The embed_shard path with embedding.backend `backend` (the ONNX export made beforehand,
    in run(), as the first job of a workflow run makes it)."""
    from soundclf.embedding.backends import make_embedder

    embedder = make_embedder(EmbeddingSpec(hop_seconds=hop), backend, threads=1, export_dir=EXPORT_DIR, device="cpu")
    return sum(seconds for _, _, seconds in embed_files(files, embedder))


def embed_torch(files: list[str], hop: float) -> float:
    return embed_backend("torch", files, hop)


def embed_onnx(files: list[str], hop: float) -> float:
    return embed_backend("onnx", files, hop)


EXPORT_DIR = WORK / "embedding" / "onnx"  # derived from the installed wheel, git-ignored (CC BY-NC-SA 4.0)


def agreement(files: list[str]) -> dict:
    """Largest embedding difference of torch and onnx to LiteRT over the first files' windows
    (hop 3 s), in float32 and as the cache stores them (the share of float16 values that differ)."""
    from soundclf.embedding.backends import make_embedder

    spec = EmbeddingSpec(hop_seconds=3.0)
    out = {name: [e for _, e, _ in sorted(embed_files(files, make_embedder(spec, name, export_dir=EXPORT_DIR,
                                                                           device="cpu")), key=lambda r: r[0])]
           for name in ("litert", "torch", "onnx")}
    result = {}
    for name in ("torch", "onnx"):
        a, b = (np.concatenate(out[k]) for k in ("litert", name))
        result[name] = {"max_abs": float(np.abs(a - b).max()), "max_abs_value": float(np.abs(a).max()),
                        "float16_differ": float((a.astype(np.float16) != b.astype(np.float16)).mean()),
                        "windows": len(a)}
    return result


def plain_loop(files: list[str], hop: float) -> float:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from quality import load, plain_windows

    embedder, seconds = Embedder(EmbeddingSpec(), threads=1), 0.0
    for path in files:
        wave = load(path, 48000)
        embedder(plain_windows(wave))
        seconds += len(wave) / 48000
    return seconds


def one_thread() -> None:
    """Each worker as an embed_shard job with one thread (torch would take every core)."""
    import torch

    torch.set_num_threads(1)


def on_cores(task, files: list[str], hop: float, cores: int) -> tuple[float, float]:
    """(seconds of audio, wall seconds) of `task` over the files split across `cores` processes,
    spawned as Snakemake starts its jobs: each pays its own imports and interpreter set-up."""
    parts = [files[i::cores] for i in range(cores)]
    start = time.perf_counter()
    with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("spawn"), initializer=one_thread) as pool:
        audio = sum(pool.map(task, parts, [hop] * cores))
    return audio, time.perf_counter() - start


def run(audio_dir: Path, n_files: int = 120, cores: int = 2) -> dict:
    files = sorted(str(p) for p in audio_dir.rglob("*") if p.suffix.lower() in {".mp3", ".ogg", ".flac", ".wav"})
    files = files[:: max(1, len(files) // n_files)][:n_files]
    from soundclf.embedding.backends import make_embedder

    make_embedder(EmbeddingSpec(), "onnx", export_dir=EXPORT_DIR)  # the export, once
    rows = []
    for name, task, hops in (("decode + resample to 48 kHz", decode_resample, (1.0,)),
                             ("soundclf embed_shard, backend litert", embed, HOPS),
                             ("soundclf embed_shard, backend torch (CPU)", embed_torch, HOPS),
                             ("soundclf embed_shard, backend onnx", embed_onnx, HOPS),
                             ("plain loop (bench/quality.py plain probe)", plain_loop, (3.0,))):
        for hop in hops:
            audio, wall = on_cores(task, files, hop, cores)
            rows.append({"what": name, "task": task.__name__, "hop": hop, "audio_seconds": audio, "wall_seconds": wall})
            print(rows[-1], flush=True)
    return {"audio_dir": str(audio_dir), "n_files": len(files), "cores": cores, "rows": rows,
            "agreement": agreement(files[:8])}


def realtime_per_core(row: dict, cores: int) -> float:
    return row["audio_seconds"] / row["wall_seconds"] / cores


def hours_per_minute(row: dict) -> float:
    return row["audio_seconds"] / 3600 / (row["wall_seconds"] / 60)


def table(out: dict) -> str:
    rows = [[r["what"], f"{r['hop']:g} s", f"{r['audio_seconds'] / 60:.1f}", f"{r['wall_seconds']:.1f}",
             f"{realtime_per_core(r, out['cores']):.0f}×", f"{hours_per_minute(r):.2f}"] for r in out["rows"]]
    return f"{out['n_files']} files of {out['audio_dir']}, {out['cores']} processes\n\n" + markdown_table(
        ["what", "hop", "audio (min)", "wall (s)", "× real time per core", f"hours of audio per minute ({out['cores']} cores)"],
        rows)


def flat(out: dict) -> dict:
    figures, rows = {}, {}
    for r in out["rows"]:
        key = f"embedding.{r['task']}.hop{r['hop']:g}"
        rows[key] = r
        figures[f"{key}.realtime_per_core"] = round(realtime_per_core(r, out["cores"]), 1)
        figures[f"{key}.hours_per_minute"] = round(hours_per_minute(r), 3)
    # the figures, at hop 3 s: the default backend's whole path, and it against LiteRT's
    from soundclf.embedding.backends import DEFAULT_BACKEND

    best = rows[f"embedding.embed_{DEFAULT_BACKEND}.hop3"]
    figures["embedding.path_real_time_per_core"] = round(realtime_per_core(best, out["cores"]), 1)
    figures["embedding.path_backend"] = DEFAULT_BACKEND
    for name in ("torch", "onnx"):
        figures[f"embedding.{name}_vs_litert.speedup"] = round(
            rows["embedding.embed.hop3"]["wall_seconds"] / rows[f"embedding.embed_{name}.hop3"]["wall_seconds"], 2)
        for k, v in out["agreement"][name].items():
            figures[f"embedding.{name}_vs_litert.{k}"] = v if k == "windows" else float(f"{v:.3g}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("audio_dir", nargs="?", type=Path, default=Path("/work/data/xenocanto/train_audio"))
    parser.add_argument("--files", type=int, default=120)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    out = run(args.audio_dir, args.files, args.cores)
    (WORK / "embedding").mkdir(parents=True, exist_ok=True)
    (WORK / "embedding" / "embedding.json").write_text(json.dumps(out, indent=1))
    record_figures(flat(out))
    print(table(out))
    print(json.dumps(out["agreement"], indent=1))


if __name__ == "__main__":
    main()
