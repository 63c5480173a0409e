"""Accuracy figures quoted in the README's Results table, measured rather than remembered.

Prints one table (what, figure, setting) for:

- the phase vocoder's round trip: ``PhaseVocoder(n_fft=2048, hop_length=512)`` analysis then
  synthesis of 60 s of the bundled recordings (clarinet phrase, piano phrase, clarinet A4,
  piano C4, concatenated and tiled), SNR in dB, float32 and float64;
- the YIN f0 estimator (``pvrnn.metrics.estimate_f0``, defaults) on clean sines and on
  12-harmonic tones at 55, 110, 261.63, 440 and 987.77 Hz: worst absolute error in cents over
  the frames whose window lies inside the tone (the same frames ``tests/test_metrics.py``
  checks);
- the sine preset: ``SoundModel.from_preset("sine")`` fitted on ``pvrnn.examples.sine()``
  (440 Hz, 3 s) with the preset's epochs, then 3 s generated at ``variance_scale=1e-5``:
  median f0 (YIN) and level wobble (standard deviation / mean of the 2048-sample frame RMS,
  hop 512).

Only the public API is used. Takes about a minute on a 2-core CPU (``--skip-model`` saves
most of it).

Usage:
    python benchmarks/bench_accuracy.py
    python benchmarks/bench_accuracy.py --skip-model --threads 1
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from typing import List

import torch

import pvrnn
from pvrnn import metrics

SR = 44100
RECORDINGS = ("clarinet_phrase", "piano_phrase", "clarinet", "piano")
F0S = (55.0, 110.0, 261.63, 440.0, 987.77)


def long_recording(seconds: float = 60.0) -> torch.Tensor:
    """``seconds`` of real instruments at 44.1 kHz: the four bundled recordings, tiled."""
    parts = []
    for name in RECORDINGS:
        audio, rate = pvrnn.examples.load(name)
        if rate != SR:
            raise SystemExit(f"example {name!r} is at {rate} Hz, expected {SR}")
        parts.append(audio.reshape(-1))
    whole = torch.cat(parts)
    n = int(seconds * SR)
    return whole.repeat(-(-n // whole.shape[0]))[:n]


def snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    reference, estimate = reference.double(), estimate.double()
    return float(10 * torch.log10(reference.square().sum()
                                  / (reference - estimate).square().sum()))


def round_trip(audio: torch.Tensor, dtype: torch.dtype) -> float:
    pv = pvrnn.PhaseVocoder(n_fft=2048, hop_length=512, sample_rate=SR)
    x = audio.to(dtype)
    return snr_db(x, pv.synthesize(pv.analyze(x), length=x.shape[-1]))


def yin_worst_cents(tone: str, f0: float) -> float:
    """Worst |error| in cents of ``estimate_f0`` over the frames inside a 0.5 s tone."""
    if tone == "sine":
        x = pvrnn.examples.sine(f0, 0.5, SR)
    else:
        x = pvrnn.examples.harmonic(f0, 0.5, SR, n_harmonics=12)
    est = metrics.estimate_f0(x, SR)[3:-3].double()
    if torch.isnan(est).any():
        return math.inf
    return float((1200 * torch.log2(est / f0)).abs().max())


def sine_preset(seed: int = 0) -> tuple[float, float, float, int]:
    """(median f0 Hz, level wobble %, fit seconds, epochs) of the sine preset's generation."""
    model = pvrnn.SoundModel.from_preset("sine")
    start = time.perf_counter()
    history = model.fit(pvrnn.examples.sine(), sample_rate=SR, progress=False, device="cpu",
                        seed=seed)
    fit_s = time.perf_counter() - start
    epochs = len(next(iter(history.values()))) if isinstance(history, dict) and history else 0
    audio = model.generate(seconds=3.0, variance_scale=1e-5, seed=seed)
    f0 = float(metrics.estimate_f0(audio, SR).nanmedian())
    rms = audio.double().unfold(-1, 2048, 512).square().mean(-1).sqrt()
    wobble = 100 * float(rms.std() / rms.mean())
    return f0, wobble, fit_s, epochs


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="length of the round-trip input (default 60)")
    parser.add_argument("--skip-model", action="store_true",
                        help="skip the sine preset (the only part that trains a model)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    print("## pvrnn accuracy figures\n")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}\n")
    rows: List[List[str]] = []

    audio = long_recording(args.seconds)
    f32, f64 = round_trip(audio, torch.float32), round_trip(audio, torch.float64)
    rows.append([f"vocoder round trip, {args.seconds:g} s of recordings, float32 / float64",
                 f"{f32:.1f} dB / {f64:.1f} dB SNR", "n_fft 2048, hop 512, hann"])

    for tone in ("sine", "harmonic"):
        worst = {f0: yin_worst_cents(tone, f0) for f0 in F0S}
        low = max(v for f, v in worst.items() if f <= 440.0)
        every = max(worst.values())
        label = "clean sine" if tone == "sine" else "12-harmonic tone"
        rows.append([f"f0 estimator (YIN), {label}, worst abs error",
                     f"{low:.4f} cents (55-440 Hz), {every:.4f} cents (55-988 Hz)",
                     "0.5 s tones, inner frames; " + ", ".join(
                         f"{f:g} Hz {v:.4f}" for f, v in worst.items())])

    if not args.skip_model:
        # Small recurrent steps gain nothing from intra-op threads, and on a busy machine
        # threads turn a 3 s fit into a minute: one thread unless --threads says otherwise.
        threads = torch.get_num_threads()
        torch.set_num_threads(args.threads or 1)
        f0, wobble, fit_s, epochs = sine_preset()
        torch.set_num_threads(threads)
        rows.append(["sine preset, 3 s generated at variance_scale=1e-5",
                     f"f0 {f0:.3f} Hz, level wobble {wobble:.2f} %",
                     f"fitted on examples.sine() ({epochs or 'preset'} epochs, {fit_s:.1f} s)"])

    print("| what | figure | setting |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
