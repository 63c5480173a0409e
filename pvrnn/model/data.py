"""From sources to what training reads: frames, the held-out split, streams and BPTT windows.

- :func:`analyze_sources` turns paths, audio tensors and :class:`~pvrnn.Frames` into one 2-D
  Frames ``(n_frames, n_partials)`` per sound; audio goes through :func:`source_frames`, the one
  analysis path (training sources and priming audio alike), which leaves out the edge frames
  whose windows reach into the reflect padding.
- :func:`split` holds out whole sounds when there are several, and an interior stretch of the
  sound when there is one (never its attack or release).
- :func:`layout` cuts the training stretches into parallel streams, :func:`windows` the
  streams into truncated-BPTT windows.
- :func:`reference` keeps the frames generation primes on and resets to.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Union

import torch

from ..dsp.frames import Frames
from ..dsp.vocoder import PhaseVocoder
from ..errors import PvrnnError, check_positive, fail
from .config import SoundModelConfig

__all__ = ["Source", "Split", "analyze_sources", "source_frames", "split", "layout", "windows",
           "reference", "middle"]

Source = Union[str, "os.PathLike[str]", torch.Tensor, Frames]

#: At most this many frames either side of a sound's middle are kept for resets.
MAX_RESET_HALF_WIDTH = 512

#: The keys of one sound's reference frames (see :func:`reference`).
REFERENCE_KEYS = ("prime_magnitude", "prime_deviation", "middle_magnitude", "middle_deviation")


def edge_frames(config: SoundModelConfig) -> int:
    """Frames at each end whose window reaches past the signal: ``ceil(n_fft / (2 hop))``."""
    return -(-config.n_fft // (2 * config.hop_length))


def source_frames(item: Any, sample_rate: float | None, config: SoundModelConfig,
                  name: str = "sources") -> Frames:
    """One source -> Frames ``(..., n_frames, n_partials)`` float32, partials only.

    Args:
        item: an audio file path (resampled to ``sample_rate`` when given), an audio tensor or
            numpy array ``(..., time)`` at ``sample_rate``, or Frames analysed with the
            model's ``n_fft`` / ``hop_length`` (used as given).
        sample_rate: Hz, or ``None`` (files keep their own rate).
        config: the model's settings (analysis and ``n_partials``).
        name: the argument named in errors.

    Of audio, the :func:`edge_frames` at each end are left out: their windows mix in
    reflected audio, a jump that is no part of the sound (and that dominates the statistics
    of a steady tone). Sounds too short to spare them keep them.

    Raises:
        PvrnnError: naming ``name`` for a bad item, a missing ``sample_rate`` or Frames of
            other analysis settings.
    """
    from ..io import load_audio

    if isinstance(item, Frames):
        for key in ("n_fft", "hop_length"):
            if getattr(item, key) != getattr(config, key):
                raise fail(f"{name}.{key}", getattr(item, key),
                           f"{getattr(config, key)} (the model's {key})")
        frames = item
    else:
        if isinstance(item, (str, os.PathLike)):
            audio, rate = load_audio(item, sample_rate=sample_rate)
        elif isinstance(item, torch.Tensor) or type(item).__module__ == "numpy":
            if sample_rate is None:
                raise fail("sample_rate", None, f"the sample rate (Hz) of the audio in {name}")
            audio = item if isinstance(item, torch.Tensor) else torch.from_numpy(item)
            rate = sample_rate
        else:
            raise fail(name, item, "an audio file path, an audio tensor (..., time) or a "
                       "pvrnn.Frames")
        if audio.is_floating_point():
            audio = audio.to(torch.float32)
        vocoder = PhaseVocoder(n_fft=config.n_fft, hop_length=config.hop_length,
                               window=config.window, sample_rate=rate).to(audio.device)
        try:
            frames = vocoder.analyze(audio)
        except PvrnnError as error:
            raise PvrnnError(f"{name}: {error}") from None
        edge = edge_frames(config)
        if frames.n_frames > 2 * edge + 2:
            frames = frames[edge : frames.n_frames - edge]
    return frames.partials(config.n_partials).to(torch.float32)


def analyze_sources(sources: Any, sample_rate: float | None, config: SoundModelConfig,
                    expected_rate: float | None = None) -> list[Frames]:
    """Sources -> a list of 2-D Frames ``(n_frames, n_partials)``, one per sound.

    Args:
        sources: one or a list of sources (see :func:`source_frames`); every leading index of
            a tensor or Frames is one sound.
        sample_rate: Hz of tensor sources; for paths, resample to it.
        config: the model's settings.
        expected_rate: Hz every sound must have (a resumed fit's); ``None``: the first
            sound's rate, which the others must share.

    Raises:
        PvrnnError: for no sources, a bad one, or sounds of different rates.
    """
    items = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    if not items:
        raise fail("sources", sources, "at least one path, audio tensor or Frames")
    if sample_rate is not None:
        sample_rate = check_positive("sample_rate", sample_rate)
    result: list[Frames] = []
    rate_seen = expected_rate
    for i, item in enumerate(items):
        name = f"sources[{i}]" if len(items) > 1 else "sources"
        frames = source_frames(item, sample_rate, config, name)
        if rate_seen is not None and abs(frames.sample_rate - rate_seen) > 1e-6 * rate_seen:
            raise fail(f"{name}.sample_rate", frames.sample_rate,
                       f"{rate_seen:g} Hz like the other sounds (pass sample_rate= to "
                       "resample files)")
        rate_seen = frames.sample_rate
        magnitude = frames.magnitude.reshape(-1, frames.n_frames, frames.n_bins)
        deviation = frames.deviation.reshape(-1, frames.n_frames, frames.n_bins)
        result.extend(
            Frames(m.contiguous(), deviation=d.contiguous(), sample_rate=frames.sample_rate,
                   n_fft=config.n_fft, hop_length=config.hop_length)
            for m, d in zip(magnitude, deviation)
        )
    return result


def first_source(sources: Any, sample_rate: float | None,
                 ) -> tuple[torch.Tensor | None, float | None, dict[str, int]]:
    """The first sound of ``sources``, for choosing automatic settings
    (:meth:`~pvrnn.model.config.SoundModelConfig.resolve`).

    Returns:
        tuple: ``(audio, rate, given)``: mono audio ``(time,)`` of the first sound (``None`` for
        Frames), its rate in Hz, and the analysis settings that Frames sources fix
        (``n_fft``, ``hop_length``; empty for audio).

    Raises:
        PvrnnError: as :func:`source_frames` for a bad first source or a missing rate.
    """
    from ..io import load_audio

    items = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    if not items:
        raise fail("sources", sources, "at least one path, audio tensor or Frames")
    item = items[0]
    if isinstance(item, Frames):
        return None, item.sample_rate, dict(n_fft=item.n_fft, hop_length=item.hop_length)
    if isinstance(item, (str, os.PathLike)):
        audio, rate = load_audio(item, sample_rate=sample_rate)
        return audio, rate, {}
    if isinstance(item, torch.Tensor) or type(item).__module__ == "numpy":
        if sample_rate is None:
            raise fail("sample_rate", None, "the sample rate (Hz) of the audio in sources")
        audio = torch.as_tensor(item)
        if audio.dim() == 0 or audio.shape[-1] == 0:
            raise fail("sources", item, "audio (..., time) with samples")
        return audio.reshape(-1, audio.shape[-1])[0], check_positive("sample_rate",
                                                                     sample_rate), {}
    raise fail("sources", item, "an audio file path, an audio tensor (..., time) or a "
               "pvrnn.Frames")


# -- the held-out split ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """Which frames train and which are held out, as ``(sound, start, stop)`` frame ranges.

    Attributes:
        train: stretches trained on (a sound with a held-out interior gives two).
        held_out: stretches whose loss is measured; each is predicted with the state warmed
            up on its sound's frames before ``start``.
    """

    train: tuple[tuple[int, int, int], ...]
    held_out: tuple[tuple[int, int, int], ...]


def split(n_frames: list[int], validation: float, seed: int = 0) -> Split:
    """Hold out whole sounds, or an interior stretch of a single sound.

    With several sounds, ``max(1, round(validation * n_sounds))`` of them (at most all but
    one), picked at random from ``seed``, are held out whole. With one sound, the
    ``max(1, round(validation * n_frames))`` frames around its middle are held out: a held-out
    tail would be the release or fade-out, which training never sees.

    Args:
        n_frames: frames of each sound.
        validation: the held-out fraction, ``[0, 0.5]`` (0: nothing held out).
        seed: picks the held-out sounds.

    Raises:
        PvrnnError: naming ``validation`` when a training stretch would keep fewer than 2
            frames.
    """
    whole = [(s, 0, n) for s, n in enumerate(n_frames)]
    if validation == 0:
        result = Split(tuple(whole), ())
    elif len(n_frames) > 1:
        n_held = min(len(n_frames) - 1, max(1, round(validation * len(n_frames))))
        order = torch.randperm(len(n_frames), generator=torch.Generator().manual_seed(seed))
        held = set(order[:n_held].tolist())
        result = Split(tuple(w for w in whole if w[0] not in held),
                       tuple(w for w in whole if w[0] in held))
    else:
        n = n_frames[0]
        n_held = max(1, round(validation * n))
        start = (n - n_held) // 2
        result = Split(((0, 0, start), (0, start + n_held, n)), ((0, start, start + n_held),))
    if any(stop - start < 2 for _, start, stop in result.train):
        raise fail("validation", validation,
                   "a smaller fraction: a training stretch has fewer than 2 frames left")
    return result


# -- streams and windows --------------------------------------------------------------------------
def layout(features: list[torch.Tensor], batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut each training stretch into ``batch_size`` contiguous streams, side by side.

    A stretch of ``n`` feature rows ``X`` gives inputs ``X[0 : B*L]`` and targets
    ``X[1 : B*L + 1]`` with ``L = (n - 1) // B``, reshaped to ``(B, L, F)`` (stream ``b`` holds
    rows ``b*L .. (b+1)*L - 1``); stretches are joined along time (the state crosses from one
    into the next).

    Returns:
        tuple: inputs and targets, each ``(B, T, F)``.

    Raises:
        PvrnnError: naming ``batch_size`` when a stretch is too short for it.
    """
    xs, ys = [], []
    for i, x in enumerate(features):
        n = x.shape[0]
        length = (n - 1) // batch_size
        if length < 1:
            raise fail("batch_size", batch_size,
                       f"at most {max(n - 1, 1)}: training stretch {i} has only {n} frames "
                       f"(lower batch_size or give longer sounds)")
        count = batch_size * length
        xs.append(x[:count].reshape(batch_size, length, -1))
        ys.append(x[1 : count + 1].reshape(batch_size, length, -1))
    return torch.cat(xs, dim=1), torch.cat(ys, dim=1)


def windows(n_steps: int, seq_length: int) -> list[tuple[int, int]]:
    """Truncated-BPTT windows ``[a, b)`` of at most ``seq_length`` steps over ``n_steps``."""
    return [(a, min(a + seq_length, n_steps)) for a in range(0, n_steps, seq_length)]


# -- reference frames -----------------------------------------------------------------------------
def middle(n: int) -> tuple[int, int]:
    """Frames ``[lo, hi)`` around the middle of ``n`` frames (``lo >= 1``): resets draw here."""
    half = max(1, min(n // 4, MAX_RESET_HALF_WIDTH))
    lo = max(1, n // 2 - half)
    hi = min(n, n // 2 + half)
    return lo, max(hi, lo + 1)


def reference(frames: Frames, config: SoundModelConfig) -> dict[str, torch.Tensor]:
    """The frames of one sound that generation needs: its first ``prime_seconds`` (to prime
    on) and those around its middle plus the frame before (to reset to), as tensors keyed by
    :data:`REFERENCE_KEYS`."""
    n = frames.n_frames
    prime = min(n, max(2, round(config.prime_seconds * frames.sample_rate / config.hop_length)))
    lo, hi = middle(n)
    return {
        "prime_magnitude": frames.magnitude[:prime].clone(),
        "prime_deviation": frames.deviation[:prime].clone(),
        "middle_magnitude": frames.magnitude[lo - 1 : hi].clone(),
        "middle_deviation": frames.deviation[lo - 1 : hi].clone(),
    }
