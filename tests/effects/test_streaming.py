"""Streams: pvrnn.Stretcher and the block-wise engine equal the offline functions, in bounded
memory, with the stated latency; bad input raises PvrnnError."""

from __future__ import annotations

import math

import pytest
import torch
from effects_signals import SR, clicks, sine

import pvrnn
from pvrnn import PvrnnError
from pvrnn.effects import stretch as stretch_module


def _cuts(n: int, seed: int) -> list[int]:
    """Random block boundaries (blocks of 0 to 5000 samples, some empty)."""
    g = torch.Generator().manual_seed(seed)
    cuts, i = [0], 0
    while i < n:
        i = min(n, i + int(torch.randint(0, 5000, (1,), generator=g)))
        cuts.append(i)
    return cuts


def _stream(st: pvrnn.Stretcher, audio: torch.Tensor, seed: int = 0) -> torch.Tensor:
    cuts = _cuts(audio.shape[-1], seed)
    pieces = [st.process(audio[..., a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    pieces.append(st.flush())
    return torch.cat(pieces, dim=-1)


def _signal(seconds: float = 1.0) -> torch.Tensor:
    return clicks(seconds) + sine(440.0, seconds) * 0.5  # onsets and a steady partial


@pytest.mark.parametrize("factor", [0.5, 1.5, 2.0])
def test_stretcher_equals_time_stretch(factor):
    audio = _signal()
    offline = pvrnn.time_stretch(audio, SR, factor)
    streamed = _stream(pvrnn.Stretcher(SR, factor=factor), audio, seed=int(factor * 10))
    assert streamed.shape == offline.shape == (round(audio.shape[-1] * factor),)
    torch.testing.assert_close(streamed, offline, atol=2e-6, rtol=0)


@pytest.mark.parametrize("link", [False, True])
def test_stretcher_channels_equal_time_stretch(link):
    audio = torch.stack([_signal(1.0), sine(660.0, 1.0)])
    offline = pvrnn.time_stretch(audio, SR, 1.3, link_channels=link)
    streamed = _stream(pvrnn.Stretcher(SR, factor=1.3, channels=2, link_channels=link), audio)
    torch.testing.assert_close(streamed, offline, atol=2e-6, rtol=0)


def test_stretcher_time_varying_factor_equals_time_stretch():
    audio = _signal(2.0)

    def factor(t):
        return 0.7 + 0.8 * t

    offline = pvrnn.time_stretch(audio, SR, factor)
    streamed = _stream(pvrnn.Stretcher(SR, factor=factor), audio, seed=3)
    torch.testing.assert_close(streamed, offline, atol=2e-6, rtol=0)


def test_factor_changed_between_blocks_takes_effect():
    audio = sine(440.0, 3.0)
    st = pvrnn.Stretcher(SR, factor=1.0)
    first = st.process(audio[: SR])
    st.factor = 2.0  # from here on, twice as slow
    rest = torch.cat([first, st.process(audio[SR:]), st.flush()])
    # About 1 s at x1 then 2 s at x2 (the change lands within the look-ahead of the first
    # second's end, 3 / 2 n_fft before it): 5 s of output and a little more, a steady pitch.
    assert 5.0 * SR < rest.shape[-1] < 5.2 * SR
    f0 = pvrnn.metrics.estimate_f0(rest[SR // 2 : -SR // 2], SR)
    assert abs(1200 * math.log2(float(f0.nanmedian()) / 440.0)) < 5


@pytest.mark.parametrize("factor,transients", [(0.5, True), (1.5, True), (2.0, False)])
def test_latency_is_what_it_says(factor, transients):
    audio = sine(440.0, 2.0)
    st = pvrnn.Stretcher(SR, factor=factor, transients=transients)
    latency, given, out = st.latency, 0, 0
    assert latency > 0
    for i in range(0, audio.shape[-1], 2000):
        out += st.process(audio[i : i + 2000]).shape[-1]
        given = min(audio.shape[-1], i + 2000)
        # At least the stretch of all but the last `latency` samples is out ...
        assert out >= round((given - latency) * factor)
        # ... and not much less than that is held back (the bound is within 4 hops).
        if given > latency + 4 * 512:
            assert out < round((given - latency + 4 * 512) * factor)
    st.flush()


def test_stretcher_bounded_memory():
    # A long stream keeps a bounded amount of state: its buffers do not grow with time.
    st = pvrnn.Stretcher(SR, factor=2.0)
    block = sine(440.0, 0.5)
    sizes = []
    for _ in range(16):
        st.process(block)
        engine = st._engine
        sizes.append(engine.buf.shape[-1] + engine.acc.shape[-1] + engine.T.shape[-1]
                     + engine.ideal.shape[-1])
    assert max(sizes[8:]) <= max(sizes[:8]) + 2048  # block and hop phases come and go
    assert max(sizes) < 2 * st.latency


@pytest.mark.parametrize("semitones", [7.0, -5.0])
def test_pitch_shift_does_not_depend_on_the_blocks(semitones, monkeypatch):
    audio = _signal(1.0)
    whole = pvrnn.pitch_shift(audio, SR, semitones, preserve_formants=semitones > 0)
    monkeypatch.setattr(stretch_module, "FEED_SAMPLES", 3001)
    cut = pvrnn.pitch_shift(audio, SR, semitones, preserve_formants=semitones > 0)
    assert cut.shape == audio.shape
    torch.testing.assert_close(cut, whole, atol=2e-6, rtol=0)


def test_time_stretch_does_not_depend_on_the_blocks(monkeypatch):
    audio = torch.stack([_signal(1.0), sine(330.0, 1.0)])
    whole = pvrnn.time_stretch(audio, SR, 0.8, link_channels=True)
    monkeypatch.setattr(stretch_module, "FEED_SAMPLES", 777)
    torch.testing.assert_close(pvrnn.time_stretch(audio, SR, 0.8, link_channels=True), whole,
                               atol=2e-6, rtol=0)


# -- bad input ------------------------------------------------------------------------------------
def _flushed() -> pvrnn.Stretcher:
    st = pvrnn.Stretcher(SR, factor=1.5)
    st.process(torch.zeros(4096))
    st.flush()
    return st


@pytest.mark.parametrize("call,match", [
    (lambda: pvrnn.Stretcher(SR, factor=0.0), "factor=0.0"),
    (lambda: pvrnn.Stretcher(SR, factor=-1), "factor=-1"),
    (lambda: pvrnn.Stretcher(SR, factor=float("nan")), "factor=nan"),
    (lambda: pvrnn.Stretcher(SR, factor=True), "factor=True"),
    (lambda: pvrnn.Stretcher(0, factor=1.5), "sample_rate=0"),
    (lambda: pvrnn.Stretcher(SR, channels=0), "channels=0"),
    (lambda: pvrnn.Stretcher(SR, n_fft=1001), "n_fft=1001"),
    (lambda: pvrnn.Stretcher(SR, channels=2).process(torch.zeros(3, 100)), "2 channel"),
    (lambda: pvrnn.Stretcher(SR, channels=2).process(torch.zeros(100)), "2 channel"),
    (lambda: pvrnn.Stretcher(SR).process(torch.full((100,), math.nan)), "NaN"),
    (lambda: pvrnn.Stretcher(SR).process(torch.zeros(100, dtype=torch.int16)), "float32"),
    (lambda: pvrnn.Stretcher(SR).process([0.0] * 100), "block="),
    (lambda: setattr(pvrnn.Stretcher(SR), "factor", 0), "factor=0"),
    (lambda: _flushed().process(torch.zeros(100)), "after flush"),
    (lambda: _flushed().flush(), "twice"),
    (lambda: pvrnn.Stretcher(SR).flush(), "fewer than n_fft=2048"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(PvrnnError, match=match):
        call()
