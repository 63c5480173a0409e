"""Phase vocoder speed: pvrnn analyze + synthesize against bare torch.stft + torch.istft.

Everything is measured in one process on the same input: a real recording (the bundled
clarinet phrase, tiled to ``--seconds``), ``--batch`` copies of it each shifted in time so the
items differ. Rows:

- ``torch.stft + torch.istft``: the floor (no magnitude/frequency work at all), and each alone
  (what ``analyze`` and ``synthesize`` respectively contain);
- ``pvrnn analyze + synthesize``: what :class:`pvrnn.PhaseVocoder` runs (float32 in blocks of
  frames with fixed-point phase on a CPU), and each half alone;
- ``whole-signal kernels``: :mod:`pvrnn.dsp.kernels` (float64 phase steps over the whole
  signal), eager, and compiled where torch.compile works (what ``PVRNN_COMPILE=1`` runs on a GPU);
- ``librosa stft + istft`` (numpy, CPU) when librosa is installed.

Each row is timed ``--repeats`` times after a warm-up, round-robin across rows so that machine
noise spreads over all of them; the table gives the median, its ratio to the floor and the
real-time factor (seconds of audio processed per second). The first call of the compiled kernels
(compilation, or loading them from inductor's disk cache) is reported separately.

    python benchmarks/bench_vocoder.py                      # CPU, 60 s, batch 1
    python benchmarks/bench_vocoder.py --device cuda        # batch of 16 by default
    python benchmarks/bench_vocoder.py --threads 1 --clock cpu   # on a busy, shared machine

Wall-clock ratios on a machine shared with other work swing widely (every torch op waits for
its slowest thread); one thread and process CPU time give steadier ratios.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch

import pvrnn
from pvrnn.dsp import kernels as _fused
from pvrnn.dsp import ola
from pvrnn.dsp.frames import bin_advance

N_FFT, HOP = 2048, 512


def load_input(seconds: float, batch: int, device: torch.device) -> tuple[torch.Tensor, int]:
    """``(batch, seconds * rate)`` float32: the clarinet phrase tiled, item i shifted by i s."""
    path = Path(pvrnn.__file__).resolve().parent / "examples" / "data" / "clarinet_phrase.wav"
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = torch.from_numpy(np.ascontiguousarray(audio.mean(axis=1)))
    n = int(seconds * rate)
    long = mono.repeat(-(-(n + batch * rate) // mono.shape[0]))
    items = [long[i * rate : i * rate + n] for i in range(batch)]
    return torch.stack(items).to(device), rate


def snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    reference, estimate = reference.double(), estimate.double()
    noise = (reference - estimate).square().sum()
    return float(10 * torch.log10(reference.square().sum() / noise))


def timer(device: torch.device, clock: str = "wall") -> Callable[[Callable[[], object]], float]:
    """Seconds one call takes: wall clock, or this process's CPU time (all its threads)."""
    now = time.perf_counter if clock == "wall" else time.process_time

    def run(fn: Callable[[], object]) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = now()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return now() - start

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per row")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per item")
    parser.add_argument("--batch", type=int, default=None, help="items (default 1 CPU, 16 GPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                        help="wall clock (default), or process CPU time: steadier on a shared "
                        "machine, best with --threads 1 (CPU only)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled rows")
    parser.add_argument("--no-librosa", action="store_true", help="skip the librosa row")
    args = parser.parse_args(argv)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    batch = args.batch or (16 if device.type == "cuda" else 1)
    audio, rate = load_input(args.seconds, batch, device)
    squeeze = batch == 1
    if squeeze:
        audio = audio[0]
    length = audio.shape[-1]
    pv = pvrnn.PhaseVocoder(n_fft=N_FFT, hop_length=HOP, sample_rate=rate).to(device)
    window = pv.window
    if args.clock == "cpu" and device.type == "cuda":
        parser.error("--clock cpu: CPU time says nothing about GPU work")
    clock = timer(device, args.clock)
    audio_seconds = batch * length / rate

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    print(f"# pvrnn phase vocoder benchmark: {batch} x {args.seconds:g} s at {rate} Hz, "
          f"n_fft {N_FFT}, hop {HOP}, float32")
    print(f"torch {torch.__version__}, device {device.type} ({name}), "
          f"torch.get_num_threads() = {torch.get_num_threads()}, repeats {args.repeats}, "
          f"{'wall-clock' if args.clock == 'wall' else 'process CPU'} time")

    def floor() -> torch.Tensor:
        spec = torch.stft(audio, N_FFT, HOP, window=window, center=True, pad_mode="reflect",
                          return_complex=True)
        return torch.istft(spec, N_FFT, HOP, window=window, center=True, length=length)

    spectrum = torch.stft(audio, N_FFT, HOP, window=window, center=True, pad_mode="reflect",
                          return_complex=True)

    def stft_alone() -> torch.Tensor:
        return torch.stft(audio, N_FFT, HOP, window=window, center=True, pad_mode="reflect",
                          return_complex=True)

    def istft_alone() -> torch.Tensor:
        return torch.istft(spectrum, N_FFT, HOP, window=window, center=True, length=length)

    rows: dict[str, Callable[[], object]] = {
        "torch.stft + torch.istft (floor)": floor,
        "torch.stft alone": stft_alone,
        "torch.istft alone": istft_alone,
    }
    notes: list[str] = []
    snrs: dict[str, float] = {}
    frames = pv.analyze(audio)
    snrs["pvrnn analyze + synthesize"] = snr_db(audio, pv.synthesize(frames, length=length))
    rows["pvrnn analyze + synthesize"] = lambda: pv.synthesize(pv.analyze(audio), length=length)
    rows["pvrnn analyze"] = lambda: pv.analyze(audio)
    rows["pvrnn synthesize"] = lambda: pv.synthesize(frames, length=length)

    # The whole-signal kernels (float64 phase steps; what float32 ran through before the blocks,
    # and what runs on a GPU with PVRNN_COMPILE=1), eager and compiled.
    flat = audio.reshape(-1, length)
    advance = bin_advance(pv.n_bins, N_FFT, HOP, device)
    table = pv._table_on(device)

    def whole_signal(compiled: bool) -> torch.Tensor:
        spec = torch.stft(flat, N_FFT, HOP, window=window, center=True, pad_mode="reflect",
                          return_complex=True).transpose(-1, -2)
        magnitude, deviation, start = _fused.analysis(spec, advance, rate / (2 * math.pi * HOP),
                                                      overwrite=True, compiled=compiled)
        spec = _fused.spectrum(magnitude, deviation, start, advance, 2 * math.pi * HOP / rate,
                               compiled=compiled)
        return ola.inverse_stft(spec, window, HOP, length, table)

    modes = [False]
    if not args.no_compile:
        if _fused.compiled_available(device.type):
            start = time.perf_counter()
            whole_signal(True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t_first = time.perf_counter() - start
            if _fused.compiled_available(device.type):
                modes.append(True)
                notes.append(f"compiled kernels: first call {t_first:.1f} s (compilation, or "
                             f"inductor's disk cache when warm)")
            else:
                notes.append(f"compiled kernels unavailable: {_fused._BROKEN.get(device.type)}")
        else:
            notes.append("compiled kernels unavailable on this platform")
    for compiled in modes:
        key = f"whole-signal kernels, {'compiled' if compiled else 'eager'}"
        snrs[key] = snr_db(flat, whole_signal(compiled))
        rows[key] = lambda compiled=compiled: whole_signal(compiled)

    if not args.no_librosa:
        try:
            import librosa
        except ImportError:
            notes.append("librosa not installed: no librosa row (pip install pvrnn[bench])")
        else:
            host = audio.cpu().numpy()
            win = window.cpu().numpy()

            def with_librosa():
                spec = librosa.stft(host, n_fft=N_FFT, hop_length=HOP, window=win, center=True,
                                    pad_mode="reflect")
                return librosa.istft(spec, hop_length=HOP, n_fft=N_FFT, window=win, length=length)

            rows["librosa stft + istft (numpy, CPU)"] = with_librosa

    for fn in rows.values():  # warm-up: allocator, FFT plans, kernels
        clock(fn)
    times: dict[str, list[float]] = {key: [] for key in rows}
    for _ in range(args.repeats):
        for key, fn in rows.items():
            times[key].append(clock(fn))

    floor_ms = statistics.median(times["torch.stft + torch.istft (floor)"]) * 1e3
    print()
    print("| what | median ms | min ms | x floor | x real time | round-trip SNR dB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for key in rows:
        ms = statistics.median(times[key]) * 1e3
        best = min(times[key]) * 1e3
        snr = f"{snrs[key]:.1f}" if key in snrs else ""
        print(f"| {key} | {ms:.1f} | {best:.1f} | {ms / floor_ms:.2f} | "
              f"{audio_seconds / (ms / 1e3):,.0f} | {snr} |")
    for note in notes:
        print(f"\n{note}")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "CPU"


if __name__ == "__main__":
    raise SystemExit(main())
