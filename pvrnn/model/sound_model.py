"""The whole instrument: a thin facade over the codec, network, trainer, sampler and files.

A :class:`SoundModel` learns the phase-vocoder frames of one or more sounds and generates new
ones. ``fit`` analyses the sources (:mod:`~pvrnn.model.data`) and runs a
:class:`~pvrnn.model.train.Trainer`; ``generate`` primes the network and samples new frames
with the one :class:`~pvrnn.model.sample.Sampler` (:mod:`~pvrnn.model.generate`), then
resynthesizes them; ``save``/``load`` are :mod:`~pvrnn.model.checkpoint`.
:class:`SoundModelConfig` says *what the model is*.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Callable, Sequence

import torch

from ..dsp.frames import Frames
from ..dsp.vocoder import PhaseVocoder
from ..errors import PvrnnError, check_choice, check_positive, fail
from . import checkpoint as files
from .codec import FrameCodec
from .config import PRESETS, SoundModelConfig
from .data import Source
from .dft import DFTCodec
from .fitting import fit_model
from .generate import VarianceScale, generate_frames, prime_frames
from .network import SpectralRNN
from .train import empty_history, resolve_device

__all__ = ["SoundModel", "SoundModelConfig", "PRESETS"]


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
        history (dict): the training record, see :meth:`fit`.

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
        self._requested = copy.deepcopy(config)  # automatic (None) settings stay automatic
        self.config = copy.deepcopy(config)
        self.codec: FrameCodec | None = None
        self.network: SpectralRNN | None = None
        if config.resolved:
            self._build(self.config)
        self.history: dict[str, Any] = empty_history()
        self._vocoder: PhaseVocoder | None = None
        self._reference: list[dict[str, torch.Tensor]] = []  # per sound: prime + middle frames
        self._training: dict[str, Any] | None = None  # the last fit's state, to resume

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> SoundModel:
        """A model with the settings of one of the sound-rnn blog's experiments: ``"sine"``,
        ``"clarinet"`` or ``"piano"`` (see :data:`~pvrnn.model.config.PRESETS` for the
        settings and the measurements behind them), with ``overrides`` (config fields).

        Raises:
            PvrnnError: for an unknown preset or field.
        """
        return cls(SoundModelConfig.from_preset(name, **overrides))

    def _build(self, config: SoundModelConfig) -> None:
        """Codec and network (fresh) for a concrete configuration."""
        c = self.config = config
        codec = DFTCodec if c.representation == "dft" else FrameCodec
        self.codec = codec(n_partials=c.n_partials, mode=c.mode, magnitude=c.magnitude)
        self.network = SpectralRNN(
            self.codec.n_features, hidden_size=c.hidden_size, num_layers=c.num_layers,
            n_components=c.n_components, cell=c.cell, dropout=c.dropout, loss=c.loss,
            bottleneck=c.bottleneck, input_noise=c.input_noise,
        ).eval()
        self._vocoder = None

    # -- properties -------------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        """Whether the model has been trained (or loaded)."""
        return self.codec is not None and self.codec.fitted and bool(self._reference)

    @property
    def sample_rate(self) -> float | None:
        """Sample rate of the training sounds, Hz (``None`` before :meth:`fit`)."""
        return None if not self.codec.fitted else float(self.codec.analysis["sample_rate"])

    @property
    def device(self) -> torch.device:
        return torch.device("cpu") if self.codec is None else self.codec.mean.device

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
            c = self.config
            self._vocoder = PhaseVocoder(n_fft=c.n_fft, hop_length=c.hop_length, window=c.window,
                                         sample_rate=self.sample_rate)
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
        if self.network is None:
            return self
        self.network.to(device)
        self.codec.to(device)
        self._reference = [{k: v.to(device) for k, v in r.items()} for r in self._reference]
        return self

    # -- training ---------------------------------------------------------------------------------
    def fit(
        self, sources: Source | Sequence[Source], sample_rate: float | None = None, *,
        epochs: int | None = None, seq_length: int | None = None, batch_size: int | None = None,
        optimizer: str | None = None, lr: float | None = None, clip: float | None = None,
        validation: float | None = None, device: str | torch.device = "auto",
        checkpoint: str | os.PathLike[str] | None = None, resume: bool = False,
        progress: bool = True, seed: int = 0, patience: int | None = None,
        callbacks: Sequence[Callable[[dict[str, Any]], Any]] = (),
        schedule: str = "constant", precision: str = "fp32", log: Any = None,
        log_every: int | None = None, workers: int = 0,
    ) -> dict[str, Any]:
        """Train on one or more sounds by truncated back-propagation through time.

        Sources are analysed (of audio, the ``ceil(n_fft / (2 hop_length))`` edge frames at
        each end are left out). A ``validation`` fraction is held out: whole sounds when there
        are several, else an interior stretch of the one sound (never its attack or release).
        The codec is fitted on the training frames only, the network trained by the
        :class:`~pvrnn.model.train.Trainer` from fresh weights (unless ``resume``); the model
        keeps the weights of the epoch with the lowest validation loss (without validation,
        the last).

        Args:
            sources: audio file paths, audio tensors ``(..., time)`` (each leading index one
                sound; give ``sample_rate``) or :class:`~pvrnn.Frames` of this model's
                ``n_fft`` / ``hop_length``; one or a list. A folder (or a list with folders) or a
                :class:`~pvrnn.model.corpus.FrameCorpus` trains on a corpus on disk: analysed
                once and cached, read lazily, reshuffled every epoch (memory bounded by the
                batch; see :mod:`pvrnn.model.corpus`).
            sample_rate (float, optional): Hz of tensor sources; for paths, resample to it.
            epochs (int): total epochs (a resumed run continues up to this number).
            seq_length, batch_size, optimizer, lr, clip, validation: override the
                :class:`SoundModelConfig` training defaults for this run.
            device: ``"auto"`` (CUDA when present and the network is large enough to gain
                from it, see :func:`~pvrnn.model.train.training_device`), ``"cpu"``,
                ``"cuda"``, a torch.device. Under ``torchrun``, training is distributed
                (DistributedDataParallel; rank 0 writes the checkpoint and the log).
            checkpoint (path, optional): written atomically after every epoch (as :meth:`save`
                would, plus the last epoch's state); ``resume`` continues it exactly.
            progress (bool): a tqdm bar with the losses on stderr.
            seed (int): seeds initialisation, dropout and which sounds are held out.
            patience (int, optional): stop after this many epochs without a better
                validation loss. callbacks: callables given each epoch's record (a dict).
            schedule (str): learning rate ``"constant"``, ``"cosine"`` or ``"plateau"``
                (:data:`~pvrnn.model.train.SCHEDULES`).
            precision (str): ``"fp32"`` or ``"bf16"`` (autocast of the forward pass).
            log (path or False, optional): the CSV log (default: beside ``checkpoint``,
                ``model.csv`` for ``model.pt``; ``False``: none). log_every (int): also log
                every this many steps. workers (int): data-loader processes for a corpus.

        Returns:
            dict: the history (also ``model.history``): per-epoch lists ``"epoch"``,
            ``"train_loss"`` (mean per-frame NLL in nats summed over features, or MSE),
            ``"val_loss"`` (``None`` without validation), ``"seconds"``, ``"frames"``; and
            ``"best_epoch"``, the epoch whose weights the model holds.

        Raises:
            PvrnnError: on bad sources or settings, a sound too short for ``batch_size``, a
                checkpoint that does not match, or a NaN/inf loss (naming the epoch).
        """
        return fit_model(
            self, sources, sample_rate, epochs=epochs, device=device, checkpoint=checkpoint,
            resume=resume, progress=progress, seed=seed, patience=patience,
            callbacks=callbacks, schedule=schedule, precision=precision, log=log,
            log_every=log_every, workers=workers,
            overrides=dict(seq_length=seq_length, batch_size=batch_size, optimizer=optimizer,
                           lr=lr, clip=clip, validation=validation))

    # -- generation -------------------------------------------------------------------------------
    def generate(self, seconds: float = 3.0, variance_scale: VarianceScale = 1.0,
                 reset_every: float | None = None, rate: float = 1.0,
                 prime: int | torch.Tensor | Frames | None = None, seed: int = 0, batch: int = 1,
                 temperature: float = 1.0, component: str = "sample",
                 progress: bool = False) -> torch.Tensor:
        """Generate new sound: prime the network, sample frames one at a time, resynthesize.

        Args:
            seconds (float): duration of the result, > 0.
            variance_scale (float, Tensor or callable): multiplies every sampled frame's
                variance (0: the chosen component's mean); one value per generated frame as a
                tensor ``(n_frames,)`` or ``(batch, n_frames)``, or a callable of time (s).
            reset_every (float, optional): seconds between resets to a frame from around
                the primer's middle: the one that best continues the sound in absolute mode
                (no cut in a vibrato), a random one in delta mode (the blog's remedy).
            rate (float): speed of change, > 0 (model-based time-stretch, pitch unchanged).
            prime: ``None`` or an int (a training sound's beginning), mono audio ``(time,)``
                at the model's sample rate (analysed as training sources are), or Frames.
            seed, batch, temperature, component, progress: the random draws' seed, variations
                generated together, the component weights' temperature, ``"sample"`` or
                ``"most_likely"``, a tqdm bar (see :func:`pvrnn.model.generate.generate_frames`).

        Returns:
            Tensor: float32 audio on the model's device, ``(time,)`` with
            ``time = round(seconds * sample_rate)``, or ``(batch, time)`` when ``batch > 1``.

        Raises:
            PvrnnError: when the model is not fitted or an argument is out of range.
        """
        self._require_fitted()
        seconds = check_positive("seconds", seconds)
        length = round(seconds * self.sample_rate)
        if length < 1:
            raise fail("seconds", seconds, f"at least one sample (>= {1 / self.sample_rate:.3g} s)")
        frames = self.generate_frames(
            1 + -(-length // self.config.hop_length), variance_scale=variance_scale,
            reset_every=reset_every, rate=rate, prime=prime, seed=seed, batch=batch,
            temperature=temperature, component=component, progress=progress)
        return self.synthesize(frames, length=length)

    def synthesize(self, frames: Frames, length: int | None = None,
                   phase: str = "auto") -> torch.Tensor:
        """Frames of this model's settings -> audio, keeping the partials' phases coherent.

        Generated frames (``start_phase is None``) carry a magnitude and an instantaneous
        frequency per bin, drawn bin by bin; integrating each bin's phase on its own lets the
        bins of one partial drift apart. They are phase-locked first
        (:func:`pvrnn.dsp.coherent.lock_phases`: regions around spectral peaks share the
        peak's frequency and phase), then resynthesized. Frames with a start phase (analysed
        frames) are resynthesized exactly, as :meth:`PhaseVocoder.synthesize` does.

        Args:
            frames (Frames): ``(..., n_frames, n_bins)`` of this model's ``n_fft`` and
                ``hop_length`` (e.g. from :meth:`generate_frames` or ``model.vocoder``).
            length (int, optional): output samples; default ``(n_frames - 1) * hop_length``.
            phase (str): ``"auto"`` (locked for frames without a start phase, else exact),
                ``"locked"`` or ``"exact"``.

        Returns:
            Tensor: ``(..., length)`` audio on the frames' device.
        """
        from ..dsp.coherent import lock_phases

        self._require_fitted()
        phase = check_choice("phase", phase, ("auto", "locked", "exact"))
        if not isinstance(frames, Frames):
            raise fail("frames", frames, "a pvrnn.Frames")
        if phase == "locked" or (phase == "auto" and frames.start_phase is None):
            frames = lock_phases(frames)
        with torch.no_grad():
            return self.vocoder.to(frames.device).synthesize(frames, length=length)

    def generate_frames(self, n_frames: int, variance_scale: VarianceScale = 1.0,
                        reset_every: float | None = None, rate: float = 1.0,
                        prime: int | torch.Tensor | Frames | None = None, seed: int = 0,
                        batch: int = 1, temperature: float = 1.0, component: str = "sample",
                        progress: bool = False) -> Frames:
        """Generate ``n_frames`` new frames (the options are those of :meth:`generate`).

        Returns:
            Frames: ``(n_frames, n_partials)``, or ``(batch, n_frames, n_partials)`` when
            ``batch > 1``, float32 on the model's device, continuing from the last priming
            frame (not included), without a start phase. Turn them into sound with
            :meth:`synthesize` (phase-coherent).
        """
        self._require_fitted()
        start, middle = prime_frames(prime, self._reference, self.config, self.sample_rate)
        frames = generate_frames(
            self.codec, self.network, start, middle, n_frames, variance_scale=variance_scale,
            reset_every=reset_every, rate=rate, seed=seed, batch=batch, temperature=temperature,
            component=component, progress=progress)
        if batch == 1:
            frames = frames.replace(magnitude=frames.magnitude[0],
                                    deviation=frames.deviation[0],
                                    start_phase=frames.start_phase[0]  # DFT: its phases
                                    if self.config.representation == "dft" else None)
        return frames

    # -- files ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a model file holds: tensors and plain containers only (on the CPU)."""
        self._require_fitted()
        return self._file(self.network.state_dict(), self.history, self._training)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to one file atomically (temporary file, then rename); it loads with
        ``torch.load(path, weights_only=True)``. See :mod:`pvrnn.model.checkpoint`.

        Raises:
            PvrnnError: when the model is not fitted or the folder does not exist.
        """
        files.atomic_save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "auto") -> SoundModel:
        """Read a model file written by :meth:`save` or ``fit(checkpoint=...)`` onto ``device``
        (``"auto"``: CUDA when present); a GPU-trained model loads on a CPU-only machine.

        Raises:
            PvrnnError: naming the file, when it is missing, truncated, not a pvrnn model, of
                a newer format, or its weights do not match its configuration.
        """
        data = files.read_model_file(path)
        model = cls(files.read_config(data, path))
        model._restore(data, path)
        return model.to(device)

    def _restore(self, data: dict[str, Any], path: Any) -> None:
        if self.network is None:
            self._build(files.read_config(data, path))
        self._reference, self.history, self._training = files.restore(
            data, self.config.to_dict(), self.codec, self.network, path)

    def _file(self, network: dict[str, torch.Tensor], history: dict[str, Any],
              training: dict[str, Any] | None) -> dict[str, Any]:
        return files.model_state(self.config.to_dict(), self.codec, network, self._reference,
                                 history, training)

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise PvrnnError("SoundModel: not fitted; expected model.fit(sources) or "
                             "SoundModel.load(path) first")
