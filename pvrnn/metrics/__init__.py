"""Measures of how close two sounds are, and of pitch: the figures tests and benchmarks report.

All functions take audio ``(..., time)`` (float32 or float64, any device), work on every
leading index at once and return one value per item ``(...)`` or per frame
``(..., n_frames)``. Nothing leaves the inputs' device; there are no Python loops over frames.

- :func:`spectral_convergence` and :func:`log_spectral_distance` compare STFT magnitudes
  (Hann window, ``center=True`` with zero padding) of a reference and an estimate, in dB.
- :func:`estimate_f0` is YIN (de Cheveigné & Kawahara, 2002) with parabolic refinement, on
  frames that line up with :class:`pvrnn.Frames` (``1 + time // hop_length`` of them).
- :func:`pitch_drift_cents` expresses that f0 in cents from a reference pitch.
"""

from __future__ import annotations

from .generation import consistency, mean_spectrum_distance, partial_noise, vibrato
from .pitch import estimate_f0, pitch_drift_cents
from .spectral import log_spectral_distance, spectral_convergence

__all__ = [
    "spectral_convergence",
    "log_spectral_distance",
    "estimate_f0",
    "pitch_drift_cents",
    "mean_spectrum_distance",
    "consistency",
    "vibrato",
    "partial_noise",
]


