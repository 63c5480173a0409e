"""cross_synthesize: identity with itself, carrier pitch with modulator envelope, deltas, fits."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import snr_db
from effects_signals import SR, envelope_error_db, pitch_cents, sine, voice

import pvrnn
from pvrnn import PvrnnError


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
    modulator = voice(150.0)
    out = pvrnn.cross_synthesize(carrier, modulator, SR, envelope=True)
    assert abs(pitch_cents(out, 220.0)) < 5
    # The output's harmonics (of 220 Hz) follow the modulator's formants.
    assert envelope_error_db(out, 220.0) < 1.6
    assert envelope_error_db(carrier, 220.0) > 2.5  # the carrier alone does not


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
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO[:5000], SR), "modulator has 5000 samples"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO, SR, mode="vocode"), "mode='vocode'"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO, SR, fit="pad"), "fit='pad'"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO, (SR, 48000)), "sample_rate=\\(44100"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO, SR, mode="deltas", reset_every=-1),
     "reset_every=-1"),
    (lambda: pvrnn.cross_synthesize(torch.zeros(2, 8820), torch.zeros(3, 8820), SR),
     "expected leading dims that broadcast"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO[:100], SR, fit="trim"), "modulator="),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(PvrnnError, match=match):
        call()


def test_cross_envelope_lifter_follows_the_pitch():
    # A modulator at 700 Hz: a fixed 1.5 ms lifter resolves its harmonics (667 Hz and up), so
    # the "envelope" imposed on the carrier is a comb of them (24 dB off the formants). The
    # pitch-following lifter of pitch_shift (0.5 / 700 Hz) keeps the formants (6 dB: only 8
    # harmonics sample them).
    t = torch.arange(SR, dtype=torch.float64) / SR
    carrier = sum(torch.sin(2 * math.pi * 220 * h * t) / h for h in range(1, 25)).float() * 0.1
    modulator = voice(700.0)
    out = pvrnn.cross_synthesize(carrier, modulator, SR, envelope=True)
    fixed = pvrnn.cross_synthesize(carrier, modulator, SR, envelope=True, envelope_lifter=1.5e-3)
    assert envelope_error_db(out, 220.0) < 8.0
    assert envelope_error_db(fixed, 220.0) > 15.0  # the old default, the failure it avoids
