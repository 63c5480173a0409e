"""Sound-design transforms: time-stretch, pitch-shift and cross-synthesis.

Time-stretch is a phase vocoder with identity phase locking and peak-to-peak phase
propagation (Laroche & Dolson, 1999) and transient handling, written as whole-tensor operations
(no Python loops over frames or bins):

1. **Time map.** Output frame ``j`` sits at output sample ``j * hop_length`` and reads the input
   at ``tau_j``, the inverse of the (possibly time-varying) stretch map, whose total is exactly
   ``round(integral of the factor)`` samples. Sharp onsets (clicks, struck notes) are read at
   slope 1, so the frames around an attack keep their spacing and it is not smeared; the time
   this costs is taken up by the unprotected cells within 0.25 s, so the map stays close to
   the requested one everywhere.
2. **Analysis** at exactly ``tau_j`` (rounded to a sample, silence outside the signal): one real
   FFT per output frame. The window and its time derivative are applied in the frequency
   domain (cosine-sum windows are a few-tap convolution there), which gives every bin's
   reassigned instantaneous frequency (Auger & Flandrin) without a second FFT or unwrapping.
3. **Peaks.** A peak is the largest of its 2 neighbours on each side; each bin belongs to the
   nearest peak (one cumsum of peak ranks, then two gathers).
4. **Phase.** Each peak is rotated by ``psi``, the phase the output has gained over the input.
   It continues the rotation of the peak that owned the same bin in the previous frame:
   ``psi_j = psi_{j-1}[parent] + (hop_length - (tau_j - tau_{j-1})) * (w_parent + w_j) / 2``,
   ``w`` the peaks' frequencies. These chains are summed by pointer doubling (``log2`` of the
   block length rounds of gathers) in float64 and wrapped. At onsets the bins that rose by
   3 dB restart at 0 (they take their analysis phases); partials sounding through keep going.
5. **Identity phase locking and synthesis.** The output spectrum is the analysis spectrum times
   the rotation of each bin's peak, so the relative phases around each peak -- the shape of each
   partial -- are those of the input (no phasiness); inverse FFT and weighted overlap-add,
   normalised by the window-square sum.

Long inputs are processed in blocks of frames (bounded memory); rotations, frequencies and
magnitudes of the last frame are carried from block to block.

Pitch-shift stretches by the pitch ratio and resamples back to the original duration with an
FFT (band-limited) resampler; with ``preserve_formants`` each frame's spectral envelope (peak
envelope by cepstral smoothing) is pre-warped so that resampling brings it back in place.
Cross-synthesis works on :class:`~pvrnn.Frames` from :class:`~pvrnn.PhaseVocoder`.
"""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any, Callable, Sequence, Union

import torch
import torch.nn.functional as F

from ..dsp.frames import TWO_PI, Frames, wrap
from ..dsp.vocoder import PhaseVocoder
from ..errors import PvrnnError, check_audio, check_choice, check_int, check_positive, fail

__all__ = [
    "time_stretch",
    "pitch_shift",
    "cross_synthesize",
    "detect_onsets",
    "spectral_envelope",
    "resample",
]

Factor = Union[float, torch.Tensor, Sequence[float], Callable[[torch.Tensor], Any]]

#: Cosine-sum windows ``w[n] = sum_m a_m cos(2 pi m n / N)`` (periodic), by name.
_COSINE_WINDOWS = {
    "hann": (0.5, -0.5),
    "hamming": (0.54, -0.46),
    "blackman": (0.42, -0.5, 0.08),
}
#: A bin magnitude counts as rising when it grows by this factor (3 dB) over one hop.
_RISE = 10.0 ** (3.0 / 20.0)
#: Bins further below the loudest possible bin than this (dB) are ignored by the onset detector.
_ONSET_FLOOR_DB = -60.0
#: The onset detector compares each bin with the largest of its neighbours within this many
#: bins in the previous frame (the maximum filter of SuperFlux, Boeck & Widmer 2013), so a
#: partial gliding by a bin or two (vibrato, a sweep) is not a rise.
_ONSET_SPREAD = 3
#: A spectral peak is larger than this many bins on each side (phase locking).
_LOCK_RADIUS = 2
#: Peaks further than this below their frame's largest magnitude (-80 dB) do not count.
_PEAK_FLOOR = 1e-4
#: Elements (frames x bins x batch) per block of work: bounds memory on long inputs.
_BLOCK_ELEMENTS = 1 << 18
#: Onsets where at least this fraction of the active bins rise (clicks, plucks, struck notes)
#: are also stretched at slope 1; softer ones (legato note changes) only reset their phases.
_SHARP_ONSET = 0.5
#: Seconds around a slope-1 region (a sharp onset) over which the rest takes up its time.
_REACH_SECONDS = 0.25
#: Unprotected cells keep at least this fraction of their ideal output duration.
_MIN_SLOPE = 0.25


# -- validation -----------------------------------------------------------------------------------
def _check_stft(n_fft: Any, hop_length: Any, window: Any) -> tuple[int, int, tuple[float, ...]]:
    n_fft = check_int("n_fft", n_fft, low=16)
    if n_fft % 2:
        raise fail("n_fft", n_fft, "an even number of samples (e.g. 2048)")
    hop_length = check_int("hop_length", hop_length, low=1, high=n_fft // 2)
    if not isinstance(window, str) or window not in _COSINE_WINDOWS:
        raise fail("window", window, "one of " + ", ".join(map(repr, _COSINE_WINDOWS)))
    return n_fft, hop_length, _COSINE_WINDOWS[window]


def _check_input(audio: Any, n_fft: int, name: str = "audio") -> torch.Tensor:
    return check_audio(audio, name, min_length=n_fft, min_length_reason=f"n_fft={n_fft}")


def _window(coeffs: Sequence[float], n_fft: int, like: torch.Tensor) -> torch.Tensor:
    """The periodic cosine-sum window of ``n_fft`` samples, dtype/device of ``like``."""
    n = torch.arange(n_fft, dtype=torch.float64, device=like.device) * (TWO_PI / n_fft)
    w = sum(a * torch.cos(m * n) for m, a in enumerate(coeffs))
    return w.to(like.dtype)


# -- spectra at arbitrary positions ---------------------------------------------------------------
def _padded(audio: torch.Tensor, n_fft: int) -> torch.Tensor:
    """``(B, n)`` -> ``(B, n + n_fft)``: frames centred on every sample, silence outside."""
    return F.pad(audio, (n_fft // 2, n_fft // 2))


def _spectra(
    frames: torch.Tensor, coeffs: Sequence[float], n_fft: int, derivative: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Windowed spectra of raw frames ``(..., n_fft)``.

    Returns ``X_w`` (the window applied) and ``D`` with ``X_dw = 1j * D`` (the window's time
    derivative applied), both ``(..., n_fft // 2 + 1)``. Multiplying by ``cos(2 pi m n / N)``
    is ``(X[k - m] + X[k + m]) / 2`` in frequency, so one FFT of the raw frame gives both.
    """
    spec = torch.fft.rfft(frames)
    k = spec.shape[-1]
    m = len(coeffs) - 1
    ext = torch.cat(  # conjugate symmetry past both ends: X[-j] = X[N - j] = conj(X[j])
        [spec[..., 1 : m + 1].flip(-1).conj(), spec, spec[..., k - 1 - m : k - 1].flip(-1).conj()],
        dim=-1,
    )
    x_w = coeffs[0] * spec
    d = None
    for q in range(1, m + 1):
        lo, hi = ext[..., m - q : m - q + k], ext[..., m + q : m + q + k]
        x_w = x_w + (0.5 * coeffs[q]) * (lo + hi)
        if derivative:
            term = (coeffs[q] * math.pi * q / n_fft) * (lo - hi)
            d = term if d is None else d + term
    return x_w, d


def _peaks(power: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The spectral peaks of each frame and the peak each bin belongs to.

    A peak is the largest of its ``_LOCK_RADIUS`` neighbours on each side (Laroche & Dolson)
    and within 80 dB of the frame's largest bin (fainter ones are numerical dust); a frame
    without any (silence) gets bin 0. Each bin belongs to the nearest peak: with ``rank`` the
    number of peaks up to the bin (one cumsum), the candidates are peak ``rank - 1`` on the
    left and peak ``rank`` on the right.

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
    pooled = F.max_pool1d(flat.unsqueeze(1), 2 * _LOCK_RADIUS + 1, stride=1,
                          padding=_LOCK_RADIUS).squeeze(1)
    peak = (flat == pooled) & (flat > flat.amax(-1, keepdim=True) * _PEAK_FLOOR**2)
    peak[:, 0] |= ~peak.any(-1)
    rank = torch.cumsum(peak, -1)  # peaks at or below each bin
    count = rank[:, -1:]
    n_peaks = int(count.max())
    bins = torch.arange(k, device=flat.device).expand_as(flat)
    peak_bin = torch.zeros(flat.shape[0], n_peaks + 1, dtype=torch.int64, device=flat.device)
    peak_bin = peak_bin.scatter_(-1, torch.where(peak, rank - 1, n_peaks), bins)[:, :n_peaks]
    left = (rank - 1).clamp_min(0)
    right = torch.minimum(rank, count - 1)  # the next peak (a peak's own index: itself + 1)
    right = torch.where(peak, left, right)
    # Nearer to the right peak: right - bin < bin - left, i.e. right + left < 2 bin.
    to_right = (rank == 0) | (peak_bin.gather(-1, right) + peak_bin.gather(-1, left) < 2 * bins)
    which = torch.where(to_right, right, left)
    return (peak_bin.reshape(*shape[:-1], n_peaks), count.reshape(shape[:-1]),
            which.reshape(shape))


def _peak_rotations(
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
        peak_bin, count, which: the peaks of each frame, from :func:`_peaks`.
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


def _overlap_add(out: torch.Tensor, frames: torch.Tensor, start: int, hop: int) -> None:
    """Add frames ``(B, nb, N)`` placed ``hop`` apart into ``out`` ``(B, T)`` from ``start``."""
    b, nb, n_fft = frames.shape
    span = (nb - 1) * hop + n_fft
    if n_fft % hop == 0:  # a few strided adds: one per overlapping frame, not per frame
        target = out[:, start : start + (nb - 1 + n_fft // hop) * hop].view(b, -1, hop)
        for q in range(n_fft // hop):
            target[:, q : q + nb] += frames[..., q * hop : (q + 1) * hop]
        return
    folded = F.fold(frames.transpose(1, 2), output_size=(1, span), kernel_size=(1, n_fft),
                    stride=(1, hop))
    out[:, start : start + span] += folded.reshape(b, span)


def _ola_envelope(window_sq: torch.Tensor, hop: int, n_frames: int) -> torch.Tensor:
    """Sum of ``n_frames`` copies of ``window_sq`` placed ``hop`` apart, ``((n-1)*hop + N,)``."""
    n_fft = window_sq.shape[-1]
    chunks = -(-n_fft // hop)
    w = F.pad(window_sq, (0, chunks * hop - n_fft)).reshape(chunks, hop)
    total = torch.cumsum(w, 0)  # total[c] = sum of chunks 0..c
    rows = torch.arange(n_frames - 1 + chunks, device=w.device)
    hi = total[rows.clamp(max=chunks - 1)]
    lo_index = rows - n_frames  # chunks below this row index fall before the first frame
    lo = torch.where((lo_index >= 0).unsqueeze(-1), total[lo_index.clamp(0, chunks - 1)], 0.0)
    return (hi - lo).reshape(-1)[: (n_frames - 1) * hop + n_fft]


# -- the stretch map ------------------------------------------------------------------------------
def _factor_knots(
    factor: Factor, n: int, hop: int, sample_rate: float, batch: torch.Size, device: Any
) -> torch.Tensor:
    """The local stretch factor at knots ``0, hop, 2 hop, ..., (G - 1) hop, n``: ``(1 or B,
    G + 1)``, float64. ``G = 1 + n // hop`` analysis frames; the factor is linear between
    knots. ``factor`` is a number, a callable of time, or a curve ``(G,)`` / ``(B, G)``.
    """
    n_frames = 1 + n // hop
    b = int(math.prod(batch))
    if isinstance(factor, bool):
        raise fail("factor", factor, "a number > 0 (not a bool), a curve or a callable")
    if isinstance(factor, numbers.Real):
        value = check_positive("factor", factor)
        return torch.full((1, n_frames + 1), value, dtype=torch.float64, device=device)
    if callable(factor) and not isinstance(factor, torch.Tensor):
        times = torch.arange(n_frames, dtype=torch.float64, device=device) * (hop / sample_rate)
        try:
            values = factor(times)
        except Exception as error:  # the user's function: report it as bad input
            raise PvrnnError(f"factor={factor!r}: calling it with the frame times in seconds "
                             f"failed ({type(error).__name__}: {error})") from error
        what = f"factor(times) returning a number or {n_frames} values (one per frame)"
        if isinstance(values, numbers.Real) and not isinstance(values, bool):
            values = torch.full((n_frames,), float(values), dtype=torch.float64, device=device)
        try:
            values = torch.as_tensor(values, dtype=torch.float64, device=device)
        except (TypeError, ValueError, RuntimeError) as error:
            raise fail("factor", factor, what) from error
        if values.shape != (n_frames,):
            raise fail("factor", factor, what + f", got shape {tuple(values.shape)}")
        curve = values.unsqueeze(0)
    else:
        try:
            curve = torch.as_tensor(factor, dtype=torch.float64, device=device)
        except (TypeError, ValueError, RuntimeError) as error:
            raise fail("factor", factor, "a number, a tensor of one value per analysis frame, "
                       "or a callable of time in seconds") from error
        what = (f"a positive number, or a curve (..., {n_frames}): one value per analysis frame "
                f"(1 + n // hop_length = 1 + {n} // {hop})")
        if curve.dim() == 0 or curve.shape[-1] != n_frames:
            raise fail("factor", factor, what)
        curve = curve.reshape(-1, n_frames)  # (1 or B, G): time_stretch flattened the batch
        if curve.shape[0] not in (1, b):
            raise fail("factor", factor, f"one curve, or one per item ({b})")
    if not bool(torch.isfinite(curve).all()):
        raise fail("factor", factor, "finite values (found NaN or inf)")
    if not bool((curve > 0).all()):
        raise fail("factor", factor, f"values > 0 (smallest is {float(curve.min()):g})")
    return torch.cat([curve, curve[:, -1:]], dim=-1)


def _stretch_map(
    knots: torch.Tensor, n: int, hop: int, protected: torch.Tensor, reach: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Input knot times ``(G + 1,)`` and output knot times ``(B, G + 1)`` (float64), and length.

    Cell ``g`` spans input ``[g hop, (g + 1) hop]`` (the last one ends at ``n``) and would
    ideally last ``hop * mean factor`` in the output. Protected cells (sharp onsets) last
    exactly their input duration (slope 1); the time they give up (or take) is spread over
    the unprotected cells within ``reach`` cells (a triangular kernel), so the map stays close
    to the ideal one everywhere and onsets land near where the requested map puts them.
    """
    n_cells = knots.shape[-1] - 1
    device = knots.device
    t_in = torch.clamp(torch.arange(n_cells + 1, dtype=torch.float64, device=device) * hop, max=n)
    length = t_in[1:] - t_in[:-1]  # (G,)
    ideal = length * 0.5 * (knots[:, 1:] + knots[:, :-1])  # (B, G) ideal output per cell
    total = ideal.sum(-1)  # (B,)
    out_len = int(torch.round(total[0]).item())
    if knots.shape[0] > 1:
        totals = torch.round(total)
        if not bool((totals == totals[0]).all()):
            raise fail("factor", "a batch of curves", "curves giving every item the same output "
                       f"duration (got {int(totals.min())} to {int(totals.max())} samples)")
    b = max(protected.shape[0], ideal.shape[0])
    ideal = ideal.expand(b, n_cells)
    protected = protected.expand(b, n_cells)
    free = (~protected).to(torch.float64)
    debt = torch.where(protected, ideal - length, 0.0)  # output time protected cells give up
    ramp = torch.arange(-reach, reach + 1, dtype=torch.float64, device=device)
    kernel = (reach + 1 - ramp.abs()).reshape(1, 1, -1)

    def smooth(x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x.unsqueeze(1), kernel, padding=reach).squeeze(1)

    norm = smooth(free)
    share = torch.where(norm > 0, debt / norm.clamp_min(1e-300), 0.0)
    spread = (ideal + free * smooth(share)).clamp_min(_MIN_SLOPE * ideal)
    cell_out = torch.where(protected, length, spread)
    t_out = F.pad(torch.cumsum(cell_out, -1), (1, 0))
    # Exact total: whatever could not be spread nearby (or was clamped) is spread evenly.
    t_out = t_out * (out_len / t_out[:, -1:])
    return t_in, t_out, out_len


def _read_positions(
    t_in: torch.Tensor, t_out: torch.Tensor, hop: int, n_frames: int, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input position (samples, long) and cell index of each output frame ``(B, n_frames)``."""
    b = t_out.shape[0]
    times = torch.arange(n_frames, dtype=torch.float64, device=t_out.device) * hop
    times = times.expand(b, n_frames).contiguous()
    cell = torch.searchsorted(t_out.contiguous(), times, right=True) - 1
    cell = cell.clamp(0, t_out.shape[-1] - 2)
    o0, o1 = t_out.gather(1, cell), t_out.gather(1, cell + 1)
    frac = torch.where(o1 > o0, (times - o0) / (o1 - o0).clamp_min(1e-300), 0.0).clamp(0, 1)
    tau = t_in[cell] + frac * (t_in[cell + 1] - t_in[cell])
    return torch.round(tau).to(torch.int64).clamp(0, n), cell


def _spread_max(magnitude: torch.Tensor) -> torch.Tensor:
    """Largest magnitude within ``_ONSET_SPREAD`` bins of each bin, ``(..., K)``."""
    shape = magnitude.shape
    pooled = F.max_pool1d(magnitude.reshape(-1, 1, shape[-1]), 2 * _ONSET_SPREAD + 1, stride=1,
                          padding=_ONSET_SPREAD)
    return pooled.reshape(shape)


def _shift(mask: torch.Tensor, fill: bool) -> torch.Tensor:
    """``mask`` moved one step later along the last dim, ``fill`` entering first."""
    return torch.cat([torch.full_like(mask[..., :1], fill), mask[..., :-1]], dim=-1)


# -- onsets ---------------------------------------------------------------------------------------
def _onset_fraction(
    padded: torch.Tensor, n: int, n_fft: int, hop: int, coeffs: Sequence[float], peak: torch.Tensor
) -> torch.Tensor:
    """Fraction of active bins rising by >= 3 dB since the previous frame, ``(B, G)``."""
    frames = padded.unfold(-1, n_fft, hop)  # (B, G, N), a view
    b, g = frames.shape[0], frames.shape[1]
    k = n_fft // 2 + 1
    # A full-scale sinusoid's bin reaches coeffs[0] * n_fft / 2 (times its amplitude).
    floor = peak * (coeffs[0] * n_fft / 2 * 10 ** (_ONSET_FLOOR_DB / 20))
    floor = floor.clamp_min(torch.finfo(padded.dtype).tiny).reshape(b, 1, 1)
    block = max(16, _BLOCK_ELEMENTS // max(1, b * k))
    fractions = []
    previous = None
    for start in range(0, g, block):  # blocks of frames: bounded memory on long inputs
        x_w, _ = _spectra(frames[:, start : start + block], coeffs, n_fft, derivative=False)
        mag = x_w.abs()
        before = torch.cat([mag[:, :1] if previous is None else previous, mag[:, :-1]], dim=1)
        previous = mag[:, -1:]
        before = _spread_max(before)
        active = (mag > floor) | (before > floor)
        rising = active & (mag >= _RISE * torch.maximum(before, floor))
        count = active.sum(-1)
        frac = rising.sum(-1) / count.clamp_min(1)
        fractions.append(torch.where(count >= max(4, k // 100), frac, 0.0))
    return torch.cat(fractions, dim=1)


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


def _protected_cells(onsets: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Cells stretched at slope 1 around an onset at frame ``t``: the input span
    ``[t hop, t hop + n_fft / 2]``, where the attack lies (the first frame that rose reaches
    it with the heavy middle of its window), so the frames around it keep their spacing."""
    g = onsets.shape[-1]
    width = max(1, -(-n_fft // (2 * hop)))
    marks = onsets.to(torch.int32)
    end = F.pad(marks, (width, 0))[:, :g]  # the region of an onset at t closes after `width`
    return torch.cumsum(marks - end, -1) > 0


def detect_onsets(
    audio: torch.Tensor,
    sample_rate: float,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    threshold: float = 0.4,
    window: str = "hann",
) -> torch.Tensor:
    """Onsets: frames where many active bins rose by at least 3 dB since the previous frame.

    The detector the time-stretch uses to protect attacks. A bin is active when it is within
    60 dB of the loudest bin the signal's peak level allows; it rises when its magnitude is
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
        window (str): ``"hann"``, ``"hamming"`` or ``"blackman"``.

    Returns:
        Tensor: ``(..., 1 + time // hop_length)`` bool, frames centred on
        ``t * hop_length`` (as :class:`pvrnn.PhaseVocoder`).

    Raises:
        PvrnnError: on bad audio or settings.

    Example:
        >>> clicks = torch.zeros(44100); clicks[::11025] = 1.0
        >>> detect_onsets(clicks, 44100).nonzero()     # one frame per click
    """
    n_fft, hop_length, coeffs = _check_stft(n_fft, hop_length, window)
    audio = _check_input(audio, n_fft)
    check_positive("sample_rate", sample_rate)
    threshold = check_positive("threshold", threshold)
    if threshold > 1:
        raise fail("threshold", threshold, "a fraction in (0, 1]")
    batch, n = audio.shape[:-1], audio.shape[-1]
    flat = audio.reshape(-1, n)
    padded = _padded(flat, n_fft)
    peak = flat.abs().amax(-1)
    fraction = _onset_fraction(padded, n, n_fft, hop_length, coeffs, peak)
    onsets = _onsets(fraction, threshold, n, n_fft, hop_length)
    return onsets.reshape(*batch, onsets.shape[-1])


# -- the stretch engine ---------------------------------------------------------------------------
def _progress_bar(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm  # text bars on stderr: no widget warnings in notebooks

    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, leave=False)


def _stretch(
    audio: torch.Tensor,
    sample_rate: float,
    factor: Factor,
    *,
    n_fft: int,
    hop_length: int,
    coeffs: Sequence[float],
    transients: bool,
    onset_threshold: float,
    gain: Callable[[torch.Tensor], torch.Tensor] | None = None,
    link_channels: bool = False,
    progress: bool = False,
    desc: str = "stretch",
) -> torch.Tensor:
    """The phase-locked vocoder on ``audio`` ``(B, n)`` (validated); see the module docstring.

    ``gain(magnitude (B, nb, K)) -> (B, nb, K)`` optionally rescales each output bin.
    """
    b, n = audio.shape
    device, dtype = audio.device, audio.dtype
    k = n_fft // 2 + 1
    padded = _padded(audio, n_fft)
    knots = _factor_knots(factor, n, hop_length, sample_rate, torch.Size([b]), device)

    # Onsets take the analysis phases of the bins that rose (reset); sharp ones are also
    # stretched at slope 1, so that the frames around the attack keep their spacing.
    protected = torch.zeros(1, knots.shape[-1] - 1, dtype=torch.bool, device=device)
    onset_cells = None
    if transients:
        # Linked channels share one map: onsets are found on their mix.
        source = padded.mean(0, keepdim=True) if link_channels else padded
        peak = source.abs().amax(-1)
        fraction = _onset_fraction(source, n, n_fft, hop_length, coeffs, peak)
        onsets = _onsets(fraction, onset_threshold, n, n_fft, hop_length)
        onset_cells = _protected_cells(onsets, n_fft, hop_length)
        sharp = onsets & (fraction >= max(onset_threshold, _SHARP_ONSET))
        protected = _protected_cells(sharp, n_fft, hop_length)
    reach = max(1, int(round(_REACH_SECONDS * sample_rate / hop_length)))
    t_in, t_out, out_len = _stretch_map(knots, n, hop_length, protected, reach)
    if out_len < 1:
        raise fail("factor", factor, f"a stretch leaving at least one sample (the output "
                   f"would have {out_len} of the input's {n})")
    n_frames = 1 + out_len // hop_length
    positions, cell = _read_positions(t_in, t_out, hop_length, n_frames, n)
    positions = positions.expand(b, n_frames)
    cell = cell.expand(b, n_frames)
    # Frame j resets (takes the analysis phases) when it reads a protected cell; frame 0 always.
    reset = torch.zeros(b, n_frames, dtype=torch.bool, device=device)
    if onset_cells is not None:
        reset = onset_cells.expand(b, -1).gather(1, cell)
    reset[:, 0] = True
    advance = torch.diff(positions, dim=1, prepend=positions[:, :1])  # analysis hop per frame
    excess = (hop_length - advance).to(torch.float64)  # output hop minus analysis hop

    window = _window(coeffs, n_fft, audio)
    strided = padded.unfold(-1, n_fft, 1)  # (B, n + 1, N), a view: frame at any sample
    rows = torch.arange(b, device=device).unsqueeze(1)
    bin_freq_t = torch.arange(k, dtype=torch.float64, device=device) * (TWO_PI / n_fft)
    bin_freq_t = bin_freq_t.to(dtype)
    envelope = _ola_envelope(window.square(), hop_length, n_frames)
    out = torch.zeros(b, envelope.shape[0], dtype=dtype, device=device)
    tiny = torch.finfo(dtype).tiny

    block = max(16, _BLOCK_ELEMENTS // (b * k))
    carry_rot = torch.zeros(b, k, dtype=torch.float64, device=device)  # previous frame, per bin
    carry_freq = torch.zeros(b, k, dtype=dtype, device=device)
    carry_power = torch.zeros(b, 1, k, dtype=dtype, device=device)
    bar = _progress_bar(progress, n_frames, desc)
    for j0 in range(0, n_frames, block):  # blocks of frames: bounded memory, carried state
        j1 = min(n_frames, j0 + block)
        x_w, d = _spectra(strided[rows, positions[:, j0:j1]], coeffs, n_fft)
        re, im = x_w.real, x_w.imag
        power = re * re + im * im
        # Reassigned frequency (rad/sample): bin centre - Im(X_dw / X_w) = centre - Re(D / X_w).
        dev = (d.real * re + d.imag * im) / power.clamp_min(tiny)
        freq = bin_freq_t - dev.clamp(-math.pi, math.pi)
        peak_bin, count, which = _peaks(power)
        # At onset frames the bins that rose (the attack) take their analysis phases; the
        # others (partials sounding through the attack) keep going. (Rise in power: 6 dB.)
        block_reset = reset[:, j0:j1]
        if bool(block_reset.any()):
            before = torch.cat([carry_power, power[:, :-1]], dim=1)
            rose = power >= _RISE**2 * _spread_max(before)
            bin_reset = block_reset.unsqueeze(-1) & rose
        else:
            bin_reset = torch.zeros_like(power, dtype=torch.bool)
        carry_power = power[:, -1:]
        psi, peak_freq = _peak_rotations(
            peak_bin, count, which, freq, excess[:, j0:j1], bin_reset, carry_rot, carry_freq
        )  # (B, nb, P): each peak's rotation and frequency
        psi = wrap(psi)
        carry_rot = psi[:, -1].gather(-1, which[:, -1])
        carry_freq = peak_freq[:, -1].gather(-1, which[:, -1])
        psi = psi.to(dtype)
        spec = x_w * torch.polar(torch.ones_like(psi), psi).gather(-1, which)
        if gain is not None:
            spec = spec * gain(power.sqrt())
        frames = torch.fft.irfft(spec, n=n_fft) * window  # (B, nb, N)
        _overlap_add(out, frames, j0 * hop_length, hop_length)
        if bar is not None:
            bar.update(j1 - j0)
    if bar is not None:
        bar.close()
    out = out / envelope.clamp_min(tiny)
    return out[:, n_fft // 2 : n_fft // 2 + out_len]


def time_stretch(
    audio: torch.Tensor,
    sample_rate: float,
    factor: Factor,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    window: str = "hann",
    transients: bool = True,
    onset_threshold: float = 0.4,
    link_channels: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """Change the duration of a sound without changing its pitch.

    ``factor`` is **output duration / input duration**: 2.0 makes the sound twice as long
    (half speed), 0.5 twice as short. This is the inverse of librosa's and Rubber Band's
    ``rate`` (``librosa.effects.time_stretch(y, rate=0.5)`` is ``factor=2.0`` here).

    A phase vocoder with identity phase locking and peak-to-peak phase propagation (Laroche
    & Dolson) keeps partials coherent (no phasiness), also under vibrato and glides. At
    onsets (see :func:`detect_onsets`) the bins that rose take their analysis phases, and
    sharp onsets (at least half the active bins rising: clicks, struck notes) are stretched at
    slope 1, so attacks stay sharp while the sound around them takes up the stretch. Phase is
    accumulated in float64, so long stretches keep their pitch. See the module docstring.

    Args:
        audio (Tensor): ``(..., time)`` float32 or float64 waveform, at least ``n_fft``
            samples, finite. Leading dims (batch, channels) are processed together.
        sample_rate (float): Hz; turns the times given to a callable ``factor`` into seconds.
        factor (float, Tensor or callable): a positive number; or a curve of one positive
            value per analysis frame, ``(..., 1 + time // hop_length)`` (frames ``hop_length``
            apart, linear in between; leading dims broadcast against ``audio``'s, and every
            item must get the same output length); or a callable taking the frame times in
            seconds (a float64 tensor) and returning such a curve.
        n_fft (int): FFT size, even; 2048 (46 ms at 44.1 kHz) resolves partials 21.5 Hz apart.
        hop_length (int): output samples between synthesis frames, ``<= n_fft // 2``; also the
            spacing of the ``factor`` curve and of the onset detector. ``n_fft // 4`` is best.
        window (str): ``"hann"`` (default), ``"hamming"`` or ``"blackman"``.
        transients (bool): detect onsets and keep them sharp (default ``True``).
        onset_threshold (float): fraction of active bins in ``(0, 1]`` that must rise by 3 dB
            for a frame to count as an onset (default 0.4; steady noise, vibrato and sweeps
            score under 0.1, legato note changes 0.3 to 0.4, clicks and struck notes more).
        link_channels (bool): the leading items are channels of one sound (stereo): they
            share one time map, with onsets found on their mix, so they stay aligned.
            Default ``False``: every item is stretched on its own.
        progress (bool): show a progress bar on stderr.

    Returns:
        Tensor: ``(..., round(time * factor))`` (for a curve: the rounded integral of the
        factor over the input), dtype and device of ``audio``. ``factor=1.0`` returns a copy
        of the input.

    Raises:
        PvrnnError: when ``audio`` is not finite float audio of at least ``n_fft`` samples,
            ``factor`` is not positive and finite (or a curve of the wrong length), or a
            setting is out of range.

    Example:
        >>> audio, rate = pvrnn.examples.load("clarinet")
        >>> slow = pvrnn.time_stretch(audio, rate, 2.0)          # twice as long, same pitch
        >>> ramp = pvrnn.time_stretch(audio, rate, lambda t: 1 + t)  # slowing down over time
    """
    n_fft, hop_length, coeffs = _check_stft(n_fft, hop_length, window)
    audio = _check_input(audio, n_fft)
    sample_rate = check_positive("sample_rate", sample_rate)
    onset_threshold = _check_fraction("onset_threshold", onset_threshold)
    if isinstance(factor, numbers.Real) and not isinstance(factor, bool):
        if check_positive("factor", factor) == 1.0:
            return audio.clone()
    batch, n = audio.shape[:-1], audio.shape[-1]
    flat = audio.reshape(-1, n)
    if not isinstance(factor, numbers.Real) and not callable(factor):
        factor = _flatten_curve(factor, batch, n, hop_length)
    out = _stretch(
        flat, sample_rate, factor, n_fft=n_fft, hop_length=hop_length, coeffs=coeffs,
        transients=bool(transients), onset_threshold=onset_threshold,
        link_channels=bool(link_channels), progress=progress,
    )
    return out.reshape(*batch, out.shape[-1])


def _check_fraction(name: str, value: Any) -> float:
    value = check_positive(name, value)
    if value > 1:
        raise fail(name, value, "a fraction in (0, 1]")
    return value


def _flatten_curve(factor: Any, batch: torch.Size, n: int, hop: int) -> Any:
    """A per-item curve ``(..., G)`` -> ``(B, G)`` (validated again in ``_factor_knots``)."""
    try:
        curve = torch.as_tensor(factor, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise fail("factor", factor, "a number, a tensor of one value per analysis frame, or "
                   "a callable of time in seconds") from error
    if curve.dim() <= 1:
        return curve
    try:
        lead = torch.broadcast_shapes(curve.shape[:-1], batch)
    except RuntimeError as error:
        raise fail("factor", factor, f"leading dims that broadcast to {tuple(batch)}") from error
    if lead != batch:
        raise fail("factor", factor, f"leading dims that broadcast to {tuple(batch)}")
    return curve.expand(*batch, curve.shape[-1]).reshape(-1, curve.shape[-1])


# -- envelopes and resampling ---------------------------------------------------------------------
def spectral_envelope(
    magnitude: torch.Tensor, n_fft: int, lifter: int, *, log: bool = False
) -> torch.Tensor:
    """Spectral envelope of magnitude spectra by cepstral smoothing.

    The valleys between harmonics are first filled (a running maximum of the log magnitude
    over ``n_fft / (2 lifter)`` bins), then the result is taken to the real cepstrum, every
    quefrency of ``lifter`` samples or more is removed (the harmonic fine structure lives
    there), and the rest goes back to a smooth log spectrum that runs along the peaks of the
    harmonics. It follows the harmonics of pitches below ``sample_rate / (2 lifter)`` Hz.

    Args:
        magnitude (Tensor): ``(..., n_bins)`` linear magnitudes, ``n_bins = n_fft // 2 + 1``.
        n_fft (int): the FFT size the spectra come from.
        lifter (int): cutoff quefrency in samples, ``1 .. n_fft // 2``; e.g. 1.5 ms of samples
            keeps formants and drops the harmonics of pitches below ~650 Hz.
        log (bool): return the natural-log envelope instead of the linear one.

    Returns:
        Tensor: ``(..., n_bins)`` envelope, same dtype (linear, or natural log if ``log``).

    Raises:
        PvrnnError: when the shapes or ``lifter`` do not fit ``n_fft``.
    """
    n_fft = check_int("n_fft", n_fft, low=2)
    if not isinstance(magnitude, torch.Tensor) or magnitude.shape[-1] != n_fft // 2 + 1:
        raise fail("magnitude", magnitude, f"a tensor (..., n_fft // 2 + 1 = {n_fft // 2 + 1})")
    lifter = check_int("lifter", lifter, low=1, high=n_fft // 2)
    peak = magnitude.amax(-1, keepdim=True)
    floor = (peak * 1e-5).clamp_min(torch.finfo(magnitude.dtype).tiny)  # -100 dB below the peak
    log_mag = torch.log(torch.maximum(magnitude, floor))
    # Fill the valleys between harmonics first (a running max over half the smoothing
    # scale), so the smoothing follows the harmonic peaks rather than their mean.
    width = max(1, n_fft // (4 * lifter)) * 2 + 1
    shape = log_mag.shape
    log_mag = F.max_pool1d(log_mag.reshape(-1, 1, shape[-1]), width, stride=1,
                           padding=width // 2).reshape(shape)
    ceps = torch.fft.irfft(log_mag, n=n_fft)
    q = torch.arange(n_fft, device=magnitude.device)
    keep = (q < lifter) | (q > n_fft - lifter)
    smooth = torch.fft.rfft(ceps * keep.to(ceps.dtype), n=n_fft).real
    return smooth if log else torch.exp(smooth)


def _envelope_warp(
    ratio: float, n_fft: int, lifter: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Gain ``E(ratio * k) / E(k)`` per bin: after resampling by ``ratio`` the envelope is back."""

    def gain(magnitude: torch.Tensor) -> torch.Tensor:
        log_env = spectral_envelope(magnitude, n_fft, lifter, log=True)
        k = magnitude.shape[-1]
        where = torch.arange(k, dtype=log_env.dtype, device=log_env.device) * ratio
        where = where.clamp(max=k - 1)
        lo = where.floor().to(torch.int64).clamp(max=k - 2)
        frac = where - lo
        lo = lo.expand_as(log_env)
        warped = torch.lerp(log_env.gather(-1, lo), log_env.gather(-1, lo + 1), frac)
        return torch.exp(warped - log_env)

    return gain


def resample(audio: torch.Tensor, length: int) -> torch.Tensor:
    """Band-limited resampling of ``audio`` ``(..., time)`` to exactly ``length`` samples.

    FFT interpolation (the ideal low-pass), with the signal zero-padded to twice its length so
    that the ends do not wrap into each other. The ratio ``length / time`` is exact.

    Args:
        audio (Tensor): ``(..., time)`` float waveform.
        length (int): samples wanted, ``>= 1``.

    Returns:
        Tensor: ``(..., length)``, dtype and device of ``audio``.

    Raises:
        PvrnnError: on bad audio or length.
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


def pitch_shift(
    audio: torch.Tensor,
    sample_rate: float,
    semitones: float,
    *,
    preserve_formants: bool = False,
    envelope_lifter: float | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    window: str = "hann",
    transients: bool = True,
    onset_threshold: float = 0.4,
    link_channels: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """Transpose a sound by ``semitones`` and keep its duration.

    The sound is time-stretched by ``2 ** (semitones / 12)`` (see :func:`time_stretch`:
    phase-locked, transients kept) and resampled back to its length with a band-limited FFT
    resampler, which scales every frequency by the same ratio. The spectral envelope moves
    with the pitch (a voice gets smaller or larger) unless ``preserve_formants``: then each
    frame's envelope (cepstral smoothing of the log spectrum) is pre-warped during the stretch
    so that resampling brings it back where it was.

    Args:
        audio (Tensor): ``(..., time)`` float waveform, at least ``n_fft`` samples.
        sample_rate (float): Hz.
        semitones (float): transposition, positive up; 12 is an octave. Any finite value with
            ``|semitones| <= 48``.
        preserve_formants (bool): keep the spectral envelope in place (default ``False``).
        envelope_lifter (float, optional): cepstral cutoff of the envelope in seconds. The
            envelope must not resolve the harmonics, so the cutoff must stay below half the
            period of the highest pitch involved. ``None`` (default) measures the sound's
            median pitch (YIN) and takes ``min(1.5 ms, 0.5 / highest pitch)``, the highest
            pitch being the higher of the original and the transposed one; 1.5 ms when no
            pitch is found. (A fixed 1.5 ms made a clarinet A4 shifted up a fifth lose its
            fundamental: the envelope followed its odd harmonics.)
        n_fft (int): FFT size, even. hop_length (int): synthesis hop, ``<= n_fft // 2``.
        window (str): ``"hann"``, ``"hamming"`` or ``"blackman"``.
        transients (bool): keep attacks sharp (see :func:`time_stretch`).
        onset_threshold (float): onset sensitivity (see :func:`time_stretch`).
        link_channels (bool): the leading items are channels of one sound (see
            :func:`time_stretch`).
        progress (bool): show a progress bar on stderr.

    Returns:
        Tensor: ``(..., time)``, dtype and device of ``audio``. ``semitones=0`` returns a copy.

    Raises:
        PvrnnError: on bad audio, a non-finite or out-of-range ``semitones``, or bad settings.

    Example:
        >>> audio, rate = pvrnn.examples.load("clarinet")
        >>> down = pvrnn.pitch_shift(audio, rate, -3)                       # a minor third down
        >>> chip = pvrnn.pitch_shift(audio, rate, 7, preserve_formants=True)
    """
    n_fft, hop_length, coeffs = _check_stft(n_fft, hop_length, window)
    audio = _check_input(audio, n_fft)
    sample_rate = check_positive("sample_rate", sample_rate)
    ok = isinstance(semitones, numbers.Real) and not isinstance(semitones, bool)
    if not ok or not math.isfinite(semitones) or abs(semitones) > 48:
        raise fail("semitones", semitones, "a finite number of semitones in [-48, 48]")
    onset_threshold = _check_fraction("onset_threshold", onset_threshold)
    if semitones == 0:
        return audio.clone()
    ratio = 2.0 ** (semitones / 12.0)
    if envelope_lifter is None:
        envelope_lifter = 1.5e-3
        if preserve_formants:
            envelope_lifter = _default_lifter(audio, sample_rate, ratio)
    lifter_s = check_positive("envelope_lifter", envelope_lifter)
    lifter = max(1, min(n_fft // 2, int(round(lifter_s * sample_rate))))
    batch, n = audio.shape[:-1], audio.shape[-1]
    gain = _envelope_warp(ratio, n_fft, lifter) if preserve_formants else None
    stretched = _stretch(
        audio.reshape(-1, n), sample_rate, ratio, n_fft=n_fft, hop_length=hop_length,
        coeffs=coeffs, transients=bool(transients),
        onset_threshold=onset_threshold, gain=gain, link_channels=bool(link_channels),
        progress=progress, desc="pitch",
    )
    return resample(stretched, n).reshape(*batch, n)


def _default_lifter(audio: torch.Tensor, sample_rate: float, ratio: float) -> float:
    """``min(1.5 ms, 0.5 / highest pitch)`` from the sound's median YIN pitch."""
    from ..metrics import estimate_f0

    hop = max(1, int(round(0.01 * sample_rate)))
    frame = max(2, int(round(0.046 * sample_rate)))
    if audio.shape[-1] < frame:
        return 1.5e-3
    f0 = estimate_f0(audio.reshape(-1, audio.shape[-1]), sample_rate, hop_length=hop,
                     frame_length=frame, fmin=max(40.0, 2.2 * sample_rate / frame))
    voiced = f0[~f0.isnan()]
    if voiced.numel() == 0:
        return 1.5e-3
    highest = float(voiced.median()) * max(1.0, ratio)
    return min(1.5e-3, 0.5 / highest)


# -- cross-synthesis ------------------------------------------------------------------------------
_MODES = ("spectral", "deltas")
_FITS = ("error", "loop", "trim", "stretch")


def _fit_lengths(
    carrier: torch.Tensor, modulator: torch.Tensor, fit: str, sample_rate: float, n_fft: int,
    hop_length: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    n_c, n_m = carrier.shape[-1], modulator.shape[-1]
    if n_c == n_m:
        return carrier, modulator
    if fit == "error":
        raise PvrnnError(
            f"modulator has {n_m} samples but carrier has {n_c}: expected equal lengths, or "
            f"fit='loop' (repeat or cut the modulator), 'trim' (cut both to the shorter) or "
            f"'stretch' (time-stretch the modulator to the carrier's length)"
        )
    if fit == "trim":
        n = min(n_c, n_m)
        return carrier[..., :n], modulator[..., :n]
    if fit == "loop":
        repeats = -(-n_c // n_m)
        looped = modulator.repeat(*([1] * (modulator.dim() - 1)), repeats)
        return carrier, looped[..., :n_c]
    stretched = time_stretch(modulator, sample_rate, n_c / n_m, n_fft=n_fft,
                             hop_length=hop_length)
    return carrier, stretched


def cross_synthesize(
    carrier: torch.Tensor,
    modulator: torch.Tensor,
    sample_rate: float,
    *,
    mode: str = "spectral",
    fit: str = "error",
    envelope: bool = False,
    reset_every: float | None = 0.25,
    envelope_lifter: float = 1.5e-3,
    n_fft: int = 2048,
    hop_length: int = 512,
    window: str = "hann",
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

    Args:
        carrier (Tensor): ``(..., time)`` float waveform (gives frequencies / the start).
        modulator (Tensor): ``(..., time)`` float waveform, same sample rate; leading dims
            broadcast against the carrier's.
        sample_rate (float): Hz, of both (resample one first if they differ).
        mode (str): ``"spectral"`` or ``"deltas"``.
        fit (str): what to do when the lengths differ: ``"error"`` (default: raise),
            ``"loop"`` (repeat or cut the modulator to the carrier's length), ``"trim"`` (cut
            both to the shorter) or ``"stretch"`` (time-stretch the modulator to the carrier's
            length).
        envelope (bool): spectral mode: impose the modulator's envelope only.
        reset_every (float or None): deltas mode: seconds between reset frames from the
            carrier (default 0.25); ``None`` never resets.
        envelope_lifter (float): cepstral cutoff of the envelopes in seconds (default 1.5 ms).
        n_fft (int): FFT size, even. hop_length (int): hop, ``<= n_fft // 2``.
        window (str): ``"hann"``, ``"hamming"`` or ``"blackman"``.

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
    n_fft, hop_length, _ = _check_stft(n_fft, hop_length, window)
    mode = check_choice("mode", mode, _MODES)
    fit = check_choice("fit", fit, _FITS)
    carrier = _check_input(carrier, n_fft, "carrier")
    modulator = _check_input(modulator, n_fft, "modulator")
    if isinstance(sample_rate, (tuple, list)):
        raise fail("sample_rate", sample_rate, "one sample rate for both sounds (resample one "
                   "of them first if they differ)")
    sample_rate = check_positive("sample_rate", sample_rate)
    if carrier.device != modulator.device:
        raise PvrnnError(f"carrier is on {carrier.device} but modulator is on "
                         f"{modulator.device}: expected both on the same device")
    try:
        batch = torch.broadcast_shapes(carrier.shape[:-1], modulator.shape[:-1])
    except RuntimeError as error:
        raise PvrnnError(f"carrier has shape {tuple(carrier.shape)} and modulator "
                         f"{tuple(modulator.shape)}: expected leading dims that broadcast"
                         ) from error
    dtype = torch.promote_types(carrier.dtype, modulator.dtype)
    carrier, modulator = carrier.to(dtype), modulator.to(dtype)
    carrier, modulator = _fit_lengths(carrier, modulator, fit, sample_rate, n_fft, hop_length)
    n = carrier.shape[-1]
    if n < n_fft:
        raise fail("carrier", carrier, f"at least n_fft={n_fft} samples after fit={fit!r}")
    carrier = carrier.expand(*batch, n)
    modulator = modulator.expand(*batch, n)
    pv = PhaseVocoder(n_fft, hop_length, window=window, sample_rate=sample_rate)
    car = pv.analyze(carrier)
    mod = pv.analyze(modulator)
    if mode == "spectral":
        magnitude = mod.magnitude
        if envelope:
            lifter = max(1, min(n_fft // 2, int(round(
                check_positive("envelope_lifter", envelope_lifter) * sample_rate))))
            env_mod = spectral_envelope(mod.magnitude, n_fft, lifter, log=True)
            env_car = spectral_envelope(car.magnitude, n_fft, lifter, log=True)
            magnitude = car.magnitude * torch.exp(env_mod - env_car)
        out = car.replace(magnitude=magnitude)
    else:
        every = None
        resets = None
        if reset_every is not None:
            seconds = check_positive("reset_every", reset_every)
            every = max(1, int(round(seconds * sample_rate / hop_length)))
            resets = car.replace(magnitude=car.magnitude[..., every::every, :],
                                 deviation=car.deviation[..., every::every, :])
            if resets.n_frames == 0:
                every, resets = None, None
        out = Frames.from_deltas(mod.deltas(), car[0], reset_every=every, reset_frames=resets)
    return pv.synthesize(out, length=n)
