"""Training: a :class:`Trainer` that fits the codec and trains the network by truncated BPTT.

One epoch reads ``batch_size`` parallel streams of feature rows in windows of
``seq_length`` frames, the recurrent state carried from one window to the next (detached), as
char-rnn and sound-rnn did (:mod:`~pvrnn.model.streams`: in-memory sounds, or a corpus on
disk read lazily and reshuffled every epoch); then measures the loss on the held-out frames.
The weights of the best validation epoch are kept; early stopping (``patience``) and a
learning-rate ``schedule`` are options; a NaN/inf loss restores the last good epoch and
raises. Under ``torchrun`` the network is wrapped in DistributedDataParallel
(:mod:`~pvrnn.model.distributed`) and rank 0 alone writes the checkpoint and the log.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from typing import Any, Callable, Sequence

import torch

from ..dsp.frames import Frames
from ..errors import PvrnnError, check_choice, check_int, fail
from . import distributed
from .codec import FrameCodec
from .corpus import FrameCorpus
from .log import TrainingLog
from .network import SpectralRNN
from .streams import CorpusStreams, MemoryStreams

__all__ = ["Trainer", "EPOCH_KEYS", "SCHEDULES", "PRECISIONS", "empty_history",
           "resolve_device", "training_device", "AUTO_GPU_MIN_WORK"]

#: The per-epoch lists of a history (it also holds ``best_epoch``, an int).
EPOCH_KEYS = ("epoch", "train_loss", "val_loss", "seconds", "frames")

#: Learning-rate schedules: ``"constant"``; ``"cosine"`` (from ``lr`` to 0 over the epochs,
#: step by step); ``"plateau"`` (halve ``lr`` after :data:`PLATEAU_PATIENCE` epochs without
#: a better validation loss, or training loss without validation).
SCHEDULES = ("constant", "cosine", "plateau")
PLATEAU_PATIENCE = 2

#: ``"fp32"``, or ``"bf16"``: forward pass and loss under bfloat16 autocast (weights,
#: gradients and optimizer state stay float32).
PRECISIONS = ("fp32", "bf16")

#: ``device="auto"`` trains on CUDA only when a step's work, estimated as the network's
#: parameter count times ``batch_size`` (about the multiply-adds per frame step), is at least
#: this. NOT MEASURED (no GPU was available when this was written): it is the usual rule
#: that a recurrent step under ~4 M multiply-adds is dominated by kernel-launch latency on a
#: GPU (tens of microseconds per layer and step), which a CPU matches. The default model
#: (~0.16 M parameters, batch 16: ~2.6 M) trains on the CPU.
AUTO_GPU_MIN_WORK = 1 << 22


def empty_history() -> dict[str, Any]:
    """A history before any epoch: empty :data:`EPOCH_KEYS` lists and ``best_epoch=None``."""
    return {**{k: [] for k in EPOCH_KEYS}, "best_epoch": None}


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


def training_device(device: Any, network: torch.nn.Module, batch_size: int) -> torch.device:
    """The device to train on: as :func:`resolve_device`, except that ``"auto"`` keeps
    networks too small to gain from a GPU on the CPU (see :data:`AUTO_GPU_MIN_WORK`)."""
    if device == "auto" and torch.cuda.is_available():
        work = sum(p.numel() for p in network.parameters()) * batch_size
        return torch.device("cuda" if work >= AUTO_GPU_MIN_WORK else "cpu")
    return resolve_device(device)


def _clone(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state_dict.items()}


def _detach(state: Any) -> Any:
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class Trainer:
    """Fits a :class:`~pvrnn.FrameCodec` and trains a :class:`~pvrnn.SpectralRNN` on frames.

    Args:
        network, codec: trained in place (moved to ``device``).
        settings (dict): ``seq_length``, ``batch_size``, ``optimizer``, ``lr``, ``clip``,
            ``validation`` (see :class:`~pvrnn.SoundModelConfig`), ``seed`` and ``schedule``
            (:data:`SCHEDULES`, default ``"constant"``).
        device: where to train (under torchrun, this process's; see
            :func:`~pvrnn.model.distributed.setup`).
        patience (int, optional): stop when this many epochs bring no better validation loss
            (``None``: run every epoch).
        callbacks: each called after every epoch with that epoch's record (a dict of
            :data:`EPOCH_KEYS`, ``best_epoch``, ``lr``, ``data_seconds``, ``frames_per_second``).
        save (callable, optional): called (on rank 0) with the trainer after every epoch
            (writes the checkpoint: :attr:`best` weights, :attr:`history`, :attr:`state`).
        checkpoint (str, optional): the checkpoint's name, for messages.
        progress (bool): a tqdm bar with the running loss and frames/s on stderr (rank 0).
        log (path, optional): the CSV log (:class:`~pvrnn.model.log.TrainingLog`; rank 0).
        log_every (int, optional): also log every this many steps.
        precision (str): :data:`PRECISIONS`.
        workers (int): data-loader processes for a corpus (0: read in this process).

    Attributes:
        history (dict): the per-epoch record, see :func:`empty_history`.
        state (dict): the last finished epoch's state (``epoch``, ``network`` weights,
            ``optimizer``, ``scheduler``, ``rng``, ``settings``, ``frame_counts``): what a resume
            continues.
        best (dict): ``epoch``, ``val_loss`` and ``network`` weights of the best epoch so far.
    """

    def __init__(
        self,
        network: SpectralRNN,
        codec: FrameCodec,
        settings: dict[str, Any],
        device: torch.device,
        *,
        patience: int | None = None,
        callbacks: Sequence[Callable[[dict[str, Any]], Any]] = (),
        save: Callable[[Trainer], None] | None = None,
        checkpoint: str | None = None,
        progress: bool = True,
        log: Any = None,
        log_every: int | None = None,
        precision: str = "fp32",
        workers: int = 0,
    ) -> None:
        self.network, self.codec, self.device = network, codec, device
        self.settings = {"schedule": "constant", **settings}
        check_choice("schedule", self.settings["schedule"], SCHEDULES)
        self.patience = None if patience is None else check_int("patience", patience, low=1)
        self.log_every = None if log_every is None else check_int("log_every", log_every, low=1)
        self.precision = check_choice("precision", precision, PRECISIONS)
        self.workers = check_int("workers", workers, low=0)
        if not all(callable(c) for c in callbacks):
            raise fail("callbacks", callbacks, "a list of callables of the epoch's record")
        self.callbacks, self.save, self.checkpoint = list(callbacks), save, checkpoint
        self.progress, self.log_file = progress, log
        self.context = distributed.context()
        self.history: dict[str, Any] = empty_history()
        self.state: dict[str, Any] | None = None
        self.best: dict[str, Any] | None = None

    # -- the run ----------------------------------------------------------------------------------
    def fit(self, data: list[Frames] | FrameCorpus, epochs: int,
            resume: dict[str, Any] | None = None,
            history: dict[str, Any] | None = None) -> dict[str, Any]:
        """Train up to epoch ``epochs`` on ``data``: one 2-D Frames per sound, or a prepared
        :class:`~pvrnn.model.corpus.FrameCorpus`.

        Fresh (no ``resume``): the weights are initialised from the seed and the codec is
        fitted on the training stretches only. With ``resume`` (the ``training`` state of a
        model file whose weights, codec and ``history`` are loaded), training continues at the
        next epoch with the same result as an uninterrupted run.

        Returns:
            dict: :attr:`history`; the network holds the best epoch's weights.
        """
        cuda = [self.device] if self.device.type == "cuda" else []
        ctx = self.context
        with torch.random.fork_rng(devices=cuda):
            net, codec = self.network.to(self.device), self.codec.to(self.device)
            if isinstance(data, FrameCorpus):
                streams = CorpusStreams(data, self.settings, self.device, ctx.rank, ctx.world,
                                        self.workers, codec.mode)
            else:
                streams = MemoryStreams(data, self.settings, self.device, ctx.rank, ctx.world)
            if resume is None:
                torch.manual_seed(self.settings["seed"])
                net.reset_parameters()
                codec.fit(streams.codec_frames())
            streams.prepare(codec)
            opt = self._optimizer()
            plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, factor=0.5, patience=PLATEAU_PATIENCE)
                if self.settings["schedule"] == "plateau" else None)
            if resume is None:
                self.state = self._state(0, opt, plateau, streams.frame_counts)
            else:
                self._resume(resume, history, opt, plateau)
            log = None
            if self.log_file is not None and ctx.main:
                log = TrainingLog(self.log_file, None if resume is None else self.state["epoch"])
            try:
                return self._run(streams, opt, plateau, epochs, log)
            finally:
                if log is not None:
                    log.close()

    def _run(self, streams, opt, plateau, epochs, log) -> dict[str, Any]:
        from tqdm import tqdm  # text bars on stderr: no widget warnings in notebooks

        net, settings, ctx = self.network, self.settings, self.context
        model = net
        if ctx.world > 1:
            model = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        steps = streams.steps
        start = self.state["epoch"]
        bar = tqdm(total=epochs * steps, initial=start * steps,
                   disable=not (self.progress and ctx.main), file=sys.stderr, desc="train",
                   unit="step", dynamic_ncols=True, leave=True)
        try:
            for epoch in range(start + 1, epochs + 1):
                if self._patience_spent():
                    break
                # dropout draws: from (seed, epoch, rank), so a resumed run repeats them
                torch.manual_seed(settings["seed"] * 1_000_003 + 7919 * epoch + ctx.rank)
                began = time.perf_counter()
                net.train()
                train_loss, timing = self._epoch(model, streams, opt, bar, epoch, epochs, log)
                net.eval()
                with torch.no_grad():
                    total, count = streams.validation(net)
                    total = distributed.all_sum(torch.stack([total.float(),
                                                             total.new_tensor(float(count))]))
                val_loss = float(total[0] / total[1]) if streams.has_validation else None
                if not math.isfinite(train_loss) or not math.isfinite(val_loss or 0.0):
                    self._diverged(epoch, train_loss, val_loss, opt, plateau)
                if plateau is not None:
                    plateau.step(train_loss if val_loss is None else val_loss)
                seconds = time.perf_counter() - began
                record = dict(epoch=epoch, train_loss=train_loss, val_loss=val_loss,
                              seconds=seconds, frames=streams.frames_per_epoch,
                              lr=opt.param_groups[0]["lr"], **timing)
                for key in EPOCH_KEYS:
                    self.history[key].append(record[key])
                if self.best is None or val_loss is None or val_loss < self.best["val_loss"]:
                    self.best = {"epoch": epoch, "val_loss": val_loss,
                                 "network": _clone(net.state_dict())}
                self.history["best_epoch"] = record["best_epoch"] = self.best["epoch"]
                self.state = self._state(epoch, opt, plateau, streams.frame_counts)
                if log is not None:  # before the checkpoint: the log never lags it
                    log.write("epoch", step=epoch * steps, **record)
                if self.save is not None and ctx.main:
                    self.save(self)
                for callback in self.callbacks:
                    callback(dict(record))
                val_text = "-" if val_loss is None else f"{val_loss:.4g}"
                bar.set_postfix_str(f"epoch {epoch} train {train_loss:.4g} val {val_text}")
        finally:
            bar.close()
            self._keep_best()
        return self.history

    def _epoch(self, model, streams, opt, bar, epoch: int, epochs: int, log):
        """One pass over the streams in BPTT windows: the mean training loss (over all
        processes) and the timing of the epoch (``data_seconds``, ``frames_per_second``)."""
        net, params = self.network, [p for g in opt.param_groups for p in g["params"]]
        steps, world = streams.steps, self.context.world
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                  enabled=self.precision == "bf16")
        state, total, rows = None, torch.zeros((), device=self.device), 0
        since, since_rows, since_loss = time.perf_counter(), 0, torch.zeros((), device=self.device)
        began, waited, last_print, frames = time.perf_counter(), 0.0, 0.0, 0
        batches = iter(streams.epoch(epoch))
        step = 0
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            waited += time.perf_counter() - t0
            if batch is None:
                break
            inputs, targets = batch
            if self.settings["schedule"] == "cosine":
                progress = (epoch - 1 + step / steps) / epochs
                for group in opt.param_groups:
                    group["lr"] = self.settings["lr"] * 0.5 * (1 + math.cos(math.pi * progress))
            with autocast:
                mixture, state = model(inputs, state)
                loss = net.loss(mixture, targets).float()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, self.settings["clip"])
            opt.step()
            state = _detach(state)
            n = inputs.shape[1]
            total, rows, step = total + loss.detach() * n, rows + n, step + 1
            since_loss, since_rows = since_loss + loss.detach() * n, since_rows + n
            frames += inputs.shape[0] * n * world
            bar.update(1)
            now = time.perf_counter()
            if self.progress and now - last_print > 0.5:
                rate = frames / max(now - began, 1e-9)
                bar.set_postfix_str(f"epoch {epoch} loss {loss.item():.4g} "
                                    f"{rate:,.0f} frames/s", refresh=False)
                last_print = now
            if log is not None and self.log_every and step % self.log_every == 0:
                log.write("step", epoch=epoch, step=(epoch - 1) * steps + step,
                          train_loss=float(since_loss) / since_rows,
                          lr=opt.param_groups[0]["lr"], seconds=now - since,
                          frames=since_rows * inputs.shape[0] * world,
                          frames_per_second=since_rows * inputs.shape[0] * world / (now - since))
                since, since_rows, since_loss = now, 0, torch.zeros((), device=self.device)
        mean = distributed.all_sum(total / max(rows, 1)) / world
        seconds = time.perf_counter() - began
        return float(mean), {"data_seconds": waited, "frames_per_second": frames / seconds}

    def validation_loss(self, held: list[tuple[torch.Tensor, int]]) -> torch.Tensor | None:
        """Mean loss per held-out row, or ``None`` when nothing is held out.

        Args:
            held: per held-out stretch, its sound's features ``(R, F)`` up to the stretch's
                end and the first held-out row ``r >= 1``: rows ``r .. R-1`` are predicted
                with the state warmed up on the rows before.
        """
        from .streams import _nll_sum

        total, count = None, 0
        for x, first in held:
            if x.shape[0] - first < 1:
                continue
            loss, _ = _nll_sum(self.network, x, first)
            total = loss + (0 if total is None else total)
            count += x.shape[0] - first
        return None if total is None else total / count

    # -- state ------------------------------------------------------------------------------------
    def _optimizer(self) -> torch.optim.Optimizer:
        kind = torch.optim.Adagrad if self.settings["optimizer"] == "adagrad" else torch.optim.Adam
        return kind(self.network.parameters(), lr=self.settings["lr"])

    def _state(self, epoch: int, opt: torch.optim.Optimizer, plateau,
               frame_counts: list[int]) -> dict:
        rng: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"epoch": epoch, "network": _clone(self.network.state_dict()),
                "optimizer": copy.deepcopy(opt.state_dict()),
                "scheduler": None if plateau is None else copy.deepcopy(plateau.state_dict()),
                "rng": rng, "settings": dict(self.settings), "frame_counts": list(frame_counts)}

    def _resume(self, state: dict[str, Any], history: dict[str, Any], opt, plateau) -> None:
        """Continue from a model file: its weights (the best) are loaded in the network."""
        self.history = copy.deepcopy(history)
        epoch = self.history["best_epoch"]
        if epoch is not None:
            self.best = {"epoch": epoch, "val_loss": self.history["val_loss"][epoch - 1],
                         "network": _clone(self.network.state_dict())}
        if "network" in state:  # version 1 files kept the last epoch's weights only
            self.network.load_state_dict(state["network"])
        try:
            opt.load_state_dict(state["optimizer"])
            if plateau is not None and state.get("scheduler") is not None:
                plateau.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, RuntimeError) as error:
            raise PvrnnError(f"checkpoint={self.checkpoint!r}: optimizer state does not "
                             f"match ({error})") from None
        self.state = {**state, "network": _clone(self.network.state_dict()),
                      "settings": dict(self.settings)}

    def _patience_spent(self) -> bool:
        if self.patience is None or self.best is None or not self.history["epoch"]:
            return False
        return self.history["epoch"][-1] - self.best["epoch"] >= self.patience

    def _keep_best(self) -> None:
        if self.best is not None:
            self.network.load_state_dict(self.best["network"])
        self.network.eval()

    def _diverged(self, epoch: int, train_loss: float, val_loss: float | None, opt,
                  plateau) -> None:
        """Restore the last good epoch (the network then keeps the best) and raise."""
        self.network.load_state_dict(self.state["network"])
        opt.load_state_dict(self.state["optimizer"])
        kept = (f"; checkpoint={self.checkpoint!r} keeps epoch {epoch - 1}"
                if self.checkpoint is not None and epoch > 1 else "")
        best = "" if self.best is None else f" (it holds epoch {self.best['epoch']}'s weights)"
        raise PvrnnError(
            f"epoch {epoch}: the training loss became {train_loss} (validation {val_loss}); "
            f"expected finite values. Lower lr={self.settings['lr']:g} or "
            f"clip={self.settings['clip']:g}; the model was restored to epoch {epoch - 1}"
            f"{best}{kept}"
        )
