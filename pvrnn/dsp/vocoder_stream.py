"""The phase vocoder on blocks: audio blocks to frames, frames to audio blocks, bounded memory.

:class:`AnalysisStream` computes the frames :meth:`pvrnn.PhaseVocoder.analyze` gives for a
whole signal of known length, a run of frames at a time, from blocks of the signal however it
is cut (``torch.stft(center=True)``'s reflected ends included); :class:`SynthesisStream` turns
runs of frames back into the audio :meth:`pvrnn.PhaseVocoder.synthesize` gives, returning the
samples as soon as no later frame overlaps them. Both keep only about one window of audio and
the state that crosses a run boundary (the previous frame's phase, the overlap-add tail), and
run the vocoder's own kernels (:mod:`pvrnn.dsp.kernels`) and overlap-add (:mod:`pvrnn.dsp.ola`),
so their results equal the whole-signal ones to float32 rounding.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import PvrnnError, check_int, fail
from . import kernels, ola
from .frames import TWO_PI, bin_advance
from .vocoder import PhaseVocoder

__all__ = ["AnalysisStream", "SynthesisStream"]

_PI = TWO_PI / 2


class _Settings:
    """What both streams share: the checked vocoder, ``rows`` signals of ``length`` samples,
    the window and bin advance in their dtype and on their device."""

    def __init__(self, vocoder: Any, rows: Any, length: Any, dtype: torch.dtype,
                 device: Any) -> None:
        if not isinstance(vocoder, PhaseVocoder):
            raise fail("vocoder", vocoder, "a pvrnn.PhaseVocoder")
        if vocoder.win_length != vocoder.n_fft:
            raise fail("vocoder.win_length", vocoder.win_length,
                       f"n_fft={vocoder.n_fft} (a full-length window)")
        self.vocoder = vocoder
        self.rows = check_int("rows", rows, low=1)
        self.length = check_int("length", length, low=vocoder.n_fft)
        self.n_fft, self.hop = vocoder.n_fft, vocoder.hop_length
        self.half = self.n_fft // 2
        self.n_frames = vocoder.n_frames(self.length)
        self.dtype, self.device = dtype, torch.device(device)
        self.window = vocoder.window.to(device=self.device, dtype=dtype)
        self.advance = bin_advance(vocoder.n_bins, self.n_fft, self.hop, self.device)
        self.done = 0  # frames taken or added


class AnalysisStream(_Settings):
    """Frames of ``rows`` signals of ``length`` samples each, from blocks fed in order.

    Frame ``f`` (centred on sample ``f * hop_length``, as :meth:`PhaseVocoder.analyze`) is
    ready once the signal is known up to half a window past its centre; the frames of the
    last half window wait for the end, where the signal is reflected as ``torch.stft`` does.

    Args:
        vocoder (PhaseVocoder): the analysis settings (a window of ``n_fft`` samples).
        rows (int): signals per block. length (int): samples of each, ``>= n_fft``.
        dtype, device: of the blocks.

    Example:
        >>> stream = AnalysisStream(pv, 1, n, dtype=torch.float32, device="cpu")
        >>> stream.feed(block)                               # (rows, m)
        >>> magnitude, deviation, phase = stream.take(stream.ready())
    """

    def __init__(self, vocoder: PhaseVocoder, rows: int, length: int, *, dtype: torch.dtype,
                 device: Any) -> None:
        super().__init__(vocoder, rows, length, dtype, device)
        self.hz_per_radian = vocoder.sample_rate / (TWO_PI * self.hop)
        self.buf = torch.zeros(self.rows, 0, dtype=dtype, device=self.device)
        self.pos: int | None = None  # padded position of buf[:, 0]; None before the head
        self.n_in = 0

    def feed(self, block: torch.Tensor) -> None:
        """Append ``(rows, m)`` samples."""
        m = block.shape[-1]
        if m == 0:
            return
        if self.n_in + m > self.length:
            raise PvrnnError(f"block: {self.n_in + m} samples fed to a stream of {self.length}; "
                             "expected at most the length it was made for")
        self.n_in += m
        self.buf = torch.cat([self.buf, block.to(device=self.device, dtype=self.dtype)], dim=1)
        if self.pos is None and self.n_in > self.half:  # the reflected head is known
            self.buf = torch.cat([self.buf[:, 1 : self.half + 1].flip(-1), self.buf], dim=1)
            self.pos = 0
        if self.n_in == self.length:  # the reflected tail
            self.buf = torch.cat([self.buf, self.buf[:, -self.half - 1 : -1].flip(-1)], dim=1)

    def ready(self) -> int:
        """Frames that can be taken now (all of them once the signal is complete). The first
        run holds at least two frames (frame 0 takes frame 1's frequency)."""
        if self.pos is None:
            return 0
        if self.n_in == self.length:
            return self.n_frames
        known = self.pos + self.buf.shape[1]
        ready = min(self.n_frames, max(0, (known - self.n_fft) // self.hop + 1))
        return ready if self.done or ready >= 2 else 0

    def take(self, stop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frames ``[done, stop)``: magnitude and deviation (Hz) ``(rows, F, n_bins)`` and the
        phase of frame ``done`` ``(rows, n_bins)`` (the start phase, for the first run), as
        :meth:`PhaseVocoder.analyze` gives them."""
        if not self.done < stop <= self.ready():
            raise fail("stop", stop, f"a frame in ({self.done}, {self.ready()}]")
        first = max(0, self.done - 1)  # one frame before: the first frame's phase advance
        lo = first * self.hop - self.pos
        hi = (stop - 1) * self.hop + self.n_fft - self.pos
        spec = torch.stft(self.buf[:, lo:hi], self.n_fft, self.hop, self.n_fft, self.window,
                          center=False, return_complex=True)
        magnitude, deviation, phase = kernels.analysis(
            spec.transpose(-1, -2), self.advance, self.hz_per_radian, overwrite=True)
        if self.done:
            magnitude, deviation = magnitude[:, 1:], deviation[:, 1:]
        self.done = stop
        # Keep what the next run reads (from the last frame taken on), and the last half
        # window + 1 for the tail.
        keep = min((stop - 1) * self.hop, self.pos + self.buf.shape[1] - self.half - 1)
        if self.n_in < self.length and keep > self.pos:
            self.buf = self.buf[:, keep - self.pos :]
            self.pos = keep
        return magnitude, deviation, phase


class SynthesisStream(_Settings):
    """Audio of ``rows`` signals of ``length`` samples from runs of frames added in order.

    The phase is integrated from the start phase given with the first run as
    :meth:`PhaseVocoder.synthesize` does (in float64; the last frame's phase is carried from
    run to run), and the frames are overlap-added and normalised by the squared window's
    overlap-add over all ``1 + length // hop_length`` frames.

    Args:
        vocoder (PhaseVocoder): the synthesis settings (a window of ``n_fft`` samples).
        rows (int): signals. length (int): samples of each, ``>= n_fft``.
        dtype, device: of the frames.

    Raises:
        PvrnnError: when the window and hop cannot be inverted over ``length`` samples.
    """

    def __init__(self, vocoder: PhaseVocoder, rows: int, length: int, *, dtype: torch.dtype,
                 device: Any) -> None:
        super().__init__(vocoder, rows, length, dtype, device)
        table = ola.envelope_table(vocoder.window.cpu(), self.hop)
        if ola.envelope_minimum(table, self.n_frames, self.half, self.half + self.length) < 1e-11:
            raise fail("hop_length", self.hop, f"a hop the window of {self.n_fft} samples "
                       "can be inverted at (its overlap-added square vanishes)")
        self.table = table.to(self.device)
        self.radians_per_hz = TWO_PI * self.hop / vocoder.sample_rate
        self.phase: torch.Tensor | None = None  # float64 phase of frame done - 1
        self.acc = torch.zeros(self.rows, 0, dtype=dtype, device=self.device)
        self.acc_pos = 0  # padded position of acc[:, 0]
        self.emitted = self.half  # padded position of the next sample to return

    def add(self, magnitude: torch.Tensor, deviation: torch.Tensor,
            start_phase: torch.Tensor | None = None) -> torch.Tensor:
        """Add frames ``[done, done + F)``, ``(rows, F, n_bins)`` (``start_phase``
        ``(rows, n_bins)`` with the first run); return the samples now complete ``(rows, m)``."""
        n = magnitude.shape[1]
        if self.done + n > self.n_frames:
            raise fail("magnitude", magnitude, f"at most {self.n_frames - self.done} more frames")
        if self.done == 0:
            if start_phase is None:
                raise fail("start_phase", start_phase, "the first frame's phase (rows, n_bins)")
            start = start_phase.to(torch.float64)
        else:  # phase[t] = phase[t - 1] + advance + radians_per_hz * deviation[t]
            start = deviation[:, 0].to(torch.float64, copy=True).mul_(self.radians_per_hz)
            start.add_(self.advance).add_(self.phase)
        spec = kernels.spectrum(magnitude, deviation, start, self.advance, self.radians_per_hz)
        last = deviation[:, 1:].sum(1, dtype=torch.float64).mul_(self.radians_per_hz)
        last.add_(self.advance, alpha=n - 1).add_(start).add_(_PI)
        self.phase = last.remainder_(TWO_PI).sub_(_PI)
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=-1).mul_(self.window)
        offset = self.done * self.hop - self.acc_pos
        need = offset + (n - 1) * self.hop + self.n_fft
        if need > self.acc.shape[1]:
            self.acc = torch.nn.functional.pad(self.acc, (0, need - self.acc.shape[1]))
        ola.overlap_add(frames, self.hop, out=self.acc, offset=offset)
        self.done += n
        # Samples before the next frame's start are complete (all of them after the last).
        end = self.acc_pos + self.acc.shape[1] if self.done == self.n_frames else \
            self.done * self.hop
        return self._emit(min(end, self.half + self.length))

    def _emit(self, end: int) -> torch.Tensor:
        a = self.emitted
        if end <= a:
            return self.acc.new_zeros(self.rows, 0)
        span = self.acc[:, a - self.acc_pos : end - self.acc_pos]
        out = span / ola.envelope(self.table, self.n_frames, a, end).to(self.dtype)
        self.emitted = end
        drop = min(end, self.done * self.hop) - self.acc_pos
        if drop > 0:
            self.acc = self.acc[:, drop:]
            self.acc_pos += drop
        return out

    def finish(self) -> torch.Tensor:
        """Check that every frame came; the samples not returned yet (none, normally)."""
        if self.done != self.n_frames:
            raise PvrnnError(f"finish: {self.done} of {self.n_frames} frames were added; "
                             "expected all of them")
        return self._emit(self.half + self.length)
