"""Pitch: YIN fundamental frequency per frame, drift in cents."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import check_audio, check_int, check_positive, fail

__all__ = ["estimate_f0", "pitch_drift_cents"]


# -- pitch -------------------------------------------------------------------------------------
def estimate_f0(
    audio: torch.Tensor,
    sample_rate: float,
    hop_length: int = 512,
    frame_length: int = 2048,
    fmin: float = 50.0,
    fmax: float = 2000.0,
    threshold: float = 0.1,
    win_length: int | None = None,
) -> torch.Tensor:
    """Fundamental frequency per frame by YIN, in Hz, ``nan`` where unvoiced.

    For frame ``t`` (``t = 0 .. time // hop_length``, zero padding at the ends) the
    ``win_length`` samples centred on sample ``t * hop_length`` are compared with copies of
    themselves delayed by each lag ``tau``:

    1. difference ``d(tau) = sum_j (x[j] - x[j + tau])**2``, via one FFT per frame;
    2. cumulative-mean-normalised difference ``d'(tau) = d(tau) * tau / sum_{k=1..tau} d(k)``;
    3. the period is the first local minimum of ``d'`` below ``threshold`` with ``tau`` in
       ``[sample_rate / fmax, sample_rate / fmin]``; frames without one are unvoiced (``nan``);
    4. a parabola through ``d`` at that lag and its two neighbours refines it to a fraction
       of a sample; ``f0 = sample_rate / tau``.

    The measured period is that of the span ``[t * hop_length - win_length / 2,
    t * hop_length + win_length / 2 + tau)``, i.e. centred half a period after the frame
    centre. On a clean periodic tone it is exact to well under a cent.

    Args:
        audio (Tensor): ``(..., time)`` float audio.
        sample_rate (float): Hz.
        hop_length (int): samples between frames; use the vocoder's to line up with
            :class:`pvrnn.Frames`.
        frame_length (int): samples per analysis frame, ``>= win_length + sample_rate / fmin
            + 1``; default 2048 (46 ms at 44.1 kHz).
        fmin (float): lowest f0 searched, Hz (default 50).
        fmax (float): highest f0 searched, Hz, ``<= sample_rate / 2`` (default 2000).
        threshold (float): YIN's aperiodicity threshold in ``(0, 1]`` (default 0.1); larger
            accepts noisier frames as voiced.
        win_length (int, optional): integration window, samples; default
            ``frame_length // 2``.

    Returns:
        Tensor: ``(..., 1 + time // hop_length)`` f0 in Hz, dtype of ``audio``, ``nan`` where
        no periodicity was found (silence, noise).

    Raises:
        PvrnnError: when ``audio`` is not finite float audio or a setting is out of range
            (e.g. ``fmin`` too low for ``frame_length``).

    Example:
        >>> x = pvrnn.examples.sine(440.0, seconds=1.0)
        >>> pvrnn.metrics.estimate_f0(x, 44100)      # (87,) about 440.0 Hz
    """
    audio = check_audio(audio)
    rate = check_positive("sample_rate", sample_rate)
    hop_length = check_int("hop_length", hop_length, low=1)
    frame_length = check_int("frame_length", frame_length, low=8)
    win = frame_length // 2 if win_length is None else check_int(
        "win_length", win_length, low=1, high=frame_length - 4)
    fmin = check_positive("fmin", fmin)
    fmax = check_positive("fmax", fmax)
    if fmax <= fmin:
        raise fail("fmax", fmax, f"a frequency above fmin={fmin:g} Hz")
    if fmax > rate / 2:
        raise fail("fmax", fmax, f"at most sample_rate / 2 = {rate / 2:g} Hz")
    threshold = check_positive("threshold", threshold)
    if threshold > 1:
        raise fail("threshold", threshold, "a number in (0, 1]")
    max_lag = frame_length - win
    lag_lo = max(2, math.floor(rate / fmax))
    lag_hi = math.ceil(rate / fmin)
    if lag_hi + 1 > max_lag:
        need = win + lag_hi + 1 if win_length is not None else 2 * (lag_hi + 1)
        raise fail("fmin", fmin, f"a frequency whose period fits the frame: fmin >= "
                   f"{rate / (max_lag - 1):.4g} Hz for frame_length={frame_length}, or "
                   f"frame_length >= {need} for fmin={fmin:g} Hz")

    batch, length = audio.shape[:-1], audio.shape[-1]
    x = audio.reshape(-1, length).to(torch.float64)
    left = win // 2
    x = torch.nn.functional.pad(x, (left, frame_length - left))
    frames = x.unfold(-1, frame_length, hop_length)  # (B, n_frames, frame_length)

    # 1. difference function: d(tau) = e0 + e(tau) - 2 r(tau), all tau at once.
    spectrum = torch.fft.rfft(frames, n=frame_length)
    head = torch.fft.rfft(frames[..., :win], n=frame_length)
    n_lags = lag_hi + 2  # lags 0 .. lag_hi + 1
    r = torch.fft.irfft(spectrum * head.conj(), n=frame_length)[..., :n_lags]
    energy = torch.nn.functional.pad(frames.square().cumsum(-1), (1, 0))  # (B, T, L + 1)
    e_lag = energy[..., win: win + n_lags] - energy[..., :n_lags]
    d = (energy[..., win: win + 1] + e_lag - 2 * r).clamp_min(0)
    d[..., 0] = 0

    # 2. cumulative-mean-normalised difference (1 where the running sum is 0: silence).
    lags = torch.arange(n_lags, dtype=d.dtype, device=d.device)
    running = d.cumsum(-1)
    span = slice(lag_lo - 1, lag_hi + 2)  # the searched lags and one neighbour each side
    seg = torch.where(running[..., span] > 0,
                      d[..., span] * lags[span] / running[..., span].clamp_min(1e-300), 1.0)

    # 3. first local minimum below threshold in [lag_lo, lag_hi].
    mid = seg[..., 1:-1]
    candidate = (mid < threshold) & (mid < seg[..., :-2]) & (mid <= seg[..., 2:])
    voiced = candidate.any(-1)
    tau = lag_lo + candidate.to(torch.uint8).argmax(-1)  # first True (argmax returns the first)

    # 4. parabolic refinement on d around tau.
    idx = torch.stack([tau - 1, tau, tau + 1], dim=-1)
    a, b, c = d.gather(-1, idx).unbind(-1)
    curvature = a - 2 * b + c
    shift = torch.where(curvature > 0, 0.5 * (a - c) / curvature.clamp_min(1e-300), 0.0)
    f0 = rate / (tau.to(d.dtype) + shift.clamp(-1.0, 1.0))
    f0 = torch.where(voiced, f0, math.nan)
    return f0.to(audio.dtype).reshape(*batch, f0.shape[-1])


def pitch_drift_cents(
    audio: torch.Tensor,
    sample_rate: float,
    reference: float | torch.Tensor | None = None,
    hop_length: int = 512,
    **f0_options: Any,
) -> torch.Tensor:
    """Pitch per frame in cents from a reference: ``1200 log2(f0 / reference)``.

    Args:
        audio (Tensor): ``(..., time)`` float audio.
        sample_rate (float): Hz.
        reference (float or Tensor, optional): reference pitch in Hz, a number or a tensor
            broadcastable to ``(...)``; default each item's median voiced f0 (so the result is
            the drift around the sound's own pitch).
        hop_length (int): samples between frames.
        **f0_options: ``frame_length``, ``fmin``, ``fmax``, ``threshold``, ``win_length`` for
            :func:`estimate_f0`.

    Returns:
        Tensor: ``(..., 1 + time // hop_length)`` cents, ``nan`` where unvoiced (all ``nan``
        for an item with no voiced frame when ``reference`` is ``None``).

    Raises:
        PvrnnError: as :func:`estimate_f0`, or when ``reference`` is not positive and finite.

    Example:
        >>> x = pvrnn.examples.sine(440.0 * 2 ** (10 / 1200), seconds=1.0)
        >>> pvrnn.metrics.pitch_drift_cents(x, 44100, reference=440.0)   # about +10 cents
    """
    f0 = estimate_f0(audio, sample_rate, hop_length=hop_length, **f0_options)
    if reference is None:
        ref = f0.nanmedian(dim=-1, keepdim=True).values
    elif isinstance(reference, torch.Tensor):
        if not reference.is_floating_point() and reference.dtype not in (torch.int32, torch.int64):
            raise fail("reference", reference, "a positive pitch in Hz, number or tensor")
        ref = reference.to(device=f0.device, dtype=f0.dtype).unsqueeze(-1)
        if not bool(torch.isfinite(ref).all() & (ref > 0).all()):
            raise fail("reference", reference, "positive, finite pitches in Hz")
        try:
            fits = torch.broadcast_shapes(ref.shape, f0.shape) == f0.shape
        except RuntimeError:
            fits = False
        if not fits:
            raise fail("reference", reference, f"a tensor broadcastable to {tuple(f0.shape[:-1])}")
    else:
        ref = check_positive("reference", reference)
    return 1200 * torch.log2(f0 / ref)
