"""``pvrnn demo``: the main job, end to end, on a bundled example.

Learn a bundled recording with the defaults of ``SoundModel()`` (full band, phase-coherent
resynthesis), generate a few seconds, and write ``demo-out/``: the generated audio, original
and generated spectrograms side by side (full band), the model file and a summary of what was
measured against the recording (timbre, coherence, vibrato, pitch, speed).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

from .main import add_command, progress_enabled


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "demo", run,
        help="learn a bundled recording and generate from it (the main job)",
        description="Learn a bundled recording (default: an oboe with vibrato) with the "
                    "defaults of SoundModel(), generate a few seconds, and write the audio, "
                    "original and generated spectrograms side by side, the model and a "
                    "summary of the measured timbre, coherence, vibrato and pitch.",
        example="pvrnn demo --out demo-out\n"
                "  pvrnn demo --example cello --seconds 8\n"
                "  pvrnn demo --example clarinet --preset clarinet   # the blog's settings",
    )
    parser.add_argument("--out", default="demo-out", help="folder for the results")
    parser.add_argument("--example", default="oboe",
                        help="bundled recording (see pvrnn.examples.names()); default oboe")
    parser.add_argument("--preset", default=None,
                        help="the blog's settings (sine, clarinet, piano); None: SoundModel()")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs; None: the model's own (150 for the defaults)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds to generate")
    parser.add_argument("--variance-scale", type=float, default=1.0,
                        help="multiplies the model's variance when sampling")
    parser.add_argument("--seed", type=int, default=0, help="seed for training and generation")


def run(args: argparse.Namespace) -> int:
    import torch

    from .. import examples
    from ..errors import PvrnnError
    from ..io import save_audio
    from ..metrics import consistency, estimate_f0, mean_spectrum_distance, partial_noise, vibrato
    from ..model.sound_model import SoundModel

    if args.example not in examples.names():
        raise PvrnnError(f"--example={args.example!r}: expected one of "
                         + ", ".join(examples.names()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    audio, sample_rate = examples.load(args.example)
    model = SoundModel() if args.preset is None else SoundModel.from_preset(args.preset)
    show = progress_enabled()

    # Small recurrent steps gain nothing from intra-op threads; on a busy 2-core machine two
    # threads measured 13x slower than one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        model.fit(audio, sample_rate=sample_rate, epochs=args.epochs, seed=args.seed,
                  progress=show)
        trained = time.perf_counter() - start
        n_frames = 1 + math.ceil(args.seconds * sample_rate / model.config.hop_length)
        start = time.perf_counter()
        frames = model.generate_frames(n_frames, variance_scale=args.variance_scale,
                                       seed=args.seed, progress=show)
        generated = model.synthesize(frames)[..., : round(args.seconds * sample_rate)]
        generated_seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)

    half = audio.shape[-1] // 2
    f0 = estimate_f0(audio, sample_rate)
    pitched = bool((~f0.isnan()).float().mean() > 0.5)
    top = model.config.n_partials * sample_rate / model.config.n_fft
    timbre = float(mean_spectrum_distance(audio, generated))
    own = float(mean_spectrum_distance(audio[:half], audio[half:]))
    coherence = float(consistency(frames, model.synthesize(frames)))
    lines = [
        f"pvrnn demo: {'preset ' + repr(args.preset) if args.preset else 'SoundModel()'} on "
        f"the bundled {args.example!r} ({audio.shape[-1] / sample_rate:.2f} s at "
        f"{sample_rate} Hz)",
        f"settings chosen: n_fft {model.config.n_fft}, hop {model.config.hop_length}, "
        f"{model.config.n_partials} bins (up to {top:.0f} Hz), BPTT window "
        f"{model.config.seq_length} frames",
        f"training: {len(model.history['epoch'])} epochs in {trained:.1f} s",
        f"generation: {args.seconds:g} s in {generated_seconds:.2f} s "
        f"({args.seconds / generated_seconds:.0f}x real time), variance_scale "
        f"{args.variance_scale:g}, seed {args.seed}",
        f"timbre: mean-spectrum distance to the original {timbre:.2f} dB (the recording's "
        f"halves against each other: {own:.2f} dB)",
        f"coherence: consistency of the generated frames {coherence:.1f} dB",
    ]
    if pitched:
        reference = float(f0.nanmedian())
        f0_gen = float(estimate_f0(generated, sample_rate).nanmedian())
        rate_o, extent_o = vibrato(audio, sample_rate)
        rate_g, extent_g = vibrato(generated, sample_rate)
        lines += [
            f"pitch: original {reference:.2f} Hz, generated {f0_gen:.2f} Hz "
            f"({1200 * math.log2(f0_gen / reference):+.1f} cents)",
            f"vibrato: original {float(rate_o):.2f} Hz +-{float(extent_o):.1f} cents, "
            f"generated {float(rate_g):.2f} Hz +-{float(extent_g):.1f} cents",
            f"noise between partials: original "
            f"{float(partial_noise(audio, sample_rate, f0=reference)):.1f} dB, generated "
            f"{float(partial_noise(generated, sample_rate, f0=reference)):.1f} dB",
        ]
    peak = float(generated.abs().max())
    gain = 1.0 if peak <= 0.99 else 0.99 / peak  # never clip
    fade = min(generated.shape[-1], round(0.02 * sample_rate))  # no click where it stops
    generated = generated.clone()
    generated[..., generated.shape[-1] - fade:] *= torch.linspace(1.0, 0.0, fade)
    save_audio(out / "generated.wav", generated * gain, sample_rate)
    save_audio(out / "original.wav", audio, sample_rate)
    model.save(out / "model.pt")
    picture = _spectrogram_png(out / "spectrogram.png", audio, generated, sample_rate)
    lines.append("files: " + ", ".join(["original.wav", "generated.wav", "model.pt"]
                                       + ([picture] if picture else [])))
    summary = "\n".join(lines) + "\n"
    (out / "summary.txt").write_text(summary)
    print(summary, end="")
    print(f"wrote {out}/")
    return 0


def _spectrogram_png(path: Path, original, generated, sample_rate: float) -> str | None:
    """Original vs generated spectrograms; ``None`` when matplotlib (pvrnn[plot]) is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from ..plot import compare_spectrograms
    except ImportError:
        return None
    figure = compare_spectrograms(
        [original, generated], sample_rate=sample_rate,
        titles=["original", "generated: SoundModel() defaults, phase-locked"],
        n_fft=2048, hop_length=256,
    )
    partial = path.with_name(f".{path.name}.tmp")
    figure.savefig(partial, dpi=100, format="png")
    os.replace(partial, path)  # a finished picture or none
    return path.name
