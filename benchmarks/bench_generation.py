"""Does a model trained with the defaults give the instrument back? One table per sound.

For every bundled example (or the ones named): fit ``pvrnn.SoundModel()`` (the defaults) on
the recording, on one CPU thread, generate 4 s, and compare with the recording:

- timbre: mean-spectrum log-spectral distance (4096-point spectra, full band) to the original,
  next to the recording's own first half against its second half ("self": what natural
  variation alone gives). Target: within 1.0 dB of self.
- coherence: consistency of the generated frames with the audio synthesized from them
  (spectral convergence, dB). Target: <= -20 dB on pitched sounds.
- vibrato: rate (Hz) and extent (+- cents) of the pitch track, original and generated.
  Target on a vibrato recording: rate within 20 %, extent within 50 %.
- noise between partials: ``pvrnn.metrics.partial_noise`` (power between the harmonics over
  power on them, from the mean spectrum and the original's median f0), original and generated.
  Target: within 3 dB.
- pitch: median f0 of the generated sound against the original's, cents. Target: within 5.
- cost: fit time (target <= 90 s for a 3 s recording) and generation speed in x real time
  for one stream (target >= 20x).

Spectrogram pictures (original | generated) and the generated audio go to ``--out``.

Usage:
    python benchmarks/bench_generation.py                         # every example, ~10 min
    python benchmarks/bench_generation.py --sounds oboe cello --seconds 4
    python benchmarks/bench_generation.py --epochs 20 --sounds clarinet   # a quick look
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import pvrnn
from pvrnn.metrics import (
    consistency,
    estimate_f0,
    mean_spectrum_distance,
    partial_noise,
    vibrato,
)

PITCHED_EXCLUDED = ("texture",)  # no pitch: coherence, vibrato, noise and f0 are printed only
VIBRATO = ("oboe", "cello")      # recordings with a vibrato to reproduce


def measure(name: str, epochs: int | None, seconds: float, seed: int, out: Path | None) -> dict:
    audio, rate = pvrnn.examples.load(name)
    model = pvrnn.SoundModel()
    start = time.perf_counter()
    model.fit(audio, sample_rate=rate, epochs=epochs, progress=False, seed=seed)
    fit_seconds = time.perf_counter() - start

    n_frames = 1 + math.ceil(seconds * rate / model.config.hop_length)
    model.generate_frames(8, seed=seed)  # warm-up
    start = time.perf_counter()
    frames = model.generate_frames(n_frames, seed=seed)
    generated = model.synthesize(frames)
    speed = seconds / (time.perf_counter() - start)

    half = audio.shape[-1] // 2
    f0_orig = float(estimate_f0(audio, rate).nanmedian())
    f0_gen = float(estimate_f0(generated, rate).nanmedian())
    rate_o, extent_o = vibrato(audio, rate)
    rate_g, extent_g = vibrato(generated, rate)
    row = dict(
        name=name, n_fft=model.config.n_fft, hop=model.config.hop_length,
        fit_s=fit_seconds, speed=speed,
        lsd=float(mean_spectrum_distance(audio, generated)),
        self_lsd=float(mean_spectrum_distance(audio[:half], audio[half:])),
        consistency=float(consistency(frames, generated)),
        vib_rate=(float(rate_o), float(rate_g)), vib_extent=(float(extent_o), float(extent_g)),
        noise=(float(partial_noise(audio, rate, f0=f0_orig)),
               float(partial_noise(generated, rate, f0=f0_orig))),
        cents=1200 * math.log2(f0_gen / f0_orig) if f0_orig > 0 and f0_gen > 0 else math.nan,
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        peak = max(1.0, float(generated.abs().max()))
        pvrnn.save_audio(out / f"{name}_generated.wav", generated.cpu() / peak, rate)
        try:
            from pvrnn.plot import compare_spectrograms
            figure = compare_spectrograms([audio, generated], sample_rate=rate,
                                          titles=[f"{name}: original", "generated (defaults)"])
            figure.savefig(out / f"{name}.png", dpi=80)
        except pvrnn.PvrnnError as error:  # matplotlib missing
            print(f"  (no picture: {error})")
    return row


def verdicts(row: dict) -> dict[str, str]:
    name = row["name"]
    pitched = name not in PITCHED_EXCLUDED

    def mark(ok: bool) -> str:
        return "ok" if ok else "MISS"

    result = {
        "timbre": mark(row["lsd"] <= row["self_lsd"] + 1.0),
        "cost": mark(row["speed"] >= 20.0 and row["fit_s"] <= 90.0),
    }
    if pitched:
        result["coherence"] = mark(row["consistency"] <= -20.0)
        result["noise"] = mark(abs(row["noise"][1] - row["noise"][0]) <= 3.0)
        result["pitch"] = mark(abs(row["cents"]) <= 5.0)
    if name in VIBRATO:
        (ro, rg), (eo, eg) = row["vib_rate"], row["vib_extent"]
        result["vibrato"] = mark(abs(rg - ro) <= 0.2 * ro and abs(eg - eo) <= 0.5 * eo)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sounds", nargs="+", default=[
        "clarinet", "piano", "cello", "flute", "oboe", "choir", "texture"])
    parser.add_argument("--epochs", type=int, default=None, help="default: the model's")
    parser.add_argument("--seconds", type=float, default=4.0, help="generated per sound")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench-out/generation"),
                        help="where the pictures and audio go ('' for nowhere)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out if str(args.out) else None

    print(f"pvrnn {pvrnn.__version__}, torch {torch.__version__}, {args.threads} thread(s), "
          f"{args.seconds:g} s generated, defaults of pvrnn.SoundModel()\n")
    header = (f"{'sound':9} {'n_fft/hop':>9} {'fit s':>6} {'xRT':>6} {'LSD':>5} {'self':>5} "
              f"{'cons':>6} {'vib rate o->g':>14} {'vib ext o->g':>13} {'noise o->g':>13} "
              f"{'cents':>6}  verdicts")
    print(header)
    print("-" * len(header))
    for name in args.sounds:
        r = measure(name, args.epochs, args.seconds, args.seed, out)
        (ro, rg), (eo, eg), (no, ng) = r["vib_rate"], r["vib_extent"], r["noise"]
        marks = " ".join(f"{k}:{v}" for k, v in verdicts(r).items())
        print(f"{name:9} {r['n_fft']:>4}/{r['hop']:<4} {r['fit_s']:6.1f} {r['speed']:6.1f} "
              f"{r['lsd']:5.2f} {r['self_lsd']:5.2f} {r['consistency']:6.1f} "
              f"{ro:6.2f}->{rg:<6.2f} {eo:5.1f}->{eg:<6.1f} {no:6.1f}->{ng:<6.1f} "
              f"{r['cents']:6.1f}  {marks}", flush=True)


if __name__ == "__main__":
    main()
