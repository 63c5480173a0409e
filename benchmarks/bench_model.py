"""SoundModel speed and training time: throughput, real-time factor, time to plateau.

Measures, for the clarinet preset on the bundled clarinet (A4, 3 s, 44.1 kHz):

- training throughput: frames per second through ``fit`` (forward, backward, AdaGrad step,
  and the per-epoch validation pass), at the preset's batch size and at batch 64;
- generation speed: the real-time factor (seconds of audio per second of computation, per
  stream and summed over the batch) of ``generate`` for one stream and for a batch of 64, and
  the time per network step next to a floor: the bare recurrent call on ``(batch, 1, F)``
  repeated the same number of times;
- one generation step (``Sampler.generate``, eager and ``torch.compile``-d) against its
  compute floor (one product per weight matrix of the network, timed in the same process),
  and batch-64 throughput over one stream's, for the clarinet preset's network and the
  default ``SoundModelConfig``'s (process CPU time, so other load on the machine inflates
  the figures less than wall time);
- time to plateau: wall time and epochs until the held-out validation NLL stops improving;
- with ``--compare-codecs``: generated-audio quality for the four codec settings
  (delta/absolute x linear/log magnitude) on the bundled clarinet and piano, the measurement
  behind the presets' choice.

Every figure is the median of ``--repeats`` runs after a warm-up; CUDA timings synchronise
before each clock read. Speed is reported, never asserted.

Usage:
    python benchmarks/bench_model.py                      # CPU (and CUDA when present)
    python benchmarks/bench_model.py --threads 1 --skip-plateau
    python benchmarks/bench_model.py --compare-codecs     # adds a few minutes
    python benchmarks/bench_model.py --threads 1 --only-steps --repeats 7   # the step vs floor
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import statistics
import time

import torch

import pvrnn
from pvrnn import SoundModel, SoundModelConfig, SpectralRNN, metrics
from pvrnn.model import sample as sample_module
from pvrnn.model.sample import Sampler


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def header(devices: list[torch.device]) -> None:
    names = []
    for d in devices:
        names.append(torch.cuda.get_device_name(d) if d.type == "cuda" else
                     (platform.processor() or platform.machine()))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# pvrnn {pvrnn.__version__} SoundModel benchmark\n")
    print(f"torch {torch.__version__}, devices: {', '.join(map(str, devices))} "
          f"({'; '.join(names)}), torch threads: {torch.get_num_threads()}, "
          f"CPUs: {os.cpu_count()}, load average at start: {load:.2f}\n")


def trained(audio, rate, device, epochs, **overrides) -> SoundModel:
    model = SoundModel.from_preset("clarinet", **overrides)
    model.fit(audio, sample_rate=rate, epochs=epochs, progress=False, device=device)
    return model


# -- training throughput -------------------------------------------------------------------------
def bench_training(audio, rate, device, batch_size, epochs) -> dict:
    model = SoundModel.from_preset("clarinet")
    history = model.fit(audio, sample_rate=rate, epochs=epochs, batch_size=batch_size,
                        progress=False, device=device)
    frames = history["frames"][1:]  # skip the warm-up epoch
    seconds = history["seconds"][1:]
    steps = math.ceil(frames[0] / batch_size / model.config.seq_length)
    epoch = statistics.median(seconds)
    return dict(frames_per_s=sum(frames) / sum(seconds), ms_epoch=1e3 * epoch,
                ms_step=1e3 * epoch / steps, steps=steps)


# -- generation speed ----------------------------------------------------------------------------
def bench_generation(model: SoundModel, batch: int, seconds: float, repeats: int) -> dict:
    device = model.device
    model.generate(seconds=0.2, batch=batch, seed=0)  # warm-up
    times = []
    for r in range(repeats):
        sync(device)
        start = time.perf_counter()
        model.generate(seconds=seconds, batch=batch, seed=r, reset_every=0.25)
        sync(device)
        times.append(time.perf_counter() - start)
    wall = statistics.median(times)
    steps = math.ceil(seconds * model.sample_rate / model.config.hop_length) + 1

    # floors: the recurrent step generation uses (stepper: cells + head), and the plain
    # nn.LSTM call on (batch, 1, F), each repeated as many times, same shapes
    net = model.network
    x = torch.zeros(batch, 1, net.n_features, device=device)

    def repeat(step) -> float:
        times = []
        for _ in range(repeats):
            sync(device)
            begin = time.perf_counter()
            for _ in range(steps):
                step()
            sync(device)
            times.append(time.perf_counter() - begin)
        return 1e6 * statistics.median(times) / steps

    with torch.inference_mode():
        stepper = net.stepper()
        stepper.prime(x)
        us_stepper = repeat(lambda: stepper.step(x[:, 0]))
        _, state = net.rnn(x)
        us_lstm = repeat(lambda: net.rnn(x, state))
    return dict(wall=wall, rtf=seconds / wall, rtf_total=batch * seconds / wall,
                us_step=1e6 * wall / steps, us_stepper=us_stepper, us_lstm=us_lstm)


# -- one generation step against its compute floor ----------------------------------------------
def process_median(function, calls: int, repeats: int, device: torch.device) -> float:
    """Median over ``repeats`` of the time of ``calls`` calls, us per call: process CPU time
    on the CPU, wall time between synchronisations on CUDA."""
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    function()  # warm-up
    times = []
    for _ in range(repeats):
        sync(device)
        begin = clock()
        for _ in range(calls):
            function()
        sync(device)
        times.append(clock() - begin)
    return 1e6 * statistics.median(times) / calls


def step_networks(audio, rate) -> list[tuple[str, SpectralRNN]]:
    """The clarinet preset's network and the default ``SoundModelConfig``'s (resolved on the
    clarinet: n_fft 2048, 1025 bins, 2x256 LSTM, bottleneck 128, 1 component); untrained
    (the cost of a step does not depend on the weights)."""
    networks = []
    for label, config in (("clarinet preset", SoundModelConfig.from_preset("clarinet")),
                          ("default config", SoundModelConfig())):
        c = config.resolve(audio, rate)
        torch.manual_seed(0)
        net = SpectralRNN(2 * c.n_partials, hidden_size=c.hidden_size, num_layers=c.num_layers,
                          n_components=c.n_components, cell=c.cell, loss=c.loss,
                          bottleneck=c.bottleneck).eval()
        networks.append((f"{label} (F={net.n_features}, {c.num_layers}x{c.hidden_size} "
                         f"{c.cell}, C={c.n_components}, bottleneck={c.bottleneck})", net))
    return networks


def bench_step(net: SpectralRNN, batch: int, steps: int, repeats: int,
               device: torch.device) -> dict:
    """Per generation step (us, process time): the floor and ``Sampler.generate``'s step.

    Floor: one product per weight matrix of the network (2-D parameters: embedding, each
    layer's ``W_ih`` and ``W_hh``, projection, head), in the network's order, repeated: every
    weight is read once per step, as a step must. At batch 1 a matrix-vector product
    (``torch.mv``); at batch B a ``(B, in) @ (in, out)`` product. ``hot``: the same products
    each timed alone and summed (weights cache-resident).
    """
    net = net.to(device)
    with torch.inference_mode():
        mats = [p.detach() for p in net.parameters() if p.dim() == 2]
        if batch == 1:
            pairs = [(m, torch.randn(m.shape[1], device=device)) for m in mats]
            product = torch.mv
        else:
            pairs = [(m.t().contiguous(), torch.randn(batch, m.shape[1], device=device))
                     for m in mats]

            def product(w, x):  # (B, in) @ (in, out)
                return torch.mm(x, w)

        def floor_step():
            for w, x in pairs:
                product(w, x)

        calls = max(20, 2000 // batch)
        floor = process_median(floor_step, calls, repeats, device)
        hot = sum(process_median(lambda w=w, x=x: product(w, x), calls, repeats, device)
                  for w, x in pairs)
    generator = torch.Generator(device=device)
    prime = torch.zeros(5, net.n_features, device=device)
    scale = torch.ones(steps, 1, 1, device=device)
    result = dict(floor=floor, hot=hot)
    for name, compiled in (("eager", False), ("compiled", True)):
        sampler = Sampler.for_network(net, generator=generator)
        start = time.perf_counter()
        sampler.generate(net, prime, 2, batch, scale, compiled=compiled)  # warm-up, compile
        result[f"warm_{name}"] = time.perf_counter() - start
        result[name] = process_median(
            lambda s=sampler, c=compiled: s.generate(net, prime, steps, batch, scale,
                                                     compiled=c),
            1, repeats, device) / steps
    result["compile_failed"] = ", ".join(f"{k}: {v}" for k, v in sample_module._BROKEN.items())
    return result


def report_steps(audio, rate, steps: int, repeats: int, devices: list[torch.device]) -> None:
    print("\n## One generation step against its compute floor\n")
    print(f"Process CPU time per step (CUDA: wall time), median of {repeats} runs of {steps} "
          "steps of `Sampler.generate` (everything but decoding: draws, network, sampling, resets "
          "none), untrained networks, torch threads as set. `floor`: one product per weight "
          "matrix in the network's order (batch 1: `torch.mv`; batch 64: `(64, in) @ (in, "
          "out)`), each weight read once, timed in this process; `hot`: those products timed "
          "one by one and summed (weights in cache). `compiled`: the whole step "
          "`torch.compile`-d (first call's seconds in brackets). `x total`: batch-64 "
          "throughput over one stream's, for the same path; `at most`: that ratio if the "
          "batch-64 step cost only its floor (64 x the eager one-stream step / the batch-64 "
          "floor).\n")
    print("| device | network | batch | floor us | hot us | eager us | eager / floor | "
          "compiled us | compiled / floor | x total eager | x total compiled | at most |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for device, (label, net) in itertools.product(devices, step_networks(audio, rate)):
        single = None
        for batch in (1, 64):
            r = bench_step(net, batch, steps if batch == 1 else max(64, steps // 8), repeats,
                           device)
            if single is None:
                single = r
                gain = ("", "", "")
            else:
                gain = (f"{batch * single['eager'] / r['eager']:.1f}x",
                        f"{batch * single['compiled'] / r['compiled']:.1f}x",
                        f"{batch * single['eager'] / r['floor']:.1f}x")
            print(f"| {device} | {label} | {batch} | {r['floor']:.1f} | {r['hot']:.1f} | "
                  f"{r['eager']:.1f} | {r['eager'] / r['floor']:.2f} | "
                  f"{r['compiled']:.1f} ({r['warm_compiled']:.0f} s) | "
                  f"{r['compiled'] / r['floor']:.2f} | {gain[0]} | {gain[1]} | {gain[2]} |",
                  flush=True)
            if r["compile_failed"]:
                print(f"\ncompiling failed, eager ran instead: {r['compile_failed']}\n")


# -- time to plateau -------------------------------------------------------------------------------
def bench_plateau(audio, rate, device, max_epochs, patience) -> dict:
    """Train ``max_epochs`` and find, in the history, when the validation NLL plateaued: the
    best epoch after which ``patience`` epochs brought no improvement of 0.5 % (or 0.05)."""
    model = SoundModel.from_preset("clarinet")
    history = model.fit(audio, sample_rate=rate, epochs=max_epochs, progress=False,
                        device=device)
    best, best_epoch, plateau_epoch = math.inf, 0, None
    for epoch, value in enumerate(history["val_loss"], start=1):
        if best == math.inf or value < best - max(0.005 * abs(best), 0.05):
            best, best_epoch = value, epoch
        elif epoch - best_epoch >= patience:
            plateau_epoch = best_epoch
            break
    plateau_epoch = plateau_epoch or best_epoch
    cumulative = [sum(history["seconds"][:e]) for e in range(1, len(history["seconds"]) + 1)]
    first, last = history["train_loss"][0], history["train_loss"][-1]
    within = next(e for e, t in enumerate(history["train_loss"], start=1)
                  if t - last <= 0.1 * (first - last))
    return dict(best_val=best, best_epoch=plateau_epoch,
                time_at_best=cumulative[plateau_epoch - 1],
                final_val=history["val_loss"][-1], kept=history["best_epoch"],
                train_90_epoch=within,
                train_90_time=cumulative[within - 1], epochs_run=len(cumulative),
                elapsed=cumulative[-1])


# -- codec settings compared on generated audio ---------------------------------------------------
def band_measures(y, segment, rate, config, f0_ref) -> dict:
    """Pitch drift, level stability and in-band spectral distances of generated audio."""
    n_fft, hop, k = config.n_fft, config.hop_length, config.n_partials

    def power(x):
        window = torch.hann_window(n_fft)
        spec = torch.stft(x, n_fft, hop, window=window, return_complex=True)
        return spec.abs().square()[..., :k, 2:-2]  # the modelled bins, edge frames left out

    p_gen, p_ref = power(y), power(segment)
    floor = p_ref.amax() * 1e-6
    db_gen = 10 * torch.log10(p_gen.clamp_min(floor))
    db_ref = 10 * torch.log10(p_ref.clamp_min(floor))
    n = min(db_gen.shape[-1], db_ref.shape[-1])
    lsd = (db_gen[..., :n] - db_ref[..., :n]).square().mean(-2).sqrt().mean(-1)

    def flux(d):
        return (d[..., 1:] - d[..., :-1]).square().mean(-2).sqrt().mean(-1)

    cents = metrics.pitch_drift_cents(y, rate, reference=f0_ref)
    rms = y.unfold(-1, 2048, 512).square().mean(-1).sqrt()
    return dict(cents=float(cents.abs().nanmean(-1).mean()),
                rms_var=float((rms.std(-1) / rms.mean(-1)).mean()),
                lsd=float(lsd.mean()), flux=float(flux(db_gen).mean() / flux(db_ref)))


def compare_codecs(epochs: int) -> None:
    print("\n## Codec settings: generated audio against the original\n")
    print(f"Each preset trained {epochs} epochs on its bundled note (CPU, seed 0), then 4 "
          "variations of 2 s generated after the 0.5 s primer at variance_scale 1, no resets; "
          "compared with the 2 s of the original that follow the primer. "
          "`|cents|`: mean absolute pitch deviation from the original's median f0 (YIN); "
          "`RMS var`: std/mean of the 2048-sample RMS; `LSD`: log-spectral distance in the "
          "modelled bins (dB, -60 dB floor, frame by frame); `flux`: spectral flux relative "
          "to the original's (1 = as lively).\n")
    print("| sound | mode | magnitude | \\|cents\\| | RMS var | LSD dB | flux | train s |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for name in ("clarinet", "piano"):
        audio, rate = pvrnn.examples.load(name)
        for mode in ("delta", "absolute"):
            for magnitude in ("linear", "log"):
                model = SoundModel.from_preset(name, mode=mode, magnitude=magnitude)
                start = time.perf_counter()
                model.fit(audio, sample_rate=rate, epochs=epochs, progress=False, device="cpu")
                seconds = time.perf_counter() - start
                p = model.config.prime_seconds
                segment = audio[int(p * rate): int(p * rate) + int(2.0 * rate)]
                f0 = float(metrics.estimate_f0(segment, rate).nanmedian())
                y = model.generate(seconds=2.0, variance_scale=1.0, seed=0, batch=4)
                m = band_measures(y, segment, rate, model.config, f0)
                print(f"| {name} | {mode} | {magnitude} | {m['cents']:.1f} | "
                      f"{m['rms_var']:.3f} | {m['lsd']:.2f} | {m['flux']:.2f} | "
                      f"{seconds:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", action="append",
                        help="cpu / cuda (repeatable); default cpu and cuda when present")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="audio generated per run")
    parser.add_argument("--epochs", type=int, default=6, help="epochs timed for throughput")
    parser.add_argument("--skip-plateau", action="store_true")
    parser.add_argument("--plateau-epochs", type=int, default=400)
    parser.add_argument("--patience", type=int, default=40)
    parser.add_argument("--compare-codecs", action="store_true")
    parser.add_argument("--codec-epochs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1024,
                        help="generation steps timed against the floor (one stream)")
    parser.add_argument("--only-steps", action="store_true",
                        help="only the generation step against its floor")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device(d) for d in (args.device or
               (["cpu"] + (["cuda"] if torch.cuda.is_available() else [])))]
    header(devices)
    audio, rate = pvrnn.examples.load("clarinet")
    report_steps(audio, rate, args.steps, args.repeats, devices)
    if args.only_steps:
        return

    print("\n## Training throughput (clarinet preset: 2x100 LSTM, 3 components, seq 20)\n")
    print("| device | batch | steps/epoch | ms/step | ms/epoch | frames/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for device in devices:
        for batch_size in (8, 64):
            r = bench_training(audio, rate, device, batch_size, args.epochs + 1)
            print(f"| {device} | {batch_size} | {r['steps']} | {r['ms_step']:.1f} | "
                  f"{r['ms_epoch']:.0f} | {r['frames_per_s']:,.0f} |", flush=True)

    print(f"\n## Generation speed ({args.seconds:g} s of audio, 345 frames/s, resets every "
          "0.25 s)\n")
    print("`us/step`: whole generation (priming, sampling loop, decoding, synthesis) per "
          "frame; `network only`: the recurrent step + head that generation uses; "
          "`nn.LSTM call`: one `nn.LSTM` call on `(batch, 1, F)` (no head), for comparison.\n")
    print("| device | batch | wall s | real-time factor per stream | total (x batch) | "
          "us/step | network only | nn.LSTM call |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for device in devices:
        model = trained(audio, rate, device, epochs=2)
        for batch in (1, 64):
            r = bench_generation(model, batch, args.seconds, args.repeats)
            print(f"| {device} | {batch} | {r['wall']:.3f} | {r['rtf']:.1f}x | "
                  f"{r['rtf_total']:.0f}x | {r['us_step']:.0f} | {r['us_stepper']:.0f} | "
                  f"{r['us_lstm']:.0f} |",
                  flush=True)

    if not args.skip_plateau:
        print("\n## Time to plateau (clarinet preset, 10 % of the sound held out: its middle)\n")
        print(f"{args.plateau_epochs} epochs, AdaGrad lr 0.05, batch 8. Plateau: the best "
              f"validation NLL (nats per frame) followed by {args.patience} epochs without "
              "a 0.5 % improvement. `train 90 %`: the epoch by which the training loss has "
              "covered 90 % of its total decrease. The held-out frames are an interior "
              "stretch of the note (a held-out tail would be its 20 ms fade-out, which "
              "training never sees); the second row cuts the last 50 ms to show the fade-out "
              "no longer matters. `kept`: the epoch whose weights fit keeps "
              "(`history['best_epoch']`).\n")
        print("| device | sound | best val NLL | at epoch | at s | final val NLL | kept | "
              "train 90 % epoch | at s | epochs | s |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for device in devices:
            for label, clip in (("clarinet", audio),
                                ("clarinet[:-50 ms]", audio[: -int(0.05 * rate)])):
                r = bench_plateau(clip, rate, device, args.plateau_epochs, args.patience)
                print(f"| {device} | {label} | {r['best_val']:.1f} | {r['best_epoch']} | "
                      f"{r['time_at_best']:.1f} | {r['final_val']:.1f} | {r['kept']} | "
                      f"{r['train_90_epoch']} | {r['train_90_time']:.1f} | "
                      f"{r['epochs_run']} | {r['elapsed']:.1f} |", flush=True)

    if args.compare_codecs:
        compare_codecs(args.codec_epochs)


if __name__ == "__main__":
    main()
