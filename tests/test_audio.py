"""Decoding: every format, rate and channel count comes out mono float32 at the right length."""
import numpy as np
import pytest
import soundfile as sf

from conftest import tone, write
from hostile_corpus import APE_TAG, mp3_without_length_frame
from soundclf import audio
from soundclf.audio import AudioDecodeError, check, load_mono, load_resampled, probe


@pytest.mark.parametrize("ext,fmt,subtype", [("ogg", "OGG", "VORBIS"), ("flac", "FLAC", "PCM_16"),
                                              ("wav", "WAV", "PCM_16"), ("wav", "WAV", "FLOAT")])
@pytest.mark.parametrize("sr", [16000, 22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_formats_rates_channels_decode(tmp_path, ext, fmt, subtype, sr, channels):
    data = tone(1.5, sr, 440.0, channels)
    path = write(tmp_path / f"x.{ext}", data, sr, fmt, subtype)
    info = probe(path)
    assert (info.sample_rate, info.channels) == (sr, channels)
    wave, got_sr = load_mono(path)
    assert got_sr == sr and wave.ndim == 1 and wave.dtype == np.float32
    assert abs(len(wave) - len(data)) <= (0 if ext != "ogg" else sr // 100)
    reference = data if channels == 1 else data[:, 0]
    n = min(len(wave), len(reference))
    tolerance = 0.05 if ext == "ogg" else 1e-3  # Vorbis is lossy
    assert np.sqrt(np.mean((wave[:n] - reference[:n]) ** 2)) < tolerance


def test_resampled_length_and_pitch(tmp_path):
    path = write(tmp_path / "a.wav", tone(2.0, 44100, 1000.0), 44100)
    wave = load_resampled(path, 32000)
    assert abs(len(wave) - 64000) <= 1
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.fft.rfftfreq(len(wave), 1 / 32000)[spectrum.argmax()] - 1000.0) < 2


def test_check_reports_peak_and_stable_hash(tmp_path):
    a = write(tmp_path / "a.flac", tone(1.0, 16000), 16000)
    b = write(tmp_path / "b.flac", tone(1.0, 16000), 16000)
    ca, cb = check(a), check(b)
    assert ca.content_hash == cb.content_hash
    assert 0.49 < ca.peak <= 0.5


@pytest.mark.parametrize("content,reason", [(b"", "empty file"), (b"hello, not audio\n" * 20, "not readable as audio")])
def test_unusable_files_raise_with_reason(tmp_path, content, reason):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError, match=reason) as err:
        check(path)
    assert str(path) in str(err.value)


def test_truncated_ogg_is_rejected_or_decoded_consistently(tmp_path):
    path = write(tmp_path / "t.ogg", tone(4.0, 32000), 32000, "OGG", "VORBIS")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    try:
        result = check(path)
    except AudioDecodeError as err:
        assert str(path) in str(err)
    else:  # libsndfile may decode the intact pages; then what it reports must be true
        assert result.info.frames == len(load_mono(path)[0]) < 4 * 32000



def decoded_frames(path) -> int:
    """Frames that decode, read until the decoder gives no more (SoundFile.blocks would stop
    at the header's count)."""
    frames = 0
    with sf.SoundFile(str(path)) as f:
        while len(block := f.read(4096)):
            frames += len(block)
    return frames


def test_mp3_whose_header_overestimates_its_length_is_kept_with_its_decoded_length(tmp_path):
    """The Xeno-canto case: no Xing/Info frame, tag bytes after the last frame; libsndfile's
    header length is an estimate above what decodes; the index keeps what decodes."""
    path = mp3_without_length_frame(tmp_path / "XC000001.mp3", seconds=6.0, tail=APE_TAG)
    assert sf.info(str(path)).frames > decoded_frames(path)  # really the case
    result = check(path)
    assert result.info.frames == decoded_frames(path) == len(load_mono(path)[0])
    assert abs(result.info.frames - 6.0 * 44100) < 0.05 * 44100  # plus the encoder delay and padding
    assert "length by decoding" in result.note and "estimates" in result.note


def test_mp3_estimate_far_above_what_decodes_is_kept_when_decoding_ends_cleanly(tmp_path):
    """Variable bit rates can put the estimate 20 % off: without a decoder error the file
    played to its end, so even a strict min_decoded_fraction keeps it."""
    path = mp3_without_length_frame(tmp_path / "a.mp3", seconds=3.0)
    assert check(path, min_decoded_fraction=1.0).info.frames == decoded_frames(path)


def test_mp3_with_an_info_frame_decodes_as_soundfile_reads_it_whole(tmp_path):
    """Read in pieces, an MP3 gives the same samples as one soundfile.read: soundfile's own
    piecewise read seeks after every piece, which garbled such files after the first piece."""
    path = write(tmp_path / "a.mp3", tone(6.0, 44100, freq=440.0), 44100, "MP3", "MPEG_LAYER_III")
    whole, _ = sf.read(path, dtype="float32")
    blocks = list(audio.DecodedBlocks(path))
    assert len(whole) > 2 * audio.READ_FRAMES
    np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_mp3_cut_in_half_is_rejected_by_the_fraction_rule(tmp_path):
    path = write(tmp_path / "cut.mp3", tone(6.0, 44100), 44100, "MP3", "MPEG_LAYER_III")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AudioDecodeError, match=r"truncated: the header promises 264600 frames.*below data.min_decoded_fraction 0.9"):
        check(path)
    assert check(path, min_decoded_fraction=0.3).note.startswith("length by decoding")


@pytest.mark.parametrize("keep,kept", [(0.97, True), (0.6, False)])
def test_cut_flac_keeps_its_decoded_part_only_above_the_fraction(tmp_path, keep, kept):
    path = write(tmp_path / "cut.flac", tone(20.0, 16000), 16000)
    path.write_bytes(path.read_bytes()[: int(keep * path.stat().st_size)])
    if kept:
        result = check(path)
        assert 0.9 * 20 * 16000 <= result.info.frames < 20 * 16000
        assert result.info.frames == len(load_mono(path)[0])  # the cache and prediction read as much
        assert "the header promises 320000 frames" in result.note
    else:
        with pytest.raises(AudioDecodeError, match="truncated"):
            check(path)


def test_intact_files_have_no_note(tmp_path):
    for path in (write(tmp_path / "a.flac", tone(1.0, 16000), 16000),
                 write(tmp_path / "b.mp3", tone(2.0, 44100), 44100, "MP3", "MPEG_LAYER_III")):
        assert check(path).note == ""
