"""Phase-coherent resynthesis of frames that did not come from an analysis.

Frames that a model generates carry a magnitude and an instantaneous frequency per bin, drawn
independently per bin. Integrating each bin's frequency on its own (what
:meth:`PhaseVocoder.synthesize` does, exactly right for analysed frames) lets the bins of one
partial drift apart in phase: beating, phasiness, smeared partials.

:func:`lock_phases` rebuilds the phase so that the bins of one partial move together, by
*identity phase locking* (Laroche & Dolson 1999) driven by the generated frequencies:

1. In every frame, the peaks of the magnitude (local maxima above a floor) are found; every bin
   belongs to the region of influence of its nearest peak (bins below the floor keep their own).
2. A region's frequency is the power-weighted mean of the generated frequencies of the peak's
   main lobe (so one partial has one frequency, not one per bin).
3. With the FFT origin at the start of a frame centred on a stationary partial, every bin of
   the partial's main lobe has the phase ``psi - pi * k`` where ``psi`` is the partial's phase at
   the frame centre (the window's transform is real about its centre ``n_fft / 2``). So the
   phase is kept in this centred form ``psi``: all bins of a region share their peak's ``psi``.
4. A peak at bin ``j`` continues the phase that bin ``j`` had in the previous frame (which was
   locked to *its* peak there), advanced by the region's frequency over one hop:
   ``psi[t, k] = psi[t - 1, owner_t(k)] + 2 pi hop f_region[t, owner_t(k)] / sample_rate``.

Step 4 is a recurrence along chains that jump between bins from frame to frame. It is
computed for all frames at once by pointer doubling: ``ceil(log2(n_frames + 1))`` rounds, each
two gathers over the whole ``(n_frames, n_bins)`` grid, in float64. No loop over frames or bins.

The result is returned as :class:`Frames` whose deviations reproduce the locked phase when
integrated, so the ordinary :meth:`PhaseVocoder.synthesize` turns them into audio.
"""

from __future__ import annotations

import math

import torch

from ..errors import check_positive, fail
from .frames import TWO_PI, Frames, bin_advance, bin_frequencies, default_start_phase, wrap

__all__ = ["lock_phases", "peak_owners"]

#: Bins further below their frame's loudest bin than this are not locked (their own phase).
DEFAULT_FLOOR_DB = -90.0
#: Half-width in bins of the part of a region whose frequencies set the region's frequency
#: (the main lobe of a Hann window is 2 bins either side of the peak).
MAIN_LOBE = 2


def peak_owners(magnitude: torch.Tensor, floor_db: float = DEFAULT_FLOOR_DB) -> torch.Tensor:
    """For every bin, the bin index of the peak whose region it lies in.

    Args:
        magnitude: ``(..., n_frames, n_bins)``, linear, >= 0.
        floor_db: bins more than ``-floor_db`` dB below the frame's maximum are their own owner.

    Returns:
        Tensor: int64 ``(..., n_frames, n_bins)``; ``owner[..., t, k] == k`` at a peak.
        Regions meet half way between neighbouring peaks.
    """
    mag = magnitude.clamp_min(0)
    n_bins = mag.shape[-1]
    left = torch.nn.functional.pad(mag[..., :-1], (1, 0), value=-1.0)
    right = torch.nn.functional.pad(mag[..., 1:], (0, 1), value=-1.0)
    top = mag.amax(dim=-1, keepdim=True)
    loud = mag > top * (10.0 ** (floor_db / 20.0))
    peak = (mag > left) & (mag >= right) & loud
    # int32 while choosing (half the memory traffic of int64); int64 for gather at the end
    k = torch.arange(n_bins, device=mag.device, dtype=torch.int32).expand_as(mag)
    none_below = torch.tensor(-4 * n_bins, dtype=torch.int32, device=mag.device)
    none_above = torch.tensor(8 * n_bins, dtype=torch.int32, device=mag.device)
    below = torch.where(peak, k, none_below).cummax(dim=-1).values  # nearest peak <= k
    above = torch.where(peak, k, none_above).flip(-1).cummin(dim=-1).values.flip(-1)
    # nearest of the two (a missing side is far away, so the other wins); ties go below
    owner = torch.where((above - k) < (k - below), above, below)
    lonely = (owner < 0) | (owner >= n_bins)  # no peak in the frame at all
    return torch.where(loud & ~lonely, owner, k).long()


def _region_frequency(
    magnitude: torch.Tensor, frequency: torch.Tensor, owner: torch.Tensor
) -> torch.Tensor:
    """Power-weighted mean frequency of each peak's main lobe, read back at every bin."""
    k = torch.arange(owner.shape[-1], device=owner.device)
    lobe = (owner - k).abs() <= MAIN_LOBE
    power = magnitude.to(torch.float64).square() * lobe
    numerator = torch.zeros_like(power).scatter_add_(-1, owner, power * frequency)
    denominator = torch.zeros_like(power).scatter_add_(-1, owner, power)
    region = torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300),
                         frequency)
    return region.gather(-1, owner)


def _chase(pointer: torch.Tensor, step: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
    """Solve ``value[t, k] = value[t - 1, pointer[t, k]] + step[t, k]`` for all ``t`` at once.

    ``pointer``/``step``: ``(B, T, K)``, frame ``t`` pointing into frame ``t - 1`` and frame 0
    into ``root`` ``(B, K)``. Pointer doubling: after round ``s`` each node knows the bin it
    reaches ``2**s`` frames back (or in the root, for frames nearer the start) and the sum of
    the steps on the way; the frames within ``2**s`` of the start are then final, so each round
    updates only the frames after them, from the frames ``2**s`` before.
    """
    n_frames = pointer.shape[1]
    pointer = pointer.clone()
    total = step.clone()
    span = 1
    while span < n_frames:
        later = pointer[:, span:]
        reached_total = total[:, :-span].gather(2, later)  # new tensors: read before writing
        reached_pointer = pointer[:, :-span].gather(2, later)
        total[:, span:] += reached_total
        pointer[:, span:] = reached_pointer
        span *= 2
    return root.unsqueeze(1).expand(-1, n_frames, -1).gather(2, pointer) + total


def lock_phases(frames: Frames, floor_db: float = DEFAULT_FLOOR_DB) -> Frames:
    """Frames whose phase keeps the bins of each partial together (see the module docstring).

    Args:
        frames (Frames): ``(..., n_frames, n_bins)``, e.g. generated by a model. A
            ``start_phase`` is honoured (its centred form is locked in the first frame);
            ``None`` starts every partial centred, as :class:`Frames` does.
        floor_db (float): bins this many dB below their frame's loudest bin keep their own
            frequency and phase (negative, default -90).

    Returns:
        Frames: same magnitude, ``(..., n_frames, n_bins)``; deviations and ``start_phase``
        chosen so that :meth:`PhaseVocoder.synthesize` produces the locked phase.
    """
    if not isinstance(frames, Frames):
        raise fail("frames", frames, "a pvrnn.Frames")
    if not (isinstance(floor_db, (int, float)) and math.isfinite(floor_db) and floor_db < 0):
        raise fail("floor_db", floor_db, "a negative number of dB")
    check_positive("frames.sample_rate", frames.sample_rate)
    if frames.n_frames == 0:
        return frames
    shape = frames.shape
    n_frames, n_bins = frames.n_frames, frames.n_bins
    magnitude = frames.magnitude.reshape(-1, n_frames, n_bins)
    frequency = frames.frequency.to(torch.float64).reshape(-1, n_frames, n_bins)
    batch = magnitude.shape[0]
    start = frames.start_phase
    if start is None:
        start = default_start_phase(n_bins, like=frequency)
    start = start.to(torch.float64).expand(*shape[:-2], n_bins).reshape(batch, n_bins)

    owner = peak_owners(magnitude, floor_db)
    radians_per_hz = TWO_PI * frames.hop_length / frames.sample_rate
    advance = _region_frequency(magnitude, frequency, owner) * radians_per_hz
    advance[:, 0] = 0.0  # the first frame only locks the start phase
    k_pi = torch.arange(n_bins, device=magnitude.device, dtype=torch.float64) * math.pi
    centred = _chase(owner, advance, start + k_pi)  # psi: phase at the frame centre
    phase = centred - k_pi

    # Back to the stored form: deviations whose integration gives this phase.
    bins = bin_advance(n_bins, frames.n_fft, frames.hop_length, magnitude.device)
    step = wrap(torch.diff(phase, dim=1) - bins)
    centres = bin_frequencies(n_bins, frames.n_fft, frames.sample_rate, like=frequency)
    deviation = torch.cat([frequency[:, :1] - centres, step / radians_per_hz],
                          dim=1)
    return frames.replace(
        deviation=deviation.to(frames.deviation.dtype).reshape(shape),
        start_phase=wrap(phase[:, 0]).reshape(*shape[:-2], n_bins),
    )
