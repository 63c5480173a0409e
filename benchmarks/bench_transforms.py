"""Time-stretch quality and speed: pvrnn against the tools sound designers use.

Runs, in one process and on the same inputs, ``pvrnn.time_stretch`` against
``librosa.effects.time_stretch``, pytsmod's phase-locked phase vocoder and Rubber Band through
pyrubberband (R2 default and R3 ``--fine``; rows are skipped when the ``rubberband`` binary or
a package is missing), at several stretch factors (output / input duration).

Signals: synthetic ones with known content, so the ideal stretched signal is known in closed
form (a harmonic tone with vibrato and slow amplitude modulation, an exponential chirp, a
percussive click train, a plain sine), and the bundled recordings.

Measures (n_fft 2048, hop 512, Hann):
- spectral convergence (dB, lower is better) against the input's STFT magnitudes linearly
  interpolated in time to the output's frames;
- log-spectral distance (dB) to the analytically stretched synthetic signal
  (``pvrnn.metrics.log_spectral_distance``, floor -100 dB);
- the stretched sine's pitch error in cents (YIN, ``pvrnn.metrics.estimate_f0``);
- the click train's crest: median click peak over the RMS of the whole output, dB, next to
  the ideal's (smeared clicks lose crest);
- median wall time of a long input at each factor, and the real-time factor (input seconds
  per second of computation).

Usage:
    python benchmarks/bench_transforms.py                    # the full table (a few minutes)
    python benchmarks/bench_transforms.py --seconds 4 --factors 2.0 --timing-seconds 10
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import sys
import time
import warnings
from typing import Callable, Dict, List

import numpy as np
import torch

import pvrnn
from pvrnn import metrics

SR = 44100
N_FFT, HOP = 2048, 512


# -- signals and their ideal stretches ------------------------------------------------------------
def harmonic_vibrato(seconds: float, factor: float = 1.0) -> np.ndarray:
    """20 harmonics of 220 Hz (1/h), vibrato 5.5 Hz +-30 cents, amplitude 0.7 Hz +-30 %.

    ``factor`` gives the ideal stretch: every modulation slowed by ``factor``, pitch kept.
    """
    f0, rate, depth = 220.0, 5.5, 2 ** (30 / 1200) - 1
    u = np.arange(int(round(seconds * factor * SR)), dtype=np.float64) / SR
    # phase of f0 * (1 + depth sin(2 pi rate u / factor)), integrated in closed form
    cycles = f0 * u - f0 * depth * factor / (2 * np.pi * rate) * (
        np.cos(2 * np.pi * rate * u / factor) - 1)
    amplitude = 1 + 0.3 * np.sin(2 * np.pi * 0.7 * u / factor)
    y = sum(np.sin(2 * np.pi * h * cycles + 0.3 * h) / h for h in range(1, 21))
    return (0.25 * amplitude * y).astype(np.float32)


def exp_chirp(seconds: float, factor: float = 1.0) -> np.ndarray:
    """A sine sweeping exponentially from 100 Hz to 5 kHz over the (stretched) duration."""
    fa, fb = 100.0, 5000.0
    total = seconds * factor
    u = np.arange(int(round(total * SR)), dtype=np.float64) / SR
    k = math.log(fb / fa)
    cycles = fa * total / k * (np.exp(k * u / total) - 1)
    return (0.5 * np.sin(2 * np.pi * cycles)).astype(np.float32)


def _click() -> np.ndarray:
    rng = np.random.default_rng(1)
    n = int(0.004 * SR)
    return (rng.standard_normal(n) * np.exp(-np.arange(n) / (0.0008 * SR))).astype(np.float32)


def click_train(seconds: float, factor: float = 1.0, period: float = 0.25) -> np.ndarray:
    """A 4 ms decaying noise burst every ``period`` s (every ``period * factor`` stretched)."""
    y = np.zeros(int(round(seconds * factor * SR)), dtype=np.float32)
    click = _click()
    for start in click_times(seconds, factor, period):
        i = int(round(start * SR))
        y[i : i + len(click)] += click[: len(y) - i]
    return 0.5 * y / np.abs(click).max()


def click_times(seconds: float, factor: float = 1.0, period: float = 0.25) -> np.ndarray:
    return (np.arange(0.1, seconds - 0.05, period)) * factor


def sine(seconds: float, factor: float = 1.0) -> np.ndarray:
    u = np.arange(int(round(seconds * factor * SR)), dtype=np.float64) / SR
    return (0.5 * np.sin(2 * np.pi * 440.0 * u)).astype(np.float32)


SYNTHETIC: Dict[str, Callable[[float, float], np.ndarray]] = {
    "harmonic+vibrato": harmonic_vibrato,
    "exp chirp": exp_chirp,
    "click train": click_train,
    "sine 440": sine,
}
RECORDINGS = ("clarinet_phrase", "piano_phrase")


# -- tools ----------------------------------------------------------------------------------------
def _pvrnn(x: np.ndarray, factor: float) -> np.ndarray:
    return pvrnn.time_stretch(torch.from_numpy(x), SR, factor).numpy()


def available_tools() -> Dict[str, Callable[[np.ndarray, float], np.ndarray]]:
    tools: Dict[str, Callable[[np.ndarray, float], np.ndarray]] = {"pvrnn": _pvrnn}
    try:
        import librosa

        tools["librosa"] = lambda x, f: librosa.effects.time_stretch(x, rate=1.0 / f)
    except ImportError:
        print("(librosa missing: pip install 'pvrnn[bench]')", file=sys.stderr)
    try:
        import pytsmod

        def _pytsmod(x: np.ndarray, f: float) -> np.ndarray:
            return pytsmod.phase_vocoder(x.astype(np.float64), f, win_type="hann",
                                         win_size=N_FFT, syn_hop_size=HOP,
                                         phase_lock=True).astype(np.float32)

        tools["pytsmod PL"] = _pytsmod
    except ImportError:
        print("(pytsmod missing: pip install 'pvrnn[bench]')", file=sys.stderr)
    try:
        import pyrubberband

        if shutil.which("rubberband"):
            tools["rubberband R2"] = lambda x, f: pyrubberband.time_stretch(x, SR, 1.0 / f)
            tools["rubberband R3"] = lambda x, f: pyrubberband.time_stretch(
                x, SR, 1.0 / f, rbargs={"--fine": ""})
        else:
            print("(rubberband binary missing: apt-get install rubberband-cli; rows skipped)",
                  file=sys.stderr)
    except ImportError:
        print("(pyrubberband missing: pip install 'pvrnn[bench]')", file=sys.stderr)
    return tools


# -- measures -------------------------------------------------------------------------------------
def _mags(y: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).double()
    spec = torch.stft(t, N_FFT, HOP, window=torch.hann_window(N_FFT, dtype=torch.float64),
                      center=True, pad_mode="constant", return_complex=True)
    return spec.abs().T  # (frames, bins)


def spectral_convergence(x: np.ndarray, y: np.ndarray, factor: float) -> float:
    """SC of ``y`` against ``x``'s magnitudes interpolated to ``y``'s frames (dB)."""
    s_in, s_out = _mags(x), _mags(y)
    pos = torch.arange(s_out.shape[0], dtype=torch.float64) / factor
    pos = pos.clamp(max=s_in.shape[0] - 1)
    lo = pos.floor().long().clamp(max=s_in.shape[0] - 2)
    frac = (pos - lo).unsqueeze(-1)
    target = s_in[lo] * (1 - frac) + s_in[lo + 1] * frac
    err = torch.linalg.vector_norm(s_out - target) / torch.linalg.vector_norm(target)
    return float(20 * torch.log10(err))


def lsd_to_ideal(ideal: np.ndarray, y: np.ndarray) -> float:
    m = min(len(ideal), len(y))
    return float(metrics.log_spectral_distance(torch.from_numpy(ideal[:m]),
                                               torch.from_numpy(y[:m].astype(np.float32))))


def cents_error(y: np.ndarray) -> float:
    f0 = metrics.estimate_f0(torch.from_numpy(y.astype(np.float32)), SR)
    n = f0.shape[-1]
    mid = f0[n // 10 : n - n // 10]
    return float(1200 * math.log2(float(mid.nanmedian()) / 440.0))


def crest_db(y: np.ndarray, seconds: float, factor: float) -> float:
    """Median click peak (within +-20 ms of where the click belongs) over the RMS, dB."""
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    peaks = []
    for t in click_times(seconds, factor):
        i = int(round(t * SR))
        seg = y[max(0, i - int(0.02 * SR)) : i + int(0.02 * SR)]
        if len(seg):
            peaks.append(float(np.abs(seg).max()))
    return 20 * math.log10(statistics.median(peaks) / rms)


# -- running --------------------------------------------------------------------------------------
def _table(title: str, columns: List[str], rows: List[List[str]]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="duration of the synthetic signals (default 8)")
    parser.add_argument("--factors", type=str, default="0.5,0.8,1.25,2.0",
                        help="comma-separated stretch factors, output/input duration")
    parser.add_argument("--timing-seconds", type=float, default=30.0,
                        help="duration of the timed input (default 30)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs, median (default 3)")
    parser.add_argument("--tools", type=str, default="",
                        help="comma-separated subset of tools (default: all available)")
    parser.add_argument("--no-recordings", action="store_true",
                        help="skip the bundled recordings")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice); 1 avoids thread-pool "
                             "stalls on a busy machine")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    factors = [float(f) for f in args.factors.split(",") if f.strip()]
    tools = available_tools()
    if args.tools:
        wanted = [t.strip() for t in args.tools.split(",")]
        tools = {name: fn for name, fn in tools.items() if name in wanted}
    names = list(tools)
    warnings.filterwarnings("ignore")

    print("## pvrnn.time_stretch benchmark\n")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}; synthetic signals {args.seconds:g} s at {SR} Hz; "
          f"factor = output / input duration")

    signals = {name: make(args.seconds, 1.0) for name, make in SYNTHETIC.items()}
    if not args.no_recordings:
        for name in RECORDINGS:
            audio, rate = pvrnn.examples.load(name)
            assert rate == SR
            signals[name] = audio.numpy()

    sc_rows, lsd_rows, cents_rows, crest_rows = [], [], [], []
    for signal, x in signals.items():
        for factor in factors:
            outputs = {tool: fn(x, factor) for tool, fn in tools.items()}
            ideal_sc = (spectral_convergence(x, SYNTHETIC[signal](args.seconds, factor), factor)
                        if signal in SYNTHETIC else None)
            sc_rows.append([f"{signal} x{factor:g}", _fmt(ideal_sc)] + [
                _fmt(spectral_convergence(x, outputs[t], factor)) for t in names])
            if signal in SYNTHETIC and signal != "sine 440":
                ideal = SYNTHETIC[signal](args.seconds, factor)
                lsd_rows.append([f"{signal} x{factor:g}"] + [
                    _fmt(lsd_to_ideal(ideal, outputs[t]), 2) for t in names])
            if signal == "sine 440":
                cents_rows.append([f"x{factor:g}"] + [
                    _fmt(cents_error(outputs[t]), 2) for t in names])
            if signal == "click train":
                ideal = click_train(args.seconds, factor)
                crest_rows.append([f"x{factor:g}", _fmt(crest_db(ideal, args.seconds, factor))]
                                  + [_fmt(crest_db(outputs[t], args.seconds, factor))
                                     for t in names])
    _table("Spectral convergence, dB (lower is better; target: input magnitudes interpolated; "
           "'ideal' is the analytically stretched signal's own score)",
           ["signal", "ideal"] + names, sc_rows)
    _table("Log-spectral distance to the ideal stretched signal, dB (lower is better)",
           ["signal"] + names, lsd_rows)
    _table("Stretched 440 Hz sine: pitch error, cents", ["factor"] + names, cents_rows)
    _table("Click train: median click peak / RMS, dB (closer to ideal is better)",
           ["factor", "ideal"] + names, crest_rows)

    x = harmonic_vibrato(args.timing_seconds)
    rows = []
    for factor in factors:
        row = [f"x{factor:g}"]
        for tool in names:
            seconds = _time(lambda tool=tool, factor=factor: tools[tool](x, factor), args.repeats)
            row.append(f"{seconds:.3f} s ({args.timing_seconds / seconds:.0f}x)")
        rows.append(row)
    xt = torch.from_numpy(x)
    window = torch.hann_window(N_FFT)

    def floor() -> torch.Tensor:  # bare stft + frame gather + istft: the vectorized floor
        spec = torch.stft(xt, N_FFT, HOP, window=window, return_complex=True)
        index = torch.clamp((torch.arange(int(spec.shape[-1] * 2.0)) / 2.0).long(),
                            max=spec.shape[-1] - 1)
        return torch.istft(spec.index_select(-1, index), N_FFT, HOP, window=window)

    floor_s = _time(floor, args.repeats)
    _table(f"Median time, {args.timing_seconds:g} s harmonic tone (x real time); "
           f"bare torch stft + gather + istft at x2: {floor_s:.3f} s",
           ["factor"] + names, rows)
    if "librosa" in names and "pvrnn" in names:
        ratios = []
        for row in rows:
            lib = float(row[1 + names.index("librosa")].split()[0])
            ours = float(row[1 + names.index("pvrnn")].split()[0])
            ratios.append(f"{row[0]}: {lib / ours:.2f}x")
        print("\npvrnn speed-up over librosa: " + ", ".join(ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
