"""Crop augmentations: each changes its input as specified and is off when its key is off."""
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tone, write
from soundclf.augment import (CropAugment, NoiseMix, NoiseRecordings, SyntheticNoise, mix_at_snr, realised_snr_db,
                              synthetic_noise)
from soundclf.datasets import CropDataset, SpecAugment, segment_frames
from soundclf.mel import MelParams
from soundclf.mel_cache import MelCache, shard_path, write_shard

PARAMS = MelParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=32, fmin=50, fmax=7000, top_db=None)
OFF = {"time_shift_seconds": 0, "gain_db": 0, "noise_snr_db": [3, 30], "noise_prob": 0.5,
       "white_noise_snr_db": None, "pink_noise_snr_db": None}


def crop_db(seed=0, frames=120):
    """A call-like dB crop: a loud band over part of the time, a quiet floor elsewhere."""
    rng = np.random.default_rng(seed)
    crop = rng.uniform(-70, -60, size=(PARAMS.n_mels, frames)).astype(np.float32)
    crop[10:14, 30:70] = -10
    return crop


def test_mixing_reaches_the_requested_snr_exactly():
    signal, noise = crop_db(), synthetic_noise("white", PARAMS, seconds=2)[:, :120]
    for snr in (-5.0, 0.0, 12.5, 40.0):
        assert realised_snr_db(signal, mix_at_snr(signal, noise, snr)) == pytest.approx(snr, abs=1e-3)


def test_everything_off_returns_the_crop_unchanged():
    crop = crop_db()
    augment = CropAugment.from_config(OFF, PARAMS)
    assert augment.noises == [] and augment.shift_frames == 0 and augment.gain_db == 0
    assert np.array_equal(augment(crop, np.random.default_rng(0)), crop)


@pytest.mark.parametrize("colour", ["white", "pink"])
def test_synthetic_noise_lands_at_an_snr_within_the_range(colour):
    augment = CropAugment.from_config({**OFF, f"{colour}_noise_snr_db": [5, 15], "noise_prob": 1.0}, PARAMS)
    assert [type(n.source) for n in augment.noises] == [SyntheticNoise]
    rng, crop = np.random.default_rng(1), crop_db()
    snrs = [realised_snr_db(crop, augment(crop, rng)) for _ in range(30)]
    assert all(5 - 1e-3 <= s <= 15 + 1e-3 for s in snrs) and np.std(snrs) > 1  # drawn, not fixed


def test_pink_noise_tilts_towards_low_frequencies_and_white_noise_is_flat():
    white, pink = (synthetic_noise(c, PARAMS, seconds=5).mean(axis=1) for c in ("white", "pink"))
    low, high = slice(2, 8), slice(-8, -2)  # mel bands: slaney area-normalised, so white is flat
    assert abs(white[low].mean() - white[high].mean()) < 3
    assert pink[low].mean() - pink[high].mean() > 6  # ~10·log10(5 kHz / 0.4 kHz) less the bands' spread


def test_noise_probability_zero_never_mixes():
    augment = CropAugment.from_config({**OFF, "white_noise_snr_db": [0, 0], "noise_prob": 0.0}, PARAMS)
    crop = crop_db()
    assert all(np.array_equal(augment(crop, np.random.default_rng(s)), crop) for s in range(10))


@pytest.fixture
def noise_file(tmp_path):
    """Two noise recordings, each a tone of its own frequency, cached like training audio."""
    files = [("rain/a.wav", 600.0, 3.0), ("wind/b.flac", 3000.0, 1.0)]
    recordings = [(key, str(write(tmp_path / "noise" / key, tone(seconds, 16000, freq), 16000)))
                  for key, freq, seconds in files]
    path = tmp_path / "noise.h5"
    write_shard(path, recordings, PARAMS, dtype="float32")
    return path


def test_background_noise_is_drawn_from_the_noise_folder(noise_file):
    recordings = NoiseRecordings(noise_file)
    assert recordings.keys == ["rain/a.wav", "wind/b.flac"]
    augment = CropAugment.from_config({**OFF, "noise_prob": 1.0, "noise_snr_db": [0, 10]}, PARAMS, noise_file)
    silent = np.full((PARAMS.n_mels, 200), -100.0, dtype=np.float32)  # longer than b.flac: it is looped
    rng = np.random.default_rng(0)
    peaks = set()
    for _ in range(20):
        added = 10 ** (augment(silent, rng) / 10) - 10 ** (silent / 10)
        peaks.add(int(np.argmax(added.mean(axis=1))))  # the mel band of the drawn recording's tone
        assert added.shape == silent.shape and (added.mean(axis=0) > 0).all()  # every frame holds noise
    tones = {int(np.argmax(recordings.draw(50, np.random.default_rng(s))[0].mean(axis=1))) for s in range(20)}
    assert peaks == tones and len(peaks) == 2  # both recordings drawn, nothing else added


def test_gain_shifts_every_value_alike_within_the_range():
    crop, rng = crop_db(), np.random.default_rng(2)
    augment = CropAugment(gain_db=6.0)
    shifts = [augment(crop, rng) - crop for _ in range(20)]
    assert all(np.allclose(d, d.flat[0], atol=1e-4) and abs(d.flat[0]) <= 6.0 for d in shifts)
    assert np.std([d.flat[0] for d in shifts]) > 1


def test_time_shift_rolls_the_crop_by_at_most_the_configured_frames():
    crop, rng = crop_db(), np.random.default_rng(3)
    augment = CropAugment.from_config({**OFF, "time_shift_seconds": 0.5}, PARAMS)
    assert augment.shift_frames == round(0.5 * PARAMS.frames_per_second) == 31
    rolls = []
    for _ in range(20):
        out = augment(crop, rng)
        k = next(k for k in range(-31, 32) if np.array_equal(out, np.roll(crop, k, axis=1)))
        rolls.append(k)
    assert len(set(rolls)) > 5


def test_spec_augment_masks_are_no_wider_than_configured():
    torch.manual_seed(0)
    x = torch.ones(1, 64, 400)
    for _ in range(20):
        out = SpecAugment(freq_mask=6, time_mask=25, n_masks=2).build()(x)[0]
        masked_bins = int((out == 0).all(dim=1).sum())
        masked_frames = int((out == 0).all(dim=0).sum())
        assert masked_bins <= 2 * 6 and masked_frames <= 2 * 25


def test_training_crops_pass_through_the_augmentation(tmp_path):
    path = write(tmp_path / "a.wav", tone(3.0, 16000, 900.0), 16000)
    write_shard(shard_path(tmp_path / "mels", 0), [("a.wav", str(path))], PARAMS, dtype="float32")
    table = pd.DataFrame({"key": ["a.wav"], "duration": [3.0], "class_id": [0], "secondary_class_ids": [[]]})
    seg = segment_frames(PARAMS, 1.0)
    cache = MelCache(tmp_path / "mels", 1)
    plain = CropDataset(table, cache, 1, seg, 2, top_db=None)
    louder = CropDataset(table, cache, 1, seg, 2, top_db=None, crop_augment=CropAugment(noises=[
        NoiseMix(SyntheticNoise("white", PARAMS), (-20.0, -20.0), 1.0)]))  # noise 20 dB above the tone
    torch.manual_seed(0)
    a = plain[0][0]
    torch.manual_seed(0)
    b = louder[0][0]
    assert a.shape == b.shape and (b - a).mean() > 0.2  # (dB + 80) / 80 scale: > 16 dB louder on average
