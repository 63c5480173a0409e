"""Cross-synthesis: one sound's frequencies driven by another's magnitudes or changes.

Both sounds are analysed by :class:`~pvrnn.PhaseVocoder` into frames; the envelope mode uses
the spectral envelope of :mod:`pvrnn.dsp.envelope` with the same pitch-following lifter as
formant-preserving :func:`pvrnn.pitch_shift`.

Everything streams: the sounds are read in blocks (:class:`CrossStream`: the analysis and
synthesis of :mod:`pvrnn.dsp.vocoder_stream`, a run of frames at a time, with the running
sums of the deltas mode carried from run to run), the modulator is fitted to the carrier's
length block by block (looped, cut, or through :class:`pvrnn.Stretcher`), and the one step
that needs a whole sound, the median pitch behind the envelope lifter, is a first pass over
both sounds in the blocks :func:`pvrnn.dsp.envelope.pitch_lifter` uses. So
:func:`cross_synthesize` and ``pvrnn cross`` from file to file give the same result, in
memory bounded however long the sounds.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import torch

from ..dsp.envelope import LIFTER_BLOCK, lifter_samples, pitch_lifter_blocks, spectral_envelope
from ..dsp.vocoder import PhaseVocoder
from ..dsp.vocoder_stream import AnalysisStream, SynthesisStream
from ..errors import PvrnnError, check_choice, check_positive, fail
from .spectra import BLOCK_ELEMENTS, check_input, check_stft
from .streaming import Stretcher
from .stretch import FEED_SAMPLES, run_engine

__all__ = ["cross_synthesize", "CrossStream", "Sound", "cross_pipeline"]

_MODES = ("spectral", "deltas")
_FITS = ("error", "loop", "trim", "stretch")


class Sound(NamedTuple):
    """A sound read in blocks: ``blocks(size)`` yields ``(*lead, <= size)`` blocks from its
    start (every call starts again), ``length`` samples in all."""

    blocks: Callable[[int], Iterable[torch.Tensor]]
    lead: tuple[int, ...]
    length: int

    @classmethod
    def of(cls, audio: torch.Tensor) -> Sound:
        """A tensor ``(..., time)`` in blocks (views)."""
        n = audio.shape[-1]
        return cls(lambda size: (audio[..., i : i + size] for i in range(0, n, size)),
                   tuple(audio.shape[:-1]), n)


def _rechunk(blocks: Iterable[torch.Tensor], size: int, total: int) -> Iterator[torch.Tensor]:
    """The first ``total`` samples of ``blocks``, in blocks of exactly ``size`` (the last one
    shorter)."""
    pending: list[torch.Tensor] = []
    have = sent = 0
    for block in blocks:
        block = block[..., : total - sent - have]
        if block.shape[-1]:
            pending.append(block)
            have += block.shape[-1]
        while have >= size or (have and sent + have == total):
            joined = pending[0] if len(pending) == 1 else torch.cat(pending, dim=-1)
            out = joined[..., :size]
            pending = [joined[..., size:]] if joined.shape[-1] > size else []
            have -= out.shape[-1]
            sent += out.shape[-1]
            yield out
        if sent == total:
            return


def _looped(sound: Sound, size: int) -> Iterator[torch.Tensor]:
    while True:  # stopped by _rechunk at the carrier's length
        yield from sound.blocks(size)


def _stretched(sound: Sound, n: int, sample_rate: float, n_fft: int, hop_length: int,
               window: Any, dtype: torch.dtype) -> Iterator[torch.Tensor]:
    """``sound`` time-stretched to ``n`` samples: :func:`pvrnn.time_stretch`'s result."""
    rows = math.prod(sound.lead)
    stretcher = Stretcher(sample_rate, n / sound.length, rows, n_fft=n_fft,
                          hop_length=hop_length, window=window)
    for block in sound.blocks(FEED_SAMPLES):
        yield stretcher.process(block.reshape(rows, -1).to(dtype)).reshape(*sound.lead, -1)
    yield stretcher.flush().reshape(*sound.lead, -1)


def _fitted_length(carrier: Sound, modulator: Sound, fit: str) -> int:
    n_c, n_m = carrier.length, modulator.length
    if n_c == n_m:
        return n_c
    if fit == "error":
        raise PvrnnError(
            f"modulator has {n_m} samples but carrier has {n_c}: expected equal lengths, or "
            f"fit='loop' (repeat or cut the modulator), 'trim' (cut both to the shorter) or "
            f"'stretch' (time-stretch the modulator to the carrier's length)"
        )
    return min(n_c, n_m) if fit == "trim" else n_c


class CrossStream:
    """Cross-synthesis of ``items`` pairs of signals of ``length`` samples, fed in blocks.

    :meth:`feed` takes the next samples of the carrier and of the modulator (any counts,
    either may be empty) and returns the output now complete; the frames are combined as
    soon as both sounds have them, a run of at most ``BLOCK_ELEMENTS`` bins at a time.

    Args:
        items (int): rows of every block. sample_rate (float): Hz. length (int): samples
            of each sound (and of the output), ``>= n_fft``.
        mode (str): ``"spectral"`` or ``"deltas"`` (see :func:`cross_synthesize`).
        lifter (int, optional): spectral mode: impose the modulator's envelope with this
            cepstral lifter (samples); ``None`` imposes its magnitudes.
        every (int, optional): deltas mode: frames between resets to the carrier.
        n_fft, hop_length, window: the analysis settings (validated by the caller).
        dtype, device: of the blocks.
    """

    def __init__(self, items: int, sample_rate: float, length: int, *, mode: str,
                 lifter: int | None, every: int | None, n_fft: int, hop_length: int,
                 window: Any, dtype: torch.dtype, device: Any) -> None:
        pv = PhaseVocoder(n_fft, hop_length, window=window, sample_rate=sample_rate)
        settings = dict(dtype=dtype, device=device)
        self.carrier = AnalysisStream(pv, items, length, **settings)
        self.modulator = AnalysisStream(pv, items, length, **settings)
        self.out = SynthesisStream(pv, items, length, **settings)
        self.mode, self.lifter, self.n_fft = mode, lifter, n_fft
        self.every = every or self.out.n_frames  # no resets: frame 0 starts the only segment
        self.block = max(16, BLOCK_ELEMENTS // (items * pv.n_bins))
        self.items, self.dtype, self.device = items, dtype, torch.device(device)
        self._state: dict[str, torch.Tensor] = {}

    def feed(self, carrier: torch.Tensor, modulator: torch.Tensor) -> torch.Tensor:
        """Append ``(items, m)`` carrier and ``(items, m')`` modulator samples; return the
        output samples now complete, ``(items, k)``."""
        self.carrier.feed(carrier)
        self.modulator.feed(modulator)
        stop = min(self.carrier.ready(), self.modulator.ready())
        pieces = [self.out.acc.new_zeros(self.items, 0)]
        while self.out.done < stop:  # runs of frames: bounded memory
            f0 = self.out.done
            f1 = min(stop, f0 + self.block)
            c_mag, c_dev, phase = self.carrier.take(f1)
            m_mag, m_dev, _ = self.modulator.take(f1)
            if self.mode == "spectral":
                magnitude, deviation = self._spectral(c_mag, m_mag), c_dev
            else:
                magnitude = self._deltas("magnitude", f0, c_mag, m_mag)
                deviation = self._deltas("deviation", f0, c_dev, m_dev)
            pieces.append(self.out.add(magnitude, deviation, phase if f0 == 0 else None))
        return torch.cat(pieces, dim=1)

    def finish(self) -> torch.Tensor:
        """Both sounds are complete: the rest of the output."""
        if self.out.done < self.out.n_frames:
            raise PvrnnError(f"finish: the carrier has {self.carrier.n_in} and the modulator "
                             f"{self.modulator.n_in} of {self.carrier.length} samples; "
                             "expected both complete")
        return self.out.finish()

    def _spectral(self, c_mag: torch.Tensor, m_mag: torch.Tensor) -> torch.Tensor:
        if self.lifter is None:
            return m_mag
        env_mod = spectral_envelope(m_mag, self.n_fft, self.lifter, log=True)
        env_car = spectral_envelope(c_mag, self.n_fft, self.lifter, log=True)
        return c_mag * torch.exp(env_mod - env_car)

    def _deltas(self, name: str, f0: int, car: torch.Tensor, mod: torch.Tensor) -> torch.Tensor:
        """:meth:`Frames.from_deltas` of the modulator's deltas from the carrier's frames at
        the resets, for frames ``[f0, f0 + F)``: each frame is its segment's first carrier
        frame plus the modulator's change since then (float64 running sums, carried)."""
        f64 = torch.float64
        prev, run, base, base_run = (self._state.get(f"{name}.{key}") for key in
                                     ("prev", "run", "base", "base_run"))
        if f0 == 0:
            prev, zero = mod[:, :1], mod.new_zeros(self.items, 1, mod.shape[-1], dtype=f64)
            run, base, base_run = zero, car[:, :1], zero
        running = torch.cumsum(torch.diff(mod, dim=1, prepend=prev).to(f64), dim=1).add_(run)
        # Each frame's segment start, as an index into [carried base, frames of this run].
        t = torch.arange(f0, f0 + car.shape[1], device=car.device)
        index = (torch.div(t, self.every, rounding_mode="floor") * self.every - f0 + 1)
        index = index.clamp_min_(0)
        bases, starts = torch.cat([base, car], dim=1), torch.cat([base_run, running], dim=1)
        out = bases.index_select(1, index).to(f64).add_(running)
        out = out.sub_(starts.index_select(1, index)).to(car.dtype)
        last = max(0, (f0 + car.shape[1] - 1) // self.every * self.every - f0 + 1)
        self._state.update({
            f"{name}.prev": mod[:, -1:], f"{name}.run": running[:, -1:],
            f"{name}.base": bases[:, last : last + 1],
            f"{name}.base_run": starts[:, last : last + 1],
        })
        return out


class _Paired:
    """Feeds :class:`CrossStream` the carrier blocks it is given and pulls the modulator's
    blocks to keep up (``feed`` / ``finish``, as :func:`pvrnn.effects.stretch.run_engine` and
    the command line drive a stream); leading dims broadcast to ``batch``."""

    def __init__(self, stream: CrossStream, modulator: Iterator[torch.Tensor],
                 carrier_lead: tuple[int, ...], modulator_lead: tuple[int, ...],
                 batch: tuple[int, ...]) -> None:
        self.stream, self.modulator = stream, modulator
        self.leads, self.batch = (carrier_lead, modulator_lead), batch
        self.fed = [0, 0]
        self.empty = torch.zeros(stream.items, 0, dtype=stream.dtype, device=stream.device)

    def _rows(self, block: torch.Tensor, which: int) -> torch.Tensor:
        self.fed[which] += block.shape[-1]
        block = block.reshape(*self.leads[which], block.shape[-1])
        return block.expand(*self.batch, block.shape[-1]).reshape(self.stream.items, -1)

    def feed(self, carrier: torch.Tensor) -> torch.Tensor:
        pieces = [self.stream.feed(self._rows(carrier, 0), self.empty)]
        while self.fed[1] < self.fed[0]:
            block = next(self.modulator, None)
            if block is None:
                break
            pieces.append(self.stream.feed(self.empty, self._rows(block, 1)))
        return torch.cat(pieces, dim=1)

    def finish(self) -> torch.Tensor:
        pieces = [self.stream.feed(self.empty, self._rows(block, 1)) for block in self.modulator]
        return torch.cat([*pieces, self.stream.finish()], dim=1)


def cross_pipeline(
    carrier: Sound, modulator: Sound, sample_rate: float, *, mode: str, fit: str,
    envelope: bool, reset_every: float | None, envelope_lifter: float | None, n_fft: int,
    hop_length: int, window: str | torch.Tensor, dtype: torch.dtype, device: Any,
) -> tuple[Any, Callable[[int], Iterator[torch.Tensor]], int, tuple[int, ...]]:
    """The validated streams of :func:`cross_synthesize` for two sounds read in blocks.

    Returns ``(stream, carrier_blocks, n, batch)``: feed ``stream.feed`` the carrier's
    fitted blocks ``carrier_blocks(size)`` (``(rows, m)``, rows of its leading dims) and
    call ``stream.finish()``; the output is ``(prod(batch), n)``. The modulator is read
    (looped, cut or time-stretched) as the stream needs it; when the envelope lifter follows
    the pitch, both sounds are read once before (a stretched modulator is stretched twice).
    """
    n_fft, hop_length, _ = check_stft(n_fft, hop_length, window)
    mode = check_choice("mode", mode, _MODES)
    fit = check_choice("fit", fit, _FITS)
    if isinstance(sample_rate, (tuple, list)):
        raise fail("sample_rate", sample_rate, "one sample rate for both sounds (resample one "
                   "of them first if they differ)")
    sample_rate = check_positive("sample_rate", sample_rate)
    try:
        batch = tuple(torch.broadcast_shapes(carrier.lead, modulator.lead))
    except RuntimeError as error:
        raise PvrnnError(f"carrier has leading dims {carrier.lead} and modulator "
                         f"{modulator.lead}: expected leading dims that broadcast") from error
    every = None
    if mode == "deltas" and reset_every is not None:
        seconds = check_positive("reset_every", reset_every)
        every = max(1, int(round(seconds * sample_rate / hop_length)))
    if mode == "spectral" and envelope and envelope_lifter is not None:
        check_positive("envelope_lifter", envelope_lifter)
    for name, sound in (("carrier", carrier), ("modulator", modulator)):
        if sound.length < n_fft:
            raise fail(name, f"{sound.length} samples", f"at least n_fft={n_fft} samples")
    n = _fitted_length(carrier, modulator, fit)
    rows = math.prod(carrier.lead)

    def carrier_blocks(size: int) -> Iterator[torch.Tensor]:
        for block in _rechunk(carrier.blocks(size), size, n):
            yield block.reshape(rows, -1).to(device=device, dtype=dtype)

    def modulator_blocks(size: int) -> Iterator[torch.Tensor]:
        if fit == "trim" or modulator.length == n:  # cut to n by _rechunk
            source = modulator.blocks(size)
        elif fit == "loop":
            source = _looped(modulator, size)
        else:
            source = _stretched(modulator, n, sample_rate, n_fft, hop_length, window, dtype)
        for block in _rechunk(source, size, n):
            yield block.to(device=device, dtype=dtype)

    lifter = None
    if mode == "spectral" and envelope:
        if envelope_lifter is None:  # the first pass: the pitch of both sounds
            envelope_lifter = pitch_lifter_blocks(
                carrier_blocks(LIFTER_BLOCK), modulator_blocks(LIFTER_BLOCK),
                sample_rate=sample_rate)
        lifter = lifter_samples(envelope_lifter, sample_rate, n_fft)
    items = math.prod(batch)
    stream = CrossStream(items, sample_rate, n, mode=mode, lifter=lifter, every=every,
                         n_fft=n_fft, hop_length=hop_length, window=window, dtype=dtype,
                         device=device)
    paired = _Paired(stream, modulator_blocks(FEED_SAMPLES), carrier.lead, modulator.lead,
                     batch)
    return paired, carrier_blocks, n, batch


def cross_synthesize(
    carrier: torch.Tensor,
    modulator: torch.Tensor,
    sample_rate: float,
    *,
    mode: str = "spectral",
    fit: str = "error",
    envelope: bool = False,
    reset_every: float | None = 0.25,
    envelope_lifter: float | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    window: str | torch.Tensor = "hann",
    progress: bool = False,
) -> torch.Tensor:
    """Combine two sounds frame by frame: one gives the frequencies, the other the changes.

    Both are analysed by :class:`~pvrnn.PhaseVocoder` into :class:`~pvrnn.Frames`.

    - ``mode="spectral"`` (classic cross-synthesis): the carrier's instantaneous frequencies
      and phases with the modulator's magnitudes. With ``envelope=True`` only the modulator's
      spectral envelope is imposed on the carrier's own fine structure (carrier magnitude
      divided by its envelope, times the modulator's): a talking instrument.
    - ``mode="deltas"``: the carrier driven by the modulator's frame-to-frame changes in
      magnitude and frequency (:meth:`Frames.deltas`, integrated by
      :meth:`Frames.from_deltas` from the carrier's first frame), snapping back to the
      carrier's own frame every ``reset_every`` seconds so the result does not drift away.

    The work streams (:class:`CrossStream`): the sounds are analysed, combined and
    resynthesized a run of frames at a time, so the working memory is a few windows of audio
    whatever the length (``pvrnn cross`` from file to file runs the same streams on blocks
    read from disk, with the same result). The envelope lifter's pitch measurement is a first
    pass over both sounds.

    Args:
        carrier (Tensor): ``(..., time)`` float waveform (gives frequencies / the start).
        modulator (Tensor): ``(..., time)`` float waveform, same sample rate; leading dims
            broadcast against the carrier's.
        sample_rate (float): Hz, of both (resample one first if they differ).
        mode (str): ``"spectral"`` or ``"deltas"``.
        fit (str): what to do when the lengths differ: ``"error"`` (default: raise),
            ``"loop"`` (repeat or cut the modulator to the carrier's length), ``"trim"`` (cut
            both to the shorter) or ``"stretch"`` (time-stretch the modulator to the carrier's
            length, as :func:`pvrnn.time_stretch` with the same ``n_fft``, ``hop_length``
            and ``window``).
        envelope (bool): spectral mode: impose the modulator's envelope only.
        reset_every (float or None): deltas mode: seconds between reset frames from the
            carrier (default 0.25); ``None`` never resets.
        envelope_lifter (float, optional): cepstral cutoff of the envelopes in seconds.
            ``None`` (default) follows the pitch of both sounds as :func:`pvrnn.pitch_shift`
            does: ``min(1.5 ms, 0.5 / highest median pitch)`` (see
            :func:`pvrnn.dsp.envelope.pitch_lifter`), so neither envelope resolves harmonics.
        n_fft (int): FFT size, even. hop_length (int): hop, ``<= n_fft // 2``.
        window (str or Tensor): any window :class:`pvrnn.PhaseVocoder` accepts (a tensor of
            ``n_fft`` samples, or a name).
        progress (bool): show a progress bar on stderr.

    Returns:
        Tensor: ``(..., time)`` with the carrier's length (the shorter one's for ``"trim"``),
        dtype of the inputs, on their device.

    Raises:
        PvrnnError: on bad audio, lengths that differ with ``fit="error"``, inputs on
            different devices, leading dims that do not broadcast, or an unknown mode / fit.

    Example:
        >>> clarinet, rate = pvrnn.examples.load("clarinet")
        >>> piano, _ = pvrnn.examples.load("piano")
        >>> y = pvrnn.cross_synthesize(clarinet, piano, rate, mode="spectral", fit="trim")
    """
    n_fft = check_stft(n_fft, hop_length, window)[0]
    mode = check_choice("mode", mode, _MODES)
    fit = check_choice("fit", fit, _FITS)
    carrier = check_input(carrier, n_fft, "carrier")
    modulator = check_input(modulator, n_fft, "modulator")
    if carrier.device != modulator.device:
        raise PvrnnError(f"carrier is on {carrier.device} but modulator is on "
                         f"{modulator.device}: expected both on the same device")
    dtype = torch.promote_types(carrier.dtype, modulator.dtype)
    stream, _, n, batch = cross_pipeline(
        Sound.of(carrier), Sound.of(modulator), sample_rate, mode=mode, fit=fit,
        envelope=envelope, reset_every=reset_every, envelope_lifter=envelope_lifter,
        n_fft=n_fft, hop_length=hop_length, window=window, dtype=dtype,
        device=carrier.device)
    flat = carrier[..., :n].reshape(-1, n).to(dtype)
    return run_engine(stream, flat, progress, "cross").reshape(*batch, n)
