"""GRUV's frames: the raw DFT of each frame, real and imaginary part per bin.

``SoundModel(representation="dft")`` swaps the :class:`~pvrnn.FrameCodec` (magnitude and
instantaneous frequency) for a :class:`DFTCodec`, the representation of GRUV (Nayebi &
Vitelli 2015): features ``[real (n_partials) | imag (n_partials)]`` of the STFT of each frame.
The phase is then part of what the network predicts, so generated frames carry their own
phase and are resynthesized as they are (no phase locking, no phase model).

Encoding rebuilds each bin's phase from the :class:`~pvrnn.Frames` (its start phase and
accumulated instantaneous frequencies, float64) and takes ``m * exp(i phase)``; decoding
takes the modulus and angle back and turns successive angles into instantaneous
frequencies. Both are exact: analysed frames survive ``decode(encode(frames))`` and resynthesize
the analysed audio to float32 precision (``tests/model/test_dft.py``).

Scaling. ``magnitude="linear"`` is GRUV's frame; ``"log"`` compresses the modulus
(``log1p(m / floor)``, the phase untouched) so quiet bins count in the loss. Every bin's real
and imaginary parts are divided by one scale (the bin's RMS modulus / sqrt 2, learned in
:meth:`DFTCodec.fit`) and are not shifted, so a rotation of a bin's phase stays a rotation of
its features.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..dsp.frames import TWO_PI, Frames, bin_advance, wrap
from ..errors import check_choice, fail
from .codec import FrameCodec

__all__ = ["DFTCodec", "REPRESENTATIONS", "check_representation"]

#: Frame representations a :class:`~pvrnn.SoundModel` can learn: ``"pv"`` (magnitude and
#: frequency, :class:`~pvrnn.FrameCodec`) or ``"dft"`` (real and imaginary part, GRUV).
REPRESENTATIONS = ("pv", "dft")


def check_representation(representation: Any, mode: Any = "absolute") -> str:
    """The representation name, checked against the codec ``mode`` it needs.

    Raises:
        PvrnnError: for an unknown name, or ``representation="dft"`` with ``mode="delta"``
            (differences of rotating phasors are no simpler than the phasors).
    """
    representation = check_choice("representation", representation, REPRESENTATIONS)
    if representation == "dft" and mode != "absolute":
        raise fail("mode", mode, "'absolute' with representation='dft' (DFT frames are "
                   "predicted whole; their differences are no simpler)")
    return representation


class DFTCodec(FrameCodec):
    """Frames <-> normalised real/imaginary features ``(..., n_frames, 2 * n_partials)``.

    The interface of :class:`~pvrnn.FrameCodec` (``fit``, ``encode``, ``decode``, state);
    ``mode`` must be ``"absolute"``.

    Args:
        n_partials (int): lowest bins kept.
        mode (str): ``"absolute"`` only.
        magnitude (str): ``"linear"`` (GRUV) or ``"log"`` (modulus ``log1p(m / floor)``,
            ``floor`` = ``log_floor_db`` below the largest magnitude seen in :meth:`fit`).
        log_floor_db (float): dB below the peak magnitude, default 80.

    Example:
        >>> codec = DFTCodec(n_partials=257).fit(frames)
        >>> x = codec.encode(frames)                # (n_frames, 514): real | imag, scaled
        >>> again = codec.decode(x)                 # frames, with their phases
    """

    def __init__(self, n_partials: int = 20, mode: str = "absolute", magnitude: str = "linear",
                 log_floor_db: float = 80.0) -> None:
        check_representation("dft", mode)
        super().__init__(n_partials=n_partials, mode=mode, magnitude=magnitude,
                         log_floor_db=log_floor_db)

    def extra_repr(self) -> str:
        return f"n_partials={self.n_partials}, magnitude={self.magnitude!r}, real|imag"

    def fit(self, frames: Frames | Sequence[Frames]) -> DFTCodec:
        """Learn each bin's scale (RMS modulus / sqrt 2) from one or many sounds.

        Args:
            frames (Frames or list of Frames): analysed with the same settings.

        Returns:
            DFTCodec: ``self``, fitted.
        """
        super().fit(frames)  # checks, analysis settings, the log floor
        items = [frames] if isinstance(frames, Frames) else list(frames)
        k = self.n_partials
        power = torch.cat([self._scale(f.partials(k).magnitude).square().reshape(-1, k).cpu()
                           for f in items])  # (rows, K) squared scaled moduli
        scale = (power.mean(0) / 2).sqrt()
        scale = scale.clamp_min(max(float(scale.max()) * 1e-3, 1e-12))
        self.mean = torch.zeros(2 * k, dtype=torch.float64, device=self.mean.device)
        self.std = torch.cat([scale, scale]).to(self.std.device)
        return self

    def decode(self, features: torch.Tensor, start: Frames | None = None,
               reset_every: int | None = None, reset_frames: Frames | None = None) -> Frames:
        """Features ``(..., n, 2 * n_partials)`` -> Frames ``(..., n, n_partials)`` that carry
        the decoded phases.

        Args:
            features (Tensor): normalised features, as from :meth:`encode` or a network.
            start (Frames, optional): the frame before the first decoded one (its last frame):
                the first frame's instantaneous frequency is measured from its phase. Without
                it the first frame takes the second's (as analysis does).
            reset_every, reset_frames: not used (delta mode only); accepted for the codec
                interface.

        Returns:
            Frames: magnitude ``|z|`` (unscaled), instantaneous frequency from the wrapped
            phase advance, and ``start_phase`` = the first frame's phase (float64), so
            ``PhaseVocoder.synthesize`` reproduces every decoded frame's phase.
        """
        self._require_fit()
        if not isinstance(features, torch.Tensor) or features.dim() < 2 or (
            features.shape[-1] != self.n_features
        ):
            raise fail("features", features, f"a tensor (..., n, {self.n_features})")
        k, dtype = self.n_partials, features.dtype
        raw = features.to(torch.float64) * self.std  # the means are zero
        z = torch.complex(raw[..., :k], raw[..., k:])
        phase = torch.angle(z)  # (..., n, K) float64
        info = dict(self.analysis)
        hop, rate = int(info["hop_length"]), info["sample_rate"]
        advance = bin_advance(k, int(info["n_fft"]), hop, phase.device)
        before = None
        if start is not None:
            before = self._partials(start, "start")[-1].phase()[..., 0, :]  # (..., K)
        steps = torch.diff(phase, dim=-2)
        if before is not None:
            first = phase[..., :1, :] - before.unsqueeze(-2).to(phase.dtype)
            steps = torch.cat([first.expand(*steps.shape[:-2], 1, k), steps], dim=-2)
        elif phase.shape[-2] > 1:
            steps = torch.cat([steps[..., :1, :], steps], dim=-2)
        else:
            steps = advance.expand_as(phase)
        deviation = wrap(steps - advance) * (rate / (TWO_PI * hop))
        return Frames(self._unscale(z.abs()).to(dtype), deviation=deviation.to(dtype),
                      start_phase=phase[..., 0, :], **info)

    # -- helpers ------------------------------------------------------------------------------
    def _raw(self, frames: Frames) -> torch.Tensor:
        """Unnormalised ``[real | imag]`` of the scaled modulus at each frame's phase, float64."""
        f = frames.partials(self.n_partials)
        modulus = self._scale(f.magnitude)
        phase = f.phase()  # float64, from the start phase and accumulated frequencies
        return torch.cat([modulus * torch.cos(phase), modulus * torch.sin(phase)], dim=-1)

    def _scale(self, magnitude: torch.Tensor) -> torch.Tensor:
        magnitude = magnitude.to(torch.float64).clamp_min(0)
        if self.magnitude == "log":
            return torch.log1p(magnitude / self.floor)
        return magnitude

    def _unscale(self, scaled: torch.Tensor) -> torch.Tensor:
        if self.magnitude == "log":
            return torch.expm1(scaled) * self.floor
        return scaled
