"""The ``pvrnn`` command line (``pvrnn --help``)."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
