"""Onsets: where a sound's spectrum rises at once, and the stretch cells that protect them.

A bin is active when it is within 60 dB of the loudest bin the signal's peak level so far
(up to one window past the frame) allows; it
rises when its magnitude is >= 3 dB above the largest magnitude within 3 bins of it in the
previous frame (the maximum filter of SuperFlux, Boeck & Widmer 2013, so a partial gliding by a
bin or two is not a rise). At an onset the time-stretch resets the phases of the bins that
rose, and sharp onsets are also read at slope 1 (:mod:`pvrnn.effects.timemap`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..dsp.windows import Window
from ..errors import check_positive
from .spectra import (
    BLOCK_ELEMENTS,
    block_size,
    check_fraction,
    check_input,
    check_stft,
    padded,
    window_max,
)

__all__ = ["OnsetTracker", "detect_onsets", "onset_fraction_block", "running_peak", "spread_max",
           "RISE", "SHARP_ONSET"]

#: A bin magnitude counts as rising when it grows by this factor (3 dB) over one hop.
RISE = 10.0 ** (3.0 / 20.0)
#: Bins further below the loudest possible bin than this (dB) are ignored by the onset detector.
_ONSET_FLOOR_DB = -60.0
#: The onset detector compares each bin with the largest of its neighbours within this many
#: bins in the previous frame (the maximum filter of SuperFlux), so a partial gliding by a bin
#: or two (vibrato, a sweep) is not a rise.
_ONSET_SPREAD = 3
#: Onsets where at least this fraction of the active bins rise (clicks, plucks, struck notes)
#: are also stretched at slope 1; softer ones (legato note changes) only reset their phases.
SHARP_ONSET = 0.5


def spread_max(magnitude: torch.Tensor) -> torch.Tensor:
    """Largest value within ``_ONSET_SPREAD`` bins of each bin, ``(..., K)``, of values >= 0."""
    s = _ONSET_SPREAD
    return window_max(F.pad(magnitude, (s, s)), 2 * s + 1)


def _shift(mask: torch.Tensor, fill: bool) -> torch.Tensor:
    """``mask`` moved one step later along the last dim, ``fill`` entering first."""
    return torch.cat([torch.full_like(mask[..., :1], fill), mask[..., :-1]], dim=-1)


def onset_fraction_block(
    frames: torch.Tensor, window: Window, peak: torch.Tensor, previous: torch.Tensor | None,
    block: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fraction of active bins rising by >= 3 dB since the previous frame, ``(B, G)``.

    Args:
        frames: raw frames ``(B, G, N)`` (a view is fine).
        window: the analysis window.
        peak: ``(B, G)``, the largest input magnitude up to each frame's end: a bin is active
            when it is within 60 dB of what a sinusoid of that amplitude would give.
        previous: :func:`spread_max` of the squared magnitudes ``(B, 1, K)`` of the frame
            before the first (``None``: the first frame is compared with itself).
        block: frames per FFT batch (bounded memory).

    Returns:
        ``(fraction (B, G), spread_max of the last frame's squared magnitudes (B, 1, K))``.
    """
    b, g, n_fft = frames.shape
    k, s = n_fft // 2 + 1, _ONSET_SPREAD
    # A full-scale sinusoid's bin reaches sum(window) / 2 (times its amplitude). The tests run
    # on squared magnitudes (no square root per bin; every side is >= 0, so the order holds).
    scale = float(window.values.sum()) / 2 * 10 ** (_ONSET_FLOOR_DB / 20)
    floors = (peak * scale).clamp_min(torch.finfo(frames.dtype).tiny).square().unsqueeze(-1)
    taper = window.on(frames)  # no time derivative needed: the window is applied in time
    fractions = []
    block = block_size(g, block)
    for start in range(0, g, block):  # blocks of frames: bounded memory on long inputs
        # Squared magnitudes (re^2 and im^2 squared in place on the contiguous real view,
        # then one add: half the strided passes of re * re + im * im) with s zeros on each
        # side, and the spread maximum of the frame before each frame: row 0 that of the
        # block's previous frame.
        squares = torch.view_as_real(torch.fft.rfft(frames[:, start : start + block] * taper))
        squares.square_()
        nb = squares.shape[1]
        floor = floors[:, start : start + block]
        wide = squares.new_empty(b, nb, k + 2 * s)
        wide[..., :s], wide[..., k + s :] = 0.0, 0.0
        power = torch.add(squares[..., 0], squares[..., 1], out=wide[..., s : s + k])
        del squares  # freed before the next arrays: fewer large allocations at once
        spread = wide.new_empty(b, nb + 1, k)
        window_max(wide, 2 * s + 1, out=spread[:, 1:])
        spread[:, :1] = spread[:, 1:2] if previous is None else previous
        previous = spread[:, -1:].clone()
        # Active: power or the spread before above the floor (max(power, max(before, floor))
        # > floor); rising: power >= RISE^2 max(before, floor) (it is then active). Counted
        # as floats: a comparison into a float tensor vectorises, one into bool does not.
        level = torch.maximum(spread[:, :-1], floor)
        active = torch.maximum(power, level)
        count = torch.gt(active, floor, out=active).sum(-1)
        rising = torch.ge(power, level.mul_(RISE**2), out=level).sum(-1)
        frac = rising / count.clamp_min(1)
        fractions.append(torch.where(count >= max(4, k // 100), frac, 0.0))
    return torch.cat(fractions, dim=1), previous


def running_peak(padded: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Largest ``|sample|`` of padded audio ``(B, n + n_fft)`` up to one window past the end of
    each frame ``g`` (padded sample ``g * hop + 2 * n_fft``), ``(B, 1 + n // hop)``.

    The onset floor follows the level so far, so a stream needs only ``n_fft`` samples of look
    ahead for it; the window past the frame keeps the faint beginning of a sound's first
    attack (a fade-in, a vocoder's pre-echo) from counting as the attack itself.
    """
    g = 1 + (padded.shape[-1] - n_fft) // hop
    ends = (torch.arange(g, device=padded.device) * hop + 2 * n_fft - 1).clamp(
        max=padded.shape[-1] - 1)
    return torch.cummax(padded.abs(), dim=-1).values[:, ends]


def _onsets(
    fraction: torch.Tensor, threshold: float, n: int, n_fft: int, hop: int
) -> torch.Tensor:
    """Frames where the rise fraction first crosses ``threshold``, ``(B, G)`` bool.

    Frames whose window reaches past the end of the signal are skipped: the cut into silence
    there is the file's edge, not an attack.
    """
    over = fraction >= threshold
    centre = torch.arange(fraction.shape[-1], device=fraction.device) * hop
    return over & ~_shift(over, True) & (centre + n_fft // 2 <= n)


def detect_onsets(
    audio: torch.Tensor,
    sample_rate: float,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    threshold: float = 0.4,
    window: str | torch.Tensor = "hann",
) -> torch.Tensor:
    """Onsets: frames where many active bins rose by at least 3 dB since the previous frame.

    The detector the time-stretch uses to protect attacks. A bin is active when it is within
    60 dB of the loudest bin the signal's peak level so far allows; it rises when its magnitude is
    >= 3 dB above the largest magnitude within 3 bins of it in the previous frame (the maximum
    filter of SuperFlux, so vibrato and sweeps do not count). Frame ``t`` is an onset when
    the fraction of active bins that rise first reaches ``threshold``: steady noise, vibrato
    and sweeps score under 0.1, a click close to 1, a struck note 0.4 to 0.9.

    Args:
        audio (Tensor): ``(..., time)`` float waveform, at least ``n_fft`` samples.
        sample_rate (float): Hz (validated; the frames are in samples).
        n_fft (int): FFT size, even, samples.
        hop_length (int): samples between frames, ``<= n_fft // 2``.
        threshold (float): fraction of active bins in ``(0, 1]``.
        window (str or Tensor): any window :class:`pvrnn.PhaseVocoder` accepts
            (:mod:`pvrnn.dsp.windows`), of ``n_fft`` samples.

    Returns:
        Tensor: ``(..., 1 + time // hop_length)`` bool, frames centred on
        ``t * hop_length`` (as :class:`pvrnn.PhaseVocoder`).

    Raises:
        PvrnnError: on bad audio or settings.

    Example:
        >>> clicks = torch.zeros(44100); clicks[::11025] = 1.0
        >>> detect_onsets(clicks, 44100).nonzero()     # one frame per click
    """
    n_fft, hop_length, resolved = check_stft(n_fft, hop_length, window)
    audio = check_input(audio, n_fft)
    check_positive("sample_rate", sample_rate)
    threshold = check_fraction("threshold", threshold)
    batch, n = audio.shape[:-1], audio.shape[-1]
    flat = audio.reshape(-1, n)
    padded_audio = padded(flat, n_fft)
    peak = running_peak(padded_audio, n_fft, hop_length)
    frames = padded_audio.unfold(-1, n_fft, hop_length)
    block = max(16, BLOCK_ELEMENTS // max(1, flat.shape[0] * (n_fft // 2 + 1)))
    fraction, _ = onset_fraction_block(frames, resolved, peak, None, block)
    onsets = _onsets(fraction, threshold, n, n_fft, hop_length)
    return onsets.reshape(*batch, onsets.shape[-1])


class OnsetTracker:
    """The streaming engine's onset analysis, grid frame by grid frame, with its state.

    For grid frames ``[g0, g1)`` (frame ``g`` centred on input sample ``g * hop``): the running
    peak of the input up to one window past each frame's end (the activity floor), the
    fraction of active bins that rose (:func:`onset_fraction_block`), and which cells an onset
    (or a sharp one, :data:`SHARP_ONSET`) covers, ``width`` cells from its frame on.

    Args:
        rows (int): signals analysed (1 for linked channels).
        n_fft, hop, window, threshold: the stretch's analysis and onset settings.
        width (int): cells an onset covers.
        block (int): frames per spectra block (memory bound).
    """

    def __init__(self, rows: int, n_fft: int, hop: int, window: Window, threshold: float,
                 width: int, block: int, dtype: torch.dtype, device: torch.device) -> None:
        self.rows, self.n_fft, self.hop, self.window = rows, n_fft, hop, window
        self.half, self.threshold, self.block = n_fft // 2, threshold, block
        self.prev_mag: torch.Tensor | None = None
        self.peak = torch.zeros(rows, dtype=dtype, device=device)
        self.over_prev = torch.ones(rows, 1, dtype=torch.bool, device=device)
        self.onset_hist = torch.zeros(rows, width - 1, dtype=torch.bool, device=device)
        self.sharp_hist = torch.zeros(rows, width - 1, dtype=torch.bool, device=device)

    def update(self, source: torch.Tensor, buf_pos: int, g0: int, g1: int,
               n_known: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames ``[g0, g1)`` of ``source`` ``(rows, samples)``, padded input from padded
        sample ``buf_pos`` on; ``n_known``: input samples known to exist (onsets past them wait).

        Returns:
            tuple: ``(reset, protected)`` bool ``(rows, g1 - g0)``: cells covered by an onset,
            and by a sharp one.
        """
        hop, n_fft = self.hop, self.n_fft
        start = g0 * hop - buf_pos
        # Running peak up to one window past each frame's end (padded g hop + 2 n_fft, see
        # running_peak): the maximum of the hop-long chunk before each end, then a cummax
        # that carries the peak so far.
        ends = [g * hop + 2 * n_fft - buf_pos for g in (g0, g1 - 1)]
        first_from = 0 if g0 == 0 else ends[0] - hop
        seg = source[:, first_from : ends[1]].abs()
        head = seg[:, : ends[0] - first_from].amax(-1, keepdim=True)
        rest = seg[:, ends[0] - first_from :].reshape(self.rows, g1 - g0 - 1, hop).amax(-1)
        chunks = torch.cat([torch.maximum(head, self.peak.unsqueeze(1)), rest], dim=1)
        peak = torch.cummax(chunks, dim=1).values  # (rows, frames)
        self.peak = peak[:, -1]
        frames = source[:, start : start + (g1 - g0 - 1) * hop + n_fft].unfold(-1, n_fft, hop)
        fraction, self.prev_mag = onset_fraction_block(frames, self.window, peak,
                                                       self.prev_mag, self.block)
        over = fraction >= self.threshold
        centre = torch.arange(g0, g1, device=source.device) * hop
        onset = over & ~torch.cat([self.over_prev, over[:, :-1]], 1)
        onset &= centre + self.half <= n_known
        self.over_prev = over[:, -1:]
        sharp = onset & (fraction >= max(self.threshold, SHARP_ONSET))
        reset, self.onset_hist = _covered(onset, self.onset_hist)
        protected, self.sharp_hist = _covered(sharp, self.sharp_hist)
        return reset, protected


def _covered(marks: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cells with a mark in the last ``width`` frames (the history holds the ``width - 1``
    before), and the new history."""
    width = history.shape[1] + 1
    full = torch.cat([history, marks], dim=1)
    covered = full.unfold(1, width, 1).any(-1) if width > 1 else marks
    return covered, full[:, full.shape[1] - (width - 1):] if width > 1 else history
