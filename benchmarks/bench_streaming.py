"""Long files in bounded memory: peak RSS of ``pvrnn stretch | pitch | cross`` on a long file.

A synthetic test file of ``--minutes`` (default 60) is generated on disk block by block (tones
with vibrato, decaying clicks and a little noise; nothing is downloaded), and for ``cross`` a
second one (another seed) as the modulator; then each command runs in its own process, file
to file, and the table gives its peak resident memory (``ru_maxrss`` of that child, from
``wait4``), wall and CPU time, and the output's duration. A second part checks that streaming
gives the in-memory result: the first ``--check-seconds`` of the files go through the CLI and
through :func:`pvrnn.time_stretch` / :func:`pvrnn.pitch_shift` /
:func:`pvrnn.cross_synthesize` (largest difference, in 16-bit steps of the written file), and
through :class:`pvrnn.Stretcher` and the cross-synthesis stream in random blocks (largest
difference in float32).

    python benchmarks/bench_streaming.py                       # one hour: x2, +3 semitones, cross
    python benchmarks/bench_streaming.py --minutes 10 --commands stretch,cross-deltas
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import pvrnn

SR = 44100


def make_file(path: Path, minutes: float, seed: int = 0) -> int:
    """Write ``minutes`` of a synthetic mix, mono 16-bit WAV, block by block; samples."""
    rng = np.random.default_rng(seed)
    n = int(round(minutes * 60 * SR))
    block = 1 << 20
    burst = rng.standard_normal(176) * np.exp(-np.arange(176) / 35.0)
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
        for start in range(0, n, block):
            t = np.arange(start, min(n, start + block)) / SR
            y = 0.15 * np.sin(2 * np.pi * 220 * t + 3 * np.sin(2 * np.pi * 5 * t))
            y += 0.1 * np.sin(2 * np.pi * 330 * (1 + 0.5 * np.sin(2 * np.pi * t / 60)) * t)
            y += 0.01 * rng.standard_normal(t.shape[0])
            for i in np.flatnonzero((np.arange(start, start + t.shape[0]) % (SR // 2)) == 0):
                y[i : i + 176] += 0.3 * burst[: t.shape[0] - i] / np.abs(burst).max()
            f.write(y.astype(np.float32))
    return n


def run_cli(args: list[str], threads: int) -> tuple[float, float, float]:
    """Run ``python -m pvrnn ARGS`` in a child; (peak RSS MB, wall s, CPU s) of that child."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "pvrnn", *args],
                             env={**os.environ, "PVRNN_PROGRESS": "0",
                                  "OMP_NUM_THREADS": str(threads)})
    _, status, usage = os.wait4(child.pid, 0)  # this child's own usage, not the running max
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, child.args)
    return usage.ru_maxrss / 1024, wall, usage.ru_utime + usage.ru_stime  # kB on Linux


def _excerpt(source: Path, target: Path, seconds: float) -> torch.Tensor:
    """The first ``seconds`` of ``source``, written to ``target`` as float; ``(channels, n)``."""
    audio, rate = sf.read(source, frames=int(seconds * SR), dtype="float32", always_2d=True)
    sf.write(target, audio, rate, subtype="FLOAT")
    return torch.from_numpy(np.ascontiguousarray(audio.T))


def _random_blocks(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` blocks of 1 to 8191 samples covering ``[0, n)``."""
    cuts = [0]
    while cuts[-1] < n:
        cuts.append(min(n, cuts[-1] + int(rng.integers(1, 8192))))
    return list(zip(cuts[:-1], cuts[1:]))


def check_equal(folder: Path, source: Path, modulator: Path | None,
                seconds: float) -> list[str]:
    """Streaming (CLI, Stretcher, cross stream) against in-memory on the first ``seconds``."""
    excerpt, other = folder / "excerpt.wav", folder / "excerpt_mod.wav"
    x, rate = _excerpt(source, excerpt, seconds), SR
    checks = [
        ("stretch x2", ["stretch", excerpt], ["--factor", "2"],  # the CLI's --n-fft auto
         lambda: pvrnn.time_stretch(x, rate, 2.0, n_fft="auto", link_channels=True)),
        ("pitch +3", ["pitch", excerpt], ["--semitones", "3"],
         lambda: pvrnn.pitch_shift(x, rate, 3.0, link_channels=True)),
    ]
    if modulator is not None:
        m = _excerpt(modulator, other, seconds)
        checks += [
            ("cross spectral --envelope", ["cross", excerpt, other], ["--envelope"],
             lambda: pvrnn.cross_synthesize(x, m, rate, envelope=True)),
            ("cross deltas", ["cross", excerpt, other], ["--mode", "deltas"],
             lambda: pvrnn.cross_synthesize(x, m, rate, mode="deltas")),
        ]
    rows = []
    out = folder / "excerpt_out.wav"
    for name, inputs, flags, offline in checks:
        subprocess.run([sys.executable, "-m", "pvrnn", *map(str, inputs), str(out), "--force",
                        *flags], check=True, env={**os.environ, "PVRNN_PROGRESS": "0"})
        streamed = sf.read(out, dtype="float32", always_2d=True)[0].T
        ref = offline().numpy()
        ref = ref * (0.999 / np.abs(ref).max() if np.abs(ref).max() > 1 else 1.0)
        steps = np.abs(streamed - ref).max() * 32768
        rows.append(f"| CLI {name}, {seconds:g} s | {streamed.shape[-1]} | {ref.shape[-1]} | "
                    f"{steps:.2f} LSB (16-bit file) |")
    rng = np.random.default_rng(1)
    stretcher = pvrnn.Stretcher(rate, factor=2.0)
    pieces = [stretcher.process(x[0, i:j]) for i, j in _random_blocks(x.shape[-1], rng)]
    streamed = torch.cat([*pieces, stretcher.flush()])
    ref = pvrnn.time_stretch(x[0], rate, 2.0)
    rows.append(f"| Stretcher x2 in random blocks, {seconds:g} s | {streamed.shape[-1]} | "
                f"{ref.shape[-1]} | {float((streamed - ref).abs().max()):.2e} (float32; "
                f"latency {stretcher.latency} samples = {stretcher.latency / rate * 1e3:.0f} ms)"
                " |")
    if modulator is not None:
        rows.append(_cross_blocks(x, m, rng, seconds))
    return rows


def _cross_blocks(x: torch.Tensor, m: torch.Tensor, rng: np.random.Generator,
                  seconds: float) -> str:
    """The cross-synthesis stream fed carrier and modulator in independent random blocks."""
    from pvrnn.dsp.envelope import lifter_samples
    from pvrnn.effects.cross import CrossStream

    n = x.shape[-1]
    stream = CrossStream(1, SR, n, mode="spectral", lifter=lifter_samples(None, SR, 2048, x, m),
                         every=None, n_fft=2048, hop_length=512, window="hann",
                         dtype=torch.float32, device="cpu")
    # Carrier and modulator blocks cut apart and interleaved at random.
    queues = [[(x[:, i:j], x[:, :0]) for i, j in _random_blocks(n, rng)],
              [(x[:, :0], m[:, i:j]) for i, j in _random_blocks(n, rng)]]
    pieces = []
    while queues[0] or queues[1]:
        queue = queues[int(rng.integers(2))] if queues[0] and queues[1] else \
            queues[0] or queues[1]
        pieces.append(stream.feed(*queue.pop(0)))
    streamed = torch.cat([*pieces, stream.finish()], dim=1)
    ref = pvrnn.cross_synthesize(x, m, SR, envelope=True)
    return (f"| cross stream (spectral, envelope) in random blocks, {seconds:g} s | "
            f"{streamed.shape[-1]} | {ref.shape[-1]} | "
            f"{float((streamed - ref).abs().max()):.2e} (float32) |")


#: The benchmarked commands and their flags (``cross`` also reads a second file).
COMMANDS = {
    "stretch": ["--factor", "2"],
    "pitch": ["--semitones", "3"],
    "cross": ["--mode", "spectral", "--envelope"],
    "cross-deltas": ["--mode", "deltas"],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--commands", default="stretch,pitch,cross",
                        help="comma-separated: stretch (x2), pitch (+3 semitones), cross "
                             "(spectral, envelope), cross-deltas")
    parser.add_argument("--check-seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the "
                        "commands (on a shared 2-core machine 2 threads ran 5x slower)")
    parser.add_argument("--folder", default=None, help="where the files go (default: a temp "
                        "folder, removed at the end)")
    args = parser.parse_args(argv)
    commands = args.commands.split(",")
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        folder = Path(tmp)
        source, modulator = folder / "long.wav", None
        start = time.perf_counter()
        n = make_file(source, args.minutes)
        if any(c.startswith("cross") for c in commands):
            modulator = folder / "modulator.wav"
            make_file(modulator, args.minutes, seed=1)
        made = time.perf_counter() - start
        print(f"# Streaming: {args.minutes:g} min mono 16-bit WAV ({n} samples, "
              f"{source.stat().st_size / 2**20:.0f} MB{', and a modulator' if modulator else ''})"
              f" made in {made:.0f} s; torch {torch.__version__}, {os.cpu_count()} CPUs\n")
        baseline, _, _ = run_cli(["--version"], args.threads)
        print(f"(`pvrnn --version` alone peaks at {baseline:.0f} MB: torch and the imports)\n")
        print("| command | peak RSS | wall | CPU | output |")
        print("|---|---:|---:|---:|---:|")
        for command in commands:
            flags = COMMANDS[command]
            name = command.split("-")[0]
            inputs = [source, modulator] if name == "cross" else [source]
            out = folder / "out.wav"
            rss, wall, cpu = run_cli([name, *map(str, inputs), str(out), "--force", *flags],
                                     args.threads)
            info = sf.info(out)
            print(f"| pvrnn {name} {' '.join(flags)} | {rss:.0f} MB | {wall:.0f} s | "
                  f"{cpu:.0f} s | {info.frames / info.samplerate / 60:.1f} min |", flush=True)
            out.unlink()
        print("\n| streaming vs in memory | streamed samples | in-memory samples | "
              "largest difference |")
        print("|---|---:|---:|---|")
        for row in check_equal(folder, source, modulator, args.check_seconds):
            print(row, flush=True)


if __name__ == "__main__":
    main()
