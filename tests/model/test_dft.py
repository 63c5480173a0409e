"""representation="dft": GRUV's real/imag frames, their codec, exact resynthesis, model files.

References: ``torch.stft`` (the features are the DFT of each frame), the analysed audio (the
round trip resynthesizes it), and the analysed frames (decoding gives them back).
"""

from __future__ import annotations

import math

import pytest
import torch

import pvrnn
from pvrnn import PvrnnError, SoundModel
from pvrnn.model.dft import DFTCodec

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 44100


@pytest.fixture(scope="module")
def note(clarinet):
    audio, rate = clarinet
    return audio[: rate // 2], rate


def analyse(audio, rate, n_fft=512, hop=128):
    pv = pvrnn.PhaseVocoder(n_fft=n_fft, hop_length=hop, sample_rate=rate)
    return pv, pv.analyze(audio)


@pytest.mark.parametrize("magnitude", ["linear", "log"])
def test_round_trip_resynthesizes_the_audio(note, magnitude):
    audio, rate = note
    pv, frames = analyse(audio, rate)
    codec = DFTCodec(n_partials=frames.n_bins, magnitude=magnitude).fit(frames)
    decoded = codec.decode(codec.encode(frames))
    torch.testing.assert_close(decoded.magnitude, frames.magnitude, atol=1e-6, rtol=1e-4)
    angle = torch.remainder(decoded.start_phase - frames.start_phase + math.pi, 2 * math.pi)
    loud = frames.magnitude[0] > 1e-4 * frames.magnitude[0].max()
    assert (angle - math.pi)[loud].abs().max() < 1e-4
    again = pv.synthesize(decoded, length=audio.shape[-1])
    assert (again - audio).abs().max() < 1e-5


def test_features_are_the_dft_of_each_frame(note):
    audio, rate = note
    pv, frames = analyse(audio, rate)
    codec = DFTCodec(n_partials=40).fit(frames)
    raw = codec.encode(frames).double() * codec.std  # (n_frames, 80), unnormalised
    spec = torch.stft(audio.double(), 512, 128, window=torch.hann_window(512, dtype=torch.float64),
                      center=True, pad_mode="reflect", return_complex=True).T[:, :40]
    scale = spec.abs().max()
    torch.testing.assert_close(raw[:, :40] / scale, spec.real / scale, atol=2e-5, rtol=0)
    torch.testing.assert_close(raw[:, 40:] / scale, spec.imag / scale, atol=2e-5, rtol=0)
    # per bin, real and imaginary parts share one scale: unit mean square over both
    x = codec.encode(frames)
    power = (x[:, :40].square() + x[:, 40:].square()).mean(0) / 2
    torch.testing.assert_close(power, torch.ones(40), atol=1e-4, rtol=1e-4)


def test_decode_with_a_start_frame_measures_the_first_frequency(note):
    audio, rate = note
    _, frames = analyse(audio, rate)
    codec = DFTCodec(n_partials=60).fit(frames)
    tail = frames[5:].partials(60)
    decoded = codec.decode(codec.encode(tail), start=frames[:5])
    loud = tail.magnitude > 1e-3 * tail.magnitude.max()
    period = rate / 128  # Hz: a phase step of 2 pi per hop (the same phase)
    diff = torch.remainder(decoded.deviation - tail.deviation + period / 2, period) - period / 2
    assert diff[loud].abs().max() < 0.05  # Hz
    assert decoded.start_phase.dtype == torch.float64


def test_bad_settings_name_the_argument():
    with pytest.raises(PvrnnError, match="mode='delta'"):
        DFTCodec(mode="delta")
    with pytest.raises(PvrnnError, match="mode='delta'.*representation='dft'"):
        SoundModel(representation="dft", mode="delta")
    with pytest.raises(PvrnnError, match=r"representation='wavelet'.*'pv', 'dft'"):
        SoundModel(representation="wavelet")
    with pytest.raises(PvrnnError, match="features"):
        DFTCodec(4).fit(analyse(pvrnn.examples.sine(440.0, 0.1, SR), SR)[1]).decode(
            torch.zeros(3, 5))


@pytest.fixture(scope="module")
def gruv():
    """GRUV's regression (an LSTM, L2 loss) on DFT frames of a sine, briefly trained."""
    model = SoundModel.from_preset("sine", representation="dft", loss="mse", hidden_size=24)
    model.fit(pvrnn.examples.sine(440.0, 2.0, SR), sample_rate=SR, epochs=20, progress=False,
              device="cpu")
    return model


def test_gruv_learns_and_generates_frames_that_carry_phase(gruv):
    history = gruv.history
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    frames = gruv.generate_frames(40, variance_scale=0.0)
    assert frames.start_phase is not None and frames.start_phase.shape == (10,)
    audio = gruv.generate(seconds=0.5, variance_scale=0.0)
    exact = gruv.vocoder.synthesize(gruv.generate_frames(1 + -(-SR // 2 // 128),
                                                         variance_scale=0.0), length=SR // 2)
    torch.testing.assert_close(audio, exact)  # no phase locking: the frames' own phases
    f0 = pvrnn.metrics.estimate_f0(audio, SR)
    assert abs(float(f0[2:-2].nanmedian()) - 440.0) < 10.0


def test_dft_with_the_mixture_head_trains():
    model = SoundModel.from_preset("sine", representation="dft", hidden_size=16, n_components=2)
    history = model.fit(pvrnn.examples.sine(440.0, 1.5, SR), sample_rate=SR, epochs=4,
                        progress=False, device="cpu")
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert torch.isfinite(model.generate(seconds=0.2)).all()


@pytest.mark.parametrize("key, value", [("cell", "transformer"), ("representation", "wavelet")])
def test_a_file_of_an_unknown_backbone_or_representation_is_refused(gruv, tmp_path, key, value):
    path = tmp_path / "gruv.pt"
    gruv.save(path)
    data = torch.load(path, weights_only=True)
    assert data["config"]["representation"] == "dft" and data["config"]["cell"] == "lstm"
    assert torch.equal(SoundModel.load(path, device="cpu").generate(seconds=0.1),
                       gruv.generate(seconds=0.1))
    data["config"][key] = value
    torch.save(data, path)
    with pytest.raises(PvrnnError, match=rf"gruv.pt.*{key}='{value}': expected one of"):
        SoundModel.load(path, device="cpu")


def test_files_without_a_representation_are_phase_vocoder_models(gruv, tmp_path):
    model = SoundModel.from_preset("sine", hidden_size=8, epochs=1)
    model.fit(pvrnn.examples.sine(440.0, 1.0, SR), sample_rate=SR, progress=False, device="cpu")
    model.save(tmp_path / "old.pt")
    data = torch.load(tmp_path / "old.pt", weights_only=True)
    del data["config"]["representation"]  # as written before the field existed
    torch.save(data, tmp_path / "old.pt")
    assert SoundModel.load(tmp_path / "old.pt", device="cpu").config.representation == "pv"
