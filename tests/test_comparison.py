"""The ensemble's nested CV estimate: each fold's weights are chosen without that fold."""
import numpy as np
import pandas as pd

from soundclf.comparison import nested_ensemble_scores

CLASSES = ["a", "b", "c"]


def recordings(n=60, n_folds=3):
    return pd.DataFrame({"key": [f"r{i:02d}" for i in range(n)], "class_id": [i % 3 for i in range(n)],
                         "secondary_class_ids": [[] for _ in range(n)], "fold": [i % n_folds for i in range(n)]})


def scores_of(folds, right, seed):
    """Recording scores that rank the true class first with probability `right`."""
    rng = np.random.default_rng(seed)
    x = rng.random((len(folds), 3)) * 0.5
    hit = rng.random(len(folds)) < right
    x[np.arange(len(folds))[hit], folds["class_id"].to_numpy()[hit]] = 1.0
    return pd.DataFrame(x, index=folds["key"], columns=CLASSES).sort_index()


def test_a_folds_ensemble_weights_never_see_that_fold():
    folds = recordings()
    scores = {"good": scores_of(folds, 0.8, 0), "poor": scores_of(folds, 0.3, 1)}
    first = nested_ensemble_scores(scores, folds, CLASSES, "recording.accuracy", 4, None, 0.5)
    # make 'poor' perfect on fold 0 only: fold 0's weights (chosen on folds 1 and 2) cannot change
    fold0 = folds.loc[folds["fold"] == 0, "key"]
    perfect = scores["poor"].copy()
    perfect.loc[fold0] = np.eye(3)[folds.set_index("key").loc[fold0, "class_id"]]
    again = nested_ensemble_scores({**scores, "poor": perfect}, folds, CLASSES, "recording.accuracy", 4, None, 0.5)
    assert again["per_fold"][0]["weights"] == first["per_fold"][0]["weights"]
    assert again["per_fold"][1]["weights"] != first["per_fold"][1]["weights"] or \
        again["per_fold"][1]["score"] != first["per_fold"][1]["score"]  # the other folds did see it
    assert [f["fold"] for f in first["per_fold"]] == [0, 1, 2]
    assert first["mean"] == np.mean([f["score"] for f in first["per_fold"]])
