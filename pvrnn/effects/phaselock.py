"""Identity phase locking: spectral peaks, and each peak's phase rotation over a block of frames.

Laroche & Dolson (1999): every bin belongs to its nearest peak, and the output spectrum is the
analysis spectrum times its peak's rotation, so the relative phases around each peak (the shape
of each partial) are those of the input. A peak's rotation continues that of the peak that
owned the same bin in the previous frame (peak-to-peak propagation), summed along these chains
by pointer doubling: a few rounds of gathers, no loop over frames.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..dsp.frames import TWO_PI, wrap
from ..dsp.windows import Window
from .onsets import _ONSET_SPREAD, RISE
from .spectra import derivative_at, windowed

__all__ = ["PhaseLocker", "peaks", "padded_peaks", "peak_rotations"]

#: A spectral peak is larger than this many bins on each side (phase locking).
_LOCK_RADIUS = 2
#: Peaks further than this below their frame's largest magnitude (-80 dB) do not count.
_PEAK_FLOOR = 1e-4


def peaks(power: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The spectral peaks of each frame and the peak each bin belongs to.

    A peak is the largest of its ``_LOCK_RADIUS`` neighbours on each side (Laroche & Dolson)
    and within 80 dB of the frame's largest bin (fainter ones are numerical dust); a frame
    without any (silence) gets bin 0. Each bin belongs to the nearest peak (the left one on a
    tie): the peaks come from one ``nonzero``, and each bin's peak index is the number of
    switches (the first bin past the midpoint of two neighbouring peaks) up to it, one
    cumsum; only a few passes run over all the bins, the rest over the peaks.

    Args:
        power: ``(B, nb, K)`` squared magnitudes.

    Returns:
        ``peak_bin`` ``(B, nb, P)``: the bins of the (up to ``P``) peaks of each frame, in
        order, padded with the frame's last peak; ``count`` ``(B, nb)``: how many; ``which``
        ``(B, nb, K)``: the index in ``peak_bin`` of each bin's peak.
    """
    peak_bin, count, which = padded_peaks(F.pad(power, (_LOCK_RADIUS, _LOCK_RADIUS)))
    rows = torch.arange(which.numel() // which.shape[-1], device=which.device)
    offset = (rows * peak_bin.shape[-1]).view(*which.shape[:-1], 1)
    return peak_bin, count, which.to(torch.int64) - offset


def padded_peaks(wide: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`peaks` of squared magnitudes ``(B, nb, K + 2 _LOCK_RADIUS)`` with
    ``_LOCK_RADIUS`` zeros on each side (the same as leaving the bins outside out: every
    value is >= 0), with ``which`` as flat indices into ``peak_bin`` (``(b nb + t) P`` plus
    the peak's index, int32: half the memory of int64, and what ``index_select`` takes)."""
    r = _LOCK_RADIUS  # 2: the neighbours' maximum below is built for it
    k = wide.shape[-1] - 2 * r
    shape = (*wide.shape[:-1], k)
    wide = wide.reshape(-1, k + 2 * r)
    flat = wide[:, r : r + k]
    rows, device = flat.shape[0], flat.device
    # A bin is a peak when it is at least its neighbours within the radius (the largest of
    # bins j - r .. j - 1 and j + 1 .. j + r: pairs of maxima of pairs, for r = 2) and above
    # the frame's floor (at least the next float up). Compared into a float tensor (that
    # vectorises, into bool not).
    pairs = torch.maximum(wide[:, :-1], wide[:, 1:])  # bins j, j + 1 (padded coordinates)
    around = torch.maximum(pairs[:, : k], pairs[:, r + 1 : r + 1 + k])
    floor = flat.amax(-1, keepdim=True) * _PEAK_FLOOR**2
    inf = floor.new_tensor(math.inf)
    # The next float above the floor; none for a silent frame (0 would be a peak there if
    # denormals are flushed to zero).
    above = torch.nextafter(floor, inf).masked_fill_(floor == 0, math.inf)
    peak = torch.ge(flat, torch.maximum(around, above, out=around), out=around).bool()
    # Every peak as a flat index row * K + bin, in order; each row's first one and count.
    where = peak.view(-1).nonzero(as_tuple=True)[0]
    starts = torch.arange(0, (rows + 1) * k, k, device=device)
    first = torch.searchsorted(where, starts)
    count = first.diff()
    if bool((count == 0).any()):  # a frame without peaks: bin 0 is its peak
        peak[:, 0] |= count == 0
        where = peak.view(-1).nonzero(as_tuple=True)[0]
        first = torch.searchsorted(where, starts)
        count = first.diff()
    n_peaks = int(count.max())
    # Slots past a frame's count repeat its last peak (nothing reads them: a valid bin).
    last = (first[1:] - 1).unsqueeze(1)
    at = torch.minimum(first[:-1].unsqueeze(1) + torch.arange(n_peaks, device=device), last)
    peak_bin = where[at] - starts[:-1].unsqueeze(1)
    # Bin b belongs to peak t rather than t - 1 from the first bin nearer to it,
    # (bin[t - 1] + bin[t]) // 2 + 1 (in flat indices too, within a row); its peak's index
    # counts these switches up to b. The pairs across two rows (before each row's first
    # peak) add 0.
    same = torch.ones(where.shape[0] - 1, dtype=torch.int32, device=device)
    same[(first[1:-1] - 1).clamp_(min=0)] = 0
    marks = torch.zeros(rows, k, dtype=torch.int32, device=device)
    marks[:, 0] = torch.arange(0, rows * n_peaks, n_peaks, device=device)  # row offsets
    marks.view(-1).index_put_(((where[1:] + where[:-1]).div_(2, rounding_mode="floor").add_(1),),
                              same, accumulate=True)
    which = marks.cumsum_(-1)
    return (peak_bin.reshape(*shape[:-1], n_peaks), count.reshape(shape[:-1]),
            which.reshape(shape))


def peak_rotations(
    peak_bin: torch.Tensor,
    count: torch.Tensor,
    which: torch.Tensor,
    peak_freq: torch.Tensor,
    excess: torch.Tensor,
    restart: torch.Tensor,
    carry_rot: torch.Tensor,
    carry_freq: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation of every peak of a block of frames, and each peak's frequency.

    The rotation ``psi`` of a peak ``p`` in frame ``t`` continues that of the peak that owned
    bin ``p`` in frame ``t - 1`` (Laroche & Dolson's peak-to-peak propagation):
    ``psi_t[p] = psi_{t-1}[owner_{t-1}(p)] + excess_t * (w_{t-1} + w_t) / 2``, where ``w`` are
    the two peaks' frequencies and ``excess`` the output hop minus the analysis hop; it is 0
    where reset. The chains of parents are summed by pointer doubling over the block's peaks
    (``ceil(log2(nb))`` rounds of two gathers and an add; no loop over frames); the first frame
    continues from ``carry_rot`` / ``carry_freq``, the rotation and peak frequency of each bin
    in the frame before the block.

    Args:
        peak_bin, count, which: the peaks of each frame, from :func:`padded_peaks` (``which``
            as flat indices).
        peak_freq: ``(B, nb, P)`` rad/sample, the frequency at each peak.
        excess: ``(B, nb)`` samples.
        restart: ``(B, nb, P)`` bool, the peaks that restart at 0 (on a reset bin).
        carry_rot: ``(B, K)`` float64. carry_freq: ``(B, K)``.

    Returns:
        ``(B, nb, P)`` float64 rotations of the peaks.
    """
    b, nb, n_peaks = peak_bin.shape
    device = peak_bin.device
    slots = b * nb * n_peaks  # every item's peaks in one flat layout, then the sentinel
    first = peak_bin[:, 0]  # (B, P)
    # Parents: the previous frame's peak owning the same bin, as a flat slot (for the first
    # frame, the carry: the rotation and frequency of each bin in the frame before the block).
    parent = which[:, :-1].gather(-1, peak_bin[:, 1:])  # frames 1 .. nb - 1
    parent_freq = torch.cat([carry_freq.gather(-1, first).unsqueeze(1),
                             _take(peak_freq, parent)], 1)
    # excess * (w_parent + w) / 2 (the halving is exact, on either factor)
    value = (parent_freq + peak_freq).to(torch.float64).mul_(0.5 * excess.unsqueeze(-1))
    value[:, 0] += carry_rot.gather(-1, first)
    # Pointer doubling over the flat slots and a sentinel of value 0 that points to itself.
    # Roots (first frame, restarts, padding) point to the sentinel; every round doubles the
    # hops each pointer spans.
    flat = value.new_zeros(slots + 1)
    flat[:slots] = value.masked_fill_(restart, 0.0).view(-1)
    pointer = torch.full((slots + 1,), slots, dtype=torch.int32, device=device)
    steps = pointer[:slots].view(b, nb, n_peaks)
    steps[:, 1:] = parent.masked_fill_(restart[:, 1:], slots)
    steps.masked_fill_(torch.arange(n_peaks, device=device) >= count.unsqueeze(-1), slots)
    rounds = max(0, nb - 1).bit_length()  # ceil(log2(nb)) rounds, not frames
    for i in range(rounds):
        flat.add_(flat.index_select(0, pointer))
        if i + 1 < rounds:
            pointer = pointer.index_select(0, pointer)
    return flat[:slots].view(b, nb, n_peaks)


def _take(values: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """``values.view(-1)[flat]`` (``flat`` int32 indices of any shape)."""
    return values.reshape(-1).index_select(0, flat.reshape(-1)).view(flat.shape)


class PhaseLocker:
    """Identity phase locking of blocks of frames, with what it carries from block to block.

    For raw frames at their read positions: the windowed spectra (:func:`windowed`), the peaks
    of each frame, their rotations (:func:`peak_rotations`) and the spectra rotated by their
    bins' peaks. Only the spectra, their squared magnitudes, the peaks and the bins' owners
    are computed over every bin; the frequencies (reassigned from the derivative window's
    spectrum, :func:`derivative_at`) and the onset resets are needed, and computed, at the
    peaks only.

    Args:
        groups (int): rows of peaks and rotations (1 for linked channels, else the items).
        n_fft (int): frame length.
        window (Window): the analysis window.
        link (bool): the items share one set of peaks and rotations, from their summed power.
        dtype, device: of the audio.
    """

    def __init__(self, groups: int, n_fft: int, window: Window, link: bool,
                 dtype: torch.dtype, device: torch.device) -> None:
        self.window, self.link, self.k = window, link, n_fft // 2 + 1
        self.carry_rot = torch.zeros(groups, self.k, dtype=torch.float64, device=device)
        self.carry_freq = torch.zeros(groups, self.k, dtype=dtype, device=device)
        self.carry_power = torch.zeros(groups, 1, self.k, dtype=dtype, device=device)
        bins = torch.arange(self.k, dtype=torch.float64, device=device) * (TWO_PI / n_fft)
        self.bin_freq = bins.to(dtype)
        self.tiny = torch.finfo(dtype).tiny

    def __call__(self, read: Callable[[], torch.Tensor], excess: torch.Tensor,
                 reset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw frames ``(B, nb, N)`` that ``read()`` returns (called once: they are freed
        as soon as they are transformed), the output hop minus the analysis hop
        ``(groups, nb)`` float64 and the onset frames ``(groups, nb)`` bool: the rotated
        spectra and their squared magnitudes, ``(B, nb, K)`` each (the spectra in place of the
        windowed ones). Large arrays are let go as soon as they are used up: fewer
        allocations at once stay below the allocator's threshold for giving memory back
        (whose page faults cost more than the work)."""
        x_w, source = windowed(read(), self.window)
        re, im = x_w.real, x_w.imag
        r, k = _LOCK_RADIUS, self.k
        # Squared magnitudes with the zero bins either side that the peak search reads.
        wide = re.new_empty(*re.shape[:-1], k + 2 * r)
        wide[..., :r], wide[..., k + r :] = 0.0, 0.0
        power = torch.mul(re, re, out=wide[..., r : k + r]).addcmul_(im, im)
        if self.link:
            wide = wide.sum(0, keepdim=True)
        shared = wide[..., r : k + r]
        peak_bin, count, which = padded_peaks(wide)
        # Each peak's reassigned frequency, bin_freq - clamp(cross / power) (cross: the
        # derivative's spectrum against the spectrum), at the peaks only.
        d = derivative_at(source, peak_bin, self.window)
        del source
        x_p = x_w.gather(-1, peak_bin.expand(x_w.shape[0], -1, -1))
        cross = torch.mul(d.real, x_p.real).addcmul_(d.imag, x_p.imag)
        if self.link:
            cross = cross.sum(0, keepdim=True)
        shared_p = shared.gather(-1, peak_bin)
        peak_freq = cross.div_(shared_p.clamp_min(self.tiny)).clamp_(-math.pi, math.pi).neg_()
        peak_freq = peak_freq.add_(self.bin_freq[peak_bin])
        restart = self._restarts(shared, shared_p, peak_bin, reset)
        self.carry_power = shared[:, -1:]
        psi = wrap(peak_rotations(peak_bin, count, which, peak_freq, excess, restart,
                                  self.carry_rot, self.carry_freq))
        self.carry_rot = _take(psi, which[:, -1])
        self.carry_freq = _take(peak_freq, which[:, -1])
        psi = psi.to(x_w.real.dtype)
        spec = x_w.mul_(_take(torch.polar(torch.ones_like(psi), psi), which))
        return spec, power

    def _restarts(self, shared: torch.Tensor, shared_p: torch.Tensor, peak_bin: torch.Tensor,
                  reset: torch.Tensor) -> torch.Tensor:
        """The peaks of onset frames that rose by ``RISE`` over the largest bin within
        ``_ONSET_SPREAD`` of them in the frame before, ``(groups, nb, P)`` bool."""
        if not bool(reset.any()):
            return torch.zeros_like(peak_bin, dtype=torch.bool)
        k, s = self.k, _ONSET_SPREAD
        near = (peak_bin.unsqueeze(-1) + torch.arange(-s, s + 1, device=peak_bin.device))
        near = near.clamp_(0, k - 1).flatten(-2)  # (groups, nb, P (2 s + 1))
        before = torch.cat([self.carry_power.gather(-1, near[:, :1]),
                            shared[:, :-1].gather(-1, near[:, 1:])], dim=1)
        spread = before.unflatten(-1, (peak_bin.shape[-1], 2 * s + 1)).amax(-1)
        rose = shared_p >= RISE**2 * spread
        return reset.unsqueeze(-1) & rose
