"""Band-limited resampling: one resampler for file loading and for pitch shifting.

FFT interpolation is the ideal low-pass: every partial below both Nyquist frequencies passes
unchanged and everything above the new one is removed, with no filter transition band, no
passband ripple and no aliasing (a polyphase FIR such as ``scipy.signal.resample_poly`` has all
three; ``tests/dsp/test_resample.py`` measures both). The signal is zero-padded to twice its
length so that its ends do not wrap into each other. The ratio is any real number (pitch
shifting needs ``2 ** (semitones / 12)``), the length exact, and the work is torch on the
input's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import check_audio, check_int

__all__ = ["resample"]


def resample(audio: torch.Tensor, length: int) -> torch.Tensor:
    """Band-limited resampling of ``audio`` ``(..., time)`` to exactly ``length`` samples.

    The output's sample ``i`` is the band-limited interpolation of the input at time
    ``i * time / length`` (in input samples): read at ``rate * length / time`` Hz it sounds as
    the input at ``rate`` Hz. Content above the lower of the two Nyquist frequencies is removed.

    Args:
        audio (Tensor): ``(..., time)`` finite float waveform.
        length (int): samples wanted, ``>= 1``.

    Returns:
        Tensor: ``(..., length)``, dtype and device of ``audio``; a copy when ``length == time``.

    Raises:
        PvrnnError: on bad audio or length.

    Example:
        >>> audio, rate = pvrnn.examples.load("clarinet")                # 44100 Hz
        >>> y = resample(audio, round(audio.shape[-1] * 16000 / rate))  # 16000 Hz
    """
    audio = check_audio(audio)
    length = check_int("length", length, low=1)
    n = audio.shape[-1]
    if length == n:
        return audio.clone()
    spec = torch.fft.rfft(audio, n=2 * n)
    keep = length + 1  # bins of a 2 * length signal
    if keep <= spec.shape[-1]:
        spec = spec[..., :keep]
    else:
        spec = F.pad(spec, (0, keep - spec.shape[-1]))
    out = torch.fft.irfft(spec, n=2 * length) * (length / n)
    return out[..., :length].contiguous()
