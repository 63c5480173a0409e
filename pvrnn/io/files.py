"""Reading and writing audio files: soundfile underneath, torch tensors on top.

``load_audio`` reads any format libsndfile knows (WAV, FLAC, OGG/Vorbis, AIFF, ...) into a
float32 tensor, downmixes to mono unless told not to, and resamples only when a rate is asked
for. ``save_audio`` writes WAV, FLAC or OGG, refuses to clip, and replaces the destination
atomically (temporary file in the same folder, then ``os.replace``), so a failed write never
leaves a half-written file and never destroys the previous one.
"""

from __future__ import annotations

import math
import os
import secrets
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, Union

import numpy as np
import soundfile as sf
import torch

from ..errors import PvrnnError, check_positive, fail

__all__ = ["load_audio", "save_audio", "FORMATS"]

PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]

#: File suffixes ``save_audio`` understands, and the soundfile format each one selects.
FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG"}

#: Largest denominator accepted when a non-integer sample rate is turned into a ratio.
MAX_RATE_DENOMINATOR = 1000
#: ``(channels, time)`` arrays with more channels than this are taken for ``(time, channels)``.
MAX_CHANNELS = 64


def _is_file_like(obj: Any) -> bool:
    return hasattr(obj, "read") or hasattr(obj, "write")


def _name(obj: Any) -> str:
    """How a path or file object is called in messages."""
    if _is_file_like(obj):
        name = getattr(obj, "name", None)
        return repr(name) if isinstance(name, (str, bytes)) else f"<{type(obj).__name__}>"
    return repr(os.fspath(obj))


# -- reading -----------------------------------------------------------------------------------
_READ_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, OSError)


def _check_file(path: Any, expected: str) -> None:
    """A path to an existing file (not a folder)."""
    if not isinstance(path, (str, os.PathLike)):
        raise fail("path", path, expected)
    file = Path(path)
    if not file.exists():
        raise PvrnnError(f"path={_name(path)}: no such file; expected an existing audio file")
    if file.is_dir():
        raise PvrnnError(f"path={_name(path)}: is a folder; expected an audio file")


def _unreadable(path: Any, error: Exception) -> PvrnnError:
    detail = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return PvrnnError(f"path={_name(path)}: could not be read as audio ({detail}); expected a "
                      f"file in a format soundfile can read (WAV, FLAC, OGG, AIFF, ...)")


def load_audio(
    path: PathOrFile, sample_rate: float | None = None, mono: bool = True
) -> tuple[torch.Tensor, int | float]:
    """Read an audio file into a float32 tensor.

    Args:
        path (str, PathLike or binary file object): the file to read, any format soundfile
            (libsndfile) can read: WAV, FLAC, OGG/Vorbis, AIFF, ... A file object (e.g.
            ``io.BytesIO``) is read from its current position.
        sample_rate (float, optional): Hz. ``None`` (default) keeps the file's rate. Otherwise
            the audio is resampled (band-limited, :func:`pvrnn.dsp.resample.resample`) to
            ``ceil(time * sample_rate / file_rate)`` samples when the file's rate differs. A
            non-integer ``sample_rate`` is read as a fraction with denominator at most 1000
            (``22050.5`` and ``1e4 / 3`` are fine, ``1000 * math.pi`` is not).
        mono (bool): ``True`` (default) averages the channels into one, ``(time,)``;
            ``False`` keeps them, ``(channels, time)`` (a mono file gives ``(1, time)``).

    Returns:
        tuple: ``(audio, sample_rate)``: float32 tensor ``(time,)`` or ``(channels, time)`` with
        samples as stored (integer PCM is scaled to [-1, 1)), and the rate in Hz of the
        returned audio (an ``int`` when it is a whole number of Hz).

    Raises:
        PvrnnError: when the file is missing, a folder, not audio or in a format soundfile
            cannot read, holds no samples or non-finite samples, or when ``sample_rate`` or
            ``mono`` is invalid.

    Example:
        >>> audio, rate = pvrnn.load_audio("note.wav")                  # (time,), file's rate
        >>> stereo, rate = pvrnn.load_audio("mix.flac", mono=False)     # (channels, time)
        >>> audio, rate = pvrnn.load_audio("note.wav", sample_rate=22050)
    """
    if not isinstance(mono, bool):
        raise fail("mono", mono, "True (average the channels) or False (keep them)")
    if sample_rate is not None:
        check_positive("sample_rate", sample_rate)
    if _is_file_like(path):
        if not hasattr(path, "read"):
            raise fail("path", path, "a path or a binary file object opened for reading")
    else:
        _check_file(path, "a path (str or os.PathLike) or a binary file object")
    try:
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except _READ_ERRORS as error:
        raise _unreadable(path, error) from error
    if data.shape[0] == 0:
        raise PvrnnError(f"path={_name(path)}: holds 0 samples; expected a non-empty audio file")
    if not np.isfinite(data).all():
        raise PvrnnError(f"path={_name(path)}: holds NaN or inf samples; expected finite audio")
    data = data.mean(axis=1, keepdims=True) if mono else data  # (time, channels)
    rate: int | float = int(file_rate)
    if sample_rate is not None and float(sample_rate) != float(file_rate):
        data = _resample(data, int(file_rate), float(sample_rate))
        rate = int(sample_rate) if float(sample_rate).is_integer() else float(sample_rate)
    audio = torch.from_numpy(np.ascontiguousarray(data.T, dtype=np.float32))
    return (audio[0] if mono else audio), rate


def _resample(data: np.ndarray, file_rate: int, sample_rate: float) -> np.ndarray:
    """``data`` (time, channels) from ``file_rate`` to ``sample_rate`` Hz, band-limited.

    The output has ``ceil(time * up / down)`` samples, ``up / down`` the reduced ratio of the
    rates; see :func:`pvrnn.dsp.resample.resample` (computed in float64).
    """
    from ..dsp.resample import resample

    target = Fraction(sample_rate).limit_denominator(MAX_RATE_DENOMINATOR)
    if not math.isclose(float(target), sample_rate, rel_tol=1e-12, abs_tol=0.0):
        raise fail("sample_rate", sample_rate, f"a rate that is a fraction with denominator <= "
                   f"{MAX_RATE_DENOMINATOR}, e.g. a whole number of Hz")
    ratio = target / file_rate
    length = -(-data.shape[0] * ratio.numerator // ratio.denominator)
    audio = torch.from_numpy(np.ascontiguousarray(data.T, dtype=np.float64))
    return resample(audio, length).numpy().T.astype(np.float32)


# -- writing -----------------------------------------------------------------------------------
def save_audio(
    path: PathOrFile,
    audio: torch.Tensor | np.ndarray,
    sample_rate: float,
    *,
    subtype: str | None = None,
    format: str | None = None,
) -> None:
    """Write audio to a WAV, FLAC or OGG file, atomically, without clipping.

    Args:
        path (str, PathLike or binary file object): destination. The format comes from the
            suffix (``.wav``, ``.flac``, ``.ogg``) unless ``format`` is given. A path is written
            through a temporary file in the same folder that then replaces it (``os.replace``),
            so a failure leaves any existing file untouched. A file object is written directly
            and needs ``format``.
        audio (Tensor or ndarray): float samples in [-1, 1], ``(time,)`` or
            ``(channels, time)``; any device (copied to the CPU).
        sample_rate (int): Hz, a whole number (file headers store an integer rate).
        subtype (str, optional): sample encoding, e.g. ``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``;
            default soundfile's for the format (``PCM_16`` for WAV and FLAC, ``VORBIS`` for
            OGG). Use ``"FLOAT"`` for a lossless round trip of float32 audio.
        format (str, optional): a soundfile format name (``"WAV"``, ``"FLAC"``, ``"OGG"``, ...)
            overriding the suffix; needed for file objects.

    Raises:
        PvrnnError: when ``audio`` is not floating point, is empty, has the wrong rank, holds
            NaN/inf, or exceeds [-1, 1] (nothing is clipped silently: normalise first, e.g.
            ``audio / audio.abs().max()``); when the suffix, format, subtype or sample rate is
            not supported; or when the folder does not exist.

    Example:
        >>> pvrnn.save_audio("out.wav", audio, 44100)
        >>> pvrnn.save_audio("out.flac", audio / audio.abs().max(), 44100, subtype="PCM_24")
    """
    data = _check_samples(audio)
    rate = _check_rate(sample_rate)
    file_like = _is_file_like(path)
    if not file_like and not isinstance(path, (str, os.PathLike)):
        raise fail("path", path, "a path (str or os.PathLike) or a binary file object")
    fmt = _format_for(path, format, file_like)
    if subtype is not None:
        if not isinstance(subtype, str) or not sf.check_format(fmt, subtype.upper()):
            choices = ", ".join(sorted(sf.available_subtypes(fmt)))
            raise fail("subtype", subtype, f"a subtype {fmt} supports: {choices}")
        subtype = subtype.upper()
    if file_like:
        _write(path, data, rate, fmt, subtype)
        return

    target = Path(path)
    if target.is_dir():
        raise PvrnnError(f"path={_name(path)}: is a folder; expected a file path to write")
    folder = target.parent
    if not folder.is_dir():
        raise PvrnnError(f"path={_name(path)}: expected an existing folder, "
                         f"{str(folder)!r} is not one")
    temp = _create_temp(target)
    try:
        _write(temp, data, rate, fmt, subtype)
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


def _check_samples(audio: Any) -> np.ndarray:
    """Validate and convert to a (time, channels) float numpy array for soundfile."""
    if isinstance(audio, torch.Tensor):
        if not audio.is_floating_point():
            raise fail("audio", audio, "floating-point samples in [-1, 1]; convert integer PCM "
                       "with audio.float() / 32768")
        array = audio.detach().cpu()
        if array.dtype not in (torch.float32, torch.float64):
            array = array.float()
        array = array.numpy()
    elif isinstance(audio, np.ndarray):
        if not np.issubdtype(audio.dtype, np.floating):
            raise fail("audio", audio, "floating-point samples in [-1, 1]; convert integer PCM "
                       "with audio.astype(np.float32) / 32768")
        array = audio if audio.dtype in (np.float32, np.float64) else audio.astype(np.float32)
    else:
        raise fail("audio", audio, "a torch.Tensor or numpy array, (time,) or (channels, time)")
    shape = tuple(array.shape)
    if array.ndim not in (1, 2):
        raise PvrnnError(f"audio has shape {shape}: expected (time,) or (channels, time)")
    if array.shape[-1] == 0 or array.size == 0:
        raise PvrnnError(f"audio has shape {shape}: expected a non-empty signal")
    if array.ndim == 2 and array.shape[0] > MAX_CHANNELS:
        raise PvrnnError(
            f"audio has shape {shape}: expected (channels, time) with at most {MAX_CHANNELS} "
            f"channels; if it is (time, channels), pass audio.T"
        )
    if not np.isfinite(array).all():
        raise PvrnnError(f"audio of shape {shape} holds NaN or inf: expected finite samples")
    peak = float(np.abs(array).max())
    if peak > 1.0:
        raise PvrnnError(
            f"audio peaks at {peak:.6g} (|sample| > 1 would clip): expected samples in [-1, 1]; "
            f"normalise first, e.g. audio / audio.abs().max()"
        )
    return array.reshape(1, -1).T if array.ndim == 1 else array.T


def _check_rate(sample_rate: Any) -> int:
    rate = check_positive("sample_rate", sample_rate)
    if not rate.is_integer():
        raise fail("sample_rate", sample_rate, "a whole number of Hz (audio files store an "
                   "integer rate); resample first")
    return int(rate)


def _format_for(path: Any, format: str | None, file_like: bool) -> str:
    if format is not None:
        known = sf.available_formats()
        if not isinstance(format, str) or format.upper() not in known:
            raise fail("format", format, "a soundfile format name such as 'WAV', 'FLAC', 'OGG'")
        return format.upper()
    name = getattr(path, "name", None) if file_like else os.fspath(path)
    suffix = Path(name).suffix.lower() if isinstance(name, str) else ""
    if suffix in FORMATS:
        return FORMATS[suffix]
    if file_like:
        raise fail("format", format, "a format name (e.g. format='WAV') when writing to a file "
                   "object")
    raise PvrnnError(f"path={_name(path)}: unsupported suffix {suffix or '(none)'!r}; expected "
                     f"one of {', '.join(FORMATS)} (or pass format=)")


def _create_temp(target: Path) -> Path:
    """An empty, new file beside ``target`` (mode 0o666 less the umask, like open())."""
    for _ in range(100):
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as error:
            raise PvrnnError(f"path={_name(os.fspath(target))}: cannot write in "
                             f"{str(target.parent)!r} ({error.strerror})") from error
        os.close(fd)
        return temp
    raise PvrnnError(f"path={_name(os.fspath(target))}: could not create a temporary file")


def _write(dest: Any, data: np.ndarray, rate: int, fmt: str, subtype: str | None) -> None:
    try:
        sf.write(dest, data, rate, subtype=subtype, format=fmt)
    except (RuntimeError, TypeError, ValueError) as error:
        raise PvrnnError(
            f"could not write {fmt} ({subtype or 'default subtype'}) at {rate} Hz with "
            f"{data.shape[1]} channel(s): {error}"
        ) from error
