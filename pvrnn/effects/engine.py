"""The streaming time-stretch engine: blocks of audio in, blocks of stretched audio out.

:func:`pvrnn.time_stretch`, :func:`pvrnn.pitch_shift` and :class:`pvrnn.Stretcher` all run this
one engine, so the offline result and the streamed one are the same computation (they agree
to float32 rounding, however the input is cut into blocks), and memory stays bounded: the
engine keeps only the input its next frames read, the output its last frames overlap, and a
few per-cell numbers around the current position.

Stages, each done for whatever the input so far allows (see :mod:`pvrnn.effects.stretch` for
the DSP):

1. **Onset frames** on the analysis grid (frame ``g`` centred on input sample ``g * hop``):
   the fraction of active bins that rose (:mod:`pvrnn.effects.onsets`), with the activity floor
   set by the running peak of the input up to one window past the frame, so it looks only
   ``n_fft`` samples ahead.
2. **Cells** ``[g hop, (g + 1) hop]`` of the time map: their ideal output duration (the
   factor's integral), whether they reset phases and whether they are read at slope 1.
3. **The map** (:func:`pvrnn.effects.timemap.local_map`): protected cells at slope 1, the time
   they take or give spread over the free cells within ``reach``; the knot times are kept in
   fixed point (``2**-20`` samples, int64) so that their running sums are exact and do not
   depend on how the input was cut. A cell's knot is final once the onsets ``2 reach + 2``
   cells ahead are known (the engine's look-ahead); the last cells are rescaled at the end so
   that the output has exactly ``round(integral of the factor)`` samples.
4. **Frames**: each output frame ``j`` at output sample ``j hop`` reads the input at the map's
   inverse, is phase-locked and overlap-added (the ``_frames`` method); output samples are
   returned as soon as no later frame overlaps them.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..dsp.ola import envelope, envelope_pairs, envelope_table, overlap_add
from ..dsp.windows import Window
from ..errors import PvrnnError, fail
from .onsets import OnsetTracker
from .phaselock import PhaseLocker
from .spectra import block_size, frames_at
from .timemap import FIXED, MAX_OUTPUT, call_factor, local_map, rescale_knots

__all__ = ["StretchEngine", "REACH_SECONDS"]

#: Seconds around a slope-1 region (a sharp onset) over which the rest takes up its time.
REACH_SECONDS = 0.25
#: A position past any frame count (the envelope of samples not yet near the end).
_MANY = 1 << 62
#: Elements (frames x bins x items) per block of onset frames and of output frames: their
#: spectra and the arrays derived from them stay near a core's L2 cache, and few enough large
#: arrays are alive at once that the allocator keeps their memory (no page faults); fewer,
#: larger blocks spend less on dispatch (a few hundred small operations per block).
ONSET_BLOCK_ELEMENTS = 1 << 17
FRAME_BLOCK_ELEMENTS = 3 << 16


class StretchEngine:
    """A stateful phase-locked time-stretch of ``items`` signals fed block by block.

    Args:
        items: number of signals (rows of every block), all stretched together.
        sample_rate: Hz (turns a callable factor's times into seconds).
        factor: a positive number, a callable of frame times in seconds (a float64 tensor;
            evaluated as the frames arrive), or a curve of knots ``(1 or items, G + 1)``
            float64 (offline only, ``length`` given: :func:`pvrnn.effects.timemap.factor_knots`).
        n_fft, hop, window: analysis settings (validated by the caller).
        transients: reset phases at onsets; ``protect``: also read sharp onsets at slope 1.
        onset_threshold: fraction of active bins that must rise for an onset.
        gain: optional ``magnitude (B, nb, K) -> (B, nb, K)`` per-bin gain.
        link_channels: the items share one map, one set of peaks and rotations.
        dtype, device: of the audio.
        length: total input samples when known in advance (offline); ``None`` for a stream.
    """

    def __init__(
        self, items: int, sample_rate: float, factor: Any, *, n_fft: int, hop: int,
        window: Window, transients: bool, onset_threshold: float,
        gain: Callable[[torch.Tensor], torch.Tensor] | None = None, link_channels: bool = False,
        protect: bool = True, dtype: torch.dtype = torch.float32,
        device: Any = "cpu", length: int | None = None,
    ) -> None:
        self.b, self.n_fft, self.hop, self.window = items, n_fft, hop, window
        self.half, self.k = n_fft // 2, n_fft // 2 + 1
        self.sample_rate = sample_rate
        self.transients, self.threshold = transients, onset_threshold
        self.protect = transients and protect
        self.gain, self.link = gain, link_channels
        self.dtype, self.device = dtype, torch.device(device)
        self.length = length
        self.uniform = True  # one constant factor throughout: the output is round(n * factor)
        self.src = 1 if link_channels else items  # rows of the onset analysis
        self.groups = 1 if link_channels else items  # rows of peaks and rotations
        self.reach = max(1, int(round(REACH_SECONDS * sample_rate / hop)))
        # Cells a knot waits for: the onsets 2 reach ahead move it (spread of the spread).
        self.ahead = 2 * self.reach + 2 if self.protect else 2
        self.width = max(1, -(-n_fft // (2 * hop)))  # cells an onset covers
        self.block = max(16, FRAME_BLOCK_ELEMENTS // (items * self.k))
        onset_block = max(16, ONSET_BLOCK_ELEMENTS // (items * self.k))
        self.set_factor(factor)
        dev, f64 = self.device, torch.float64
        # Input, in padded coordinates (sample p of the padded signal is audio sample p - half).
        self.buf = torch.zeros(items, self.half, dtype=dtype, device=dev)
        self.buf_pos = 0
        self.n_in = 0
        self.finished = False
        # Onset grid.
        self.g_done = 0
        self.tracker = OnsetTracker(self.src, n_fft, hop, window, onset_threshold,
                                    self.width, onset_block, dtype, dev)
        # Cells from cell_base on: knots (rows of the factor), quantised ideal, flags.
        self.cell_base = 0
        self.knot_vals = torch.zeros(self.factor_rows, 0, dtype=f64, device=dev)
        self.ideal = torch.zeros(self.factor_rows, 0, dtype=f64, device=dev)
        self.prot = torch.zeros(self.src, 0, dtype=torch.bool, device=dev)
        self.reset_cells = torch.zeros(self.src, 0, dtype=torch.bool, device=dev)
        self.ideal_sum = torch.zeros(self.factor_rows, dtype=torch.int64, device=dev)
        # Map: knot times (fixed point) of knots [t_base, t_base + T.shape[1]).
        self.cells_final = 0
        self.t_base = 0
        self.rows = max(self.factor_rows, self.src)
        self.T = torch.zeros(self.rows, 1, dtype=torch.int64, device=dev)
        self.star = torch.zeros(self.rows, 1, dtype=torch.int64, device=dev)  # T* at cells_final
        self.lo = torch.zeros(self.rows, 1, dtype=torch.int64, device=dev)
        self.top = torch.zeros(self.rows, 1, dtype=torch.int64, device=dev)  # running max
        # Frames and output.
        self.j_done = 0
        self.last_pos = torch.zeros(items, 1, dtype=torch.int64, device=dev)
        self.locker = PhaseLocker(self.groups, n_fft, window, link_channels, dtype, dev)
        self.acc = torch.zeros(items, 0, dtype=dtype, device=dev)
        self.acc_pos = 0
        self.emit_pos = self.half
        self.out_len: int | None = None
        self.synthesis = window.values.to(device=dev, dtype=dtype)
        self.table = envelope_table(window.values, hop).to(dev)
        self.norm_pairs = envelope_pairs(self.table, dtype)

    # -- factor ------------------------------------------------------------------------------
    def set_factor(self, factor: Any) -> None:
        """A number or a callable for the frames not analysed yet, or a curve of knots."""
        self.curve = None
        self.constant: float | None = None
        self.callable = None
        if isinstance(factor, torch.Tensor):
            self.curve = factor
            self.factor_rows = factor.shape[0]
        elif isinstance(factor, numbers.Real):
            self.constant = float(factor)
            self.factor_rows = getattr(self, "factor_rows", 1)
        else:
            self.callable = factor
            self.factor_rows = getattr(self, "factor_rows", 1)

    def _knots(self, g0: int, g1: int) -> torch.Tensor:
        """Factor at grid frames ``[g0, g1)``, ``(rows, g1 - g0)`` float64."""
        dev = self.device
        if self.curve is not None:
            return self.curve[:, g0:g1].expand(self.factor_rows, g1 - g0)
        if self.constant is not None:
            return torch.full((self.factor_rows, g1 - g0), self.constant, dtype=torch.float64,
                              device=dev)
        times = torch.arange(g0, g1, dtype=torch.float64, device=dev)
        times = times * (self.hop / self.sample_rate)
        values = call_factor(self.callable, times)
        return values.expand(self.factor_rows, g1 - g0)

    # -- feeding -----------------------------------------------------------------------------
    def feed(self, audio: torch.Tensor) -> torch.Tensor:
        """Append ``(items, m)`` samples; return the output samples now complete (all of them
        once the ``length`` announced has arrived: then :meth:`finish` has nothing left)."""
        if audio.shape[-1]:
            self.buf = torch.cat([self.buf, audio.to(self.dtype)], dim=1)
            self.n_in += audio.shape[-1]
        if self.length is not None and self.n_in == self.length:
            return self.finish()  # one last pass over the end, not two
        return self._advance()

    def finish(self) -> torch.Tensor:
        """The input has ended: return the rest of the output."""
        if self.finished:  # by the feed that completed the announced length
            return self.acc.new_zeros(self.b, 0)
        self.finished = True
        n = self.n_in
        if self.length is not None and self.length != n:
            raise PvrnnError(f"engine was told {self.length} samples but got {n}")
        self.buf = torch.cat([self.buf, self.buf.new_zeros(self.b, 2 * self.n_fft + 1)], dim=1)
        return self._advance()

    def expected_length(self, n: int) -> int:
        """``round(n * factor)`` for a constant factor."""
        return int(round(n * self.constant))

    # -- the stages --------------------------------------------------------------------------
    def _advance(self) -> torch.Tensor:
        n_grid = self._grid_available()
        if n_grid > self.g_done:
            self._onsets(self.g_done, n_grid)
        self._map()
        out = self._frames()
        self._trim()
        return out

    def _grid_available(self) -> int:
        if self.finished:
            return 1 + self.n_in // self.hop
        # Frame g needs padded samples up to g hop + 2 n_fft (its peak looks one window past
        # its end), i.e. audio up to g hop + n_fft + half.
        if self.n_in < self.half + self.n_fft:
            return 0
        return 1 + (self.n_in - self.half - self.n_fft) // self.hop

    def _onsets(self, g0: int, g1: int) -> None:
        """Analyse grid frames ``[g0, g1)`` and append cells ``[g0 - 1, g1 - 1)`` (all at the
        end)."""
        dev = self.device
        knots = self._knots(g0, g1)
        self.knot_vals = torch.cat([self.knot_vals, knots], dim=1)
        if self.transients:
            source = self.buf.mean(0, keepdim=True) if self.link else self.buf
            n_known = self.n_in if self.finished else _MANY
            reset, prot = self.tracker.update(source, self.buf_pos, g0, g1, n_known)
            if not self.protect:
                prot = torch.zeros_like(prot)
        else:
            reset = torch.zeros(self.src, g1 - g0, dtype=torch.bool, device=dev)
            prot = reset
        self.reset_cells = torch.cat([self.reset_cells, reset], dim=1)
        self.prot = torch.cat([self.prot, prot], dim=1)
        self.g_done = g1
        # Cells whose two knots are known: all but the last (until the end).
        have = self.knot_vals.shape[1] + self.cell_base  # knots known
        cells_have = self.cell_base + self.ideal.shape[1]
        if self.finished:
            self.knot_vals = torch.cat([self.knot_vals, self.knot_vals[:, -1:]], dim=1)
            have += 1
        new_to = have - 1
        if new_to > cells_have:
            kv = self.knot_vals[:, cells_have - self.cell_base : new_to - self.cell_base + 1]
            lengths = self._lengths(cells_have, new_to)
            ideal = lengths * 0.5 * (kv[:, 1:] + kv[:, :-1])
            q = torch.round(ideal * FIXED).to(torch.int64)
            self.ideal_sum = self.ideal_sum + q.sum(1)
            self.ideal = torch.cat([self.ideal, ideal], dim=1)

    def _lengths(self, c0: int, c1: int) -> torch.Tensor:
        """Input samples of cells ``[c0, c1)``: hop, the last one what remains of the input."""
        starts = torch.arange(c0, c1 + 1, dtype=torch.float64, device=self.device) * self.hop
        if self.finished:
            starts = starts.clamp(max=self.n_in)
        return (starts[1:] - starts[:-1]).unsqueeze(0)

    def _map(self) -> None:
        """Finalise the knot times that the known onsets allow."""
        n_cells = self.cell_base + self.ideal.shape[1]
        if self.finished:
            target = n_cells
        else:
            target = n_cells - self.ahead
        c0 = self.cells_final
        if target <= c0:
            return
        # Cells [c0 - 2 reach, target + 2 reach) influence [c0, target); pad past the known.
        r2 = 2 * self.reach
        lo_c = max(self.cell_base, c0 - r2)
        hi_c = min(n_cells, target + r2)
        sl = slice(lo_c - self.cell_base, hi_c - self.cell_base)
        lengths = self._lengths(lo_c, hi_c)
        ideal = self.ideal[:, sl]
        prot = self.prot[:, sl]
        before, after = (c0 - r2) - lo_c, (target + r2) - hi_c  # negative: cells missing
        cell_out, lo = local_map(ideal, lengths, prot, self.reach, -before, after,
                                 self.protect)
        q_out = torch.round(cell_out * FIXED).to(torch.int64)
        q_lo = torch.round(lo * FIXED).to(torch.int64)
        star = self.star + torch.cumsum(q_out, 1)  # T* at knots c0 + 1 .. target
        lows = self.lo + torch.cumsum(q_lo, 1)
        top = torch.maximum(torch.cummax(star - lows, 1).values, self.top)
        knots = lows + top
        self.star, self.lo, self.top = star[:, -1:], lows[:, -1:], top[:, -1:]
        if self.finished:
            knots = self._tail(knots, c0)
        self.T = torch.cat([self.T, knots], dim=1).contiguous()
        self.cells_final = target

    def _tail(self, knots: torch.Tensor, c0: int) -> torch.Tensor:
        """Rescale the knots of the last ``ahead`` cells so the map ends at ``out_len``."""
        n_cells = self.cell_base + self.ideal.shape[1]
        if self.constant is not None and self.curve is None and self.uniform:
            out_len = self.expected_length(self.n_in)
        else:
            out_len = int(torch.div(self.ideal_sum[0] + FIXED // 2, FIXED,
                                    rounding_mode="floor"))
            if self.ideal_sum.shape[0] > 1:
                totals = torch.div(self.ideal_sum + FIXED // 2, FIXED, rounding_mode="floor")
                if not bool((totals == totals[0]).all()):
                    raise fail("factor", "a batch of curves", "curves giving every item the "
                               f"same output duration (got {int(totals.min())} to "
                               f"{int(totals.max())} samples)")
        if out_len < 1:
            raise fail("factor", self._factor_repr(), f"a stretch leaving at least one sample "
                       f"(the output would have {out_len} of the input's {self.n_in})")
        if out_len > MAX_OUTPUT:
            raise fail("factor", self._factor_repr(), f"an output of at most {MAX_OUTPUT} "
                       "samples")
        self.out_len = out_len
        s = max(0, n_cells - self.ahead)
        # knots holds knot times c0 + 1 .. n_cells; the knot at s is either in it or final.
        full = torch.cat([self.T[:, -1:], knots], dim=1)  # knots c0 .. n_cells
        full[:, s - c0 :] = rescale_knots(full[:, s - c0 :], out_len)
        return full[:, 1:]

    def _factor_repr(self) -> Any:
        if self.constant is not None:
            return self.constant
        return self.callable if self.callable is not None else "a curve"

    def _frames(self) -> torch.Tensor:
        """Stretch every output frame the final map places; return the completed output."""
        hop = self.hop
        last_knot = self.T[:, -1]  # (rows,), the map is final up to here
        if self.finished:
            n_frames = 1 + self.out_len // hop
        else:
            limit = int(last_knot.min())  # frames strictly before it
            bound = int(self.ideal_sum.min()) // FIXED - 2  # surely inside the output
            n_frames = min(-(-limit // (hop * FIXED)), max(0, bound // hop + 1))
        j0 = self.j_done
        if n_frames > j0:
            positions, excess, reset = self._positions(j0, n_frames)
            need = (n_frames - 1) * hop + self.n_fft - self.acc_pos
            if need > self.acc.shape[1]:  # once per call: no regrowth per block
                self.acc = F.pad(self.acc, (0, need - self.acc.shape[1]))
            n = n_frames - j0
            size = block_size(n, self.block)
            for i in range(0, n, size):  # blocks of frames: bounded memory
                part = slice(i, i + size)
                self._stretch_block(j0 + i, positions[:, part], excess[:, part], reset[:, part])
            self.j_done = n_frames
        # Output samples before j_done * hop are complete (padded coordinates).
        end = self.j_done * hop
        if self.finished:
            end = self.half + self.out_len
        if end <= self.emit_pos:
            return self.acc.new_zeros(self.b, 0)
        a, b = self.emit_pos, end
        span = self.acc[:, a - self.acc_pos : b - self.acc_pos]
        if span.shape[1] < b - a:
            span = F.pad(span, (0, b - a - span.shape[1]))
        n_env = (1 + self.out_len // hop) if self.finished else _MANY
        self.emit_pos = b
        return span / envelope(self.table, n_env, a, b, pairs=self.norm_pairs)

    def _positions(self, j0: int, j1: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Output frames ``[j0, j1)``: their read positions (padded samples), the output hop
        minus the analysis hop (float64) and whether they reset, ``(items, j1 - j0)`` each."""
        hop, dev = self.hop, self.device
        times = torch.arange(j0, j1, dtype=torch.int64, device=dev) * (hop * FIXED)
        T = self.T  # knots t_base ..
        cell = torch.searchsorted(T, times.expand(T.shape[0], -1).contiguous(), right=True) - 1
        cell = cell.clamp(0, T.shape[1] - 2)
        o0, o1 = T.gather(1, cell), T.gather(1, cell + 1)
        span = (o1 - o0).to(torch.float64)
        frac = torch.where(o1 > o0, (times - o0).to(torch.float64) / span.clamp_min(1.0), 0.0)
        frac = frac.clamp(0, 1)
        cell_abs = cell + self.t_base
        starts = cell_abs.to(torch.float64) * hop
        lengths = (cell_abs + 1).to(torch.float64) * hop
        if self.finished:
            lengths = lengths.clamp(max=self.n_in)
        lengths = lengths - starts
        tau = torch.round(starts + frac * lengths).to(torch.int64)
        positions = tau.clamp(0, self.n_in).expand(self.b, -1)
        rows_r = max(self.reset_cells.shape[0], cell_abs.shape[0])
        rc = self.reset_cells.expand(rows_r, -1).gather(
            1, (cell_abs - self.cell_base).expand(rows_r, -1))
        reset = rc.expand(self.b, -1)
        if j0 == 0:
            reset = reset.clone()
            reset[:, 0] = True
        advance = torch.diff(positions, dim=1, prepend=self.last_pos if j0 else positions[:, :1])
        self.last_pos = positions[:, -1:]
        return positions, (hop - advance).to(torch.float64), reset

    def _stretch_block(self, j0: int, positions: torch.Tensor, excess: torch.Tensor,
                       reset: torch.Tensor) -> None:
        """Output frames from ``j0`` on, read at ``positions``: phase locking, overlap-add."""
        groups = self.groups
        spec, power = self.locker(lambda: self._read(positions), excess[:groups],
                                  reset[:groups])
        if self.gain is not None:
            spec = spec * self.gain(power.sqrt())
        frames = torch.fft.irfft(spec, n=self.n_fft).mul_(self.synthesis)
        overlap_add(frames, self.hop, out=self.acc, offset=j0 * self.hop - self.acc_pos)

    def _read(self, positions: torch.Tensor) -> torch.Tensor:
        """The raw frames ``(items, nb, n_fft)`` at padded sample ``positions``."""
        return frames_at(self.buf, positions - self.buf_pos, self.n_fft)

    def _trim(self) -> None:
        """Drop the input, output and cells nothing will read again."""
        hop = self.hop
        # Input: the next onset frame starts at g_done hop; the next stretch frame reads at or
        # after the last one's position (the map is monotone).
        keep = min(self.g_done * hop, int(self.last_pos.min()) if self.j_done else 0)
        drop = keep - self.buf_pos
        if drop > 0 and not self.finished:
            self.buf = self.buf[:, drop:]
            self.buf_pos = keep
        # Output: everything emitted that no later frame overlaps.
        done = min(self.emit_pos, self.j_done * hop)
        drop = done - self.acc_pos
        if drop > 0:
            self.acc = self.acc[:, drop:]
            self.acc_pos = done
        # Knots: the next frame's cell is at least the cell of the last time processed.
        if self.j_done:
            time = torch.tensor([[(self.j_done - 1) * hop * FIXED]], device=self.device)
            cell = torch.searchsorted(self.T, time.expand(self.T.shape[0], 1).contiguous(),
                                      right=True) - 1
            first = max(0, int(cell.min()) - 1)
            first = min(first, self.T.shape[1] - 2)
            if first > 0:
                self.T = self.T[:, first:].contiguous()
                self.t_base += first
        # Cells: the map needs 2 reach before the first non-final cell; frames need resets
        # from the knot base on.
        first_cell = min(self.cells_final - 2 * self.reach, self.t_base) - self.cell_base
        if first_cell > 0:
            self.ideal = self.ideal[:, first_cell:]
            self.prot = self.prot[:, first_cell:]
            self.reset_cells = self.reset_cells[:, first_cell:]
            self.knot_vals = self.knot_vals[:, first_cell:]
            self.cell_base += first_cell
