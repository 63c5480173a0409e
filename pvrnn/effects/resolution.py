"""The stretch's time-frequency resolution, chosen from the sound: ``time_stretch(n_fft="auto")``.

One window cannot serve every sound. Partials a few Hz apart (a piano's chords and low notes, a
dense texture) need a long window to be told apart; partials that move (vibrato, glides) and
clicks need a short one, or each frame smears them. Measured against the analytic ideal and the
recordings in ``benchmarks/bench_transforms.py``, a 220 Hz tone with vibrato shortened to half
is -36.7 dB from its ideal at n_fft 1024 and -21.6 dB at 4096; the bundled piano phrase doubled
is -9.4 dB from its proxy at 1024 and -18.8 dB at 4096.

The rule is the one :class:`pvrnn.SoundModelConfig` uses for its FFT size, with the spacing of
the partials in place of the pitch (so that chords count): **the shortest window that puts
four bins between neighbouring partials**, where the spacing is the distance that a quarter of the
partials' power has its nearest neighbour closer than (the power-weighted first quartile of the
distances between neighbouring spectral peaks, measured with the longest window on (excerpts
of) the sound): partials closer than a window's main lobe (4 bins for Hann) share one region of
the phase locking and beat, and once a quarter of the power is in such pairs a longer window
pays. A sound with no neighbouring partials (a single sinusoid, clicks) gets the shortest
window; silence gets the middle one. The windows range from ~23 to ~93 ms (1024 to 4096 samples
at 44.1 kHz), the hop is a quarter of the window but at most ~11.6 ms (512 samples at 44.1 kHz).
"""

from __future__ import annotations

import math

import torch

__all__ = ["choose_resolution", "choose_resolution_from_reader", "partial_spacing"]

#: Window durations (seconds) the choice ranges over, and the longest hop.
SHORTEST, LONGEST, LONGEST_HOP = 0.0232, 0.0929, 0.0116
#: Bins wanted between neighbouring partials (as SoundModelConfig's automatic n_fft).
BINS_BETWEEN = 4.0
#: Peaks count from this many dB below their frame's loudest bin, in frames within this many dB
#: of the loudest frame: the partials that are heard, not the noise floor between them.
PEAK_RANGE_DB, FRAME_RANGE_DB = 40.0, 40.0
#: The spacing is this weighted quantile of the neighbour distances: a window is long enough
#: when at most a quarter of the partials' power is in pairs closer than BINS_BETWEEN bins.
QUANTILE = 0.25
#: At most this much of a long sound is measured: this many excerpts of EXCERPT_SECONDS.
EXCERPTS, EXCERPT_SECONDS = 6, 10.0


def _power_of_two(samples: float) -> int:
    return 2 ** round(math.log2(samples))


def _starts(length: int, sample_rate: float) -> list[int] | None:
    """Where the excerpts of a sound of ``length`` samples begin; None: measure it whole."""
    n = int(EXCERPT_SECONDS * sample_rate)
    if length <= EXCERPTS * n:
        return None
    # in integers: a float32 linspace over an hour of samples lands past the last excerpt
    return [i * (length - n) // (EXCERPTS - 1) for i in range(EXCERPTS)]


def _excerpts(audio: torch.Tensor, sample_rate: float) -> torch.Tensor:
    """``(M, n)`` mono rows: the whole sound, or evenly spread excerpts of a long one."""
    mono = audio.detach().reshape(-1, audio.shape[-1]).to(torch.float32).mean(0)
    starts = _starts(mono.shape[-1], sample_rate)
    if starts is None:
        return mono[None]
    n = int(EXCERPT_SECONDS * sample_rate)
    return torch.stack([mono[s : s + n] for s in starts])


def partial_spacing(rows: torch.Tensor, sample_rate: float, n_fft: int) -> float | None:
    """Distance (Hz) between neighbouring spectral peaks, or None: the power-weighted
    ``QUANTILE`` (a quarter) of all neighbouring pairs' distances.

    Args:
        rows: ``(M, n)`` mono excerpts of one sound, float32.
        sample_rate: Hz.
        n_fft: the analysis window (Hann, hop ``n_fft // 2``).

    A peak is the largest bin within two on each side (so a Hann window's side lobes never
    count) and within ``PEAK_RANGE_DB`` of its frame's loudest bin; its frequency is refined by
    a parabola through the log power of its bin and theirs. Each neighbouring pair is weighted
    by the weaker peak's power. None when no frame has two peaks.
    """
    if rows.shape[-1] < n_fft:
        return None
    spec = torch.stft(rows, n_fft, n_fft // 2, window=torch.hann_window(n_fft, device=rows.device),
                      center=False, return_complex=True).abs().square().transpose(1, 2)
    power = spec.reshape(-1, spec.shape[-1])  # (frames, bins)
    loudest = power.amax(1)
    frames = loudest > loudest.max() * 10 ** (-FRAME_RANGE_DB / 10)
    power = power[frames]
    if power.shape[0] == 0:  # silence: no frame is louder than 0
        return None
    padded = torch.nn.functional.pad(power, (2, 2))
    neighbours = torch.stack([padded[:, i : i + power.shape[1]] for i in (0, 1, 3, 4)]).amax(0)
    audible = power > power.amax(1, keepdim=True) * 10 ** (-PEAK_RANGE_DB / 10)
    peak = (power > neighbours) & audible
    peak[:, 0] = peak[:, -1] = False  # the interpolation below needs both neighbours
    frame, bin_ = peak.nonzero(as_tuple=True)  # row-major: by frame, then by bin
    same = frame[1:] == frame[:-1]
    if not bool(same.any()):
        return None
    # Peak positions to a fraction of a bin: the parabola through the log powers around it.
    a, b, c = (power[frame, bin_ + k].clamp_min(1e-30).log() for k in (-1, 0, 1))
    position = bin_.double() + (0.5 * (a - c) / (a - 2 * b + c).clamp_max(-1e-12)).double()
    gap = (position[1:] - position[:-1])[same] * (sample_rate / n_fft)
    weight = torch.minimum(power[frame[1:], bin_[1:]], power[frame[:-1], bin_[:-1]])[same]
    order = gap.argsort()
    cumulative = weight[order].double().cumsum(0)
    at = torch.searchsorted(cumulative, cumulative[-1] * QUANTILE).clamp(max=gap.shape[0] - 1)
    return float(gap[order][at])


def choose_resolution(audio: torch.Tensor, sample_rate: float) -> tuple[int, int]:
    """``(n_fft, hop_length)`` for stretching ``audio``: the rule of the module docstring.

    Args:
        audio: ``(..., time)`` finite float waveform (channels are mixed; a sound longer than a
            minute is measured on six 10 s excerpts spread over it).
        sample_rate: Hz.

    Returns:
        ``n_fft`` a power of two from ~23 to ~93 ms, ``hop_length`` ``min(n_fft // 4,
        ~11.6 ms)``: (1024, 256), (2048, 512) or (4096, 512) at 44.1 kHz.
    """
    return _choose(_excerpts(audio, sample_rate), sample_rate)


def choose_resolution_from_reader(reader) -> tuple[int, int]:
    """:func:`choose_resolution` for a file being streamed: reads at most the excerpts.

    ``reader`` is a :class:`pvrnn.io.AudioReader` (``frames``, ``sample_rate`` and
    ``blocks(size, start)`` of ``(channels, samples)``); it is left where it was.
    """
    rate = reader.sample_rate
    starts = _starts(reader.frames, rate)
    size = reader.frames if starts is None else int(EXCERPT_SECONDS * rate)
    rows = []
    for start in [0] if starts is None else starts:
        block = next(iter(reader.blocks(size, start)))
        rows.append(block.to(torch.float32).mean(0))
    return _choose(torch.stack(rows), rate)


def _choose(rows: torch.Tensor, sample_rate: float) -> tuple[int, int]:
    low, high = _power_of_two(SHORTEST * sample_rate), _power_of_two(LONGEST * sample_rate)
    hop_cap = _power_of_two(LONGEST_HOP * sample_rate)
    spacing = partial_spacing(rows, sample_rate, high)
    if spacing is None:
        silent = not bool(rows.abs().amax() > 0)
        n_fft = _power_of_two(math.sqrt(low * high)) if silent else low
    else:
        wanted = BINS_BETWEEN * sample_rate / spacing
        n_fft = min(max(2 ** math.ceil(math.log2(wanted)), low), high)
    return n_fft, min(n_fft // 4, hop_cap)
