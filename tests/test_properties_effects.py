"""Property tests (hypothesis) of the effects through the public API.

``time_stretch``, ``pitch_shift`` and ``cross_synthesize`` over random lengths, batch dims,
n_fft / hop / window, dtypes, stretch factors and semitones: outputs have the promised length,
dtype and are finite, a batch equals its items one by one, and invalid input raises
``PvrnnError``, never another exception type.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pvrnn
from pvrnn import PvrnnError

SR = 16000
WINDOWS = ["hann", "hamming", "blackman", "rectangular", "tensor"]  # as PhaseVocoder's
DTYPES = [torch.float32, torch.float64]

FAST = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def signal(shape: tuple, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A few partials with a decaying click: tonal and percussive content in one."""
    rng = np.random.default_rng(seed)
    n = shape[-1]
    t = np.arange(n) / SR
    tones = sum(np.sin(2 * np.pi * f * t + p) for f, p in
                zip(rng.uniform(80, 3000, 3), rng.uniform(0, 6.28, 3)))
    click = np.zeros(n)
    at = int(rng.integers(0, n))
    click[at:] = np.exp(-np.arange(n - at) / 40.0) * rng.standard_normal(n - at)
    x = 0.2 * tones + 0.3 * click + 0.01 * rng.standard_normal(shape)
    return torch.from_numpy(x).to(dtype)


@st.composite
def stft_settings(draw):
    n_fft = draw(st.sampled_from([64, 128, 256, 512]))
    hop = draw(st.sampled_from([n_fft // 8, n_fft // 4, n_fft // 2]))
    window = draw(st.sampled_from(WINDOWS))
    if window == "tensor":  # a positive random window of n_fft samples
        g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
        window = 0.2 + torch.rand(n_fft, generator=g, dtype=torch.float64)
    return dict(n_fft=n_fft, hop_length=hop, window=window)


factors = st.one_of(st.floats(0.25, 4.0), st.sampled_from([0.5, 1.0, 1.5, 2.0, 1 / 3]))


# -- time_stretch -------------------------------------------------------------------------------
@FAST
@given(cfg=stft_settings(), dims=st.lists(st.integers(1, 2), max_size=2),
       extra=st.integers(0, 1500), factor=factors, dtype=st.sampled_from(DTYPES),
       transients=st.booleans(), link=st.booleans(), seed=st.integers(0, 2**16))
def test_time_stretch_length_dtype_finite(cfg, dims, extra, factor, dtype, transients, link,
                                          seed):
    n = cfg["n_fft"] + extra
    x = signal((*dims, n), seed, dtype)
    y = pvrnn.time_stretch(x, SR, factor, transients=transients, link_channels=link, **cfg)
    assert y.shape == (*dims, round(n * factor)), (y.shape, n, factor)
    assert y.dtype == dtype and torch.isfinite(y).all()
    assert float(y.abs().max()) < 20 * float(x.abs().max())  # no blow-up
    if factor == 1.0:
        torch.testing.assert_close(y, x, atol=0, rtol=0)


@FAST
@given(cfg=stft_settings(), dims=st.lists(st.integers(1, 3), min_size=1, max_size=2),
       extra=st.integers(0, 1000), factor=factors, dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**16))
def test_time_stretch_batch_equals_items(cfg, dims, extra, factor, dtype, seed):
    n = cfg["n_fft"] + extra
    x = signal((*dims, n), seed, dtype)
    y = pvrnn.time_stretch(x, SR, factor, **cfg)
    tol = dict(atol=2e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-9, rtol=1e-7)
    for index in np.ndindex(*dims):
        torch.testing.assert_close(y[index], pvrnn.time_stretch(x[index], SR, factor, **cfg),
                                   **tol)


@FAST
@given(cfg=stft_settings(), extra=st.integers(0, 1000), value=st.floats(0.3, 3.0),
       seed=st.integers(0, 2**16))
def test_time_stretch_constant_curve_matches_the_number(cfg, extra, value, seed):
    # A curve of one value per analysis frame that never changes is that factor.
    n = cfg["n_fft"] + extra
    x = signal((n,), seed)
    curve = torch.full((1 + n // cfg["hop_length"],), value, dtype=torch.float64)
    y = pvrnn.time_stretch(x, SR, curve, **cfg)
    assert abs(y.shape[-1] - round(n * value)) <= 1, (y.shape, n, value)
    assert torch.isfinite(y).all()


# -- pitch_shift --------------------------------------------------------------------------------
@FAST
@given(cfg=stft_settings(), dims=st.lists(st.integers(1, 2), max_size=2),
       extra=st.integers(0, 1500), semitones=st.floats(-24.0, 24.0),
       formants=st.booleans(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_pitch_shift_length_dtype_finite(cfg, dims, extra, semitones, formants, dtype, seed):
    n = cfg["n_fft"] + extra
    x = signal((*dims, n), seed, dtype)
    y = pvrnn.pitch_shift(x, SR, semitones, preserve_formants=formants, **cfg)
    assert y.shape == x.shape and y.dtype == dtype
    assert torch.isfinite(y).all()


@FAST
@given(cfg=stft_settings(), dims=st.lists(st.integers(1, 3), min_size=1, max_size=2),
       extra=st.integers(0, 1000), semitones=st.floats(-12.0, 12.0),
       seed=st.integers(0, 2**16))
def test_pitch_shift_batch_equals_items(cfg, dims, extra, semitones, seed):
    n = cfg["n_fft"] + extra
    x = signal((*dims, n), seed)
    y = pvrnn.pitch_shift(x, SR, semitones, **cfg)
    for index in np.ndindex(*dims):
        torch.testing.assert_close(y[index], pvrnn.pitch_shift(x[index], SR, semitones, **cfg),
                                   atol=2e-5, rtol=1e-4)


# -- cross_synthesize ---------------------------------------------------------------------------
@FAST
@given(cfg=stft_settings(), dims=st.lists(st.integers(1, 2), max_size=2),
       extra=st.integers(0, 1500), mode=st.sampled_from(["spectral", "deltas"]),
       envelope=st.booleans(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_cross_synthesize_length_dtype_finite(cfg, dims, extra, mode, envelope, dtype, seed):
    n = cfg["n_fft"] + extra
    carrier, modulator = signal((*dims, n), seed, dtype), signal((*dims, n), seed + 1, dtype)
    y = pvrnn.cross_synthesize(carrier, modulator, SR, mode=mode, envelope=envelope, **cfg)
    assert y.shape == carrier.shape and y.dtype == dtype
    assert torch.isfinite(y).all()


@FAST
@given(cfg=stft_settings(), n_carrier=st.integers(0, 1500), n_modulator=st.integers(0, 1500),
       fit=st.sampled_from(["loop", "trim", "stretch"]), seed=st.integers(0, 2**16))
def test_cross_synthesize_fit_lengths(cfg, n_carrier, n_modulator, fit, seed):
    nc, nm = cfg["n_fft"] + n_carrier, cfg["n_fft"] + n_modulator
    y = pvrnn.cross_synthesize(signal((nc,), seed), signal((nm,), seed + 1), SR, fit=fit, **cfg)
    assert y.shape == ((min(nc, nm) if fit == "trim" else nc),)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("window", ["rectangular", "tensor"])
@pytest.mark.parametrize("fn", ["stretch", "pitch", "cross"])
def test_effects_accept_every_vocoder_window(window, fn):
    x = signal((4096,), 0)
    w = torch.hann_window(512) + 0.05 if window == "tensor" else window
    kwargs = dict(n_fft=512, hop_length=128, window=w)
    if fn == "stretch":
        y = pvrnn.time_stretch(x, SR, 1.5, **kwargs)
    elif fn == "pitch":
        y = pvrnn.pitch_shift(x, SR, 3.0, **kwargs)
    else:
        y = pvrnn.cross_synthesize(x, x, SR, **kwargs)
    assert torch.isfinite(y).all()


# -- invalid input: PvrnnError and nothing else ---------------------------------------------------
def _bad_audio(kind: str, n: int):
    x = torch.zeros(n)
    if kind == "nan":
        x[n // 3] = math.nan
    elif kind == "inf":
        x[0] = math.inf
    else:
        x = {"empty": torch.zeros(0), "too short": torch.zeros(n // 2 - 1),
             "scalar": torch.tensor(1.0), "int": torch.zeros(n, dtype=torch.int32),
             "complex": torch.zeros(n, dtype=torch.complex64), "none": None,
             "string": "audio.wav"}[kind]
    return x


BAD_AUDIO = ["nan", "inf", "empty", "too short", "scalar", "int", "complex", "none", "string"]
BAD_FACTORS = [0.0, -1.0, -0.5, math.nan, math.inf, -math.inf, "2", None, [2.0]]
BAD_SETTINGS = [dict(n_fft=0), dict(n_fft=-512), dict(n_fft=511), dict(n_fft=2.5),
                dict(hop_length=0), dict(hop_length=-1), dict(hop_length=300),
                dict(hop_length=1000), dict(window="nope"), dict(window=""), dict(window=7),
                dict(onset_threshold=0.0), dict(onset_threshold=1.5),
                dict(onset_threshold=math.nan)]


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(BAD_AUDIO), factor=st.sampled_from([0.5, 2.0]),
       fn=st.sampled_from(["stretch", "pitch", "cross carrier", "cross modulator"]))
def test_bad_audio_raises_pvrnn_error(kind, factor, fn):
    n, bad, good = 512, _bad_audio(kind, 512), signal((512,), 0)
    with pytest.raises(PvrnnError):
        if fn == "stretch":
            pvrnn.time_stretch(bad, SR, factor, n_fft=n, hop_length=n // 4)
        elif fn == "pitch":
            pvrnn.pitch_shift(bad, SR, 12 * math.log2(factor), n_fft=n, hop_length=n // 4)
        elif fn == "cross carrier":
            pvrnn.cross_synthesize(bad, good, SR, n_fft=n, hop_length=n // 4)
        else:
            pvrnn.cross_synthesize(good, bad, SR, n_fft=n, hop_length=n // 4)


@settings(max_examples=30, deadline=None)
@given(factor=st.sampled_from(BAD_FACTORS))
def test_bad_factor_raises_pvrnn_error(factor):
    with pytest.raises(PvrnnError):
        pvrnn.time_stretch(signal((2048,), 0), SR, factor, n_fft=512, hop_length=128)


@pytest.mark.parametrize("curve", [
    torch.full((17,), 1.5),                    # wrong length: 18 frames needed
    torch.full((100,), 1.5),
    torch.tensor([1.0] * 16 + [0.0]),          # a zero
    torch.tensor([1.0] * 16 + [math.nan]),     # a NaN
    torch.tensor([1.0] * 16 + [-2.0]),         # negative
    lambda t: -torch.ones_like(t),             # callable returning negative values
    lambda t: "fast",                          # callable returning nonsense
], ids=["len17", "len100", "zero", "nan", "negative", "callable negative", "callable str"])
def test_bad_factor_curve_raises_pvrnn_error(curve):
    x = signal((2048 + 128,), 0)  # 1 + 2176 // 128 = 18 frames
    with pytest.raises(PvrnnError):
        pvrnn.time_stretch(x, SR, curve, n_fft=512, hop_length=128)


@settings(max_examples=30, deadline=None)
@given(semitones=st.sampled_from([math.nan, math.inf, -math.inf, 48.5, -60.0, "3", None]))
def test_bad_semitones_raise_pvrnn_error(semitones):
    with pytest.raises(PvrnnError):
        pvrnn.pitch_shift(signal((2048,), 0), SR, semitones, n_fft=512, hop_length=128)


@settings(max_examples=40, deadline=None)
@given(bad=st.sampled_from(BAD_SETTINGS), fn=st.sampled_from(["stretch", "pitch", "cross"]))
def test_bad_settings_raise_pvrnn_error(bad, fn):
    kwargs = dict(n_fft=512, hop_length=128)
    kwargs.update(bad)
    x = signal((2048,), 0)
    with pytest.raises(PvrnnError):
        if fn == "stretch":
            pvrnn.time_stretch(x, SR, 1.5, **kwargs)
        elif fn == "pitch":
            pvrnn.pitch_shift(x, SR, 3.0, **kwargs)
        else:
            kwargs.pop("onset_threshold", None)
            if not {k for k in bad if k != "onset_threshold"}:
                kwargs["mode"] = "nope"  # keep the case invalid for cross_synthesize
            pvrnn.cross_synthesize(x, x, SR, **kwargs)


@pytest.mark.parametrize("kwargs", [dict(mode="nope"), dict(fit="nope"), dict(mode=None),
                                    dict(reset_every=0.0, mode="deltas"),
                                    dict(reset_every=-1.0, mode="deltas"),
                                    dict(envelope_lifter=0.0, envelope=True),
                                    dict(envelope_lifter=math.nan, envelope=True)])
def test_bad_cross_options_raise_pvrnn_error(kwargs):
    x = signal((2048,), 0)
    with pytest.raises(PvrnnError):
        pvrnn.cross_synthesize(x, x, SR, n_fft=512, hop_length=128, **kwargs)


def test_cross_lengths_that_differ_raise_pvrnn_error():
    with pytest.raises(PvrnnError):
        pvrnn.cross_synthesize(signal((2048,), 0), signal((3000,), 1), SR, n_fft=512)
    with pytest.raises(PvrnnError):  # leading dims that do not broadcast
        pvrnn.cross_synthesize(signal((2, 2048), 0), signal((3, 2048), 1), SR, n_fft=512)


@pytest.mark.parametrize("rate", [0, -44100, math.nan, math.inf])
def test_bad_sample_rate_raises_pvrnn_error(rate):
    x = signal((2048,), 0)
    for call in (lambda: pvrnn.time_stretch(x, rate, 1.5, n_fft=512, hop_length=128),
                 lambda: pvrnn.pitch_shift(x, rate, 2.0, n_fft=512, hop_length=128),
                 lambda: pvrnn.cross_synthesize(x, x, rate, n_fft=512, hop_length=128)):
        with pytest.raises(PvrnnError):
            call()
