"""Fitting a :class:`~pvrnn.SoundModel`: the procedure behind :meth:`SoundModel.fit`.

Choose the automatic settings for the first sound (or take a checkpoint's), analyse the sources
(in memory, or a corpus on disk), keep the reference frames used for priming and resets, and
run the :class:`~pvrnn.model.train.Trainer` (in every process of a distributed run). The model
keeps the trainer's weights, history and state.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from ..errors import check_choice, check_int, fail
from . import checkpoint as files
from . import distributed
from .config import auto_validation
from .corpus import as_corpus, frame_counts
from .data import analyze_sources, first_source, reference
from .log import log_path
from .train import SCHEDULES, Trainer, training_device

if TYPE_CHECKING:
    from .sound_model import SoundModel

__all__ = ["fit_model", "settle"]


def fit_model(
    model: SoundModel, sources: Any, sample_rate: float | None, *, overrides: dict[str, Any],
    epochs: int | None, device: str | torch.device, checkpoint: str | os.PathLike[str] | None,
    resume: bool, progress: bool, seed: int, patience: int | None,
    callbacks: Sequence[Callable[[dict[str, Any]], Any]], schedule: str, precision: str,
    log: Any, log_every: int | None, workers: int,
) -> dict[str, Any]:
    """:meth:`SoundModel.fit` (its arguments; ``overrides``: the training settings given)."""
    model._requested.training_settings(**overrides)  # bad settings fail before any work
    schedule = check_choice("schedule", schedule, SCHEDULES)
    corpus = as_corpus(sources, sample_rate)  # folders: a corpus on disk
    seed = check_int("seed", seed, low=0)
    epochs = check_int("epochs", model.config.epochs if epochs is None else epochs, low=1)
    if not isinstance(resume, bool):
        raise fail("resume", resume, "True or False")
    if resume and checkpoint is None:
        raise fail("checkpoint", checkpoint, "the checkpoint path to resume from")
    saved = None
    if resume:
        data = files.read_model_file(checkpoint)
        if model.network is None:  # automatic settings: the checkpoint's, if they fit
            model._build(files.read_config(data, checkpoint))
        model._restore(data, checkpoint)
    else:
        settle(model, sources if corpus is None else corpus.paths[0], sample_rate)
    settings = dict(model.config.training_settings(**overrides), seed=seed, schedule=schedule)
    context, device = distributed.setup(
        training_device(device, model.network, settings["batch_size"]))
    if corpus is None:
        frames = analyze_sources(sources, sample_rate, model.config,
                                 expected_rate=model.sample_rate if resume else None)
    else:
        frames = corpus.prepare(model.config, shard=(context.rank, context.world),
                                barrier=distributed.barrier,
                                expected_rate=model.sample_rate if resume else None)
    if settings["validation"] is None:  # automatic: whole sounds, when there are enough
        settings["validation"] = auto_validation(len(frame_counts(frames)))
    if resume:
        saved = files.check_resume(data, settings, frame_counts(frames), checkpoint)
    else:
        sounds = frames if corpus is None else corpus.reference_sounds()
        model._reference = [reference(f, model.config) for f in sounds]

    def save(t: Trainer) -> None:
        files.atomic_save(model._file(t.best["network"], t.history, t.state), checkpoint)

    trainer = Trainer(model.network, model.codec, settings, device, patience=patience,
                      callbacks=callbacks, progress=progress,
                      checkpoint=None if checkpoint is None else str(checkpoint),
                      save=None if checkpoint is None else save, precision=precision,
                      log=log_path(checkpoint) if log is None and checkpoint else log or None,
                      log_every=log_every, workers=workers)
    try:
        return trainer.fit(frames, epochs, resume=saved, history=model.history)
    finally:
        if trainer.state is not None:  # training began: the model is the trainer's
            model.history, model._training = trainer.history, trainer.state
        model.to(device)


def settle(model: SoundModel, sources: Any, sample_rate: float | None) -> None:
    """Choose the automatic settings for the first source (a fresh fit), and build."""
    if model._requested.resolved:
        if model.network is None:
            model._build(model._requested.replace())
        return
    audio, rate, given = first_source(sources, sample_rate)
    resolved = model._requested.replace(**given).resolve(audio, rate)
    if model.network is None or resolved != model.config:
        model._build(resolved)
