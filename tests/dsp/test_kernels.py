"""The vocoder's fused kernels: compiled and eager agree, and compile failures fall back silently.

The compiled kernels are tried wherever torch.compile works; if it cannot compile even a trivial
function here (no C++ compiler, unsupported platform), those tests are skipped. If it can and
our kernels still fail, that is a bug, and the tests say so.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import snr_db

from pvrnn import PhaseVocoder
from pvrnn.dsp import kernels as _fused
from pvrnn.dsp.frames import bin_advance

# inductor itself still calls a deprecated torch.jit API (not ours to fix)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")


def _compiler_problem(device: str) -> str | None:
    """Why torch.compile cannot compile anything on ``device`` here, or None if it can."""
    try:
        double = torch.compile(lambda x: x * 2.0 + 1.0, dynamic=True, fullgraph=True)
        double(torch.ones(3, device=device))
    except Exception as exc:  # no toolchain, unsupported Python or platform
        return f"{type(exc).__name__}: {exc}"
    return None


def _require_compiled(device: str) -> None:
    """Skip if torch.compile cannot work here; fail if it can but our kernels did not."""
    broken = _fused._BROKEN.get(device)
    if broken is None:
        if _fused.compiled_available(device):
            return
        pytest.skip(f"the compiled kernels are not used on this platform ({device})")
    problem = _compiler_problem(device)
    if problem is not None:
        pytest.skip(f"torch.compile unavailable on {device}: {problem}")
    pytest.fail(f"torch.compile works on {device}, but the vocoder kernels failed: {broken}")


def _modular_distance(a: torch.Tensor, b: torch.Tensor, period: float) -> torch.Tensor:
    difference = (a.double() - b.double()).cpu()
    return (torch.remainder(difference + period / 2, period) - period / 2).abs()


def test_compiled_kernels_match_eager(device, clarinet):
    # One test, one batch shape: each new shape class costs a compilation (C++ or Triton).
    audio, rate = clarinet
    # 3 items of different audio, a frame count that is no multiple of the synthesis block
    items = torch.stack([audio[i * 3000 : i * 3000 + 20_000] for i in range(3)]).to(device)
    n_fft, hop = 512, 128
    pv = PhaseVocoder(n_fft=n_fft, hop_length=hop, sample_rate=rate).to(device)
    spec = torch.stft(items, n_fft, hop, window=pv.window, return_complex=True).transpose(-1, -2)
    advance = bin_advance(n_fft // 2 + 1, n_fft, hop, device)
    hz_per_radian = rate / (2 * math.pi * hop)

    eager = _fused.analysis(spec, advance, hz_per_radian, compiled=False)
    compiled = _fused.analysis(spec, advance, hz_per_radian, compiled=True)
    _require_compiled(device)
    magnitude, deviation, start = compiled
    torch.testing.assert_close(magnitude, eager[0], rtol=1e-6, atol=1e-7)
    # Angles may land on either side of the wrap (+-pi): compare modulo the period.
    period = 2 * math.pi * hz_per_radian  # Hz
    assert _modular_distance(deviation, eager[1], period).max() < 1e-6 * period
    assert _modular_distance(start, eager[2], 2 * math.pi).max() < 1e-6
    assert deviation.dtype == magnitude.dtype == start.dtype == torch.float32

    # Synthesis, from frames with negative magnitudes and deviations over the whole range.
    generator = torch.Generator().manual_seed(0)
    shape = magnitude.shape
    magnitude = (torch.rand(shape, generator=generator) - 0.1).to(device)
    deviation = ((torch.rand(shape, generator=generator) - 0.5) * period).to(device)
    start = ((torch.rand(shape[0], shape[2], generator=generator) - 0.5) * 6).to(device)
    args = (magnitude, deviation, start, advance, 1 / hz_per_radian)
    reference = _fused.spectrum(*args, compiled=False)
    result = _fused.spectrum(*args, compiled=True)
    _require_compiled(device)
    assert result.dtype == reference.dtype == torch.complex64
    torch.testing.assert_close(result, reference, rtol=0, atol=1e-6)

    # The whole round trip, through the vocoder.
    with _fused.using("on"):
        again = pv.synthesize(pv.analyze(items), length=items.shape[-1])
    _require_compiled(device)
    with _fused.using("off"):
        reference = pv.synthesize(pv.analyze(items), length=items.shape[-1])
    torch.testing.assert_close(again, reference, rtol=0, atol=1e-5)
    assert min(snr_db(items[i], again[i]) for i in range(3)) >= 60.0


def test_compile_failure_falls_back_silently(monkeypatch):
    def broken(*args):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(_fused, "_BROKEN", {})
    monkeypatch.setattr(_fused, "_COMPILED", {"analysis": broken, "spectrum": broken})
    audio = torch.sin(torch.arange(8000) * 0.1)
    spec = torch.stft(audio, 512, 128, window=torch.hann_window(512),
                      return_complex=True).transpose(-1, -2)[None]
    advance = bin_advance(257, 512, 128, "cpu")
    frames = _fused.analysis(spec, advance, 20.0, compiled=True)
    assert "no compiler here" in _fused._BROKEN["cpu"]
    assert not _fused.compiled_available("cpu")
    for got, want in zip(frames, _fused.analysis(spec, advance, 20.0, compiled=False)):
        torch.testing.assert_close(got, want)
    args = (*frames[:2], frames[2], advance, 0.05)
    torch.testing.assert_close(_fused.spectrum(*args, compiled=True),
                               _fused.spectrum(*args, compiled=False))


def test_policy(monkeypatch):
    monkeypatch.delenv("PVRNN_COMPILE", raising=False)
    assert _fused.compile_mode() == "off"  # eager unless asked
    for value, mode in [("1", "on"), ("on", "on"), ("0", "off"), ("off", "off")]:
        monkeypatch.setenv("PVRNN_COMPILE", value)
        assert _fused.compile_mode() == mode
    with _fused.using("off"):
        assert _fused.compile_mode() == "off"
        with _fused.using("on"):
            assert _fused.compile_mode() == "on"
    with pytest.raises(ValueError, match="mode='maybe'"):
        with _fused.using("maybe"):
            pass
    # Never compiled: float64, or inputs autograd is recording through.
    monkeypatch.setattr(_fused, "_BROKEN", {})
    with _fused.using("on"):
        assert not _fused.use_compiled(torch.zeros(2, dtype=torch.float64))
        assert not _fused.use_compiled(torch.zeros(2, requires_grad=True))
        with torch.no_grad():
            assert _fused.use_compiled(torch.zeros(2, requires_grad=True)) == (
                _fused.compiled_available("cpu"))
