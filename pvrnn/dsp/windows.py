"""Analysis windows: one registry for the phase vocoder and the effects.

Every named window is a periodic cosine sum ``w[n] = sum_m a_m cos(2 pi m n / N)`` (the
rectangular window is the one-term sum ``a_0 = 1``). The coefficients serve twice: they give the
window's samples, and they let the effects apply the window (and its time derivative, for
reassigned frequencies) to a raw frame's spectrum as a few-tap convolution in frequency,
without a second FFT. A window given as a tensor is applied in time instead; its derivative is
the spectral derivative of its periodic extension.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from ..errors import fail

__all__ = ["COSINE_WINDOWS", "Window", "make_window", "resolve_window"]

TWO_PI = 2.0 * math.pi

#: Cosine-sum coefficients ``(a_0, a_1, ...)`` of every named window (periodic).
COSINE_WINDOWS: dict[str, tuple[float, ...]] = {
    "hann": (0.5, -0.5),
    "hamming": (0.54, -0.46),
    "blackman": (0.42, -0.5, 0.08),
    "rectangular": (1.0,),
    "boxcar": (1.0,),
}

_EXPECTED = "one of " + ", ".join(map(repr, COSINE_WINDOWS)) + " or a 1-D tensor"


def _cosine_sum(coefficients: Sequence[float], length: int) -> torch.Tensor:
    """The periodic cosine-sum window of ``length`` samples, float64 ``(length,)`` on the CPU."""
    n = torch.arange(length, dtype=torch.float64) * (TWO_PI / length)
    return sum((a * torch.cos(m * n) for m, a in enumerate(coefficients)),
               torch.zeros(length, dtype=torch.float64))


class Window:
    """A resolved window of ``length`` samples: its values, and its coefficients if a cosine sum.

    Attributes:
        values (Tensor): float64 ``(length,)`` on the CPU.
        coefficients (tuple of float or None): ``(a_0, a_1, ...)`` for a named window, ``None``
            for a tensor window.
    """

    __slots__ = ("values", "coefficients", "_derivative")

    def __init__(self, values: torch.Tensor, coefficients: tuple[float, ...] | None) -> None:
        self.values = values
        self.coefficients = coefficients
        self._derivative: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return self.values.shape[0]

    def on(self, like: torch.Tensor) -> torch.Tensor:
        """The values in the real dtype and on the device of ``like``, ``(length,)``."""
        return self.values.to(device=like.device, dtype=like.real.dtype)

    def derivative(self, like: torch.Tensor) -> torch.Tensor:
        """``dw/dn`` per sample, ``(length,)``: the spectral derivative of the periodic window
        (exact for a cosine sum), in the real dtype and on the device of ``like``."""
        if self._derivative is None:
            n = self.length
            spec = torch.fft.fft(self.values)
            k = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
            if n % 2 == 0:
                k[n // 2] = 0.0  # the Nyquist term has no odd derivative
            self._derivative = torch.fft.ifft(spec * (1j * TWO_PI / n) * k).real
        return self._derivative.to(device=like.device, dtype=like.real.dtype)


def resolve_window(window: Any, length: int) -> Window:
    """A name from :data:`COSINE_WINDOWS` or a 1-D tensor of ``length`` samples -> :class:`Window`.

    Raises:
        PvrnnError: for an unknown name, or a tensor that is not 1-D of ``length`` finite samples.
    """
    if isinstance(window, torch.Tensor):
        if window.dim() != 1 or window.shape[0] != length:
            raise fail("window", window, f"a 1-D tensor of {length} samples (the window length)")
        if window.is_complex() or window.dtype == torch.bool or not bool(
                torch.isfinite(window).all()):
            raise fail("window", window, "finite real samples")
        return Window(window.detach().to(device="cpu", dtype=torch.float64), None)
    if not isinstance(window, str) or window not in COSINE_WINDOWS:
        raise fail("window", window, _EXPECTED)
    coefficients = COSINE_WINDOWS[window]
    return Window(_cosine_sum(coefficients, length), coefficients)


def make_window(window: str | torch.Tensor, win_length: int) -> torch.Tensor:
    """A periodic window of ``win_length`` samples, float32 ``(win_length,)``, by name or as given.

    Raises:
        PvrnnError: as :func:`resolve_window`.
    """
    resolved = resolve_window(window, win_length)
    if isinstance(window, torch.Tensor):
        return window.detach().to(torch.float32)  # as given, on its device
    return resolved.values.to(torch.float32)
