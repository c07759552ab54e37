"""Indexing: both layouts, label parsing, bad files rejected with reasons."""
import pandas as pd
import pytest

from conftest import tone, write
from soundclf.indexing import BadInputError, build_index, parse_label_list, read_index, write_index
from soundclf.sources import DataSourceError, list_recordings, shard_of

COLUMNS = {"filename": "filename", "label": "primary_label", "secondary_labels": "secondary_labels"}


def metadata_data(root):
    return {"layout": "metadata", "audio_dir": str(root / "train_audio"),
            "metadata_csv": str(root / "train_metadata.csv"), "columns": COLUMNS}


def test_metadata_layout_indexes_every_recording(tiny_dataset, tmp_path):
    meta = pd.read_csv(tiny_dataset / "train_metadata.csv")
    index, classes, rejected = build_index(list_recordings(metadata_data(tiny_dataset)), COLUMNS)
    assert len(rejected) == 0 and len(index) == len(meta)
    assert list(classes["class"]) == sorted(meta["primary_label"].unique())
    assert set(index["author"]) == set(meta["author"])  # other metadata columns ride along
    row = index.iloc[0]
    assert row["class_id"] == classes.set_index("class").loc[row["primary_label"], "class_id"]
    assert row["duration"] == pytest.approx(row["frames"] / row["sample_rate"], abs=1e-3)
    with_secondary = index[index["secondary_labels"].map(len) > 0]
    assert len(with_secondary) == (meta["secondary_labels"] != "[]").sum()
    write_index(index, tmp_path / "i.csv")
    again = read_index(tmp_path / "i.csv")
    assert again["secondary_class_ids"].tolist() == index["secondary_class_ids"].tolist()


def test_folder_layout_uses_folder_names_as_labels(tmp_path):
    for label, sr, ch in [("owl", 16000, 1), ("owl", 48000, 2), ("wren", 22050, 1)]:
        write(tmp_path / "audio" / label / f"{label}{sr}.flac", tone(1.0, sr, channels=ch), sr)
    (tmp_path / "audio" / "owl" / "notes.txt").write_text("ignored: not an audio extension")
    data = {"layout": "folders", "audio_dir": str(tmp_path / "audio"), "extensions": ["flac"]}
    index, classes, rejected = build_index(list_recordings(data), {})
    assert list(classes["class"]) == ["owl", "wren"] and list(classes["n_recordings"]) == [2, 1]
    assert sorted(index["key"]) == ["owl/owl16000.flac", "owl/owl48000.flac", "wren/wren22050.flac"]
    assert index.set_index("key").loc["owl/owl48000.flac", "channels"] == 2


def test_negative_folders_hold_no_call_recordings_without_a_label(tmp_path):
    from soundclf.folds import assign_folds, multi_hot

    for i, folder in enumerate(["owl", "owl", "wren", "wren", "noise", "Background", "silence"]):
        write(tmp_path / folder / f"r{i}.wav", tone(1.0, 16000, 500.0 + 100 * i), 16000)
    data = {"layout": "folders", "audio_dir": str(tmp_path),
            "negative_folders": ["noise", "background", "other", "silence"]}
    index, classes, rejected = build_index(list_recordings(data), {})
    assert rejected.empty and classes["class"].tolist() == ["owl", "wren"]
    negatives = index[index["key"].str.match("(noise|Background|silence)/")]
    assert len(negatives) == 3 and (negatives["primary_label"] == "").all() and (negatives["class_id"] == -1).all()
    y = multi_hot(index, 2)
    assert y[negatives.index].sum() == 0 and y.sum() == 4
    write_index(index, tmp_path / "index.csv")
    again = read_index(tmp_path / "index.csv")
    assert (again["class_id"] == index["class_id"]).all() and (again["primary_label"] == index["primary_label"]).all()
    folds = assign_folds(index, 2, seed=0)
    assert set(folds[negatives.index]) == {0, 1}  # no-call recordings are stratified over the folds too
    from soundclf.indexing import summarise

    text = summarise(index, rejected, "rejected.csv").text()
    assert "no-call recordings (no label, 0 for every class): " in text and "1 in noise/" in text
    assert "set data.negative_folders: [] to make those folders classes" in text
    # [] : the folders are classes like any other
    _, classes, _ = build_index(list_recordings(data | {"negative_folders": []}), {})
    assert classes["class"].tolist() == ["Background", "noise", "owl", "silence", "wren"]


def test_bad_files_are_rejected_with_reasons_and_the_rest_kept(tmp_path):
    audio = tmp_path / "audio" / "owl"
    write(audio / "good.flac", tone(1.0, 16000), 16000)
    ogg = write(audio / "corrupt.ogg", tone(3.0, 16000), 16000, "OGG", "VORBIS")
    raw = bytearray(ogg.read_bytes())
    raw[40:] = bytes(len(raw) - 40)  # header kept, every page after it zeroed
    ogg.write_bytes(bytes(raw))
    (audio / "empty.wav").write_bytes(b"")
    (audio / "text.wav").write_text("this is a text file\n" * 10)
    data = {"layout": "folders", "audio_dir": str(tmp_path / "audio"), "extensions": ["flac", "ogg", "wav"]}
    index, _, rejected = build_index(list_recordings(data), {})
    assert list(index["key"]) == ["owl/good.flac"]
    reasons = dict(zip(rejected["key"], rejected["reason"]))
    assert set(reasons) == {"owl/corrupt.ogg", "owl/empty.wav", "owl/text.wav"}
    assert "empty" in reasons["owl/empty.wav"] and "not readable as audio" in reasons["owl/text.wav"]
    with pytest.raises(BadInputError, match="corrupt.ogg"):
        build_index(list_recordings(data), {}, on_bad_audio="fail")


def test_metadata_rows_with_bad_labels_are_rejected(tiny_dataset, tmp_path):
    meta = pd.read_csv(tiny_dataset / "train_metadata.csv")
    meta.loc[0, "filename"] = "gone/XC0.ogg"
    meta.loc[1, "secondary_labels"] = "['unclosed"
    meta.to_csv(tmp_path / "meta.csv", index=False)
    data = metadata_data(tiny_dataset) | {"metadata_csv": str(tmp_path / "meta.csv")}
    index, _, rejected = build_index(list_recordings(data), COLUMNS)
    assert len(index) == len(meta) - 2
    assert any("names a file that does not exist" in r for r in rejected["reason"])
    assert any("malformed label list" in r for r in rejected["reason"])


def test_missing_metadata_column_names_the_config_key(tiny_dataset):
    data = metadata_data(tiny_dataset) | {"columns": COLUMNS | {"label": "species"}}
    with pytest.raises(DataSourceError, match="data.columns.label"):
        list_recordings(data)


@pytest.mark.parametrize("text,labels", [("['a', 'b']", ["a", "b"]), ("[]", []), ("", []), ("a b", ["a", "b"])])
def test_parse_label_list(text, labels):
    assert parse_label_list(text) == labels


def test_shard_of_is_stable_and_spread():
    keys = [f"sp/XC{i}.ogg" for i in range(400)]
    shards = [shard_of(k, 8) for k in keys]
    assert shards == [shard_of(k, 8) for k in keys]
    assert min(shards.count(s) for s in range(8)) > 25
    assert shard_of("sp/XC1.ogg", 8) == 4  # fixed value: a change would silently move every cache entry
