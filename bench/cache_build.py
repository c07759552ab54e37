"""Benchmark 1: the mel cache build against a per-file librosa loop and against pure decoding.

Seconds of audio turned into cached log-mels per wall second (best of 5), on one core (one process, one
torch thread, one BLAS thread: NumPy's BLAS would otherwise give librosa's mel product both cores), at
32 kHz and 128 mels (the recipe's n_fft 2048, hop 512), on OGG and FLAC."""
from __future__ import annotations

import shutil

import soundfile as sf
import torch
from threadpoolctl import threadpool_limits

from common import WORK, audio_set, markdown_table, record_figures, timed
from soundclf.mel import LogMel, MelParams
from soundclf.mel_cache import write_shard

PARAMS = MelParams()  # 32 kHz, n_fft 2048, hop 512, 128 mels, 50-14000 Hz


def decode_only(files):
    for path in files:
        sf.read(path, dtype="float32")


def librosa_loop(files):
    import librosa

    for path in files:
        y, sr = librosa.load(path, sr=PARAMS.sample_rate)
        librosa.power_to_db(librosa.feature.melspectrogram(
            y=y, sr=sr, n_fft=PARAMS.n_fft, hop_length=PARAMS.hop_length, n_mels=PARAMS.n_mels,
            fmin=PARAMS.fmin, fmax=PARAMS.fmax, pad_mode="constant"), top_db=None)


def soundclf_cache(files):
    out = WORK / "cache_build" / "shard.h5"
    shutil.rmtree(out.parent, ignore_errors=True)
    write_shard(out, [(p.name, str(p)) for p in files], PARAMS)


def soundclf_cache_torchaudio_mel(files):
    """The cache computed as before bench 1 was first tuned: torchaudio's MelSpectrogram
    (|X| then squared, the dense filterbank product over all bins)."""
    original = LogMel.uncentred_power_mel
    LogMel.uncentred_power_mel = lambda self, span: self.mel(span)
    try:
        soundclf_cache(files)
    finally:
        LogMel.uncentred_power_mel = original


METHODS = {"decode (soundfile)": decode_only, "librosa load + melspectrogram": librosa_loop,
           "soundclf cache (write_shard)": soundclf_cache,
           "soundclf cache through torchaudio's MelSpectrogram": soundclf_cache_torchaudio_mel}


SHORT = {"decode (soundfile)": "decode", "librosa load + melspectrogram": "librosa",
         "soundclf cache (write_shard)": "soundclf",
         "soundclf cache through torchaudio's MelSpectrogram": "soundclf_torchaudio_mel"}


def run(n_files: int = 16, seconds: float = 60.0, repeats: int = 5) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            return measure(n_files, seconds, repeats)
    finally:
        torch.set_num_threads(threads)


def measure(n_files: int, seconds: float, repeats: int) -> dict:
    results = {}
    for fmt in ("ogg", "flac"):
        files = audio_set("cache", fmt, n_files, seconds)
        audio_seconds = n_files * seconds
        for name, fn in METHODS.items():
            fn(files[:1])  # warm-up: imports, FFT plans
            best = float("inf")
            for _ in range(repeats):  # best of: this machine is noisy
                times = {}
                with timed(times, "s"):
                    fn(files)
                best = min(best, times["s"])
            results[(fmt, name)] = audio_seconds / best
    return {"results": results, "n_files": n_files, "seconds": seconds}


def table(out: dict) -> str:
    rows = []
    for fmt in ("ogg", "flac"):
        r = {name: v for (f, name), v in out["results"].items() if f == fmt}
        ours = r["soundclf cache (write_shard)"]
        for name, speed in r.items():
            rows.append([fmt.upper(), name, f"{speed:,.0f}", f"{ours / speed:.2f}"])
    return markdown_table(["format", "method", "audio s per wall s (1 core)", "soundclf ÷ this"], rows)


def flat(out: dict) -> dict:
    """bench/results.json keys: cache_build.<format>.<method>.audio_s_per_s and
    cache_build.<format>.vs_librosa / .vs_decode (soundclf's speed ÷ theirs)."""
    figures = {}
    for fmt in ("ogg", "flac"):
        r = {name: v for (f, name), v in out["results"].items() if f == fmt}
        ours = r["soundclf cache (write_shard)"]
        for name, speed in r.items():
            figures[f"cache_build.{fmt}.{SHORT[name]}.audio_s_per_s"] = round(speed, 1)
        figures[f"cache_build.{fmt}.vs_librosa"] = round(ours / r["librosa load + melspectrogram"], 3)
        figures[f"cache_build.{fmt}.vs_decode"] = round(ours / r["decode (soundfile)"], 3)
    return figures

if __name__ == "__main__":
    out = run()
    record_figures(flat(out))
    print(table(out))
