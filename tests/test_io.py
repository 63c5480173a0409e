"""load_audio / save_audio: round trips, downmix, resampling, atomic writes, bad input."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import pvrnn
from pvrnn import PvrnnError, load_audio, save_audio
from pvrnn.examples import sine

SR = 44100


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix, subtype, tol", [
    (".wav", None, 1 / 32767), (".flac", None, 1 / 32767), (".wav", "FLOAT", 0.0),
    (".wav", "PCM_24", 2.0**-23),
])
def test_round_trip(tmp_path, suffix, subtype, tol):
    audio = sine(440.0, 0.25, SR)
    path = tmp_path / f"tone{suffix}"
    save_audio(path, audio, SR, subtype=subtype)
    again, rate = load_audio(path)
    assert rate == SR and isinstance(rate, int)
    assert again.dtype == torch.float32 and again.shape == audio.shape
    assert float((again - audio).abs().max()) <= tol + 1e-7
    assert leftovers(tmp_path) == []


def test_default_subtypes(tmp_path):
    audio = sine(440.0, 0.1, SR)
    for suffix, subtype in ((".wav", "PCM_16"), (".flac", "PCM_16"), (".ogg", "VORBIS")):
        save_audio(str(tmp_path / f"a{suffix}"), audio, SR)
        assert sf.info(str(tmp_path / f"a{suffix}")).subtype == subtype


def test_ogg_is_lossy_but_close(tmp_path):
    audio = sine(440.0, 0.5, SR)
    save_audio(tmp_path / "a.ogg", audio, SR)
    again, rate = load_audio(tmp_path / "a.ogg")
    assert rate == SR and abs(again.shape[-1] - audio.shape[-1]) <= 2048
    n = min(again.shape[-1], audio.shape[-1])
    err = (again[:n] - audio[:n]).square().mean() / audio.square().mean()
    assert float(err) < 0.05


def test_numpy_float64_and_cuda_style_inputs(tmp_path):
    audio = np.linspace(-1.0, 1.0, 1000)  # float64, peak exactly 1: allowed
    save_audio(tmp_path / "a.wav", audio, 8000, subtype="FLOAT")
    again, rate = load_audio(tmp_path / "a.wav")
    assert rate == 8000
    np.testing.assert_allclose(again.numpy(), audio, atol=1e-7)
    grad = torch.zeros(100, requires_grad=True)  # tensors needing grad are detached
    save_audio(tmp_path / "b.wav", grad, 8000)


def test_normalised_audio_is_accepted():
    audio = 3.0 * sine(440.0, 0.1, SR)
    with pytest.raises(PvrnnError, match="normalise"):
        save_audio(io.BytesIO(), audio, SR, format="WAV")
    save_audio(io.BytesIO(), audio / audio.abs().max(), SR, format="WAV")


def test_file_objects():
    audio = sine(220.0, 0.1, SR)
    buffer = io.BytesIO()
    save_audio(buffer, audio, SR, format="wav", subtype="FLOAT")
    assert buffer.getvalue()[:4] == b"RIFF"
    buffer.seek(0)
    again, rate = load_audio(buffer)
    assert rate == SR and torch.equal(again, audio)
    again, _ = load_audio(io.BytesIO(buffer.getvalue()))  # as the CLI passes stdin
    assert torch.equal(again, audio)


def test_format_overrides_suffix(tmp_path):
    path = tmp_path / "sound.data"
    save_audio(path, sine(440.0, 0.1, SR), SR, format="FLAC")
    assert sf.info(str(path)).format == "FLAC"


# -- channels ----------------------------------------------------------------------------------
def test_stereo_mono_downmix_and_keep(tmp_path):
    left, right = sine(440.0, 0.2, SR, amplitude=0.8), sine(660.0, 0.2, SR, amplitude=0.2)
    stereo = torch.stack([left, right])
    save_audio(tmp_path / "st.wav", stereo, SR, subtype="FLOAT")
    assert sf.info(str(tmp_path / "st.wav")).channels == 2
    both, _ = load_audio(tmp_path / "st.wav", mono=False)
    assert both.shape == (2, left.shape[0]) and torch.equal(both, stereo)
    mono, _ = load_audio(tmp_path / "st.wav")
    assert mono.shape == left.shape
    torch.testing.assert_close(mono, (left + right) / 2)


def test_mono_file_with_mono_false_has_one_channel(tmp_path):
    save_audio(tmp_path / "m.wav", sine(440.0, 0.1, SR), SR)
    audio, _ = load_audio(tmp_path / "m.wav", mono=False)
    assert audio.shape == (1, 4410)


# -- resampling --------------------------------------------------------------------------------
@pytest.mark.parametrize("target", [22050, 16000, 48000, 22050.0])
def test_resample_length_and_pitch(tmp_path, target):
    seconds, freq = 0.5, 440.0
    save_audio(tmp_path / "t.wav", sine(freq, seconds, SR), SR, subtype="FLOAT")
    audio, rate = load_audio(tmp_path / "t.wav", sample_rate=target)
    assert rate == target and isinstance(rate, int)
    assert audio.dtype == torch.float32
    assert audio.shape[-1] == int(np.ceil(SR * seconds * target / SR))
    f0 = pvrnn.metrics.estimate_f0(audio, rate, hop_length=256, frame_length=1024, fmin=100)
    inner = f0[4:-4]
    assert not torch.isnan(inner).any()
    assert float((1200 * torch.log2(inner / freq)).abs().max()) < 1.0
    assert float(audio[1000:-1000].abs().max()) == pytest.approx(0.5, abs=2e-3)


def test_no_resampling_unless_asked(tmp_path):
    save_audio(tmp_path / "t.wav", sine(440.0, 0.1, 16000), 16000, subtype="FLOAT")
    audio, rate = load_audio(tmp_path / "t.wav")
    assert rate == 16000 and audio.shape == (1600,)
    same, rate = load_audio(tmp_path / "t.wav", sample_rate=16000.0)
    assert rate == 16000 and torch.equal(same, audio)


def test_fractional_rate(tmp_path):
    save_audio(tmp_path / "t.wav", sine(100.0, 0.1, 8000), 8000, subtype="FLOAT")
    audio, rate = load_audio(tmp_path / "t.wav", sample_rate=8000.5)
    assert rate == 8000.5 and audio.shape == (int(np.ceil(800 * 16001 / 16000)),)
    audio, rate = load_audio(tmp_path / "t.wav", sample_rate=8000 + 1 / 3)  # 24001/3 Hz
    assert audio.shape == (int(np.ceil(800 * 24001 / 24000)),)
    with pytest.raises(PvrnnError, match="sample_rate=.*denominator <= 1000"):
        load_audio(tmp_path / "t.wav", sample_rate=1000 * np.pi)


# -- atomic writes -----------------------------------------------------------------------------
def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "keep.wav"
    save_audio(path, sine(440.0, 0.1, SR), SR)
    before = path.read_bytes()
    real_write = sf.write
    written = []

    def broken(file, data, *args, **kwargs):
        real_write(file, data[: len(data) // 2], *args, **kwargs)  # half a file, then fail
        written.append(file)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sf, "write", broken)
    with pytest.raises(OSError, match="No space left"):
        save_audio(path, sine(220.0, 0.2, SR), SR)
    assert written and Path(written[0]).parent == tmp_path  # the temp lived beside the target
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == [] and sorted(os.listdir(tmp_path)) == ["keep.wav"]


def test_overwrite_replaces_and_keeps_permissions_sane(tmp_path):
    path = tmp_path / "a.wav"
    save_audio(path, sine(440.0, 0.1, SR), SR)
    save_audio(path, sine(440.0, 0.2, SR), SR)
    assert sf.info(str(path)).frames == 8820
    assert path.stat().st_mode & 0o044  # readable by others (umask permitting), not 0600
    assert leftovers(tmp_path) == []


def test_rejected_audio_writes_nothing(tmp_path):
    with pytest.raises(PvrnnError):
        save_audio(tmp_path / "a.wav", torch.full((10,), 2.0), SR)
    assert os.listdir(tmp_path) == []


# -- bad input ---------------------------------------------------------------------------------
def test_load_missing_file(tmp_path):
    with pytest.raises(PvrnnError, match=r"nope\.wav.*no such file"):
        load_audio(tmp_path / "nope.wav")


def test_load_folder(tmp_path):
    with pytest.raises(PvrnnError, match="is a folder"):
        load_audio(tmp_path)


@pytest.mark.parametrize("content", [b"this is not audio at all" * 10, b"", b"RIFF\x00\x00"])
def test_load_garbage(tmp_path, content):
    path = tmp_path / "foo.wav"
    path.write_bytes(content)
    with pytest.raises(PvrnnError, match=r"foo\.wav.*could not be read as audio"):
        load_audio(path)
    with pytest.raises(PvrnnError, match="could not be read as audio"):
        load_audio(io.BytesIO(content))


def test_load_empty_audio_file(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros((0, 1), dtype=np.float32), SR)
    with pytest.raises(PvrnnError, match=r"empty\.wav.*0 samples"):
        load_audio(path)


def test_load_non_finite_file(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(str(path), np.array([0.0, np.nan, 0.1], dtype=np.float32), SR, subtype="FLOAT")
    with pytest.raises(PvrnnError, match="NaN or inf"):
        load_audio(path)


@pytest.mark.parametrize("kwargs, match", [
    ({"sample_rate": 0}, "sample_rate="),
    ({"sample_rate": -8000}, "sample_rate="),
    ({"sample_rate": float("nan")}, "sample_rate="),
    ({"mono": "yes"}, "mono="),
])
def test_load_bad_arguments(tmp_path, kwargs, match):
    save_audio(tmp_path / "a.wav", sine(440.0, 0.01, SR), SR)
    with pytest.raises(PvrnnError, match=match):
        load_audio(tmp_path / "a.wav", **kwargs)


def test_load_bad_path_type():
    with pytest.raises(PvrnnError, match="path="):
        load_audio(42)


GOOD = sine(440.0, 0.01, SR)


@pytest.mark.parametrize("audio, match", [
    (torch.zeros(0), "non-empty"),
    (torch.zeros(2, 0), "non-empty"),
    (torch.zeros(10, dtype=torch.int16), "floating-point"),
    (np.zeros(10, dtype=np.int32), "floating-point"),
    (torch.tensor([0.0, float("nan")]), "NaN or inf"),
    (torch.tensor([0.0, float("inf")]), "NaN or inf"),
    (torch.tensor([0.5, -1.5]), r"peaks at 1\.5.*normalise.*audio\.abs\(\)\.max\(\)"),
    (torch.zeros(2, 2, 10), r"expected \(time,\) or \(channels, time\)"),
    (torch.zeros(1000, 2), r"pass audio\.T"),
    ([0.0, 0.1], "torch.Tensor or numpy array"),
])
def test_save_bad_audio(tmp_path, audio, match):
    with pytest.raises(PvrnnError, match=match):
        save_audio(tmp_path / "a.wav", audio, SR)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name, kwargs, match", [
    ("a.mp4", {}, r"unsupported suffix '\.mp4'"),
    ("a", {}, r"unsupported suffix '\(none\)'"),
    ("a.wav", {"format": "NOPE"}, "format="),
    ("a.wav", {"subtype": "VORBIS"}, "subtype="),
    ("a.flac", {"subtype": "FLOAT"}, "subtype="),
])
def test_save_bad_format(tmp_path, name, kwargs, match):
    with pytest.raises(PvrnnError, match=match):
        save_audio(tmp_path / name, GOOD, SR, **kwargs)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("rate", [0, -1, 44100.5, float("inf"), "44100"])
def test_save_bad_rate(tmp_path, rate):
    with pytest.raises(PvrnnError, match="sample_rate="):
        save_audio(tmp_path / "a.wav", GOOD, rate)


def test_save_file_object_needs_format():
    with pytest.raises(PvrnnError, match="format="):
        save_audio(io.BytesIO(), GOOD, SR)


def test_save_into_missing_folder_or_onto_folder(tmp_path):
    with pytest.raises(PvrnnError, match="existing folder"):
        save_audio(tmp_path / "no" / "a.wav", GOOD, SR)
    (tmp_path / "d.wav").mkdir()
    with pytest.raises(PvrnnError, match="is a folder"):
        save_audio(tmp_path / "d.wav", GOOD, SR)


def test_errors_are_value_errors():
    assert issubclass(PvrnnError, ValueError)
