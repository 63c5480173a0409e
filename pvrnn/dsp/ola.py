"""Overlap-add: frames back to audio, and the squared-window envelope that normalises it.

One implementation for the phase vocoder's synthesis (:func:`inverse_stft`, what
``torch.istft(center=True)`` computes) and the effects' engine (:func:`overlap_add` of blocks of
frames into a longer output). The envelope ``sum_f w^2[n - f hop]`` is periodic away from the
ends, so it is built from a small table of cumulative sums of the squared window's
``hop``-long pieces (:func:`envelope_table`, :func:`envelope`) rather than by overlap-adding the
window once per frame.
"""

from __future__ import annotations

import torch

__all__ = ["envelope_table", "envelope_pairs", "envelope", "envelope_minimum", "overlap_add",
           "inverse_stft"]


def envelope_table(window: torch.Tensor, hop_length: int) -> torch.Tensor:
    """Cumulative sums of the squared window's ``hop_length``-long pieces, float64 ``(R + 1, hop)``.

    ``window`` is the synthesis window padded to ``n_fft``; ``R = ceil(n_fft / hop_length)``.
    Row ``k`` is the sum of the first ``k`` pieces: the overlap-add of the squared window over
    any run of frames is a difference of two rows (:func:`envelope`).
    """
    n_fft = window.shape[-1]
    rows = -(-n_fft // hop_length)
    squared = window.to(torch.float64).square()
    pieces = torch.nn.functional.pad(squared, (0, rows * hop_length - n_fft)).view(rows, -1)
    return torch.cat([pieces.new_zeros(1, hop_length), pieces.cumsum(0)])


def envelope_pairs(table: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Every difference of two rows of an :func:`envelope_table`, ``(R + 1, R + 1, hop)``:
    ``[u, l]`` is ``table[u] - table[l]`` in ``dtype``, at least its smallest normal number
    (what :func:`envelope` looks up with ``pairs``: no float64 array as long as the output)."""
    return (table.unsqueeze(1) - table.unsqueeze(0)).to(dtype).clamp_min(torch.finfo(dtype).tiny)


def envelope(
    table: torch.Tensor, n_frames: int, start: int, stop: int, pairs: torch.Tensor | None = None
) -> torch.Tensor:
    """Overlap-add of the squared window over ``n_frames`` frames, samples ``[start, stop)``.

    Sample ``p = q * hop + r`` gets piece ``j = q - f`` of every frame ``f`` in
    ``[0, n_frames)`` with ``0 <= j < R``, which sums to
    ``table[min(R, q + 1)] - table[max(0, q - n_frames + 1)]`` at ``r``. In the table's dtype
    and on its device, ``(stop - start,)``; with ``pairs`` (:func:`envelope_pairs` of the
    table) looked up there, in its dtype.
    """
    rows, hop = table.shape[0] - 1, table.shape[1]
    q = torch.arange(start // hop, (stop - 1) // hop + 1, device=table.device)
    upper = torch.clamp(q + 1, max=rows)
    lower = torch.clamp(q - (n_frames - 1), min=0)
    if pairs is not None:
        values = pairs[upper, lower].view(-1)
    else:
        values = (table[upper] - table[lower]).view(-1)
    offset = start - (start // hop) * hop
    return values[offset : offset + stop - start]


def envelope_minimum(table: torch.Tensor, n_frames: int, start: int, stop: int) -> float:
    """The smallest envelope value in ``[start, stop)``, from the few distinct pieces (CPU table).

    Samples from ``(R - 1) * hop`` to ``n_frames * hop`` are covered by every piece: their
    envelope is the periodic one. Only the first and last few pieces need computing.
    """
    rows, hop = table.shape[0] - 1, table.shape[1]
    head_end, tail_start = (rows - 1) * hop, n_frames * hop
    parts = []
    if start < min(stop, head_end):
        parts.append(envelope(table, n_frames, start, min(stop, head_end)))
    if max(start, tail_start) < stop:
        parts.append(envelope(table, n_frames, max(start, tail_start), stop))
    if max(start, head_end) < min(stop, tail_start):
        parts.append(table[rows] - table[0])
    return min(float(part.min()) for part in parts)


def overlap_add(
    frames: torch.Tensor, hop_length: int, *, out: torch.Tensor | None = None, offset: int = 0
) -> torch.Tensor:
    """Sum time-domain frames ``(B, F, N)`` placed ``hop_length`` apart.

    Frame ``f`` covers samples ``[f * hop, f * hop + N)``; the result has
    ``(F - 1) * hop_length + N`` samples, ``(B, span)``. With ``out`` ``(B, T)`` the sum is added
    into ``out[:, offset : offset + span]`` in place (blocks of frames of a longer signal) and
    ``out`` is returned. One strided scatter (the backward of ``unfold``), no loop over frames.
    """
    batch, n_frames, n_fft = frames.shape
    span = n_fft + hop_length * (n_frames - 1)
    if out is not None and n_fft % hop_length == 0:
        # In place, no span-long temporary: piece r of every frame (hop samples) lands on
        # one strided view of out; a loop over the n_fft // hop pieces, not over frames.
        pieces = frames.view(batch, n_frames, n_fft // hop_length, hop_length)
        for r in range(n_fft // hop_length):
            lo = offset + r * hop_length
            out[:, lo : lo + n_frames * hop_length].view(batch, n_frames, hop_length).add_(
                pieces[:, :, r])
        return out
    summed = torch.ops.aten.unfold_backward(frames, [batch, span], 1, n_fft, hop_length)
    if out is None:
        return summed
    out[:, offset : offset + span] += summed
    return out


def inverse_stft(
    spec: torch.Tensor, window: torch.Tensor, hop_length: int, length: int, table: torch.Tensor
) -> torch.Tensor:
    """Inverse STFT of a frames-major spectrum ``(B, F, K)`` -> ``(B, length)`` audio.

    Equals ``torch.istft(spec.transpose(-1, -2), n_fft, hop_length, window=..., center=True,
    length=length)`` to rounding, for ``K <= n_fft // 2 + 1`` bins (missing upper bins are
    zero), without its per-call overlap-add of the squared window over every frame (the
    normalising envelope is built from ``table``), its transposes and its host sync.
    ``window`` is padded to ``n_fft`` (its length), in the real dtype of ``spec``; ``table`` is
    :func:`envelope_table` of it, on the same device. The caller checks that the envelope does
    not vanish over the output (:func:`envelope_minimum`).
    """
    n_fft = window.shape[-1]
    n_frames = spec.shape[1]
    frames = torch.fft.irfft(spec, n=n_fft, dim=-1)  # (B, F, n_fft), contiguous
    frames.mul_(window)
    return normalised(overlap_add(frames, hop_length), table, n_fft, n_frames, length)


def normalised(
    summed: torch.Tensor, table: torch.Tensor, n_fft: int, n_frames: int, length: int
) -> torch.Tensor:
    """What ``torch.istft(center=True, length=length)`` returns from the overlap-add ``summed``
    ``(B, n_fft + hop (n_frames - 1))`` of ``n_frames`` windowed frames: ``length`` samples from
    the first frame's centre, divided by the squared window's envelope (from ``table``), with
    silence past the last frame."""
    start = n_fft // 2  # center=True
    stop = min(start + length, summed.shape[-1])
    out = summed[:, start:stop] / envelope(table, n_frames, start, stop).to(summed.dtype)
    if stop - start < length:  # past the last frame: silence, as torch.istft pads
        out = torch.nn.functional.pad(out, (0, length - (stop - start)))
    return out
