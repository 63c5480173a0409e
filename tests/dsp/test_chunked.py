"""The float32 vocoder in blocks of frames with fixed-point phase, against the float64 kernels.

Blocks are made tiny here (a few frames) so that every test crosses many block boundaries,
where the carried phase and the previous frame's units must join up.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import snr_db

from pvrnn import Frames, PhaseVocoder
from pvrnn.dsp import chunked, kernels
from pvrnn.dsp.frames import bin_advance


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Blocks of 2-3 frames (the smallest the code allows is 2) on every device."""
    monkeypatch.setattr(chunked, "CPU_BLOCK", 700)
    monkeypatch.setattr(chunked, "GPU_BLOCK", 700)


def _reference_analysis(pv: PhaseVocoder, audio: torch.Tensor):
    """The whole-signal eager kernels (float64 phase steps) on the same float32 STFT."""
    spec = torch.stft(audio, pv.n_fft, pv.hop_length, pv.win_length, pv.window, center=True,
                      pad_mode="reflect", return_complex=True)
    magnitude, deviation, start = kernels.analysis(
        spec.transpose(-1, -2), bin_advance(pv.n_bins, pv.n_fft, pv.hop_length, audio.device),
        pv.sample_rate / (2 * math.pi * pv.hop_length), compiled=False)
    return Frames(magnitude, deviation=deviation, start_phase=start, sample_rate=pv.sample_rate,
                  n_fft=pv.n_fft, hop_length=pv.hop_length)


def _wrapped(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (torch.remainder(a.double() - b.double() + math.pi, 2 * math.pi) - math.pi).abs()


def _step_error(got: Frames, want: Frames) -> float:
    """Largest difference of the deviations as phase steps (radians per hop), modulo a turn: an
    advance of exactly half a turn (the real DC and Nyquist bins) may land on either end."""
    radians_per_hz = 2 * math.pi * got.hop_length / got.sample_rate
    return float(_wrapped(got.deviation * radians_per_hz, want.deviation * radians_per_hz).max())


@pytest.mark.parametrize(("n_fft", "hop", "win"), [(256, 64, 256), (300, 70, 200), (64, 32, 64)])
def test_analysis_matches_float64_kernels(tiny_blocks, device, n_fft, hop, win):
    torch.manual_seed(0)
    audio = torch.randn(3, 5000, device=device)
    pv = PhaseVocoder(n_fft, hop, win_length=win, sample_rate=16000).to(device)
    got, want = pv.analyze(audio), _reference_analysis(pv, audio)
    assert got.magnitude.dtype == torch.float32 and got.magnitude.shape == want.magnitude.shape
    torch.testing.assert_close(got.magnitude, want.magnitude, rtol=1e-6, atol=1e-6)
    assert _step_error(got, want) < 1e-6  # float32 precision of a step of up to pi
    assert float(_wrapped(got.start_phase, want.start_phase).max()) < 1e-5


def test_round_trip_through_many_blocks(tiny_blocks, device):
    torch.manual_seed(1)
    audio = torch.randn(2, 20000, device=device)
    pv = PhaseVocoder(512, 128, sample_rate=16000).to(device)
    again = pv.synthesize(pv.analyze(audio), length=audio.shape[-1])
    assert again.shape == audio.shape and again.dtype == torch.float32
    assert snr_db(audio, again) > 100.0


def test_synthesis_matches_float64_kernels_for_any_deviation(tiny_blocks, device):
    """Deviations far beyond one bin and start phases at +-pi: the fixed-point phase must wrap
    exactly where the float64 phase does."""
    torch.manual_seed(2)
    n_fft, hop, rate = 256, 64, 8000.0
    shape = (2, 200, n_fft // 2 + 1)
    magnitude = torch.rand(shape, device=device)
    deviation = (torch.rand(shape, device=device) - 0.5) * 10 * rate / hop  # +-5 bins' worth
    start = torch.tensor([math.pi, -math.pi], device=device)[:, None].expand(2, shape[-1])
    frames = Frames(magnitude, deviation=deviation, start_phase=start.contiguous(),
                    sample_rate=rate, n_fft=n_fft, hop_length=hop)
    pv = PhaseVocoder(n_fft, hop, sample_rate=rate).to(device)
    got = pv.synthesize(frames)
    want = pv.synthesize(frames.to(dtype=torch.float64))
    assert snr_db(want, got) > 100.0


def test_negative_magnitudes_and_missing_bins(tiny_blocks):
    """Partial frames (fewer bins than n_fft // 2 + 1) and negative magnitudes as the kernels."""
    torch.manual_seed(3)
    magnitude = torch.randn(1, 50, 40)  # 40 of 129 bins; half the magnitudes negative
    deviation = torch.randn(1, 50, 40) * 20
    frames = Frames(magnitude, deviation=deviation, sample_rate=8000, n_fft=256, hop_length=64)
    pv = PhaseVocoder(256, 64, sample_rate=8000)
    got = pv.synthesize(frames)
    want = pv.synthesize(frames.to(dtype=torch.float64))
    assert snr_db(want, got) > 100.0


def test_block_size_does_not_change_the_result(monkeypatch):
    torch.manual_seed(4)
    audio = torch.randn(1, 30000)
    pv = PhaseVocoder(512, 128, sample_rate=16000)
    big = pv.analyze(audio)
    monkeypatch.setattr(chunked, "CPU_BLOCK", 257 * 3)
    small = pv.analyze(audio)
    # equal up to float rounding (vectorized and scalar atan2 differ in the last bit)
    torch.testing.assert_close(small.magnitude, big.magnitude, rtol=0, atol=0)
    assert float((small.deviation - big.deviation).abs().max()) < 1e-4
    out_small = pv.synthesize(small, length=30000)
    monkeypatch.setattr(chunked, "CPU_BLOCK", 1 << 17)
    assert snr_db(pv.synthesize(small, length=30000), out_small) > 120.0


def test_one_frame_and_two_frames():
    pv = PhaseVocoder(256, 256, window="hann", sample_rate=8000)
    for length in (256, 300, 512):
        audio = torch.randn(1, length)
        got, want = pv.analyze(audio), _reference_analysis(pv, audio)
        assert got.n_frames == want.n_frames
        assert _step_error(got, want) < 1e-6


def test_advance_units_are_exact_turns():
    units = chunked.advance_units(5, 8, 2, "cpu")  # k * 2 / 8 turns: 0, 1/4, 1/2, 3/4, 0
    assert units.tolist() == [0, 2**30, 2**31, 3 * 2**30, 0]


def test_no_drift_over_a_hundred_thousand_frames():
    """A steady frequency: each frame's advance is rounded the same way. In units of 2**-32
    turns that would add up to ~7e-5 rad here (95 dB against the float64 reference); the
    running phase is summed in 2**-40 turns."""
    torch.manual_seed(5)
    n_frames = 100_000
    deviation = (torch.rand(1, 1, 3) * 1000 + 37.1).expand(1, n_frames, 3).contiguous()
    frames = Frames(torch.ones(1, n_frames, 3), deviation=deviation, sample_rate=8000,
                    n_fft=4, hop_length=2)
    pv = PhaseVocoder(4, 2, sample_rate=8000)
    assert snr_db(pv.synthesize(frames.to(dtype=torch.float64)), pv.synthesize(frames)) > 110.0
