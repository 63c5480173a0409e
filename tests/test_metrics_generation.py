"""pvrnn.metrics' measures of generated sound, against signals whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch

import pvrnn
from pvrnn import PvrnnError
from pvrnn.metrics import consistency, mean_spectrum_distance, partial_noise, vibrato

RATE = 16000


def _fm_tone(f0=330.0, vib_rate=5.5, cents=25.0, seconds=3.0, noise=0.0, seed=0):
    t = torch.arange(int(seconds * RATE), dtype=torch.float64) / RATE
    ratio = 2.0 ** (cents / 1200.0 * torch.sin(2 * math.pi * vib_rate * t))
    phase = 2 * math.pi * torch.cumsum(f0 * ratio, 0) / RATE
    tone = sum(torch.sin(h * phase) / h for h in range(1, 6))
    g = torch.Generator().manual_seed(seed)
    return (tone + noise * torch.randn(t.shape, generator=g, dtype=torch.float64)).float()


def test_mean_spectrum_distance_ignores_level_and_sees_timbre():
    x = _fm_tone(noise=0.01)
    assert float(mean_spectrum_distance(x, x)) == 0.0
    assert float(mean_spectrum_distance(x, 0.3 * x)) < 1e-4
    brighter = x + 0.5 * torch.diff(x, prepend=x[:1])
    assert float(mean_spectrum_distance(x, brighter)) > 1.0
    # lengths may differ: the mean spectrum does not depend on alignment
    assert float(mean_spectrum_distance(x, x[: RATE])) < 1.5


@pytest.mark.parametrize("vib_rate, cents", [(5.5, 25.0), (4.0, 10.0), (7.0, 40.0)])
def test_vibrato_reads_a_known_modulation(vib_rate, cents):
    rate, extent = vibrato(_fm_tone(vib_rate=vib_rate, cents=cents), RATE, hop_length=128)
    assert abs(float(rate) - vib_rate) < 0.05 * vib_rate
    assert abs(float(extent) - cents) < 0.1 * cents


def test_vibrato_of_a_steady_tone_is_small_and_of_noise_is_nan():
    _, extent = vibrato(_fm_tone(cents=0.0), RATE, hop_length=128)
    assert float(extent) < 0.5
    rate, extent = vibrato(torch.randn(RATE * 2, generator=torch.Generator().manual_seed(0)), RATE)
    assert math.isnan(float(rate)) and math.isnan(float(extent))


def test_partial_noise_follows_the_noise_level():
    clean = float(partial_noise(_fm_tone(cents=0.0, noise=1e-4), RATE))
    noisy = float(partial_noise(_fm_tone(cents=0.0, noise=1e-2), RATE))
    assert clean < -50.0 and noisy > clean + 30.0  # 40 dB more noise power
    assert math.isnan(float(partial_noise(torch.randn(RATE), RATE, f0=float("nan"))))


def test_consistency_of_analysed_and_of_scrambled_frames():
    pv = pvrnn.PhaseVocoder(n_fft=512, hop_length=128, sample_rate=RATE)
    frames = pv.analyze(_fm_tone())
    assert float(consistency(frames, pv.synthesize(frames))) < -60.0
    g = torch.Generator().manual_seed(0)
    noise = 20 * torch.randn(frames.shape, generator=g)
    scrambled = frames.replace(start_phase=None, deviation=frames.deviation + noise)
    assert float(consistency(scrambled, pv.synthesize(scrambled))) > -15.0


def test_bad_input():
    x = _fm_tone(seconds=0.5)
    with pytest.raises(PvrnnError, match="audio"):
        mean_spectrum_distance(x[:100], x)
    with pytest.raises(PvrnnError, match="frames"):
        consistency(x, x)
    with pytest.raises(PvrnnError, match="audio"):
        vibrato(torch.stack([x, x]), RATE)
    with pytest.raises(PvrnnError):
        partial_noise(x.double() * float("nan"), RATE)
