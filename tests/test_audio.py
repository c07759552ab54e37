"""Decoding: every format, rate and channel count comes out mono float32 at the right length."""
import numpy as np
import pytest

from conftest import tone, write
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

