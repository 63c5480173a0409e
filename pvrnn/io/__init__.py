"""Reading and writing audio files: soundfile underneath, torch tensors on top.

:func:`load_audio` / :func:`save_audio` (whole files, :mod:`pvrnn.io.files`) and
:class:`AudioReader` / :class:`AudioWriter` (blocks, bounded memory, :mod:`pvrnn.io.stream`).
"""

from .files import FORMATS, load_audio, save_audio
from .stream import STREAM_BLOCK, AudioReader, AudioWriter

__all__ = ["load_audio", "save_audio", "FORMATS", "AudioReader", "AudioWriter", "STREAM_BLOCK"]
