"""What the network sees: normalised per-partial features of :class:`~pvrnn.Frames`.

A :class:`FrameCodec` keeps the lowest ``n_partials`` bins, scales magnitudes (linearly, as the
original sound-rnn did, or logarithmically), optionally takes frame-to-frame differences, and
normalises every feature by statistics learned in :meth:`FrameCodec.fit`. Features are laid out
``[magnitudes (n_partials) | frequencies (n_partials)]`` along the last axis.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..dsp.frames import TWO_PI, Frames, bin_advance, integrate, wrap
from ..errors import PvrnnError, check_choice, check_int, fail

__all__ = ["FrameCodec", "check_codec_settings"]

MODES = ("absolute", "delta")
MAGNITUDE_SCALES = ("linear", "log")


def check_codec_settings(n_partials: Any, mode: Any, magnitude: Any) -> dict[str, Any]:
    """The codec's settings, checked: the one place these rules live (the codec and
    :class:`~pvrnn.model.config.SoundModelConfig` both call it).

    Returns:
        dict: ``n_partials`` (int >= 1), ``mode`` and ``magnitude`` (names).

    Raises:
        PvrnnError: naming the first bad setting.
    """
    return dict(
        n_partials=check_int("n_partials", n_partials, low=1),
        mode=check_choice("mode", mode, MODES),
        magnitude=check_choice("magnitude", magnitude, MAGNITUDE_SCALES),
    )


class FrameCodec(nn.Module):
    """Frames <-> normalised feature vectors ``(..., n_frames, 2 * n_partials)``.

    Args:
        n_partials (int): bins kept, from the lowest (sound-rnn's low-pass limit).
        mode (str): ``"absolute"`` encodes each frame; ``"delta"`` encodes the change from the
            previous frame (one row fewer than frames), and decoding integrates from a start
            frame.
        magnitude (str): ``"linear"`` (sound-rnn) or ``"log"``: ``log(magnitude + floor)`` with
            ``floor`` = ``log_floor_db`` below the largest magnitude seen in :meth:`fit`.
        log_floor_db (float): dB below the peak magnitude where the log scale stops, default 80.

    Example:
        >>> codec = pvrnn.FrameCodec(n_partials=20, mode="delta").fit(frames)
        >>> x = codec.encode(frames)                       # (n_frames - 1, 40)
        >>> again = codec.decode(x, start=frames[0])       # frames[1:], lowest 20 bins
    """

    mean: torch.Tensor
    std: torch.Tensor
    floor: torch.Tensor

    def __init__(
        self,
        n_partials: int = 20,
        mode: str = "delta",
        magnitude: str = "linear",
        log_floor_db: float = 80.0,
    ) -> None:
        super().__init__()
        checked = check_codec_settings(n_partials, mode, magnitude)
        self.n_partials, self.mode = checked["n_partials"], checked["mode"]
        self.magnitude = checked["magnitude"]
        self.log_floor_db = float(log_floor_db)
        self.register_buffer("mean", torch.zeros(2 * self.n_partials, dtype=torch.float64))
        self.register_buffer("std", torch.ones(2 * self.n_partials, dtype=torch.float64))
        self.register_buffer("floor", torch.zeros((), dtype=torch.float64))
        self.analysis: dict[str, float] | None = None  # sample_rate, n_fft, hop_length once fit

    @property
    def n_features(self) -> int:
        """``2 * n_partials``."""
        return 2 * self.n_partials

    @property
    def fitted(self) -> bool:
        return self.analysis is not None

    def extra_repr(self) -> str:
        return f"n_partials={self.n_partials}, mode={self.mode!r}, magnitude={self.magnitude!r}"

    # -- state ------------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {
            "n_partials": self.n_partials, "mode": self.mode, "magnitude": self.magnitude,
            "log_floor_db": self.log_floor_db, "analysis": self.analysis,
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        for key in ("n_partials", "mode", "magnitude"):
            if state.get(key) != getattr(self, key):
                raise PvrnnError(
                    f"codec state {key}={state.get(key)!r}: expected {getattr(self, key)!r} "
                    "(the codec was built with other settings)"
                )
        self.log_floor_db = float(state["log_floor_db"])
        self.analysis = None if state["analysis"] is None else dict(state["analysis"])

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, frames: Frames | Sequence[Frames]) -> FrameCodec:
        """Learn per-feature mean and standard deviation from one or many sounds.

        Args:
            frames (Frames or list of Frames): analysed with the same settings; leading dims
                and sounds are pooled.

        Returns:
            FrameCodec: ``self``, fitted.
        """
        items = [frames] if isinstance(frames, Frames) else list(frames)
        if not items or not all(isinstance(f, Frames) for f in items):
            raise fail("frames", frames, "a Frames or a non-empty list of Frames")
        first = items[0]
        analysis = {"sample_rate": first.sample_rate, "n_fft": first.n_fft,
                    "hop_length": first.hop_length}
        for f in items:
            self._check_frames(f, analysis, "frames")
        minimum = 2 if self.mode == "delta" else 1
        if any(f.n_frames < minimum for f in items):
            raise fail("frames", frames, f"at least {minimum} frames per sound in {self.mode} mode")
        peak = max(float(f.magnitude[..., : self.n_partials].max()) for f in items)
        floor = max(peak, 1e-12) * 10.0 ** (-self.log_floor_db / 20.0)
        self.floor = torch.tensor(floor, dtype=torch.float64, device=self.floor.device)
        rows = torch.cat(
            [self._raw(f).reshape(-1, self.n_features).to(torch.float64).cpu() for f in items]
        )
        mean = rows.mean(0)
        std = rows.std(0, unbiased=False)
        # A feature that never changes (e.g. silence) must not blow up: floor each half's
        # standard deviation at 1e-3 of that half's largest.
        k = self.n_partials
        for half in (slice(0, k), slice(k, 2 * k)):
            top = float(std[half].max())
            std[half] = std[half].clamp_min(max(top * 1e-3, 1e-12))
        self.mean = mean.to(self.mean.device)
        self.std = std.to(self.std.device)
        self.analysis = analysis
        return self

    # -- encode / decode -------------------------------------------------------------------
    def encode(self, frames: Frames) -> torch.Tensor:
        """Frames ``(..., n_frames, n_bins)`` -> features ``(..., n, 2 * n_partials)``.

        ``n = n_frames`` in absolute mode and ``n_frames - 1`` in delta mode. Features are in the
        dtype of ``frames``, on its device.
        """
        self._require_fit()
        self._check_frames(frames, self.analysis, "frames")
        raw = self._raw(frames)
        return ((raw - self.mean) / self.std).to(frames.dtype)

    def decode(
        self,
        features: torch.Tensor,
        start: Frames | None = None,
        reset_every: int | None = None,
        reset_frames: Frames | None = None,
    ) -> Frames:
        """Features ``(..., n, 2 * n_partials)`` -> Frames ``(..., n, n_partials)``.

        Args:
            features (Tensor): normalised features, as from :meth:`encode` or a network.
            start (Frames): delta mode: the frame the first change applies to (its last frame is
                used); the result holds the ``n`` frames *after* it. In absolute mode it only
                supplies the start phase.
            reset_every (int, optional): delta mode: every ``reset_every`` frames (counted from
                ``start``) the running frame is replaced by a reset frame, which stops drift.
            reset_frames (Frames, optional): frames used at resets (cycled); default ``start``.

        Returns:
            Frames: magnitudes are clamped at zero.
        """
        self._require_fit()
        if not isinstance(features, torch.Tensor) or features.dim() < 2 or (
            features.shape[-1] != self.n_features
        ):
            raise fail("features", features, f"a tensor (..., n, {self.n_features})")
        raw = features.to(self.mean.dtype) * self.std + self.mean
        scaled, deviation = raw[..., : self.n_partials], raw[..., self.n_partials :]
        info = dict(self.analysis)
        dtype = features.dtype
        if self.mode == "absolute":
            start_phase = None
            if start is not None:
                start_phase = self._partials(start, "start").start_phase
            return Frames(
                self._unscale(scaled).to(dtype), deviation=deviation.to(dtype),
                start_phase=start_phase, **info,
            )
        if start is None:
            raise fail("start", start, "a Frames holding the frame to integrate from (delta mode)")
        first = self._partials(start, "start")[-1]
        resets = None if reset_every is None else self._partials(
            first if reset_frames is None else reset_frames, "reset_frames"
        )
        if reset_every is not None:
            reset_every = check_int("reset_every", reset_every, low=1)

        def run(start_values: torch.Tensor, changes: torch.Tensor, reset_values):
            return integrate(start_values, changes, reset_every, reset_values)[..., 1:, :]

        scaled = run(
            self._scale(first.magnitude), scaled,
            None if resets is None else self._scale(resets.magnitude),
        )
        deviation = run(
            first.deviation.to(torch.float64), deviation,
            None if resets is None else resets.deviation.to(torch.float64),
        )
        start_phase = None
        if first.start_phase is not None:  # continue the phase one hop on from the start frame
            hop, rate = first.hop_length, first.sample_rate
            advance = bin_advance(self.n_partials, first.n_fft, hop, deviation.device)
            start_phase = wrap(
                first.start_phase.to(torch.float64) + advance
                + deviation[..., 0, :] * (TWO_PI * hop / rate)
            )
        return Frames(
            self._unscale(scaled).to(dtype), deviation=deviation.to(dtype),
            start_phase=start_phase, **info,
        )

    # -- helpers ------------------------------------------------------------------------------
    def _raw(self, frames: Frames) -> torch.Tensor:
        f = frames.partials(self.n_partials)
        raw = torch.cat([self._scale(f.magnitude), f.deviation.to(torch.float64)], dim=-1)
        return torch.diff(raw, dim=-2) if self.mode == "delta" else raw

    def _scale(self, magnitude: torch.Tensor) -> torch.Tensor:
        magnitude = magnitude.to(torch.float64)
        if self.magnitude == "log":
            return torch.log(magnitude.clamp_min(0) + self.floor)
        return magnitude

    def _unscale(self, scaled: torch.Tensor) -> torch.Tensor:
        if self.magnitude == "log":
            return (torch.exp(scaled) - self.floor).clamp_min(0)
        return scaled.clamp_min(0)

    def _partials(self, frames: Any, name: str) -> Frames:
        if not isinstance(frames, Frames):
            raise fail(name, frames, "a pvrnn.Frames")
        self._check_frames(frames, self.analysis, name)
        return frames.partials(self.n_partials).to(self.mean.device)

    def _check_frames(self, frames: Any, analysis: dict[str, float], name: str) -> None:
        if not isinstance(frames, Frames):
            raise fail(name, frames, "a pvrnn.Frames")
        if frames.n_bins < self.n_partials:
            raise fail("n_partials", self.n_partials, f"at most the frames' n_bins={frames.n_bins}")
        for key, value in analysis.items():
            got = getattr(frames, key)
            if abs(got - value) > 1e-9 * abs(value):
                raise fail(f"{name}.{key}", got, f"{value:g}, as the codec was fitted")

    def _require_fit(self) -> None:
        if not self.fitted:
            raise PvrnnError("FrameCodec: not fitted; expected codec.fit(frames) first")
