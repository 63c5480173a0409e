"""The per-bin work of the phase vocoder, in as few passes over memory as possible.

- :func:`analysis`: complex STFT ``(B, F, K)`` -> magnitude, deviation from the bin centre (Hz)
  and the phase of the first frame.
- :func:`spectrum`: magnitude, deviation and start phase -> complex spectrum.
- :func:`accumulate_phase`: deviation and start phase -> the phase of every frame, float64.

The inverse FFT and overlap-add back to audio live in :mod:`pvrnn.dsp.ola`. These kernels work
on the whole signal at once. :class:`~pvrnn.PhaseVocoder` runs them for float64, and for float32
on a GPU with ``PVRNN_COMPILE=1``; other float32 work goes through :mod:`pvrnn.dsp.chunked`
(blocks of frames, fixed-point phase), which on a CPU is faster than both versions below.

All of them are eager torch code that serves every dtype and device. :func:`analysis` and
:func:`spectrum` also have float32 versions compiled with ``torch.compile`` (fused C++ loops
on CPU, Triton kernels on CUDA), used when asked for (below).

Precision (the same in both versions). The phase advance between frames is the difference of
the float32 analysis phases taken in float64, minus the bin-centre advance (reduced modulo
2*pi in integers, :func:`pvrnn.dsp.frames.bin_advance`), wrapped. Synthesis adds the advances back
up in float64 and wraps before casting, so the sum telescopes to the analysis phases: the only
error that accumulates is the float32 rounding of the stored deviation.

Where the time goes (60 s at 44.1 kHz, n_fft 2048, 2-core CPU): every pass over a
``(frames, bins)`` array costs a few ms; a fresh float64 or complex array (over glibc's 32 MB
mmap threshold) costs about as much again in page faults; and an elementwise op mixing float32
and float64 takes torch's scalar casting loop, ~10x slower than a same-dtype op. The eager
versions therefore convert with ``copy_``, work in place, reuse memory (the STFT's for the
float64 phases of analysis, the float64 phase's for the synthesized complex64 spectrum), and
de-interleave the complex data once (torch's atan2/hypot are vectorized only on contiguous
input). The compiled versions read the interleaved complex64 data through an int64 view (real
part in the low 32 bits), which inductor vectorizes (it does not vectorize the strided loads of
a ``view_as_real``), and never write a float64 array: synthesis replaces the float64 cumsum
over frames by block sums (a cumsum over ``F / _BLOCK`` block totals, plus the few increments
since the block began, unrolled), so one kernel reads magnitude and deviation and writes the
spectrum.

When the compiled versions run: with ``PVRNN_COMPILE=1`` (read at each call), for float32 on
CPU and CUDA, unless autograd is recording through the inputs. The default is eager: the first
compilation costs 20-30 s on a small CPU (about 5 s per process once inductor's disk cache is
warm), more than the compiled kernels save on anything short of many minutes of audio, and on
CUDA the eager kernels are bound by memory bandwidth anyway. Compilation is lazy (nothing
happens at import) and torch caches it. If it fails for any reason, the eager version runs from
then on for that device type, silently (the reason is logged at DEBUG level on ``pvrnn``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from typing import Callable, Iterator

import torch

__all__ = [
    "analysis", "spectrum", "accumulate_phase", "compile_mode", "compiled_available", "using",
    "use_compiled",
]

log = logging.getLogger("pvrnn")

PI = math.pi
TWO_PI = 2.0 * math.pi

#: Frames per block of the compiled synthesis scan. The increments since the block began are
#: summed unrolled, so a larger block means more arithmetic, a smaller one a longer cumsum of
#: block totals. Measured (60 s, n_fft 2048, 2 cores): 2 -> ~40 ms, 4 -> ~14 ms, 8 -> ~50 ms.
_BLOCK = 4

_LOW32 = 0xFFFFFFFF


# -- policy ------------------------------------------------------------------------------------
_OVERRIDE: list[str] = []  # innermost `using(...)` last


def compile_mode() -> str:
    """``"on"`` or ``"off"``: the innermost :func:`using`, else ``PVRNN_COMPILE`` (1/0)."""
    if _OVERRIDE:
        return _OVERRIDE[-1]
    value = os.environ.get("PVRNN_COMPILE", "0").strip().lower()
    return "on" if value in ("1", "on", "true", "yes") else "off"


@contextlib.contextmanager
def using(mode: str) -> Iterator[None]:
    """Within the block, use the compiled kernels (``"on"``) or not (``"off"``), whatever
    ``PVRNN_COMPILE`` says: for benchmarks and tests that compare both paths in one process.
    """
    if mode not in ("on", "off"):
        raise ValueError(f"mode={mode!r}: expected 'on' or 'off'")
    _OVERRIDE.append(mode)
    try:
        yield
    finally:
        _OVERRIDE.pop()


_BROKEN: dict[str, str] = {}  # device type -> why compiling failed there
_COMPILED: dict[str, Callable] = {}


def compiled_available(device_type: str = "cpu") -> bool:
    """Whether the compiled kernels can be tried on this device type (not whether they are used)."""
    return (
        device_type in ("cpu", "cuda")
        and device_type not in _BROKEN
        and sys.byteorder == "little"
        and hasattr(torch, "compile")
    )


def use_compiled(*tensors: torch.Tensor, force: bool | None = None) -> bool:
    """Whether the compiled kernels would run for these tensors (the policy, the dtype, autograd
    and the device type)."""
    if not (compile_mode() == "on" if force is None else force):
        return False
    if any(t.dtype != torch.float32 for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False  # the compiled kernels go through bit views: no autograd
    return compiled_available(tensors[0].device.type)


def _compiled(name: str, fn: Callable) -> Callable:
    if name not in _COMPILED:
        _COMPILED[name] = torch.compile(fn, dynamic=True, fullgraph=True)
    return _COMPILED[name]


def _run(name: str, fn: Callable, eager: Callable, device_type: str, *args):
    """Run the compiled ``fn``; on any failure, remember it and run ``eager`` instead.

    The tensors in ``args`` should be detached: dynamo guards on the base of an input that is a
    view, and would compile again for the same shapes whenever the base differs.
    """
    try:
        return _compiled(name, fn)(*args)
    except Exception as exc:  # a compiler error, a missing toolchain, an unsupported platform
        _BROKEN[device_type] = f"{type(exc).__name__}: {exc}"
        log.debug("pvrnn: compiled %s failed on %s, using eager kernels: %s",
                  name, device_type, _BROKEN[device_type])
        return eager(*args)


# -- analysis ----------------------------------------------------------------------------------
def analysis(
    spec: torch.Tensor,
    advance: torch.Tensor,
    hz_per_radian: float,
    *,
    overwrite: bool = False,
    compiled: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Complex STFT ``(B, F, K)`` (frames-major) -> magnitude, deviation (Hz), start phase.

    Args:
        spec: complex64 or complex128, ``(B, n_frames, n_bins)``.
        advance: bin-centre phase advance per hop, reduced modulo 2*pi, float64 ``(n_bins,)``.
        hz_per_radian: ``sample_rate / (2*pi*hop_length)``.
        overwrite: ``spec`` may be used as scratch memory (saves allocating a float64 array).
        compiled: force the compiled (True) or eager (False) kernel; default: the policy.

    Returns:
        magnitude and deviation ``(B, F, K)`` and start phase ``(B, K)``, in the real dtype of
        ``spec``. Frame 0 has no predecessor: it takes frame 1's deviation (0 for one frame).
    """
    if use_compiled(spec.real, force=compiled):
        bits = torch.view_as_real(spec.contiguous()).view(torch.int64).squeeze(-1)
        args = (bits.detach(), advance.detach(), hz_per_radian)  # see _run
        magnitude, deviation, phase = _run(
            "analysis", _analysis_compiled, _analysis_from_bits, spec.device.type, *args
        )
        return magnitude, deviation, phase[:, 0].clone()
    return _analysis_eager(spec, advance, hz_per_radian, overwrite)


def _analysis_eager(spec, advance, hz_per_radian, overwrite=False):
    # Mixed-dtype elementwise ops take torch's slow casting loop: every float32 -> float64
    # conversion below is a copy_, every operation is between tensors of one dtype.
    batch, n_frames, n_bins = spec.shape
    parts = torch.view_as_real(spec)
    re, im = parts[..., 0].contiguous(), parts[..., 1].contiguous()  # vectorizable from here
    magnitude = torch.hypot(re, im)
    phase = torch.atan2(im, re, out=im)
    deviation = re  # re is not needed any more: its memory takes the deviation
    start = phase[:, 0].clone()
    if n_frames < 2:  # a single frame: no advance to measure
        return magnitude, deviation.zero_(), start
    # wrap(p[t] - p[t-1] - advance) in float64, where subtracting float32 values is exact.
    if overwrite and spec.is_contiguous() and spec.dtype == torch.complex64:
        wide = torch.view_as_real(spec).view(torch.float64).view(phase.shape)  # read already
        wide.copy_(phase)
    else:
        wide = phase.to(torch.float64)
    step = torch.sub(wide[:, 1:], wide[:, :-1])
    step.add_(PI - advance).remainder_(TWO_PI).sub_(PI).mul_(hz_per_radian)
    deviation[:, 1:].copy_(step)
    deviation[:, 0] = deviation[:, 1]
    return magnitude, deviation, start


def _wrap_shifted(x: torch.Tensor) -> torch.Tensor:
    """``x mod 2*pi`` in ``[0, 2*pi)`` (the compiled kernels' wrap; ``floor`` is cheap there)."""
    return x - TWO_PI * torch.floor(x * (1.0 / TWO_PI))


def _split(bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 view of complex64 -> (real, imaginary) float32 (little-endian: real is low)."""
    re = (bits & _LOW32).to(torch.int32).view(torch.float32)
    im = (bits >> 32).to(torch.int32).view(torch.float32)
    return re, im


def _analysis_compiled(bits, advance, hz_per_radian):
    re, im = _split(bits)
    magnitude = torch.hypot(re, im)
    # The phase is an output, so inductor writes it once and the deviation reads it back (two
    # atan2 per bin, recomputing the previous frame's, measured ~1.5x slower).
    phase = torch.atan2(im, re)
    # Frame t's advance is measured from t-1 to t; frame 0 takes frame 1's.
    now = torch.arange(bits.shape[1], device=bits.device).clamp_min(1)
    phase_now = phase[:, now].to(torch.float64)
    phase_before = phase[:, now - 1].to(torch.float64)
    step = _wrap_shifted(phase_now - phase_before + (PI - advance)) - PI
    return magnitude, (step * hz_per_radian).to(torch.float32), phase


def _analysis_from_bits(bits, advance, hz_per_radian):
    spec = torch.view_as_complex(bits.unsqueeze(-1).view(torch.float32))
    magnitude, deviation, start = _analysis_eager(spec, advance, hz_per_radian)
    return magnitude, deviation, start.unsqueeze(1)  # like the compiled kernel's phase[:, :1]


# -- synthesis ---------------------------------------------------------------------------------
def spectrum(
    magnitude: torch.Tensor,
    deviation: torch.Tensor,
    start_phase: torch.Tensor,
    advance: torch.Tensor,
    radians_per_hz: float,
    *,
    compiled: bool | None = None,
) -> torch.Tensor:
    """Magnitude, deviation ``(B, F, K)`` and start phase ``(B, K)`` -> complex ``(B, F, K)``.

    The phase is integrated as in :func:`accumulate_phase`; magnitudes below zero count as
    zero. The result is complex64 for float32 frames, complex128 for float64.
    """
    use = use_compiled(magnitude, deviation, force=compiled)
    if use and magnitude.shape[1] > 1:
        start_pi = start_phase.to(torch.float64) + PI
        args = (magnitude.contiguous().detach(), deviation.contiguous().detach(),
                start_pi.detach(), advance.detach(), radians_per_hz)  # see _run
        bits = _run("spectrum", _spectrum_compiled, _spectrum_bits_eager, magnitude.device.type,
                    *args)
        return torch.view_as_complex(bits.unsqueeze(-1).view(torch.float32))
    return _spectrum_eager(magnitude, deviation, start_phase, advance, radians_per_hz)


def _phase_shifted(deviation, start_phase, advance, radians_per_hz):
    """Phase + pi, reduced to [0, 2*pi), float64 (one allocation, the rest in place)."""
    acc = deviation.to(torch.float64, copy=True)
    acc.mul_(radians_per_hz).add_(advance)
    acc[:, 0] = start_phase.to(torch.float64) + PI
    acc.cumsum_(1)
    return acc.remainder_(TWO_PI)


def _spectrum_eager(magnitude, deviation, start_phase, advance, radians_per_hz):
    shifted = _phase_shifted(deviation, start_phase, advance, radians_per_hz).sub_(PI)
    phase = shifted.to(magnitude.dtype)
    if magnitude.dtype == torch.float32:  # complex64 has float64's 8 bytes: reuse that memory
        out = shifted.view(torch.float32).view(*magnitude.shape, 2)
    else:
        out = torch.empty(*magnitude.shape, 2, dtype=magnitude.dtype, device=magnitude.device)
    del shifted
    positive = magnitude.clamp_min(0)
    torch.mul(torch.cos(phase), positive, out=out[..., 0])
    torch.mul(phase.sin_(), positive, out=out[..., 1])
    return torch.view_as_complex(out)


def _spectrum_bits_eager(magnitude, deviation, start_pi, advance, radians_per_hz):
    spec = _spectrum_eager(magnitude, deviation, start_pi - PI, advance, radians_per_hz)
    return torch.view_as_real(spec).view(torch.int64).squeeze(-1)


def _spectrum_compiled(magnitude, deviation, start_pi, advance, radians_per_hz):
    n_frames = deviation.shape[1]
    block = _BLOCK
    t = torch.arange(n_frames, device=deviation.device)
    increments = deviation.to(torch.float64) * radians_per_hz + advance
    increments = torch.where((t == 0)[:, None], start_pi[:, None, :], increments)
    # Running sum over frames = exclusive cumsum of block totals + increments since the block
    # began (at most _BLOCK - 1 earlier ones, unrolled here: it is a fixed, small count).
    n_blocks = (n_frames + block - 1) // block
    padded = torch.nn.functional.pad(increments, (0, 0, 0, n_blocks * block - n_frames))
    totals = padded.view(padded.shape[0], n_blocks, block, padded.shape[2]).sum(2)
    carry = torch.nn.functional.pad(torch.cumsum(totals[:, :-1], 1), (0, 0, 1, 0))
    position = (t % block)[:, None]
    running = carry[:, t // block] + increments
    for j in range(1, block):
        earlier = torch.nn.functional.pad(increments[:, :-j], (0, 0, j, 0))
        running = running + torch.where(position >= j, earlier, 0.0)
    phase = (_wrap_shifted(running) - PI).to(torch.float32)
    positive = magnitude.clamp_min(0)
    re, im = positive * torch.cos(phase), positive * torch.sin(phase)
    return (im.view(torch.int32).to(torch.int64) << 32) | (re.view(torch.int32).to(torch.int64)
                                                          & _LOW32)


# -- phase -------------------------------------------------------------------------------------
def accumulate_phase(
    deviation: torch.Tensor, start_phase: torch.Tensor, advance: torch.Tensor,
    radians_per_hz: float,
) -> torch.Tensor:
    """Phase of every frame, float64 ``(B, F, K)``, wrapped to ``[-pi, pi)``.

    ``phase[t] = start_phase + sum_{s=1..t} (advance + radians_per_hz * deviation[s])``,
    accumulated in float64 with one cumsum over frames.
    """
    return _phase_shifted(deviation, start_phase, advance, radians_per_hz).sub_(PI)
