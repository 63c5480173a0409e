"""8-bit mu-law companding (ITU-T G.711's curve, quantized to 256 levels as in WaveNet)."""

from __future__ import annotations

import math

import torch

from ..errors import check_audio, check_int, fail

__all__ = ["mu_law_encode", "mu_law_decode"]


def mu_law_encode(audio: torch.Tensor, channels: int = 256) -> torch.Tensor:
    """Audio in ``[-1, 1]`` ``(..., time)`` -> int64 codes ``0 .. channels - 1``, same shape.

    ``y = sign(x) log(1 + mu |x|) / log(1 + mu)`` with ``mu = channels - 1``, then ``y`` is
    rounded to the nearest of ``channels`` evenly spaced levels on ``[-1, 1]``.

    Raises:
        PvrnnError: for non-audio, or samples outside ``[-1, 1]`` (nothing is clipped).
    """
    audio = check_audio(audio)
    mu = check_int("channels", channels, low=2) - 1
    peak = float(audio.abs().max()) if audio.numel() else 0.0
    if peak > 1.0:
        raise fail("audio", f"peak {peak:.4g}", "samples in [-1, 1] (scale it first)")
    x = audio.to(torch.float64)
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.round((y + 1) * (mu / 2)).to(torch.int64)


def mu_law_decode(codes: torch.Tensor, channels: int = 256) -> torch.Tensor:
    """Codes ``0 .. channels - 1`` -> float32 audio in ``[-1, 1]``: the inverse curve at each
    level (``mu_law_encode(mu_law_decode(q)) == q`` exactly).

    Raises:
        PvrnnError: for codes that are not integers in range.
    """
    mu = check_int("channels", channels, low=2) - 1
    if not isinstance(codes, torch.Tensor) or codes.is_floating_point() or codes.is_complex():
        raise fail("codes", codes, f"an integer tensor of codes 0..{mu}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) > mu):
        raise fail("codes", f"range {int(codes.min())}..{int(codes.max())}", f"codes 0..{mu}")
    y = codes.to(torch.float64) * (2.0 / mu) - 1.0
    return (torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu).to(torch.float32)
