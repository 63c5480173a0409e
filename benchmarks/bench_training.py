"""Training at scale: a one-hour corpus on disk, 1 vs 2 processes, memory, data-loading share.

Builds a corpus of ``--minutes`` of audio (default 60) by rendering variations of the bundled
sounds (24 renderings, pitch-shifted by -7..+7 semitones and time-stretched x0.8..x1.5
with ``pvrnn.pitch_shift`` / ``pvrnn.time_stretch``, strung together at random levels into
files of one minute; nothing is downloaded), then measures with the default model
(``SoundModel()``, as ``pvrnn train`` without ``--preset``), each run a ``pvrnn train``
subprocess:

- analysis: time to analyse and cache the corpus (first run), and to open the cache;
- one epoch on the whole corpus on the CPU: time, frames/s, peak RSS of the process
  (``getrusage`` of the child), and the data-loading share of step time (time blocked on the
  next batch / epoch time, from the CSV log);
- throughput in frames/s of 1 process vs 2 gloo processes (``--nproc 2``, same global batch)
  on a ``--subset-minutes`` part of the corpus;
- GPU figures (largest batch, epoch time) only where CUDA is present.

Every process runs one thread (``OMP_NUM_THREADS=1``): on this shared 2-core machine a
single process with 2 intra-op threads measured 234 frames/s against 2075 with one (the
threads spin against each other and the other jobs), so one thread is the fair baseline.

Usage:
    python benchmarks/bench_training.py                    # builds /tmp/pvrnn-corpus-60min
    python benchmarks/bench_training.py --minutes 10 --subset-minutes 2   # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

import pvrnn
from pvrnn.model.log import read_log

VARIATIONS = 24

SOUNDS = ("clarinet", "piano", "cello", "flute", "oboe", "choir", "texture", "clarinet_phrase",
          "piano_phrase")


def build_corpus(folder: Path, minutes: float, rate: int = 44100) -> float:
    """Render variations into one-minute files until ``minutes`` of audio; returns seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.wav"))
    if existing:
        total = sum(pvrnn.load_audio(p)[0].shape[-1] for p in existing) / rate
        if total >= minutes * 60 - 1:
            return total
    sources = []
    for name in SOUNDS:
        audio, file_rate = pvrnn.examples.load(name)
        if file_rate == rate:  # one rate for the corpus (the bundled sounds are 44.1 kHz)
            sources.append(audio)
    gen = torch.Generator().manual_seed(0)
    variations = []  # rendered once; the files are random sequences of them, varied in level
    for _ in range(VARIATIONS):
        source = sources[int(torch.randint(len(sources), (1,), generator=gen))]
        semitones = float(torch.randint(-7, 8, (1,), generator=gen))
        factor = 0.8 + 0.7 * float(torch.rand(1, generator=gen))
        audio = pvrnn.pitch_shift(pvrnn.time_stretch(source, rate, factor), rate, semitones)
        variations.append(audio / audio.abs().max().clamp_min(1e-6))
    total, index, buffer = 0.0, 0, []
    while total < minutes * 60:
        audio = variations[int(torch.randint(len(variations), (1,), generator=gen))]
        buffer.append((0.2 + 0.7 * float(torch.rand(1, generator=gen))) * audio)
        if sum(a.shape[-1] for a in buffer) >= 60 * rate:
            chunk = torch.cat(buffer)
            pvrnn.save_audio(folder / f"variation{index:03d}.wav", chunk, rate)
            total += chunk.shape[-1] / rate
            index, buffer = index + 1, []
    return total


def train(folder: Path, output: Path, *extra: str) -> dict:
    """One ``pvrnn train`` epoch in a subprocess: its wall time, peak RSS, CSV epoch row."""
    env = dict(os.environ, PVRNN_PROGRESS="0", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "pvrnn", "train", str(folder), "-o", str(output),
               "--epochs", "1", "--log-every", "0", "-f", "--device", "cpu", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    began = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, max over children
    row = [r for r in read_log(output.with_suffix(".csv")) if r["kind"] == "epoch"][-1]
    return {"wall": wall, "rss_gib": peak / 2**20, "rss_grew": peak > before, **row}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--subset-minutes", type=float, default=3.0)
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--skip-hour-epoch", action="store_true")
    args = parser.parse_args()
    folder = args.corpus or Path(f"/tmp/pvrnn-corpus-{args.minutes:g}min")
    out = Path("/tmp/pvrnn-bench-training")
    out.mkdir(exist_ok=True)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} CPU cores, CUDA: {torch.cuda.is_available()}")
    began = time.perf_counter()
    seconds = build_corpus(folder, args.minutes)
    print(f"corpus: {folder} ({seconds / 60:.1f} min of audio, rendered/checked in "
          f"{time.perf_counter() - began:.0f} s)")
    subset = out / "subset"
    subset.mkdir(exist_ok=True)
    for path in sorted(folder.glob("*.wav"))[: max(1, round(args.subset_minutes))]:
        link = subset / path.name
        if not link.exists():
            link.symlink_to(path)
    rows = []
    one = train(subset, out / "one.pt", "--batch-size", "8")
    two = train(subset, out / "two.pt", "--batch-size", "8", "--nproc", "2")
    rows.append(("throughput, 1 process, CPU (frames/s)", f"{one['frames_per_second']:,.0f}"))
    rows.append(("throughput, 2 gloo processes, CPU (frames/s)",
                 f"{two['frames_per_second']:,.0f} "
                 f"(x{two['frames_per_second'] / one['frames_per_second']:.2f})"))
    rows.append(("data-loading share of step time, 1 process",
                 f"{100 * one['data_seconds'] / one['seconds']:.1f} %"))
    if not args.skip_hour_epoch:
        for cached in folder.glob(".pvrnn-cache/*"):  # time the analysis too
            cached.unlink()
        warm = train(folder, out / "hour.pt")
        rows.append((f"whole run: analysis + cache + 1 epoch, {seconds / 60:.0f} min",
                     f"{warm['wall']:.0f} s"))
        rows.append((f"epoch on {seconds / 60:.0f} min, CPU, 1 process (train + validation)",
                     f"{warm['seconds']:.0f} s ({warm['frames']:,.0f} frames, "
                     f"{warm['frames_per_second']:,.0f} frames/s)"))
        rows.append((f"peak RSS, training on {seconds / 60:.0f} min",
                     f"{warm['rss_gib']:.2f} GiB"))
        rows.append((f"data-loading share of step time, {seconds / 60:.0f} min",
                     f"{100 * warm['data_seconds'] / warm['seconds']:.1f} %"))
    gpu = "not measured: no CUDA device here" if not torch.cuda.is_available() else \
        "run with CUDA: see --device cuda (not scripted on this machine)"
    rows.append(("GPU throughput / largest batch / epoch time", gpu))
    width = max(len(r[0]) for r in rows)
    print(f"\n| {'measure'.ljust(width)} | result |\n|{'-' * (width + 2)}|--------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
