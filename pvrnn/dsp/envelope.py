"""Spectral envelopes by cepstral smoothing, with a lifter that follows the sound's pitch.

One implementation for the effects that move or impose envelopes: formant-preserving
:func:`pvrnn.pitch_shift` and envelope cross-synthesis (:func:`pvrnn.cross_synthesize` with
``envelope=True``). The cepstral cutoff (the lifter) must stay below half the period of the
highest pitch involved, or the envelope resolves the harmonics instead of running along their
peaks: :func:`pitch_lifter` measures it from the sounds themselves.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn.functional as F

from ..errors import check_int, check_positive, fail

__all__ = ["spectral_envelope", "pitch_lifter", "pitch_lifter_blocks", "lifter_samples",
           "MAX_LIFTER_SECONDS", "LIFTER_BLOCK"]

#: The longest lifter (seconds): formants, not harmonics, for pitches up to ~330 Hz.
MAX_LIFTER_SECONDS = 1.5e-3


def spectral_envelope(
    magnitude: torch.Tensor, n_fft: int, lifter: int, *, log: bool = False
) -> torch.Tensor:
    """Spectral envelope of magnitude spectra by cepstral smoothing.

    The valleys between harmonics are first filled (a running maximum of the log magnitude
    over ``n_fft / (2 lifter)`` bins), then the result is taken to the real cepstrum, every
    quefrency of ``lifter`` samples or more is removed (the harmonic fine structure lives
    there), and the rest goes back to a smooth log spectrum that runs along the peaks of the
    harmonics. It follows the harmonics of pitches below ``sample_rate / (2 lifter)`` Hz.

    Args:
        magnitude (Tensor): ``(..., n_bins)`` linear magnitudes, ``n_bins = n_fft // 2 + 1``.
        n_fft (int): the FFT size the spectra come from.
        lifter (int): cutoff quefrency in samples, ``1 .. n_fft // 2``; e.g. 1.5 ms of samples
            keeps formants and drops the harmonics of pitches below ~650 Hz.
        log (bool): return the natural-log envelope instead of the linear one.

    Returns:
        Tensor: ``(..., n_bins)`` envelope, same dtype (linear, or natural log if ``log``).

    Raises:
        PvrnnError: when the shapes or ``lifter`` do not fit ``n_fft``.
    """
    n_fft = check_int("n_fft", n_fft, low=2)
    if not isinstance(magnitude, torch.Tensor) or magnitude.shape[-1] != n_fft // 2 + 1:
        raise fail("magnitude", magnitude, f"a tensor (..., n_fft // 2 + 1 = {n_fft // 2 + 1})")
    lifter = check_int("lifter", lifter, low=1, high=n_fft // 2)
    peak = magnitude.amax(-1, keepdim=True)
    floor = (peak * 1e-5).clamp_min(torch.finfo(magnitude.dtype).tiny)  # -100 dB below the peak
    log_mag = torch.log(torch.maximum(magnitude, floor))
    # Fill the valleys between harmonics first (a running max over half the smoothing
    # scale), so the smoothing follows the harmonic peaks rather than their mean.
    width = max(1, n_fft // (4 * lifter)) * 2 + 1
    shape = log_mag.shape
    log_mag = F.max_pool1d(log_mag.reshape(-1, 1, shape[-1]), width, stride=1,
                           padding=width // 2).reshape(shape)
    ceps = torch.fft.irfft(log_mag, n=n_fft)
    q = torch.arange(n_fft, device=magnitude.device)
    keep = (q < lifter) | (q > n_fft - lifter)
    smooth = torch.fft.rfft(ceps * keep.to(ceps.dtype), n=n_fft).real
    return smooth if log else torch.exp(smooth)


#: Samples per block of the pitch measurement (each block analysed on its own): bounded
#: memory on long sounds, and the same blocks whether the sound is in memory or read from disk.
LIFTER_BLOCK = 1 << 20
#: Frames of a block measured at a time: YIN's float64 work is ~100x a frame's samples (a whole
#: block at once peaked at 260 MB), and each frame reads only the samples around it.
_F0_FRAMES = 256


def pitch_lifter(*sounds: torch.Tensor, sample_rate: float, ratio: float = 1.0) -> float:
    """The lifter (seconds) for ``sounds``: ``min(1.5 ms, 0.5 / highest pitch)``.

    The highest pitch is the largest median YIN pitch (:func:`pvrnn.metrics.estimate_f0`) of
    the sounds, times ``ratio`` when that is above 1 (a pitch shift up raises it); 1.5 ms when
    no sound has a pitch. (A fixed 1.5 ms made a clarinet A4 shifted up a fifth lose its
    fundamental: the envelope followed its odd harmonics.) Each sound is measured in blocks of
    ``LIFTER_BLOCK`` samples (:func:`pitch_lifter_blocks`).

    Args:
        sounds (Tensor): waveforms ``(..., time)``.
        sample_rate (float): Hz, of all of them.
        ratio (float): the pitch ratio the envelope will be applied at.

    Returns:
        float: seconds, in ``(0, 1.5e-3]``.
    """
    blocks = [[audio[..., i : i + LIFTER_BLOCK] for i in range(0, audio.shape[-1], LIFTER_BLOCK)]
              for audio in sounds]
    return pitch_lifter_blocks(*blocks, sample_rate=sample_rate, ratio=ratio)


def pitch_lifter_blocks(*sounds: Iterable[torch.Tensor], sample_rate: float,
                        ratio: float = 1.0) -> float:
    """:func:`pitch_lifter` of sounds given as blocks ``(..., <= LIFTER_BLOCK)`` (a file read
    block by block): each sound's median is over the voiced frames of all its blocks."""
    hop = max(1, int(round(0.01 * sample_rate)))
    frame = max(2, int(round(0.046 * sample_rate)))
    highest = 0.0
    for blocks in sounds:  # a handful of sounds, each in blocks
        voiced = []
        for audio in blocks:
            if audio.shape[-1] < frame:
                continue
            f0 = block_f0(audio.reshape(-1, audio.shape[-1]), sample_rate, hop, frame)
            voiced.append(f0[~f0.isnan()])
        voiced = torch.cat(voiced) if voiced else torch.zeros(0)
        if voiced.numel():
            highest = max(highest, float(voiced.median()))
    if highest == 0.0:
        return MAX_LIFTER_SECONDS
    return min(MAX_LIFTER_SECONDS, 0.5 / (highest * max(1.0, ratio)))


def block_f0(audio: torch.Tensor, sample_rate: float, hop: int, frame: int) -> torch.Tensor:
    """:func:`pvrnn.metrics.estimate_f0` of one block ``(B, n)`` (the pitch lifter's settings),
    ``_F0_FRAMES`` frames at a time: each run is measured on its samples and ``frame`` samples
    of context each side (the block's own zero-padded ends where it has none), so the values
    are those of the whole block at once, in a fraction of the memory."""
    from ..metrics import estimate_f0

    n = audio.shape[-1]
    n_frames = 1 + n // hop
    context = -(-frame // hop)  # frames' worth of samples around a run
    runs = []
    for t0 in range(0, n_frames, _F0_FRAMES):  # runs of frames: bounded memory
        t1 = min(n_frames, t0 + _F0_FRAMES)
        s0 = max(0, t0 - context)
        piece = audio[:, s0 * hop : min(n, (t1 - 1 + context) * hop + 1)]
        f0 = estimate_f0(piece, sample_rate, hop_length=hop, frame_length=frame,
                         fmin=max(40.0, 2.2 * sample_rate / frame))
        runs.append(f0[:, t0 - s0 : t1 - s0])
    return torch.cat(runs, dim=-1)


def lifter_samples(
    envelope_lifter: Any, sample_rate: float, n_fft: int, *sounds: torch.Tensor,
    ratio: float = 1.0,
) -> int:
    """The lifter in samples, ``1 .. n_fft // 2``, from seconds or, for ``None``, from the
    pitch of ``sounds`` (:func:`pitch_lifter`).

    Raises:
        PvrnnError: when ``envelope_lifter`` is not ``None`` or a positive number of seconds.
    """
    if envelope_lifter is None:
        envelope_lifter = pitch_lifter(*sounds, sample_rate=sample_rate, ratio=ratio)
    seconds = check_positive("envelope_lifter", envelope_lifter)
    return max(1, min(n_fft // 2, int(round(seconds * sample_rate))))
