"""Cross-synthesis: one sound's frequencies driven by another's magnitudes or changes.

Both sounds are analysed by :class:`~pvrnn.PhaseVocoder` into :class:`~pvrnn.Frames`; the
envelope mode uses the spectral envelope of :mod:`pvrnn.dsp.envelope` with the same
pitch-following lifter as formant-preserving :func:`pvrnn.pitch_shift`.
"""

from __future__ import annotations

import torch

from ..dsp.envelope import lifter_samples, spectral_envelope
from ..dsp.frames import Frames
from ..dsp.vocoder import PhaseVocoder
from ..errors import PvrnnError, check_choice, check_positive, fail
from .spectra import check_input, check_stft
from .stretch import time_stretch

__all__ = ["cross_synthesize"]

_MODES = ("spectral", "deltas")
_FITS = ("error", "loop", "trim", "stretch")


def _fit_lengths(
    carrier: torch.Tensor, modulator: torch.Tensor, fit: str, sample_rate: float, n_fft: int,
    hop_length: int, window: str | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    n_c, n_m = carrier.shape[-1], modulator.shape[-1]
    if n_c == n_m:
        return carrier, modulator
    if fit == "error":
        raise PvrnnError(
            f"modulator has {n_m} samples but carrier has {n_c}: expected equal lengths, or "
            f"fit='loop' (repeat or cut the modulator), 'trim' (cut both to the shorter) or "
            f"'stretch' (time-stretch the modulator to the carrier's length)"
        )
    if fit == "trim":
        n = min(n_c, n_m)
        return carrier[..., :n], modulator[..., :n]
    if fit == "loop":
        repeats = -(-n_c // n_m)
        looped = modulator.repeat(*([1] * (modulator.dim() - 1)), repeats)
        return carrier, looped[..., :n_c]
    stretched = time_stretch(modulator, sample_rate, n_c / n_m, n_fft=n_fft,
                             hop_length=hop_length, window=window)
    return carrier, stretched


def cross_synthesize(
    carrier: torch.Tensor,
    modulator: torch.Tensor,
    sample_rate: float,
    *,
    mode: str = "spectral",
    fit: str = "error",
    envelope: bool = False,
    reset_every: float | None = 0.25,
    envelope_lifter: float | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    window: str | torch.Tensor = "hann",
) -> torch.Tensor:
    """Combine two sounds frame by frame: one gives the frequencies, the other the changes.

    Both are analysed by :class:`~pvrnn.PhaseVocoder` into :class:`~pvrnn.Frames`.

    - ``mode="spectral"`` (classic cross-synthesis): the carrier's instantaneous frequencies
      and phases with the modulator's magnitudes. With ``envelope=True`` only the modulator's
      spectral envelope is imposed on the carrier's own fine structure (carrier magnitude
      divided by its envelope, times the modulator's): a talking instrument.
    - ``mode="deltas"``: the carrier driven by the modulator's frame-to-frame changes in
      magnitude and frequency (:meth:`Frames.deltas`, integrated by
      :meth:`Frames.from_deltas` from the carrier's first frame), snapping back to the
      carrier's own frame every ``reset_every`` seconds so the result does not drift away.

    Args:
        carrier (Tensor): ``(..., time)`` float waveform (gives frequencies / the start).
        modulator (Tensor): ``(..., time)`` float waveform, same sample rate; leading dims
            broadcast against the carrier's.
        sample_rate (float): Hz, of both (resample one first if they differ).
        mode (str): ``"spectral"`` or ``"deltas"``.
        fit (str): what to do when the lengths differ: ``"error"`` (default: raise),
            ``"loop"`` (repeat or cut the modulator to the carrier's length), ``"trim"`` (cut
            both to the shorter) or ``"stretch"`` (time-stretch the modulator to the carrier's
            length).
        envelope (bool): spectral mode: impose the modulator's envelope only.
        reset_every (float or None): deltas mode: seconds between reset frames from the
            carrier (default 0.25); ``None`` never resets.
        envelope_lifter (float, optional): cepstral cutoff of the envelopes in seconds.
            ``None`` (default) follows the pitch of both sounds as :func:`pvrnn.pitch_shift`
            does: ``min(1.5 ms, 0.5 / highest median pitch)`` (see
            :func:`pvrnn.dsp.envelope.pitch_lifter`), so neither envelope resolves harmonics.
        n_fft (int): FFT size, even. hop_length (int): hop, ``<= n_fft // 2``.
        window (str or Tensor): any window :class:`pvrnn.PhaseVocoder` accepts (a tensor of
            ``n_fft`` samples, or a name).

    Returns:
        Tensor: ``(..., time)`` with the carrier's length (the shorter one's for ``"trim"``),
        dtype of the inputs, on their device.

    Raises:
        PvrnnError: on bad audio, lengths that differ with ``fit="error"``, inputs on
            different devices, leading dims that do not broadcast, or an unknown mode / fit.

    Example:
        >>> clarinet, rate = pvrnn.examples.load("clarinet")
        >>> piano, _ = pvrnn.examples.load("piano")
        >>> y = pvrnn.cross_synthesize(clarinet, piano, rate, mode="spectral", fit="trim")
    """
    n_fft, hop_length, _ = check_stft(n_fft, hop_length, window)
    mode = check_choice("mode", mode, _MODES)
    fit = check_choice("fit", fit, _FITS)
    carrier = check_input(carrier, n_fft, "carrier")
    modulator = check_input(modulator, n_fft, "modulator")
    if isinstance(sample_rate, (tuple, list)):
        raise fail("sample_rate", sample_rate, "one sample rate for both sounds (resample one "
                   "of them first if they differ)")
    sample_rate = check_positive("sample_rate", sample_rate)
    if carrier.device != modulator.device:
        raise PvrnnError(f"carrier is on {carrier.device} but modulator is on "
                         f"{modulator.device}: expected both on the same device")
    try:
        batch = torch.broadcast_shapes(carrier.shape[:-1], modulator.shape[:-1])
    except RuntimeError as error:
        raise PvrnnError(f"carrier has shape {tuple(carrier.shape)} and modulator "
                         f"{tuple(modulator.shape)}: expected leading dims that broadcast"
                         ) from error
    dtype = torch.promote_types(carrier.dtype, modulator.dtype)
    carrier, modulator = carrier.to(dtype), modulator.to(dtype)
    carrier, modulator = _fit_lengths(carrier, modulator, fit, sample_rate, n_fft, hop_length,
                                      window)
    n = carrier.shape[-1]
    if n < n_fft:
        raise fail("carrier", carrier, f"at least n_fft={n_fft} samples after fit={fit!r}")
    carrier = carrier.expand(*batch, n)
    modulator = modulator.expand(*batch, n)
    pv = PhaseVocoder(n_fft, hop_length, window=window, sample_rate=sample_rate)
    car = pv.analyze(carrier)
    mod = pv.analyze(modulator)
    if mode == "spectral":
        magnitude = mod.magnitude
        if envelope:
            lifter = lifter_samples(envelope_lifter, sample_rate, n_fft, carrier, modulator)
            env_mod = spectral_envelope(mod.magnitude, n_fft, lifter, log=True)
            env_car = spectral_envelope(car.magnitude, n_fft, lifter, log=True)
            magnitude = car.magnitude * torch.exp(env_mod - env_car)
        out = car.replace(magnitude=magnitude)
    else:
        every = None
        resets = None
        if reset_every is not None:
            seconds = check_positive("reset_every", reset_every)
            every = max(1, int(round(seconds * sample_rate / hop_length)))
            resets = car.replace(magnitude=car.magnitude[..., every::every, :],
                                 deviation=car.deviation[..., every::every, :])
            if resets.n_frames == 0:
                every, resets = None, None
        out = Frames.from_deltas(mod.deltas(), car[0], reset_every=every, reset_frames=resets)
    return pv.synthesize(out, length=n)
