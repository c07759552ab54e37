"""A prediction shard's journal: what a rerun keeps after a kill, a node crash or a retrain."""
import logging

import pandas as pd

from soundclf.prediction_parts import ShardParts, parts_digest

CLASSES = ["owl", "tit"]


def rows(key, n=2):
    return pd.DataFrame({"row_id": [f"{key}_{5 * (i + 1)}" for i in range(n)], "owl": 0.25, "tit": 0.5})


def journal(folder, digest="models 1", keys=("site_A/a.WAV", "site_B/a.WAV", "site_B/b.WAV")):
    parts = ShardParts(folder, digest)
    for key in keys:
        parts.commit(key, rows(key))
    return parts


def test_committed_rows_are_read_back_in_commit_order_and_kept_by_a_rerun(tmp_path):
    journal(tmp_path / "p")
    again = ShardParts(tmp_path / "p", "models 1")
    assert again.keys == {"site_A/a.WAV", "site_B/a.WAV", "site_B/b.WAV"}
    table = again.read(CLASSES)
    assert table["row_id"].tolist() == [f"{k}_{e}" for k in ("site_A/a.WAV", "site_B/a.WAV", "site_B/b.WAV")
                                        for e in (5, 10)]
    assert ShardParts(tmp_path / "empty", "models 1").read(CLASSES).columns.tolist() == ["row_id", *CLASSES]


def test_rows_written_after_the_last_commit_are_dropped(tmp_path):
    parts = journal(tmp_path / "p")
    with open(parts.rows, "a") as f:
        f.write("site_C/a.WAV_5,0.1,0.")  # killed while appending a recording's rows
    again = ShardParts(tmp_path / "p", "models 1")
    assert "site_C/a.WAV" not in again.keys and len(again.read(CLASSES)) == 6
    again.commit("site_C/a.WAV", rows("site_C/a.WAV"))
    assert len(ShardParts(tmp_path / "p", "models 1").read(CLASSES)) == 8


def test_a_node_crash_that_lost_the_end_of_the_rows_drops_their_commits(tmp_path):
    parts = journal(tmp_path / "p")
    size = parts.rows.stat().st_size
    with open(parts.rows, "r+b") as f:
        f.truncate(size - 10)  # the page cache lost the last rows, not the done line
    again = ShardParts(tmp_path / "p", "models 1")
    assert again.keys == {"site_A/a.WAV", "site_B/a.WAV"}
    assert again.read(CLASSES)["row_id"].str.startswith("site_B/b.WAV").sum() == 0


def test_parts_of_other_models_are_discarded_and_counted(tmp_path, caplog):
    journal(tmp_path / "p")
    with caplog.at_level(logging.INFO, logger="soundclf"):
        retrained = ShardParts(tmp_path / "p", "models 2")
    assert retrained.keys == set() and not retrained.rows.exists()
    assert "discarded 3 recording(s)" in caplog.text


def test_the_digest_follows_the_model_bytes_and_the_settings(tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights 1")
    first = parts_digest([model], {"batch_size": 8})
    assert parts_digest([model], {"batch_size": 8}) == first
    assert parts_digest([model], {"batch_size": 16}) != first
    model.write_bytes(b"weights 2")
    assert parts_digest([model], {"batch_size": 8}) != first
