"""Training and generation for the sample-level baselines (random crops, Adam, softmax)."""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn

from ..errors import check_int, check_positive, fail
from .mulaw import mu_law_decode, mu_law_encode

__all__ = ["fit_samples", "generate_samples", "UNIFORM_NATS"]

#: Cross-entropy of a uniform guess over 256 levels, nats per sample.
UNIFORM_NATS = math.log(256)


def fit_samples(model: nn.Module, audio: torch.Tensor, *, steps: int | None = None,
                seconds: float | None = None, crop: int = 1024, batch_size: int = 8,
                lr: float = 2e-3, seed: int = 0, every: int = 25,
                callback: Any = None) -> dict[str, list[float]]:
    """Train a :class:`SampleWaveNet` or :class:`SampleRNN` on one sound.

    Each step draws ``batch_size`` random crops of ``model.context + crop`` mu-law codes
    (``crop`` predicted samples each, rounded up to whole frames for SampleRNN) and takes
    one Adam step on their mean cross-entropy, gradient norm clipped at 1.

    Args:
        model: a baseline network (``context`` attribute and ``loss(codes)``).
        audio (Tensor): mono audio ``(time,)`` in ``[-1, 1]`` (at the model's rate).
        steps (int, optional): optimisation steps; seconds (float, optional): a wall-clock
            budget instead (or as well: whichever ends first).
        crop, batch_size, lr, seed: crop length (samples), crops per step, Adam's rate,
            the seed of initialisation-independent draws (crop positions).
        every (int): record the running loss every this many steps.
        callback: called with ``(step, elapsed_seconds, model)`` at every record.

    Returns:
        dict: ``step``, ``seconds`` (training time so far, excluding callbacks) and ``loss``
        (mean cross-entropy in nats per sample over the last ``every`` steps) lists.

    Raises:
        PvrnnError: for neither ``steps`` nor ``seconds``, or a sound shorter than a crop.
    """
    if steps is None and seconds is None:
        raise fail("steps", None, "a number of steps or a seconds budget")
    steps = None if steps is None else check_int("steps", steps, low=1)
    seconds = None if seconds is None else check_positive("seconds", seconds)
    crop = check_int("crop", crop, low=1)
    frame = getattr(model, "frame_size", 1)
    crop = -(-crop // frame) * frame
    span = model.context + crop + (0 if frame > 1 else 1)  # WaveNet: its input plus target
    codes = mu_law_encode(audio.reshape(-1))
    if codes.shape[0] < span:
        raise fail("audio", f"{codes.shape[0]} samples", f"at least {span} (context + crop)")
    host = torch.Generator().manual_seed(check_int("seed", seed, low=0))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: dict[str, list[float]] = {"step": [], "seconds": [], "loss": []}
    model.train()
    offsets = torch.arange(span)
    elapsed, running, step = 0.0, 0.0, 0
    while (steps is None or step < steps) and (seconds is None or elapsed < seconds):
        began = time.perf_counter()
        starts = torch.randint(codes.shape[0] - span + 1, (batch_size, 1), generator=host)
        loss = model.loss(codes[starts + offsets])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running += float(loss.detach())
        step += 1
        elapsed += time.perf_counter() - began
        if step % every == 0:
            history["step"].append(step)
            history["seconds"].append(elapsed)
            history["loss"].append(running / every)
            running = 0.0
            if callback is not None:
                callback(step, elapsed, model)
    model.eval()
    return history


def generate_samples(model: nn.Module, prime: torch.Tensor, n_samples: int, *, seed: int = 0,
                     temperature: float = 1.0) -> torch.Tensor:
    """Play ``n_samples`` new samples after the audio ``prime`` ``(time,)``: float32 audio.

    The primer is trimmed to whole frames (SampleRNN) and must hold at least ``context``
    samples for a full receptive field (WaveNet: shorter primers start from silence).
    """
    n_samples = check_int("n_samples", n_samples, low=1)
    codes = mu_law_encode(prime.reshape(-1))
    frame = getattr(model, "frame_size", 1)
    keep = (codes.shape[0] // frame) * frame
    if keep < max(frame, 1):
        raise fail("prime", f"{codes.shape[0]} samples", f"at least {frame}")
    generator = torch.Generator().manual_seed(check_int("seed", seed, low=0))
    model.eval()
    out = model.generate(codes[codes.shape[0] - keep :][None], n_samples, generator,
                         check_positive("temperature", temperature))
    return mu_law_decode(out[0])
