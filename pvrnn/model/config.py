"""What a :class:`~pvrnn.SoundModel` is: its settings (:class:`SoundModelConfig`) and presets.

The configuration checks only what no constructor checks: the analysis settings and the
training defaults. The codec's and the network's settings are checked by the same functions
their constructors call (:func:`~pvrnn.model.codec.check_codec_settings`,
:func:`~pvrnn.model.network.check_network_settings`), so each rule lives in one place.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

from ..errors import check_choice, check_int, check_positive, fail
from .codec import check_codec_settings
from .dft import check_representation
from .network import check_network_settings

__all__ = ["SoundModelConfig", "PRESETS", "OPTIMIZERS", "TRAINING_FIELDS", "choose_n_fft",
           "auto_validation"]

OPTIMIZERS = ("adagrad", "adam")

#: The fields that :meth:`SoundModel.fit` may override for one run (and that a resumed run
#: must repeat).
TRAINING_FIELDS = ("seq_length", "batch_size", "optimizer", "lr", "clip", "validation")


@dataclass
class SoundModelConfig:
    """What a :class:`SoundModel` is: analysis, codec and network settings, training defaults.

    The defaults learn a real instrument, full band: every bin up to Nyquist, log magnitudes,
    a resolution chosen for the sound, a BPTT window of about a second (long enough for
    vibrato and tremolo), a bottlenecked 2x256 LSTM trained with Adam. ``None`` marks a
    setting chosen from the first training sound when :meth:`SoundModel.fit` starts
    (:meth:`resolve`); the presets (:data:`PRESETS`) keep the sound-rnn blog's settings.

    Analysis:
        n_fft (int, optional): FFT size of the phase vocoder, samples. ``None``: from the
            sound's pitch, see :meth:`resolve` (2048 at 44.1 kHz for most instruments).
        hop_length (int, optional): samples between frames; ``None``: ``n_fft // 4``.
        window (str): analysis window name (see :class:`~pvrnn.PhaseVocoder`).

    Codec (see :class:`~pvrnn.FrameCodec`):
        n_partials (int, optional): lowest bins modelled, at most ``n_fft // 2 + 1``; the rest
            are silent in generated sound. ``None``: every bin (full band).
        mode (str): ``"absolute"`` (each frame; default) or ``"delta"`` (frame-to-frame
            changes, as sound-rnn: drifts without resets).
        magnitude (str): ``"log"`` (default: level errors are relative, quiet partials count)
            or ``"linear"`` (as sound-rnn).

    Representation:
        representation (str): ``"pv"`` (magnitude and instantaneous frequency per bin, the
            :class:`~pvrnn.FrameCodec`; default) or ``"dft"`` (GRUV's frames: real and
            imaginary part per bin, :class:`~pvrnn.model.dft.DFTCodec`; ``mode="absolute"``;
            generated frames carry their phase). With ``loss="mse"`` it is GRUV's regression.

    Network (see :class:`~pvrnn.SpectralRNN`):
        hidden_size, num_layers, n_components, cell (``"lstm"``/``"gru"``/``"tcn"``), dropout,
        loss (``"mdn"``/``"mse"``), bottleneck (input embedding and low-rank head size, or
        ``None`` for none).

    Training defaults (each overridable in :meth:`SoundModel.fit`, but ``input_noise``):
        input_noise (float): standard deviation (in the codec's normalised feature units) of
            Gaussian noise added to the network's inputs while training, so that it learns to
            continue from frames that are not exactly the recording's, as its own samples are
            in generation (exposure bias). 0.3 by default; 0 in the presets. Measured on the
            bundled cello: mean-spectrum distance 2.11 -> 1.53 dB, vibrato extent 1.5 -> 5.4
            cents (original 6.3), consistency -13 -> -18 dB.
        epochs (int): passes over the training frames.
        seq_length (int, optional): frames per truncated-BPTT window; ``None``: about
            :data:`SEQ_SECONDS` of frames.
        batch_size (int): parallel streams each training stretch is cut into.
        optimizer (str): ``"adam"`` (default) or ``"adagrad"`` (sound-rnn's).
        lr (float): learning rate.
        clip (float): maximum gradient norm.
        validation (float, optional): held-out fraction in ``[0, 0.5]``: of the sounds when
            there are several (whole sounds), else of the one sound's frames (an interior
            stretch); the weights of the best held-out epoch are kept. ``None`` (default):
            :data:`AUTO_VALIDATION` of the sounds when there are at least
            :data:`AUTO_VALIDATION_SOUNDS`, else nothing held out and the last epoch kept: the
            held-out likelihood of one note is a poor guide to what is generated from it (it
            rises as the model sharpens while the sound improves: on the bundled clarinet it
            was best at epoch 8 of 150, whose generated frames had a consistency of -12 dB
            against -41 dB for the last epoch's).

    Generation:
        prime_seconds (float): how much of the beginning of the training sound primes the
            network before generating (and is stored in the model file for that).
    """

    n_fft: int | None = None
    hop_length: int | None = None
    window: str = "hann"
    n_partials: int | None = None
    mode: str = "absolute"
    magnitude: str = "log"
    representation: str = "pv"
    hidden_size: int = 256
    num_layers: int = 2
    n_components: int = 1
    cell: str = "lstm"
    dropout: float = 0.0
    loss: str = "mdn"
    bottleneck: int | None = 128
    epochs: int = 150
    seq_length: int | None = None
    batch_size: int = 8
    optimizer: str = "adam"
    lr: float = 2e-3
    clip: float = 5.0
    validation: float | None = None
    input_noise: float = 0.3
    prime_seconds: float = 0.5

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> SoundModelConfig:
        """Check every field (normalising ints/floats); raise :class:`PvrnnError` naming the
        first bad one. Returns ``self``."""
        if self.n_fft is not None:
            self.n_fft = check_int("n_fft", self.n_fft, low=4)
        if self.hop_length is not None:
            high = None if self.n_fft is None else self.n_fft
            self.hop_length = check_int("hop_length", self.hop_length, low=1, high=high)
        if not isinstance(self.window, str):
            raise fail("window", self.window, "a window name such as 'hann'")
        partials = 1 if self.n_partials is None else self.n_partials
        for key, value in check_codec_settings(partials, self.mode, self.magnitude).items():
            if key != "n_partials" or self.n_partials is not None:
                setattr(self, key, value)
        if self.n_partials is not None and self.n_fft is not None and (
                self.n_partials > self.n_fft // 2 + 1):
            raise fail("n_partials", self.n_partials,
                       f"at most n_fft // 2 + 1 = {self.n_fft // 2 + 1} bins")
        self.representation = check_representation(self.representation, self.mode)
        for key, value in check_network_settings(
            self.hidden_size, self.num_layers, self.n_components, self.cell, self.dropout,
            self.loss, self.bottleneck, self.input_noise,
        ).items():
            setattr(self, key, value)
        self.epochs = check_int("epochs", self.epochs, low=1)
        if self.seq_length is not None:
            self.seq_length = check_int("seq_length", self.seq_length, low=1)
        self.batch_size = check_int("batch_size", self.batch_size, low=1)
        self.optimizer = check_choice("optimizer", self.optimizer, OPTIMIZERS)
        self.lr = check_positive("lr", self.lr)
        self.clip = check_positive("clip", self.clip)
        if self.validation is not None:
            self.validation = _check_validation(self.validation)
        self.prime_seconds = check_positive("prime_seconds", self.prime_seconds)
        return self

    @property
    def resolved(self) -> bool:
        """Whether every setting is concrete (none is left to :meth:`resolve`)."""
        return None not in (self.n_fft, self.hop_length, self.n_partials, self.seq_length)

    def resolve(self, audio: Any = None, sample_rate: float | None = None) -> SoundModelConfig:
        """A copy with the automatic (``None``) settings chosen for a sound.

        - ``n_fft``: four bins between neighbouring harmonics, so that a Hann window's main
          lobe (four bins wide) resolves them: the smallest power of two at least
          ``4 * sample_rate / f0``, with ``f0`` the median YIN pitch of ``audio`` (when at
          least a fifth of its frames are voiced), kept within :data:`N_FFT_RANGE` seconds
          (2048-8192 samples at 44.1 kHz: at most ~10 ms time resolution lost for a high
          note, and the cost of a second of sound stays about constant since frames per
          second fall as features per frame grow). Unpitched sounds, or no ``audio``: the
          lower end (46 ms).
        - ``hop_length``: ``n_fft // 4`` (75 % overlap, the phase vocoder's usual).
        - ``n_partials``: every bin, ``n_fft // 2 + 1``.
        - ``seq_length``: :data:`SEQ_SECONDS` of frames (at least 16), so a BPTT window
          holds several cycles of a 4-8 Hz vibrato or tremolo.

        Args:
            audio (Tensor, optional): ``(time,)`` or ``(..., time)`` (the first item is used).
            sample_rate (float, optional): Hz; needed when any setting is automatic.

        Returns:
            SoundModelConfig: concrete (``resolved``); ``self`` unchanged.
        """
        if self.resolved:
            return self.replace()
        rate = check_positive("sample_rate", sample_rate)
        n_fft = self.n_fft
        if n_fft is None:
            n_fft = choose_n_fft(audio, rate)
        hop = self.hop_length if self.hop_length is not None else max(1, n_fft // 4)
        partials = self.n_partials if self.n_partials is not None else n_fft // 2 + 1
        seq = self.seq_length
        if seq is None:
            seq = max(16, round(SEQ_SECONDS * rate / hop))
        return self.replace(n_fft=n_fft, hop_length=hop, n_partials=partials, seq_length=seq)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a plain dict (what model files store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SoundModelConfig:
        """Build from a dict; unknown keys raise :class:`PvrnnError`."""
        if not isinstance(data, dict):
            raise fail("config", data, "a dict of SoundModelConfig fields")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise fail(unknown[0], data[unknown[0]],
                       "a SoundModelConfig field: one of " + ", ".join(sorted(known)))
        return cls(**data)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> SoundModelConfig:
        """The settings of a :data:`PRESETS` entry, with ``overrides`` (field names)."""
        if not isinstance(name, str) or name not in PRESETS:
            raise fail("preset", name, "one of " + ", ".join(map(repr, PRESETS)))
        return cls.from_dict({**PRESETS[name], **overrides})

    def replace(self, **changes: Any) -> SoundModelConfig:
        """A copy with fields changed (validated); unknown names raise :class:`PvrnnError`."""
        return SoundModelConfig.from_dict({**self.to_dict(), **changes})

    def training_settings(self, **overrides: Any) -> dict[str, Any]:
        """The :data:`TRAINING_FIELDS` of this configuration, with the ``overrides`` that are
        not ``None`` applied and checked (as any field is)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        checked = self.replace(**given)
        return {key: getattr(checked, key) for key in TRAINING_FIELDS}


#: Automatic validation: this fraction of the sounds, held out whole, when there are at least
#: :data:`AUTO_VALIDATION_SOUNDS` sounds.
AUTO_VALIDATION = 0.1
AUTO_VALIDATION_SOUNDS = 3


def auto_validation(n_sounds: int) -> float:
    """The held-out fraction ``validation=None`` stands for, given the number of sounds."""
    return AUTO_VALIDATION if n_sounds >= AUTO_VALIDATION_SOUNDS else 0.0


#: The range of automatic FFT sizes, in seconds (powers of two in samples within it).
N_FFT_RANGE = (2048 / 44100, 8192 / 44100)
#: Automatic truncated-BPTT windows hold about this many seconds of frames.
SEQ_SECONDS = 1.0


def choose_n_fft(audio: Any, sample_rate: float) -> int:
    """The automatic FFT size for a sound (see :meth:`SoundModelConfig.resolve`)."""
    import torch

    from ..metrics.pitch import estimate_f0

    low = 2 ** math.ceil(math.log2(N_FFT_RANGE[0] * sample_rate - 1e-9))
    high = 2 ** math.floor(math.log2(N_FFT_RANGE[1] * sample_rate + 1e-9))
    if audio is None:
        return low
    first = torch.as_tensor(audio).reshape(-1, torch.as_tensor(audio).shape[-1])[0]
    if first.shape[-1] < 4096:
        return low
    fmin = 25.0  # YIN's window must hold two periods of the lowest pitch looked for
    f0 = estimate_f0(first.float(), sample_rate, fmin=fmin, fmax=4000.0,
                     frame_length=2 ** math.ceil(math.log2(2.0 * sample_rate / fmin)))
    voiced = ~torch.isnan(f0)
    if float(voiced.float().mean()) < 0.2:
        return low
    pitch = float(f0[voiced].median())
    wanted = 2 ** math.ceil(math.log2(4.0 * sample_rate / pitch))
    return int(min(max(wanted, low), high))


def _check_validation(value: Any) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0.0 <= value <= 0.5:
        raise fail("validation", value, "a fraction in [0, 0.5]")
    return float(value)


#: The sound-rnn blog's three experiments, as :class:`SoundModelConfig` fields.
#:
#: ==============  ==========  ========  =======  ===  ===  =====  ======
#: preset          n_fft/hop   partials  network  seq  C    batch  epochs
#: ==============  ==========  ========  =======  ===  ===  =====  ======
#: ``"sine"``      512/128     10        1x100    10   1    8      60
#: ``"clarinet"``  512/128     20        2x100    20   3    8      300
#: ``"piano"``     2048/512    20        2x150    20   5    4      300
#: ==============  ==========  ========  =======  ===  ===  =====  ======
#:
#: All three use an LSTM without bottleneck, AdaGrad (lr 0.05, sound-rnn's optimizer),
#: gradient-norm clipping at 5, and the codec's ``mode="absolute"`` with
#: ``magnitude="linear"``; they model the lowest bins only (below 1.7 kHz for the clarinet:
#: a band-limited sound, kept to reproduce the blog; the defaults model the full band).
#: Batch sizes are smaller than char-rnn's so that a few seconds of sound still give streams
#: long enough for truncated BPTT.
#:
#: The codec settings were chosen by measuring generated audio against the original
#: (``benchmarks/bench_model.py --compare-codecs``: each setting trained 200 epochs on the
#: bundled note, 4 variations of 2 s at ``variance_scale=1`` without resets):
#:
#: - *absolute vs delta.* Delta mode (sound-rnn's) integrates the sampled changes, so every
#:   error accumulates: on the clarinet the pitch wandered 7.7 cents on average (absolute:
#:   1.3), the level varied 14 % (absolute: 0.7 %, as the original), and the in-band
#:   log-spectral distance was 6.2 dB (absolute: 5.2); on the piano the pitch wandered by 390
#:   cents (absolute: 12) and the distance was 13.9 dB (absolute: 7.0). On the 440 Hz sine,
#:   delta mode's level drifted 25 % in 3 s, absolute mode's 1 %. Resets (``reset_every``)
#:   bound delta mode's drift (clarinet: 1.9 cents), but absolute mode needs none. Delta mode
#:   stays available (``mode="delta"``).
#: - *linear vs log magnitude.* Held-out NLL cannot be compared across scalings, so the
#:   comparison is on generated audio. With delta mode, log magnitudes diverge (accumulated
#:   log errors become exponential level errors: hundreds of cents and level blow-ups). With
#:   absolute mode the two are close; linear was slightly better on the clarinet (distance
#:   5.21 vs 5.24 dB, spectral flux 0.97 vs 0.86 of the original's) and on the piano (7.0 vs
#:   7.5 dB, flux 1.5 vs 2.1).
_BLOG = dict(optimizer="adagrad", lr=0.05, clip=5.0, bottleneck=None, cell="lstm", dropout=0.0,
             loss="mdn", window="hann", validation=0.1, input_noise=0.0)
PRESETS: dict[str, dict[str, Any]] = {
    "sine": dict(
        n_fft=512, hop_length=128, n_partials=10, hidden_size=100, num_layers=1,
        n_components=1, seq_length=10, mode="absolute", magnitude="linear",
        epochs=60, batch_size=8, **_BLOG,
    ),
    "clarinet": dict(
        n_fft=512, hop_length=128, n_partials=20, hidden_size=100, num_layers=2,
        n_components=3, seq_length=20, mode="absolute", magnitude="linear",
        epochs=300, batch_size=8, **_BLOG,
    ),
    "piano": dict(
        n_fft=2048, hop_length=512, n_partials=20, hidden_size=150, num_layers=2,
        n_components=5, seq_length=20, mode="absolute", magnitude="linear",
        epochs=300, batch_size=4, **_BLOG,
    ),
}
