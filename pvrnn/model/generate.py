"""Generation around the sampler: priming, variance schedules, reset frames, rate, decoding.

:func:`generate_frames` is what :meth:`pvrnn.SoundModel.generate_frames` runs: it resolves the
primer (:func:`prime_frames`), turns ``variance_scale`` into one standard-deviation factor per
step (:func:`variance_schedule`), draws the reset frames, runs the one
:class:`~pvrnn.model.sample.Sampler`, decodes the features and stretches them in time for
``rate`` (:func:`stretch`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Union

import torch

from ..dsp.frames import Frames
from ..errors import check_choice, check_int, check_positive, fail
from .codec import FrameCodec
from .config import SoundModelConfig
from .data import middle, source_frames
from .network import SpectralRNN
from .sample import COMPONENTS, Sampler

__all__ = ["generate_frames", "prime_frames", "variance_schedule", "stretch"]

VarianceScale = Union[float, torch.Tensor, Callable[[torch.Tensor], Any]]


def prime_frames(prime: Any, references: list[dict[str, torch.Tensor]],
                 config: SoundModelConfig, sample_rate: float) -> tuple[Frames, Frames]:
    """Resolve ``prime`` to (frames to prime on, frames around the middle to reset to).

    Args:
        prime: ``None`` (the first training sound), an index into ``references``, mono audio
            ``(time,)`` at ``sample_rate`` (analysed as training sources are, edge frames left
            out), or a single sound's Frames ``(n_frames, n_bins)``.
        references: per training sound, its reference frames (see
            :func:`~pvrnn.model.data.reference`).
        config: the model's settings.
        sample_rate: the model's, Hz.

    Raises:
        PvrnnError: naming ``prime`` when it is none of the above or shorter than 3 frames.
    """
    if prime is None or (isinstance(prime, numbers.Integral) and not isinstance(prime, bool)):
        index = 0 if prime is None else int(prime)
        if not 0 <= index < len(references):
            raise fail("prime", prime, f"a training-sound index in [0, {len(references)})")
        r = references[index]
        return tuple(Frames(r[f"{part}_magnitude"], deviation=r[f"{part}_deviation"],
                            sample_rate=sample_rate, n_fft=config.n_fft,
                            hop_length=config.hop_length) for part in ("prime", "middle"))
    if isinstance(prime, torch.Tensor) and prime.dim() != 1:
        raise fail("prime", prime, "mono audio (time,) at the model's sample rate")
    if not isinstance(prime, (torch.Tensor, Frames)):
        raise fail("prime", prime, "None, a training-sound index, mono audio (time,) or a "
                   "pvrnn.Frames")
    frames = source_frames(prime, sample_rate, config, "prime")
    if frames.magnitude.dim() != 2:
        raise fail("prime", prime, "a single sound: Frames (n_frames, n_bins)")
    if abs(frames.sample_rate - sample_rate) > 1e-6 * sample_rate:
        raise fail("prime.sample_rate", frames.sample_rate, f"{sample_rate:g} Hz")
    if frames.n_frames < 3:
        raise fail("prime", prime, "at least 3 frames of sound")
    frames = frames.replace(start_phase=None)
    lo, hi = middle(frames.n_frames)
    return frames, frames[lo - 1 : hi]


def variance_schedule(
    value: VarianceScale, n_native: int, n_out: int, rate: float, batch: int,
    frame_seconds: float, device: torch.device,
) -> torch.Tensor:
    """``sqrt(variance_scale)`` per generated step, ``(n_native, batch or 1, 1)`` float32.

    Args:
        value: a number, a tensor of values over the output frames (``(L,)`` or
            ``(batch, L)``, stretched over ``n_out`` frames by linear interpolation), or a
            callable of the output time in seconds (float64 tensor, or one float at a time).
        n_native: steps generated (``ceil(n_out * rate)``).
        n_out: output frames.
        rate: generated frames per output frame.
        batch: streams.
        frame_seconds: seconds per frame (``hop_length / sample_rate``).
        device: of the result.

    Raises:
        PvrnnError: naming ``variance_scale`` for any other form, or negative/non-finite values.
    """
    steps = torch.arange(1, n_native + 1, dtype=torch.float64)
    if callable(value) and not isinstance(value, torch.Tensor):
        times = steps * (frame_seconds / rate)  # output seconds of each generated frame
        try:
            values = value(times)
        except Exception:  # a function of a float
            try:
                values = [value(float(t)) for t in times]
            except Exception as error:
                raise fail("variance_scale", value, f"a callable of time in seconds that "
                           f"works ({type(error).__name__}: {error})") from None
        try:
            values = torch.as_tensor(values, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise fail("variance_scale", value, "a callable returning numbers") from None
        if values.dim() == 0:
            values = values.expand(n_native)
        if values.shape != (n_native,):
            raise fail("variance_scale", value, f"a callable returning {n_native} values for "
                       f"{n_native} times (got shape {tuple(values.shape)})")
        values = values[:, None]
    elif isinstance(value, torch.Tensor):
        v = value.detach().to("cpu", torch.float64)
        if v.dim() == 0:
            values = v.reshape(1, 1).expand(n_native, 1)
        elif v.dim() in (1, 2) and v.shape[-1] >= 1 and (v.dim() == 1 or v.shape[0] in (1, batch)):
            v2 = v.reshape(-1, v.shape[-1])  # (rows, L)
            length = v2.shape[-1]
            # generated step i sits at output frame i / rate (1-based) -> index over L values
            pos = (steps / rate - 1).clamp(0, n_out - 1)
            pos = pos * ((length - 1) / max(n_out - 1, 1))
            lo = pos.floor().long().clamp(0, length - 1)
            hi = (lo + 1).clamp(max=length - 1)
            frac = (pos - lo).unsqueeze(0)
            values = (v2[:, lo] * (1 - frac) + v2[:, hi] * frac).T  # (n_native, rows)
        else:
            raise fail("variance_scale", value, f"a tensor of one value per frame, (n_frames,) "
                       f"or (batch={batch}, n_frames)")
    else:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not ok:
            raise fail("variance_scale", value, "a number >= 0, a tensor of one value per "
                       "frame, or a callable of time in seconds")
        values = torch.full((n_native, 1), float(value), dtype=torch.float64)
    if not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
        raise fail("variance_scale", value, "finite values >= 0")
    return values.sqrt().to(device=device, dtype=torch.float32).unsqueeze(-1)


def stretch(frames: Frames, start: Frames, rate: float, n_out: int) -> Frames:
    """Frames at positions ``rate, 2 rate, ... n_out * rate`` of the generated sequence
    (position 0 is the start frame), by linear interpolation of magnitude and frequency.

    ``frames`` is ``(batch, n, K)``; the result ``(batch, n_out, K)``, without start phase.
    """
    k = frames.n_bins
    batch = frames.magnitude.shape[0]
    first_mag = start.magnitude[-1:].expand(batch, 1, k).to(frames.dtype)
    first_dev = start.deviation[-1:].expand(batch, 1, k).to(frames.dtype)
    mag = torch.cat([first_mag, frames.magnitude], dim=1)
    dev = torch.cat([first_dev, frames.deviation], dim=1)
    last = mag.shape[1] - 1
    pos = torch.arange(1, n_out + 1, dtype=torch.float64, device=mag.device) * rate
    lo = pos.floor().long().clamp(0, last)
    hi = (lo + 1).clamp(max=last)
    frac = (pos - lo).clamp(0, 1).to(mag.dtype)[None, :, None]
    return frames.replace(
        magnitude=mag[:, lo] * (1 - frac) + mag[:, hi] * frac,
        deviation=dev[:, lo] * (1 - frac) + dev[:, hi] * frac,
        start_phase=None,
    )


def generate_frames(
    codec: FrameCodec,
    net: SpectralRNN,
    prime: Frames,
    middle_frames: Frames,
    n_frames: int,
    *,
    variance_scale: VarianceScale = 1.0,
    reset_every: float | None = None,
    rate: float = 1.0,
    seed: int = 0,
    batch: int = 1,
    temperature: float = 1.0,
    component: str = "sample",
    progress: bool = False,
) -> Frames:
    """Prime ``net`` on ``prime``, sample, decode: ``(batch, n_frames, n_partials)`` Frames.

    Args:
        codec, net: the model's (fitted) codec and network.
        prime: Frames ``(P, n_partials)`` to prime on; the result continues from its last.
        middle_frames: Frames around the primer's middle (plus the frame before each
            candidate, for delta-mode features); resets draw from ``middle_frames[1:]``.
        n_frames (int): frames to generate, >= 1.
        variance_scale (float, Tensor or callable): multiplies the variance of every sampled
            frame (``0``: each step takes the chosen component's mean; below 1: steadier;
            above 1: wilder). A tensor gives one value per generated frame (``(n_frames,)`` or
            ``(batch, n_frames)``; another length is stretched over the duration by linear
            interpolation); a callable receives the frames' times in seconds (a float64
            tensor; a function of a float is also accepted) and returns the values.
        reset_every (float, optional): seconds between resets: every so often the generated
            frame is replaced by a frame from around the primer's middle, which is also the
            network's next input. In absolute mode it is the frame that best continues the
            last two generated ones (:func:`~pvrnn.model.sample.nearest_continuation`), so a
            reset pulls the sound back to the recording without cutting a vibrato or a level;
            in delta mode (the blog's remedy for drift) a frame chosen at random (``seed``).
        rate (float): speed of change, > 0: each output frame advances ``rate`` generated
            frames (0.5 evolves half as fast, pitch unchanged), by linear interpolation of the
            natively generated frames (in delta mode: the decoded deltas scaled by ``rate``).
        seed (int): seeds every random draw (components, noise, reset frames).
        batch (int): number of variations generated together in one pass.
        temperature (float): > 0, sharpens (< 1) or flattens (> 1) the component weights.
        component (str): ``"sample"`` draws the component; ``"most_likely"`` takes the
            heaviest (sound-rnn's behaviour).
        progress (bool): a tqdm bar on stderr.

    Speed: each frame is one in-place network step (one gate product per LSTM layer, the
    head) and the sampling kernels, on buffers made once (:class:`~pvrnn.model.sample.Sampler`);
    on a CPU about 30 us for the clarinet preset, 1.8x its floor of one matrix-vector product
    per weight matrix (``benchmarks/bench_model.py --only-steps``). Such small steps gain
    nothing from intra-op threads; ``torch.set_num_threads(1)`` keeps them fast when other
    processes share the cores.

    Raises:
        PvrnnError: naming the first bad option.
    """
    n_out = check_int("n_frames", n_frames, low=1)
    batch = check_int("batch", batch, low=1)
    seed = check_int("seed", seed, low=0)
    rate = check_positive("rate", rate)
    sampler_options = dict(temperature=temperature,
                           component=check_choice("component", component, COMPONENTS))
    frame_seconds = prime.hop_length / prime.sample_rate
    n_native = max(1, math.ceil(n_out * rate - 1e-9))
    every = None
    if reset_every is not None:
        reset_every = check_positive("reset_every", reset_every)
        every = round(reset_every * rate / frame_seconds)
        if every < 1:
            raise fail("reset_every", reset_every,
                       f"at least one frame ({frame_seconds / rate:.3g} s at rate={rate:g})")
    device = codec.mean.device
    std_scale = variance_schedule(variance_scale, n_native, n_out, rate, batch, frame_seconds,
                                  device)
    features_prime = codec.encode(prime.to(device))  # (P or P-1, F)
    if features_prime.shape[-2] < 1:
        raise fail("prime", prime, "at least 2 frames to prime on (delta mode)")
    start = prime[-1].to(device)

    reset_features = resets = pool = None
    if every is not None and codec.mode == "absolute":  # the nearest continuation
        pool = codec.encode(middle_frames.to(device))
    elif every is not None:  # delta mode: reset frames drawn at random (seeded) from the middle
        candidates = middle_frames[1:].to(device)
        middle_features = codec.encode(middle_frames.to(device))
        if codec.mode == "absolute":
            middle_features = middle_features[1:]
        host = torch.Generator().manual_seed(seed)
        picks = torch.randint(candidates.n_frames, (batch, max(n_native // every, 1)),
                              generator=host).to(device)
        reset_features = middle_features[picks]  # (batch, n_resets, F)
        resets = candidates.replace(magnitude=candidates.magnitude[picks],
                                    deviation=candidates.deviation[picks], start_phase=None)

    generator = torch.Generator(device=device).manual_seed(seed)
    sampler = Sampler.for_network(net, generator=generator, **sampler_options)
    out = sampler.generate(net, features_prime, n_native, batch, std_scale, reset_features,
                           every, progress, reset_pool=pool)
    with torch.no_grad():
        if codec.mode == "delta" and every is not None:
            frames = codec.decode(out, start=start, reset_every=every, reset_frames=resets)
        else:
            frames = codec.decode(out, start=start)
        if rate != 1.0 or n_native != n_out:
            frames = stretch(frames, start, rate, n_out)
    return frames
