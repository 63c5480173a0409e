"""The time map of a stretch: factor knots, the stretch map, and the read position of each frame.

Output frame ``j`` sits at output sample ``j * hop_length`` and reads the input at ``tau_j``,
the inverse of the (possibly time-varying) stretch map, whose total is exactly
``round(integral of the factor)`` samples. Protected cells (sharp onsets) are read at slope 1,
so the frames around an attack keep their spacing and it is not smeared; the time this costs
is taken up by the unprotected cells within a reach (:func:`local_map`), so the map stays close
to the requested one everywhere. Everything here is local (a cell depends on the cells within
``2 reach``), so a stream can be stretched with a bounded look-ahead; the running sums and the
end of the map are the engine's (:mod:`pvrnn.effects.engine`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence, Union

import torch
import torch.nn.functional as F

from ..errors import PvrnnError, check_positive, fail

__all__ = ["Factor", "call_factor", "factor_knots", "flatten_curve", "local_map", "rescale_knots",
           "FIXED", "MAX_OUTPUT"]

Factor = Union[float, torch.Tensor, Sequence[float], Callable[[torch.Tensor], Any]]

#: Knot times are kept in fixed point, in units of ``1 / FIXED`` samples (int64): their running
#: sums are exact, so the map does not depend on how a stream was cut into blocks.
FIXED = 1 << 20
#: The longest output (samples) the fixed-point map can hold with room to spare.
MAX_OUTPUT = 1 << 40

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


def local_map(
    ideal: torch.Tensor, length: torch.Tensor, protected: torch.Tensor, reach: int,
    missing_before: int, missing_after: int, protect: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Output duration of cells and its lower bound, from the cells ``2 reach`` around them.

    The arrays ``(rows, C)`` hold cells ``[c0 - 2 reach, c1 + 2 reach)`` of the map, less the
    ``missing_before`` / ``missing_after`` cells that do not exist (before the start, past
    the end: zero). Cell ``g`` spans ``length[g]`` input samples and would ideally last
    ``ideal[g]`` (samples, the factor's integral over it). Protected cells (sharp onsets)
    last exactly their input duration (slope 1); the time they give up (or take) is spread
    over the unprotected cells within ``reach`` cells (a triangular kernel), so the map stays
    close to the ideal one and onsets land near where the requested map puts them.

    Returns ``(duration, lowest)`` of cells ``[c0, c1)``, float64 ``(rows, c1 - c0)``: the
    spread duration, which may be negative where many onsets crowd together, and the least
    each cell may last (its input duration when protected, else ``_MIN_SLOPE`` of its ideal):
    the engine's running map follows the spread one wherever it can
    (:class:`pvrnn.effects.engine.StretchEngine`).
    """
    rows = max(ideal.shape[0], protected.shape[0])
    ideal = F.pad(ideal.expand(rows, -1), (missing_before, missing_after))
    length = F.pad(length.expand(rows, -1), (missing_before, missing_after))
    protected = F.pad(protected.expand(rows, -1), (missing_before, missing_after))
    r2 = 2 * reach
    middle = slice(r2, ideal.shape[1] - r2)
    if not protect:
        cells = ideal[:, middle]
        return cells, _MIN_SLOPE * cells
    exists = F.pad(torch.ones(rows, ideal.shape[1] - missing_before - missing_after,
                              dtype=torch.float64, device=ideal.device),
                   (missing_before, missing_after))
    free = exists * (~protected).to(torch.float64)
    debt = torch.where(protected, ideal - length, 0.0)  # output time protected cells give up
    ramp = torch.arange(-reach, reach + 1, dtype=torch.float64, device=ideal.device)
    kernel = (reach + 1 - ramp.abs()).reshape(1, 1, -1)

    def smooth(x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x.unsqueeze(1), kernel, padding=reach).squeeze(1)

    norm = smooth(free)
    share = torch.where(norm > 0, debt / norm.clamp_min(1e-300), 0.0)
    spread = ideal + free * smooth(share)
    cells = torch.where(protected, length, spread)[:, middle]
    lowest = torch.where(protected, length, _MIN_SLOPE * ideal)[:, middle]
    return cells, lowest


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


def rescale_knots(knots: torch.Tensor, out_len: int) -> torch.Tensor:
    """Knot times ``(rows, n)`` (fixed point) rescaled after the first so the last is
    ``out_len`` samples: proportionally, or evenly spread when they do not advance."""
    base = knots[:, :1]
    rel = (knots - base).to(torch.float64)
    goal = float(out_len * FIXED) - base.to(torch.float64)
    span = rel[:, -1:]
    steps = torch.arange(rel.shape[1], dtype=torch.float64, device=knots.device)
    even = goal * steps / max(1, rel.shape[1] - 1)
    scaled = torch.where(span > 0, rel * (goal / span.clamp_min(1.0)), even)
    scaled = torch.where(goal > 0, scaled, torch.zeros_like(scaled))
    return base + torch.round(scaled).to(torch.int64)


def call_factor(factor: Callable[[torch.Tensor], Any], times: torch.Tensor) -> torch.Tensor:
    """A factor given as a function of time (s), at ``times`` ``(n,)`` float64: ``(n,)``
    float64 values, each finite and > 0; anything else is a :class:`PvrnnError` naming it."""
    n, dev = times.shape[0], times.device
    try:
        values = factor(times)
    except Exception as error:  # the user's function: report it as bad input
        raise PvrnnError(f"factor={factor!r}: calling it with the frame times in "
                         f"seconds failed ({type(error).__name__}: {error})") from error
    if isinstance(values, numbers.Real) and not isinstance(values, bool):
        values = torch.full((n,), float(values), dtype=torch.float64, device=dev)
    try:
        values = torch.as_tensor(values, dtype=torch.float64, device=dev)
    except (TypeError, ValueError, RuntimeError) as error:
        raise fail("factor", factor, "a callable returning a number or one value "
                   "per frame time") from error
    if values.shape != (n,):
        raise fail("factor", factor, f"factor(times) returning {n} values "
                   f"(one per frame time), got shape {tuple(values.shape)}")
    if not bool(torch.isfinite(values).all()) or not bool((values > 0).all()):
        raise fail("factor", factor, "finite values > 0")
    return values
