"""Measures of generated sound against the recording it was learned from.

A generated sound is a new variation, not a copy: it is compared with the original through
statistics that do not depend on alignment in time.

- :func:`mean_spectrum_distance`: log-spectral distance between the long-term mean spectra
  (timbre). Compare with the recording's own first half against its second half: that is the
  distance natural variation alone gives.
- :func:`consistency`: how far frames are from the magnitudes of the audio synthesized from
  them (spectral convergence, dB). Analysed frames give far below -60 dB; frames whose phase
  does not fit their magnitudes (incoherent partials) give -10 dB and worse.
- :func:`vibrato`: rate (Hz) and extent (cents) of the periodic part of the pitch track.
- :func:`partial_noise`: the level of what lies between the harmonics relative to the
  harmonics themselves, dB, from the mean spectrum and the median f0.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import check_audio, check_int, check_positive, fail
from .pitch import estimate_f0

__all__ = ["mean_spectrum_distance", "consistency", "vibrato", "partial_noise"]

#: Power below the louder spectrum's peak by more than this is floored (dB), so silent bins
#: do not dominate a log-spectral distance.
FLOOR_DB = -80.0


def mean_spectrum(audio: torch.Tensor, n_fft: int = 4096) -> torch.Tensor:
    """Long-term mean power spectrum ``(..., n_fft // 2 + 1)`` (Hann, hop ``n_fft // 4``)."""
    audio = check_audio(audio)
    n_fft = check_int("n_fft", n_fft, low=16)
    if audio.shape[-1] < n_fft:
        raise fail("audio", audio, f"at least n_fft={n_fft} samples")
    batch = audio.shape[:-1]
    window = torch.hann_window(n_fft, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(audio.reshape(-1, audio.shape[-1]), n_fft, n_fft // 4, window=window,
                      center=False, return_complex=True)
    power = spec.abs().square().mean(dim=-1)
    return power.reshape(*batch, power.shape[-1])


def mean_spectrum_distance(
    reference: torch.Tensor, estimate: torch.Tensor, n_fft: int = 4096
) -> torch.Tensor:
    """RMS difference in dB between the mean spectra of two sounds (lengths may differ).

    Both mean power spectra (:func:`mean_spectrum`) are normalised to equal total power (so a
    level difference is not counted as timbre), floored at ``FLOOR_DB`` below the larger peak,
    and compared bin by bin over the full band: ``sqrt(mean_k (10 log10 P_ref - 10 log10
    P_est)^2)``.

    Args:
        reference, estimate: ``(..., time)`` float audio; leading dims broadcast.
        n_fft (int): spectrum size (4096 at 44.1 kHz: 10.8 Hz bins).

    Returns:
        Tensor: ``(...)`` dB; 0 for identical spectra.
    """
    p_ref = mean_spectrum(reference, n_fft)
    p_est = mean_spectrum(estimate, n_fft).to(p_ref.dtype)
    p_ref = p_ref / p_ref.sum(-1, keepdim=True).clamp_min(1e-30)
    p_est = p_est / p_est.sum(-1, keepdim=True).clamp_min(1e-30)
    peak = torch.maximum(p_ref.amax(-1, keepdim=True), p_est.amax(-1, keepdim=True))
    floor = peak * 10.0 ** (FLOOR_DB / 10.0)
    diff = 10 * torch.log10(p_ref.clamp_min(floor)) - 10 * torch.log10(p_est.clamp_min(floor))
    return diff.square().mean(-1).sqrt()


def consistency(frames: Any, audio: torch.Tensor, window: str | torch.Tensor = "hann",
                trim: int = 2) -> torch.Tensor:
    """Spectral convergence (dB) of ``frames``' magnitudes against those of ``audio``.

    ``audio`` is what was synthesized from ``frames``; it is analysed again with the frames'
    settings, and ``20 log10(||M_frames - M_audio|| / ||M_frames||)`` is taken over all bins and
    the frames both have, less ``trim`` at each end (edge effects of padding).

    Args:
        frames (Frames): ``(..., n_frames, n_bins)``.
        audio (Tensor): ``(..., time)``, synthesized from ``frames``.
        window: the analysis window of ``frames`` (name or tensor).
        trim (int): frames left out at each end.

    Returns:
        Tensor: ``(...)`` dB, lower is better.
    """
    from ..dsp.frames import Frames
    from ..dsp.vocoder import PhaseVocoder

    if not isinstance(frames, Frames):
        raise fail("frames", frames, "a pvrnn.Frames")
    audio = check_audio(audio)
    trim = check_int("trim", trim, low=0)
    pv = PhaseVocoder(n_fft=frames.n_fft, hop_length=frames.hop_length,
                      sample_rate=frames.sample_rate, window=window).to(audio.device)
    again = pv.analyze(audio).magnitude
    n = min(again.shape[-2], frames.n_frames) - trim
    if n - trim < 1:
        raise fail("frames", frames, f"more than {2 * trim} frames")
    ref = frames.magnitude[..., trim:n, :].to(torch.float64)
    est = again[..., trim:n, : frames.n_bins].to(torch.float64)
    error = torch.linalg.vector_norm(ref - est, dim=(-2, -1))
    return 20 * torch.log10(error / torch.linalg.vector_norm(ref, dim=(-2, -1)))


def vibrato(
    audio: torch.Tensor, sample_rate: float, hop_length: int = 256,
    rates: tuple[float, float] = (3.0, 12.0), **f0_options: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Vibrato rate (Hz) and extent (+- cents) from the YIN pitch track.

    The pitch track (cents from the median, :func:`estimate_f0`) of the longest voiced
    stretch is detrended (its linear fit removed), Hann-windowed and Fourier transformed
    (zero-padded to 8x); the rate is the strongest component within ``rates``, refined by a
    parabola, and the extent is the amplitude of that component (``sqrt(2)`` times the RMS of
    the detrended track within the band ``rate +- 1.5 Hz``), i.e. a sinusoidal vibrato of
    +-25 cents reads 25.

    Args:
        audio: ``(time,)`` float audio (one sound).
        sample_rate (float): Hz.
        hop_length (int): pitch-track hop, samples.
        rates: the band of vibrato rates searched, Hz.

    Returns:
        tuple: ``(rate, extent)`` as 0-dim tensors; ``nan`` when fewer than two vibrato cycles
        are voiced.
    """
    audio = check_audio(audio)
    if audio.dim() != 1:
        raise fail("audio", audio, "one sound, shape (time,)")
    rate = check_positive("sample_rate", sample_rate)
    # YIN's window averages the pitch over its span: keep it short (~46 ms frames, 23 ms
    # windows) so a fast vibrato is not read smaller than it is.
    f0_options.setdefault("frame_length", 2 ** round(math.log2(0.046 * rate)))
    f0 = estimate_f0(audio, rate, hop_length=hop_length, **f0_options).to(torch.float64)
    voiced = ~torch.isnan(f0)
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    if int(voiced.sum()) < 4:
        return nan, nan
    # the longest run of voiced frames
    index = torch.arange(f0.shape[-1])
    run_start = torch.where(voiced, torch.where(~voiced, index, -1).cummax(0).values + 1, 0)
    lengths = torch.where(voiced, index - run_start + 1, 0)
    end = int(lengths.argmax())
    start = int(run_start[end])
    frame_rate = rate / hop_length
    if (end - start + 1) / frame_rate < 2.0 / rates[0]:
        return nan, nan
    cents = 1200 * torch.log2(f0[start:end + 1] / f0[start:end + 1].median())
    t = torch.arange(cents.shape[0], dtype=torch.float64)
    design = torch.stack([torch.ones_like(t), t], dim=-1)
    coef = torch.linalg.lstsq(design, cents.unsqueeze(-1)).solution
    track = cents - (design @ coef).squeeze(-1)
    n = track.shape[0]
    n_pad = 8 * (1 << max(0, math.ceil(math.log2(n))))
    spectrum = torch.fft.rfft(track * torch.hann_window(n, periodic=False, dtype=torch.float64),
                              n=n_pad).abs()
    freqs = torch.fft.rfftfreq(n_pad, d=1.0 / frame_rate, dtype=torch.float64)
    band = (freqs >= rates[0]) & (freqs <= rates[1])
    if not bool(band.any()):
        return nan, nan
    k = int(torch.where(band, spectrum, -1.0).argmax())
    if 0 < k < spectrum.shape[0] - 1:
        a, b, c = spectrum[k - 1], spectrum[k], spectrum[k + 1]
        offset = 0.5 * (a - c) / (a - 2 * b + c)
        peak_rate = freqs[k] + offset * (freqs[1] - freqs[0])
    else:
        peak_rate = freqs[k]
    full = torch.fft.rfft(track)
    f_full = torch.fft.rfftfreq(n, d=1.0 / frame_rate, dtype=torch.float64)
    near = (f_full - peak_rate).abs() <= 1.5
    band_track = torch.fft.irfft(full * near, n=n)
    extent = math.sqrt(2.0) * band_track.square().mean().sqrt()
    return peak_rate, extent


def partial_noise(audio: torch.Tensor, sample_rate: float, n_fft: int = 4096,
                  max_harmonics: int = 40, f0: float | None = None) -> torch.Tensor:
    """Level between the harmonics relative to the harmonics, dB (lower: cleaner partials).

    From the mean power spectrum (:func:`mean_spectrum`) and the median YIN f0 (or ``f0``):
    the power in bands of width ``f0 / 2`` centred on the harmonics ``h * f0`` and on the
    midpoints ``(h + 1/2) * f0``, ``h = 1 .. max_harmonics`` (up to Nyquist), summed;
    ``10 log10(between / on)``.

    Returns:
        Tensor: 0-dim dB; ``nan`` for an unpitched sound.
    """
    audio = check_audio(audio)
    rate = check_positive("sample_rate", sample_rate)
    if f0 is None:
        f0 = float(estimate_f0(audio, rate).nanmedian())
    if not math.isfinite(f0):
        return torch.tensor(float("nan"), dtype=torch.float64)
    power = mean_spectrum(audio, n_fft).to(torch.float64)
    freqs = torch.arange(power.shape[-1], dtype=torch.float64) * (rate / n_fft)
    position = freqs / f0  # in harmonics
    nearest = position.round()
    in_range = (position >= 0.75) & (position <= max_harmonics + 0.75) & (freqs < rate / 2)
    on = ((position - nearest).abs() <= 0.25) & in_range
    between = ((position - nearest).abs() > 0.25) & in_range
    return 10 * torch.log10((power * between).sum(-1) / (power * on).sum(-1))
