"""Spectral comparisons of two sounds, in dB (STFT magnitudes, Hann window, ``center=True``)."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import PvrnnError, check_audio, check_int, fail

__all__ = ["spectral_convergence", "log_spectral_distance"]


# -- spectral comparisons ----------------------------------------------------------------------
def _pair(reference: Any, estimate: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a (reference, estimate) pair; broadcast leading dims, common dtype."""
    reference = check_audio(reference, "reference")
    estimate = check_audio(estimate, "estimate")
    n_ref, n_est = reference.shape[-1], estimate.shape[-1]
    if n_ref != n_est:
        n = min(n_ref, n_est)
        raise PvrnnError(
            f"reference has {n_ref} samples but estimate has {n_est}: expected equal lengths; "
            f"trim both first, e.g. reference[..., :{n}] and estimate[..., :{n}]"
        )
    if reference.device != estimate.device:
        raise PvrnnError(f"reference is on {reference.device} but estimate is on "
                         f"{estimate.device}: expected both on the same device")
    try:
        batch = torch.broadcast_shapes(reference.shape[:-1], estimate.shape[:-1])
    except RuntimeError as error:
        raise PvrnnError(
            f"reference has shape {tuple(reference.shape)} and estimate {tuple(estimate.shape)}: "
            f"expected leading dims that broadcast"
        ) from error
    dtype = torch.promote_types(reference.dtype, estimate.dtype)
    reference = reference.to(dtype).expand(*batch, n_ref)
    estimate = estimate.to(dtype).expand(*batch, n_est)
    return reference, estimate


def _check_stft(n_fft: Any, hop_length: Any) -> tuple[int, int]:
    n_fft = check_int("n_fft", n_fft, low=2)
    hop_length = check_int("hop_length", hop_length, low=1, high=n_fft)
    return n_fft, hop_length


def _magnitudes(audio: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """|STFT| of ``audio`` ``(..., time)`` -> ``(..., n_frames, n_bins)``."""
    batch, length = audio.shape[:-1], audio.shape[-1]
    window = torch.hann_window(n_fft, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(
        audio.reshape(-1, length), n_fft, hop_length, window=window,
        center=True, pad_mode="constant", return_complex=True,
    )  # (B, n_bins, n_frames)
    return spec.abs().transpose(-1, -2).reshape(*batch, spec.shape[-1], spec.shape[-2])


def spectral_convergence(
    reference: torch.Tensor,
    estimate: torch.Tensor,
    n_fft: int = 2048,
    hop_length: int = 512,
) -> torch.Tensor:
    """Spectral convergence in dB: ``20 log10(||S_ref - S_est||_F / ||S_ref||_F)``.

    ``S`` are STFT magnitudes (Hann window of ``n_fft``, ``center=True``, zero padding), and
    the Frobenius norms run over all frames and bins of one item. Lower is better: -20 dB
    means the magnitude error is a tenth of the reference's. Phase is ignored.

    Args:
        reference (Tensor): ``(..., time)`` float audio.
        estimate (Tensor): ``(..., time)``, same length and device; leading dims broadcast
            against ``reference``'s (e.g. one reference against a batch of estimates).
        n_fft (int): FFT size, samples (2048 at 44.1 kHz is 46 ms).
        hop_length (int): samples between frames, ``1 .. n_fft``.

    Returns:
        Tensor: ``(...)`` dB in the common dtype of the inputs. Identical magnitudes give
        ``-inf``; a silent reference gives ``inf`` (``nan`` if the estimate is silent too).

    Raises:
        PvrnnError: when the inputs are not finite float audio, differ in length or device,
            or ``n_fft`` / ``hop_length`` are invalid.

    Example:
        >>> x = pvrnn.examples.sine(440.0, seconds=1.0)
        >>> pvrnn.metrics.spectral_convergence(x, 0.5 * x)     # 20 log10(0.5) = -6.02 dB
    """
    reference, estimate = _pair(reference, estimate)
    n_fft, hop_length = _check_stft(n_fft, hop_length)
    s_ref = _magnitudes(reference, n_fft, hop_length)
    s_est = _magnitudes(estimate, n_fft, hop_length)
    error = torch.linalg.vector_norm(s_ref - s_est, dim=(-2, -1))
    norm = torch.linalg.vector_norm(s_ref, dim=(-2, -1))
    return 20 * torch.log10(error / norm)


def log_spectral_distance(
    reference: torch.Tensor,
    estimate: torch.Tensor,
    n_fft: int = 2048,
    hop_length: int = 512,
    floor_db: float | None = -100.0,
) -> torch.Tensor:
    """Log-spectral distance in dB, averaged over frames.

    With ``P = |STFT|**2`` (Hann window of ``n_fft``, ``center=True``, zero padding) and the
    floor ``F = max(P_ref) * 10**(floor_db / 10)`` (the peak over all frames and bins of the
    reference item):

        LSD = mean over frames t of sqrt( mean over bins f of
              (10 log10(max(P_ref[t, f], F)) - 10 log10(max(P_est[t, f], F)))**2 )

    The floor keeps bins far below the reference's loudest (silence, numerical noise) from
    dominating: two bins both below it count as equal. ``a * x`` against ``x`` gives
    ``|20 log10 a|`` wherever both stay above the floor.

    Args:
        reference (Tensor): ``(..., time)`` float audio.
        estimate (Tensor): ``(..., time)``, same length and device; leading dims broadcast.
        n_fft (int): FFT size, samples.
        hop_length (int): samples between frames, ``1 .. n_fft``.
        floor_db (float or None): power floor relative to the reference's peak, dB ``<= 0``
            (default -100); ``None`` uses only the dtype's smallest positive number.

    Returns:
        Tensor: ``(...)`` dB, ``>= 0``; 0 for identical magnitudes.

    Raises:
        PvrnnError: as :func:`spectral_convergence`, or when ``floor_db`` is not a finite
            number ``<= 0``.

    Example:
        >>> noise = torch.randn(44100) * 0.1
        >>> pvrnn.metrics.log_spectral_distance(noise, 0.5 * noise)   # 6.02 dB
    """
    reference, estimate = _pair(reference, estimate)
    n_fft, hop_length = _check_stft(n_fft, hop_length)
    if floor_db is not None:
        ok = isinstance(floor_db, (int, float)) and not isinstance(floor_db, bool)
        if not ok or not math.isfinite(floor_db) or floor_db > 0:
            raise fail("floor_db", floor_db, "a finite number of dB <= 0, or None")
    p_ref = _magnitudes(reference, n_fft, hop_length).square()
    p_est = _magnitudes(estimate, n_fft, hop_length).square()
    tiny = torch.finfo(p_ref.dtype).tiny
    if floor_db is None:
        floor = torch.full_like(p_ref[..., :1, :1], tiny)
    else:
        peak = p_ref.amax(dim=(-2, -1), keepdim=True)
        floor = (peak * 10.0 ** (floor_db / 10)).clamp_min(tiny)
    level_ref = 10 * torch.log10(torch.maximum(p_ref, floor))
    level_est = 10 * torch.log10(torch.maximum(p_est, floor))
    diff = level_ref - level_est  # (..., n_frames, n_bins) dB
    return diff.square().mean(-1).sqrt().mean(-1)


