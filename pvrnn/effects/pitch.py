"""Pitch-shift: time-stretch by the pitch ratio, then resample back to the original duration.

The stretch reads the input at a uniform rate (onsets reset their phases but are not read at
slope 1), so resampling by the inverse ratio brings every onset back to where it was. With
``preserve_formants`` each frame's spectral envelope (:mod:`pvrnn.dsp.envelope`, with a lifter
that follows the sound's pitch) is pre-warped during the stretch so that resampling brings it
back in place.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Iterable

import torch

from ..dsp.envelope import (
    LIFTER_BLOCK,
    lifter_samples,
    pitch_lifter_blocks,
    spectral_envelope,
)
from ..errors import check_positive, fail
from .spectra import check_fraction, check_input, check_stft
from .streaming import PitchStream
from .stretch import run_engine

__all__ = ["pitch_shift", "pitch_stream"]


def pitch_shift(
    audio: torch.Tensor,
    sample_rate: float,
    semitones: float,
    *,
    preserve_formants: bool = False,
    envelope_lifter: float | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    window: str | torch.Tensor = "hann",
    transients: bool = True,
    onset_threshold: float = 0.4,
    link_channels: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """Transpose a sound by ``semitones`` and keep its duration.

    The sound is time-stretched by ``2 ** (semitones / 12)`` (see :func:`time_stretch`:
    phase-locked, onsets reset their phases) at a uniform rate, and read back at that ratio
    by the band-limited streaming resampler (:class:`pvrnn.dsp.resample.StreamResampler`, a
    windowed sinc, ~-90 dB of aliasing, a transition band just below the lower Nyquist
    frequency), which scales every frequency by the same ratio and brings every onset back to
    its own time. Both run on blocks of the input (bounded memory, any length). The
    spectral envelope moves with the pitch (a voice gets smaller or larger) unless
    ``preserve_formants``: then each frame's envelope (cepstral smoothing of the log spectrum)
    is pre-warped during the stretch so that resampling brings it back where it was.

    Args:
        audio (Tensor): ``(..., time)`` float waveform, at least ``n_fft`` samples.
        sample_rate (float): Hz.
        semitones (float): transposition, positive up; 12 is an octave. Any finite value with
            ``|semitones| <= 48``.
        preserve_formants (bool): keep the spectral envelope in place (default ``False``).
        envelope_lifter (float, optional): cepstral cutoff of the envelope in seconds. The
            envelope must not resolve the harmonics, so the cutoff must stay below half the
            period of the highest pitch involved. ``None`` (default) measures the sound's
            median pitch (YIN) and takes ``min(1.5 ms, 0.5 / highest pitch)``, the highest
            pitch being the higher of the original and the transposed one; 1.5 ms when no
            pitch is found. (A fixed 1.5 ms made a clarinet A4 shifted up a fifth lose its
            fundamental: the envelope followed its odd harmonics.)
        n_fft (int): FFT size, even. hop_length (int): synthesis hop, ``<= n_fft // 2``.
        window (str or Tensor): any window :class:`pvrnn.PhaseVocoder` accepts, of ``n_fft``
            samples (see :func:`time_stretch`).
        transients (bool): reset the phases of the bins that rise at onsets, so attacks stay
            sharp (default ``True``). Unlike :func:`time_stretch`, onsets are not read at
            slope 1: that would move them in time once the result is resampled.
        onset_threshold (float): onset sensitivity (see :func:`time_stretch`).
        link_channels (bool): the leading items are channels of one sound: they share the
            onsets and the phase rotations, so the stereo image is kept (see
            :func:`time_stretch`).
        progress (bool): show a progress bar on stderr.

    Returns:
        Tensor: ``(..., time)``, dtype and device of ``audio``. ``semitones=0`` returns a copy.

    Raises:
        PvrnnError: on bad audio, a non-finite or out-of-range ``semitones``, or bad settings.

    Example:
        >>> audio, rate = pvrnn.examples.load("clarinet")
        >>> down = pvrnn.pitch_shift(audio, rate, -3)                       # a minor third down
        >>> chip = pvrnn.pitch_shift(audio, rate, 7, preserve_formants=True)
    """
    n_fft = check_stft(n_fft, hop_length, window)[0]
    audio = check_input(audio, n_fft)
    batch, n = audio.shape[:-1], audio.shape[-1]
    flat = audio.reshape(-1, n)
    chunks = [flat[:, i : i + LIFTER_BLOCK] for i in range(0, n, LIFTER_BLOCK)]
    stream = pitch_stream(
        flat.shape[0], sample_rate, semitones, preserve_formants=preserve_formants,
        envelope_lifter=envelope_lifter, lifter_blocks=chunks, n_fft=n_fft,
        hop_length=hop_length, window=window, transients=transients,
        onset_threshold=onset_threshold, link_channels=link_channels, dtype=audio.dtype,
        device=audio.device,
    )
    if stream is None:
        return audio.clone()
    return run_engine(stream, flat, progress, "pitch").reshape(*batch, n)


def pitch_stream(
    items: int, sample_rate: float, semitones: float, *, preserve_formants: bool,
    envelope_lifter: float | None, lifter_blocks: Iterable[torch.Tensor], n_fft: int,
    hop_length: int, window: str | torch.Tensor, transients: bool, onset_threshold: float,
    link_channels: bool, dtype: torch.dtype, device: Any,
) -> PitchStream | None:
    """The validated :class:`PitchStream` of :func:`pitch_shift` for ``items`` signals
    (``None`` for 0 semitones: the input is the output). ``lifter_blocks`` are the blocks
    ``(items, <= LIFTER_BLOCK)`` of the whole input, read only when the formants are kept and
    no ``envelope_lifter`` is given (their pitch sets it).
    """
    n_fft, hop_length, resolved = check_stft(n_fft, hop_length, window)
    sample_rate = check_positive("sample_rate", sample_rate)
    ok = isinstance(semitones, numbers.Real) and not isinstance(semitones, bool)
    if not ok or not math.isfinite(semitones) or abs(semitones) > 48:
        raise fail("semitones", semitones, "a finite number of semitones in [-48, 48]")
    onset_threshold = check_fraction("onset_threshold", onset_threshold)
    if envelope_lifter is not None:
        check_positive("envelope_lifter", envelope_lifter)
    if semitones == 0:
        return None
    ratio = 2.0 ** (semitones / 12.0)
    gain = None
    if preserve_formants:
        if envelope_lifter is None:
            envelope_lifter = pitch_lifter_blocks(lifter_blocks, sample_rate=sample_rate,
                                                  ratio=ratio)
        lifter = lifter_samples(envelope_lifter, sample_rate, n_fft)
        gain = _envelope_warp(ratio, n_fft, lifter)
    return PitchStream(
        items, sample_rate, ratio, n_fft=n_fft, hop=hop_length, window=resolved,
        transients=bool(transients), onset_threshold=onset_threshold, gain=gain,
        link_channels=bool(link_channels), dtype=dtype, device=device,
    )


def _envelope_warp(
    ratio: float, n_fft: int, lifter: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Gain ``E(ratio * k) / E(k)`` per bin: after resampling by ``ratio`` the envelope is back."""

    def gain(magnitude: torch.Tensor) -> torch.Tensor:
        log_env = spectral_envelope(magnitude, n_fft, lifter, log=True)
        k = magnitude.shape[-1]
        where = torch.arange(k, dtype=log_env.dtype, device=log_env.device) * ratio
        where = where.clamp(max=k - 1)
        lo = where.floor().to(torch.int64).clamp(max=k - 2)
        frac = where - lo
        lo = lo.expand_as(log_env)
        warped = torch.lerp(log_env.gather(-1, lo), log_env.gather(-1, lo + 1), frac)
        return torch.exp(warped - log_env)

    return gain
