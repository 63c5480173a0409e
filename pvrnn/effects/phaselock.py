"""Identity phase locking: spectral peaks, and each peak's phase rotation over a block of frames.

Laroche & Dolson (1999): every bin belongs to its nearest peak, and the output spectrum is the
analysis spectrum times its peak's rotation, so the relative phases around each peak (the shape
of each partial) are those of the input. A peak's rotation continues that of the peak that
owned the same bin in the previous frame (peak-to-peak propagation), summed along these chains
by pointer doubling: a few rounds of gathers, no loop over frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["peaks", "peak_rotations"]

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
        order, padded with 0; ``count`` ``(B, nb)``: how many; ``which`` ``(B, nb, K)``: the
        index in ``peak_bin`` of each bin's peak.
    """
    shape = power.shape
    k = shape[-1]
    flat = power.reshape(-1, k)
    rows = flat.shape[0]
    pooled = F.max_pool1d(flat.unsqueeze(1), 2 * _LOCK_RADIUS + 1, stride=1,
                          padding=_LOCK_RADIUS).squeeze(1)
    peak = torch.eq(flat, pooled).logical_and_(flat > flat.amax(-1, keepdim=True) * _PEAK_FLOOR**2)
    row, bin_ = peak.nonzero(as_tuple=True)  # every peak, by frame then bin
    count = torch.bincount(row, minlength=rows)
    empty = count == 0
    if bool(empty.any()):  # a frame without peaks: bin 0 is its peak
        peak[:, 0] |= empty
        row, bin_ = peak.nonzero(as_tuple=True)
        count = count + empty
    n_peaks = int(count.max())
    slot = torch.arange(row.shape[0], device=flat.device) - (torch.cumsum(count, 0) - count)[row]
    peak_bin = torch.zeros(rows, n_peaks, dtype=torch.int64, device=flat.device)
    peak_bin[row, slot] = bin_
    # Bin b belongs to peak t rather than t - 1 from the first bin nearer to it,
    # (bin[t - 1] + bin[t]) // 2 + 1; its peak's index counts these switches up to b.
    same = row[1:] == row[:-1]
    switch = (bin_[1:] + bin_[:-1]) // 2 + 1 + row[1:] * k
    marks = torch.zeros(rows * k, dtype=torch.uint8, device=flat.device)  # 1 byte per bin
    marks[switch[same]] = 1
    which = torch.cumsum(marks.view(rows, k), -1, dtype=torch.int64)
    return (peak_bin.reshape(*shape[:-1], n_peaks), count.reshape(shape[:-1]),
            which.reshape(shape))


def peak_rotations(
    peak_bin: torch.Tensor,
    count: torch.Tensor,
    which: torch.Tensor,
    freq: torch.Tensor,
    excess: torch.Tensor,
    reset: torch.Tensor,
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
        peak_bin, count, which: the peaks of each frame, from :func:`peaks`.
        freq: ``(B, nb, K)`` rad/sample. excess: ``(B, nb)`` samples.
        reset: ``(B, nb, K)`` bool; a peak on a reset bin restarts at 0.
        carry_rot: ``(B, K)`` float64. carry_freq: ``(B, K)``.

    Returns:
        ``(B, nb, P)`` float64 rotations and ``(B, nb, P)`` frequencies of the peaks.
    """
    b, nb, n_peaks = peak_bin.shape
    device = peak_bin.device
    valid = torch.arange(n_peaks, device=device) < count.unsqueeze(-1)  # (B, nb, P)
    peak_freq = freq.gather(-1, peak_bin)
    # Parents: the previous frame's peak owning the same bin.
    first = peak_bin[:, 0]  # (B, P)
    parent_freq = [carry_freq.gather(-1, first).unsqueeze(1)]
    parent_slot = torch.zeros(b, nb, n_peaks, dtype=torch.int64, device=device)
    if nb > 1:
        parent_slot[:, 1:] = which[:, :-1].gather(-1, peak_bin[:, 1:])
        parent_freq.append(peak_freq[:, :-1].gather(-1, parent_slot[:, 1:]))
    mean_freq = 0.5 * (torch.cat(parent_freq, 1) + peak_freq).to(torch.float64)
    value = excess.unsqueeze(-1) * mean_freq  # (B, nb, P)
    value[:, 0] += carry_rot.gather(-1, first)
    restart = reset.gather(-1, peak_bin)
    value = torch.where(restart, 0.0, value)
    # Pointer doubling. Roots (first frame, restarts, padding) point to a sentinel of value 0
    # that points to itself; every round doubles the hops each pointer spans.
    sentinel = nb * n_peaks
    root = restart | ~valid
    root[:, 0] = True
    frame = torch.arange(nb, device=device).reshape(1, nb, 1)
    pointer = torch.where(root, sentinel, (frame - 1) * n_peaks + parent_slot).reshape(b, -1)
    pointer = F.pad(pointer, (0, 1), value=sentinel)
    value = F.pad(value.reshape(b, -1), (0, 1))
    for _ in range(max(0, nb - 1).bit_length()):  # ceil(log2(nb)) rounds, not frames
        value = value + value.gather(1, pointer)
        pointer = pointer.gather(1, pointer)
    return value[:, :sentinel].reshape(b, nb, n_peaks), peak_freq
