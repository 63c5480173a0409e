"""``pvrnn stretch | pitch | cross | analyze``: the sound-design transforms at the terminal.

Each command reads any audio file soundfile knows (``-`` reads stdin), keeps its channels,
writes WAV/FLAC/OGG by suffix (``-`` writes WAV to stdout) atomically, refuses to overwrite
its input or an existing file without ``--force``, shows a progress bar on long input when
stderr is a terminal, and exits with status 1 and a one-line reason on bad input.
``stretch``, ``pitch`` and ``cross`` from files to a file stream
(:class:`pvrnn.io.AudioReader` -> the effects' streams -> :class:`pvrnn.io.AudioWriter`):
memory stays bounded however long the files, and the result is the in-memory one.
"""

from __future__ import annotations

import argparse
import io
import math
import sys

from ..errors import PvrnnError
from .main import add_command, check_output, progress_enabled, read_audio, write_audio

#: Picture formats ``analyze --plot`` writes, by suffix.
_PICTURES = ("png", "pdf", "svg", "jpg", "jpeg")
#: Inputs at least this long (seconds) get a progress bar (when stderr is a terminal).
PROGRESS_SECONDS = 10.0


def register(subparsers: argparse._SubParsersAction) -> None:
    stretch = add_command(
        subparsers, "stretch", run_stretch,
        help="change the duration, keep the pitch",
        description="Time-stretch a sound with a phase-locked phase vocoder that keeps attacks "
                    "sharp. --factor is output duration / input duration: 2 is twice as "
                    "long (half speed), 0.5 twice as short. With --to the factor moves "
                    "linearly from --factor at the start to --to at the end.",
        example="pvrnn stretch voice.wav slow.wav --factor 2\n"
                "  pvrnn stretch loop.wav short.wav --factor 0.5 --n-fft 2048 --hop-length 512",
    )
    _io_args(stretch)
    stretch.add_argument("--factor", type=float, required=True,
                         help="output duration / input duration, > 0")
    stretch.add_argument("--to", type=float, default=None, metavar="FACTOR",
                         help="factor at the end of the sound (a linear ramp from --factor)")
    _engine_args(stretch, auto=True)

    pitch = add_command(
        subparsers, "pitch", run_pitch,
        help="transpose, keep the duration",
        description="Pitch-shift a sound by a number of semitones (12 = one octave up) and keep "
                    "its duration. --preserve-formants keeps the spectral envelope in place, "
                    "so voices and instruments keep their size.",
        example="pvrnn pitch voice.wav lower.wav --semitones -3 --preserve-formants",
    )
    _io_args(pitch)
    pitch.add_argument("--semitones", type=float, required=True,
                       help="transposition in semitones, positive up, within [-48, 48]")
    pitch.add_argument("--preserve-formants", action="store_true",
                       help="keep the spectral envelope (formants) in place")
    _engine_args(pitch)

    cross = add_command(
        subparsers, "cross", run_cross,
        help="cross-synthesize two sounds",
        description="Combine two sounds frame by frame. --mode spectral keeps the carrier's "
                    "frequencies and imposes the modulator's magnitudes (with --envelope only "
                    "its spectral envelope: a talking instrument). --mode deltas drives the "
                    "carrier with the modulator's frame-to-frame changes, snapping back to the "
                    "carrier every --reset-every seconds. Sounds of different lengths need "
                    "--fit; both must have the same sample rate.",
        example="pvrnn cross clarinet.wav voice.wav talking.wav --mode spectral --envelope "
                "--fit stretch",
    )
    cross.add_argument("carrier", help="audio file giving the frequencies ('-' for stdin)")
    cross.add_argument("modulator", help="audio file giving magnitudes or changes")
    cross.add_argument("output", help="file to write, .wav/.flac/.ogg ('-' for stdout, WAV)")
    cross.add_argument("--mode", choices=("spectral", "deltas"), default="spectral",
                       help="what the modulator contributes")
    cross.add_argument("--fit", choices=("error", "loop", "trim", "stretch"), default="error",
                       help="when lengths differ: error, loop (repeat/cut the modulator), "
                            "trim (both to the shorter), stretch (the modulator to the carrier)")
    cross.add_argument("--envelope", action="store_true",
                       help="spectral mode: impose only the modulator's spectral envelope")
    cross.add_argument("--reset-every", type=float, default=0.25, metavar="SECONDS",
                       help="deltas mode: seconds between reset frames from the carrier "
                            "(0: never)")
    cross.add_argument("--force", action="store_true", help="overwrite an existing output")
    cross.add_argument("--n-fft", type=int, default=2048, help="FFT size, samples (even)")
    cross.add_argument("--hop-length", type=int, default=512, help="hop, samples")

    analyze = add_command(
        subparsers, "analyze", run_analyze,
        help="describe a sound; picture its spectrogram",
        description="Print a short summary of a sound (duration, sample rate, channels, "
                    "level, median pitch if it has one, onsets) and, with --plot, write a "
                    "picture of its spectrogram and of the instantaneous frequencies the "
                    "phase vocoder measures (needs matplotlib: pip install pvrnn[plot]).",
        example="pvrnn analyze clarinet.wav --plot clarinet.png",
    )
    analyze.add_argument("input", help="audio file ('-' for stdin)")
    analyze.add_argument("--plot", default=None, metavar="PNG",
                         help="write the spectrogram + instantaneous-frequency picture here "
                              "('-' for stdout)")
    analyze.add_argument("--force", action="store_true", help="overwrite an existing picture")
    analyze.add_argument("--n-fft", type=int, default=2048, help="FFT size, samples")
    analyze.add_argument("--hop-length", type=int, default=512, help="hop, samples")


def _io_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="audio file to read ('-' for stdin)")
    parser.add_argument("output", help="file to write, .wav/.flac/.ogg ('-' for stdout, WAV)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")


def _fft_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a number of samples or 'auto'") from None


def _engine_args(parser: argparse.ArgumentParser, auto: bool = False) -> None:
    if auto:
        parser.add_argument("--n-fft", type=_fft_size, default="auto",
                            help="FFT size, samples (even), or 'auto': chosen from the sound "
                                 "(1024 for vibrato and glides ... 4096 for piano chords and "
                                 "dense textures), with its hop; 2048 is the Python default")
        parser.set_defaults(hop_length=None)  # before the flag: --help shows no "None"
        parser.add_argument("--hop-length", type=int, default=argparse.SUPPRESS,
                            help="synthesis hop, samples (<= n-fft / 2; default: with --n-fft "
                                 "auto the automatic one, else 512)")
    else:
        parser.add_argument("--n-fft", type=int, default=2048, help="FFT size, samples (even)")
        parser.add_argument("--hop-length", type=int, default=512,
                            help="synthesis hop, samples (<= n-fft / 2)")
    parser.set_defaults(transients=True)  # before the flag, so --help shows no "default: True"
    parser.add_argument("--no-transients", dest="transients", action="store_false",
                        default=argparse.SUPPRESS,
                        help="do not treat onsets specially (by default attacks stay sharp)")


# -- shared steps -------------------------------------------------------------------------------
def _read(path: str):
    """``(audio (channels, time), sample_rate)``; ``-`` reads stdin. Channels are kept."""
    return read_audio(path, mono=False)


def _write(command: str, path: str, audio, sample_rate: float) -> None:
    """Write, scaling down (and saying so) rather than clipping if the peak exceeds 1."""
    peak = float(audio.abs().max())
    if peak > 1.0:
        audio = audio * (0.999 / peak)
        print(f"pvrnn {command}: note: the result peaks at {peak:.3f}; scaled down by "
              f"{20 * math.log10(peak / 0.999):.1f} dB so it does not clip", file=sys.stderr)
    write_audio(path, audio.squeeze(0) if audio.shape[0] == 1 else audio, sample_rate)


def _progress(audio, sample_rate: float) -> bool:
    return progress_enabled() and audio.shape[-1] >= PROGRESS_SECONDS * sample_rate


# -- commands -----------------------------------------------------------------------------------
def _streaming(args: argparse.Namespace) -> bool:
    """Files on both ends stream (bounded memory); stdin and stdout go through memory."""
    return args.input != "-" and args.output != "-"


def _stream_file(command: str, args: argparse.Namespace, reader, stream, *, blocks=None,
                 frames: int | None = None, channels: int | None = None) -> int:
    """Feed ``reader``'s blocks (or ``blocks``, ``frames`` samples in all) to ``stream``
    (``feed`` / ``finish``) and write the result (``channels``, default the reader's)
    atomically, scaled down (and saying so) rather than clipped; a progress bar on stderr."""
    from tqdm import tqdm

    from ..io import AudioWriter

    frames = reader.frames if frames is None else frames
    seconds = frames / reader.sample_rate
    bar = None
    if progress_enabled() and seconds >= PROGRESS_SECONDS:
        bar = tqdm(total=frames, desc=command, unit="sample", unit_scale=True,
                   file=sys.stderr, leave=False)
    with AudioWriter(args.output, reader.sample_rate, channels or reader.channels) as writer:
        for block in reader.blocks() if blocks is None else blocks:
            writer.write(stream.feed(block))
            if bar is not None:
                bar.update(block.shape[-1])
        writer.write(stream.finish())
        if bar is not None:
            bar.close()
        peak = writer.peak
        scale = writer.commit()
    if scale != 1.0:
        print(f"pvrnn {command}: note: the result peaks at {peak:.3f}; scaled down by "
              f"{20 * math.log10(peak / 0.999):.1f} dB so it does not clip", file=sys.stderr)
    return 0


class _Passthrough:
    def feed(self, block):
        return block

    def finish(self):
        import torch

        return torch.zeros(self.channels, 0)


def _ramp(args: argparse.Namespace, seconds: float):
    """``--factor`` as given, or with ``--to`` a linear ramp over ``seconds``."""
    if args.to is None:
        return args.factor
    start, end = float(args.factor), float(args.to)
    for name, value in (("--factor", start), ("--to", end)):
        if not (math.isfinite(value) and value > 0):
            raise PvrnnError(f"{name}={value:g}: expected a finite factor > 0")

    def factor(t):
        return start + (end - start) * (t / seconds)

    return factor


def run_stretch(args: argparse.Namespace) -> int:
    from ..effects.stretch import time_stretch

    check_output(args.output, force=args.force, inputs=[args.input])
    if _streaming(args):
        from ..effects.resolution import choose_resolution_from_reader
        from ..effects.streaming import Stretcher
        from ..io import AudioReader

        with AudioReader(args.input) as reader:
            n_fft, hop = args.n_fft, 512
            if n_fft == "auto":
                n_fft, hop = choose_resolution_from_reader(reader)
            stretcher = Stretcher(
                reader.sample_rate, _ramp(args, reader.frames / reader.sample_rate),
                reader.channels, n_fft=n_fft, hop_length=hop if args.hop_length is None
                else args.hop_length,
                transients=args.transients, link_channels=True)
            stream = _StretcherStream(stretcher)
            return _stream_file("stretch", args, reader, stream)
    audio, rate = _read(args.input)
    factor = _ramp(args, audio.shape[-1] / rate)
    out = time_stretch(audio, rate, factor, n_fft=args.n_fft, hop_length=args.hop_length,
                       transients=args.transients, link_channels=True,
                       progress=_progress(audio, rate))
    _write("stretch", args.output, out, rate)
    return 0


class _StretcherStream:
    def __init__(self, stretcher) -> None:
        self.stretcher = stretcher

    def feed(self, block):
        return self.stretcher.process(block)

    def finish(self):
        return self.stretcher.flush()


def run_pitch(args: argparse.Namespace) -> int:
    from ..effects.pitch import pitch_shift, pitch_stream

    check_output(args.output, force=args.force, inputs=[args.input])
    if _streaming(args):
        from ..dsp.envelope import LIFTER_BLOCK
        from ..io import AudioReader

        with AudioReader(args.input) as reader:
            if reader.frames < args.n_fft:
                raise PvrnnError(f"input={args.input!r} has {reader.frames} samples, fewer "
                                 f"than n_fft={args.n_fft}")
            stream = pitch_stream(
                reader.channels, reader.sample_rate, args.semitones,
                preserve_formants=args.preserve_formants, envelope_lifter=None,
                lifter_blocks=reader.blocks(LIFTER_BLOCK), n_fft=args.n_fft,
                hop_length=args.hop_length, window="hann", transients=args.transients,
                onset_threshold=0.4, link_channels=True, dtype=_float32(), device="cpu")
            if stream is None:
                stream = _Passthrough()
                stream.channels = reader.channels
            return _stream_file("pitch", args, reader, stream)
    audio, rate = _read(args.input)
    out = pitch_shift(audio, rate, args.semitones, preserve_formants=args.preserve_formants,
                      n_fft=args.n_fft, hop_length=args.hop_length,
                      transients=args.transients, link_channels=True,
                      progress=_progress(audio, rate))
    _write("pitch", args.output, out, rate)
    return 0


def _float32():
    import torch

    return torch.float32


def run_cross(args: argparse.Namespace) -> int:
    from ..effects.cross import cross_synthesize

    if args.carrier == "-" and args.modulator == "-":
        raise PvrnnError("carrier='-' and modulator='-': expected at most one of them on stdin")
    check_output(args.output, force=args.force, inputs=[args.carrier, args.modulator])
    reset = args.reset_every if args.reset_every and args.reset_every > 0 else None
    settings = dict(mode=args.mode, fit=args.fit, envelope=args.envelope, reset_every=reset,
                    envelope_lifter=None, n_fft=args.n_fft, hop_length=args.hop_length,
                    window="hann")
    if "-" not in (args.carrier, args.modulator, args.output):
        return _stream_cross(args, settings)
    carrier, rate = _read(args.carrier)
    modulator, mod_rate = _read(args.modulator)
    _check_pair(args, rate, mod_rate, carrier.shape[0], modulator.shape[0])
    out = cross_synthesize(carrier, modulator, rate, progress=_progress(carrier, rate),
                           **settings)
    _write("cross", args.output, out, rate)
    return 0


def _check_pair(args: argparse.Namespace, rate: float, mod_rate: float, channels: int,
                mod_channels: int) -> None:
    if mod_rate != rate:
        raise PvrnnError(f"modulator={args.modulator!r} is at {mod_rate:g} Hz but "
                         f"carrier={args.carrier!r} at {rate:g} Hz: expected one sample rate "
                         f"(resample one first)")
    if channels != mod_channels and 1 not in (channels, mod_channels):
        raise PvrnnError(f"carrier has {channels} channels and modulator {mod_channels}: "
                         "expected the same number, or a mono one")


def _stream_cross(args: argparse.Namespace, settings: dict) -> int:
    """Files on all three ends: both sounds stream from disk (bounded memory), the result is
    the in-memory one."""
    from ..effects.cross import Sound, cross_pipeline
    from ..io import STREAM_BLOCK, AudioReader

    with AudioReader(args.carrier) as car, AudioReader(args.modulator) as mod:
        _check_pair(args, car.sample_rate, mod.sample_rate, car.channels, mod.channels)
        for name, reader in (("carrier", car), ("modulator", mod)):
            if reader.frames < args.n_fft:
                raise PvrnnError(f"{name}={getattr(args, name)!r} has {reader.frames} samples, "
                                 f"fewer than n_fft={args.n_fft}")
        stream, blocks, n, batch = cross_pipeline(
            Sound(car.blocks, (car.channels,), car.frames),
            Sound(mod.blocks, (mod.channels,), mod.frames), car.sample_rate,
            dtype=_float32(), device="cpu", **settings)
        return _stream_file("cross", args, car, stream, blocks=blocks(STREAM_BLOCK), frames=n,
                            channels=batch[0])


def run_analyze(args: argparse.Namespace) -> int:
    import torch

    from ..effects.onsets import detect_onsets
    from ..metrics import estimate_f0

    if args.plot is not None:
        check_output(args.plot, force=args.force, inputs=[args.input])
        suffix = args.plot.rsplit(".", 1)[-1].lower() if "." in args.plot else ""
        if args.plot != "-" and suffix not in _PICTURES:
            raise PvrnnError(f"--plot={args.plot!r}: expected a picture file ending in "
                             + ", ".join("." + s for s in _PICTURES))
    audio, rate = _read(args.input)
    mono = audio.mean(0)
    seconds = mono.shape[-1] / rate
    peak = float(audio.abs().max())
    rms = float(audio.double().square().mean().sqrt())

    def db(x: float) -> str:
        return f"{20 * math.log10(x):.1f} dBFS" if x > 0 else "-inf dBFS"

    lines = [
        f"file:        {args.input}",
        f"duration:    {seconds:.3f} s ({mono.shape[-1]} samples)",
        f"sample rate: {rate:g} Hz",
        f"channels:    {audio.shape[0]}",
        f"peak:        {db(peak)}",
        f"rms:         {db(rms)}",
    ]
    if mono.shape[-1] >= 4096 and rms > 0:
        f0 = estimate_f0(mono, rate, hop_length=args.hop_length)
        voiced = f0[~torch.isnan(f0)]
        if voiced.numel() >= max(3, f0.numel() // 10):
            median = float(voiced.median())
            midi = 69 + 12 * math.log2(median / 440.0)
            names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
            note = f"{names[round(midi) % 12]}{round(midi) // 12 - 1}"
            cents = 100 * (midi - round(midi))
            lines.append(f"f0 median:   {median:.2f} Hz ({note} {cents:+.0f} cents), voiced in "
                         f"{100 * voiced.numel() / f0.numel():.0f}% of frames")
        else:
            lines.append("f0 median:   unvoiced (no steady pitch)")
    if mono.shape[-1] >= args.n_fft:
        onsets = detect_onsets(mono, rate, n_fft=args.n_fft, hop_length=args.hop_length)
        times = onsets.nonzero().flatten() * args.hop_length / rate
        shown = ", ".join(f"{t:.2f}" for t in times[:12].tolist())
        more = ", ..." if times.numel() > 12 else ""
        lines.append(f"onsets:      {times.numel()}" + (f" at {shown}{more} s" if shown else ""))
    if args.plot is not None:
        lines.append(f"picture:     {_plot(args, mono, rate)}")
    # With the picture on stdout, the summary goes to stderr.
    print("\n".join(lines), file=sys.stderr if args.plot == "-" else sys.stdout)
    return 0


def _plot(args: argparse.Namespace, audio, rate: float) -> str:
    import os
    import secrets
    from pathlib import Path

    from ..plot import plot_frames

    figure = plot_frames(audio, rate, n_fft=args.n_fft, hop_length=args.hop_length,
                         title=args.input if args.input != "-" else None)
    if args.plot == "-":
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110)
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.buffer.flush()
        return "(stdout)"
    target = Path(args.plot)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        figure.savefig(temp, format=target.suffix.lstrip(".") or "png", dpi=110)
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()
    return str(target)
