"""Pictures of sounds: spectrograms, instantaneous frequency, side-by-side comparisons.

Optional: matplotlib comes with the ``plot`` extra (``pip install pvrnn[plot]``) and is
imported only when a function here is called; ``import pvrnn`` never needs it. Every function
accepts audio ``(time,)`` (with ``sample_rate``) or :class:`pvrnn.Frames` and returns the
matplotlib ``Figure``: save it with ``figure.savefig("x.png")``. If the caller has imported
``matplotlib.pyplot`` (a notebook, an interactive script) the figure is a pyplot figure, so
``plt.show()`` and notebooks display it; otherwise it is a bare ``Figure`` that needs no GUI
backend (the command line, servers).

Example:
    >>> audio, rate = pvrnn.examples.load("clarinet")
    >>> pvrnn.plot.plot_frames(pvrnn.PhaseVocoder(sample_rate=rate).analyze(audio))
    >>> pvrnn.plot.compare_spectrograms([audio, pvrnn.time_stretch(audio, rate, 2.0)], rate,
    ...                                 titles=["original", "stretched x2"])
"""

from __future__ import annotations

import math
import sys
from typing import Any, Sequence

import torch

from .dsp.frames import Frames
from .errors import PvrnnError, check_int, check_positive, fail

__all__ = [
    "plot_spectrogram",
    "plot_instantaneous_frequency",
    "plot_frames",
    "compare_spectrograms",
    "plot_training",
]


class MissingExtraError(PvrnnError, ImportError):
    """matplotlib is not installed (``pip install pvrnn[plot]``)."""


def _matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError as error:
        raise MissingExtraError(
            "matplotlib is needed for plots: pip install pvrnn[plot] (or pip install matplotlib)"
        ) from error
    return matplotlib, Figure


def _new_figure(figsize: tuple[float, float]) -> Any:
    """A figure managed by pyplot when the caller uses pyplot (so ``plt.show()`` and notebooks
    display it), else a bare ``Figure`` (no GUI backend needed: the CLI, scripts, servers)."""
    _, Figure = _matplotlib()
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        return pyplot.figure(figsize=figsize, layout="constrained")
    return Figure(figsize=figsize, layout="constrained")


def _frames(
    item: Any, sample_rate: float | None, n_fft: int, hop_length: int, name: str
) -> Frames:
    """Audio ``(time,)`` or Frames -> Frames of one sound (``(n_frames, n_bins)``)."""
    if isinstance(item, Frames):
        frames = item
    else:
        from .dsp.vocoder import PhaseVocoder

        if sample_rate is None:
            raise fail("sample_rate", sample_rate, f"the sample rate of {name} (audio needs it; "
                       "Frames carry their own)")
        audio = item if isinstance(item, torch.Tensor) else torch.as_tensor(item)
        if audio.dim() > 1:
            audio = audio.squeeze()
        if audio.dim() != 1:
            raise fail(name, item, "one sound, (time,) (pick an item, e.g. audio[0])")
        n_fft = check_int("n_fft", n_fft, low=16)
        if audio.shape[-1] < n_fft:  # short sounds: a smaller FFT rather than an error
            n_fft = max(16, 1 << (audio.shape[-1].bit_length() - 1))
        hop_length = min(check_int("hop_length", hop_length, low=1), n_fft // 2)
        vocoder = PhaseVocoder(n_fft, hop_length, sample_rate=check_positive(
            "sample_rate", sample_rate))
        frames = vocoder.analyze(audio.detach().to("cpu", torch.float32))
    if frames.magnitude.dim() != 2:
        mag = frames.magnitude.squeeze()
        if mag.dim() != 2:
            raise fail(name, frames, "frames of one sound, (n_frames, n_bins)")
        frames = frames.replace(magnitude=mag, deviation=frames.deviation.reshape(mag.shape),
                                start_phase=None)
    return frames.to("cpu", torch.float32)


def _top_frequency(frames: Sequence[Frames], fmax: float | None, db_range: float) -> float:
    """``fmax``, or (``None``) a little above the highest frequency whose long-term average
    level is within ``db_range`` of the loudest (brief splatter at edges does not count)."""
    nyquist = max(f.sample_rate / 2 for f in frames)
    if fmax is not None:
        return min(check_positive("fmax", fmax), nyquist)
    means = [f.magnitude.square().mean(0).sqrt() for f in frames]
    peak = max(float(m.max()) for m in means)
    if peak <= 0:
        return nyquist
    top = 0.0
    for f, mean in zip(frames, means):
        loud = (mean >= peak * 10 ** (-db_range / 20)).nonzero()
        if loud.numel():
            top = max(top, float(loud.max() + 1) * f.sample_rate / f.n_fft)
    return min(nyquist, max(1000.0, 1.15 * top))


def _db(magnitude: torch.Tensor, db_range: float) -> tuple[torch.Tensor, float]:
    peak = float(magnitude.max()) if magnitude.numel() else 0.0
    if peak <= 0:
        return torch.full_like(magnitude, -db_range), 0.0
    level = 20 * torch.log10(magnitude.clamp_min(peak * 10 ** (-db_range / 20)))
    return level, 20 * math.log10(peak)


def _spectrogram_on(
    ax: Any, frames: Frames, *, db_range: float, fmax: float | None, title: str | None,
    colorbar: bool, figure: Any,
) -> None:
    level, top = _db(frames.magnitude, db_range)
    duration = frames.n_frames * frames.hop_length / frames.sample_rate
    nyquist = frames.n_bins * frames.sample_rate / frames.n_fft
    image = ax.imshow(
        level.T.numpy(), origin="lower", aspect="auto", cmap="magma",
        extent=(0.0, duration, 0.0, nyquist), vmin=top - db_range, vmax=top,
        interpolation="nearest",
    )
    ax.set_ylim(0, _top_frequency([frames], fmax, db_range))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    if title:
        ax.set_title(title)
    if colorbar:
        figure.colorbar(image, ax=ax, label="dB")


def _check_range(db_range: Any) -> float:
    return check_positive("db_range", db_range)


def plot_spectrogram(
    audio_or_frames: torch.Tensor | Frames,
    sample_rate: float | None = None,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    db_range: float = 80.0,
    fmax: float | None = None,
    title: str | None = None,
    ax: Any = None,
    colorbar: bool = True,
) -> Any:
    """Magnitude spectrogram in dB (time across, frequency up).

    Args:
        audio_or_frames (Tensor or Frames): one sound, ``(time,)``, or its
            :class:`~pvrnn.Frames` ``(n_frames, n_bins)``.
        sample_rate (float, optional): Hz; needed for audio.
        n_fft (int): FFT size for audio (a smaller one is used for sounds shorter than it).
        hop_length (int): hop for audio.
        db_range (float): dB shown below the loudest bin (default 80).
        fmax (float, optional): top of the frequency axis, Hz; default a little above the
            highest frequency within ``db_range`` of the peak (at least 1 kHz).
        title (str, optional): axes title.
        ax (matplotlib Axes, optional): draw here instead of a new figure.
        colorbar (bool): add a dB colour bar.

    Returns:
        matplotlib.figure.Figure: the figure drawn on.

    Raises:
        PvrnnError: when matplotlib is missing (``pip install pvrnn[plot]``), or the input is
            not one sound.
    """
    _matplotlib()
    frames = _frames(audio_or_frames, sample_rate, n_fft, hop_length, "audio_or_frames")
    figure = _new_figure((8, 4)) if ax is None else ax.figure
    ax = figure.add_subplot() if ax is None else ax
    _spectrogram_on(ax, frames, db_range=_check_range(db_range), fmax=fmax, title=title,
                    colorbar=colorbar, figure=figure)
    return figure


def plot_instantaneous_frequency(
    audio_or_frames: torch.Tensor | Frames,
    sample_rate: float | None = None,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    db_range: float = 60.0,
    fmax: float | None = None,
    title: str | None = None,
    ax: Any = None,
    colorbar: bool = True,
) -> Any:
    """Instantaneous frequency of every loud bin, as points at (time, frequency in Hz).

    Each bin within ``db_range`` of the loudest is drawn at the frequency the phase vocoder
    measured for it (not its bin centre), coloured by level. Steady partials collapse onto
    sharp lines; vibrato, glides and noise show as what they are. This is the picture of
    what :class:`~pvrnn.Frames` hold.

    Args: as :func:`plot_spectrogram` (``db_range`` default 60).

    Returns:
        matplotlib.figure.Figure: the figure drawn on.

    Raises:
        PvrnnError: when matplotlib is missing, or the input is not one sound.
    """
    _matplotlib()
    frames = _frames(audio_or_frames, sample_rate, n_fft, hop_length, "audio_or_frames")
    db_range = _check_range(db_range)
    figure = _new_figure((8, 4)) if ax is None else ax.figure
    ax = figure.add_subplot() if ax is None else ax
    _frequency_on(ax, frames, db_range=db_range, fmax=fmax, title=title, colorbar=colorbar,
                  figure=figure)
    return figure


def _frequency_on(
    ax: Any, frames: Frames, *, db_range: float, fmax: float | None, title: str | None,
    colorbar: bool, figure: Any, max_points: int = 200_000,
) -> None:
    level, top = _db(frames.magnitude, db_range)
    loud = frames.magnitude > frames.magnitude.max() * 10 ** (-db_range / 20)
    t = (torch.arange(frames.n_frames, dtype=torch.float32) * frames.hop_length
         / frames.sample_rate).unsqueeze(-1).expand_as(level)
    freq = frames.frequency
    t, freq, level = t[loud], freq[loud], level[loud]
    if level.numel() > max_points:  # keep the loudest: a readable, light picture
        keep = torch.topk(level, max_points).indices
        t, freq, level = t[keep], freq[keep], level[keep]
    order = torch.argsort(level)  # loud points drawn last, on top
    points = ax.scatter(t[order].numpy(), freq[order].numpy(), c=level[order].numpy(), s=1.5,
                        cmap="viridis", vmin=top - db_range, vmax=top, linewidths=0)
    ax.set_xlim(0, frames.n_frames * frames.hop_length / frames.sample_rate)
    ax.set_ylim(0, _top_frequency([frames], fmax, db_range))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("instantaneous frequency (Hz)")
    if title:
        ax.set_title(title)
    if colorbar:
        figure.colorbar(points, ax=ax, label="dB")


def plot_frames(
    frames: Frames | torch.Tensor,
    sample_rate: float | None = None,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    db_range: float = 80.0,
    fmax: float | None = None,
    title: str | None = None,
) -> Any:
    """Two panels of one sound: the magnitude spectrogram and the instantaneous frequencies.

    Args:
        frames (Frames or Tensor): :class:`~pvrnn.Frames` ``(n_frames, n_bins)`` (e.g. from
            ``PhaseVocoder.analyze`` or a model), or audio ``(time,)`` with ``sample_rate``.
        sample_rate (float, optional): Hz, for audio.
        n_fft, hop_length (int): analysis settings for audio.
        db_range (float): dB shown below the loudest bin (the frequency panel shows 20 dB
            less, the loud partials only).
        fmax (float, optional): top of both frequency axes, Hz.
        title (str, optional): figure title.

    Returns:
        matplotlib.figure.Figure: the two-panel figure.

    Raises:
        PvrnnError: when matplotlib is missing, or the input is not one sound.
    """
    _matplotlib()
    frames = _frames(frames, sample_rate, n_fft, hop_length, "frames")
    db_range = _check_range(db_range)
    figure = _new_figure((9, 6.5))
    top, bottom = figure.subplots(2, 1, sharex=True)
    _spectrogram_on(top, frames, db_range=db_range, fmax=fmax, title="magnitude (dB)",
                    colorbar=True, figure=figure)
    _frequency_on(bottom, frames, db_range=max(db_range - 20, 10.0),
                  fmax=fmax if fmax is not None else _top_frequency([frames], None, db_range),
                  title="instantaneous frequency of the loud bins", colorbar=True,
                  figure=figure)
    top.set_xlabel("")
    if title:
        figure.suptitle(title)
    return figure


def compare_spectrograms(
    items: Sequence[torch.Tensor | Frames] | torch.Tensor | Frames,
    *rest: Any,
    sample_rate: float | None = None,
    titles: Sequence[str] | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    db_range: float = 80.0,
    fmax: float | None = None,
) -> Any:
    """Spectrograms of several sounds one above the other, on one dB scale and time axis.

    Call as ``compare_spectrograms([a, b, ...], sample_rate, titles=[...])`` or
    ``compare_spectrograms(a, b, sample_rate=..., titles=[...])``. The colour scale is shared
    (the loudest bin of all of them at the top), so levels compare across panels.

    Args:
        items: sounds ``(time,)`` and/or :class:`~pvrnn.Frames`.
        sample_rate (float, optional): Hz, for the audio among them.
        titles (sequence of str, optional): one per sound.
        n_fft, hop_length (int): analysis settings for audio.
        db_range (float): dB shown below the loudest bin of all.
        fmax (float, optional): top of the frequency axes, Hz.

    Returns:
        matplotlib.figure.Figure: one row per sound.

    Raises:
        PvrnnError: when matplotlib is missing, there is nothing to plot, the titles do not
            match the sounds, or an item is not one sound.
    """
    _matplotlib()
    if isinstance(items, (list, tuple)):
        sounds = list(items)
        if len(rest) == 1 and sample_rate is None:
            sample_rate = rest[0]
        elif rest:
            raise fail("rest", rest, "at most one more positional argument, the sample rate")
    else:
        sounds = [items]
        for extra in rest:
            if isinstance(extra, (torch.Tensor, Frames)):
                sounds.append(extra)
            elif sample_rate is None and extra is rest[-1]:
                sample_rate = extra
            else:
                raise fail("items", extra, "sounds (Tensor or Frames), then the sample rate")
    if not sounds:
        raise fail("items", items, "at least one sound")
    if titles is not None and len(titles) != len(sounds):
        raise fail("titles", titles, f"{len(sounds)} titles, one per sound")
    frames = [_frames(s, sample_rate, n_fft, hop_length, f"items[{i}]")
              for i, s in enumerate(sounds)]
    db_range = _check_range(db_range)
    figure = _new_figure((9, 2.6 * len(frames) + 0.6))
    axes = figure.subplots(len(frames), 1, sharex=True, squeeze=False)[:, 0]
    peak = max(float(f.magnitude.max()) for f in frames)
    top = 20 * math.log10(peak) if peak > 0 else 0.0
    image = None
    for i, (ax, f) in enumerate(zip(axes, frames)):
        floor = peak * 10 ** (-db_range / 20) if peak > 0 else 1e-12
        level = 20 * torch.log10(f.magnitude.clamp_min(floor))
        duration = f.n_frames * f.hop_length / f.sample_rate
        nyquist = f.n_bins * f.sample_rate / f.n_fft
        image = ax.imshow(level.T.numpy(), origin="lower", aspect="auto", cmap="magma",
                          extent=(0.0, duration, 0.0, nyquist), vmin=top - db_range, vmax=top,
                          interpolation="nearest")
        ax.set_ylim(0, _top_frequency(frames, fmax, db_range))
        ax.set_ylabel("frequency (Hz)")
        if titles is not None:
            ax.set_title(titles[i])
    axes[-1].set_xlabel("time (s)")
    figure.colorbar(image, ax=list(axes), label="dB")
    return figure


def plot_training(log: Any, *, figsize: tuple[float, float] = (8.0, 4.0)) -> Any:
    """Training curves: the training loss (per logged step and per epoch), the validation
    loss per epoch with the kept (best) epoch marked, and the learning rate.

    Args:
        log: a training log path (``model.csv``, see :mod:`pvrnn.model.log`), its rows
            (:func:`pvrnn.model.log.read_log`), or a ``fit`` history dict.
        figsize: inches.

    Returns:
        matplotlib Figure; x axis in epochs (steps as fractions of their epoch).

    Raises:
        PvrnnError: for a log with no epoch, or no matplotlib.

    Example:
        >>> pvrnn.plot.plot_training("model.csv").savefig("curves.png")
    """
    from .model.log import read_log

    if isinstance(log, dict):  # a history
        rows = [{"kind": "epoch", "epoch": e, "train_loss": t, "val_loss": v, "lr": None,
                 "step": e} for e, t, v in zip(log["epoch"], log["train_loss"], log["val_loss"])]
    elif isinstance(log, list):
        rows = log
    else:
        rows = read_log(log)
    epochs = [r for r in rows if r["kind"] == "epoch"]
    if not epochs:
        raise fail("log", log, "a training log with at least one epoch")
    steps = [r for r in rows if r["kind"] == "step"]
    per_epoch = max(1.0, epochs[0]["step"] or 1.0) if len(epochs) else 1.0
    figure = _new_figure(figsize)
    ax = figure.add_subplot(1, 1, 1)
    if steps:
        ax.plot([r["step"] / per_epoch for r in steps], [r["train_loss"] for r in steps],
                color="0.7", lw=0.8, label="training (steps)")
    ax.plot([r["epoch"] for r in epochs], [r["train_loss"] for r in epochs], "o-", ms=3,
            label="training")
    val = [(r["epoch"], r["val_loss"]) for r in epochs if r["val_loss"] is not None]
    if val:
        ax.plot(*zip(*val), "s-", ms=3, label="validation")
        best = min(val, key=lambda item: item[1])
        ax.axvline(best[0], color="k", ls=":", lw=0.8)
        ax.annotate(f"kept: epoch {best[0]:g}", (best[0], best[1]), textcoords="offset points",
                    xytext=(4, 8), fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats per frame)")
    ax.legend(loc="upper right", fontsize=8)
    lrs = [(r["epoch"], r["lr"]) for r in epochs if r.get("lr") is not None]
    if lrs and len({v for _, v in lrs}) > 1:
        twin = ax.twinx()
        twin.plot(*zip(*lrs), color="tab:green", lw=0.8, ls="--")
        twin.set_ylabel("learning rate", color="tab:green")
    return figure
