"""Log-mels: equal to a direct torchaudio computation, to librosa's convention, and the cache
returns exactly the slices it stored."""
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
import torchaudio

from soundclf import audio, mel, mel_cache
from soundclf.mel import LogMel, MelParams
from soundclf.mel_cache import MelCache, as_dtype, shard_path, write_shard
from soundclf.sources import shard_of
from conftest import write

PARAMS = MelParams(sample_rate=32000, n_fft=1024, hop_length=320, n_mels=64, fmin=50, fmax=14000)


def noisy_chirp(seconds=3.0, sr=32000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * (500 + 2000 * t) * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def direct_torchaudio(wave, p: MelParams):
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=p.sample_rate, n_fft=p.n_fft, hop_length=p.hop_length, f_min=p.fmin, f_max=p.fmax,
        n_mels=p.n_mels, power=p.power, center=True, pad_mode="constant", mel_scale=p.mel_scale, norm=p.norm)
    return torchaudio.transforms.AmplitudeToDB("power", top_db=p.top_db)(mel(torch.from_numpy(wave))).numpy()


@pytest.mark.parametrize("block_frames", [7, 256])
def test_logmel_equals_direct_torchaudio(monkeypatch, block_frames):
    monkeypatch.setattr(mel, "STFT_BLOCK_FRAMES", block_frames)  # 7: many block edges
    wave = noisy_chirp()
    ours = LogMel(PARAMS)(torch.from_numpy(wave)).numpy()
    ref = direct_torchaudio(wave, PARAMS)
    assert ours.shape == ref.shape == (64, PARAMS.n_frames(len(wave)))
    np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_top_db_floor_is_per_clip_in_a_batch():
    loud, quiet = noisy_chirp(1.0), noisy_chirp(1.0, seed=1) * 1e-3
    batch = LogMel(PARAMS)(torch.from_numpy(np.stack([loud, quiet]))).numpy()
    alone = LogMel(PARAMS)(torch.from_numpy(quiet)).numpy()
    np.testing.assert_allclose(batch[1], alone, atol=1e-3)
    assert batch[1].max() - batch[1].min() <= PARAMS.top_db + 1e-3


def test_matches_librosa_slaney_mel():
    librosa = pytest.importorskip("librosa")
    wave = noisy_chirp()
    p = MelParams(sample_rate=32000, n_fft=2048, hop_length=512, n_mels=128, fmin=50, fmax=14000, top_db=None)
    ours = LogMel(p)(torch.from_numpy(wave)).numpy()
    ref = librosa.power_to_db(librosa.feature.melspectrogram(
        y=wave, sr=32000, n_fft=2048, hop_length=512, n_mels=128, fmin=50, fmax=14000, power=2.0,
        pad_mode="constant"), ref=1.0, amin=1e-10, top_db=None)
    assert ours.shape == ref.shape
    diff = np.abs(ours - ref)
    assert diff.mean() < 0.05 and np.percentile(diff, 99) < 0.2  # README: "within 0.05 dB on average"


@pytest.mark.parametrize("dtype,atol", [("float32", 1e-4), ("float16", 0.05)])
def test_cache_window_equals_slice_of_direct_mel(tmp_path, dtype, atol):
    waves = {f"sp{i}/rec {i}.wav": noisy_chirp(2.0 + i, seed=i) for i in range(3)}
    recs = [(k, str(write(tmp_path / "audio" / k, w, 32000, subtype="FLOAT"))) for k, w in waves.items()]
    n_shards = 2
    for s in range(n_shards):
        write_shard(shard_path(tmp_path / "mels", s), [r for r in recs if shard_of(r[0], n_shards) == s],
                    PARAMS, dtype=dtype, chunk_frames=32)
    cache = MelCache(tmp_path / "mels", n_shards)
    for key, wave in waves.items():
        ref = direct_torchaudio(wave, replace(PARAMS, top_db=None))  # the cache holds unfloored dB
        assert cache.n_frames(key) == ref.shape[1]
        np.testing.assert_allclose(cache.full(key), ref, atol=atol)
        window = cache.window(key, 40, 100)
        np.testing.assert_array_equal(window, cache.full(key)[:, 40:140])
    assert cache.mel_params(key)["n_mels"] == 64 and "top_db" not in cache.mel_params(key)
    cache.close()


def test_shard_written_atomically_on_failure(tmp_path):
    out = tmp_path / "shard_000.h5"
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(Exception):
        write_shard(out, [("bad.wav", str(bad))], PARAMS, on_bad_audio="fail")
    assert not out.exists() and list(tmp_path.glob(".shard_000*")) == []


def test_skipped_file_is_reported(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    good = write(tmp_path / "good.wav", noisy_chirp(1.0), 32000)
    skipped = write_shard(tmp_path / "s.h5", [("bad.wav", str(bad)), ("good.wav", str(good))], PARAMS)
    assert [s[0] for s in skipped] == ["bad.wav"]
    with h5py.File(tmp_path / "s.h5") as h5:
        assert list(h5) == ["good.wav"]


@pytest.mark.parametrize("sr", [8000, 44100, 96000])
def test_cache_streams_long_files_in_blocks_with_the_same_values(tmp_path, monkeypatch, sr):
    """Decoding, resampling and the STFT run a block at a time (here 4000 frames, so many
    block edges); the cached mel equals the mel of the whole resampled signal."""
    monkeypatch.setattr(audio, "BLOCK_FRAMES", 4000)
    stereo = np.stack([noisy_chirp(3.0, sr, seed=1), noisy_chirp(3.0, sr, seed=2)], axis=1)
    path = write(tmp_path / "a.flac", stereo, sr, subtype="PCM_24")
    write_shard(tmp_path / "s.h5", [("a.flac", str(path))], PARAMS, dtype="float32", chunk_frames=32)
    whole = audio.resample(audio.load_mono(path)[0], sr, PARAMS.sample_rate)  # all at once
    ref = direct_torchaudio(whole, replace(PARAMS, top_db=None))
    with h5py.File(tmp_path / "s.h5") as h5:
        cached = h5["a.flac"][()]
        assert h5["a.flac"].attrs["samples"] == len(whole)
    assert cached.shape == ref.shape
    np.testing.assert_allclose(cached, ref, atol=2e-3)


def test_magnitude_mel_equals_torchaudio():
    """mel.power 1 (magnitudes) takes the |X| path, not re² + im²."""
    p = replace(PARAMS, power=1.0)
    wave = torch.from_numpy(noisy_chirp(1.0))
    ref = torchaudio.transforms.MelSpectrogram(
        sample_rate=p.sample_rate, n_fft=p.n_fft, hop_length=p.hop_length, f_min=p.fmin, f_max=p.fmax,
        n_mels=p.n_mels, power=1.0, center=True, pad_mode="constant", mel_scale=p.mel_scale, norm=p.norm)(wave)
    np.testing.assert_allclose(LogMel(p).power_mel(wave).numpy(), ref.numpy(), rtol=1e-4, atol=1e-6)


def test_filterbank_product_skips_only_bins_without_weight():
    """The sparse product over the filterbank's bins equals the dense one over every bin."""
    logmel = LogMel(MelParams())
    power = torch.rand(1025, 50)
    dense = logmel.mel.mel_scale.fb.T @ power
    np.testing.assert_allclose((logmel.filters @ power[logmel.bins]).numpy(), dense.numpy(), rtol=1e-5, atol=1e-7)
    assert logmel.mel.mel_scale.fb[: logmel.bins.start].abs().sum() == 0
    assert logmel.mel.mel_scale.fb[logmel.bins.stop :].abs().sum() == 0


def test_float16_conversion_through_torch_equals_numpy():
    values = np.concatenate([np.random.default_rng(0).normal(-40, 30, 10000),
                             [0.0, -0.0, 6e-8, 65504.0, 70000.0, -1e-10, np.inf, -np.inf]]).astype(np.float32)
    half = as_dtype(values, np.float16)
    np.testing.assert_array_equal(half, values.astype(np.float16))
    np.testing.assert_array_equal(as_dtype(half, np.float32), half.astype(np.float32))
    assert as_dtype(values, np.float32) is values


def test_open_datasets_stay_within_their_budget(tmp_path, monkeypatch):
    recs = [(f"r{i}.wav", str(write(tmp_path / f"r{i}.wav", noisy_chirp(1.0, seed=i), 32000))) for i in range(6)]
    write_shard(shard_path(tmp_path / "mels", 0), recs, PARAMS)
    cache = MelCache(tmp_path / "mels", 1)
    expected = {key: cache.full(key) for key, _ in recs}
    one = cache._dataset("r0.wav").nbytes
    monkeypatch.setattr(mel_cache, "OPEN_CACHE_BYTES", 2 * one)  # room for two recordings
    cache.close()
    for key, _ in recs * 2:
        np.testing.assert_array_equal(cache.full(key), expected[key])
        assert 1 <= len(cache._datasets) <= 2 and cache._open_bytes <= 2 * one
    cache.close()


def test_logmel_deep_copies_pickles_and_casts_like_a_module():
    import copy
    import pickle

    logmel, wave = LogMel(PARAMS), torch.from_numpy(noisy_chirp(1.0))
    expected = logmel(wave)
    assert torch.equal(copy.deepcopy(logmel)(wave), expected)
    assert torch.equal(pickle.loads(pickle.dumps(logmel))(wave), expected)
    np.testing.assert_allclose(LogMel(PARAMS).double()(wave.double()).numpy(), expected.numpy(), atol=1e-3)


def test_cache_chunks_are_as_long_as_asked_even_beyond_a_write(tmp_path, monkeypatch):
    monkeypatch.setattr(mel_cache, "WRITE_FRAMES", 64)
    path = write(tmp_path / "a.wav", noisy_chirp(5.0), 32000)  # 501 frames
    write_shard(tmp_path / "s.h5", [("a.wav", str(path))], PARAMS, chunk_frames=256)
    write_shard(tmp_path / "short.h5", [("a.wav", str(path))], PARAMS, chunk_frames=1024)
    with h5py.File(tmp_path / "s.h5") as h5, h5py.File(tmp_path / "short.h5") as short:
        assert h5["a.wav"].chunks == (64, 256) and h5["a.wav"].shape == (64, 501)
        assert short["a.wav"].chunks == (64, 501)  # no chunk longer than the recording
