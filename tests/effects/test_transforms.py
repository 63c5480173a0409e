"""time_stretch, pitch_shift, cross_synthesize: durations, pitch, envelopes, transients, batching.

Pitch is measured with YIN (pvrnn.metrics.estimate_f0); signals are short so the file runs in
seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import snr_db

import pvrnn
from pvrnn import PvrnnError
from pvrnn.effects.transforms import detect_onsets, resample, spectral_envelope
from pvrnn.metrics import estimate_f0

SR = 44100


def sine(freq: float, seconds: float, dtype=torch.float32) -> torch.Tensor:
    t = torch.arange(int(round(seconds * SR)), dtype=torch.float64) / SR
    return (0.5 * torch.sin(2 * math.pi * freq * t)).to(dtype)


def pitch_cents(audio: torch.Tensor, reference: float) -> float:
    """Median YIN pitch of the middle 80 %, in cents from ``reference``."""
    f0 = estimate_f0(audio, SR)
    n = f0.shape[-1]
    return 1200 * math.log2(float(f0[n // 10 : n - n // 10].nanmedian()) / reference)


def clicks(seconds: float, factor: float = 1.0, period: float = 0.25) -> torch.Tensor:
    """A 4 ms decaying noise burst every ``period`` s (times ``factor``: the ideal stretch)."""
    rng = np.random.default_rng(1)
    burst = rng.standard_normal(176) * np.exp(-np.arange(176) / 35.0)
    y = np.zeros(int(round(seconds * factor * SR)))
    for t in np.arange(0.1, seconds - 0.05, period) * factor:
        i = int(round(t * SR))
        y[i : i + 176] += burst[: len(y) - i]
    return torch.from_numpy(0.5 * y / np.abs(burst).max()).float()


def crest_db(y: torch.Tensor, seconds: float, factor: float) -> float:
    """Median peak near each click over the RMS of the whole, dB."""
    rms = float(y.double().square().mean().sqrt())
    peaks = []
    for t in np.arange(0.1, seconds - 0.05, 0.25) * factor:
        i = int(round(t * SR))
        peaks.append(float(y[max(0, i - 882) : i + 882].abs().max()))
    return 20 * math.log10(float(np.median(peaks)) / rms)


# -- time_stretch ---------------------------------------------------------------------------------
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


# -- onsets ---------------------------------------------------------------------------------------
def test_detect_onsets_finds_each_click_and_nothing_in_steady_sounds():
    found = detect_onsets(clicks(2.0), SR)
    assert int(found.sum()) == len(np.arange(0.1, 1.95, 0.25))
    t = torch.arange(2 * SR, dtype=torch.float64) / SR
    vibrato = torch.sin(2 * math.pi * 220 * t + 3 * torch.sin(2 * math.pi * 5 * t)).float()
    assert int(detect_onsets(vibrato, SR)[..., 2:].sum()) == 0
    noise = torch.randn(2 * SR, generator=torch.Generator().manual_seed(0)) * 0.1
    assert int(detect_onsets(noise, SR)[..., 2:].sum()) == 0


# -- pitch_shift ----------------------------------------------------------------------------------
@pytest.mark.parametrize("semitones", [7.0, -5.0, 12.0, -0.5])
def test_pitch_shifted_sine_is_on_target(semitones):
    audio = sine(440.0, 1.0)
    out = pvrnn.pitch_shift(audio, SR, semitones)
    assert out.shape == audio.shape
    assert abs(pitch_cents(out, 440.0 * 2 ** (semitones / 12))) < 5


def test_pitch_shift_zero_returns_the_input():
    audio = sine(440.0, 0.2)
    assert torch.equal(pvrnn.pitch_shift(audio, SR, 0.0), audio)


def _formant_db(freq: np.ndarray) -> np.ndarray:
    """A vowel-like envelope: formants at 700 and 2500 Hz on a falling slope (dB)."""
    return (12 * np.exp(-0.5 * ((freq - 700) / 250) ** 2)
            + 8 * np.exp(-0.5 * ((freq - 2500) / 400) ** 2) - 6 * np.log2(1 + freq / 1000))


def _voice(f0: float, seconds: float = 1.0) -> torch.Tensor:
    t = np.arange(int(seconds * SR)) / SR
    harmonics = range(1, int(6000 / f0))
    y = sum(10 ** (_formant_db(h * f0) / 20) * np.sin(2 * np.pi * h * f0 * t + h)
            for h in harmonics)
    return torch.from_numpy(0.1 * y).float()


def _envelope_error_db(audio: torch.Tensor, f0: float) -> float:
    """Mean |harmonic level - formant envelope| (dB, common offset removed) up to 4.5 kHz."""
    n = audio.shape[-1]
    spectrum = np.abs(np.fft.rfft(audio.numpy() * np.hanning(n)))
    freqs = np.arange(1, int(4500 / f0)) * f0
    levels = np.array([20 * np.log10(spectrum[int(round(f * n / SR)) - 3 :
                                              int(round(f * n / SR)) + 4].max()) for f in freqs])
    error = levels - _formant_db(freqs)
    return float(np.abs(error - np.median(error)).mean())


@pytest.mark.parametrize("semitones", [5.0, -5.0])
def test_preserve_formants_keeps_the_spectral_envelope(semitones):
    f0 = 180.0
    voice = _voice(f0)
    target = f0 * 2 ** (semitones / 12)
    kept = pvrnn.pitch_shift(voice, SR, semitones, preserve_formants=True)
    moved = pvrnn.pitch_shift(voice, SR, semitones)
    assert abs(pitch_cents(kept, target)) < 5
    assert _envelope_error_db(kept, target) < 2.0  # the envelope stays within 2 dB (mean)
    assert _envelope_error_db(moved, target) > 2.5  # without it the formants move


def test_preserve_formants_keeps_a_high_odd_harmonic_fundamental():
    # A clarinet-like A4 (odd harmonics only): a fixed 1.5 ms lifter lets the envelope follow
    # the harmonics, and a fifth up then loses its fundamental (YIN reads 3x the pitch).
    t = torch.arange(SR, dtype=torch.float64) / SR
    tone = sum(torch.sin(2 * math.pi * h * 440.0 * t) / h for h in (1, 3, 5, 7, 9)).float() * 0.3
    up = pvrnn.pitch_shift(tone, SR, 7.0, preserve_formants=True)
    assert abs(pitch_cents(up, 440.0 * 2 ** (7 / 12))) < 5
    forced = pvrnn.pitch_shift(tone, SR, 7.0, preserve_formants=True, envelope_lifter=1.5e-3)
    assert abs(pitch_cents(forced, 440.0 * 2 ** (7 / 12))) > 100  # the failure it avoids


def test_resample_is_band_limited_and_exact_in_length():
    audio = sine(1000.0, 0.5, torch.float64)  # 22050 samples
    out = resample(audio, 33075)  # 1.5x as many samples: read at 66.15 kHz it is 1000 Hz
    assert out.shape == (33075,)
    t = torch.arange(33075, dtype=torch.float64) / 66150
    inner = slice(2000, -2000)  # the ends ring (the signal starts and stops abruptly)
    torch.testing.assert_close(out[inner], 0.5 * torch.sin(2 * math.pi * 1000 * t)[inner],
                               atol=1e-3, rtol=0)


def test_spectral_envelope_follows_the_harmonic_peaks():
    voice = _voice(150.0)
    frame = voice[10000:12048] * torch.hann_window(2048)
    magnitude = torch.fft.rfft(frame).abs()
    envelope = spectral_envelope(magnitude, 2048, lifter=66, log=True) * 20 / math.log(10)
    freqs = np.arange(1025) * SR / 2048
    keep = (freqs > 200) & (freqs < 4500)
    error = envelope.numpy()[keep] - _formant_db(freqs[keep])
    assert np.abs(error - np.median(error)).mean() < 1.5


# -- cross_synthesize -----------------------------------------------------------------------------
def test_cross_with_itself_is_the_identity(clarinet):
    audio, rate = clarinet
    audio = audio[: rate]
    spectral = pvrnn.cross_synthesize(audio, audio, rate, mode="spectral")
    deltas = pvrnn.cross_synthesize(audio, audio, rate, mode="deltas", reset_every=None)
    assert snr_db(audio, spectral) > 60
    assert snr_db(audio, deltas) > 40


def test_cross_spectral_takes_the_carriers_pitch_and_the_modulators_envelope():
    t = torch.arange(SR, dtype=torch.float64) / SR
    carrier = sum(torch.sin(2 * math.pi * 220 * h * t) / h for h in range(1, 25)).float() * 0.1
    modulator = _voice(150.0)
    out = pvrnn.cross_synthesize(carrier, modulator, SR, envelope=True)
    assert abs(pitch_cents(out, 220.0)) < 5
    # The output's harmonics (of 220 Hz) follow the modulator's formants.
    assert _envelope_error_db(out, 220.0) < 1.6
    assert _envelope_error_db(carrier, 220.0) > 2.5  # the carrier alone does not


def test_cross_deltas_follow_the_modulators_changes():
    carrier = sine(330.0, 1.0)
    ramp = torch.linspace(0.0, 1.0, SR)
    modulator = sine(330.0, 1.0) * ramp
    out = pvrnn.cross_synthesize(carrier, modulator, SR, mode="deltas", reset_every=None)
    # Carrier's first frame plus the modulator's growth: louder at the end than the carrier.
    first, last = out[: SR // 4].abs().max(), out[-SR // 4 :].abs().max()
    assert float(last) > 1.5 * float(first)
    assert abs(pitch_cents(out, 330.0)) < 5


@pytest.mark.parametrize("fit,length", [("loop", 30000), ("trim", 20000), ("stretch", 30000)])
def test_cross_fit_options(fit, length):
    carrier, modulator = sine(440.0, 30000 / SR), sine(220.0, 20000 / SR)
    out = pvrnn.cross_synthesize(carrier, modulator, SR, fit=fit)
    assert out.shape == (length,)


def test_cross_broadcasts_leading_dims():
    carrier = torch.stack([sine(440.0, 0.3), sine(550.0, 0.3)])
    modulator = sine(220.0, 0.3)
    out = pvrnn.cross_synthesize(carrier, modulator, SR)
    assert out.shape == carrier.shape
    torch.testing.assert_close(out[1], pvrnn.cross_synthesize(carrier[1], modulator, SR),
                               atol=1e-5, rtol=0)


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
    (lambda: pvrnn.pitch_shift(AUDIO, SR, float("nan")), "semitones=nan"),
    (lambda: pvrnn.pitch_shift(AUDIO, SR, 100), "semitones=100"),
    (lambda: pvrnn.pitch_shift(AUDIO, SR, 3, envelope_lifter=0), "envelope_lifter=0"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO[:5000], SR), "modulator has 5000 samples"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO, SR, mode="vocode"), "mode='vocode'"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO, SR, fit="pad"), "fit='pad'"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO, (SR, 48000)), "sample_rate=\\(44100"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO, SR, mode="deltas", reset_every=-1),
     "reset_every=-1"),
    (lambda: pvrnn.cross_synthesize(torch.zeros(2, 8820), torch.zeros(3, 8820), SR),
     "expected leading dims that broadcast"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO[:100], SR, fit="trim"), "modulator="),
    (lambda: spectral_envelope(torch.ones(10), 2048, 60), "magnitude="),
    (lambda: resample(AUDIO, 0), "length=0"),
    (lambda: detect_onsets(AUDIO, SR, threshold=0), "threshold=0"),
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
