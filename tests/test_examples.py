"""pvrnn.examples: the bundled recordings and the synthetic tones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import DATA

import pvrnn
from pvrnn import PvrnnError, examples

EXPECTED = {  # name: (file, samples) as documented in data/README.md
    "clarinet": ("clarinet_a4.wav", 133129),
    "piano": ("piano_c4.wav", 137497),
    "clarinet_phrase": ("clarinet_phrase.wav", 396284),
    "piano_phrase": ("piano_phrase.wav", 389000),
    "cello": ("cello_g2.wav", 178251),
    "flute": ("flute_a5.wav", 168791),
    "oboe": ("oboe_d5.wav", 165325),
    "choir": ("choir_aah_c4.wav", 182497),
    "texture": ("texture_ambi_lunar_land.wav", 154271),
}


def test_names():
    assert examples.names() == list(EXPECTED)
    examples.names().append("x")  # a copy: callers cannot change the registry
    assert examples.names() == list(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_load_matches_the_file(name):
    audio, rate = examples.load(name)
    file, samples = EXPECTED[name]
    assert rate == 44100 and isinstance(rate, int)
    assert audio.dtype == torch.float32 and audio.shape == (samples,)
    direct, _ = sf.read(DATA / file, dtype="float32")
    assert torch.equal(audio, torch.from_numpy(direct))
    peak = float(audio.abs().max())
    assert 0.85 < peak < 0.9  # -1 dBFS
    assert examples.path(name) == DATA / file


def test_provenance_and_licence_are_bundled():
    from importlib.resources import files

    data = files("pvrnn.examples").joinpath("data")
    assert "Fluid" in data.joinpath("README.md").read_text(encoding="utf-8")
    assert "CC0" in data.joinpath("LICENSE").read_text(encoding="utf-8")  # the texture
    assert "MIT" in data.joinpath("LICENSE").read_text(encoding="utf-8") or \
        "Permission is hereby granted" in data.joinpath("LICENSE").read_text(encoding="utf-8")


def test_load_resampled():
    audio, rate = examples.load("clarinet", sample_rate=22050)
    assert rate == 22050 and audio.shape == (math.ceil(133129 / 2),)


def test_clarinet_pitch():
    audio, rate = examples.load("clarinet")
    cents = pvrnn.metrics.pitch_drift_cents(audio, rate, reference=440.0)
    sustain = cents[20:-20]
    assert not torch.isnan(sustain).any()
    # A4 to within 2 cents overall; the recording itself wanders between -6 and +3 cents in
    # 1-cent steps after 1.6 s (the soundfont's modulation; librosa.yin agrees).
    assert abs(float(sustain.median())) < 2.0
    assert float(sustain.abs().max()) < 8.0


@pytest.mark.parametrize("name", ["violin", "", None, 3, "Clarinet"])
def test_unknown_name(name):
    with pytest.raises(PvrnnError, match="'clarinet', 'piano', 'clarinet_phrase', 'piano_phrase'"):
        examples.load(name)


# -- synthetic tones ---------------------------------------------------------------------------
def test_sine_values():
    x = examples.sine(440.0, seconds=0.5, sample_rate=16000, amplitude=0.25, phase=0.3)
    assert x.dtype == torch.float32 and x.shape == (8000,)
    t = np.arange(8000) / 16000
    np.testing.assert_allclose(x.numpy(), 0.25 * np.sin(2 * np.pi * 440 * t + 0.3), atol=1e-7)
    assert examples.sine().shape == (3 * 44100,)


def test_sine_phase_stays_accurate_for_long_tones():
    # Phase computed in float64 and reduced to one cycle: after a minute the last samples
    # still match an exact rational phase (a float32 phase would be off by ~1e-2 rad).
    rate, n = 44100, 60 * 44100
    x = examples.sine(441.0, seconds=60.0, sample_rate=rate, dtype=torch.float64)
    tail = torch.arange(n - 100, n)
    exact = 0.5 * torch.sin(2 * math.pi * ((tail * 441) % 44100).double() / 44100)
    torch.testing.assert_close(x[-100:], exact, atol=1e-11, rtol=0)
    x32 = examples.sine(441.0, seconds=60.0, sample_rate=rate)
    torch.testing.assert_close(x32[-100:].double(), exact, atol=6e-8, rtol=0)


def test_harmonic_tone():
    x = examples.harmonic(1000.0, seconds=0.1, sample_rate=8000, n_harmonics=10, amplitude=0.5)
    assert x.shape == (800,) and float(x.abs().max()) == pytest.approx(0.5, abs=1e-6)
    spectrum = np.abs(np.fft.rfft(x.double().numpy()))  # 10 Hz bins
    peaks = {k: spectrum[100 * k] for k in (1, 2, 3)}
    assert peaks[1] / peaks[2] == pytest.approx(2.0, rel=1e-6)  # 1/k rolloff
    assert peaks[1] / peaks[3] == pytest.approx(3.0, rel=1e-6)
    assert spectrum[400] < 1e-9 * peaks[1]  # 4 kHz = Nyquist is left out
    flat = examples.harmonic(100.0, seconds=0.1, sample_rate=8000, n_harmonics=3, rolloff=0.0)
    s = np.abs(np.fft.rfft(flat.double().numpy()))
    assert s[10] == pytest.approx(s[30], rel=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"frequency": 22050.0}, "frequency=.*below Nyquist"),
    ({"frequency": 0.0}, "frequency="),
    ({"frequency": -5.0}, "frequency="),
    ({"frequency": float("nan")}, "frequency="),
    ({"seconds": 0.0}, "seconds="),
    ({"seconds": 1e-9}, "seconds=.*at least one sample"),
    ({"sample_rate": 0}, "sample_rate="),
    ({"amplitude": -0.1}, "amplitude="),
    ({"phase": float("inf")}, "phase="),
    ({"dtype": torch.int16}, "dtype="),
])
def test_sine_bad_arguments(kwargs, match):
    with pytest.raises(PvrnnError, match=match):
        examples.sine(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_harmonics": 0}, "n_harmonics="),
    ({"n_harmonics": 2.5}, "n_harmonics="),
    ({"rolloff": -1.0}, "rolloff="),
    ({"frequency": 30000.0}, "frequency="),
])
def test_harmonic_bad_arguments(kwargs, match):
    with pytest.raises(PvrnnError, match=match):
        examples.harmonic(**kwargs)
