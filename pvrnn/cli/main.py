"""The ``pvrnn`` command line.

Each group of subcommands lives in its own module with a ``register(subparsers)`` function
(listed in ``_COMMAND_MODULES``); this module holds what they share: the parser, the one-line
error convention, safe output paths and audio reading/writing with ``-`` for stdin/stdout.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from ..errors import PvrnnError

__all__ = ["build_parser", "main"]

# Modules that add subcommands; each defines register(subparsers).
_COMMAND_MODULES: list[str] = ["pvrnn.cli.demo", "pvrnn.cli.model", "pvrnn.cli.effects"]


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def add_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    run: Callable[[argparse.Namespace], int | None],
    *,
    help: str,
    description: str,
    example: str,
) -> argparse.ArgumentParser:
    """Add a subcommand with the shared formatting and an ``Example:`` epilog."""
    parser = subparsers.add_parser(
        name, help=help, description=description, epilog="example:\n  " + example,
        formatter_class=_Formatter,
    )
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (importable for tests and docs)."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="pvrnn",
        description="Phase-vocoder spectral synthesis with recurrent networks.",
        epilog="example:\n  pvrnn stretch voice.wav slow.wav --factor 2\n\n"
               "Run 'pvrnn COMMAND --help' for each command's options.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"pvrnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the exit status (0 success, 1 bad input, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status = args.run(args)
    except PvrnnError as error:
        print(f"pvrnn {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pvrnn {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


# -- shared helpers for commands ---------------------------------------------------------------

def check_output(path: str, *, force: bool, inputs: Sequence[str] = ()) -> None:
    """Refuse to overwrite an input or (without ``--force``) an existing file; check the folder."""
    if path == "-":
        return
    out = Path(path)
    for name in inputs:
        if name != "-" and Path(name).exists() and out.exists() and out.samefile(name):
            raise PvrnnError(f"output={path!r}: expected a file other than the input {name!r}")
    if out.exists() and not force:
        raise PvrnnError(f"output={path!r}: the file exists; expected a new path or --force")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise PvrnnError(
            f"output={path!r}: expected an existing folder, {str(parent)!r} is not one"
        )


def read_audio(path: str, sample_rate: float | None = None, *, mono: bool = True):
    """``load_audio`` that also reads ``-`` (stdin, any soundfile format)."""
    from ..io import load_audio

    source = io.BytesIO(sys.stdin.buffer.read()) if path == "-" else path
    return load_audio(source, sample_rate=sample_rate, mono=mono)


def write_audio(path: str, audio, sample_rate: float) -> None:
    """``save_audio`` (atomic) that also writes WAV to ``-`` (stdout)."""
    from ..io import save_audio

    if path == "-":
        buffer = io.BytesIO()
        save_audio(buffer, audio, sample_rate, format="WAV")
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.buffer.flush()
        return
    save_audio(path, audio, sample_rate)


def progress_enabled() -> bool:
    """Progress bars go to stderr, on when it is a terminal (or PVRNN_PROGRESS=1)."""
    forced = os.environ.get("PVRNN_PROGRESS")
    if forced is not None:
        return forced not in ("0", "")
    return sys.stderr.isatty()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
