"""Time-stretch: the phase-locked vocoder engine that pitch-shift also runs on.

Time-stretch is a phase vocoder with identity phase locking and peak-to-peak phase
propagation (Laroche & Dolson, 1999) and transient handling, written as whole-tensor operations
(no Python loops over frames or bins):

1. **Time map** (:mod:`pvrnn.effects.timemap`). Output frame ``j`` sits at output sample
   ``j * hop_length`` and reads the input at ``tau_j``, the inverse of the (possibly
   time-varying) stretch map, whose total is exactly ``round(integral of the factor)`` samples.
   Sharp onsets (clicks, struck notes; :mod:`pvrnn.effects.onsets`) are read at slope 1, so the
   frames around an attack keep their spacing and it is not smeared; the time this costs is
   taken up by the unprotected cells within 0.25 s.
2. **Analysis** at exactly ``tau_j`` (rounded to a sample, silence outside the signal): one real
   FFT per output frame. The window and its time derivative are applied in the frequency
   domain (cosine-sum windows are a few-tap convolution there; :mod:`pvrnn.effects.spectra`),
   which gives the reassigned instantaneous frequency (Auger & Flandrin) without a second FFT
   or unwrapping; it is computed at the spectral peaks only, the bins whose frequency is used.
3. **Peaks** (:mod:`pvrnn.effects.phaselock`). A peak is the largest of its 2 neighbours on
   each side; each bin belongs to the nearest peak (one cumsum of peak ranks, then two
   gathers).
4. **Phase.** Each peak is rotated by ``psi``, the phase the output has gained over the input.
   It continues the rotation of the peak that owned the same bin in the previous frame:
   ``psi_j = psi_{j-1}[parent] + (hop_length - (tau_j - tau_{j-1})) * (w_parent + w_j) / 2``,
   ``w`` the peaks' frequencies. These chains are summed by pointer doubling (``log2`` of the
   block length rounds of gathers) in float64 and wrapped. At onsets the bins that rose by
   3 dB restart at 0 (they take their analysis phases); partials sounding through keep going.
5. **Identity phase locking and synthesis.** The output spectrum is the analysis spectrum times
   the rotation of each bin's peak, so the relative phases around each peak -- the shape of each
   partial -- are those of the input (no phasiness); inverse FFT and weighted overlap-add,
   normalised by the window-square sum (:mod:`pvrnn.dsp.ola`). Linked channels share one
   rotation per bin, so their phase differences (the stereo image) are kept.

Everything runs in the streaming engine (:mod:`pvrnn.effects.engine`): the offline function
feeds it the input in blocks, :class:`pvrnn.Stretcher` feeds it whatever arrives, and both get
the same result, in bounded memory; rotations, frequencies and magnitudes of the last frame
are carried from block to block.
"""

from __future__ import annotations

import numbers
import sys
from typing import Any, Callable

import torch

from ..dsp.windows import Window
from ..errors import check_positive, fail
from .engine import StretchEngine
from .onsets import detect_onsets
from .resolution import choose_resolution
from .spectra import check_fraction, check_input, check_stft
from .timemap import Factor, factor_knots, flatten_curve

__all__ = ["time_stretch", "detect_onsets", "stretch_engine", "run_engine", "FEED_SAMPLES"]

#: Samples per item fed to the engine at a time by the offline functions (6 s at 44.1 kHz:
#: each feed costs a few hundred small tensor operations, so fewer are faster).
FEED_SAMPLES = 1 << 18


def _progress_bar(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm  # text bars on stderr: no widget warnings in notebooks

    return tqdm(total=total, desc=desc, unit="sample", unit_scale=True, file=sys.stderr,
                leave=False)


def run_engine(engine: Any, audio: torch.Tensor, progress: bool = False,
               desc: str = "stretch") -> torch.Tensor:
    """Feed ``audio`` ``(B, n)`` to ``engine`` (anything with ``feed(block)`` and ``finish()``,
    a :class:`StretchEngine` or a pitch stream) in blocks of ``FEED_SAMPLES``; the whole
    output.

    The working memory is the engine's (bounded) plus the output.
    """
    pieces = []
    bar = _progress_bar(progress, audio.shape[-1], desc)
    for i in range(0, audio.shape[-1], FEED_SAMPLES):  # blocks of time: bounded memory
        block = audio[:, i : i + FEED_SAMPLES]
        pieces.append(engine.feed(block))
        if bar is not None:
            bar.update(block.shape[-1])
    pieces.append(engine.finish())
    if bar is not None:
        bar.close()
    return torch.cat(pieces, dim=1)


def stretch_engine(
    audio: torch.Tensor,
    sample_rate: float,
    factor: Factor,
    *,
    n_fft: int,
    hop_length: int,
    window: Window,
    transients: bool,
    onset_threshold: float,
    gain: Callable[[torch.Tensor], torch.Tensor] | None = None,
    link_channels: bool = False,
    protect_onsets: bool = True,
    progress: bool = False,
    desc: str = "stretch",
) -> torch.Tensor:
    """The phase-locked vocoder on ``audio`` ``(B, n)`` (validated), all at once.

    ``factor`` is a number, a callable of time or a flattened curve ``(1 or B, G)``;
    ``gain(magnitude (B, nb, K)) -> (B, nb, K)`` optionally rescales each output bin.
    ``protect_onsets=False`` reads sharp onsets at the requested slope too (they still reset
    their phases): pitch shifting resamples the whole result, so an onset read at slope 1
    would come out moved and rescaled in time.
    """
    b, n = audio.shape
    knots = factor
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real):
        knots = factor_knots(factor, n, hop_length, sample_rate, torch.Size([b]), audio.device)
        if link_channels and knots.shape[0] > 1 and not bool((knots == knots[:1]).all()):
            raise fail("factor", "a batch of curves", "one curve for linked channels (they "
                       "share one time map)")
    else:
        out_len = int(round(n * float(factor)))
        if out_len < 1:
            raise fail("factor", factor, f"a stretch leaving at least one sample (the output "
                       f"would have {out_len} of the input's {n})")
    engine = StretchEngine(
        b, sample_rate, knots, n_fft=n_fft, hop=hop_length, window=window,
        transients=transients, onset_threshold=onset_threshold, gain=gain,
        link_channels=link_channels, protect=protect_onsets, dtype=audio.dtype,
        device=audio.device, length=n,
    )
    return run_engine(engine, audio, progress, desc)


def _automatic(
    n_fft: str, audio: Any, sample_rate: float, factor: Factor, window: Any
) -> tuple[int, int, torch.Tensor]:
    """``n_fft="auto"``: the settings :func:`~pvrnn.effects.resolution.choose_resolution`
    picks for ``audio`` (checked here), after refusing what cannot go with them."""
    if n_fft != "auto":
        raise fail("n_fft", n_fft, "an even number of samples (e.g. 2048) or 'auto'")
    if not isinstance(window, str):
        raise fail("window", window, "a window name with n_fft='auto' (a tensor fixes n_fft)")
    if not (isinstance(factor, numbers.Real) or callable(factor)):
        raise fail("factor", factor, "a number or a callable with n_fft='auto' (a curve of "
                   "frames depends on the hop the choice makes)")
    audio = check_input(audio, 1)
    n, hop = choose_resolution(audio, sample_rate)
    while n > audio.shape[-1] and n > 16:  # a short sound: the longest window it holds
        n //= 2
        hop = max(1, min(hop, n // 4))
    return n, hop, audio


def time_stretch(
    audio: torch.Tensor,
    sample_rate: float,
    factor: Factor,
    *,
    n_fft: int | str = 2048,
    hop_length: int | None = None,
    window: str | torch.Tensor = "hann",
    transients: bool = True,
    onset_threshold: float = 0.4,
    link_channels: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """Change the duration of a sound without changing its pitch.

    ``factor`` is **output duration / input duration**: 2.0 makes the sound twice as long
    (half speed), 0.5 twice as short. This is the inverse of librosa's and Rubber Band's
    ``rate`` (``librosa.effects.time_stretch(y, rate=0.5)`` is ``factor=2.0`` here).

    A phase vocoder with identity phase locking and peak-to-peak phase propagation (Laroche
    & Dolson) keeps partials coherent (no phasiness), also under vibrato and glides. At
    onsets (see :func:`detect_onsets`) the bins that rose take their analysis phases, and
    sharp onsets (at least half the active bins rising: clicks, struck notes) are stretched at
    slope 1, so attacks stay sharp while the sound around them takes up the stretch. Phase is
    accumulated in float64, so long stretches keep their pitch. See the module docstring.

    Args:
        audio (Tensor): ``(..., time)`` float32 or float64 waveform, at least ``n_fft``
            samples, finite. Leading dims (batch, channels) are processed together.
        sample_rate (float): Hz; turns the times given to a callable ``factor`` into seconds.
        factor (float, Tensor or callable): a positive number; or a curve of one positive
            value per analysis frame, ``(..., 1 + time // hop_length)`` (frames ``hop_length``
            apart, linear in between; leading dims broadcast against ``audio``'s, and every
            item must get the same output length); or a callable taking the frame times in
            seconds (a float64 tensor) and returning such a curve.
        n_fft (int or str): FFT size, even; 2048 (46 ms at 44.1 kHz) resolves partials 21.5 Hz
            apart. ``"auto"``: chosen from the sound, the shortest window that puts 4 bins
            between neighbouring partials, from 23 to 93 ms (1024 for a tone with vibrato or
            a glide, 4096 for piano chords or a dense texture; see
            :mod:`pvrnn.effects.resolution`), with its hop; then ``factor`` cannot be a curve
            of frames, and ``window`` must be a name.
        hop_length (int, optional): output samples between synthesis frames,
            ``<= n_fft // 2``; also the spacing of the ``factor`` curve and of the onset
            detector. Default 512 (with ``n_fft="auto"``: chosen with it).
        window (str or Tensor): ``"hann"`` (default), ``"hamming"``, ``"blackman"``,
            ``"rectangular"`` (``"boxcar"``) or a tensor of ``n_fft`` samples: any window
            :class:`pvrnn.PhaseVocoder` accepts (:mod:`pvrnn.dsp.windows`). The rectangular
            window has no time derivative inside the frame, so frequencies are not reassigned
            (each bin keeps its centre: partials between bins drift by a few cents).
        transients (bool): detect onsets and keep them sharp (default ``True``).
        onset_threshold (float): fraction of active bins in ``(0, 1]`` that must rise by 3 dB
            for a frame to count as an onset (default 0.4; steady noise, vibrato and sweeps
            score under 0.1, legato note changes 0.3 to 0.4, clicks and struck notes more).
        link_channels (bool): the leading items are channels of one sound (stereo): they
            share one time map, with onsets found on their mix, so they stay aligned, and one
            phase rotation per bin (peaks and frequencies from their summed power), so the
            phase difference between channels (the stereo image) is kept.
            Default ``False``: every item is stretched on its own.
        progress (bool): show a progress bar on stderr.

    Returns:
        Tensor: ``(..., round(time * factor))`` (for a curve: the rounded integral of the
        factor over the input), dtype and device of ``audio``. ``factor=1.0`` returns a copy
        of the input.

    Raises:
        PvrnnError: when ``audio`` is not finite float audio of at least ``n_fft`` samples,
            ``factor`` is not positive and finite (or a curve of the wrong length), or a
            setting is out of range.

    Example:
        >>> audio, rate = pvrnn.examples.load("clarinet")
        >>> slow = pvrnn.time_stretch(audio, rate, 2.0)          # twice as long, same pitch
        >>> ramp = pvrnn.time_stretch(audio, rate, lambda t: 1 + t)  # slowing down over time
    """
    sample_rate = check_positive("sample_rate", sample_rate)
    if isinstance(n_fft, str):
        n_fft, chosen_hop, audio = _automatic(n_fft, audio, sample_rate, factor, window)
        hop_length = chosen_hop if hop_length is None else hop_length
    n_fft, hop_length, resolved = check_stft(n_fft, 512 if hop_length is None else hop_length,
                                             window)
    audio = check_input(audio, n_fft)
    onset_threshold = check_fraction("onset_threshold", onset_threshold)
    if isinstance(factor, numbers.Real) and not isinstance(factor, bool):
        if check_positive("factor", factor) == 1.0:
            return audio.clone()
    batch, n = audio.shape[:-1], audio.shape[-1]
    flat = audio.reshape(-1, n)
    if not isinstance(factor, numbers.Real) and not callable(factor):
        factor = flatten_curve(factor, batch, n, hop_length)
    out = stretch_engine(
        flat, sample_rate, factor, n_fft=n_fft, hop_length=hop_length, window=resolved,
        transients=bool(transients), onset_threshold=onset_threshold,
        link_channels=bool(link_channels), progress=progress,
    )
    return out.reshape(*batch, out.shape[-1])
