"""``pvrnn demo``: the main job, end to end, on a bundled example."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .cli import add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "demo", run,
        help="analyse and resynthesize a bundled recording",
        description="Analyse the bundled clarinet with the phase vocoder, resynthesize it, "
                    "write the WAV and report the round-trip SNR.",
        example="pvrnn demo --out demo-out",
    )
    parser.add_argument("--out", default="demo-out", help="folder for the results")
    parser.add_argument("--example", default="clarinet", help="bundled recording to use")


def run(args: argparse.Namespace) -> int:
    import torch

    from . import examples
    from .io import save_audio
    from .vocoder import PhaseVocoder

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    audio, sample_rate = examples.load(args.example)
    pv = PhaseVocoder(n_fft=2048, hop_length=512, sample_rate=sample_rate)
    start = time.perf_counter()
    frames = pv.analyze(audio)
    again = pv.synthesize(frames, length=audio.shape[-1])
    seconds = time.perf_counter() - start
    noise = (audio.double() - again.double()).square().sum()
    snr = float(10 * torch.log10(audio.double().square().sum() / noise))
    path = out / f"{args.example}_resynthesized.wav"
    save_audio(path, again, sample_rate)
    print(f"{args.example}: {audio.shape[-1] / sample_rate:.2f} s at {sample_rate} Hz, "
          f"{frames.n_frames} frames x {frames.n_bins} bins")
    print(f"analysis + resynthesis: {seconds * 1e3:.1f} ms; round-trip SNR {snr:.1f} dB")
    print(f"wrote {path}")
    return 0
