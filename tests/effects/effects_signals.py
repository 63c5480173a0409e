"""Test signals and measures shared by the effects tests (analytic, short, seeded).

Pitch is measured with YIN (pvrnn.metrics.estimate_f0).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pvrnn.metrics import estimate_f0

SR = 44100


def sine(freq: float, seconds: float, dtype=torch.float32) -> torch.Tensor:
    t = torch.arange(int(round(seconds * SR)), dtype=torch.float64) / SR
    return (0.5 * torch.sin(2 * math.pi * freq * t)).to(dtype)


def pitch_cents(audio: torch.Tensor, reference: float) -> float:
    """Median YIN pitch of the middle 80 %, in cents from ``reference``."""
    f0 = estimate_f0(audio, SR)
    n = f0.shape[-1]
    return 1200 * math.log2(float(f0[n // 10 : n - n // 10].nanmedian()) / reference)


def clicks(seconds: float, factor: float = 1.0, period: float = 0.25) -> torch.Tensor:
    """A 4 ms decaying noise burst every ``period`` s (times ``factor``: the ideal stretch)."""
    rng = np.random.default_rng(1)
    burst = rng.standard_normal(176) * np.exp(-np.arange(176) / 35.0)
    y = np.zeros(int(round(seconds * factor * SR)))
    for t in np.arange(0.1, seconds - 0.05, period) * factor:
        i = int(round(t * SR))
        y[i : i + 176] += burst[: len(y) - i]
    return torch.from_numpy(0.5 * y / np.abs(burst).max()).float()


def crest_db(y: torch.Tensor, seconds: float, factor: float) -> float:
    """Median peak near each click over the RMS of the whole, dB."""
    rms = float(y.double().square().mean().sqrt())
    peaks = []
    for t in np.arange(0.1, seconds - 0.05, 0.25) * factor:
        i = int(round(t * SR))
        peaks.append(float(y[max(0, i - 882) : i + 882].abs().max()))
    return 20 * math.log10(float(np.median(peaks)) / rms)


def formant_db(freq: np.ndarray) -> np.ndarray:
    """A vowel-like envelope: formants at 700 and 2500 Hz on a falling slope (dB)."""
    return (12 * np.exp(-0.5 * ((freq - 700) / 250) ** 2)
            + 8 * np.exp(-0.5 * ((freq - 2500) / 400) ** 2) - 6 * np.log2(1 + freq / 1000))


def voice(f0: float, seconds: float = 1.0) -> torch.Tensor:
    t = np.arange(int(seconds * SR)) / SR
    harmonics = range(1, int(6000 / f0))
    y = sum(10 ** (formant_db(h * f0) / 20) * np.sin(2 * np.pi * h * f0 * t + h)
            for h in harmonics)
    return torch.from_numpy(0.1 * y).float()


def envelope_error_db(audio: torch.Tensor, f0: float) -> float:
    """Mean |harmonic level - formant envelope| (dB, common offset removed) up to 4.5 kHz."""
    n = audio.shape[-1]
    spectrum = np.abs(np.fft.rfft(audio.numpy() * np.hanning(n)))
    freqs = np.arange(1, int(4500 / f0)) * f0
    levels = np.array([20 * np.log10(spectrum[int(round(f * n / SR)) - 3 :
                                              int(round(f * n / SR)) + 4].max()) for f in freqs])
    error = levels - formant_db(freqs)
    return float(np.abs(error - np.median(error)).mean())
