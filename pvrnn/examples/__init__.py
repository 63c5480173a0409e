"""Bundled recordings and synthetic test tones.

Nine short mono recordings (44.1 kHz, 16-bit). All but the texture were rendered from the
MIT-licensed Fluid R3 GM soundfont © Frank Wen; the texture is a CC0 sample (maqsim, via Sonic
Pi). Provenance in ``data/README.md``, licences in ``data/LICENSE``. The sustains of the cello,
flute and oboe are soundfont loops: after 0.5-1.3 s they repeat a 0.18-0.23 s stretch exactly
(see the README), so their vibrato is strictly periodic there.

========================  =====================================================  ========
name                      content                                                 duration
========================  =====================================================  ========
``"clarinet"``            one sustained clarinet note, A4 (440.0 Hz)              3.02 s
``"piano"``               one piano note, C4 (first partial 261.5 Hz), decaying   3.12 s
``"clarinet_phrase"``     monophonic clarinet melody, 13 notes (E3-E4)            8.99 s
``"piano_phrase"``        piano arpeggio, single notes and three chords           8.82 s
``"cello"``               one cello note, G2 (98.0 Hz), slight vibrato            4.04 s
``"flute"``               one flute note, A5 (881.5 Hz), breath noise             3.83 s
``"oboe"``                one oboe note, D5 (587.0 Hz), vibrato ~5.4 Hz           3.75 s
``"choir"``               choir "aah", C4 (259.8 Hz), chorused                    4.14 s
``"texture"``             noise texture (no pitch), slowly darkening              3.50 s
========================  =====================================================  ========

Example:
    >>> audio, sample_rate = pvrnn.examples.load("clarinet")   # (133129,), 44100
    >>> tone = pvrnn.examples.sine(440.0, seconds=1.0)           # (44100,)
"""

from __future__ import annotations

import io
import math
from importlib.resources import files
from pathlib import Path

import torch

from ..errors import PvrnnError, check_int, check_positive, fail
from ..io import load_audio

__all__ = ["load", "names", "path", "sine", "harmonic"]

_FILES = {
    "clarinet": "clarinet_a4.wav",
    "piano": "piano_c4.wav",
    "clarinet_phrase": "clarinet_phrase.wav",
    "piano_phrase": "piano_phrase.wav",
    "cello": "cello_g2.wav",
    "flute": "flute_a5.wav",
    "oboe": "oboe_d5.wav",
    "choir": "choir_aah_c4.wav",
    "texture": "texture_ambi_lunar_land.wav",
}


def names() -> list[str]:
    """The names :func:`load` accepts, in a new list.

    Returns:
        list: ``["clarinet", "piano", "clarinet_phrase", "piano_phrase", "cello", "flute",
        "oboe", "choir", "texture"]``.
    """
    return list(_FILES)


def _resource(name: str):
    if not isinstance(name, str) or name not in _FILES:
        raise fail("name", name, "one of " + ", ".join(map(repr, _FILES)))
    return files(__name__).joinpath("data", _FILES[name])


def load(name: str, sample_rate: float | None = None) -> tuple[torch.Tensor, int | float]:
    """A bundled recording as float32 mono audio.

    Args:
        name (str): one of :func:`names`: ``"clarinet"``, ``"piano"``, ``"clarinet_phrase"``,
            ``"piano_phrase"``, ``"cello"``, ``"flute"``, ``"oboe"``, ``"choir"``, ``"texture"``.
        sample_rate (float, optional): resample to this rate (Hz); default the file's 44100.

    Returns:
        tuple: ``(audio, sample_rate)``: float32 tensor ``(time,)`` and its rate in Hz.

    Raises:
        PvrnnError: when ``name`` is not a bundled recording.

    Example:
        >>> audio, sample_rate = pvrnn.examples.load("piano")
    """
    data = _resource(name).read_bytes()
    return load_audio(io.BytesIO(data), sample_rate=sample_rate, mono=True)


def path(name: str) -> Path:
    """The file behind a bundled recording, for tools that want a path (e.g. the CLI).

    Raises:
        PvrnnError: when ``name`` is unknown, or the package is not installed as plain files
            (e.g. zipped); use :func:`load` then.
    """
    resource = _resource(name)
    if not isinstance(resource, Path):
        raise PvrnnError(f"name={name!r}: the package data is not on the file system; "
                         f"expected pvrnn installed as plain files (use examples.load)")
    return resource


def _check_tone(frequency: float, seconds: float, sample_rate: float, amplitude: float,
                phase: float) -> tuple[float, float, int]:
    rate = check_positive("sample_rate", sample_rate)
    frequency = check_positive("frequency", frequency)
    if frequency >= rate / 2:
        raise fail("frequency", frequency, f"a frequency below Nyquist, < {rate / 2:g} Hz "
                   f"(sample_rate={sample_rate:g})")
    seconds = check_positive("seconds", seconds)
    n = round(seconds * rate)
    if n < 1:
        raise fail("seconds", seconds, f"at least one sample, >= {1 / rate:.3g} s")
    check_positive("amplitude", amplitude, allow_zero=True)
    if not isinstance(phase, (int, float)) or isinstance(phase, bool) or not math.isfinite(phase):
        raise fail("phase", phase, "a finite number of radians")
    return frequency, rate, n


def _cycles(frequency: float, rate: float, n: int) -> torch.Tensor:
    """Fractional part of ``frequency * t`` in cycles at each of ``n`` samples, float64.

    Reducing modulo one cycle before multiplying by 2*pi keeps the error at the rounding of
    ``frequency / rate`` times the index (about 1e-10 cycles after an hour at 44.1 kHz).
    """
    index = torch.arange(n, dtype=torch.float64)
    return torch.remainder(index * (frequency / rate), 1.0)


def sine(
    frequency: float = 440.0,
    seconds: float = 3.0,
    sample_rate: float = 44100,
    amplitude: float = 0.5,
    phase: float = 0.0,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A sine tone, ``amplitude * sin(2*pi*frequency*t + phase)``.

    Computed in float64, the phase reduced modulo one cycle before scaling by 2*pi (after an
    hour at 44.1 kHz it is still within 1e-9 rad of exact), and returned in ``dtype``.

    Args:
        frequency (float): Hz, in ``(0, sample_rate / 2)``.
        seconds (float): duration; ``round(seconds * sample_rate)`` samples.
        sample_rate (float): Hz.
        amplitude (float): peak value, ``>= 0`` (``save_audio`` accepts up to 1).
        phase (float): start phase, radians.
        dtype (torch.dtype): float32 (default) or float64.

    Returns:
        Tensor: ``(round(seconds * sample_rate),)`` samples on the CPU.

    Raises:
        PvrnnError: when an argument is out of range (e.g. frequency at or above Nyquist).

    Example:
        >>> pvrnn.examples.sine(440.0, seconds=1.0, sample_rate=16000).shape
        torch.Size([16000])
    """
    frequency, rate, n = _check_tone(frequency, seconds, sample_rate, amplitude, phase)
    _check_dtype(dtype)
    angle = 2 * math.pi * _cycles(frequency, rate, n) + phase
    return (amplitude * torch.sin(angle)).to(dtype)


def harmonic(
    frequency: float = 220.0,
    seconds: float = 3.0,
    sample_rate: float = 44100,
    n_harmonics: int = 10,
    amplitude: float = 0.5,
    rolloff: float = 1.0,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A harmonic tone: partials ``k * frequency`` with weights ``k ** -rolloff``.

    Partials ``k = 1 .. n_harmonics`` in sine phase; those at or above Nyquist are left out.
    The sum is scaled so that its peak is ``amplitude``. Phases are computed in float64 as
    in :func:`sine`.

    Args:
        frequency (float): fundamental, Hz, in ``(0, sample_rate / 2)``.
        seconds (float): duration; ``round(seconds * sample_rate)`` samples.
        sample_rate (float): Hz.
        n_harmonics (int): number of partials, ``>= 1``.
        amplitude (float): peak of the result, ``>= 0``.
        rolloff (float): spectral slope, ``>= 0``; 1 gives a sawtooth-like ``1/k`` spectrum,
            0 equal partials.
        dtype (torch.dtype): float32 (default) or float64.

    Returns:
        Tensor: ``(round(seconds * sample_rate),)`` samples on the CPU.

    Raises:
        PvrnnError: when an argument is out of range.

    Example:
        >>> tone = pvrnn.examples.harmonic(220.0, seconds=1.0, n_harmonics=8)
    """
    frequency, rate, n = _check_tone(frequency, seconds, sample_rate, amplitude, 0.0)
    n_harmonics = check_int("n_harmonics", n_harmonics, low=1)
    rolloff = check_positive("rolloff", rolloff, allow_zero=True)
    _check_dtype(dtype)
    top = min(n_harmonics, math.ceil(rate / 2 / frequency) - 1)
    tone = torch.zeros(n, dtype=torch.float64)
    for k in range(1, top + 1):  # a few partials; each one vectorized over time
        tone += k**-rolloff * torch.sin(2 * math.pi * _cycles(k * frequency, rate, n))
    peak = tone.abs().max()
    tone = tone * (amplitude / peak) if peak > 0 else tone
    return tone.to(dtype)


def _check_dtype(dtype: torch.dtype) -> None:
    if dtype not in (torch.float32, torch.float64):
        raise fail("dtype", dtype, "torch.float32 or torch.float64")
