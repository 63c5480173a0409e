"""What every effect shares: checked STFT settings, and windowed spectra at any position.

The effects read frames at arbitrary sample positions (the time-stretch's read positions are
not a multiple of the hop), so they frame the padded signal themselves and take one real FFT
per frame. A named window (a cosine sum, :mod:`pvrnn.dsp.windows`) and its time derivative are
then applied in frequency: multiplying by ``cos(2 pi m n / N)`` is ``(X[k - m] + X[k + m]) / 2``,
so one FFT of the raw frame gives both. A tensor window is applied in time (two FFTs).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..dsp.windows import Window, resolve_window
from ..errors import check_audio, check_int, check_positive, fail

__all__ = ["check_stft", "check_input", "check_fraction", "padded", "spectra", "BLOCK_ELEMENTS"]

#: Elements (frames x bins x batch) per block of work: bounds memory on long inputs.
BLOCK_ELEMENTS = 1 << 18


def check_stft(n_fft: Any, hop_length: Any, window: Any) -> tuple[int, int, Window]:
    """``n_fft`` (even, >= 16), ``hop_length`` (``1 .. n_fft // 2``) and the resolved window
    (any window :class:`pvrnn.PhaseVocoder` accepts, of ``n_fft`` samples)."""
    n_fft = check_int("n_fft", n_fft, low=16)
    if n_fft % 2:
        raise fail("n_fft", n_fft, "an even number of samples (e.g. 2048)")
    hop_length = check_int("hop_length", hop_length, low=1, high=n_fft // 2)
    return n_fft, hop_length, resolve_window(window, n_fft)


def check_input(audio: Any, n_fft: int, name: str = "audio") -> torch.Tensor:
    """Finite float audio ``(..., time)`` of at least ``n_fft`` samples."""
    return check_audio(audio, name, min_length=n_fft, min_length_reason=f"n_fft={n_fft}")


def check_fraction(name: str, value: Any) -> float:
    """A number in ``(0, 1]``."""
    value = check_positive(name, value)
    if value > 1:
        raise fail(name, value, "a fraction in (0, 1]")
    return value


def padded(audio: torch.Tensor, n_fft: int) -> torch.Tensor:
    """``(B, n)`` -> ``(B, n + n_fft)``: frames centred on every sample, silence outside."""
    return F.pad(audio, (n_fft // 2, n_fft // 2))


def spectra(
    frames: torch.Tensor, window: Window, derivative: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Windowed spectra of raw frames ``(..., n_fft)``.

    Returns ``X_w`` (the window applied) and ``D`` with ``X_dw = 1j * D`` (the window's time
    derivative, per sample, applied; ``None`` unless ``derivative``), both
    ``(..., n_fft // 2 + 1)`` complex, in the precision of ``frames``.
    """
    n_fft = frames.shape[-1]
    coeffs = window.coefficients
    if coeffs is None:  # a tensor window: in time
        x_w = torch.fft.rfft(frames * window.on(frames))
        if not derivative:
            return x_w, None
        return x_w, -1j * torch.fft.rfft(frames * window.derivative(frames))
    spec = torch.fft.rfft(frames)
    k = spec.shape[-1]
    m = len(coeffs) - 1
    if m == 0:  # rectangular: w' = 0
        return coeffs[0] * spec, torch.zeros_like(spec) if derivative else None
    # The taps run on the real view (real adds and scalings vectorise better than complex
    # ones), in place, into one output: the interior bins read the spectrum itself, the m bins
    # at each end a small copy extended by conjugate symmetry, X[-j] = X[N - j] = conj(X[j]).
    flat = torch.view_as_real(spec)
    head = torch.view_as_real(torch.cat([spec[..., 1 : m + 1].flip(-1).conj(),
                                         spec[..., : 2 * m]], dim=-1))
    tail = torch.view_as_real(torch.cat([spec[..., k - 2 * m :],
                                         spec[..., k - 1 - m : k - 1].flip(-1).conj()], dim=-1))
    x_w = torch.empty_like(flat)
    d = torch.empty_like(flat) if derivative else None
    for src, first, n in ((head, 0, m), (flat, m, k - 2 * m), (tail, k - m, m)):
        # src[j] is bin first - m + j; output i (bin first + i) reads src[i + m -+ q].
        x_out = x_w[..., first : first + n, :]
        d_out = d[..., first : first + n, :] if derivative else None
        for q in range(1, m + 1):  # the window's few cosine terms, not bins or frames
            lo, hi = src[..., m - q : m - q + n, :], src[..., m + q : m + q + n, :]
            if q == 1:
                torch.add(lo, hi, out=x_out).mul_(0.5 * coeffs[q])
            else:
                x_out.add_(torch.add(lo, hi), alpha=0.5 * coeffs[q])
            if derivative:
                scale = coeffs[q] * math.pi * q / n_fft
                if q == 1:
                    torch.sub(lo, hi, out=d_out).mul_(scale)
                else:
                    d_out.add_(torch.sub(lo, hi), alpha=scale)
        x_out.add_(src[..., m : m + n, :], alpha=coeffs[0])
    return torch.view_as_complex(x_w), torch.view_as_complex(d) if derivative else None
