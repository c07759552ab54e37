"""Training crops and evaluation windows from the cache."""
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tone, write
from soundclf.datasets import (CropDataset, SpecAugment, WindowDataset, crop_input, normalise_db,
                               sample_weights, segment_frames, window_input, window_times)
from soundclf.mel import MelParams, floor_segments
from soundclf.mel_cache import MelCache, shard_path, write_shard

PARAMS = MelParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=16, fmin=50, fmax=7000)


@pytest.fixture
def cache(tmp_path):
    recs = []
    for key, seconds in [("a/long.wav", 13.0), ("a/short.wav", 1.2), ("b/mid.wav", 10.0)]:
        recs.append((key, str(write(tmp_path / key, tone(seconds, 16000, 800.0), 16000))))
    write_shard(shard_path(tmp_path / "mels", 0), recs, PARAMS, dtype="float32")
    table = pd.DataFrame({"key": [r[0] for r in recs], "duration": [13.0, 1.2, 10.0], "class_id": [0, 0, 1],
                          "secondary_class_ids": [[1], [], []], "rating": [5.0, 0.0, 2.5]})
    return MelCache(tmp_path / "mels", 1), table


def test_segment_frames_match_a_five_second_clip():
    assert segment_frames(MelParams(), 5) == 313  # 1 + 160000 // 512


def test_crops_have_the_crop_length_and_come_from_the_recording(cache):
    mel_cache, table = cache
    seg = segment_frames(PARAMS, 1.0)
    ds = CropDataset(table, mel_cache, n_classes=2, seg_frames=seg, n_segments=6, top_db=None)
    torch.manual_seed(0)
    for i, key in enumerate(table["key"]):
        x, y, w, _ = ds[i]
        assert x.shape == (1, 16, 6 * seg)
        full = normalise_db(mel_cache.full(key))
        if full.shape[1] >= 6 * seg:  # a plain window: must equal some slice of the recording
            starts = [s for s in range(full.shape[1] - 6 * seg + 1) if np.allclose(full[:, s : s + 6 * seg], x[0])]
            assert starts
        else:  # tiled: every frame of the crop is a frame of the short recording
            assert all(np.isclose(full, x[0, :, [j]].numpy()).all(axis=0).any() for j in range(0, x.shape[-1], 7))


def test_each_segment_of_a_crop_is_floored_below_its_own_maximum(cache):
    mel_cache, table = cache
    seg = segment_frames(PARAMS, 1.0)
    ds = CropDataset(table, mel_cache, n_classes=2, seg_frames=seg, n_segments=6, top_db=30.0)
    torch.manual_seed(0)
    for i in range(len(table)):
        segments = ds[i][0][0].numpy().reshape(16, 6, seg) * 80 - 80  # back to dB
        assert np.isfinite(segments).all()
        spans = segments.max(axis=(0, 2)) - segments.min(axis=(0, 2))
        assert (spans <= 30.0 + 1e-4).all() and (spans > 29.0).all()  # the floor is reached in each


def test_floor_segments_clamps_each_segment_separately():
    mel = np.array([[0.0, -50.0, -10.0, -100.0, -95.0]], dtype=np.float32)
    np.testing.assert_array_equal(floor_segments(mel, 20.0, 2), [[0.0, -20.0, -10.0, -30.0, -95.0]])
    assert floor_segments(mel, None, 2) is mel


@pytest.mark.parametrize("frames", [1, 312, 313, 1000])
def test_floor_segments_equals_a_loop_over_segments_and_floors_in_place_on_request(frames):
    mel = np.random.default_rng(frames).normal(-40, 25, (16, frames)).astype(np.float32)
    expected = mel.copy()
    for start in range(0, frames, 313):
        part = expected[:, start : start + 313]
        np.maximum(part, part.max() - 30.0, out=part)
    original = mel.copy()
    np.testing.assert_array_equal(floor_segments(mel, 30.0, 313), expected)
    np.testing.assert_array_equal(mel, original)  # copy=True leaves it alone
    assert floor_segments(mel, 30.0, 313, copy=False) is mel
    np.testing.assert_array_equal(mel, expected)


def test_crop_input_is_the_floored_scaled_crop_without_copies():
    crop = np.random.default_rng(0).normal(-40, 25, (16, 626)).astype(np.float32)
    expected = normalise_db(floor_segments(crop, 30.0, 313))
    out = crop_input(crop, 30.0, 313)
    assert out.shape == (1, 16, 626) and out.dtype == torch.float32
    np.testing.assert_array_equal(out[0].numpy(), expected)  # bit for bit: the same operations in place
    assert np.shares_memory(out.numpy(), crop)


def test_targets_secondary_weight_and_smoothing_on_every_segment(cache):
    mel_cache, table = cache
    ds = CropDataset(table, mel_cache, n_classes=3, seg_frames=segment_frames(PARAMS, 1.0), n_segments=2,
                     top_db=None, secondary_weight=0.5, label_smoothing=0.1)
    torch.manual_seed(0)
    _, y, _, strong = ds[0]  # class 0, secondary class 1
    assert y.shape == (2, 3) and not strong
    np.testing.assert_allclose(y, [[0.95, 0.5 * 0.9 + 0.05, 0.05]] * 2, rtol=1e-6)


def test_sample_weights_scale_to_mean_one_and_fill_unrated(cache):
    _, table = cache
    w = sample_weights(table, "rating")
    np.testing.assert_allclose(w, [5 / 3.75, 1.0, 2.5 / 3.75], rtol=1e-6)
    assert (sample_weights(table, None) == 1).all()


def test_windows_cover_each_recording_and_the_last_ends_at_its_end(cache):
    mel_cache, table = cache
    seg = segment_frames(PARAMS, 5.0)
    ds = WindowDataset(table, mel_cache, PARAMS, window_seconds=5.0, seg_frames=seg)
    for key, duration in zip(table["key"], table["duration"]):
        w = ds.windows[ds.windows["key"] == key].sort_values("start")
        assert len(w) == int(np.ceil(duration / 5.0))
        assert w["start"].iloc[0] == 0 and (w["start"].to_numpy()[1:] <= w["end"].to_numpy()[:-1]).all()
        if duration > 5.0:  # every window full of audio: the last one pulled back to the end
            assert (w["end"] - w["start"] == 5.0).all() and w["end"].iloc[-1] == duration
    assert all(ds[i].shape == (1, 16, seg) for i in range(len(ds)))
    # the 13 s recording's third window is its last 5 s (frames 10 s ... 13 s would be 3/5 padding)
    last = ds.windows.index[(ds.windows["key"] == "a/long.wav")][-1]
    n = mel_cache.n_frames("a/long.wav")
    np.testing.assert_allclose(ds[last][0].numpy(), window_input(mel_cache.window("a/long.wav", n - seg, seg), seg, PARAMS.top_db))


def test_window_times_pull_only_a_partial_last_window_back():
    assert window_times(10.0, 5.0) == [(0.0, 5.0), (5.0, 10.0)]
    assert window_times(5.001, 5.0) == [(0.0, 5.0), (0.0010000000000003340, 5.001)]
    assert window_times(0.4, 5.0) == [(0.0, 5.0)]  # shorter than a window: one, looped or padded
    assert window_times(12.0, 5.0)[-1] == (7.0, 12.0)


def test_prediction_streams_the_same_windows_as_evaluation(tmp_path, monkeypatch):
    from soundclf import mel
    from soundclf.mel import LogMel
    from soundclf.prediction import stream_windows

    monkeypatch.setattr(mel, "STFT_BLOCK_FRAMES", 64)  # STFT block edges inside the windows

    params = MelParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=16, fmin=50, fmax=7000)
    rng = np.random.default_rng(0)
    seconds = 7.3
    path = write(tmp_path / "rec.wav", (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), 16000)
    write_shard(shard_path(tmp_path / "mels", 0), [("rec.wav", str(path))], params, dtype="float32")
    table = pd.DataFrame({"key": ["rec.wav"], "duration": [seconds]})
    seg = segment_frames(params, 2.0)
    evaluation = WindowDataset(table, MelCache(tmp_path / "mels", 1), params, 2.0, seg)
    streamed = list(stream_windows(path, LogMel(params), 2.0, seg))
    assert [end for end, _ in streamed] == pytest.approx(evaluation.windows["end"].tolist())
    assert evaluation.windows["end"].iloc[-1] == pytest.approx(seconds)
    for i, (_, window) in enumerate(streamed):
        np.testing.assert_allclose(window, evaluation[i][0].numpy(), atol=1e-3)


def test_spec_augment_masks_only_when_configured():
    x = torch.ones(1, 16, 100)
    assert torch.equal(SpecAugment().build()(x), x)
    torch.manual_seed(0)
    masked = SpecAugment(freq_mask=8, time_mask=30, n_masks=2).build()(x)
    assert masked.shape == x.shape and (masked == 0).any()


def test_loader_workers_open_their_own_hdf5_handles(cache):
    mel_cache, table = cache
    ds = WindowDataset(table, mel_cache, PARAMS, window_seconds=5.0, seg_frames=segment_frames(PARAMS, 5.0))
    in_parent = torch.stack([ds[i] for i in range(len(ds))])  # the parent process holds open handles
    from torch.utils.data import DataLoader

    in_workers = torch.cat(list(DataLoader(ds, batch_size=2, num_workers=2)))
    assert torch.equal(in_parent, in_workers)


# --- short clips: the same kind of input in training, evaluation and prediction --------------


def _kind(x: np.ndarray, clip: np.ndarray) -> str | None:
    """'loop' when x is the clip tiled from some frame on; 'pad' when x holds the clip once,
    whole and contiguous, and every other frame is the clip's floor; else None."""
    n, width = clip.shape[1], x.shape[1]
    for s in range(n):
        if np.allclose(x, np.tile(clip, (1, width // n + 2))[:, s : s + width], atol=1e-3):
            return "loop"
    for offset in range(width - n + 1):
        rest = np.delete(x, range(offset, offset + n), axis=1)
        if np.allclose(x[:, offset : offset + n], clip, atol=1e-3) and np.allclose(rest, clip.min(), atol=1e-3):
            return "pad"
    return None


@pytest.mark.parametrize("short_clip", ["loop", "pad"])
def test_a_short_clip_gives_the_same_kind_of_input_in_training_evaluation_and_prediction(tmp_path, short_clip):
    from soundclf.mel import LogMel
    from soundclf.prediction import stream_windows

    params = MelParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=16, fmin=50, fmax=7000, top_db=None)
    t = np.arange(int(0.4 * 16000)) / 16000
    chirp = (np.sin(2 * np.pi * (500 + 4000 * t) * t) * np.linspace(0.05, 0.8, t.size)).astype(np.float32)
    path = write(tmp_path / "a" / "clip.wav", chirp, 16000)
    write_shard(shard_path(tmp_path / "mels", 0), [("a/clip.wav", str(path))], params, dtype="float32")
    cache = MelCache(tmp_path / "mels", 1)
    table = pd.DataFrame({"key": ["a/clip.wav"], "duration": [0.4], "class_id": [0], "secondary_class_ids": [[]]})
    seg = segment_frames(params, 1.0)
    clip = normalise_db(cache.full("a/clip.wav"))
    assert 10 < clip.shape[1] < seg // 2  # 0.4 s: far shorter than one window

    crops = CropDataset(table, cache, n_classes=1, seg_frames=seg, n_segments=3, top_db=None, short_clip=short_clip)
    torch.manual_seed(0)
    training = [crops[0][0][0].numpy() for _ in range(5)]  # several random offsets
    evaluation = WindowDataset(table, cache, params, 1.0, seg, short_clip=short_clip)[0][0].numpy()
    windows = list(stream_windows(path, LogMel(params), 1.0, seg, short_clip))
    assert len(windows) == 1 and windows[0][0] == 1.0
    prediction = windows[0][1]

    assert training[0].shape == (16, 3 * seg) and evaluation.shape == prediction.shape == (16, seg)
    assert [_kind(x, clip) for x in training] == [short_clip] * 5
    assert _kind(evaluation, clip) == short_clip
    assert _kind(prediction, clip) == short_clip
    np.testing.assert_allclose(prediction, evaluation, atol=1e-3)  # the very same window
