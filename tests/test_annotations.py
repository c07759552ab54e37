"""Strong labels: annotation tables read and checked, segment targets, event crops, window truth."""
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tone, write
from soundclf.annotations import AnnotationError, StrongLabels, read_annotations, write_raven_table
from soundclf.datasets import CropDataset, segment_frames
from soundclf.scoring import fold_metrics, window_truth
from soundclf.mel import MelParams
from soundclf.mel_cache import MelCache, shard_path, write_shard

CLASSES = ["owl", "wren", "lark"]
INDEX = pd.DataFrame({"key": ["owl/XC1.ogg", "wren/XC2.flac", "lark/XC3.wav", "a/dup.wav", "b/dup.wav"],
                      "duration": [20.0, 12.0, 6.0, 5.0, 5.0]})
RAVEN_COLUMNS = {"table": None, "negatives": None, "raven_dir": None, "raven_label_column": "Species",
                 "columns": {"recording": "recording_id", "label": "species_id", "start": "t_min", "end": "t_max"}}


def config(**kw):
    return RAVEN_COLUMNS | kw


def test_an_rfcx_table_is_read_and_bad_rows_are_rejected_with_reasons(tmp_path):
    (tmp_path / "tp.csv").write_text(
        "recording_id,species_id,songtype_id,t_min,f_min,t_max,f_max\n"
        "XC1,owl,1,1.5,500,2.5,900\n"           # by stem
        "wren/XC2.flac,wren,1,0,1000,12.05,4000\n"  # by key; runs 0.05 s past the end: clipped
        "XC9,owl,1,1,1,2,2\n"                    # unknown recording
        "XC1,eagle,1,1,1,2,2\n"                  # unknown label
        "XC1,owl,1,3,1,3,2\n"                    # start == end
        "XC3,lark,1,4,1,9,2\n"                   # past the end of a 6 s recording
        "XC1,owl,1,one,1,2,2\n"                  # not a number
        "dup,owl,1,1,1,2,2\n"                    # a stem two recordings share
        "XC1,,1,1,1,2,2\n"                       # no label
        "XC3,lark,1,6.02,1,6.08,2\n")             # starts after the end (within the 0.1 s tolerance)
    (tmp_path / "fp.csv").write_text("recording_id,species_id,t_min,t_max\nXC1,wren,5,6\nXC2,owl,1,2\nXC3,owl,1,2\n")
    result = read_annotations(config(table=str(tmp_path / "tp.csv"), negatives=str(tmp_path / "fp.csv")), INDEX, CLASSES)
    events = result.table[result.table["kind"] == "event"]
    assert events[["key", "label", "class_id", "start", "end"]].values.tolist() == [
        ["owl/XC1.ogg", "owl", 0, 1.5, 2.5], ["wren/XC2.flac", "wren", 1, 0.0, 12.0]]
    negatives = result.table[result.table["kind"] == "negative"]
    assert negatives[["key", "label", "start", "end"]].values.tolist() == [
        ["lark/XC3.wav", "owl", 1.0, 2.0], ["owl/XC1.ogg", "wren", 5.0, 6.0], ["wren/XC2.flac", "owl", 1.0, 2.0]]
    kinds = result.table[result.table["kind"].isin(["annotated", "partial"])].set_index("key")["kind"].to_dict()
    # XC1 has rejected rows and XC3 negatives only: neither may be taken as completely annotated
    assert kinds == {"wren/XC2.flac": "annotated", "owl/XC1.ogg": "partial", "lark/XC3.wav": "partial"}
    reasons = result.rejected["reason"].tolist()
    assert len(reasons) == 8 and all(result.rejected["fix"].str.len() > 0)
    for expected in ("'XC9' names no indexed recording", "label 'eagle' names no class", "start 3 s is not before end 3 s",
                     "outside the recording (0-6 s)", "are not numbers", "names 2 recordings", "no label"):
        assert any(expected in r for r in reasons), expected
    assert result.rejected["source"].str.startswith(str(tmp_path / "tp.csv")).all()


def test_a_table_without_a_mapped_column_stops_naming_the_key(tmp_path):
    (tmp_path / "tp.csv").write_text("rec,species,begin,end\nXC1,owl,1,2\n")
    with pytest.raises(AnnotationError, match=r"data.annotations.columns.recording \('recording_id'\)"):
        read_annotations(config(table=str(tmp_path / "tp.csv")), INDEX, CLASSES)


def test_a_raven_table_the_demo_writes_reads_back_the_same_events(tmp_path):
    events = [("owl", 1.25, 2.5), ("wren", 0.5, 0.7), ("owl", 18.0, 19.999)]
    write_raven_table(tmp_path / "raven/owl/XC1.Table.1.selections.txt", events, low_high_hz=(0.0, 16000.0))
    write_raven_table(tmp_path / "raven/lark/XC3.Table.1.selections.txt", [])  # annotated, no call
    result = read_annotations(config(raven_dir=str(tmp_path / "raven")), INDEX, CLASSES)
    got = result.table[result.table["kind"] == "event"][["label", "start", "end"]].values.tolist()
    assert got == [[label, start, end] for label, start, end in sorted(events, key=lambda e: e[1])]
    assert (result.table.loc[result.table["kind"] == "event", "key"] == "owl/XC1.ogg").all()
    assert sorted(result.table.loc[result.table["kind"] == "annotated", "key"]) == ["lark/XC3.wav", "owl/XC1.ogg"]
    assert result.rejected.empty


def test_a_raven_table_as_raven_writes_it(tmp_path):
    """Tab-separated, one row per selection and view, a label column named by config; a table
    over several files names each row's file."""
    header = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tAnnotation\n"
    (tmp_path / "raven").mkdir()
    (tmp_path / "raven/XC2.Table.1.selections.txt").write_text(
        header
        + "1\tWaveform 1\t1\t2.100000000\t3.400000000\t0.000\t16000.000\twren\n"
        + "1\tSpectrogram 1\t1\t2.100000000\t3.400000000\t1200.5\t5400.0\twren\n"
        + "2\tSpectrogram 1\t1\t7.000000000\t7.200000000\t1200.5\t5400.0\tlark\n")
    (tmp_path / "raven/session.Table.1.selections.txt").write_text(
        header.replace("Annotation\n", "Begin File\tFile Offset (s)\tAnnotation\n")
        + "1\tSpectrogram 1\t1\t30.0\t31.5\t0\t0\tXC1.ogg\t10.0\towl\n")
    result = read_annotations(config(raven_dir=str(tmp_path / "raven"), raven_label_column="Annotation"), INDEX, CLASSES)
    events = result.table[result.table["kind"] == "event"]
    assert events[["key", "label", "start", "end"]].values.tolist() == [
        ["owl/XC1.ogg", "owl", 10.0, 11.5], ["wren/XC2.flac", "wren", 2.1, 3.4], ["wren/XC2.flac", "lark", 7.0, 7.2]]
    assert result.rejected.empty  # the multi-file table's own name need not be a recording's
    wrong_column = read_annotations(config(raven_dir=str(tmp_path / "raven")), INDEX, CLASSES)
    assert wrong_column.rejected["fix"].str.contains("data.annotations.raven_label_column").all()
    assert wrong_column.table.empty  # a rejected table annotates nothing (its recording is not 'no call')


def test_raven_tables_in_their_own_folders_and_labels_with_quotes(tmp_path):
    header = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tSpecies\n"
    (tmp_path / "raven/site_a/2024").mkdir(parents=True)
    (tmp_path / "raven/site_a/2024/XC1.Table.1.selections.txt").write_text(
        header + '1\tSpectrogram 1\t1\t1.0\t2.0\t"owl\n2\tSpectrogram 1\t1\t3.0\t4.0\towl\n')
    result = read_annotations(config(raven_dir=str(tmp_path / "raven")), INDEX, CLASSES)
    assert result.table["key"].unique().tolist() == ["owl/XC1.ogg"]  # matched by its unique stem
    assert result.table.loc[result.table["kind"] == "event", "start"].tolist() == [3.0]
    assert result.rejected["reason"].tolist() == ["label '\"owl' names no class"]  # one row, not the rest


def strong(events, negatives=(), annotated=None, complete=False, min_overlap=0.5, kind="annotated"):
    rows = [{"key": "r", "kind": row_kind, "label": "", "class_id": c, "start": s, "end": e}
            for row_kind, spans in (("event", events), ("negative", negatives)) for c, s, e in spans]
    rows += [{"key": k, "kind": kind, "label": "", "class_id": -1, "start": 0, "end": 0}
             for k in (annotated or ["r"])]
    return StrongLabels.from_table(pd.DataFrame(rows), complete, min_overlap)


def test_window_truth_follows_the_overlap_rule_at_window_edges():
    windows = np.array([[0, 5], [5, 10], [10, 15]], dtype=float)
    weak = np.array([1, 0, 0], dtype=np.float32)
    labels = strong([(1, 4.6, 5.2),     # 0.4 s in window 0, 0.2 s in window 1: min 0.5 s, half of 0.6 is 0.3
                     (2, 9.8, 10.2),    # 0.4 s long, 0.2 s each side: half of it, both count
                     (0, 14.99, 20.0)], complete=True)  # 0.01 s in window 2: too little
    truth = labels.window_truth("r", windows, weak)
    np.testing.assert_array_equal(truth, [[0, 1, 0], [0, 0, 1], [0, 0, 1]])
    # not complete: the weak label stays on windows without an event of its class
    np.testing.assert_array_equal(strong([(1, 4.6, 5.2)]).window_truth("r", windows, weak), [[1, 1, 0], [1, 0, 0], [1, 0, 0]])


def test_negatives_give_zero_targets_and_events_win_over_them():
    windows = np.array([[0, 5], [5, 10]], dtype=float)
    weak = np.array([1, 1, 0], dtype=np.float32)
    labels = strong(events=[(0, 6, 7)], negatives=[(0, 0, 10), (1, 1, 2)])
    np.testing.assert_array_equal(labels.window_truth("r", windows, weak), [[0, 0, 0], [1, 1, 0]])
    # a recording annotated in part (negatives only, or a rejected row) is never taken as complete
    partial = strong(events=[], negatives=[(1, 1, 2)], complete=True, kind="partial")
    assert "r" in partial
    np.testing.assert_array_equal(partial.window_truth("r", windows, weak), [[1, 0, 0], [1, 1, 0]])


def test_segment_targets_count_the_frames_each_segment_holds():
    fps = 10.0
    labels = strong([(1, 0.95, 1.6)], complete=True, min_overlap=0.5)  # frames 10..15
    positions = np.arange(40).reshape(4, 10)  # four 1 s segments
    y = labels.segment_targets("r", positions, fps, np.array([1, 0, 0], np.float32))
    # segment 0 holds 0 frames of it, segment 1 holds all 6 (0.6 s)
    np.testing.assert_array_equal(y[:, 1], [0, 1, 0, 0])
    assert y[:, 0].sum() == 0  # complete: the weak label is not on any segment
    # at the edges: a segment needs 5 frames (0.5 s) of an event, or half of a shorter one
    for start, end, expected in [(0.6, 1.3, [1, 0, 0, 0]),   # 7 frames: 4 | 3, half is 3.5
                                 (0.5, 1.5, [1, 1, 0, 0]),   # 10 frames: 5 | 5
                                 (0.7, 1.8, [0, 1, 0, 0]),   # 11 frames: 3 | 8
                                 (1.6, 2.0, [0, 1, 0, 0])]:  # 4 frames, all in segment 1
        edge = strong([(2, start, end)], complete=True, min_overlap=0.5)
        got = edge.segment_targets("r", positions, fps, np.zeros(3, np.float32))[:, 2]
        np.testing.assert_array_equal(got, expected, err_msg=f"{start}-{end}")
    # padded (-1) frames hold nothing; a looped clip's repeated frames count again (frames 10..15 need 3)
    no = np.zeros(3, np.float32)
    assert labels.segment_targets("r", np.array([[8, 9, 10, 11, -1, -1]]), fps, no)[0, 1] == 0
    assert labels.segment_targets("r", np.array([[8, 9, 10, 11, 12, -1]]), fps, no)[0, 1] == 1
    assert labels.segment_targets("r", np.array([[10, 11, 10, 11, -1, -1]]), fps, no)[0, 1] == 1
    short = strong([(0, 0.9, 1.0)], complete=True, min_overlap=0.5)  # one frame (9): a segment holding it counts
    assert short.segment_targets("r", np.array([[7, 8, 9]]), fps, no)[0, 0] == 1
    assert short.segment_targets("r", np.array([[6, 7, 8]]), fps, no)[0, 0] == 0


PARAMS = MelParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=16, fmin=50, fmax=7000)


@pytest.fixture
def long_recording(tmp_path):
    path = write(tmp_path / "r.wav", tone(30.0, 16000, 800.0), 16000)
    write_shard(shard_path(tmp_path / "mels", 0), [("r", str(path))], PARAMS, dtype="float32")
    table = pd.DataFrame({"key": ["r"], "duration": [30.0], "class_id": [0], "secondary_class_ids": [[]]})
    return MelCache(tmp_path / "mels", 1), table


def test_event_crops_hold_their_event_at_random_positions(long_recording):
    cache, table = long_recording
    seg = segment_frames(PARAMS, 1.0)
    labels = strong([(1, 21.0, 21.4)], complete=True, min_overlap=0.1)
    crops = CropDataset(table, cache, n_classes=3, seg_frames=seg, n_segments=3, top_db=None, strong=labels,
                        event_crop_prob=1.0, frames_per_second=PARAMS.frames_per_second)
    rng = np.random.default_rng(0)
    starts = []
    for _ in range(40):
        _, positions = crops.crop("r", rng)
        assert (positions >= round(21.4 * PARAMS.frames_per_second) - 3 * seg).all()  # the event's end is inside
        assert positions[0] <= 21.0 * PARAMS.frames_per_second
        starts.append(int(positions[0]))
    assert len(set(starts)) > 20  # anywhere inside, not always centred
    torch.manual_seed(0)
    for _ in range(10):
        x, y, w, is_strong = crops[0]
        assert bool(is_strong) and y.shape == (3, 3)
        assert y[:, 1].max() == 1 and y[:, 1].sum() in (1, 2) and y[:, 0].sum() == 0  # the event's segment(s) only
    random_crops = CropDataset(table, cache, 3, seg, 3, top_db=None, strong=labels, event_crop_prob=0.0,
                               frames_per_second=PARAMS.frames_per_second)
    torch.manual_seed(0)
    assert sum(float(random_crops[0][1][:, 1].max()) for _ in range(40)) < 20  # most random crops miss a 0.4 s call


def test_an_unannotated_recording_keeps_its_weak_targets(long_recording):
    cache, table = long_recording
    labels = strong([(1, 21.0, 21.4)], annotated=["other"], complete=True)
    crops = CropDataset(table, cache, 3, segment_frames(PARAMS, 1.0), 2, top_db=None, strong=labels,
                        frames_per_second=PARAMS.frames_per_second)
    _, y, _, is_strong = crops[0]
    assert not bool(is_strong) and y.tolist() == [[1, 0, 0], [1, 0, 0]]


def test_fold_metrics_report_strong_and_weak_window_truth():
    classes = ["a", "b"]
    held_out = pd.DataFrame({"key": ["r", "s"], "class_id": [0, 1], "secondary_class_ids": [[], []]})
    table = pd.DataFrame({"key": ["r", "r", "s"], "start": [0, 5, 0], "end": [5, 10, 5],
                          "a": [0.9, 0.1, 0.2], "b": [0.1, 0.2, 0.8]})
    labels = StrongLabels.from_table(pd.DataFrame([
        {"key": "r", "kind": "event", "label": "a", "class_id": 0, "start": 1.0, "end": 2.0},
        {"key": "r", "kind": "annotated", "label": "", "class_id": -1, "start": 0, "end": 10}]), True, 0.1)
    np.testing.assert_array_equal(window_truth(table, held_out, 2, labels), [[1, 0], [0, 0], [0, 1]])
    metrics = fold_metrics(table, held_out, classes, 0, 0.5, labels)
    assert metrics["n_annotated_recordings"] == 1
    assert metrics["window"]["macro_roc_auc"] == 1.0  # the quiet second window of r is not an 'a' window
    assert metrics["window_weak"]["macro_roc_auc"] < 1.0  # scored against r's label on every window
