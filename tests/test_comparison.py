"""The comparison table and the ensemble: members calibrated to one scale, and the nested
ensemble (each fold scored by the ensemble chosen without it) as a row of the table."""
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from soundclf.comparison import (NESTED_ENSEMBLE, calibrate, comparison_table, fit_calibration, nested_ensemble_cv,
                                 select_ensemble)
from soundclf.scoring import recording_truth

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


def ranks_alike(x: pd.DataFrame, y: pd.DataFrame) -> bool:
    order = np.lexsort((y.to_numpy().ravel(), x.to_numpy().ravel()))
    return bool((np.diff(y.to_numpy().ravel()[order]) >= 0).all())


def test_calibration_keeps_a_members_ranking_and_puts_softmax_and_sigmoid_members_on_one_scale():
    folds = recordings()
    truth = recording_truth(folds, sorted(folds["key"]), len(CLASSES))
    sigmoid = scores_of(folds, 0.7, 0).clip(0.01, 0.99)
    squashed = sigmoid ** 3  # a monotone squash of the same member
    softmax = np.exp(2 * sigmoid).div(np.exp(2 * sigmoid).sum(axis=1), axis=0)  # rows summing to 1
    members = {"sigmoid": sigmoid, "squashed": squashed, "softmax": softmax}
    calibrated = {name: calibrate(s, fit_calibration(s, truth)) for name, s in members.items()}
    for name in members:
        assert ranks_alike(members[name], calibrated[name])
    assert ranks_alike(calibrated["sigmoid"], calibrated["squashed"])
    # the scores of true labels: far apart before, alike after; and every calibrated member's
    # mean is what a probability's is, the positive rate
    positive = truth.astype(bool)
    assert sigmoid.to_numpy()[positive].mean() - softmax.to_numpy()[positive].mean() > 0.15
    assert calibrated["sigmoid"].to_numpy()[positive].mean() == pytest.approx(
        calibrated["softmax"].to_numpy()[positive].mean(), abs=0.1)
    for name in calibrated:
        assert calibrated[name].to_numpy().mean() == pytest.approx(truth.mean(), abs=0.01)
    assert fit_calibration(sigmoid, np.zeros_like(truth)) == {"scale": 1.0, "offset": 0.0}  # nothing to fit


def test_the_ensemble_is_chosen_and_scored_on_calibrated_scores():
    folds = recordings()
    scores = {"good": scores_of(folds, 0.8, 0), "poor": scores_of(folds, 0.3, 1)}
    choice = select_ensemble(scores, folds, CLASSES, "recording.accuracy", 4, None, 0.5)
    assert set(choice["calibration"]) == set(choice["weights"]) and "optimistic" in choice["note"]
    assert choice["optimistic_score"] >= max(choice["single_scores"].values()) - 1e-9


def nested_choices(scores, folds):
    """As rule nested_ensemble_fold: each fold's ensemble chosen on the other folds alone."""
    choices = {}
    for k in sorted(folds["fold"].unique()):
        training = folds[folds["fold"] != k]
        rest = {n: s.loc[s.index.isin(training["key"])] for n, s in scores.items()}
        choices[int(k)] = select_ensemble(rest, training, CLASSES, "recording.accuracy", 4, None, 0.5)
    return choices


def test_the_nested_ensemble_scores_each_fold_with_the_choice_made_without_it():
    folds = recordings()
    scores = {"good": scores_of(folds, 0.8, 0), "poor": scores_of(folds, 0.3, 1)}
    choices = nested_choices(scores, folds)
    # 'poor' made perfect on fold 0 only: fold 0's choice (made on folds 1 and 2) cannot change
    fold0 = folds.loc[folds["fold"] == 0, "key"]
    perfect = scores["poor"].copy()
    perfect.loc[fold0] = np.eye(3)[folds.set_index("key").loc[fold0, "class_id"]]
    again = nested_choices({**scores, "poor": perfect}, folds)
    assert again[0] == choices[0] and again[1] != choices[1]
    cv = nested_ensemble_cv(choices, scores, folds, CLASSES, 0.5)
    assert [f["fold"] for f in cv["per_fold"]] == [0, 1, 2] and cv["n_recordings"] == len(folds)
    accuracies = [f["recording"]["accuracy"] for f in cv["per_fold"]]
    assert cv["mean_std"]["recording"]["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    # fold 1 by hand: its members' calibrated scores, weighted
    keys = folds.loc[folds["fold"] == 1, "key"].sort_values()
    mean = sum(w * calibrate(scores[n].loc[keys], choices[1]["calibration"][n]).to_numpy()
               for n, w in choices[1]["weights"].items()) / sum(choices[1]["weights"].values())
    truth = folds.set_index("key").loc[keys, "class_id"].to_numpy()
    assert accuracies[1] == pytest.approx((mean.argmax(axis=1) == truth).mean())


def cv_of(per_fold_accuracy):
    per_fold = [{"fold": k, "recording": {"accuracy": a}} for k, a in enumerate(per_fold_accuracy)]
    values = np.array(per_fold_accuracy)
    return {"per_fold": per_fold, "mean_std": {"recording": {"accuracy": {"mean": values.mean(), "std": values.std()}}},
            "pooled": {"recording": {"accuracy": values.mean()}}}


def test_the_nested_ensemble_is_a_row_with_paired_per_fold_differences(tmp_path):
    bench = tmp_path / "b.tsv"
    bench.write_text("s\th:m:s\n12.0\t0:00:12\n")
    cvs = {"cnn": cv_of([0.6, 0.7, 0.8]), "probe": cv_of([0.7, 0.6, 0.9]), NESTED_ENSEMBLE: cv_of([0.75, 0.65, 0.85])}
    table = comparison_table(cvs, {"cnn": [str(bench)] * 3, "probe": [str(bench)] * 3}, "cnn",
                             "recording.accuracy").set_index("experiment")
    row = table.loc[NESTED_ENSEMBLE]
    assert row["recording.accuracy.diff_vs_cnn.mean"] == pytest.approx(np.mean([0.15, -0.05, 0.05]))
    assert row["recording.accuracy.diff_vs_cnn.std"] == pytest.approx(np.std([0.15, -0.05, 0.05]))
    assert row["recording.accuracy.folds_won_vs_cnn"] == "2/3"
    assert row["recording.accuracy.mean"] == pytest.approx(0.75) and np.isnan(row["train_seconds_per_fold"])
    assert table.loc["probe", "train_seconds_per_fold"] == 12.0
    # compared on a window metric, the ensemble (recording scores only) has no figure, not an error
    window = comparison_table({n: cv | {"mean_std": {}} for n, cv in cvs.items()}, {}, "cnn", "window.accuracy")
    assert window.set_index("experiment")["window.accuracy.diff_vs_cnn.mean"].isna().all()


def planned_inputs(plan: str) -> dict[str, list[str]]:
    """Output file -> input files of every job in a dry run's plan."""
    inputs = {}
    for job in re.split(r"^(?:local)?rule \w+:$", plan, flags=re.M)[1:]:
        fields = dict(re.findall(r"^\s+(input|output): (.*)$", job, re.M))
        for out in fields.get("output", "").split(", "):
            inputs[out] = [f for f in fields.get("input", "").split(", ") if f]
    return inputs


@pytest.mark.workflow
def test_fold_k_nested_ensemble_never_reads_fold_k(tmp_path, tiny_dataset):
    """Every file fold k's nested choice is made from, directly or not (the dry run's plan,
    on a fresh folder where every job is planned): no window table of fold k."""
    from conftest import run_snakemake, upstream
    from test_workflow import write_config

    shutil.copytree(tiny_dataset, tmp_path / "data")
    config = write_config(tmp_path, {"experiments": {"a": None, "b": {"train": {"crop_seconds": 5}}}})
    targets = [f"results/experiments/ensemble/nested/fold{k}.json" for k in (0, 1)]
    inputs = planned_inputs(run_snakemake(tmp_path, "-n", *targets, "--configfile", config).stdout)
    for k, target in enumerate(targets):
        made_from = upstream(inputs, target)
        windows = {f for f in made_from if f.endswith("windows.csv")}
        assert windows == {f"results/experiments/{e}/oof/fold{1 - k}/windows.csv" for e in ("a", "b")}
        assert not any(f"fold{k}" in f for f in made_from if "/oof/" in f or "/ensemble/" in f)
        assert f"results/experiments/a/models/fold{1 - k}/model.pt" in made_from  # the closure is followed
