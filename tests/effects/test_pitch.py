"""pitch_shift: on target, formants kept on request, onsets kept in time, channels linked."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from effects_signals import SR, clicks, envelope_error_db, pitch_cents, sine, voice

import pvrnn
from pvrnn import PvrnnError
from pvrnn.effects.onsets import detect_onsets


@pytest.mark.parametrize("semitones", [7.0, -5.0, 12.0, -0.5])
def test_pitch_shifted_sine_is_on_target(semitones):
    audio = sine(440.0, 1.0)
    out = pvrnn.pitch_shift(audio, SR, semitones)
    assert out.shape == audio.shape
    assert abs(pitch_cents(out, 440.0 * 2 ** (semitones / 12))) < 5


def test_pitch_shift_zero_returns_the_input():
    audio = sine(440.0, 0.2)
    assert torch.equal(pvrnn.pitch_shift(audio, SR, 0.0), audio)


@pytest.mark.parametrize("semitones", [5.0, -5.0])
def test_preserve_formants_keeps_the_spectral_envelope(semitones):
    f0 = 180.0
    sound = voice(f0)
    target = f0 * 2 ** (semitones / 12)
    kept = pvrnn.pitch_shift(sound, SR, semitones, preserve_formants=True)
    moved = pvrnn.pitch_shift(sound, SR, semitones)
    assert abs(pitch_cents(kept, target)) < 5
    assert envelope_error_db(kept, target) < 2.0  # the envelope stays within 2 dB (mean)
    assert envelope_error_db(moved, target) > 2.5  # without it the formants move


def test_preserve_formants_keeps_a_high_odd_harmonic_fundamental():
    # A clarinet-like A4 (odd harmonics only): a fixed 1.5 ms lifter lets the envelope follow
    # the harmonics, and a fifth up then loses its fundamental (YIN reads 3x the pitch).
    t = torch.arange(SR, dtype=torch.float64) / SR
    tone = sum(torch.sin(2 * math.pi * h * 440.0 * t) / h for h in (1, 3, 5, 7, 9)).float() * 0.3
    up = pvrnn.pitch_shift(tone, SR, 7.0, preserve_formants=True)
    assert abs(pitch_cents(up, 440.0 * 2 ** (7 / 12))) < 5
    forced = pvrnn.pitch_shift(tone, SR, 7.0, preserve_formants=True, envelope_lifter=1.5e-3)
    assert abs(pitch_cents(forced, 440.0 * 2 ** (7 / 12))) > 100  # the failure it avoids


# -- bad input ------------------------------------------------------------------------------------
AUDIO = sine(440.0, 0.2)


@pytest.mark.parametrize("call,match", [
    (lambda: pvrnn.pitch_shift(AUDIO, SR, float("nan")), "semitones=nan"),
    (lambda: pvrnn.pitch_shift(AUDIO, SR, 100), "semitones=100"),
    (lambda: pvrnn.pitch_shift(AUDIO, SR, 3, envelope_lifter=0), "envelope_lifter=0"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(PvrnnError, match=match):
        call()


def _click_centres(audio: torch.Tensor) -> np.ndarray:
    """Energy centroid (samples) of each click of ``clicks(2.0)``, within 30 ms of it."""
    centres = []
    for t in np.arange(0.1, 1.95, 0.25):
        i = int(round(t * SR))
        lo = i - 1323
        energy = audio[lo : i + 1323].double().square()
        centres.append(float((energy * torch.arange(energy.shape[0])).sum() / energy.sum()) + lo)
    return np.array(centres)


@pytest.mark.parametrize("semitones", [7.0, 12.0, -7.0, -12.0])
def test_pitch_shift_keeps_onsets_in_time(semitones):
    # An onset resets phase; it must not move. (Onsets read at slope 1 by the stretch and then
    # resampled came out up to 72 samples early or late, alternating from click to click.)
    audio = clicks(2.0)
    out = pvrnn.pitch_shift(audio, SR, semitones)
    found, expected = detect_onsets(out, SR), detect_onsets(audio, SR)
    assert int(found.sum()) == int(expected.sum())
    frames = found.nonzero().flatten() - expected.nonzero().flatten()
    assert int(frames.abs().max()) <= 1  # within one hop
    if semitones > 0:  # up, the stretch is uniform and sharp enough to time each click exactly
        moved = np.abs(_click_centres(out) - _click_centres(audio))
        assert moved.max() < 16  # samples (0.4 ms)
