"""The library's exception and the input checks every entry point shares.

Each check raises :class:`PvrnnError` with a message that names the argument, the value
received and what is expected, e.g. ``hop_length=4096: expected an integer in [1, n_fft=2048]``.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

__all__ = ["PvrnnError", "PvrnnWarning"]


class PvrnnError(ValueError):
    """Raised on bad input: the message names the argument, the value and what is expected."""


class PvrnnWarning(UserWarning):
    """Warnings pvrnn emits (tests turn them into errors)."""


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def fail(name: str, value: Any, expected: str) -> PvrnnError:
    """Build the standard error: ``name=value: expected ...``."""
    return PvrnnError(f"{name}={_describe(value)}: expected {expected}")


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int, or raise if it is not an integer in ``[low, high]``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and (low is None or value >= low) and (high is None or value <= high):
        return int(value)
    if low is not None and high is not None:
        what = f"an integer in [{low}, {high}]"
    elif low is not None:
        what = f"an integer >= {low}"
    else:
        what = "an integer"
    raise fail(name, value, what)


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, or raise if it is not a finite positive number."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok and value == value and abs(value) != float("inf"):
        if value > 0 or (allow_zero and value == 0):
            return float(value)
    raise fail(name, value, "a finite number >= 0" if allow_zero else "a finite number > 0")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value in choices:
        return value
    raise fail(name, value, "one of " + ", ".join(repr(c) for c in choices))


def check_audio(
    audio: Any,
    name: str = "audio",
    *,
    min_length: int = 1,
    min_length_reason: str = "",
) -> torch.Tensor:
    """Validate a waveform ``(..., time)``: a floating tensor, finite, long enough.

    numpy arrays are accepted and converted (their dtype is kept).
    """
    if not isinstance(audio, torch.Tensor):
        try:
            import numpy as np

            if isinstance(audio, np.ndarray):
                audio = torch.from_numpy(audio)
        except ImportError:  # pragma: no cover - numpy is a dependency
            pass
    if not isinstance(audio, torch.Tensor):
        raise fail(name, audio, "a torch.Tensor (or numpy array) of audio samples, (..., time)")
    if not audio.is_floating_point():
        raise fail(name, audio, "a floating-point tensor (float32 or float64); "
                   "convert integer PCM with audio.float() / 32768")
    if audio.dtype not in (torch.float32, torch.float64):
        raise fail(name, audio, "float32 or float64 samples; convert with audio.float()")
    if audio.dim() == 0:
        raise fail(name, audio, "at least one dimension, (..., time)")
    if audio.numel() == 0 and audio.shape[-1] > 0:
        raise fail(name, audio, "at least one signal (a leading dimension is 0)")
    if audio.shape[-1] == 0:
        raise fail(name, audio, "a non-empty signal (time axis has 0 samples)")
    if audio.shape[-1] < min_length:
        why = f" ({min_length_reason})" if min_length_reason else ""
        raise fail(name, audio, f"at least {min_length} samples along time{why}")
    # A finite sum has no NaN or inf in it (they propagate); only a sum that is not finite
    # (one of them, or an overflow) needs the element-wise test, which costs 50x more.
    if not bool(torch.isfinite(audio.sum())) and not bool(torch.isfinite(audio).all()):
        raise fail(name, audio, "finite samples (found NaN or inf)")
    return audio
