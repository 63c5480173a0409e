"""Streaming audio files: blocks from a file, blocks to a file, in bounded memory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from ..errors import PvrnnError
from .files import (
    _READ_ERRORS,
    _check_file,
    _check_rate,
    _create_temp,
    _format_for,
    _name,
    _unreadable,
)

__all__ = ["AudioReader", "AudioWriter", "STREAM_BLOCK"]


# -- streaming: blocks from a file, blocks to a file -------------------------------------------
#: Samples per channel read or written at a time by the streaming helpers.
STREAM_BLOCK = 1 << 16


class AudioReader:
    """Read an audio file block by block: bounded memory for files of any length.

    Args:
        path (str or PathLike): an audio file soundfile can read.

    Attributes:
        sample_rate (int): Hz. channels (int). frames (int): samples per channel.

    Raises:
        PvrnnError: as :func:`load_audio` (missing, a folder, not audio, empty); NaN or inf
            samples are reported by :meth:`blocks` when they are reached.

    Example:
        >>> with AudioReader("long.flac") as reader:
        ...     for block in reader.blocks():       # (channels, <= STREAM_BLOCK) float32
        ...         ...
    """

    def __init__(self, path: Any) -> None:
        _check_file(path, "a path (str or os.PathLike)")
        try:
            self._file = sf.SoundFile(os.fspath(path))
        except _READ_ERRORS as error:
            raise _unreadable(path, error) from error
        self.path = path
        self.sample_rate = int(self._file.samplerate)
        self.channels = int(self._file.channels)
        self.frames = int(self._file.frames)
        if self.frames == 0:
            self._file.close()
            raise PvrnnError(f"path={_name(path)}: holds 0 samples; expected a non-empty audio "
                             "file")

    def blocks(self, size: int = STREAM_BLOCK, start: int = 0):
        """Yield float32 blocks ``(channels, <= size)`` from sample ``start`` to the end."""
        self._file.seek(start)
        while True:
            data = self._file.read(size, dtype="float32", always_2d=True)
            if data.shape[0] == 0:
                return
            if not np.isfinite(data).all():
                raise PvrnnError(f"path={_name(self.path)}: holds NaN or inf samples; expected "
                                 "finite audio")
            yield torch.from_numpy(np.ascontiguousarray(data.T))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AudioWriter:
    """Write an audio file block by block, atomically, scaling down rather than clipping.

    Blocks go to a float32 temporary file beside the target (RF64, so any length fits) while
    their peak is tracked; :meth:`commit` then copies it, block by block, into the target's
    format (as :func:`save_audio` would write it), scaled by ``0.999 / peak`` when the peak
    exceeds 1, and renames it into place. Nothing is left behind on failure (:meth:`abort`,
    or leaving a ``with`` block by an exception).

    Args:
        path (str or PathLike): destination, ``.wav``, ``.flac`` or ``.ogg``.
        sample_rate (int): Hz. channels (int).

    Example:
        >>> with AudioWriter("out.wav", 44100, 2) as writer:
        ...     for block in blocks:
        ...         writer.write(block)                 # (channels, n)
        ...     scale = writer.commit()                 # 1.0 unless it had to scale down
    """

    def __init__(self, path: Any, sample_rate: float, channels: int) -> None:
        self.rate = _check_rate(sample_rate)
        self.target = Path(path)
        self.format = _format_for(path, None, False)
        if not self.target.parent.is_dir():
            raise PvrnnError(f"path={_name(path)}: expected an existing folder, "
                             f"{str(self.target.parent)!r} is not one")
        self.channels = channels
        self.peak = 0.0
        self.frames = 0
        self._raw = _create_temp(self.target)
        self._final: Path | None = None
        self._file = sf.SoundFile(self._raw, "w", self.rate, channels, subtype="FLOAT",
                                  format="RF64")

    def write(self, block: torch.Tensor) -> None:
        """Append ``(channels, n)`` samples (finite floats; any level)."""
        if block.shape[-1] == 0:
            return
        data = block.detach().cpu().to(torch.float32).numpy().T
        if not np.isfinite(data).all():
            raise PvrnnError("the result holds NaN or inf samples: expected finite audio")
        self.peak = max(self.peak, float(np.abs(data).max()))
        self.frames += data.shape[0]
        self._file.write(data)

    def commit(self) -> float:
        """Convert into place; returns the gain applied (``1.0``, or ``0.999 / peak``)."""
        self._file.close()
        scale = 0.999 / self.peak if self.peak > 1.0 else 1.0
        self._final = _create_temp(self.target)
        try:
            with sf.SoundFile(self._raw) as raw, sf.SoundFile(
                    self._final, "w", self.rate, self.channels, format=self.format) as out:
                while True:
                    data = raw.read(STREAM_BLOCK, dtype="float32", always_2d=True)
                    if data.shape[0] == 0:
                        break
                    out.write(data * scale if scale != 1.0 else data)
            os.replace(self._final, self.target)
            self._final = None
        finally:
            self.abort()
        return scale

    def abort(self) -> None:
        """Remove the temporary files (the target is untouched)."""
        if not self._file.closed:
            self._file.close()
        for temp in (self._raw, self._final):
            if temp is not None:
                try:
                    os.unlink(temp)
                except FileNotFoundError:
                    pass

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(self, kind: Any, *exc: Any) -> None:
        self.abort()
