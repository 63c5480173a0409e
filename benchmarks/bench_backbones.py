"""Backbones side by side: quality per training minute, training time, generation speed.

Six models of about 0.3 M parameters each, trained on the same sound (the bundled piano note
and clarinet note, both at 16 kHz so every model sees the same band), on one CPU thread, for
the same wall-clock budget each:

- frame models (``pvrnn.SoundModel``, full band: n_fft 512, hop 128, 257 bins, log magnitude,
  a 64-d input bottleneck and rank-64 head, one Gaussian; no validation split, so the
  scored model is the last epoch's, not the best-validation one's):
  ``LSTM``, ``GRU`` and ``TCN`` (``cell="tcn"``: 2 cycles of dilations 1..32, receptive field
  127 frames = 1.0 s) on (magnitude, frequency) frames, and ``GRUV`` (``representation="dft"``,
  ``loss="mse"``: GRUV's LSTM regression of real/imag DFT frames, generated at
  ``variance_scale=0`` as GRUV did);
- sample-level baselines (``pvrnn.baselines``, 8-bit mu-law, 256-way softmax): ``WaveNet``
  (1 cycle of dilations 1..512, receptive field 1024 samples = 64 ms) and ``SampleRNN`` (two
  tiers, frames of 16 samples).

Every ``budget / points`` of training the model generates (frame models: 2 s from the
beginning of the sound; sample models: 0.5 s after a 0.1 s primer, they are slow) and is
scored:

- ``LSD``: :func:`pvrnn.metrics.mean_spectrum_distance` (dB, full 8 kHz band) to the original;
  the original's first half against its second half is printed as ``self`` (natural variation).
- ``consistency``: :func:`pvrnn.metrics.consistency` of generated frames with the audio
  synthesized from them (dB, lower is better; frame models only).
- ``pitch``: median :func:`pvrnn.metrics.estimate_f0` of the generated audio against the
  original's, cents (``nan``: no voiced frame).
- ``train s``: training time to the last point (CPU seconds of this process, one thread:
  robust to other load); ``x RT``: generation speed, seconds of sound per second of wall time
  (median of 3), CPU, one stream. No GPU here: the GPU column is left out.

Usage:
    python benchmarks/bench_backbones.py                     # both sounds, 1 min each, ~15 min
    python benchmarks/bench_backbones.py --minutes 0.2 --sounds piano --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

import pvrnn
from pvrnn.baselines import SampleRNN, SampleWaveNet, fit_samples, generate_samples
from pvrnn.metrics import consistency, estimate_f0, mean_spectrum_distance

RATE = 16000
FRAME_SETTINGS = dict(n_fft=512, hop_length=128, n_partials=257, magnitude="log",
                      bottleneck=64, n_components=1, num_layers=2, seq_length=32,
                      batch_size=8, optimizer="adam", lr=2e-3, validation=0.0)
#: name -> (kind, settings); hidden sizes chosen for ~0.3 M parameters each (see ``table``).
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "LSTM": ("frames", dict(cell="lstm", hidden_size=128)),
    "GRU": ("frames", dict(cell="gru", hidden_size=152)),
    "TCN": ("frames", dict(cell="tcn", hidden_size=56)),
    "GRUV": ("frames", dict(cell="lstm", hidden_size=128, representation="dft", loss="mse",
                            magnitude="linear")),
    "WaveNet": ("samples", dict(channels=64, cycles=1, depth=10)),
    "SampleRNN": ("samples", dict(frame_size=16, hidden_size=112, embedding=16)),
}


def cpu_seconds() -> float:
    return time.process_time()


def n_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def cents(f0: float, reference: float) -> float:
    return 1200 * math.log2(f0 / reference) if f0 > 0 and reference > 0 else math.nan


def median_f0(audio: torch.Tensor) -> float:
    f0 = estimate_f0(audio, RATE, hop_length=256)
    voiced = f0[~torch.isnan(f0)]
    return float(voiced.median()) if voiced.numel() else math.nan


def speed(make: Callable[[], Any], seconds: float, repeats: int = 3) -> float:
    """Seconds of sound generated per wall second, median of ``repeats``."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        make()
        times.append(time.perf_counter() - began)
    return seconds / statistics.median(times)


def frame_model(name: str, settings: dict, audio: torch.Tensor, minutes: float, points: int,
                seed: int, gen_seconds: float) -> dict:
    """Train a SoundModel in ``points`` stretches (resuming its checkpoint), scoring each."""
    model = pvrnn.SoundModel(**{**FRAME_SETTINGS, **settings}, epochs=1)
    variance = 0.0 if settings.get("loss") == "mse" else 1.0
    curve, budget = [], minutes * 60
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        spent, epochs = 0.0, 0
        for k in range(1, points + 1):
            began = cpu_seconds()
            if epochs == 0:
                model.fit(audio, sample_rate=RATE, epochs=1, checkpoint=path, progress=False,
                          seed=seed, device="cpu")
                epochs = 1
                spent += cpu_seconds() - began
                began = cpu_seconds()
            per_epoch = max(spent / epochs, 1e-3)
            target = max(epochs + 1, round(budget * k / points / per_epoch))
            model.fit(audio, sample_rate=RATE, epochs=target, checkpoint=path, resume=True,
                      progress=False, seed=seed, device="cpu")
            spent += cpu_seconds() - began
            epochs = target
            frames = model.generate_frames(round(gen_seconds * RATE / 128) + 1,
                                           variance_scale=variance, seed=seed)
            generated = model.synthesize(frames)
            curve.append(dict(train_seconds=spent, epochs=epochs,
                              lsd=float(mean_spectrum_distance(audio, generated)),
                              consistency=float(consistency(frames, generated)),
                              f0=median_f0(generated)))
    n = round(gen_seconds * RATE / 128) + 1
    x_rt = speed(lambda: model.synthesize(model.generate_frames(n, variance_scale=variance)),
                 gen_seconds)
    return dict(params=n_parameters(model.network), curve=curve, x_rt=x_rt,
                audio=generated)


def sample_model(name: str, settings: dict, audio: torch.Tensor, minutes: float, points: int,
                 seed: int, gen_seconds: float, speed_seconds: float = 0.25) -> dict:
    """Train a sample-level baseline for the budget, scoring it ``points`` times."""
    torch.manual_seed(seed)
    net = (SampleWaveNet if name == "WaveNet" else SampleRNN)(**settings)
    prime = audio[: RATE // 10]
    n = round(gen_seconds * RATE)
    curve = []
    spent = 0.0
    for _ in range(points):
        began = cpu_seconds()
        fit_samples(net, audio, seconds=minutes * 60 / points, crop=1024, batch_size=8,
                    seed=seed + len(curve), every=10 ** 9)
        spent += cpu_seconds() - began
        generated = generate_samples(net, prime, n, seed=seed)
        with torch.no_grad():
            codes = pvrnn.baselines.mu_law_encode(audio[None, : net.context + 8193])
            nll = float(net.loss(codes if name == "WaveNet" else codes[:, : 16 + 8192]))
        curve.append(dict(train_seconds=spent, lsd=float(mean_spectrum_distance(audio, generated)),
                          consistency=math.nan, f0=median_f0(generated), nll=nll))
    x_rt = speed(lambda: generate_samples(net, prime, round(speed_seconds * RATE), seed=seed),
                 speed_seconds, repeats=1)
    return dict(params=n_parameters(net), curve=curve, x_rt=x_rt, audio=generated)


def run(sounds=("piano", "clarinet"), models=tuple(MODELS), minutes: float = 1.0,
        points: int = 4, seed: int = 0, gen_seconds: float = 2.0, sample_seconds: float = 0.5,
        speed_seconds: float = 0.25, progress: Callable[[str], None] = print) -> dict:
    """Train and score every model on every sound; returns ``{sound: {model: result}}``
    (each result: ``params``, ``curve`` (a list of scored points), ``x_rt``, ``audio``), and
    ``{sound: {"self": lsd, "f0": Hz}}`` under ``"_reference"``."""
    torch.set_num_threads(1)
    results: dict[str, Any] = {"_reference": {}}
    for sound in sounds:
        audio, _ = pvrnn.examples.load(sound, sample_rate=RATE)
        half = audio.shape[-1] // 2
        results["_reference"][sound] = dict(
            self=float(mean_spectrum_distance(audio[:half], audio[half:])), f0=median_f0(audio))
        results[sound] = {}
        for name in models:
            kind, settings = MODELS[name]
            if kind == "frames":
                result = frame_model(name, settings, audio, minutes, points, seed, gen_seconds)
            else:
                result = sample_model(name, settings, audio, minutes, points, seed,
                                      sample_seconds, speed_seconds)
            results[sound][name] = result
            last = results[sound][name]["curve"][-1]
            progress(f"{sound} {name}: LSD {last['lsd']:.2f} dB after "
                     f"{last['train_seconds']:.0f} s")
    return results


def table(results: dict) -> str:
    """The markdown table of the last point of every curve."""
    lines = []
    for sound, by_model in results.items():
        if sound.startswith("_"):
            continue
        ref = results["_reference"][sound]
        lines += [f"\n{sound} at {RATE} Hz (self LSD {ref['self']:.2f} dB, f0 {ref['f0']:.1f} "
                  "Hz)\n",
                  "| model | params | train s (CPU) | LSD dB (first point -> last) | "
                  "consistency dB | pitch cents | x RT (CPU) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in by_model.items():
            first, last = r["curve"][0], r["curve"][-1]
            lines.append(
                f"| {name} | {r['params'] / 1e3:.0f} k | {last['train_seconds']:.0f} | "
                f"{first['lsd']:.2f} -> {last['lsd']:.2f} | {last['consistency']:.1f} | "
                f"{cents(last['f0'], ref['f0']):+.1f} | {r['x_rt']:.2f} |")
    return "\n".join(lines)


def plot(results: dict, path: str | Path | None = None):
    """LSD against training time, one panel per sound; returns the figure."""
    import matplotlib.pyplot as plt

    sounds = [s for s in results if not s.startswith("_")]
    fig, axes = plt.subplots(1, len(sounds), figsize=(5.5 * len(sounds), 3.6), squeeze=False)
    for ax, sound in zip(axes[0], sounds):
        for i, (name, r) in enumerate(results[sound].items()):
            t = [p["train_seconds"] for p in r["curve"]]
            ax.plot(t, [p["lsd"] for p in r["curve"]], "o-", color=f"C{i}", label=name)
        ax.axhline(results["_reference"][sound]["self"], color="k", ls=":", label="self")
        ax.set(title=sound, xlabel="training CPU seconds", ylabel="mean-spectrum LSD (dB)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def to_json(results: dict) -> dict:
    return {s: ({m: {k: v for k, v in r.items() if k != "audio"} for m, r in by.items()}
                if not s.startswith("_") else by) for s, by in results.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sounds", nargs="+", default=["piano", "clarinet"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--minutes", type=float, default=1.0, help="training budget per model")
    parser.add_argument("--points", type=int, default=4, help="scored points per curve")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--plot", help="write the LSD-vs-time figure here (PNG)")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, CPU, 1 thread, {args.minutes:g} min per model, "
          f"CUDA: {'yes' if torch.cuda.is_available() else 'no (no GPU figures)'}")
    results = run(args.sounds, args.models, args.minutes, args.points, args.seed)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results), indent=1))
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
