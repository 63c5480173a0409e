"""The phase vocoder: audio <-> :class:`~pvrnn.Frames`, one batched call, no loops over frames.

Analysis is ``torch.stft`` followed by elementwise work over frames and bins: magnitude, phase,
and the instantaneous frequency from the wrapped phase advance between consecutive frames.
Synthesis integrates the frequency back into phase (exactly: in integers or float64) and
overlap-adds the inverse FFT as ``torch.istft(center=True)`` does (with a precomputed
normalising envelope instead of one overlap-add per call). float32 runs in blocks of frames with
the phase in fixed point (:mod:`pvrnn.dsp.chunked`); float64, and float32 on a GPU with
``PVRNN_COMPILE=1``, run the whole-signal kernels of :mod:`pvrnn.dsp.kernels`. The overlap-add
is in :mod:`pvrnn.dsp.ola`, the windows in :mod:`pvrnn.dsp.windows`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import PvrnnError, check_audio, check_int, check_positive, fail
from . import chunked, kernels, ola
from .frames import TWO_PI, Frames, bin_advance, default_start_phase
from .windows import make_window

__all__ = ["PhaseVocoder"]


def _in_blocks(*tensors: torch.Tensor) -> bool:
    """float32 runs through :mod:`pvrnn.dsp.chunked`, except on a GPU with ``PVRNN_COMPILE=1``
    (the fused whole-signal kernels). On CPU the blocks beat the compiled kernels (1.1x against
    1.7x the bare ``torch.stft`` + ``torch.istft``, ``benchmarks/bench_vocoder.py``)."""
    if any(t.dtype != torch.float32 for t in tensors):
        return False
    return tensors[0].device.type == "cpu" or not kernels.use_compiled(*tensors)

class PhaseVocoder(nn.Module):
    """Analysis into per-bin (magnitude, instantaneous frequency) frames, and resynthesis.

    Args:
        n_fft (int): FFT size, samples. 2048 at 44.1 kHz is 46 ms: fine frequency resolution
            (21.5 Hz bins) for tonal instruments; 512 suits faster-changing sounds.
        hop_length (int, optional): samples between frames; default ``n_fft // 4``.
        win_length (int, optional): window length, ``<= n_fft``; default ``n_fft``.
        window (str or Tensor): ``"hann"`` (default), ``"hamming"``, ``"blackman"``,
            ``"rectangular"`` (or ``"boxcar"``) or a tensor of ``win_length`` samples (see
            :mod:`pvrnn.dsp.windows`).
        sample_rate (float): Hz, carried into the frames to express frequency in Hz.

    Frames use ``torch.stft(center=True, pad_mode="reflect")``: frame ``t`` is centred on sample
    ``t * hop_length``, and a signal of ``n`` samples gives ``1 + n // hop_length`` frames.

    Speed: float32 audio and frames run a block of frames at a time, with the phase in fixed point
    (:mod:`pvrnn.dsp.chunked`): analyze + synthesize take about 1.1x the time of a bare
    ``torch.stft`` + ``torch.istft`` on a CPU, and no array of the whole signal is made but the
    outputs. float64 runs the whole-signal kernels of :mod:`pvrnn.dsp.kernels` (float64 phase
    steps). On a GPU, ``PVRNN_COMPILE=1`` runs float32 through those kernels fused by
    ``torch.compile`` instead (unmeasured on GPUs so far); on a CPU it changes nothing. Results
    agree to float32 precision whichever path runs.

    Example:
        >>> pv = pvrnn.PhaseVocoder(n_fft=2048, hop_length=512, sample_rate=44100)
        >>> frames = pv.analyze(audio)                      # (..., n_frames, 1025)
        >>> again = pv.synthesize(frames, length=audio.shape[-1])
    """

    window: torch.Tensor

    def __init__(
        self,
        n_fft: int = 2048,
        hop_length: int | None = None,
        win_length: int | None = None,
        window: str | torch.Tensor = "hann",
        sample_rate: float = 44100,
    ) -> None:
        super().__init__()
        self.n_fft = check_int("n_fft", n_fft, low=2)
        self.hop_length = check_int(
            "hop_length", n_fft // 4 if hop_length is None else hop_length, low=1, high=n_fft
        )
        self.win_length = check_int(
            "win_length", n_fft if win_length is None else win_length, low=1, high=n_fft
        )
        self.sample_rate = check_positive("sample_rate", sample_rate)
        self.register_buffer("window", make_window(window, self.win_length), persistent=False)
        padded = torch.nn.functional.pad(
            self.window.cpu(), ((n_fft - self.win_length) // 2, (n_fft - self.win_length + 1) // 2)
        )
        # For synthesis: the squared window's envelope, from which any length's is built.
        self._envelope_table = ola.envelope_table(padded, self.hop_length)  # CPU, float64
        # Overlap-add of the squared window must not vanish anywhere (NOLA) for synthesis: its
        # periodic part (every piece of the window overlapping) is the last row of the table.
        periodic = self._envelope_table[-1] - self._envelope_table[0]
        self.invertible = bool(periodic.min() > 1e-10)
        self._envelope_tables: dict[torch.device, torch.Tensor] = {}

    @property
    def n_bins(self) -> int:
        """``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    def extra_repr(self) -> str:
        return (
            f"n_fft={self.n_fft}, hop_length={self.hop_length}, win_length={self.win_length}, "
            f"sample_rate={self.sample_rate:g}"
        )

    def n_frames(self, length: int) -> int:
        """Number of frames for a signal of ``length`` samples."""
        return 1 + length // self.hop_length

    # -- analysis ------------------------------------------------------------------------------
    def analyze(self, audio: torch.Tensor) -> Frames:
        """Audio ``(..., time)`` -> :class:`Frames` ``(..., n_frames, n_bins)``.

        Args:
            audio (Tensor): float32 or float64 waveform ``(..., time)``, at least ``n_fft``
                samples, finite. Leading dims are kept.

        Returns:
            Frames: magnitude and instantaneous frequency (Hz), in the dtype of ``audio``,
            on its device, with the first frame's phase for exact resynthesis.

        Raises:
            PvrnnError: when ``audio`` is not a finite floating tensor of at least ``n_fft``
                samples.
        """
        audio = check_audio(audio, min_length=self.n_fft, min_length_reason=f"n_fft={self.n_fft}")
        batch, length = audio.shape[:-1], audio.shape[-1]
        window = self.window.to(device=audio.device, dtype=audio.dtype)
        flat = audio.reshape(-1, length)
        if _in_blocks(flat):
            magnitude, deviation, start_phase = chunked.analyze(
                flat, self.n_fft, self.hop_length, self.win_length, window, self.sample_rate)
        else:
            spec = torch.stft(
                flat, self.n_fft, self.hop_length, self.win_length, window,
                center=True, pad_mode="reflect", return_complex=True,
            )  # (B, n_bins, n_frames); its transpose is frames-major and contiguous
            magnitude, deviation, start_phase = kernels.analysis(
                spec.transpose(-1, -2),
                bin_advance(self.n_bins, self.n_fft, self.hop_length, audio.device),
                self.sample_rate / (TWO_PI * self.hop_length),
                overwrite=True,  # the STFT is ours: its memory can hold the float64 phase steps
            )
        n_frames = magnitude.shape[-2]
        return Frames(
            magnitude.reshape(*batch, n_frames, self.n_bins),
            deviation=deviation.reshape(*batch, n_frames, self.n_bins),
            start_phase=start_phase.reshape(*batch, self.n_bins),
            sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
        )

    # -- synthesis -----------------------------------------------------------------------------
    def synthesize(self, frames: Frames, length: int | None = None) -> torch.Tensor:
        """:class:`Frames` ``(..., n_frames, n_bins)`` -> audio ``(..., time)``.

        Frequencies are integrated into phase from the frames' start phase (float64 cumsum,
        wrapped), magnitudes below zero are treated as zero, missing upper bins (see
        :meth:`Frames.partials`) are silent, and frames are overlap-added as by
        ``torch.istft(center=True)``.

        Args:
            frames (Frames): frames of this vocoder's ``n_fft``, ``hop_length`` and sample rate.
            length (int, optional): output samples; default ``(n_frames - 1) * hop_length``.

        Returns:
            Tensor: ``(..., length)`` in the dtype of ``frames``.

        Raises:
            PvrnnError: when the frames come from other analysis settings, the window and hop
                cannot be inverted, or ``length`` runs past what the frames' windows cover.
        """
        if not isinstance(frames, Frames):
            raise fail("frames", frames, "a pvrnn.Frames")
        for name in ("n_fft", "hop_length"):
            if getattr(frames, name) != getattr(self, name):
                raise fail(f"frames.{name}", getattr(frames, name), f"{getattr(self, name)} "
                           f"(this PhaseVocoder's {name})")
        if abs(frames.sample_rate - self.sample_rate) > 1e-6 * self.sample_rate:
            raise fail("frames.sample_rate", frames.sample_rate, f"{self.sample_rate:g} Hz")
        if not self.invertible:
            raise PvrnnError(
                f"hop_length={self.hop_length}: too large to resynthesize with this window "
                f"(win_length={self.win_length}); expected overlapping windows, e.g. "
                f"hop_length <= win_length // 2"
            )
        if frames.n_frames < 1:
            raise fail("frames", frames, "at least one frame")
        n_frames, n_bins = frames.n_frames, frames.n_bins
        if length is None:
            length = (n_frames - 1) * self.hop_length
        else:
            length = check_int("length", length, low=1)
        self._check_envelope(n_frames, length)
        start = frames.start_phase
        if start is None:
            like = frames.magnitude.new_empty(0, dtype=torch.float64)
            start = default_start_phase(n_bins, like=like)
        batch = torch.broadcast_shapes(frames.shape[:-2], start.shape[:-1])
        magnitude = frames.magnitude.expand(*batch, n_frames, n_bins).reshape(-1, n_frames, n_bins)
        deviation = frames.deviation.expand(*batch, n_frames, n_bins).reshape(-1, n_frames, n_bins)
        start = start.expand(*batch, n_bins).reshape(-1, n_bins)
        window = torch.nn.functional.pad(
            self.window.to(device=magnitude.device, dtype=magnitude.dtype),
            ((self.n_fft - self.win_length) // 2, (self.n_fft - self.win_length + 1) // 2),
        )
        table = self._table_on(magnitude.device)
        if _in_blocks(magnitude, deviation):
            audio = chunked.synthesize(magnitude, deviation, start, self.n_fft, self.hop_length,
                                       window, length, table, self.sample_rate)
        else:
            spec = kernels.spectrum(
                magnitude, deviation, start,
                bin_advance(n_bins, self.n_fft, self.hop_length, magnitude.device),
                TWO_PI * self.hop_length / self.sample_rate,
            )  # (B, n_frames, n_bins), complex
            # The inverse STFT of torch.istft(center=True), without its per-call envelope pass.
            audio = ola.inverse_stft(spec, window, self.hop_length, length, table)
        return audio.reshape(*batch, audio.shape[-1])

    def _table_on(self, device: torch.device) -> torch.Tensor:
        if device not in self._envelope_tables:  # once per device: no copy per call
            self._envelope_tables[device] = self._envelope_table.to(device)
        return self._envelope_tables[device]

    def _check_envelope(self, n_frames: int, length: int) -> None:
        """The overlap-added window must not vanish over the output (as torch.istft checks)."""
        start = self.n_fft // 2
        full = self.n_fft + self.hop_length * (n_frames - 1)
        stop = min(start + length, full)
        table = self._envelope_table
        inside = start + length <= full
        if inside and (length == 0 or ola.envelope_minimum(table, n_frames, start, stop) >= 1e-11):
            return
        covered = ola.envelope(table, n_frames, start, full) >= 1e-11
        longest = int(covered.int().cumprod(0).sum())
        raise fail("length", length, f"at most {longest} samples for {n_frames} frames: past "
                   "that the frames' windows do not cover the output")

    def forward(self, audio: torch.Tensor) -> Frames:
        """Same as :meth:`analyze`."""
        return self.analyze(audio)

