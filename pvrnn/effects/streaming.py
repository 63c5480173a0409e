"""Streams: :class:`Stretcher` for real-time use, and the pitch-shift pipeline on blocks.

Both run the engine the offline functions run (:mod:`pvrnn.effects.engine`), so the
concatenated output of a stream equals :func:`pvrnn.time_stretch` / :func:`pvrnn.pitch_shift`
of the whole input (to float32 rounding), however the input is cut into blocks.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import torch

from ..dsp.resample import StreamResampler
from ..errors import PvrnnError, check_positive, fail
from .engine import StretchEngine
from .spectra import check_fraction, check_stft

__all__ = ["Stretcher", "PitchStream"]


def _check_factor(factor: Any) -> Any:
    if callable(factor) and not isinstance(factor, torch.Tensor):
        return factor
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real):
        raise fail("factor", factor, "a number > 0 or a callable of time in seconds")
    return check_positive("factor", factor)


class Stretcher:
    """Streaming time-stretch: blocks of audio in, blocks of stretched audio out.

    The same phase-locked vocoder as :func:`pvrnn.time_stretch` with the same settings, fed
    whatever arrives: the concatenation of every :meth:`process` result and :meth:`flush`
    equals ``time_stretch`` of the concatenated input (to float32 rounding), in bounded
    memory however long the stream.

    Args:
        sample_rate (float): Hz.
        factor (float or callable): output duration / input duration, ``> 0``; or a callable
            of time in seconds (a float64 tensor of analysis-frame times) returning one
            positive value per time, evaluated as the frames arrive. It may be changed
            between blocks (:attr:`factor`): the frames not analysed yet use the new value.
        channels (int): rows of every block.
        n_fft, hop_length, window, transients, onset_threshold, link_channels: as
            :func:`pvrnn.time_stretch`.

    Attributes:
        latency (int): input samples of delay. After :meth:`process` has been given ``n``
            samples in all, the output returned so far holds at least the stretch of the first
            ``n - latency`` (``round((n - latency) * factor)`` samples at a constant factor, on
            steady material; onsets read at slope 1 move the map by up to a few hops). It is
            ``n_fft * 3 / 2 + (look_ahead + 2) * hop_length + n_fft / (2 * factor)``: the
            onset analysis needs half a window of future input and one more for its level
            (:func:`pvrnn.effects.onsets.running_peak`), the time map waits
            ``look_ahead`` cells (``2 * round(0.25 s / hop) + 2`` with ``transients``, else 2)
            for the onsets that move it, and the last output frame's second half of a window
            is complete only once the next frames are added.

    Raises:
        PvrnnError: on a bad setting; in :meth:`process`, on a block that is not finite
            float audio with ``channels`` rows, or any call after :meth:`flush`; in
            :meth:`flush`, when fewer than ``n_fft`` samples came in all.

    Example:
        >>> st = pvrnn.Stretcher(44100, factor=1.5)
        >>> out = [st.process(block) for block in blocks]   # (n,) blocks in, (m,) out
        >>> out.append(st.flush())
        >>> y = torch.cat(out)                               # == pvrnn.time_stretch(x, 44100, 1.5)
    """

    def __init__(
        self,
        sample_rate: float,
        factor: float | Callable[[torch.Tensor], Any] = 1.5,
        channels: int = 1,
        *,
        n_fft: int = 2048,
        hop_length: int = 512,
        window: str | torch.Tensor = "hann",
        transients: bool = True,
        onset_threshold: float = 0.4,
        link_channels: bool = False,
    ) -> None:
        self.sample_rate = check_positive("sample_rate", sample_rate)
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise fail("channels", channels, "a whole number of channels >= 1")
        self.channels = channels
        self.n_fft, self.hop_length, self._window = check_stft(n_fft, hop_length, window)
        self.onset_threshold = check_fraction("onset_threshold", onset_threshold)
        self.transients, self.link_channels = bool(transients), bool(link_channels)
        self._factor = _check_factor(factor)
        self._engine: StretchEngine | None = None
        self._flushed = False
        self._flat = channels == 1
        self._n = 0
        self._changed = False
        self._smallest = None if callable(self._factor) else self._factor

    # -- the factor ----------------------------------------------------------------------------
    @property
    def factor(self) -> Any:
        """The stretch factor (a number or a callable) for the frames still to analyse."""
        return self._factor

    @factor.setter
    def factor(self, value: Any) -> None:
        value = _check_factor(value)
        if self._flushed:
            raise PvrnnError("factor: cannot be changed after flush(); expected a new Stretcher")
        if value != self._factor:
            self._changed = True
        self._factor = value
        if not callable(value):
            self._smallest = value if self._smallest is None else min(self._smallest, value)
        if self._engine is not None:
            self._engine.set_factor(value)
            self._engine.uniform = self._engine.uniform and not self._changed

    @property
    def look_ahead(self) -> int:
        """Cells of the time map (``hop_length`` input samples each) a knot waits for."""
        reach = max(1, int(round(0.25 * self.sample_rate / self.hop_length)))
        return 2 * reach + 2 if self.transients else 2

    @property
    def latency(self) -> int:
        """Input samples of delay (see the class docstring), for the smallest factor so far."""
        smallest = 1.0 if self._smallest is None else self._smallest
        half = self.n_fft // 2
        return int(math.ceil(half + self.n_fft + (self.look_ahead + 2) * self.hop_length
                             + half / smallest))

    # -- blocks --------------------------------------------------------------------------------
    def _check_block(self, block: Any) -> torch.Tensor:
        if self._flushed:
            raise PvrnnError("process: called after flush(); expected a new Stretcher for a new "
                             "stream")
        if not isinstance(block, torch.Tensor):
            raise fail("block", block, f"a tensor of audio samples, ({self.channels}, n)"
                       + (" or (n,)" if self.channels == 1 else ""))
        if block.dtype not in (torch.float32, torch.float64):
            raise fail("block", block, "float32 or float64 samples")
        if block.dim() == 1 and self.channels == 1:
            block = block.unsqueeze(0)
            self._flat = True
        elif block.dim() == 2 and block.shape[0] == self.channels:
            self._flat = False
        else:
            raise fail("block", block, f"a block of {self.channels} channel(s), "
                       f"({self.channels}, n)" + (" or (n,)" if self.channels == 1 else ""))
        if not bool(torch.isfinite(block).all()):
            raise fail("block", block, "finite samples (found NaN or inf)")
        if self._engine is not None and (block.dtype != self._engine.dtype
                                         or block.device != self._engine.device):
            raise fail("block", block, f"{self._engine.dtype} samples on "
                       f"{self._engine.device} like the first block")
        return block

    def _start(self, like: torch.Tensor) -> StretchEngine:
        if self._engine is None:
            self._engine = StretchEngine(
                self.channels, self.sample_rate, self._factor, n_fft=self.n_fft,
                hop=self.hop_length, window=self._window, transients=self.transients,
                onset_threshold=self.onset_threshold, link_channels=self.link_channels,
                dtype=like.dtype, device=like.device,
            )
        return self._engine

    def _shape(self, out: torch.Tensor) -> torch.Tensor:
        return out[0] if self._flat else out

    def process(self, block: torch.Tensor) -> torch.Tensor:
        """Stretch the next block ``(channels, n)`` (or ``(n,)`` for one channel).

        Returns:
            Tensor: the output samples now complete, ``(channels, m)`` (``(m,)`` for a 1-D
            block); ``m`` may be 0.
        """
        block = self._check_block(block)
        self._n += block.shape[-1]
        return self._shape(self._start(block).feed(block))

    def flush(self) -> torch.Tensor:
        """End the stream: the rest of the output. The Stretcher cannot be used afterwards."""
        if self._flushed:
            raise PvrnnError("flush: called twice; expected a new Stretcher for a new stream")
        if self._n < self.n_fft:
            raise PvrnnError(f"flush: the stream had {self._n} samples, fewer than "
                             f"n_fft={self.n_fft}; expected at least {self.n_fft}")
        self._flushed = True
        return self._shape(self._engine.finish())


class PitchStream:
    """Pitch shift on blocks: the engine at the pitch ratio (onsets not read at slope 1),
    then :class:`pvrnn.dsp.resample.StreamResampler` reading it ``ratio`` samples per output
    sample. The offline :func:`pvrnn.pitch_shift` runs this too.
    """

    def __init__(self, items: int, sample_rate: float, ratio: float, *, n_fft: int, hop: int,
                 window: Any, transients: bool, onset_threshold: float,
                 gain: Callable[[torch.Tensor], torch.Tensor] | None, link_channels: bool,
                 dtype: torch.dtype, device: Any) -> None:
        self.engine = StretchEngine(
            items, sample_rate, ratio, n_fft=n_fft, hop=hop, window=window,
            transients=transients, onset_threshold=onset_threshold, gain=gain,
            link_channels=link_channels, protect=False, dtype=dtype, device=device,
        )
        self.resampler = StreamResampler(ratio, items, dtype, device)
        self.n = 0

    def feed(self, audio: torch.Tensor) -> torch.Tensor:
        self.n += audio.shape[-1]
        return self.resampler.feed(self.engine.feed(audio))

    def finish(self) -> torch.Tensor:
        rest = self.resampler.feed(self.engine.finish())
        return torch.cat([rest, self.resampler.finish(self.n)], dim=1)
