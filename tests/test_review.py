"""The review stage without Snakemake: drawing review sets, their clips, calibration from marks,
call density and calibrated detections."""
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import tone, write
from soundclf.config import ConfigError
from soundclf.detections import calibrated_thresholds, detect, with_probability
from soundclf.mel import MelParams
from soundclf.review.calibration import (LogisticCalibration, calibration_table, call_density,
                                         expected_calibration_error, fit_logistic, logit, precision_mode_threshold,
                                         sigmoid, wilson)
from soundclf.review.clips import write_clips
from soundclf.review.sampling import ReviewSetError, draw_review_set, quantile_bins
from soundclf.review.sets import review_sets

CLASSES = ["a", "b", "c"]


def source_table(n=400, seed=0):
    rng = np.random.default_rng(seed)
    files = [f"site{i % 3}/rec{i // 20:02d}.wav" for i in range(n)]
    frame = pd.DataFrame({"file": files, "path": [f"/audio/{f}" for f in files], "site": [f.split("/")[0] for f in files],
                          "start": [5.0 * (i % 20) for i in range(n)], "end": [5.0 * (i % 20) + 5 for i in range(n)]})
    return pd.concat([frame, pd.DataFrame(rng.beta(0.3, 2.0, (n, 3)), columns=CLASSES)], axis=1)


def test_quantile_bins_halve_towards_the_top():
    bins = quantile_bins(64, 4)
    assert np.bincount(bins).tolist() == [32, 16, 8, 8]


def test_a_review_set_covers_every_score_bin_with_known_shares():
    items, bins, site_bins = draw_review_set(source_table(), CLASSES, per_class=24, n_bins=6, top_n=3, seed=0)
    stratified = items[items["drawn_by"] == "stratified"]
    assert stratified.groupby("label").size().tolist() == [24, 24, 24]
    assert (stratified.groupby(["label", "bin"]).size() == 4).all()  # 24 items over 6 bins
    assert (items[items["drawn_by"] == "top"].groupby("label").size() == 3).all()
    assert bins.groupby("label")["share"].sum().round(9).eq(1).all()
    assert site_bins.groupby("label")["n_windows"].sum().eq(400).all()
    for label in CLASSES:  # the top items are the class's highest scores, none drawn twice
        top = items[(items["label"] == label) & (items["drawn_by"] == "top")]["score"].min()
        assert top >= np.sort(source_table()[label])[-(3 + 4)]
    assert not items["item"].duplicated().any()


def test_draws_are_stable_when_a_class_is_added_or_the_sample_grows():
    source = source_table()
    small, _, _ = draw_review_set(source, ["a", "b"], per_class=12, n_bins=6, top_n=0, seed=7)
    more, _, _ = draw_review_set(source, ["a", "b", "c"], per_class=24, n_bins=6, top_n=0, seed=7)
    assert set(small["item"]) <= set(more["item"])  # a mark made on the smaller set still has its item
    other_seed, _, _ = draw_review_set(source, ["a", "b"], per_class=12, n_bins=6, top_n=0, seed=8)
    assert set(other_seed["item"]) != set(small["item"])


def test_a_bin_with_too_few_windows_passes_its_share_to_the_others():
    items, bins, _ = draw_review_set(source_table(n=40), ["a"], per_class=30, n_bins=6, top_n=0, seed=0)
    assert len(items) == 30 and bins["n_windows"].sum() == 40
    assert (items.groupby("bin").size() <= bins.set_index("bin")["n_windows"]).all()


def test_unknown_classes_are_named():
    with pytest.raises(ReviewSetError, match="zz.*not classes"):
        draw_review_set(source_table(), ["a", "zz"], 10, 4, 0, 0)


def test_clips_hold_the_window_with_context_and_a_spectrogram_of_it(tmp_path):
    sr = 16000
    path = write(tmp_path / "rec.wav", tone(12.0, sr), sr)
    items = pd.DataFrame({"item": ["i1", "i2"], "file": ["rec.wav"] * 2, "start": [0.0, 5.0], "end": [5.0, 10.0],
                          "label": ["a", "a"], "score": [0.1, 0.9], "bin": [0, 1], "drawn_by": ["stratified"] * 2,
                          "site": ["", ""], "path": [str(path)] * 2})
    params = MelParams(sample_rate=32000, n_fft=1024, hop_length=320, n_mels=64)
    out = write_clips(items, params, 2.0, tmp_path / "clips")
    assert out[["clip_start", "clip_end"]].values.tolist() == [[0.0, 7.0], [3.0, 12.0]]  # cut at the file's edges
    wave, rate = sf.read(tmp_path / "clips/i2.wav")
    assert rate == 32000 and len(wave) == 9 * 32000
    import matplotlib.image

    image = matplotlib.image.imread(tmp_path / "clips/i2.png")
    assert image.shape[:2] == (64, params.n_frames(9 * 32000))  # a pixel per frame and mel band


def test_an_undecodable_recording_loses_its_items_with_a_warning(tmp_path, caplog):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    items = pd.DataFrame({"item": ["i1"], "file": ["bad.wav"], "start": [0.0], "end": [5.0], "label": ["a"],
                          "score": [0.5], "bin": [0], "drawn_by": ["stratified"], "site": [""], "path": [str(bad)]})
    out = write_clips(items, MelParams(sample_rate=16000, n_mels=32, n_fft=1024, hop_length=256, fmax=8000), 1.0, tmp_path / "c")
    assert out.empty and "bad.wav" in caplog.text


def test_logistic_fit_recovers_the_curve_and_bootstraps_at_once():
    rng = np.random.default_rng(1)
    scores = rng.uniform(0.001, 0.999, 3000)
    correct = rng.uniform(size=3000) < sigmoid(-1.0 + 2.0 * logit(scores))
    b0, b1 = fit_logistic(logit(scores), correct.astype(float))
    assert abs(b0 + 1.0) < 0.15 and abs(b1 - 2.0) < 0.2
    many = fit_logistic(logit(scores), correct.astype(float), rng.multinomial(3000, np.full(3000, 1 / 3000), size=4))
    assert many.shape == (4, 2) and np.allclose(many.mean(axis=0), [b0, b1], atol=0.2)
    fit = LogisticCalibration(b0, b1)
    assert fit.probability([fit.threshold(0.95)])[0] == pytest.approx(0.95)


def test_separable_marks_still_give_a_finite_fit():
    scores = np.array([0.01, 0.02, 0.05, 0.1, 0.6, 0.7, 0.8, 0.9])
    b0, b1 = fit_logistic(logit(scores), np.array([0, 0, 0, 0, 1, 1, 1, 1.0]))
    assert np.isfinite([b0, b1]).all() and b1 > 0


def test_wilson_interval():
    lo, hi = wilson(9, 10)
    assert 0.65 < lo < 0.66 and 0.97 < hi < 0.98  # 90 %
    assert np.isnan(wilson(0, 0)[0])


def marks_of(items, truth_rate):
    """Oracle marks: a window is right with probability truth_rate(score)."""
    rng = np.random.default_rng(0)
    right = rng.uniform(size=len(items)) < truth_rate(items["score"].to_numpy())
    return items.assign(mark=np.where(right, "yes", "no"))


def test_calibration_table_fits_classes_with_enough_marks_and_says_why_not_for_the_others():
    source = source_table(2000)
    items, _, _ = draw_review_set(source, CLASSES, per_class=60, n_bins=6, top_n=0, seed=0)
    marks = marks_of(items, lambda s: sigmoid(1.0 + 1.5 * logit(s)))
    marks.loc[marks["label"] == "c", "mark"] = "no"  # c: never right
    marks.loc[marks.index[:3], "mark"] = "unsure"
    table = calibration_table(marks, {c: source[c].to_numpy() for c in CLASSES}, [0.9, 0.95], min_marks=5, n_boot=200)
    assert len(table) == 6
    ok = table[table["class"] == "a"]
    assert (ok["status"] == "ok").all() and ok["n_unsure"].iloc[0] == 3
    assert (ok["threshold_lo"] <= ok["threshold"]).all() and (ok["threshold"] <= ok["threshold_hi"]).all()
    assert ok["threshold"].is_monotonic_increasing  # a higher target needs a higher score
    c = table[table["class"] == "c"]
    assert c["status"].str.contains("too few marks: 0 'yes'").all() and c["threshold"].isna().all()


def test_precision_mode_threshold_is_the_lowest_cut_whose_mean_probability_reaches_the_target():
    fit = LogisticCalibration(0.0, 1.0)  # probability = score
    scores = np.array([0.99, 0.97, 0.95, 0.5, 0.1])
    assert precision_mode_threshold(fit, scores, 0.969) == 0.95  # mean of the top three: 0.97
    assert np.isnan(precision_mode_threshold(fit, scores, 0.995))


def test_call_density_recovers_the_share_of_windows_with_the_call():
    rng = np.random.default_rng(3)
    n = 20000
    scores = rng.beta(0.5, 3.0, n)
    present = rng.uniform(size=n) < sigmoid(-2.0 + 2.0 * logit(scores))
    files = [f"s{i % 2}/r{i}.wav" for i in range(n)]
    source = pd.DataFrame({"file": files, "path": "x", "site": [f.split("/")[0] for f in files], "start": 0.0,
                           "end": 5.0, "a": scores})
    items, bins, site_bins = draw_review_set(source, ["a"], per_class=120, n_bins=6, top_n=5, seed=0)
    truth = dict(zip(files, present))
    marks = items.assign(mark=["yes" if truth[f] else "no" for f in items["file"]])
    density = call_density(marks, bins, site_bins)
    overall = density[density["site"] == ""].iloc[0]
    assert overall["density_lo"] <= present.mean() <= overall["density_hi"]
    assert overall["density_hi"] - overall["density_lo"] < 0.1
    assert set(density["site"]) == {"", "s0", "s1"} and density["n_windows"].tolist()[1:] == [10000, 10000]


def test_expected_calibration_error():
    assert expected_calibration_error(np.array([0.9, 0.9, 0.1, 0.1]), np.array([1, 1, 0, 0])) == pytest.approx(0.1)


def test_calibrated_detections_use_the_fitted_threshold_and_carry_a_probability():
    calibration = pd.DataFrame({"class": ["a", "a"], "status": ["ok", "ok"], "b0": [0.0, 0.0], "b1": [1.0, 1.0],
                                "target": [0.9, 0.95]})
    thresholds, fits = calibrated_thresholds(calibration, {"a": 0.5, "b": 0.3}, 0.95)
    assert thresholds["a"] == pytest.approx(0.95) and thresholds["b"] == 0.3 and set(fits) == {"a"}
    windows = pd.DataFrame({"file": ["f"] * 3, "start": [0.0, 5.0, 10.0], "end": [5.0, 10.0, 15.0],
                            "a": [0.2, 0.97, 0.1], "b": [0.4, 0.0, 0.0]})
    events = with_probability(detect(windows, thresholds), fits)
    assert events[["label", "start"]].values.tolist() == [["b", 0.0], ["a", 5.0]]
    assert events["probability"].iloc[1] == pytest.approx(0.97) and np.isnan(events["probability"].iloc[0])


def test_review_set_config_names_what_is_wrong():
    config = {"review": {"sets": {"x": {"experiment": "nope"}, "y": {}}, "per_class": 24, "bins": 6, "top_n": 0,
                         "seed": 0, "context_seconds": 2.0}}
    with pytest.raises(ConfigError, match="review.sets.x.experiment: 'nope' is not an experiment"):
        review_sets(config, ["base"], ["base"])
    config["review"]["sets"] = {"y": {"per_class": 5}}
    with pytest.raises(ConfigError, match="predicts no recordings.*source: oof"):
        review_sets(config, ["base"], [])
    sets = review_sets(config, ["base"], ["base"])
    assert sets["y"]["per_class"] == 5 and sets["y"]["bins"] == 6 and sets["y"]["experiment"] == "base"


def test_calibration_figures_draw_classes_whose_marks_are_all_of_one_kind(tmp_path):
    from soundclf.review.figures import calibration_curves, call_density_bars

    items, bins, site_bins = draw_review_set(source_table(), CLASSES, per_class=12, n_bins=3, top_n=0, seed=0)
    marks = items.assign(mark=np.where(items["label"] == "a", "no", np.where(items["bin"] == 2, "yes", "no")))
    table = calibration_table(marks, {c: source_table()[c].to_numpy() for c in CLASSES}, [0.9], min_marks=2, n_boot=20)
    calibration_curves(marks, table, tmp_path / "curves.png")
    call_density_bars(call_density(marks, bins, site_bins), tmp_path / "density.png")
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "density.png").stat().st_size > 0
