"""Hostile input: every case of the generated corpus gets its documented behaviour at
indexing (rejected with a reason and a fix, or indexed), and the two policies stop the run
listing every problem."""
import logging
import shutil
from contextlib import contextmanager

import pytest
import soundfile as sf

from hostile_corpus import CASES, DUPLICATES, add_hostile_corpus
from soundclf.config import DEMO_COLUMNS

DEFAULT_MIN_SECONDS = 2048 / 32000  # data.min_seconds: null with the default mel.n_fft and sample rate
from soundclf.indexing import BadInputError, build_index
from soundclf.sources import list_recordings


@pytest.fixture(scope="module")
def hostile_dataset(tiny_dataset, tmp_path_factory):
    dataset = tmp_path_factory.mktemp("hostile") / "data"
    shutil.copytree(tiny_dataset, dataset)
    add_hostile_corpus(dataset)
    return dataset


def data_section(dataset, **policies):
    return {"layout": "metadata", "audio_dir": str(dataset / "train_audio"),
            "metadata_csv": str(dataset / "train_metadata.csv"), "columns": DEMO_COLUMNS} | policies


@contextmanager
def soundclf_log():
    """The records the soundclf loggers emit inside the block, as a list filled while it runs."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("soundclf").addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger("soundclf").removeHandler(handler)


@pytest.fixture(scope="module")
def indexed(hostile_dataset):
    with soundclf_log() as records:
        index, classes, rejected = build_index(list_recordings(data_section(hostile_dataset)), DEMO_COLUMNS,
                                               min_seconds=DEFAULT_MIN_SECONDS, threads=2)
    return index.set_index("key"), classes, rejected.set_index("key"), "\n".join(r.getMessage() for r in records)


@pytest.mark.parametrize("case", [c for c, _ in CASES], ids=[c.filename for c, _ in CASES])
def test_each_case_gets_its_documented_behaviour(indexed, case):
    index, _, rejected, _ = indexed
    if case.expect == "rejected":
        assert case.filename not in index.index
        row = rejected.loc[case.filename]
        assert (row["stage"], case.reason in row["reason"]) == (case.stage, True), row["reason"]
        assert case.filename in row["path"] and len(row["fix"]) > 10  # names the file and the fix
    else:
        assert case.filename not in rejected.index
        assert index.loc[case.filename, "duration"] > 0


def test_lengths_are_what_decodes_with_a_note_where_the_header_said_otherwise(indexed, hostile_dataset):
    index = indexed[0]
    mp3_in_wav = hostile_dataset / "train_audio/odd/mp3_in_wav.wav"
    assert sf.info(str(mp3_in_wav)).frames > index.loc["odd/mp3_in_wav.wav", "frames"]  # really the estimate case
    assert (index.loc["odd/mp3_in_wav.wav", "format"], index.loc["odd/mp3_in_wav.wav", "subtype"]) == ("WAV", "MPEG_LAYER_III")
    assert "the header estimates" in index.loc["odd/mp3_in_wav.wav", "note"]
    assert index.loc["odd/wav_1pct_short.wav", "frames"] == 47520  # 3 s at 16 kHz less the cut 1 %
    assert "the header promises 48000 frames" in index.loc["odd/wav_1pct_short.wav", "note"]
    assert index.loc["odd/short_0.15s.wav", "duration"] == 0.15
    assert index.loc["odd/clipped.wav", "note"] == ""


def test_odd_formats_are_indexed_with_their_true_properties(indexed):
    index = indexed[0]
    assert index.loc["odd/six_channels.wav", "channels"] == 6
    assert index.loc["odd/rate_96k.wav", "sample_rate"] == 96000
    assert index.loc["odd/rate_8k.flac", "sample_rate"] == 8000
    assert index.loc["odd/pcm_u8.wav", "subtype"] == "PCM_U8"
    assert abs(index.loc["odd/pcm_24.wav", "duration"] - 2.5) < 1e-3
    assert index.loc["odd/clipped.wav", "clipped_fraction"] > 0.3
    assert index.loc["odd/float32.wav", "clipped_fraction"] == 0


def test_a_label_heard_only_as_secondary_is_a_class_and_an_empty_label_a_no_call_recording(indexed):
    index, classes, _, _ = indexed
    assert index.loc["odd/unknown_secondary.wav", "secondary_labels"] == ["upsweeper", "nosuchbird"]
    assert classes.set_index("class").loc["nosuchbird", "secondary_only"]
    assert (index.loc["odd/unlabelled.wav", ["class_id", "no_call"]] == [-1, "empty label"]).all()


def test_with_secondary_classes_drop_an_unknown_secondary_label_is_dropped_and_a_known_one_kept(hostile_dataset):
    with soundclf_log() as records:
        good = [r for r in list_recordings(data_section(hostile_dataset))
                if not r.key.startswith("odd/") or r.key == "odd/unknown_secondary.wav"]
        index, classes, _ = build_index(good, DEMO_COLUMNS, secondary_classes="drop")
    assert index.set_index("key").loc["odd/unknown_secondary.wav", "secondary_labels"] == ["upsweeper"]
    assert "nosuchbird" not in set(classes["class"])
    assert "nosuchbird" in "\n".join(r.getMessage() for r in records)


def test_log_flags_duplicates_clipping_and_each_rejection(indexed):
    _, _, rejected, messages = indexed
    duplicate_line = next(line for line in messages.splitlines() if "duplicate audio" in line)
    assert all(name in duplicate_line for name in DUPLICATES)
    assert "clipped" in messages and "odd/clipped.wav" in messages
    for key in rejected.index:
        assert key in messages


@pytest.mark.parametrize("policy,stage", [("on_bad_metadata", "metadata"), ("on_bad_audio", "audio")])
def test_fail_policy_stops_listing_every_problem_of_its_stage(hostile_dataset, policy, stage):
    data = data_section(hostile_dataset)
    with pytest.raises(BadInputError) as err:
        build_index(list_recordings(data), DEMO_COLUMNS, min_seconds=DEFAULT_MIN_SECONDS, **{policy: "fail"})
    message = str(err.value)
    assert f"data.{policy}" in message
    for case, _ in CASES:
        if case.stage == stage:
            assert case.filename in message
    if stage == "metadata":  # with secondary_classes drop, an unknown class is a metadata error under 'fail'
        with pytest.raises(BadInputError, match="nosuchbird"):
            build_index(list_recordings(data), DEMO_COLUMNS, min_seconds=DEFAULT_MIN_SECONDS, secondary_classes="drop",
                        **{policy: "fail"})


def test_a_file_listed_twice_keeps_its_first_row(hostile_dataset):
    good = [r for r in list_recordings(data_section(hostile_dataset)) if r.label and r.key.split("/")[0] == r.label]
    index, _, rejected = build_index(good[:3] + good[:1], DEMO_COLUMNS)
    assert len(index) == 3
    assert rejected["reason"].tolist() == ["listed twice in the metadata; the first row was kept"]
