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

__all__ = ["check_stft", "check_input", "check_fraction", "padded", "block_size", "frames_at",
           "spectra", "windowed", "derivative_at", "window_max", "BLOCK_ELEMENTS"]

#: Elements (frames x bins x batch) per block of work: bounds memory on long inputs.
BLOCK_ELEMENTS = 1 << 18


def window_max(wide: torch.Tensor, span: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Largest of every ``span`` (2 to 8) consecutive values along the last dim,
    ``(..., n - span + 1)`` (into ``out`` when given): maxima of shifted views, spans 2, 4
    and ``span`` (a pooling op's loop is slower)."""
    n = wide.shape[-1] - span + 1
    pairs = torch.maximum(wide[..., :-1], wide[..., 1:])  # j, j + 1
    if span > 4:
        pairs = torch.maximum(pairs[..., :-2], pairs[..., 2:])  # j .. j + 3
    shift = span - (4 if span > 4 else 2)
    return torch.maximum(pairs[..., :n], pairs[..., shift : shift + n], out=out)


def check_stft(n_fft: Any, hop_length: Any, window: Any) -> tuple[int, int, Window]:
    """``n_fft`` (even, >= 16), ``hop_length`` (``1 .. n_fft // 2``) and the resolved window
    (any window :class:`pvrnn.PhaseVocoder` accepts, of ``n_fft`` samples)."""
    if isinstance(n_fft, str) and n_fft == "auto":  # time_stretch resolves it before this
        raise fail("n_fft", n_fft, "an even number of samples here ('auto' chooses from the "
                   "whole sound: time_stretch and pvrnn stretch take it)")
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


def block_size(n: int, block: int) -> int:
    """Frames per block for ``n`` frames in blocks of about ``block`` (bounded memory): split
    evenly, a rest under a quarter block joined to the others (each block costs a few
    hundred small operations)."""
    return -(-n // max(1, math.ceil(n / block - 0.25)))


def frames_at(audio: torch.Tensor, starts: torch.Tensor, n_fft: int) -> torch.Tensor:
    """The frames ``(B, nb, n_fft)`` of ``audio`` ``(B, n)`` starting at samples ``starts``
    ``(B, nb)``: a strided view where they are evenly spaced and the same for every row (a
    constant stretch factor between onsets: the FFT then reads them where they are), else one
    ``index_select`` of rows of such a view (faster than advanced indexing)."""
    if audio.stride(-1) != 1:
        audio = audio.contiguous()
    b, nb = starts.shape
    row = audio.stride(0)
    first = int(starts[0, 0])
    step = int(starts[0, 1] - starts[0, 0]) if nb > 1 else 1
    if step > 0 and bool((starts == first + step * _arange(nb, starts.device)).all()):
        return audio.as_strided((b, nb, n_fft), (row, step, 1), audio.storage_offset() + first)
    windows = audio.as_strided(((b - 1) * row + audio.shape[1] - n_fft + 1, n_fft), (1, 1))
    if b > 1:
        starts = starts + torch.arange(b, device=starts.device).unsqueeze(1) * row
    return windows.index_select(0, starts.reshape(-1)).view(b, nb, n_fft)


def spectra(
    frames: torch.Tensor, window: Window, derivative: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Windowed spectra of raw frames ``(..., n_fft)``.

    Returns ``X_w`` (the window applied) and ``D`` with ``X_dw = 1j * D`` (the window's time
    derivative, per sample, applied; ``None`` unless ``derivative``), both
    ``(..., n_fft // 2 + 1)`` complex, in the precision of ``frames``.
    """
    if window.coefficients is None:  # a tensor window: in time
        x_w = torch.fft.rfft(frames * window.on(frames))
        if not derivative:
            return x_w, None
        return x_w, -1j * torch.fft.rfft(frames * window.derivative(frames))
    return _taps(torch.fft.rfft(frames), window.coefficients, frames.shape[-1], derivative)


def windowed(frames: torch.Tensor, window: Window) -> tuple[torch.Tensor, torch.Tensor]:
    """``X_w`` of raw frames ``(..., n_fft)`` as :func:`spectra` gives it, and what
    :func:`derivative_at` reads ``D`` from at a few bins: the raw spectrum for a cosine-sum
    window (no full ``D``), ``D`` itself for a tensor window."""
    if window.coefficients is None:
        x_w, d = spectra(frames, window)
        return x_w, d
    raw = torch.fft.rfft(frames)
    return _taps(raw, window.coefficients, frames.shape[-1], False)[0], raw


def derivative_at(source: torch.Tensor, bins: torch.Tensor, window: Window) -> torch.Tensor:
    """``D`` of :func:`spectra` at ``bins`` ``(..., P)`` (int64, broadcast against the leading
    dims of ``source``), from :func:`windowed`'s second result: ``(..., P)`` complex.

    For a cosine-sum window the few taps run on the bins needed only, with the values
    :func:`spectra` computes at them (the same operations, in the same order): one gather of
    the raw spectrum at ``bins -+ q``, folded into ``[0, K)`` by conjugate symmetry,
    ``X[-j] = X[N - j] = conj(X[j])``.
    """
    k = source.shape[-1]
    bins = bins.expand(*source.shape[:-1], bins.shape[-1])
    if window.coefficients is None:
        return source.gather(-1, bins)
    coeffs = window.coefficients
    m = len(coeffs) - 1
    if m == 0:
        return source.new_zeros(bins.shape)
    n_fft = 2 * (k - 1)
    near = bins.unsqueeze(-1) + _offsets(m, bins.device)  # (..., P, 2 m): -1, +1, -2, +2, ..
    outside = (near < 0) | (near >= k)
    folded = torch.where(near >= k, n_fft - near, near.abs())
    values = torch.view_as_real(source.gather(-1, folded.flatten(-2)))
    values = values.unflatten(-2, near.shape[-2:])  # (..., P, 2 m, 2)
    if bool(outside.any()):
        values = values.clone()
        values[..., 1] = torch.where(outside, -values[..., 1], values[..., 1])
    d = None
    for q in range(1, m + 1):  # the window's few cosine terms, not bins or frames
        lo, hi = values[..., 2 * q - 2, :], values[..., 2 * q - 1, :]
        scale = coeffs[q] * math.pi * q / n_fft
        d = torch.sub(lo, hi).mul_(scale) if q == 1 else d.add_(torch.sub(lo, hi), alpha=scale)
    return torch.view_as_complex(d)


def _taps(
    spec: torch.Tensor, coeffs: tuple[float, ...], n_fft: int, derivative: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`spectra` of a cosine-sum window from the raw spectrum ``spec``."""
    k = spec.shape[-1]
    m = len(coeffs) - 1
    if m == 0:  # rectangular: w' = 0
        return coeffs[0] * spec, torch.zeros_like(spec) if derivative else None
    # The taps run on the real view (real adds and scalings vectorise better than complex
    # ones), in place, into one output: the interior bins read the spectrum itself, the m bins
    # at each end (one strided view of both ends) a small copy of the 3 m bins around each,
    # extended by conjugate symmetry, X[-j] = X[N - j] = conj(X[j]).
    flat = torch.view_as_real(spec)
    index, sign = _edge_bins(k, m, spec.device)
    lead = spec.shape[:-1]
    edges = torch.view_as_real(spec[..., index]).mul_(sign).view(*lead, 2, 3 * m, 2)
    x_w = torch.empty_like(flat)
    d = torch.empty_like(flat) if derivative else None

    def ends(out: torch.Tensor) -> torch.Tensor:  # bins [0, m) and [k - m, k) of out
        return out.as_strided((*lead, 2, m, 2), (*out.stride()[:-2], 2 * (k - m), 2, 1),
                              out.storage_offset())

    inner = slice(m, k - m)
    segments = ((edges, ends(x_w), ends(d) if derivative else None, m),
                (flat, x_w[..., inner, :], d[..., inner, :] if derivative else None, k - 2 * m))
    for src, x_out, d_out, n in segments:
        # src[j] is bin first - m + j; output i (bin first + i) reads src[i + m -+ q].
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


#: Small index tensors (the taps, an arange), per size and device.
_CACHE: dict = {}


def _edge_bins(k: int, m: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Bins ``-m .. 2 m - 1`` and ``k - 2 m .. k - 1 + m`` of a real signal's spectrum folded
    into ``[0, k)``, and the sign of each one's real and imaginary part, ``(6 m,)`` and
    ``(6 m, 2)`` (-1 on the imaginary part of the folded ones: conjugates)."""
    key = (k, m, str(device))
    if key not in _CACHE:
        bins = torch.cat([torch.arange(-m, 2 * m), torch.arange(k - 2 * m, k + m)])
        index = torch.where(bins < 0, -bins, torch.where(bins >= k, 2 * (k - 1) - bins, bins))
        sign = torch.ones(6 * m, 2)
        sign[:, 1] = torch.where((bins < 0) | (bins >= k), -1.0, 1.0)
        _CACHE[key] = (index.to(device), sign.to(device))
    return _CACHE[key]


def _offsets(m: int, device: torch.device) -> torch.Tensor:
    """``[-1, 1, -2, 2, .., -m, m]`` int64 (cached)."""
    key = (m, str(device))
    if key not in _CACHE:
        steps = [s * q for q in range(1, m + 1) for s in (-1, 1)]
        _CACHE[key] = torch.tensor(steps, device=device)
    return _CACHE[key]


def _arange(n: int, device: torch.device) -> torch.Tensor:
    """``arange(n)`` int64 (a cached one, grown as needed)."""
    key = ("arange", str(device))
    if key not in _CACHE or _CACHE[key].shape[0] < n:
        _CACHE[key] = torch.arange(max(n, 1024), device=device)
    return _CACHE[key][:n]
