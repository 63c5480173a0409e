"""time_stretch: durations, pitch, time-varying factors, transients, batching, linked channels,
windows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import snr_db
from effects_signals import SR, clicks, crest_db, pitch_cents, sine

import pvrnn
from pvrnn import PvrnnError
from pvrnn.effects.onsets import detect_onsets


@pytest.mark.parametrize("n", [44100, 30001])
@pytest.mark.parametrize("factor", [0.5, 0.8, 1.25, 2.0, 3.3])
def test_stretch_output_length_is_exact(n, factor):
    audio = sine(440.0, n / SR)
    out = pvrnn.time_stretch(audio, SR, factor)
    assert out.shape == (round(n * factor),)
    assert out.dtype == audio.dtype


@pytest.mark.parametrize("freq,factor", [(440.0, 2.0), (1234.5, 0.7), (261.6, 1.25)])
def test_stretched_sine_keeps_its_pitch(freq, factor):
    out = pvrnn.time_stretch(sine(freq, 1.0), SR, factor)
    assert abs(pitch_cents(out, freq)) < 5


def test_long_stretch_keeps_pitch_to_the_end():
    # x6 of 2 s: 12 s of output, ~1000 frames of accumulated phase (float64).
    out = pvrnn.time_stretch(sine(440.0, 2.0), SR, 6.0)
    tail = out[-2 * SR :]
    assert abs(pitch_cents(tail, 440.0)) < 5
    assert abs(20 * math.log10(float(tail.abs().max()) / 0.5)) < 1.0  # no phasiness dips


def test_stretched_sine_is_clean():
    # A steady partial stretched is the same partial: spectrally almost exact.
    audio = sine(440.0, 1.0, torch.float64)
    out = pvrnn.time_stretch(audio, SR, 1.6)
    ideal = sine(440.0, 1.6, torch.float64)
    spec = torch.stft(out, 2048, 512, window=torch.hann_window(2048, dtype=torch.float64),
                      return_complex=True).abs()
    spec_ideal = torch.stft(ideal, 2048, 512, return_complex=True,
                            window=torch.hann_window(2048, dtype=torch.float64)).abs()
    inner = slice(4, -4)  # the ends are windowed differently
    error = (spec[:, inner] - spec_ideal[:, inner]).norm() / spec_ideal[:, inner].norm()
    assert 20 * math.log10(float(error)) < -40


def test_factor_one_returns_the_input():
    audio = torch.randn(2, 8192)
    out = pvrnn.time_stretch(audio, SR, 1.0)
    assert torch.equal(out, audio) and out is not audio


def test_curve_of_ones_reconstructs_the_input(clarinet):
    # Not special-cased: the whole engine at ratio 1 returns the input to float precision.
    audio, rate = clarinet
    audio = audio[: rate].double()
    curve = torch.ones(1 + audio.shape[-1] // 512)
    out = pvrnn.time_stretch(audio, rate, curve)
    assert snr_db(audio, out) > 100


def test_time_varying_stretch_gives_the_integrated_duration():
    audio = sine(330.0, 1.5)
    n = audio.shape[-1]
    frames = 1 + n // 512
    # Linear from 1 to 3 over the frames: the integral is exact under linear interpolation.
    knots = torch.clamp(torch.arange(frames + 1, dtype=torch.float64) * 512, max=n)
    values = torch.linspace(1.0, 3.0, frames, dtype=torch.float64)
    values = torch.cat([values, values[-1:]])
    expected = round(float(((knots[1:] - knots[:-1]) * (values[1:] + values[:-1]) / 2).sum()))
    out = pvrnn.time_stretch(audio, SR, values[:-1])
    assert out.shape == (expected,)
    # A callable of time in seconds, sampled at the frame times (the last one held to the end):
    # 1 + t integrates to last + last**2 / 2 (in samples: / SR) plus the held tail.
    out = pvrnn.time_stretch(audio, SR, lambda t: 1 + t)
    last = (frames - 1) * 512
    expected = last + last**2 / (2 * SR) + (n - last) * (1 + last / SR)
    assert out.shape == (round(expected),)
    assert abs(pitch_cents(out, 330.0)) < 5


def test_time_varying_stretch_is_slow_where_the_curve_is_large():
    # Clicks every 0.25 s, stretched x1 for the first half and x3 after: the clicks of the
    # second half come 0.75 s apart.
    audio = clicks(2.0)
    out = pvrnn.time_stretch(audio, SR, lambda t: torch.where(t < 1.0, 1.0, 3.0))
    onsets = detect_onsets(out, SR).nonzero().flatten().float() * 512 / SR
    gaps = torch.diff(onsets)
    assert torch.allclose(gaps[:2], torch.tensor(0.25), atol=0.03)
    assert torch.allclose(gaps[-2:], torch.tensor(0.75), atol=0.03)


def test_batch_equals_item_by_item(clarinet):
    audio, rate = clarinet
    items = torch.stack([audio[: rate // 2], clicks(0.5), sine(523.3, 0.5)])  # (3, time)
    batch = torch.stack([items, items.flip(0)])  # (2, 3, time): items checked once each
    out = pvrnn.time_stretch(batch, rate, 1.7)
    assert out.shape == (2, 3, round(rate // 2 * 1.7))
    for j in range(3):
        alone = pvrnn.time_stretch(items[j], rate, 1.7)
        torch.testing.assert_close(out[0, j], alone, atol=2e-5, rtol=0)
        torch.testing.assert_close(out[1, 2 - j], alone, atol=2e-5, rtol=0)


def test_linked_channels_stay_aligned():
    # The same clicks in both channels, one of them under a tone: stretched on their own the
    # channels get different maps (the tone hides the attacks); linked, they share one, so
    # each click lands at the same output sample in both (within 1 ms).
    left = clicks(1.0)
    stereo = torch.stack([left, left + 0.4 * sine(440.0, 1.0)])
    out = pvrnn.time_stretch(stereo, SR, 2.0, link_channels=True)
    for t in np.arange(0.1, 0.95, 0.25) * 2.0:
        i = int(round(t * SR))
        window = slice(i - 882, i + 882)
        where = out[:, window].abs().argmax(-1)
        assert abs(int(where[0]) - int(where[1])) <= 44
    assert abs(pitch_cents(out[1] - out[0], 440.0)) < 5


def test_per_item_curves_broadcast():
    audio = torch.stack([sine(440.0, 0.5), sine(660.0, 0.5)])
    frames = 1 + audio.shape[-1] // 512
    curves = torch.stack([torch.full((frames,), 2.0), torch.full((frames,), 2.0)])
    out = pvrnn.time_stretch(audio, SR, curves)
    torch.testing.assert_close(out, pvrnn.time_stretch(audio, SR, 2.0), atol=1e-5, rtol=0)


@pytest.mark.parametrize("factor,smear_db", [(0.5, 1.0), (2.0, 3.0)])
def test_click_train_stays_sharp(factor, smear_db):
    audio = clicks(2.0)
    ideal = crest_db(clicks(2.0, factor), 2.0, factor)
    sharp = crest_db(pvrnn.time_stretch(audio, SR, factor), 2.0, factor)
    smeared = crest_db(pvrnn.time_stretch(audio, SR, factor, transients=False), 2.0, factor)
    assert abs(sharp - ideal) < 1.0
    # Without onset handling the clicks smear (lose crest): the test can fail.
    assert smeared < ideal - smear_db


def test_float64_and_device(device):
    audio = sine(440.0, 0.5, torch.float64).to(device)
    out = pvrnn.time_stretch(audio, SR, 1.5)
    assert out.dtype == torch.float64 and out.device.type == torch.device(device).type
    ref = pvrnn.time_stretch(audio.cpu().float(), SR, 1.5)
    torch.testing.assert_close(out.cpu().float(), ref, atol=1e-4, rtol=0)


def test_progress_bar_goes_to_stderr(capsys):
    pvrnn.time_stretch(sine(440.0, 0.5), SR, 2.0, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""


# -- bad input ------------------------------------------------------------------------------------
AUDIO = sine(440.0, 0.2)


@pytest.mark.parametrize("call,match", [
    (lambda: pvrnn.time_stretch(AUDIO, SR, 0.0), "factor=0.0"),
    (lambda: pvrnn.time_stretch(AUDIO, SR, -2), "factor=-2"),
    (lambda: pvrnn.time_stretch(AUDIO, SR, float("nan")), "factor=nan"),
    (lambda: pvrnn.time_stretch(AUDIO, SR, float("inf")), "factor=inf"),
    (lambda: pvrnn.time_stretch(AUDIO, SR, True), "factor=True"),
    (lambda: pvrnn.time_stretch(AUDIO, SR, "2"), "factor='2'"),
    (lambda: pvrnn.time_stretch(AUDIO, SR, torch.ones(3)), "factor=tensor of shape"),
    (lambda: pvrnn.time_stretch(AUDIO, SR, -torch.ones(18)), "values > 0"),
    (lambda: pvrnn.time_stretch(AUDIO, SR, lambda t: t / 0 - 1), "factor="),
    (lambda: pvrnn.time_stretch(AUDIO, SR, lambda t: 1 / 0), "ZeroDivisionError"),
    (lambda: pvrnn.time_stretch(AUDIO, SR, 1e-9), "factor=1e-09"),
    (lambda: pvrnn.time_stretch(torch.full((4096,), math.nan), SR, 2.0), "NaN"),
    (lambda: pvrnn.time_stretch(torch.tensor(1.0), SR, 2.0), "audio=tensor of shape ()"),
    (lambda: pvrnn.time_stretch(torch.zeros(4096, dtype=torch.int16), SR, 2.0), "floating"),
    (lambda: pvrnn.time_stretch(torch.zeros(1000), SR, 2.0), "n_fft=2048"),
    (lambda: pvrnn.time_stretch(AUDIO, 0, 2.0), "sample_rate=0"),
    (lambda: pvrnn.time_stretch(AUDIO, SR, 2.0, n_fft=1001), "n_fft=1001"),
    (lambda: pvrnn.time_stretch(AUDIO, SR, 2.0, hop_length=2048), "hop_length=2048"),
    (lambda: pvrnn.time_stretch(AUDIO, SR, 2.0, window="kaiser"), "window='kaiser'"),
    (lambda: pvrnn.time_stretch(AUDIO, SR, 2.0, onset_threshold=1.5), "onset_threshold=1.5"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(PvrnnError, match=match):
        call()


def test_curves_giving_different_lengths_are_refused():
    audio = torch.stack([sine(440.0, 0.3), sine(440.0, 0.3)])
    frames = 1 + audio.shape[-1] // 512
    curves = torch.stack([torch.full((frames,), 1.5), torch.full((frames,), 2.0)])
    with pytest.raises(PvrnnError, match="same output duration"):
        pvrnn.time_stretch(audio, SR, curves)


def _phase_difference(stereo: torch.Tensor, freq: float) -> torch.Tensor:
    """Phase of left relative to right at ``freq`` in 0.1 s Hann windows, radians ``(W,)``."""
    w = SR // 10
    starts = range(w, stereo.shape[-1] - 2 * w, w)
    t = torch.arange(w, dtype=torch.float64) / SR
    probe = torch.exp(-2j * math.pi * freq * t) * torch.hann_window(w, dtype=torch.float64)
    segments = torch.stack([stereo[:, s : s + w].double() for s in starts], 1)  # (2, W, w)
    c = (segments * probe).sum(-1)  # the windows' own start phase cancels below
    return torch.angle(c[0] * c[1].conj())


def test_linked_channels_keep_their_phase_difference():
    # A panned sine: the same 440 Hz in both channels, 4.4 dB apart and 1 rad out of phase,
    # under independent noise. Stretched x3 on their own, each channel's phase walks its own
    # way (the noise moves each one's frequency estimates); linked, they share one rotation
    # per bin, so the image stays where it was.
    g = torch.Generator().manual_seed(3)
    t = torch.arange(3 * SR, dtype=torch.float64) / SR
    left = 0.5 * torch.sin(2 * math.pi * 440 * t)
    right = 0.3 * torch.sin(2 * math.pi * 440 * t - 1.0)
    noise = 0.2 * torch.randn(2, 3 * SR, generator=g, dtype=torch.float64)
    stereo = (torch.stack([left, right]) + noise).float()
    linked = pvrnn.time_stretch(stereo, SR, 3.0, link_channels=True)
    alone = pvrnn.time_stretch(stereo, SR, 3.0)
    assert (_phase_difference(linked, 440.0) - 1.0).abs().max() < 0.12
    assert (_phase_difference(alone, 440.0) - 1.0).abs().max() > 0.2  # the drift it avoids


def test_linked_channels_need_one_curve():
    audio = torch.stack([sine(440.0, 0.3), sine(440.0, 0.3)])
    frames = 1 + audio.shape[-1] // 512
    curves = torch.stack([torch.linspace(1.0, 2.0, frames), torch.linspace(2.0, 1.0, frames)])
    with pytest.raises(PvrnnError, match="one curve for linked channels"):
        pvrnn.time_stretch(audio, SR, curves, link_channels=True)


@pytest.mark.parametrize("window", ["hann", "hamming", "blackman", "rectangular", "boxcar",
                                    "tensor"])
def test_every_vocoder_window_works_in_the_effects(window):
    # One registry: whatever PhaseVocoder accepts, the effects accept too.
    if window == "tensor":
        window = torch.hann_window(2048, dtype=torch.float64) ** 2  # no cosine-sum name
    audio = sine(440.0, 0.5)
    pvrnn.PhaseVocoder(n_fft=2048, window=window)
    out = pvrnn.time_stretch(audio, SR, 1.5, window=window)
    assert out.shape == (round(audio.shape[-1] * 1.5),)
    # The boxcar's time derivative is zero inside the frame: no reassignment, every bin keeps
    # its centre frequency, so a sine between bins comes out a few cents off (documented).
    flat = isinstance(window, str) and window in ("rectangular", "boxcar")
    assert abs(pitch_cents(out, 440.0)) < (15 if flat else 5)
    assert pvrnn.pitch_shift(audio, SR, 3.0, window=window).shape == audio.shape
    assert pvrnn.cross_synthesize(audio, audio, SR, window=window).shape == audio.shape
    assert detect_onsets(audio, SR, window=window).shape == (1 + audio.shape[-1] // 512,)


def test_a_tensor_window_equals_the_named_one(clarinet):
    # The named path windows in frequency (cosine-sum taps), the tensor path in time (and its
    # derivative spectrally): the same stretch to float rounding.
    audio, rate = clarinet
    audio = audio[: rate // 2]
    named = pvrnn.time_stretch(audio, rate, 1.4, window="blackman")
    given = pvrnn.time_stretch(audio, rate, 1.4, window=torch.blackman_window(2048))
    torch.testing.assert_close(given, named, atol=1e-4, rtol=0)
