"""Evaluation and prediction on 5 s windows: row ids, fold averaging, the same input as the
cache-based evaluation, metrics against window labels; OOF aggregation."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tone, write
from soundclf.datasets import WindowDataset, segment_frames
from soundclf.evaluation import window_probabilities
from soundclf.mel import MelParams
from soundclf.mel_cache import MelCache, shard_path, write_shard
from soundclf.model import SoundClassifier, load_model, save_model
from soundclf.oof import cv_metrics, per_class_table
from soundclf.prediction import predict_folder
from soundclf.scoring import recording_scores, window_table
from soundclf.prediction_parts import ShardParts
from soundclf.sources import list_audio_files
from soundclf.submission import PredictionError, prediction_metrics, submission_form, submission_row_ids

PARAMS = MelParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=16, fmin=50, fmax=7000)
CLASSES = ["owl", "tit", "wren"]
CPU = torch.device("cpu")


def list_audio(folder, extensions):
    return [Path(p) for p in list_audio_files(folder, extensions)]


def saved_model(path, seed):
    torch.manual_seed(seed)
    model = SoundClassifier("lcnet_050", len(CLASSES))
    meta = {"backbone": "lcnet_050", "classes": CLASSES, "fold": seed, "mel_params": PARAMS.as_dict(),
            "segment_seconds": 5.0, "segment_frames": segment_frames(PARAMS, 5.0)}
    save_model(path, model, meta)
    return path


@pytest.fixture
def recordings(tmp_path):
    rng = np.random.default_rng(0)
    files = []
    for name, seconds in [("scape_a.wav", 12.0), ("site b.flac", 10.0)]:
        wave = tone(seconds, 16000, 900.0) + 0.1 * rng.standard_normal(int(seconds * 16000)).astype(np.float32)
        files.append(write(tmp_path / "scapes" / name, wave, 16000))
    return files


def test_one_row_per_five_second_window_with_file_and_end_second_ids(tmp_path, recordings):
    models = [saved_model(tmp_path / "m0.pt", 0)]
    table = predict_folder(list_audio(tmp_path / "scapes", ["wav", "flac"]), models, batch_size=2, device=CPU)
    assert table["row_id"].tolist() == ["scape_a.wav_5", "scape_a.wav_10", "scape_a.wav_12", "site b.flac_5",
                                        "site b.flac_10"]  # 12 s: the last window is 7-12 s; keys: the file names
    submission = submission_form(table)
    assert submission["row_id"].tolist() == ["scape_a_5", "scape_a_10", "scape_a_12", "site b_5", "site b_10"]
    assert list(submission.columns) == ["row_id", *CLASSES]
    probabilities = submission[CLASSES].to_numpy()
    assert ((probabilities > 0) & (probabilities < 1)).all()


def test_prediction_is_the_mean_of_the_fold_models(tmp_path, recordings):
    files = list_audio(tmp_path / "scapes", ["wav", "flac"])
    paths = [saved_model(tmp_path / f"m{k}.pt", k) for k in (0, 1)]
    single = [predict_folder(files, [p], batch_size=4, device=CPU)[CLASSES].to_numpy() for p in paths]
    both = predict_folder(files, paths, batch_size=4, device=CPU)[CLASSES].to_numpy()
    assert not np.allclose(single[0], single[1])
    assert np.allclose(both, (single[0] + single[1]) / 2, atol=1e-6)


def test_decoding_workers_give_the_same_rows_in_file_order_and_skip_a_broken_file(tmp_path, recordings):
    (tmp_path / "scapes/broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    for i in range(3):  # more files than workers, windows of several files in one batch
        write(tmp_path / "scapes" / f"extra_{i}.wav", tone(6.0 + i, 16000, 500.0 + 200 * i), 16000)
    files = list_audio(tmp_path / "scapes", ["wav", "flac"])
    paths = [saved_model(tmp_path / "m0.pt", 0)]
    alone = predict_folder(files, paths, batch_size=3, device=CPU)
    parts = ShardParts(tmp_path / "parts", "models")
    workers = predict_folder(files, paths, batch_size=3, device=CPU, num_workers=2, parts=parts)
    assert not alone["row_id"].str.startswith("broken").any()
    workers = workers.set_index("row_id").loc[alone["row_id"]].reset_index()  # committed as each file finishes
    np.testing.assert_allclose(workers[CLASSES].to_numpy(), alone[CLASSES].to_numpy(), atol=1e-6)
    assert parts.keys == {f.name for f in files if f.stem != "broken"}
    with pytest.raises(Exception, match="broken.wav"):  # on_bad_audio 'fail' stops at it, naming it
        predict_folder(files, paths, batch_size=3, device=CPU, num_workers=2, on_bad_audio="fail")


def test_prediction_sees_the_same_windows_as_evaluation_from_the_cache(tmp_path, recordings):
    """Decoding + mel at prediction time and the float32 cache give the same probabilities."""
    path = saved_model(tmp_path / "m0.pt", 0)
    files = list_audio(tmp_path / "scapes", ["wav", "flac"])
    submission = predict_folder(files, [path], batch_size=4, device=CPU)
    keys = [f.name for f in files]
    write_shard(shard_path(tmp_path / "mels", 0), list(zip(keys, map(str, files))), PARAMS, dtype="float32")
    table = pd.DataFrame({"key": keys, "duration": [12.0, 10.0]})
    windows = WindowDataset(table, MelCache(tmp_path / "mels", 1), PARAMS, 5.0, segment_frames(PARAMS, 5.0))
    model, _ = load_model(path)
    from_cache = window_probabilities(model, windows, batch_size=3)
    assert np.allclose(from_cache, submission[CLASSES].to_numpy(), atol=1e-4)


def test_recordings_of_several_recorders_with_the_same_names_keep_their_own_rows(tmp_path):
    keys = pd.Series(["site_A/20240501_060000.WAV", "site_B/20240501_060000.WAV", "site_B/20240501_070000.WAV"])
    ids, named_by = submission_row_ids(keys, pd.Series([5.0, 5.0, 10.0]))
    assert named_by == "path" and ids.tolist() == ["site_A/20240501_060000_5", "site_B/20240501_060000_5",
                                                   "site_B/20240501_070000_10"]
    ids, named_by = submission_row_ids(keys.iloc[1:], pd.Series([5.0, 10.0]))  # stems unique: BirdCLEF's form
    assert named_by == "stem" and ids.tolist() == ["20240501_060000_5", "20240501_070000_10"]


def test_prediction_metrics_against_window_labels(tmp_path):
    submission = pd.DataFrame({"row_id": ["s_5", "s_10", "s_15"], "owl": [0.9, 0.1, 0.2],
                               "tit": [0.2, 0.8, 0.1], "wren": [0.1, 0.3, 0.2]})
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"row_id": ["s_5", "s_10", "s_15"], "birds": ["owl", "tit owl", "nocall"]}).to_csv(labels, index=False)
    metrics = prediction_metrics(submission, labels, nocall_threshold=0.5)
    # row F1 (BirdCLEF 2021): {owl} vs {owl} = 1; {tit} vs {tit, owl} = 2/3; nocall vs nocall = 1
    assert metrics["row_f1_nocall"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert metrics["n_windows"] == 3 and metrics["n_positive_windows"] == 2
    pd.DataFrame({"row_id": ["s_5"], "birds": ["owl"]}).to_csv(labels, index=False)
    with pytest.raises(PredictionError, match="no row"):
        prediction_metrics(submission, labels, 0.5)


def test_recording_score_is_the_max_over_its_windows():
    windows = pd.DataFrame({"key": ["a", "a", "b"], "start": [0, 5, 0], "end": [5, 10, 5]})
    table = window_table(windows, np.array([[0.1, 0.7, 0.0], [0.6, 0.2, 0.1], [0.3, 0.3, 0.9]]), CLASSES)
    scores = recording_scores(table, CLASSES)
    assert scores.loc["a"].tolist() == [0.6, 0.7, 0.1] and scores.loc["b"].tolist() == [0.3, 0.3, 0.9]


def test_oof_aggregation_pools_folds_and_scores_each_class():
    folds = pd.DataFrame({"key": ["a", "b", "c", "d"], "class_id": [0, 1, 0, 2],
                          "secondary_class_ids": [[], [0], [], []], "fold": [0, 0, 1, 1]})
    oof = pd.DataFrame({"fold": [0, 0, 1, 1, 1], "key": ["a", "b", "c", "c", "d"], "start": [0, 0, 0, 5, 0],
                        "end": [5, 5, 5, 10, 5], "owl": [0.9, 0.6, 0.2, 0.8, 0.1],
                        "tit": [0.1, 0.7, 0.1, 0.1, 0.2], "wren": [0.2, 0.1, 0.3, 0.1, 0.9]})
    per_class = per_class_table(oof, folds, CLASSES).set_index("class")
    # owl positives a, b (secondary), c: recording scores a .9, b .6, c .8 vs d .1 -> AUC 1
    assert per_class.loc["owl", "support"] == 3 and per_class.loc["owl", "roc_auc"] == 1.0
    assert per_class.loc["tit", "ap"] == 1.0 and per_class.loc["wren", "support"] == 1
    fold_metrics = [{"fold": 1, "recording": {"lwlrap": 0.5}, "window": {"lwlrap": 0.4}},
                    {"fold": 0, "recording": {"lwlrap": 1.0}, "window": {"lwlrap": 0.6}}]
    summary = cv_metrics(fold_metrics, oof, folds, CLASSES, 0.5)
    assert [m["fold"] for m in summary["per_fold"]] == [0, 1]
    assert summary["mean_std"]["recording"]["lwlrap"] == {"mean": 0.75, "std": 0.25}
    assert summary["pooled"]["recording"]["lwlrap"] == pytest.approx(1.0)
    assert summary["n_recordings"] == 4 and summary["n_windows"] == 5


def test_raven_tables_of_the_soundscapes_give_the_same_window_truth_as_their_labels(tiny_dataset):
    """The demo writes every soundscape call to a Raven table and labels its windows by the
    same overlap rule: the two sources of truth must agree window by window."""
    from soundclf.submission import annotated_window_truth, label_matrix, prediction_metrics

    labels = pd.read_csv(tiny_dataset / "soundscape_labels.csv")
    classes = sorted({b for birds in labels["birds"] for b in birds.split() if b != "nocall"} | {"whistler"})
    annotations = {"raven_label_column": "Species", "min_overlap_seconds": 0.1}
    from_labels = label_matrix(tiny_dataset / "soundscape_labels.csv", labels["row_id"], classes)
    from_tables = annotated_window_truth(tiny_dataset / "soundscape_annotations", labels["row_id"], classes, 5.0, annotations)
    np.testing.assert_array_equal(from_tables, from_labels)
    assert from_labels.any(axis=1).sum() > 0
    submission = pd.DataFrame(np.random.default_rng(0).random((len(labels), len(classes))), columns=classes)
    submission.insert(0, "row_id", labels["row_id"])
    by_tables = prediction_metrics(submission, tiny_dataset / "soundscape_annotations", 0.5, 5.0, annotations)
    assert pd.Series(by_tables).equals(pd.Series(prediction_metrics(submission, tiny_dataset / "soundscape_labels.csv", 0.5)))
    with pytest.raises(PredictionError, match="no Raven table for 1 predicted recording"):
        other = submission.assign(row_id=submission["row_id"].str.replace("soundscape_00", "field_01"))
        prediction_metrics(other, tiny_dataset / "soundscape_annotations", 0.5, 5.0, annotations)


def test_a_prediction_resumes_at_the_first_file_without_a_committed_part(tmp_path):
    from soundclf.submission import merge_shards, submission_table

    files = [tmp_path / f"{name}.wav" for name in ("a", "b", "c")]
    called = []

    def predict_one(path):
        called.append(Path(path).stem)
        return [5.0, 10.0], np.full((2, 2), {"a": 0.1, "b": 0.2, "c": 0.3}[Path(path).stem], dtype=np.float32)

    whole = submission_table(files, predict_one, ["x", "y"], parts=ShardParts(tmp_path / "whole", "models 1"))
    assert called == ["a", "b", "c"]
    done = tmp_path / "whole/done.jsonl"
    lines = done.read_text().splitlines(keepends=True)
    done.write_text("".join(lines[:2]) + lines[2][:-5])  # killed while committing c: its line cut short
    called.clear()
    resumed = submission_table(files, predict_one, ["x", "y"], parts=ShardParts(tmp_path / "whole", "models 1"))
    assert called == ["c"]  # a and b were not predicted again, and c's first rows are not there twice
    pd.testing.assert_frame_equal(resumed, whole)
    called.clear()
    retrained = ShardParts(tmp_path / "whole", "models 2")  # other models: nothing of the old ones kept
    assert retrained.keys == set()
    submission_table(files, predict_one, ["x", "y"], parts=retrained)
    assert called == ["a", "b", "c"]
    merged = merge_shards([whole.iloc[4:], whole.iloc[:4]])  # shards in any order: recordings sorted
    assert merged["row_id"].tolist() == ["a.wav_5", "a.wav_10", "b.wav_5", "b.wav_10", "c.wav_5", "c.wav_10"]


def test_neighbour_smoothing_mixes_windows_of_one_file_only():
    from soundclf.submission import smooth_neighbours

    table = pd.DataFrame({"row_id": ["a_5", "a_10", "a_15", "b_5"], "x": [1.0, 0.0, 0.0, 0.8]})
    smoothed = smooth_neighbours(table, 0.25)
    np.testing.assert_allclose(smoothed["x"], [0.75, 0.25, 0.0, 0.8], atol=1e-6)  # b has no neighbour in a
    assert smooth_neighbours(table, 0) is table


def test_an_onnx_export_predicts_what_torch_does(tmp_path, recordings):
    from soundclf.onnx_model import MAX_DIFFERENCE, export_onnx

    files = list_audio(tmp_path / "scapes", ["wav", "flac"])
    paths = [saved_model(tmp_path / f"m{k}.pt", k) for k in (0, 1)]
    onnx_paths = [tmp_path / f"m{k}.onnx" for k in (0, 1)]
    for path, onnx_path in zip(paths, onnx_paths):
        assert export_onnx(path, onnx_path) <= MAX_DIFFERENCE
    by_torch = predict_folder(files, paths, batch_size=3, device=CPU)
    by_onnx = predict_folder(files, paths, batch_size=3, device=CPU, onnx_paths=onnx_paths)
    assert by_onnx["row_id"].tolist() == by_torch["row_id"].tolist()
    np.testing.assert_allclose(by_onnx[CLASSES].to_numpy(), by_torch[CLASSES].to_numpy(), atol=1e-4)


def test_time_shift_tta_averages_rolled_copies_of_each_window():
    from soundclf.prediction import time_shift_tta

    def first_frame(x):  # a scorer that looks at the first frame only
        return x[:, 0, 0, :1].numpy()

    x = torch.arange(6, dtype=torch.float32).view(1, 1, 1, 6)
    assert time_shift_tta(first_frame, 0) is first_frame
    np.testing.assert_allclose(time_shift_tta(first_frame, 2)(x), [[(0 + 4 + 2) / 3]])  # frames 0, -2 (4), +2
