"""Property tests (hypothesis) of the phase vocoder through the public API.

Random shapes, batch dims, n_fft / hop / win_length / window (every name PhaseVocoder accepts
and a tensor window) and dtypes: the round trip holds, a batch equals its items one by one,
outputs have the promised shapes and are finite, and invalid input raises ``PvrnnError``,
never another exception type.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pvrnn
from pvrnn import PhaseVocoder, PvrnnError

SR = 16000
WINDOW_NAMES = ["hann", "hamming", "blackman", "rectangular"]
DTYPES = [torch.float32, torch.float64]
# float32 rounding in an STFT round trip of a short signal sits near 130 dB; float64 near 290.
MIN_SNR = {torch.float32: 100.0, torch.float64: 250.0}

FAST = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    reference, estimate = reference.double(), estimate.double()
    noise = float((reference - estimate).square().sum())
    if noise == 0.0:
        return math.inf
    return 10 * math.log10(float(reference.square().sum()) / noise)


def signal(shape: tuple, seed: int, dtype: torch.dtype) -> torch.Tensor:
    """Noise plus a few partials: broadband, with steady tones (the vocoder's hard case)."""
    rng = np.random.default_rng(seed)
    t = np.arange(shape[-1]) / SR
    tones = sum(np.sin(2 * np.pi * f * t + p) for f, p in
                zip(rng.uniform(50, SR / 2 - 50, 3), rng.uniform(0, 6.28, 3)))
    x = 0.1 * rng.standard_normal(shape) + 0.2 * tones
    return torch.from_numpy(x).to(dtype)


@st.composite
def vocoder_settings(draw):
    """(PhaseVocoder kwargs) whose windows overlap enough to resynthesize."""
    n_fft = draw(st.sampled_from([16, 32, 64, 100, 128, 256, 512]))
    win_length = draw(st.integers(max(4, n_fft // 2), n_fft))
    kind = draw(st.sampled_from(WINDOW_NAMES + ["tensor"]))
    if kind == "tensor":
        seed = draw(st.integers(0, 2**16))
        g = torch.Generator().manual_seed(seed)
        window = 0.1 + torch.rand(win_length, generator=g, dtype=torch.float64)
        window = window.to(draw(st.sampled_from(DTYPES)))
    else:
        window = kind
    # hop <= win_length // 2 for every window: with a window shorter than n_fft a longer hop
    # leaves the last samples uncovered (rightly refused by synthesize), even rectangular.
    hop = draw(st.integers(max(1, win_length // 8), max(1, win_length // 2)))
    return dict(n_fft=n_fft, hop_length=hop, win_length=win_length, window=window,
                sample_rate=SR)


shapes = st.tuples(st.lists(st.integers(1, 3), max_size=2), st.integers(0, 3))


@FAST
@given(cfg=vocoder_settings(), batch=shapes, extra=st.integers(0, 700),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_round_trip(cfg, batch, extra, dtype, seed):
    pv = PhaseVocoder(**cfg)
    dims, _ = batch
    n = cfg["n_fft"] + extra
    x = signal((*dims, n), seed, dtype)
    frames = pv.analyze(x)
    assert frames.magnitude.shape == (*dims, 1 + n // cfg["hop_length"], cfg["n_fft"] // 2 + 1)
    assert frames.magnitude.dtype == dtype
    assert torch.isfinite(frames.magnitude).all() and torch.isfinite(frames.frequency).all()
    y = pv.synthesize(frames, length=n)
    assert y.shape == x.shape and y.dtype == dtype
    assert torch.isfinite(y).all()
    assert snr_db(x, y) > MIN_SNR[dtype], cfg


@FAST
@given(cfg=vocoder_settings(), dims=st.lists(st.integers(1, 3), min_size=1, max_size=2),
       extra=st.integers(0, 500), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_batch_equals_items(cfg, dims, extra, dtype, seed):
    pv = PhaseVocoder(**cfg)
    n = cfg["n_fft"] + extra
    x = signal((*dims, n), seed, dtype)
    frames = pv.analyze(x)
    y = pv.synthesize(frames, length=n)
    tol = dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-11, rtol=1e-9)
    for index in np.ndindex(*dims):
        alone = pv.analyze(x[index])
        torch.testing.assert_close(frames.magnitude[index], alone.magnitude, **tol)
        torch.testing.assert_close(y[index], pv.synthesize(alone, length=n), **tol)


@FAST
@given(cfg=vocoder_settings(), extra=st.integers(0, 300), seed=st.integers(0, 2**16))
def test_default_synthesis_length(cfg, extra, seed):
    pv = PhaseVocoder(**cfg)
    n = cfg["n_fft"] + extra
    frames = pv.analyze(signal((n,), seed, torch.float32))
    assert frames.n_frames == pv.n_frames(n) == 1 + n // cfg["hop_length"]
    y = pv.synthesize(frames)
    assert y.shape == ((frames.n_frames - 1) * cfg["hop_length"],)
    assert torch.isfinite(y).all()


# -- invalid input: PvrnnError and nothing else ----------------------------------------------------
BAD_SETTINGS = [
    dict(n_fft=0), dict(n_fft=-8), dict(n_fft=1), dict(n_fft=2.5), dict(n_fft="512"),
    dict(n_fft=float("nan")), dict(n_fft=None), dict(n_fft=True),
    dict(hop_length=0), dict(hop_length=-1), dict(hop_length=513), dict(hop_length=1.5),
    dict(win_length=0), dict(win_length=513), dict(win_length=-3),
    dict(window="nope"), dict(window=""), dict(window="HANN "), dict(window=3),
    dict(window=None), dict(window=torch.ones(100)), dict(window=torch.ones(2, 512)),
    dict(sample_rate=0), dict(sample_rate=-44100), dict(sample_rate=float("nan")),
    dict(sample_rate=math.inf), dict(sample_rate="44100"),
]


@pytest.mark.parametrize("bad", BAD_SETTINGS, ids=lambda b: repr(b)[:60])
def test_bad_settings_raise_pvrnn_error(bad):
    kwargs = dict(n_fft=512, hop_length=128, sample_rate=SR)
    kwargs.update(bad)
    with pytest.raises(PvrnnError):
        PhaseVocoder(**kwargs)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_tensor_window_raises_pvrnn_error(value):
    window = torch.hann_window(512)
    window[100] = value
    with pytest.raises(PvrnnError):
        PhaseVocoder(n_fft=512, hop_length=128, window=window, sample_rate=SR)


def _bad_audio(kind: str, n: int, dtype: torch.dtype):
    if kind == "nan":
        x = torch.zeros(n, dtype=dtype)
        x[n // 2] = math.nan
        return x
    if kind == "inf":
        x = torch.zeros(n, dtype=dtype)
        x[-1] = -math.inf
        return x
    return {
        "empty": torch.zeros(0, dtype=dtype),
        "batch of empty": torch.zeros(2, 0, dtype=dtype),
        "too short": torch.zeros(n // 2, dtype=dtype),
        "scalar": torch.tensor(0.5, dtype=dtype),
        "int": torch.zeros(n, dtype=torch.int16),
        "bool": torch.zeros(n, dtype=torch.bool),
        "complex": torch.zeros(n, dtype=torch.complex64),
        "list": [0.0] * n,
        "none": None,
    }[kind]


BAD_AUDIO = ["nan", "inf", "empty", "batch of empty", "too short", "scalar", "int", "bool",
             "complex", "list", "none"]


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(BAD_AUDIO), n_fft=st.sampled_from([64, 256, 512]),
       dtype=st.sampled_from(DTYPES))
def test_bad_audio_raises_pvrnn_error(kind, n_fft, dtype):
    pv = PhaseVocoder(n_fft=n_fft, hop_length=n_fft // 4, sample_rate=SR)
    with pytest.raises(PvrnnError):
        pv.analyze(_bad_audio(kind, n_fft, dtype))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_audio_raises_pvrnn_error(dtype):
    pv = PhaseVocoder(n_fft=64, hop_length=16, sample_rate=SR)
    with pytest.raises(PvrnnError):
        pv.analyze(torch.zeros(256, dtype=dtype))


def test_empty_batch_raises_pvrnn_error():
    pv = PhaseVocoder(n_fft=64, hop_length=16, sample_rate=SR)
    with pytest.raises(PvrnnError):
        pv.analyze(torch.zeros(0, 256))


def test_synthesis_past_the_frames_raises_pvrnn_error():
    pv = PhaseVocoder(n_fft=64, hop_length=16, sample_rate=SR)
    frames = pv.analyze(signal((256,), 0, torch.float32))
    with pytest.raises(PvrnnError):
        pv.synthesize(frames, length=300)


@settings(max_examples=30, deadline=None)
@given(length=st.sampled_from([0, -1, 1.5, "100", [100]]),
       n_fft=st.sampled_from([64, 256]))
def test_bad_synthesis_raises_pvrnn_error(length, n_fft):
    pv = PhaseVocoder(n_fft=n_fft, hop_length=n_fft // 4, sample_rate=SR)
    frames = pv.analyze(signal((4 * n_fft,), 0, torch.float32))
    with pytest.raises(PvrnnError):
        pv.synthesize(frames, length=length)


@pytest.mark.parametrize("other", [dict(n_fft=128, hop_length=64), dict(n_fft=256, hop_length=32),
                                   dict(n_fft=256, hop_length=64, sample_rate=22050)])
def test_frames_of_other_settings_raise_pvrnn_error(other):
    pv = PhaseVocoder(n_fft=256, hop_length=64, sample_rate=SR)
    theirs = PhaseVocoder(**{"sample_rate": SR, **other})
    frames = theirs.analyze(signal((2048,), 0, torch.float32))
    with pytest.raises(PvrnnError):
        pv.synthesize(frames)
    with pytest.raises(PvrnnError):
        pv.synthesize("not frames")


def test_hop_too_large_for_the_window_raises_on_synthesis():
    pv = PhaseVocoder(n_fft=256, hop_length=256, window="hann", sample_rate=SR)
    frames = pv.analyze(signal((2048,), 0, torch.float32))
    with pytest.raises(PvrnnError):
        pv.synthesize(frames)


def test_pvrnn_error_is_a_value_error():
    assert issubclass(pvrnn.PvrnnError, ValueError)
