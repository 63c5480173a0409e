"""Phase-vocoder frames: per-bin magnitude and instantaneous frequency, frames-major.

A :class:`Frames` holds ``magnitude`` and ``frequency`` (Hz), both ``(..., n_frames, n_bins)``,
plus the phase of the first frame, which is all synthesis needs to rebuild the signal.

Precision. The frequency is stored as its *deviation* from the bin centre, in Hz. The bin-centre
part of the phase advance is reduced modulo 2*pi exactly (in integers) and the per-frame
increments are accumulated in float64, so that a float32 pipeline keeps its pitch over minutes:
the only rounding that can accumulate is that of the deviation itself, which is at most pi
radians per hop and so keeps float32's relative precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import check_int, fail
from . import kernels

__all__ = ["Frames", "FrameDeltas"]

TWO_PI = 2.0 * math.pi


def bin_frequencies(
    n_bins: int, n_fft: int, sample_rate: float, *, like: torch.Tensor
) -> torch.Tensor:
    """Centre frequency of bins ``0..n_bins-1`` in Hz, ``(n_bins,)``, dtype/device of ``like``."""
    k = torch.arange(n_bins, device=like.device, dtype=torch.float64)
    return (k * (sample_rate / n_fft)).to(like.dtype)


def bin_advance(n_bins: int, n_fft: int, hop_length: int, device: Any) -> torch.Tensor:
    """Phase advance of each bin centre over one hop, reduced modulo 2*pi exactly, float64.

    ``2*pi*k*hop/n_fft mod 2*pi == 2*pi*((k*hop) mod n_fft)/n_fft``: the reduction is done in
    integers, so no rounding of a large angle enters the accumulated phase.
    """
    k = torch.arange(n_bins, device=device, dtype=torch.int64)
    return torch.remainder(k * hop_length, n_fft).to(torch.float64) * (TWO_PI / n_fft)


def wrap(phase: torch.Tensor) -> torch.Tensor:
    """Wrap angles to ``[-pi, pi)``."""
    return torch.remainder(phase + math.pi, TWO_PI) - math.pi


def default_start_phase(n_bins: int, *, like: torch.Tensor) -> torch.Tensor:
    """``pi*k``: the phase pattern of partials centred in the first analysis frame.

    With the FFT origin at the start of a Hann-windowed frame, the bins around a partial
    alternate in sign; starting generated frames with zero phase in every bin would make
    neighbouring bins of one partial cancel.
    """
    k = torch.arange(n_bins, device=like.device, dtype=torch.int64)
    return (torch.remainder(k, 2) * math.pi).to(like.dtype)


@dataclass(frozen=True)
class FrameDeltas:
    """Frame-to-frame differences of :class:`Frames`.

    Attributes:
        magnitude (Tensor): magnitude changes, ``(..., n_frames, n_bins)``.
        frequency (Tensor): instantaneous-frequency changes in Hz, ``(..., n_frames, n_bins)``.
    """

    magnitude: torch.Tensor
    frequency: torch.Tensor
    sample_rate: float
    n_fft: int
    hop_length: int

    @property
    def n_frames(self) -> int:
        return self.magnitude.shape[-2]


class Frames:
    """Magnitude and instantaneous frequency of each bin, frame by frame.

    Args:
        magnitude (Tensor): ``(..., n_frames, n_bins)``, linear STFT magnitude.
        frequency (Tensor, optional): instantaneous frequency in Hz, same shape. Give either
            ``frequency`` or ``deviation``.
        sample_rate (float): sampling rate of the analysed audio, Hz.
        n_fft (int): FFT size of the analysis; ``n_bins <= n_fft // 2 + 1`` (fewer bins mean
            the lowest ones were kept, see :meth:`partials`).
        hop_length (int): samples between frames.
        start_phase (Tensor, optional): phase of the first frame in radians, ``(..., n_bins)``.
            ``None`` (generated frames) starts every partial centred: ``pi * k``.
        deviation (Tensor, optional): frequency minus bin centre, Hz (the stored form).

    Indexing slices the frame axis and always keeps it: ``frames[3]`` is ``frames[3:4]``. A
    slice of analysed frames carries the phase at its first frame, so it resynthesizes exactly.

    Example:
        >>> pv = pvrnn.PhaseVocoder(n_fft=512, hop_length=128, sample_rate=16000)
        >>> frames = pv.analyze(pvrnn.examples.sine(440.0, 1.0, 16000))
        >>> frames.frequency[10, 14]  # Hz, near 440
    """

    __slots__ = ("magnitude", "deviation", "start_phase", "sample_rate", "n_fft", "hop_length")

    def __init__(
        self,
        magnitude: torch.Tensor,
        frequency: torch.Tensor | None = None,
        *,
        sample_rate: float,
        n_fft: int,
        hop_length: int,
        start_phase: torch.Tensor | None = None,
        deviation: torch.Tensor | None = None,
    ) -> None:
        if not isinstance(magnitude, torch.Tensor) or magnitude.dim() < 2:
            raise fail("magnitude", magnitude, "a tensor (..., n_frames, n_bins)")
        n_fft = check_int("n_fft", n_fft, low=2)
        hop_length = check_int("hop_length", hop_length, low=1)
        if magnitude.shape[-1] > n_fft // 2 + 1:
            raise fail("magnitude", magnitude, f"at most n_fft // 2 + 1 = {n_fft // 2 + 1} bins")
        if (frequency is None) == (deviation is None):
            raise fail("frequency", frequency, "exactly one of frequency (Hz) or deviation")
        if frequency is not None:
            if frequency.shape != magnitude.shape:
                shape = tuple(magnitude.shape)
                raise fail("frequency", frequency, f"the shape of magnitude {shape}")
            centres = bin_frequencies(magnitude.shape[-1], n_fft, sample_rate, like=frequency)
            deviation = frequency - centres
        elif deviation.shape != magnitude.shape:
            raise fail("deviation", deviation, f"the shape of magnitude {tuple(magnitude.shape)}")
        if start_phase is not None and start_phase.shape[-1] != magnitude.shape[-1]:
            raise fail("start_phase", start_phase, f"(..., n_bins={magnitude.shape[-1]})")
        self.magnitude = magnitude
        self.deviation = deviation
        self.start_phase = start_phase
        self.sample_rate = float(sample_rate)
        self.n_fft = n_fft
        self.hop_length = hop_length

    # -- views -------------------------------------------------------------------------------
    @property
    def frequency(self) -> torch.Tensor:
        """Instantaneous frequency in Hz, ``(..., n_frames, n_bins)``."""
        centres = bin_frequencies(self.n_bins, self.n_fft, self.sample_rate, like=self.deviation)
        return self.deviation + centres

    @property
    def n_frames(self) -> int:
        return self.magnitude.shape[-2]

    @property
    def n_bins(self) -> int:
        return self.magnitude.shape[-1]

    @property
    def shape(self) -> torch.Size:
        """``(..., n_frames, n_bins)``."""
        return self.magnitude.shape

    @property
    def device(self) -> torch.device:
        return self.magnitude.device

    @property
    def dtype(self) -> torch.dtype:
        return self.magnitude.dtype

    @property
    def duration(self) -> float:
        """Seconds spanned by the frames (``n_frames * hop_length / sample_rate``)."""
        return self.n_frames * self.hop_length / self.sample_rate

    def __len__(self) -> int:
        return self.n_frames

    def __repr__(self) -> str:
        return (
            f"Frames(shape={tuple(self.shape)}, sample_rate={self.sample_rate:g}, "
            f"n_fft={self.n_fft}, hop_length={self.hop_length}, dtype={self.dtype}, "
            f"device={self.device})"
        )

    def replace(self, **changes: Any) -> Frames:
        """A copy with fields replaced (``magnitude=``, ``frequency=``, ``start_phase=``...)."""
        fields = dict(
            magnitude=self.magnitude, sample_rate=self.sample_rate, n_fft=self.n_fft,
            hop_length=self.hop_length, start_phase=self.start_phase,
        )
        if "frequency" not in changes:
            fields["deviation"] = changes.pop("deviation", self.deviation)
        fields.update(changes)
        return Frames(**fields)

    def to(self, *args: Any, **kwargs: Any) -> Frames:
        """Move/cast like :meth:`torch.Tensor.to`; returns a new Frames.

        The start phase keeps float64 if it has it: it is an angle, not a feature.
        """
        magnitude = self.magnitude.to(*args, **kwargs)
        sp = self.start_phase
        if sp is not None:
            if sp.dtype == torch.float64:  # moved, never cast: no rounding of the angle
                sp = sp.to(device=magnitude.device, non_blocking=kwargs.get("non_blocking", False))
            else:
                moved = sp.to(*args, **kwargs)
                sp = moved if moved.is_floating_point() else sp.to(device=magnitude.device)
        return self.replace(
            magnitude=magnitude,
            deviation=self.deviation.to(*args, **kwargs),
            start_phase=sp,
        )

    def __getitem__(self, index: int | slice) -> Frames:
        n = self.n_frames
        if isinstance(index, int) and not isinstance(index, bool):
            if not -n <= index < n:
                raise fail("index", index, f"a frame index in [{-n}, {n})")
            index = index % n
            index = slice(index, index + 1)
        if not isinstance(index, slice):
            raise fail("index", index, "an int or a slice of the frame axis")
        start, stop, step = index.indices(n)
        if step != 1:
            raise fail("index", index, "a slice with step 1 (frames are hop_length apart)")
        stop = max(stop, start)
        start_phase = None
        if self.start_phase is not None:
            start_phase = self.start_phase if start == 0 else self.phase()[..., start, :]
        return self.replace(
            magnitude=self.magnitude[..., start:stop, :],
            deviation=self.deviation[..., start:stop, :],
            start_phase=start_phase,
        )

    def partials(self, k: int) -> Frames:
        """Keep the lowest ``k`` bins (the low-pass dimensionality limit of sound-rnn)."""
        k = check_int("n_partials", k, low=1, high=self.n_bins)
        sp = None if self.start_phase is None else self.start_phase[..., :k]
        return self.replace(
            magnitude=self.magnitude[..., :k], deviation=self.deviation[..., :k], start_phase=sp
        )

    # -- phase ---------------------------------------------------------------------------------
    def phase(self) -> torch.Tensor:
        """Phase of every bin in every frame, wrapped to ``[-pi, pi)``, float64.

        ``phase[t] = start_phase + sum_{s=1..t} (bin advance + 2*pi*hop*deviation[s]/sample_rate)``,
        accumulated in float64 with one cumsum over frames.
        """
        n_frames, n_bins = self.n_frames, self.n_bins
        deviation = self.deviation
        start = self.start_phase
        if start is None:
            start = default_start_phase(n_bins, like=deviation.new_empty(0, dtype=torch.float64))
        batch = torch.broadcast_shapes(deviation.shape[:-2], start.shape[:-1])
        if n_frames == 0:
            return deviation.new_empty((*batch, 0, n_bins), dtype=torch.float64)
        phase = kernels.accumulate_phase(
            deviation.expand(*batch, n_frames, n_bins).reshape(-1, n_frames, n_bins),
            start.expand(*batch, n_bins).reshape(-1, n_bins),
            bin_advance(n_bins, self.n_fft, self.hop_length, self.device),
            TWO_PI * self.hop_length / self.sample_rate,
        )
        return phase.reshape(*batch, n_frames, n_bins)

    # -- deltas --------------------------------------------------------------------------------
    def deltas(self) -> FrameDeltas:
        """Frame-to-frame differences, ``(..., n_frames - 1, n_bins)``: ``x[t+1] - x[t]``."""
        return FrameDeltas(
            magnitude=torch.diff(self.magnitude, dim=-2),
            frequency=torch.diff(self.deviation, dim=-2),
            sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
        )

    @classmethod
    def from_deltas(
        cls,
        deltas: FrameDeltas,
        start: Frames,
        reset_every: int | None = None,
        reset_frames: Frames | None = None,
    ) -> Frames:
        """Integrate frame-to-frame changes from a start frame.

        Args:
            deltas (FrameDeltas): changes ``(..., n, n_bins)``.
            start (Frames): the first frame, ``(..., 1, n_bins)`` (a longer Frames: its last frame).
            reset_every (int, optional): every ``reset_every`` frames (frame indices
                ``reset_every, 2*reset_every, ...`` of the output) the running frame is replaced
                by a reset frame, and integration continues from it. This stops the drift that
                accumulates when the deltas come from a model.
            reset_frames (Frames, optional): the frames used at resets, ``(..., m, n_bins)``;
                reset ``j`` (1-based) uses frame ``(j - 1) % m``. Default: ``start``.

        Returns:
            Frames: ``(..., n + 1, n_bins)``, beginning with ``start``.
        """
        if not isinstance(deltas, FrameDeltas):
            raise fail("deltas", deltas, "a FrameDeltas (from Frames.deltas() or a FrameCodec)")
        if not isinstance(start, Frames):
            raise fail("start", start, "a Frames holding the first frame")
        start = start[-1]
        if start.n_bins != deltas.magnitude.shape[-1]:
            raise fail("start", start, f"{deltas.magnitude.shape[-1]} bins like the deltas")
        resets_mag = resets_dev = None
        if reset_every is not None:
            reset_every = check_int("reset_every", reset_every, low=1)
            resets = start if reset_frames is None else reset_frames
            if not isinstance(resets, Frames) or resets.n_bins != start.n_bins:
                raise fail("reset_frames", resets, f"a Frames with {start.n_bins} bins")
            resets_mag, resets_dev = resets.magnitude, resets.deviation
        magnitude = integrate(start.magnitude, deltas.magnitude, reset_every, resets_mag)
        deviation = integrate(start.deviation, deltas.frequency, reset_every, resets_dev)
        return start.replace(magnitude=magnitude, deviation=deviation)


def integrate(
    first: torch.Tensor,
    deltas: torch.Tensor,
    reset_every: int | None = None,
    resets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cumulative sum of ``deltas`` from ``first`` along dim -2, with optional periodic resets.

    Vectorized: one float64 cumsum, then each output frame is its segment's base frame plus the
    sum of the deltas since that segment began.

    Args:
        first: ``(..., 1, k)``. deltas: ``(..., n, k)``. resets: ``(..., m, k)``.

    Returns:
        ``(..., n + 1, k)`` in the dtype of ``deltas``.
    """
    n = deltas.shape[-2]
    dtype = torch.promote_types(first.dtype, deltas.dtype)
    zero = torch.zeros_like(deltas[..., :1, :], dtype=torch.float64)
    running = torch.cat([zero, torch.cumsum(deltas.to(torch.float64), dim=-2)], dim=-2)
    if reset_every is None:
        return (first.to(torch.float64) + running).to(dtype)
    t = torch.arange(n + 1, device=deltas.device)
    segment = torch.div(t, reset_every, rounding_mode="floor")
    seg_start = segment * reset_every
    m = resets.shape[-2]
    base_index = torch.where(segment == 0, 0, 1 + torch.remainder(segment - 1, m))
    batch = torch.broadcast_shapes(first.shape[:-2], resets.shape[:-2], deltas.shape[:-2])
    k = deltas.shape[-1]
    bases = torch.cat(
        [first.expand(*batch, 1, k), resets.expand(*batch, m, k)], dim=-2
    ).to(torch.float64)
    out = bases.index_select(-2, base_index) + running - running.index_select(-2, seg_start)
    return out.to(dtype)
