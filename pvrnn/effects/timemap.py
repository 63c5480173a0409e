"""The time map of a stretch: factor knots, the stretch map, and the read position of each frame.

Output frame ``j`` sits at output sample ``j * hop_length`` and reads the input at ``tau_j``,
the inverse of the (possibly time-varying) stretch map, whose total is exactly
``round(integral of the factor)`` samples. Protected cells (sharp onsets) are read at slope 1,
so the frames around an attack keep their spacing and it is not smeared; the time this costs
is taken up by the unprotected cells within a reach, so the map stays close to the requested
one everywhere.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence, Union

import torch
import torch.nn.functional as F

from ..errors import PvrnnError, check_positive, fail

__all__ = ["Factor", "factor_knots", "flatten_curve", "stretch_map", "read_positions"]

Factor = Union[float, torch.Tensor, Sequence[float], Callable[[torch.Tensor], Any]]

#: Unprotected cells keep at least this fraction of their ideal output duration.
_MIN_SLOPE = 0.25

_CURVE = "a number, a tensor of one value per analysis frame, or a callable of time in seconds"


def factor_knots(
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
            raise fail("factor", factor, _CURVE) from error
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


def stretch_map(
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


def read_positions(
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


def flatten_curve(factor: Any, batch: torch.Size, n: int, hop: int) -> Any:
    """A per-item curve ``(..., G)`` -> ``(B, G)`` (validated again in :func:`factor_knots`)."""
    try:
        curve = torch.as_tensor(factor, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise fail("factor", factor, _CURVE) from error
    if curve.dim() <= 1:
        return curve
    try:
        lead = torch.broadcast_shapes(curve.shape[:-1], batch)
    except RuntimeError as error:
        raise fail("factor", factor, f"leading dims that broadcast to {tuple(batch)}") from error
    if lead != batch:
        raise fail("factor", factor, f"leading dims that broadcast to {tuple(batch)}")
    return curve.expand(*batch, curve.shape[-1]).reshape(-1, curve.shape[-1])
