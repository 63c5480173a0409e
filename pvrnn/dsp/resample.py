"""Band-limited resampling: one resampler for file loading and for pitch shifting.

FFT interpolation is the ideal low-pass: every partial below both Nyquist frequencies passes
unchanged and everything above the new one is removed, with no filter transition band, no
passband ripple and no aliasing (a polyphase FIR such as ``scipy.signal.resample_poly`` has all
three; ``tests/dsp/test_resample.py`` measures both). The signal is zero-padded to twice its
length so that its ends do not wrap into each other. The ratio is any real number (pitch
shifting needs ``2 ** (semitones / 12)``), the length exact, and the work is torch on the
input's device.

It needs the whole signal, though. Streams (pitch shifting of any length, in bounded memory)
use :class:`StreamResampler`, a windowed-sinc interpolator of a fixed ratio whose every output
depends on a few dozen input samples around it: a transition band below the lower Nyquist
frequency (``SINC_ROLLOFF``), about -90 dB of stopband, and the same result however the stream
is cut.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import check_audio, check_int

__all__ = ["resample", "StreamResampler", "resample_stream"]


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


# -- streaming: a windowed-sinc resampler for a fixed ratio --------------------------------------
#: Zero crossings of the sinc kernel on each side (at the passband's scale).
SINC_ZEROS = 32
#: Kernel table resolution: phases per input sample (linear interpolation in between).
SINC_PHASES = 512
#: The cutoff as a fraction of the lower Nyquist frequency (the transition band sits below it).
SINC_ROLLOFF = 0.94
#: Kaiser window shape: ~ -90 dB stopband.
SINC_BETA = 9.0
#: Output samples computed per batch (bounded memory).
SINC_BLOCK = 1 << 13


class StreamResampler:
    """Band-limited resampling of a stream by a fixed ratio, block by block.

    Output sample ``i`` is the input interpolated at time ``i * step`` (input samples) by a
    Kaiser-windowed sinc of ``SINC_ZEROS`` zero crossings on each side, low-passed at
    ``SINC_ROLLOFF`` of the lower of the two Nyquist frequencies (so downsampling does not
    alias). The kernel is tabulated at ``SINC_PHASES`` phases per sample (linear interpolation
    in between) and each phase is normalised to unit DC gain. Every output depends only on the
    ``2 * half_width`` input samples around it, so the result is the same however the input is
    cut into blocks; input before the start and after the end is silence.

    Args:
        step (float): input samples per output sample (``> 0``): ``2 ** (semitones / 12)``
            turns a stretched signal back into a pitch shift; ``file_rate / new_rate``
            converts a sample rate.
        items (int): signals processed together (rows of every block).
        dtype, device: of the audio.

    Example:
        >>> rs = StreamResampler(44100 / 16000, items=1)
        >>> y = torch.cat([rs.feed(block) for block in blocks] + [rs.finish(length)], dim=1)
    """

    def __init__(self, step: float, items: int = 1, dtype: torch.dtype = torch.float32,
                 device: Any = "cpu") -> None:
        self.step = float(step)
        cutoff = SINC_ROLLOFF * min(1.0, 1.0 / self.step)  # of the input's Nyquist
        self.half_width = width = int(math.ceil(SINC_ZEROS / cutoff))
        taps = torch.arange(-width + 1, width + 1, dtype=torch.float64)  # offsets of the taps
        phase = torch.arange(SINC_PHASES + 1, dtype=torch.float64) / SINC_PHASES
        t = phase[:, None] - taps[None, :]  # distance of each tap from the output time
        kernel = cutoff * torch.sinc(cutoff * t)
        inside = (t.abs() / width).clamp(max=1.0)
        kernel = kernel * torch.special.i0(SINC_BETA * torch.sqrt(1 - inside**2))
        kernel = kernel / kernel.sum(-1, keepdim=True)  # unit DC gain at every phase
        self.table = kernel.to(device=device, dtype=dtype)  # (P + 1, 2 W)
        self.items = items
        self.buf = torch.zeros(items, width, dtype=dtype, device=device)
        self.buf_pos = -width  # input index of buf[:, 0]
        self.n_in = 0
        self.done = 0  # outputs produced

    def _produce(self, stop: int) -> torch.Tensor:
        width = self.half_width
        if stop <= self.done:
            return self.buf.new_zeros(self.items, 0)
        pieces = []
        windows = self.buf.unfold(-1, 2 * width, 1)  # (B, L - 2W + 1, 2W), a view
        for i0 in range(self.done, stop, SINC_BLOCK):  # blocks of outputs: bounded memory
            i1 = min(stop, i0 + SINC_BLOCK)
            x = torch.arange(i0, i1, dtype=torch.float64, device=self.buf.device) * self.step
            base = torch.floor(x)
            pos = (x - base) * SINC_PHASES
            row = torch.floor(pos)
            a = (pos - row).to(self.table.dtype).unsqueeze(-1)
            row = row.to(torch.int64).clamp(max=SINC_PHASES - 1)
            weights = torch.lerp(self.table[row], self.table[row + 1], a)  # (L, 2W)
            first = base.to(torch.int64) - (width - 1) - self.buf_pos
            pieces.append((windows[:, first] * weights).sum(-1))
        self.done = max(self.done, stop)
        if not pieces:
            return self.buf.new_zeros(self.items, 0)
        return torch.cat(pieces, dim=1)

    def _trim(self) -> None:
        keep = int(math.floor(self.done * self.step)) - self.half_width  # next output's first
        drop = keep - self.buf_pos
        if drop > 0:
            self.buf = self.buf[:, drop:]
            self.buf_pos = keep

    def feed(self, audio: torch.Tensor) -> torch.Tensor:
        """Append ``(items, m)`` input samples; return the outputs now computable."""
        self.buf = torch.cat([self.buf, audio.to(self.buf.dtype)], dim=1)
        self.n_in += audio.shape[-1]
        # Output i needs input up to floor(i step) + W.
        last = self.n_in - 1 - self.half_width  # largest usable floor(i step)
        stop = 0 if last < 0 else int(math.floor(last / self.step)) + 1
        while stop > 0 and math.floor(stop * self.step) > last:  # float safety
            stop -= 1
        while math.floor(stop * self.step) <= last:
            stop += 1
        out = self._produce(max(self.done, stop))
        self._trim()
        return out

    def finish(self, length: int) -> torch.Tensor:
        """The input has ended (silence after it): the outputs up to ``length`` in all."""
        need = int(math.floor(max(0, length - 1) * self.step)) + self.half_width + 1
        pad = need - (self.buf_pos + self.buf.shape[1])
        if pad > 0:
            self.buf = torch.nn.functional.pad(self.buf, (0, pad))
        return self._produce(length)


def resample_stream(audio: torch.Tensor, step: float, length: int) -> torch.Tensor:
    """``audio`` ``(B, n)`` read at times ``i * step`` for ``i < length``: the
    :class:`StreamResampler` run over the whole signal (the offline twin of a stream)."""
    rs = StreamResampler(step, audio.shape[0], audio.dtype, audio.device)
    chunk = 1 << 16
    pieces = [rs.feed(audio[:, i : i + chunk]) for i in range(0, audio.shape[-1], chunk)]
    pieces.append(rs.finish(length))
    return torch.cat(pieces, dim=1)
