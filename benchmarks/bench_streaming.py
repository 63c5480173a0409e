"""Long files in bounded memory: peak RSS of ``pvrnn stretch`` / ``pvrnn pitch`` on a long file.

A synthetic test file of ``--minutes`` (default 60) is generated on disk block by block (tones
with vibrato, decaying clicks and a little noise; nothing is downloaded), then each command
runs in its own process, file to file, and the table gives its peak resident memory
(``ru_maxrss`` of the child), wall and CPU time, and the output's duration. A second part
checks that streaming gives the in-memory result: the first ``--check-seconds`` of the file
go through the CLI and through :func:`pvrnn.time_stretch` / :func:`pvrnn.pitch_shift`
(largest difference, in 16-bit steps of the written file), and through
:class:`pvrnn.Stretcher` in random blocks (largest difference in float32).

    python benchmarks/bench_streaming.py                       # one hour, x2 and +3 semitones
    python benchmarks/bench_streaming.py --minutes 10 --commands stretch
"""

from __future__ import annotations

import argparse
import os
import resource
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
    """Run ``python -m pvrnn ARGS`` in a child; (peak RSS MB, wall s, CPU s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pvrnn", *args], check=True,
                   env={**os.environ, "PVRNN_PROGRESS": "0", "OMP_NUM_THREADS": str(threads)})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return after.ru_maxrss / 1024, wall, cpu  # ru_maxrss is kB on Linux


def check_equal(folder: Path, source: Path, seconds: float) -> list[str]:
    """Streaming (CLI, Stretcher) against in-memory on the first ``seconds`` of ``source``."""
    audio, rate = sf.read(source, frames=int(seconds * SR), dtype="float32", always_2d=True)
    excerpt = folder / "excerpt.wav"
    sf.write(excerpt, audio, rate, subtype="FLOAT")
    x = torch.from_numpy(np.ascontiguousarray(audio.T))
    rows = []
    for name, flags, offline in (
        ("stretch x2", ["stretch", "--factor", "2"],
         lambda: pvrnn.time_stretch(x, rate, 2.0, link_channels=True)),
        ("pitch +3", ["pitch", "--semitones", "3"],
         lambda: pvrnn.pitch_shift(x, rate, 3.0, link_channels=True)),
    ):
        out = folder / "excerpt_out.wav"
        subprocess.run([sys.executable, "-m", "pvrnn", flags[0], str(excerpt), str(out),
                        "--force", *flags[1:]], check=True,
                       env={**os.environ, "PVRNN_PROGRESS": "0"})
        streamed = sf.read(out, dtype="float32", always_2d=True)[0].T
        ref = offline().numpy()
        ref = ref * (0.999 / np.abs(ref).max() if np.abs(ref).max() > 1 else 1.0)
        steps = np.abs(streamed - ref).max() * 32768
        rows.append(f"| CLI {name}, {seconds:g} s | {streamed.shape[-1]} | {ref.shape[-1]} | "
                    f"{steps:.2f} LSB (16-bit file) |")
    stretcher = pvrnn.Stretcher(rate, factor=2.0)
    rng = np.random.default_rng(1)
    pieces, i = [], 0
    while i < x.shape[-1]:
        j = min(x.shape[-1], i + int(rng.integers(1, 8192)))
        pieces.append(stretcher.process(x[0, i:j]))
        i = j
    pieces.append(stretcher.flush())
    streamed = torch.cat(pieces)
    ref = pvrnn.time_stretch(x[0], rate, 2.0)
    rows.append(f"| Stretcher x2 in random blocks, {seconds:g} s | {streamed.shape[-1]} | "
                f"{ref.shape[-1]} | {float((streamed - ref).abs().max()):.2e} (float32; "
                f"latency {stretcher.latency} samples = {stretcher.latency / rate * 1e3:.0f} ms)"
                " |")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--commands", default="stretch,pitch",
                        help="comma-separated: stretch (x2), pitch (+3 semitones)")
    parser.add_argument("--check-seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the "
                        "commands (on a shared 2-core machine 2 threads ran 5x slower)")
    parser.add_argument("--folder", default=None, help="where the files go (default: a temp "
                        "folder, removed at the end)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        folder = Path(tmp)
        source = folder / "long.wav"
        start = time.perf_counter()
        n = make_file(source, args.minutes)
        made = time.perf_counter() - start
        print(f"# Streaming: {args.minutes:g} min mono 16-bit WAV ({n} samples, "
              f"{source.stat().st_size / 2**20:.0f} MB) made in {made:.0f} s; "
              f"torch {torch.__version__}, {os.cpu_count()} CPUs\n")
        baseline, _, _ = run_cli(["--version"], args.threads)
        print(f"(`pvrnn --version` alone peaks at {baseline:.0f} MB: torch and the imports)\n")
        print("| command | peak RSS | wall | CPU | output |")
        print("|---|---:|---:|---:|---:|")
        for command in args.commands.split(","):
            flags = {"stretch": ["--factor", "2"], "pitch": ["--semitones", "3"]}[command]
            out = folder / "out.wav"
            rss, wall, cpu = run_cli([command, str(source), str(out), "--force", *flags],
                                     args.threads)
            info = sf.info(out)
            print(f"| pvrnn {command} {' '.join(flags)} | {rss:.0f} MB | {wall:.0f} s | "
                  f"{cpu:.0f} s | {info.frames / info.samplerate / 60:.1f} min |", flush=True)
            out.unlink()
        print("\n| streaming vs in memory | streamed samples | in-memory samples | "
              "largest difference |")
        print("|---|---:|---:|---|")
        for row in check_equal(folder, source, args.check_seconds):
            print(row, flush=True)


if __name__ == "__main__":
    main()
