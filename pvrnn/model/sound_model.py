"""The whole instrument: analysis, codec, network, training, generation and model files.

A :class:`SoundModel` learns the phase-vocoder frames of one or more sounds and generates new
ones: ``fit`` analyses the sources, fits a :class:`~pvrnn.FrameCodec`, trains a
:class:`~pvrnn.SpectralRNN` by truncated back-propagation through time, and keeps a few
reference frames of each sound (its beginning for priming, its middle for resets);
``generate`` primes the network on the reference (or given) frames, samples new frames one
at a time, decodes and resynthesizes them. :class:`SoundModelConfig` says *what the model
is*; presets reproduce the three experiments of the sound-rnn blog post.

Model files are one ``torch.save`` dict of tensors and plain containers (read with
``torch.load(weights_only=True)``), written atomically (temporary file, then ``os.replace``);
the checkpoint that ``fit(checkpoint=...)`` writes every epoch is the same format.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import torch

from ..dsp.frames import Frames
from ..dsp.vocoder import PhaseVocoder
from ..errors import PvrnnError, check_choice, check_int, check_positive, fail
from .codec import FrameCodec
from .mixture import _gumbel
from .network import CELLS, LOSSES, SpectralRNN

__all__ = ["SoundModel", "SoundModelConfig", "PRESETS", "FORMAT_VERSION"]

#: Version of the model-file layout written by :meth:`SoundModel.save`.
FORMAT_VERSION = 1

OPTIMIZERS = ("adagrad", "adam")
COMPONENTS = ("sample", "most_likely")

#: Frames of random draws made at once during generation (bounds memory for long outputs).
_CHUNK = 256
#: At most this many frames either side of a sound's middle are kept for resets.
_MAX_RESET_HALF_WIDTH = 512

Source = Union[str, "os.PathLike[str]", torch.Tensor, Frames]
VarianceScale = Union[float, torch.Tensor, Callable[[torch.Tensor], Any]]


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
@dataclass
class SoundModelConfig:
    """What a :class:`SoundModel` is: analysis, codec and network settings, training defaults.

    Analysis:
        n_fft (int): FFT size of the phase vocoder, samples (512 at 44.1 kHz is 11.6 ms).
        hop_length (int): samples between frames (128 at 44.1 kHz: 345 frames per second).
        window (str): analysis window name (see :class:`~pvrnn.PhaseVocoder`).

    Codec (see :class:`~pvrnn.FrameCodec`):
        n_partials (int): lowest bins modelled; the rest are silent in generated sound.
        mode (str): ``"absolute"`` (each frame; default, see :meth:`SoundModel.from_preset`)
            or ``"delta"`` (frame-to-frame changes, as sound-rnn: drifts without resets).
        magnitude (str): ``"linear"`` (as sound-rnn; default) or ``"log"``.

    Network (see :class:`~pvrnn.SpectralRNN`):
        hidden_size, num_layers, n_components, cell (``"lstm"``/``"gru"``), dropout,
        loss (``"mdn"``/``"mse"``).

    Training defaults (each overridable in :meth:`SoundModel.fit`):
        epochs (int): passes over the training frames.
        seq_length (int): frames per truncated-BPTT window.
        batch_size (int): parallel streams each sound is cut into.
        optimizer (str): ``"adagrad"`` (sound-rnn's) or ``"adam"``.
        lr (float): learning rate.
        clip (float): maximum gradient norm.
        validation (float): fraction of each sound (its tail) held out, in ``[0, 0.5]``.

    Generation:
        prime_seconds (float): how much of the beginning of the training sound primes the
            network before generating (and is stored in the model file for that).
    """

    n_fft: int = 512
    hop_length: int = 128
    window: str = "hann"
    n_partials: int = 20
    mode: str = "absolute"
    magnitude: str = "linear"
    hidden_size: int = 100
    num_layers: int = 2
    n_components: int = 3
    cell: str = "lstm"
    dropout: float = 0.0
    loss: str = "mdn"
    epochs: int = 100
    seq_length: int = 20
    batch_size: int = 16
    optimizer: str = "adagrad"
    lr: float = 0.05
    clip: float = 5.0
    validation: float = 0.1
    prime_seconds: float = 0.5

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> SoundModelConfig:
        """Check every field; raise :class:`PvrnnError` naming the first bad one."""
        self.n_fft = check_int("n_fft", self.n_fft, low=4)
        self.hop_length = check_int("hop_length", self.hop_length, low=1, high=self.n_fft)
        if not isinstance(self.window, str):
            raise fail("window", self.window, "a window name such as 'hann'")
        self.n_partials = check_int("n_partials", self.n_partials, low=1,
                                    high=self.n_fft // 2 + 1)
        self.mode = check_choice("mode", self.mode, ("delta", "absolute"))
        self.magnitude = check_choice("magnitude", self.magnitude, ("linear", "log"))
        self.hidden_size = check_int("hidden_size", self.hidden_size, low=1)
        self.num_layers = check_int("num_layers", self.num_layers, low=1)
        self.n_components = check_int("n_components", self.n_components, low=1)
        self.cell = check_choice("cell", self.cell, CELLS)
        self.loss = check_choice("loss", self.loss, LOSSES)
        if self.loss == "mse" and self.n_components != 1:
            raise fail("n_components", self.n_components, "1 with loss='mse'")
        dropout = check_positive("dropout", self.dropout, allow_zero=True)
        if dropout >= 1:
            raise fail("dropout", self.dropout, "a number in [0, 1)")
        self.dropout = dropout
        self.epochs = check_int("epochs", self.epochs, low=1)
        self.seq_length = check_int("seq_length", self.seq_length, low=1)
        self.batch_size = check_int("batch_size", self.batch_size, low=1)
        self.optimizer = check_choice("optimizer", self.optimizer, OPTIMIZERS)
        self.lr = check_positive("lr", self.lr)
        self.clip = check_positive("clip", self.clip)
        self.validation = _check_validation(self.validation)
        self.prime_seconds = check_positive("prime_seconds", self.prime_seconds)
        return self

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

    def replace(self, **changes: Any) -> SoundModelConfig:
        """A copy with fields changed (validated); unknown names raise :class:`PvrnnError`."""
        data = self.to_dict()
        data.update(changes)
        return SoundModelConfig.from_dict(data)


def _check_validation(value: Any) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0.0 <= value <= 0.5:
        raise fail("validation", value, "a fraction in [0, 0.5]")
    return float(value)


#: The blog's three experiments. ``mode``/``magnitude`` were chosen by measurement: see
#: :meth:`SoundModel.from_preset`.
PRESETS: dict[str, dict[str, Any]] = {
    "sine": dict(
        n_fft=512, hop_length=128, n_partials=10, hidden_size=100, num_layers=1,
        n_components=1, seq_length=10, mode="absolute", magnitude="linear",
        epochs=60, batch_size=8, lr=0.05,
    ),
    "clarinet": dict(
        n_fft=512, hop_length=128, n_partials=20, hidden_size=100, num_layers=2,
        n_components=3, seq_length=20, mode="absolute", magnitude="linear",
        epochs=300, batch_size=8, lr=0.05,
    ),
    "piano": dict(
        n_fft=2048, hop_length=512, n_partials=20, hidden_size=150, num_layers=2,
        n_components=5, seq_length=20, mode="absolute", magnitude="linear",
        epochs=300, batch_size=4, lr=0.05,
    ),
}


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------
class SoundModel:
    """A learned instrument: phase vocoder + frame codec + recurrent mixture-density network.

    Args:
        config (SoundModelConfig, optional): the settings; default ``SoundModelConfig()``.
        **fields: settings given by name instead (or overriding ``config``'s), e.g.
            ``SoundModel(n_fft=512, hop_length=128, n_partials=20, mode="delta")``.

    Attributes:
        config (SoundModelConfig): the settings.
        codec (FrameCodec): features <-> frames (fitted by :meth:`fit`).
        network (SpectralRNN): the network.
        history (dict): per-epoch training record, see :meth:`fit`.
        sample_rate (float): of the training sounds (``None`` before :meth:`fit`).

    Example:
        >>> model = pvrnn.SoundModel.from_preset("clarinet")
        >>> audio, rate = pvrnn.examples.load("clarinet")
        >>> history = model.fit(audio, sample_rate=rate, epochs=50)
        >>> sound = model.generate(seconds=3.0, variance_scale=0.5, reset_every=0.25)
        >>> model.save("clarinet.pt"); model = pvrnn.SoundModel.load("clarinet.pt")
    """

    def __init__(self, config: SoundModelConfig | None = None, **fields: Any) -> None:
        if config is None:
            config = SoundModelConfig.from_dict(fields)
        elif not isinstance(config, SoundModelConfig):
            raise fail("config", config, "a SoundModelConfig (or settings as keywords)")
        elif fields:
            config = config.replace(**fields)
        self.config = copy.deepcopy(config)
        c = self.config
        self.codec = FrameCodec(n_partials=c.n_partials, mode=c.mode, magnitude=c.magnitude)
        self.network = SpectralRNN(
            self.codec.n_features, hidden_size=c.hidden_size, num_layers=c.num_layers,
            n_components=c.n_components, cell=c.cell, dropout=c.dropout, loss=c.loss,
        )
        self.network.eval()
        self.history: dict[str, list] = _empty_history()
        self._vocoder: PhaseVocoder | None = None
        self._reference: list[dict[str, torch.Tensor]] = []  # per sound: prime + middle frames
        self._training: dict[str, Any] | None = None  # optimizer/RNG state of the last fit

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> SoundModel:
        """A model with the settings of one of the sound-rnn blog's experiments.

        ==============  ==========  ========  =======  ===  ===  =====  ======
        preset          n_fft/hop   partials  network  seq  C    batch  epochs
        ==============  ==========  ========  =======  ===  ===  =====  ======
        ``"sine"``      512/128     10        1x100    10   1    8      60
        ``"clarinet"``  512/128     20        2x100    20   3    8      300
        ``"piano"``     2048/512    20        2x150    20   5    4      300
        ==============  ==========  ========  =======  ===  ===  =====  ======

        All three use an LSTM, AdaGrad (lr 0.05, sound-rnn's optimizer), gradient-norm
        clipping at 5, and the codec's ``mode="absolute"`` with ``magnitude="linear"``.
        Batch sizes are smaller than char-rnn's so that a few seconds of sound still give
        streams long enough for truncated BPTT.

        The codec settings were chosen by measuring generated audio against the original
        (``benchmarks/bench_model.py --compare-codecs``: each setting trained 200 epochs on
        the bundled note, 4 variations of 2 s at ``variance_scale=1`` without resets):

        - *absolute vs delta.* Delta mode (sound-rnn's) integrates the sampled changes, so
          every error accumulates: on the clarinet the pitch wandered 7.7 cents on average
          (absolute: 1.3), the level varied 14 % (absolute: 0.7 %, as the original), and the
          in-band log-spectral distance was 6.2 dB (absolute: 5.2); on the piano the pitch
          wandered by 390 cents (absolute: 12) and the distance was 13.9 dB (absolute: 7.0).
          On the 440 Hz sine, delta mode's level drifted 25 % in 3 s, absolute mode's 1 %.
          Resets (``reset_every``) bound delta mode's drift (clarinet: 1.9 cents), but
          absolute mode needs none. Delta mode stays available (``mode="delta"``).
        - *linear vs log magnitude.* Held-out NLL cannot be compared across scalings, so the
          comparison is on generated audio. With delta mode, log magnitudes diverge
          (accumulated log errors become exponential level errors: hundreds of cents and
          level blow-ups). With absolute mode the two are close; linear was slightly better
          on the clarinet (distance 5.21 vs 5.24 dB, spectral flux 0.97 vs 0.86 of the
          original's) and on the piano (7.0 vs 7.5 dB, flux 1.5 vs 2.1).

        Args:
            name (str): ``"sine"``, ``"clarinet"`` or ``"piano"``.
            **overrides: any :class:`SoundModelConfig` field, e.g. ``hidden_size=50``.

        Raises:
            PvrnnError: for an unknown preset or field.
        """
        if not isinstance(name, str) or name not in PRESETS:
            raise fail("preset", name, "one of " + ", ".join(map(repr, PRESETS)))
        settings = dict(PRESETS[name])
        settings.update(overrides)
        return cls(SoundModelConfig.from_dict(settings))

    # -- properties --------------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        """Whether the model has been trained (or loaded)."""
        return self.codec.fitted and bool(self._reference)

    @property
    def sample_rate(self) -> float | None:
        """Sample rate of the training sounds, Hz (``None`` before :meth:`fit`)."""
        return None if not self.codec.fitted else float(self.codec.analysis["sample_rate"])

    @property
    def device(self) -> torch.device:
        return self.codec.mean.device

    @property
    def frame_rate(self) -> float:
        """Frames per second of sound (``sample_rate / hop_length``)."""
        self._require_fitted()
        return self.sample_rate / self.config.hop_length

    @property
    def vocoder(self) -> PhaseVocoder:
        """The phase vocoder of this model's analysis settings."""
        self._require_fitted()
        if self._vocoder is None or self._vocoder.sample_rate != self.sample_rate:
            self._vocoder = PhaseVocoder(
                n_fft=self.config.n_fft, hop_length=self.config.hop_length,
                window=self.config.window, sample_rate=self.sample_rate,
            )
        return self._vocoder

    @property
    def training_settings(self) -> dict[str, Any] | None:
        """The settings of the last :meth:`fit` (``seq_length``, ``batch_size``, ``optimizer``,
        ``lr``, ``clip``, ``validation``, ``seed``) and its ``epoch``, or ``None``."""
        if self._training is None:
            return None
        return dict(self._training["settings"], epoch=int(self._training["epoch"]))

    def __repr__(self) -> str:
        c = self.config
        state = f"sample_rate={self.sample_rate:g}" if self.fitted else "not fitted"
        return (f"SoundModel(n_fft={c.n_fft}, hop_length={c.hop_length}, "
                f"n_partials={c.n_partials}, mode={c.mode!r}, magnitude={c.magnitude!r}, "
                f"{c.num_layers}x{c.hidden_size} {c.cell}, n_components={c.n_components}, "
                f"{state}, device={self.device})")

    def to(self, device: str | torch.device) -> SoundModel:
        """Move the network, codec and reference frames to ``device`` (``"auto"`` picks CUDA
        when present); returns ``self``."""
        device = resolve_device(device)
        self.network.to(device)
        self.codec.to(device)
        self._reference = [{k: v.to(device) for k, v in r.items()} for r in self._reference]
        return self

    # -----------------------------------------------------------------------------------------
    # training
    # -----------------------------------------------------------------------------------------
    def fit(
        self,
        sources: Source | Sequence[Source],
        sample_rate: float | None = None,
        *,
        epochs: int | None = None,
        seq_length: int | None = None,
        batch_size: int | None = None,
        optimizer: str | None = None,
        lr: float | None = None,
        clip: float | None = None,
        validation: float | None = None,
        device: str | torch.device = "auto",
        checkpoint: str | os.PathLike[str] | None = None,
        resume: bool = False,
        progress: bool = True,
        seed: int = 0,
    ) -> dict[str, list]:
        """Train on one or more sounds by truncated back-propagation through time.

        Each sound is analysed, encoded, and its last ``validation`` fraction held out; the
        rest is cut into ``batch_size`` contiguous streams that are read side by side in
        windows of ``seq_length`` frames, the recurrent state carried from one window to the
        next (detached), as char-rnn and sound-rnn did. The streams of several sounds are
        joined end to end (the state crosses from one sound into the next). The state starts
        from zeros at every epoch. Training always starts from fresh weights (initialised
        from ``seed``) and a freshly fitted codec, unless ``resume``.

        Args:
            sources: one or a list of: audio file paths, audio tensors ``(..., time)`` (every
                leading index is one sound; give ``sample_rate``), or :class:`~pvrnn.Frames`
                analysed with this model's ``n_fft`` / ``hop_length`` (used as given). Of
                audio, the ``ceil(n_fft / (2 hop_length))`` frames at each end, whose windows
                reach into the reflect padding, are left out.
            sample_rate (float, optional): Hz of tensor sources; for paths, resample to it.
            epochs (int): total epochs (a resumed run continues up to this number).
            seq_length (int): frames per BPTT window.
            batch_size (int): parallel streams per sound.
            optimizer (str): ``"adagrad"`` or ``"adam"``.
            lr (float): learning rate.
            clip (float): maximum norm of the gradient (``clip_grad_norm_``).
            validation (float): held-out fraction of each sound, ``[0, 0.5]``; its NLL is
                measured every epoch with the state warmed up on the frames before it.
            device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, a torch.device.
            checkpoint (path, optional): written atomically after every epoch (same format as
                :meth:`save`, plus optimizer and RNG state).
            resume (bool): continue from ``checkpoint`` (which must exist): weights, codec,
                optimizer, RNG state and history are restored and training continues at the
                next epoch, giving the same result as an uninterrupted run.
            progress (bool): show a tqdm bar with the losses on stderr.
            seed (int): seeds initialisation and any dropout; training is deterministic.
            Unset training settings (``None``) take the :class:`SoundModelConfig` defaults.

        Returns:
            dict: the history, also kept as ``model.history``: lists with one entry per
            epoch under ``"epoch"`` (1-based), ``"train_loss"`` (mean per-frame loss:
            negative log-likelihood in nats summed over features, or MSE for
            ``loss="mse"``), ``"val_loss"`` (same on the held-out tails; ``None`` without
            validation), ``"seconds"`` (wall time of the epoch) and ``"frames"`` (training
            frames seen in the epoch).

        Raises:
            PvrnnError: on bad sources or settings, a sound too short for ``batch_size``, a
                checkpoint that does not match, or a NaN/inf loss (the message names the
                epoch; the model and the checkpoint keep the last good epoch).
        """
        c = self.config
        settings = dict(
            seq_length=c.seq_length if seq_length is None else seq_length,
            batch_size=c.batch_size if batch_size is None else batch_size,
            optimizer=c.optimizer if optimizer is None else optimizer,
            lr=c.lr if lr is None else lr,
            clip=c.clip if clip is None else clip,
            validation=c.validation if validation is None else validation,
            seed=seed,
        )
        checked = c.replace(**{k: v for k, v in settings.items() if k != "seed"})
        settings.update(
            seq_length=checked.seq_length, batch_size=checked.batch_size,
            optimizer=checked.optimizer, lr=checked.lr, clip=checked.clip,
            validation=checked.validation, seed=check_int("seed", seed, low=0),
        )
        epochs = check_int("epochs", c.epochs if epochs is None else epochs, low=1)
        if not isinstance(resume, bool):
            raise fail("resume", resume, "True or False")
        if resume and checkpoint is None:
            raise fail("checkpoint", checkpoint, "the checkpoint path to resume from")
        device = resolve_device(device)
        if resume:
            saved = _read_model_file(checkpoint)
            if saved.get("training") is None:
                raise PvrnnError(f"checkpoint={str(checkpoint)!r}: holds no training state "
                                 "to resume from (it was not written by fit)")
            self._restore(saved, checkpoint)
            _check_resume_settings(saved["training"]["settings"], settings, checkpoint)
        frames = self._analyze_sources(sources, sample_rate)
        if resume:
            counts = [f.n_frames for f in frames]
            if counts != list(saved["training"]["frame_counts"]):
                raise PvrnnError(
                    f"sources: {len(counts)} sound(s) of {counts} frames, but "
                    f"checkpoint={str(checkpoint)!r} was trained on "
                    f"{list(saved['training']['frame_counts'])} frames; expected the same sources"
                )
        return _train(self, frames, epochs, settings, device, checkpoint,
                      saved if resume else None, progress)

    # -- sources -----------------------------------------------------------------------------
    def _analyze_sources(self, sources: Any, sample_rate: float | None) -> list[Frames]:
        """Sources -> a list of 2-D Frames ``(n_frames, n_bins)``, one per sound."""
        from ..io import load_audio

        items = list(sources) if isinstance(sources, (list, tuple)) else [sources]
        if not items:
            raise fail("sources", sources, "at least one path, audio tensor or Frames")
        if sample_rate is not None:
            sample_rate = check_positive("sample_rate", sample_rate)
        c = self.config
        result: list[Frames] = []
        rate_seen: float | None = self.sample_rate if self.codec.fitted else None
        for i, item in enumerate(items):
            name = f"sources[{i}]" if len(items) > 1 else "sources"
            if isinstance(item, Frames):
                for key in ("n_fft", "hop_length"):
                    if getattr(item, key) != getattr(c, key):
                        raise fail(f"{name}.{key}", getattr(item, key),
                                   f"{getattr(c, key)} (the model's {key})")
                frames = item
            else:
                if isinstance(item, (str, os.PathLike)):
                    audio, rate = load_audio(item, sample_rate=sample_rate)
                elif isinstance(item, torch.Tensor) or type(item).__module__ == "numpy":
                    if sample_rate is None:
                        raise fail("sample_rate", None, "the sample rate (Hz) of the audio "
                                   "tensors in sources")
                    audio, rate = item, sample_rate
                    if not isinstance(audio, torch.Tensor):
                        audio = torch.from_numpy(audio)
                else:
                    raise fail(name, item, "an audio file path, an audio tensor (..., time) "
                               "or a pvrnn.Frames")
                if isinstance(audio, torch.Tensor) and audio.is_floating_point():
                    audio = audio.to(torch.float32)
                vocoder = PhaseVocoder(n_fft=c.n_fft, hop_length=c.hop_length, window=c.window,
                                       sample_rate=rate)
                try:
                    frames = vocoder.analyze(audio)
                except PvrnnError as error:
                    raise PvrnnError(f"{name}: {error}") from None
                # Frames whose window reaches past either end mix in reflected audio: a jump
                # that is no part of the sound (and that dominates the statistics of a
                # steady tone). Keep only frames whose window lies inside the signal.
                edge = -(-c.n_fft // (2 * c.hop_length))
                if frames.n_frames > 2 * edge + 2:
                    frames = frames[edge : frames.n_frames - edge]
            if rate_seen is not None and abs(frames.sample_rate - rate_seen) > 1e-6 * rate_seen:
                raise fail(f"{name}.sample_rate", frames.sample_rate,
                           f"{rate_seen:g} Hz like the other sounds (pass sample_rate= to "
                           "resample files)")
            rate_seen = frames.sample_rate
            frames = frames.partials(c.n_partials).to(torch.float32)
            flat = frames.magnitude.reshape(-1, frames.n_frames, frames.n_bins)
            dev = frames.deviation.reshape(-1, frames.n_frames, frames.n_bins)
            for b in range(flat.shape[0]):  # one Frames per sound (leading index)
                result.append(Frames(flat[b].contiguous(), deviation=dev[b].contiguous(),
                                     sample_rate=frames.sample_rate, n_fft=c.n_fft,
                                     hop_length=c.hop_length))
        return result

    def _set_reference(self, frames: list[Frames]) -> None:
        """Keep, per sound, the frames priming needs (its beginning) and those resets draw
        from (around its middle, plus the frame before, for delta-mode features)."""
        reference = []
        for f in frames:
            n = f.n_frames
            prime = min(n, max(2, round(self.config.prime_seconds * f.sample_rate
                                        / self.config.hop_length)))
            lo, hi = _middle(n)
            reference.append({
                "prime_magnitude": f.magnitude[:prime].clone(),
                "prime_deviation": f.deviation[:prime].clone(),
                "middle_magnitude": f.magnitude[lo - 1 : hi].clone(),
                "middle_deviation": f.deviation[lo - 1 : hi].clone(),
            })
        self._reference = reference

    def _reference_frames(self, index: int, part: str) -> Frames:
        r = self._reference[index]
        return Frames(r[f"{part}_magnitude"], deviation=r[f"{part}_deviation"],
                      sample_rate=self.sample_rate, n_fft=self.config.n_fft,
                      hop_length=self.config.hop_length)

    # -----------------------------------------------------------------------------------------
    # generation
    # -----------------------------------------------------------------------------------------
    def generate(
        self,
        seconds: float = 3.0,
        variance_scale: VarianceScale = 1.0,
        reset_every: float | None = None,
        rate: float = 1.0,
        prime: int | torch.Tensor | Frames | None = None,
        seed: int = 0,
        batch: int = 1,
        temperature: float = 1.0,
        component: str = "sample",
        progress: bool = False,
    ) -> torch.Tensor:
        """Generate new sound: prime the network, sample frames one at a time, resynthesize.

        Args:
            seconds (float): duration of the result, > 0.
            variance_scale (float, Tensor or callable): multiplies the variance of every
                sampled frame (``0``: each step takes the chosen component's mean; below 1:
                steadier; above 1: wilder). A tensor gives one value per generated frame
                (``(n_frames,)`` or ``(batch, n_frames)``; another length is stretched over the
                duration by linear interpolation); a callable receives the frames' times in
                seconds (a float64 tensor; a function of a float is also accepted) and returns
                the values.
            reset_every (float, optional): seconds between resets: every so often the
                generated frame is replaced by a frame of the priming sound chosen at random
                (from ``seed``) around its middle, and that frame, re-encoded, is also the
                network's next input. Stops the drift of delta mode (the blog's remedy).
            rate (float): speed of change, > 0: each output frame advances ``rate`` generated
                frames (model-based time-stretch; 0.5 evolves half as fast, pitch unchanged).
                In delta mode this is the decoded deltas scaled by ``rate``, in absolute mode
                interpolation between frames; both are computed as linear interpolation of
                the natively generated frames.
            prime: ``None`` primes on the beginning of the (first) training sound; an int
                picks the training sound; an audio tensor ``(time,)`` at the model's sample
                rate or a :class:`~pvrnn.Frames` primes on that sound (and resets draw from
                its middle).
            seed (int): seeds every random draw (components, noise, reset frames).
            batch (int): number of variations generated together in one pass.
            temperature (float): > 0, sharpens (< 1) or flattens (> 1) the component weights.
            component (str): ``"sample"`` draws the component; ``"most_likely"`` takes the
                heaviest (sound-rnn's behaviour).
            progress (bool): show a tqdm bar on stderr.

        Returns:
            Tensor: float32 audio on the model's device, ``(time,)`` with
            ``time = round(seconds * sample_rate)``, or ``(batch, time)`` when ``batch > 1``.

        Raises:
            PvrnnError: when the model is not fitted or an argument is out of range (the
                message names it).

        Speed: on a CPU each frame costs one fused cell call per layer, the head and a few
        elementwise kernels (about 80 us for the clarinet preset, 35x real time). Such small
        steps gain nothing from intra-op threads; ``torch.set_num_threads(1)`` keeps them
        fast when other processes share the cores.

        Example:
            >>> audio = model.generate(seconds=5.0, variance_scale=lambda t: 0.2 + 0.2 * t,
            ...                        reset_every=0.25, seed=1)
        """
        self._require_fitted()
        seconds = check_positive("seconds", seconds)
        length = round(seconds * self.sample_rate)
        if length < 1:
            raise fail("seconds", seconds, f"at least one sample (>= {1 / self.sample_rate:.3g} s)")
        n_frames = 1 + -(-length // self.config.hop_length)
        frames = self.generate_frames(
            n_frames, variance_scale=variance_scale, reset_every=reset_every, rate=rate,
            prime=prime, seed=seed, batch=batch, temperature=temperature, component=component,
            progress=progress,
        )
        with torch.no_grad():
            return self.vocoder.to(frames.device).synthesize(frames, length=length)

    def generate_frames(
        self,
        n_frames: int,
        variance_scale: VarianceScale = 1.0,
        reset_every: float | None = None,
        rate: float = 1.0,
        prime: int | torch.Tensor | Frames | None = None,
        seed: int = 0,
        batch: int = 1,
        temperature: float = 1.0,
        component: str = "sample",
        progress: bool = False,
    ) -> Frames:
        """Generate ``n_frames`` new frames (the options are those of :meth:`generate`).

        Args:
            n_frames (int): frames to generate, >= 1 (``frame_rate`` per second of sound).

        Returns:
            Frames: ``(n_frames, n_partials)``, or ``(batch, n_frames, n_partials)`` when
            ``batch > 1``, float32 on the model's device, continuing from the last priming
            frame (which is not included). Synthesize with ``model.vocoder.synthesize``.

        Raises:
            PvrnnError: as :meth:`generate`.
        """
        self._require_fitted()
        n_out = check_int("n_frames", n_frames, low=1)
        batch = check_int("batch", batch, low=1)
        seed = check_int("seed", seed, low=0)
        rate = check_positive("rate", rate)
        temperature = check_positive("temperature", temperature)
        component = check_choice("component", component, COMPONENTS)
        frame_seconds = self.config.hop_length / self.sample_rate
        n_native = max(1, math.ceil(n_out * rate - 1e-9))
        reset_frames_native = None
        if reset_every is not None:
            reset_every = check_positive("reset_every", reset_every)
            reset_frames_native = round(reset_every * rate / frame_seconds)
            if reset_frames_native < 1:
                raise fail("reset_every", reset_every,
                           f"at least one frame ({frame_seconds / rate:.3g} s at rate={rate:g})")
        prime_frames, middle = self._prime(prime)
        device = self.device
        std_scale = _variance_schedule(variance_scale, n_native, n_out, rate, batch,
                                       frame_seconds, device)
        codec, net = self.codec, self.network
        features_prime = codec.encode(prime_frames.to(device))  # (P or P-1, F)
        if features_prime.shape[-2] < 1:
            raise fail("prime", prime, "at least 2 frames to prime on (delta mode)")
        start = prime_frames[-1].to(device)

        # Reset frames: drawn at random (seeded) from around the primer's middle.
        reset_features = resets = None
        if reset_frames_native is not None:
            n_resets = n_native // reset_frames_native
            candidates = middle[1:]
            middle_features = codec.encode(middle.to(device))
            if self.config.mode == "absolute":
                middle_features = middle_features[1:]
            host = torch.Generator().manual_seed(seed)
            picks = torch.randint(candidates.n_frames, (batch, max(n_resets, 1)), generator=host)
            picks = picks.to(device)
            reset_features = middle_features[picks]  # (batch, n_resets, F)
            resets = Frames(candidates.magnitude.to(device)[picks],
                            deviation=candidates.deviation.to(device)[picks],
                            sample_rate=self.sample_rate, n_fft=self.config.n_fft,
                            hop_length=self.config.hop_length)

        out = _sample_loop(net, features_prime, n_native, batch, std_scale, reset_features,
                           reset_frames_native, temperature, component, seed, progress)
        with torch.no_grad():
            if self.config.mode == "delta" and reset_frames_native is not None:
                frames = codec.decode(out, start=start, reset_every=reset_frames_native,
                                      reset_frames=resets)
            else:
                frames = codec.decode(out, start=start)
            if rate != 1.0 or n_native != n_out:
                frames = _resample(frames, start, rate, n_out)
            if batch == 1:
                frames = frames.replace(magnitude=frames.magnitude[0],
                                        deviation=frames.deviation[0], start_phase=None)
        return frames

    def _prime(self, prime: Any) -> tuple[Frames, Frames]:
        """(frames to prime on, frames around the middle to reset to)."""
        if prime is None or (isinstance(prime, numbers.Integral) and not isinstance(prime, bool)):
            index = 0 if prime is None else int(prime)
            if not 0 <= index < len(self._reference):
                raise fail("prime", prime, f"a training-sound index in [0, {len(self._reference)})")
            return self._reference_frames(index, "prime"), self._reference_frames(index, "middle")
        if isinstance(prime, Frames):
            for key in ("n_fft", "hop_length"):
                if getattr(prime, key) != getattr(self.config, key):
                    raise fail(f"prime.{key}", getattr(prime, key),
                               f"{getattr(self.config, key)} (the model's)")
            frames = prime
        elif isinstance(prime, torch.Tensor):
            if prime.dim() != 1:
                raise fail("prime", prime, "mono audio (time,) at the model's sample rate")
            try:
                frames = self.vocoder.to(prime.device).analyze(prime.to(torch.float32))
            except PvrnnError as error:
                raise PvrnnError(f"prime: {error}") from None
        else:
            raise fail("prime", prime, "None, a training-sound index, mono audio (time,) or "
                       "a pvrnn.Frames")
        if frames.magnitude.dim() != 2:
            raise fail("prime", prime, "a single sound: Frames (n_frames, n_bins)")
        if abs(frames.sample_rate - self.sample_rate) > 1e-6 * self.sample_rate:
            raise fail("prime.sample_rate", frames.sample_rate, f"{self.sample_rate:g} Hz")
        if frames.n_frames < 3:
            raise fail("prime", prime, "at least 3 frames of sound")
        frames = frames.partials(self.config.n_partials).to(torch.float32)
        frames = frames.replace(start_phase=None)
        lo, hi = _middle(frames.n_frames)
        return frames, frames[lo - 1 : hi]

    # -----------------------------------------------------------------------------------------
    # files
    # -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a model file holds: tensors and plain containers only (on the CPU)."""
        self._require_fitted()
        cpu = torch.device("cpu")
        codec_state = {k: (v.to(cpu) if isinstance(v, torch.Tensor) else v)
                       for k, v in self.codec.state_dict().items()}
        return {
            "format_version": FORMAT_VERSION,
            "pvrnn_version": _version(),
            "config": self.config.to_dict(),
            "codec": codec_state,
            "network": {k: v.detach().to(cpu) for k, v in self.network.state_dict().items()},
            "reference": [{k: v.to(cpu) for k, v in r.items()} for r in self._reference],
            "history": copy.deepcopy(self.history),
            "training": _to_cpu(self._training),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to one file, atomically (temporary file, then rename).

        The file holds the format version, the configuration (a plain dict), the codec's
        statistics, the network weights, the reference frames (partials only) used for
        priming and resets, the training history and the optimizer/RNG state of the last
        :meth:`fit` (so ``fit(checkpoint=path, resume=True)`` can continue it). It loads with
        ``torch.load(path, weights_only=True)``.

        Raises:
            PvrnnError: when the model is not fitted or the folder does not exist.
        """
        _atomic_save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "auto") -> SoundModel:
        """Read a model file written by :meth:`save` or by ``fit(checkpoint=...)``.

        Args:
            path: the file.
            device: where to put the model: ``"auto"`` (CUDA when present), ``"cpu"``, ...
                A model trained on a GPU loads on a CPU-only machine.

        Returns:
            SoundModel: fitted, in eval mode, with its history and last training state.

        Raises:
            PvrnnError: naming the file, when it is missing, truncated, not a pvrnn model, of a
                newer format, or its weights do not match its configuration.
        """
        data = _read_model_file(path)
        try:
            config = SoundModelConfig.from_dict(data["config"])
        except PvrnnError as error:
            raise PvrnnError(f"path={str(path)!r}: bad configuration in the model file: "
                             f"{error}") from None
        model = cls(config)
        model._restore(data, path)
        return model.to(device)

    def _restore(self, data: dict[str, Any], path: Any) -> None:
        """Load codec, weights, reference and history from a model-file dict (strictly)."""
        try:
            config = SoundModelConfig.from_dict(data["config"])
        except PvrnnError as error:
            raise PvrnnError(f"path={str(path)!r}: bad configuration: {error}") from None
        if config.to_dict() != self.config.to_dict():
            theirs, ours = config.to_dict(), self.config.to_dict()
            key = next(k for k in ours if ours[k] != theirs[k])
            raise PvrnnError(f"path={str(path)!r}: the file's {key}={theirs[key]!r} does not "
                             f"match this model's {key}={ours[key]!r}")
        device = self.device
        try:
            self.codec.load_state_dict(data["codec"], strict=True)
            self.network.load_state_dict(data["network"], strict=True)
            reference = [{k: torch.as_tensor(r[k]).to(device) for k in _REFERENCE_KEYS}
                         for r in data["reference"]]
            history = {k: list(data["history"][k]) for k in _HISTORY_KEYS}
        except (RuntimeError, KeyError, TypeError, PvrnnError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise PvrnnError(f"path={str(path)!r}: the model file does not match its "
                             f"configuration ({first})") from None
        if not reference or not self.codec.fitted:
            raise PvrnnError(f"path={str(path)!r}: holds no fitted model")
        for r in reference:
            shapes = {tuple(v.shape[1:]) for v in r.values()}
            if shapes != {(self.config.n_partials,)}:
                raise PvrnnError(f"path={str(path)!r}: reference frames have the wrong shape")
        self._reference = reference
        self.history = history
        self._training = data.get("training")
        self.network.eval()

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise PvrnnError("SoundModel: not fitted; expected model.fit(sources) or "
                             "SoundModel.load(path) first")


# ---------------------------------------------------------------------------------------------
# helpers: devices, files
# ---------------------------------------------------------------------------------------------
_REFERENCE_KEYS = ("prime_magnitude", "prime_deviation", "middle_magnitude", "middle_deviation")
_HISTORY_KEYS = ("epoch", "train_loss", "val_loss", "seconds", "frames")


def _empty_history() -> dict[str, list]:
    return {k: [] for k in _HISTORY_KEYS}


def _version() -> str:
    from .. import __version__

    return __version__


def resolve_device(device: Any) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other strings/devices are checked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise fail("device", device, "'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise fail("device", device, "'cpu' or 'auto': CUDA is not available here")
    return resolved


def _middle(n: int) -> tuple[int, int]:
    """Frames ``[lo, hi)`` around the middle of ``n`` frames (``lo >= 1``): resets draw here."""
    half = max(1, min(n // 4, _MAX_RESET_HALF_WIDTH))
    lo = max(1, n // 2 - half)
    hi = min(n, n // 2 + half)
    return lo, max(hi, lo + 1)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu")
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _atomic_save(obj: Any, path: Any) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then ``os.replace``."""
    if not isinstance(path, (str, os.PathLike)):
        raise fail("path", path, "a file path")
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise fail("path", str(path), f"a file in an existing folder ({str(folder)!r} is not one)")
    temp = folder / f".{target.name}.{secrets.token_hex(4)}.tmp"
    try:
        with open(temp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _read_model_file(path: Any) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with a :class:`PvrnnError` naming the file."""
    if not isinstance(path, (str, os.PathLike)):
        raise fail("path", path, "a model file path")
    name = str(path)
    if not Path(path).is_file():
        raise PvrnnError(f"path={name!r}: no such model file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, pickle errors, foreign content
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PvrnnError(f"path={name!r}: not a readable pvrnn model file, truncated or "
                         f"corrupt? ({type(error).__name__}: {first[:200]})") from None
    if not isinstance(data, dict) or "format_version" not in data:
        raise PvrnnError(f"path={name!r}: not a pvrnn model file (no format_version)")
    version = data["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise PvrnnError(f"path={name!r}: format_version={version!r}; this pvrnn reads "
                         f"1..{FORMAT_VERSION} (written by a newer pvrnn?)")
    missing = [k for k in ("config", "codec", "network", "reference", "history") if k not in data]
    if missing:
        raise PvrnnError(f"path={name!r}: not a complete pvrnn model file (missing {missing[0]!r})")
    return data


def _check_resume_settings(saved: dict[str, Any], settings: dict[str, Any], path: Any) -> None:
    for key, value in settings.items():
        if saved.get(key) != value:
            raise PvrnnError(
                f"{key}={value!r}: expected {saved.get(key)!r} as in checkpoint={str(path)!r} "
                "(a resumed run must use the same training settings)"
            )


# ---------------------------------------------------------------------------------------------
# training loop
# ---------------------------------------------------------------------------------------------
def _split(n_rows: int, validation: float) -> int:
    """Rows of a sound used for training (the rest, its tail, is validation)."""
    n_val = 0 if validation == 0 else max(1, round(validation * n_rows))
    return n_rows - n_val


def _layout(
    features: list[torch.Tensor], n_train: list[int], batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut each sound's training rows into ``batch_size`` contiguous streams, side by side.

    Sound ``s`` with ``n`` training rows gives inputs ``X[0 : B*L]`` and targets
    ``X[1 : B*L + 1]`` with ``L = (n - 1) // B``, reshaped to ``(B, L, F)`` (stream ``b`` holds
    rows ``b*L .. (b+1)*L - 1``); sounds are joined along time. Returns ``(B, T, F)`` twice.
    """
    xs, ys = [], []
    for i, (x, n) in enumerate(zip(features, n_train)):
        length = (n - 1) // batch_size
        if length < 1:
            raise fail("batch_size", batch_size,
                       f"at most {max(n - 1, 1)}: sound {i} has only {n} training frames "
                       f"(lower batch_size or give longer sounds)")
        count = batch_size * length
        xs.append(x[:count].reshape(batch_size, length, -1))
        ys.append(x[1 : count + 1].reshape(batch_size, length, -1))
    return torch.cat(xs, dim=1), torch.cat(ys, dim=1)


def _detach(state: Any) -> Any:
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _validation_loss(net: SpectralRNN, features: list[torch.Tensor], n_train: list[int]):
    """Mean loss on each sound's held-out tail, the state warmed up on the frames before."""
    total, count = None, 0
    for x, n in zip(features, n_train):
        if x.shape[0] - n < 1:
            continue
        raw, _ = net.raw(x[None, :-1])  # predicts rows 1..n_rows-1
        start = n - 1  # first prediction whose target is in the tail
        part = net.mixture(raw[:, start:])
        loss = net.loss(part, x[None, start + 1 :]) * (x.shape[0] - n)
        total = loss if total is None else total + loss
        count += x.shape[0] - n
    return None if total is None else total / count


def _train(
    model: SoundModel,
    frames: list[Frames],
    epochs: int,
    settings: dict[str, Any],
    device: torch.device,
    checkpoint: Any,
    saved: dict[str, Any] | None,
    progress: bool,
) -> dict[str, list]:
    from tqdm import tqdm  # text bars on stderr: no widget warnings in notebooks

    codec, net = model.codec, model.network
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        model.to(device)
        if saved is None:
            torch.manual_seed(settings["seed"])
            net.reset_parameters()
            codec.fit([f.to(device) for f in frames])
            model._set_reference(frames)
            model.to(device)
            model.history = _empty_history()
            model._training = None
            start_epoch = 0
        else:
            start_epoch = int(saved["training"]["epoch"])
        features = [codec.encode(f.to(device)).float() for f in frames]
        n_train = [_split(x.shape[0], settings["validation"]) for x in features]
        if min(n_train) < 2:
            raise fail("validation", settings["validation"],
                       "a smaller fraction: a sound has too few frames left to train on")
        inputs, targets = _layout(features, n_train, settings["batch_size"])
        total_steps = inputs.shape[1]
        seq = settings["seq_length"]
        windows = [(a, min(a + seq, total_steps)) for a in range(0, total_steps, seq)]
        params = list(net.parameters())
        if settings["optimizer"] == "adagrad":
            opt = torch.optim.Adagrad(params, lr=settings["lr"])
        else:
            opt = torch.optim.Adam(params, lr=settings["lr"])
        if saved is not None:
            try:
                opt.load_state_dict(saved["training"]["optimizer"])
            except (ValueError, KeyError, RuntimeError) as error:
                raise PvrnnError(f"checkpoint={str(checkpoint)!r}: optimizer state does not "
                                 f"match ({error})") from None
            _set_rng_state(saved["training"]["rng"], device)
        else:
            torch.manual_seed(settings["seed"])  # dropout stream, independent of the init

        frame_counts = [f.n_frames for f in frames]
        bar = tqdm(total=epochs * len(windows), initial=start_epoch * len(windows),
                   disable=not progress, file=sys.stderr, desc="train", unit="step",
                   dynamic_ncols=True, leave=True)
        good = _snapshot(net, opt, model)
        last_print = 0.0
        try:
            for epoch in range(start_epoch + 1, epochs + 1):
                began = time.perf_counter()
                net.train()
                state = None
                total = torch.zeros((), device=device)
                for a, b in windows:
                    mixture, state = net(inputs[:, a:b], state)
                    loss = net.loss(mixture, targets[:, a:b])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, settings["clip"])
                    opt.step()
                    state = _detach(state)
                    total = total + loss.detach() * (b - a)
                    bar.update(1)
                    now = time.monotonic()
                    if progress and now - last_print > 0.5:
                        bar.set_postfix_str(f"epoch {epoch} loss {loss.item():.4g}",
                                            refresh=False)
                        last_print = now
                train_loss = float(total) / total_steps
                net.eval()
                with torch.no_grad():
                    val = _validation_loss(net, features, n_train)
                val_loss = None if val is None else float(val)
                if not math.isfinite(train_loss) or (val_loss is not None
                                                     and not math.isfinite(val_loss)):
                    _restore_snapshot(good, net, opt, model)
                    kept = (f"; checkpoint={str(checkpoint)!r} keeps epoch {epoch - 1}"
                            if checkpoint is not None and epoch > 1 else "")
                    raise PvrnnError(
                        f"epoch {epoch}: the training loss became {train_loss} (validation "
                        f"{val_loss}); expected finite values. Lower lr={settings['lr']:g} or "
                        f"clip={settings['clip']:g}; the model was restored to epoch "
                        f"{epoch - 1}{kept}"
                    )
                model.history["epoch"].append(epoch)
                model.history["train_loss"].append(train_loss)
                model.history["val_loss"].append(val_loss)
                model.history["seconds"].append(time.perf_counter() - began)
                model.history["frames"].append(total_steps * settings["batch_size"])
                model._training = {
                    "epoch": epoch, "optimizer": copy.deepcopy(opt.state_dict()),
                    "rng": _rng_state(device),
                    "settings": dict(settings), "frame_counts": frame_counts,
                }
                good = _snapshot(net, opt, model)
                if checkpoint is not None:
                    model.save(checkpoint)
                val_text = "-" if val_loss is None else f"{val_loss:.4g}"
                bar.set_postfix_str(f"epoch {epoch} train {train_loss:.4g} val {val_text}")
        finally:
            bar.close()
            net.eval()
    return model.history


def _snapshot(net: SpectralRNN, opt: torch.optim.Optimizer, model: SoundModel) -> dict[str, Any]:
    return {
        "network": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "optimizer": copy.deepcopy(opt.state_dict()),
        "history": copy.deepcopy(model.history),
        "training": model._training,
    }


def _restore_snapshot(snap: dict[str, Any], net, opt, model: SoundModel) -> None:
    net.load_state_dict(snap["network"])
    opt.load_state_dict(snap["optimizer"])
    model.history = snap["history"]
    model._training = snap["training"]


# ---------------------------------------------------------------------------------------------
# generation loop
# ---------------------------------------------------------------------------------------------
def _variance_schedule(
    value: Any, n_native: int, n_out: int, rate: float, batch: int, frame_seconds: float,
    device: torch.device,
) -> torch.Tensor:
    """``sqrt(variance_scale)`` per generated step: ``(n_native, batch or 1, 1)`` float32."""
    steps = torch.arange(1, n_native + 1, dtype=torch.float64)
    if callable(value) and not isinstance(value, torch.Tensor):
        times = steps * (frame_seconds / rate)  # output seconds of each generated frame
        try:
            values = value(times)
        except Exception:  # a function of a float
            try:
                values = [value(float(t)) for t in times]
            except Exception as error:
                raise fail("variance_scale", value, f"a callable of time in seconds that "
                           f"works ({type(error).__name__}: {error})") from None
        try:
            values = torch.as_tensor(values, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise fail("variance_scale", value, "a callable returning numbers") from None
        if values.dim() == 0:
            values = values.expand(n_native)
        if values.shape != (n_native,):
            raise fail("variance_scale", value, f"a callable returning {n_native} values for "
                       f"{n_native} times (got shape {tuple(values.shape)})")
        values = values[:, None]
    elif isinstance(value, torch.Tensor):
        v = value.detach().to("cpu", torch.float64)
        if v.dim() == 0:
            values = v.reshape(1, 1).expand(n_native, 1)
        elif v.dim() in (1, 2) and v.shape[-1] >= 1 and (v.dim() == 1 or v.shape[0] in (1, batch)):
            v2 = v.reshape(-1, v.shape[-1])  # (rows, L)
            length = v2.shape[-1]
            # generated step i sits at output frame i / rate (1-based) -> index over L values
            pos = (steps / rate - 1).clamp(0, n_out - 1)
            pos = pos * ((length - 1) / max(n_out - 1, 1))
            lo = pos.floor().long().clamp(0, length - 1)
            hi = (lo + 1).clamp(max=length - 1)
            frac = (pos - lo).unsqueeze(0)
            values = (v2[:, lo] * (1 - frac) + v2[:, hi] * frac).T  # (n_native, rows)
        else:
            raise fail("variance_scale", value, f"a tensor of one value per frame, (n_frames,) "
                       f"or (batch={batch}, n_frames)")
    else:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not ok:
            raise fail("variance_scale", value, "a number >= 0, a tensor of one value per "
                       "frame, or a callable of time in seconds")
        values = torch.full((n_native, 1), float(value), dtype=torch.float64)
    if not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
        raise fail("variance_scale", value, "finite values >= 0")
    return values.sqrt().to(device=device, dtype=torch.float32).unsqueeze(-1)


def _sample_loop(
    net: SpectralRNN,
    features_prime: torch.Tensor,
    n_steps: int,
    batch: int,
    std_scale: torch.Tensor,
    reset_features: torch.Tensor | None,
    reset_every: int | None,
    temperature: float,
    component: str,
    seed: int,
    progress: bool,
) -> torch.Tensor:
    """Prime, then sample ``n_steps`` feature rows one network step at a time.

    The output buffer is preallocated, random draws are made in chunks of frames, each step is
    one recurrent call (see :class:`~pvrnn.model.network.Stepper`), one matrix product for the head
    and a handful of elementwise kernels for the sampler, and nothing inside the loop reads a
    tensor value back to the host.

    Returns:
        ``(batch, n_steps, F)`` generated features; row ``i`` is frame ``i + 1`` after the
        start, and at resets (``(i + 1) % reset_every == 0``) the reset frame's features.
    """
    from tqdm import tqdm  # text bars on stderr: no widget warnings in notebooks

    device = features_prime.device
    n_features = net.n_features
    n_components = net.n_components
    mse = net.loss_kind == "mse"
    floor = 0.0 if mse else net.min_variance
    floor_std = torch.tensor(floor ** 0.5, device=device) if floor else None
    residual_std = net.residual_variance.sqrt() if mse else None
    generator = torch.Generator(device=device).manual_seed(seed)
    draw_gumbel = component == "sample" and n_components > 1 and not mse
    out = torch.empty(n_steps, batch, n_features, device=device)  # out[i] is contiguous
    bar = tqdm(total=n_steps, disable=not progress, file=sys.stderr, desc="generate",
               unit="frame", leave=False)
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            stepper = net.stepper()
            last = stepper.prime(features_prime.to(torch.float32).unsqueeze(0), batch)
            gumbel = noise = None
            for i in range(n_steps):
                j = i % _CHUNK
                if j == 0:
                    size = min(_CHUNK, n_steps - i)
                    noise = torch.randn(size, batch, n_features, device=device,
                                        generator=generator)
                    noise.mul_(std_scale[i : i + size])
                    if draw_gumbel:
                        uniform = torch.rand(size, batch, n_components, device=device,
                                             generator=generator)
                        gumbel = _gumbel(uniform).mul_(temperature)
                    if i:
                        bar.update(_CHUNK)
                y = out[i]
                if mse:  # the regression's mean plus noise of its residuals' size
                    torch.addcmul(last[:, 0], residual_std, noise[j], out=y)
                else:
                    if n_components == 1:
                        params = last[:, 0, 1:]
                    else:
                        scores = last[..., 0] if gumbel is None else last[..., 0] + gumbel[j]
                        index = scores.argmax(-1).view(batch, 1, 1)
                        params = last[..., 1:].gather(1, index.expand(batch, 1, 2 * n_features))
                        params = params.view(batch, 2 * n_features)
                    mean, log_scale = params[:, :n_features], params[:, n_features:]
                    std = torch.exp(log_scale)
                    if floor_std is not None:  # sqrt(exp(2 log_scale) + min_variance)
                        std = torch.hypot(std, floor_std)
                    torch.addcmul(mean, std, noise[j], out=y)
                if reset_every is not None and (i + 1) % reset_every == 0:
                    y.copy_(reset_features[:, (i + 1) // reset_every - 1])
                if i + 1 < n_steps:
                    last = stepper.step(y)
            bar.update(n_steps - bar.n)
    finally:
        bar.close()
        net.train(was_training)
    return out.transpose(0, 1)


def _resample(frames: Frames, start: Frames, rate: float, n_out: int) -> Frames:
    """Frames at positions ``rate, 2 rate, ... n_out * rate`` of the generated sequence
    (position 0 is the start frame), by linear interpolation of magnitude and frequency."""
    k = frames.n_bins
    batch = frames.magnitude.shape[0]
    first_mag = start.magnitude[-1:].expand(batch, 1, k).to(frames.dtype)
    first_dev = start.deviation[-1:].expand(batch, 1, k).to(frames.dtype)
    mag = torch.cat([first_mag, frames.magnitude], dim=1)
    dev = torch.cat([first_dev, frames.deviation], dim=1)
    last = mag.shape[1] - 1
    pos = torch.arange(1, n_out + 1, dtype=torch.float64, device=mag.device) * rate
    lo = pos.floor().long().clamp(0, last)
    hi = (lo + 1).clamp(max=last)
    frac = (pos - lo).clamp(0, 1).to(mag.dtype)[None, :, None]
    return frames.replace(
        magnitude=mag[:, lo] * (1 - frac) + mag[:, hi] * frac,
        deviation=dev[:, lo] * (1 - frac) + dev[:, hi] * frac,
        start_phase=None,
    )

