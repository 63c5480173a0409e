"""Spectral envelopes: they run along the harmonic peaks, with a lifter that follows the pitch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pvrnn import PvrnnError
from pvrnn.dsp.envelope import (
    MAX_LIFTER_SECONDS,
    block_f0,
    lifter_samples,
    pitch_lifter,
    spectral_envelope,
)

SR = 44100


def _formants_db(freq: np.ndarray) -> np.ndarray:
    """Formants at 700 and 2500 Hz on a falling slope (dB)."""
    return (12 * np.exp(-0.5 * ((freq - 700) / 250) ** 2) - 6 * np.log2(1 + freq / 1000)
            + 8 * np.exp(-0.5 * ((freq - 2500) / 400) ** 2))


def _harmonics(f0: float, levels_db=_formants_db, top: float = 6000.0) -> torch.Tensor:
    t = np.arange(SR) / SR
    h = np.arange(1, int(top / f0))[:, None]
    return torch.from_numpy(0.1 * (10 ** (levels_db(h * f0) / 20) * np.sin(
        2 * np.pi * h * f0 * t + h)).sum(0)).float()


def test_spectral_envelope_follows_the_harmonic_peaks():
    frame = _harmonics(150.0)[10000:12048] * torch.hann_window(2048)
    magnitude = torch.fft.rfft(frame).abs()
    envelope = spectral_envelope(magnitude, 2048, lifter=66, log=True) * 20 / math.log(10)
    freqs = np.arange(1025) * SR / 2048
    keep = (freqs > 200) & (freqs < 4500)
    error = envelope.numpy()[keep] - _formants_db(freqs[keep])
    assert np.abs(error - np.median(error)).mean() < 1.5


def test_linear_is_exp_of_log_and_batches():
    magnitude = torch.rand(2, 3, 1025, dtype=torch.float64) + 0.1
    log = spectral_envelope(magnitude, 2048, 40, log=True)
    torch.testing.assert_close(spectral_envelope(magnitude, 2048, 40), log.exp())
    torch.testing.assert_close(log[1, 2], spectral_envelope(magnitude[1, 2], 2048, 40, log=True))


@pytest.mark.parametrize("f0", [220.0, 440.0, 880.0])
def test_pitch_lifter_is_half_the_period_of_the_highest_pitch(f0):
    tone = _harmonics(f0, lambda f: -6 * np.log2(f / f0))
    assert pitch_lifter(tone, sample_rate=SR) == pytest.approx(
        min(MAX_LIFTER_SECONDS, 0.5 / f0), rel=0.01)
    # Shifted up a fifth, the pitch it will be heard at sets it; the higher of two sounds does.
    ratio = 2 ** (7 / 12)
    assert pitch_lifter(tone, sample_rate=SR, ratio=ratio) == pytest.approx(
        min(MAX_LIFTER_SECONDS, 0.5 / (f0 * ratio)), rel=0.01)
    low = _harmonics(110.0, lambda f: -6 * np.log2(f / 110.0))
    assert pitch_lifter(low, tone, sample_rate=SR) == pitch_lifter(tone, sample_rate=SR)


def test_pitch_lifter_without_a_pitch_is_the_longest():
    noise = torch.randn(SR, generator=torch.Generator().manual_seed(0)) * 0.1
    assert pitch_lifter(noise, sample_rate=SR) == MAX_LIFTER_SECONDS
    assert pitch_lifter(torch.zeros(100), sample_rate=SR) == MAX_LIFTER_SECONDS


@pytest.mark.parametrize("n", [2028, 5000, 200_000])
def test_block_f0_in_runs_equals_estimate_f0_of_the_whole_block(n):
    # The pitch behind the lifter is measured a few hundred frames at a time (bounded memory):
    # each frame reads only the samples around it, so the values are the whole block's.
    from pvrnn.metrics import estimate_f0

    t = torch.arange(n, dtype=torch.float64) / SR
    glide = torch.sin(2 * math.pi * (200 + 50 * torch.sin(2 * math.pi * t)) * t) * (t % 1 < 0.7)
    noise = torch.randn(2, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    audio = (glide + 0.01 * noise).float()
    whole = estimate_f0(audio, SR, hop_length=441, frame_length=2028, fmin=2.2 * SR / 2028)
    runs = block_f0(audio, SR, 441, 2028)
    torch.testing.assert_close(runs, whole, rtol=0, atol=0, equal_nan=True)


def test_lifter_samples_in_range():
    assert lifter_samples(1e-3, SR, 2048) == 44
    assert lifter_samples(1.0, SR, 2048) == 1024  # at most n_fft // 2
    assert lifter_samples(1e-9, SR, 2048) == 1


@pytest.mark.parametrize("call,match", [
    (lambda: spectral_envelope(torch.ones(10), 2048, 60), "magnitude="),
    (lambda: spectral_envelope(torch.ones(1025), 2048, 0), "lifter=0"),
    (lambda: lifter_samples(0, SR, 2048), "envelope_lifter=0"),
    (lambda: lifter_samples(-1e-3, SR, 2048), "envelope_lifter=-0.001"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(PvrnnError, match=match):
        call()
