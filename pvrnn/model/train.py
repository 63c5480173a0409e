"""Training: a :class:`Trainer` that fits the codec and trains the network by truncated BPTT.

One epoch reads the training stretches (see :mod:`pvrnn.model.data`) as ``batch_size``
parallel streams in windows of ``seq_length`` frames, the recurrent state carried from one
window to the next (detached), as char-rnn and sound-rnn did; then measures the loss on the
held-out frames. The weights of the best validation epoch are kept; a NaN/inf loss restores
the last good epoch and raises.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from typing import Any, Callable, Sequence

import torch

from ..dsp.frames import Frames
from ..errors import PvrnnError, check_int, fail
from .codec import FrameCodec
from .data import layout, split, windows
from .network import SpectralRNN

__all__ = ["Trainer", "EPOCH_KEYS", "empty_history", "resolve_device"]

#: The per-epoch lists of a history (it also holds ``best_epoch``).
EPOCH_KEYS = ("epoch", "train_loss", "val_loss", "seconds", "frames")


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


def _clone(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state_dict.items()}


def _detach(state: Any) -> Any:
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class Trainer:
    """Fits a :class:`~pvrnn.FrameCodec` and trains a :class:`~pvrnn.SpectralRNN` on frames.

    Args:
        network, codec: trained in place (moved to ``device``).
        settings (dict): ``seq_length``, ``batch_size``, ``optimizer``, ``lr``, ``clip``,
            ``validation`` (see :class:`~pvrnn.SoundModelConfig`) and ``seed``.
        device: where to train.
        patience (int, optional): stop when this many epochs bring no better validation loss
            (``None``: run every epoch).
        callbacks: each called after every epoch with that epoch's record (a dict of
            :data:`EPOCH_KEYS` and ``best_epoch``).
        save (callable, optional): called with the trainer after every epoch (writes the
            checkpoint: :attr:`best` weights, :attr:`history`, :attr:`state`).
        checkpoint (str, optional): the checkpoint's name, for messages.
        progress (bool): a tqdm bar with the losses on stderr.

    Attributes:
        history (dict): the per-epoch record, see :func:`empty_history`.
        state (dict): the last finished epoch's state (``epoch``, ``network`` weights,
            ``optimizer``, ``rng``, ``settings``, ``frame_counts``): what a resume continues.
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
    ) -> None:
        self.network, self.codec, self.device = network, codec, device
        self.settings = dict(settings)
        self.patience = None if patience is None else check_int("patience", patience, low=1)
        if not all(callable(c) for c in callbacks):
            raise fail("callbacks", callbacks, "a list of callables of the epoch's record")
        self.callbacks, self.save, self.checkpoint = list(callbacks), save, checkpoint
        self.progress = progress
        self.history: dict[str, Any] = empty_history()
        self.state: dict[str, Any] | None = None
        self.best: dict[str, Any] | None = None

    # -- the run ----------------------------------------------------------------------------------
    def fit(self, frames: list[Frames], epochs: int, resume: dict[str, Any] | None = None,
            history: dict[str, Any] | None = None) -> dict[str, Any]:
        """Train up to epoch ``epochs`` on ``frames`` (one 2-D Frames per sound).

        Fresh (no ``resume``): the weights are initialised from the seed and the codec is
        fitted on the training stretches only. With ``resume`` (the ``training`` state of a
        model file whose weights, codec and ``history`` are loaded), training continues at the
        next epoch with the same result as an uninterrupted run.

        Returns:
            dict: :attr:`history`; the network holds the best epoch's weights.
        """
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            net, codec = self.network.to(self.device), self.codec.to(self.device)
            seed = self.settings["seed"]
            part = split([f.n_frames for f in frames], self.settings["validation"], seed)
            train = [frames[s][a:b].to(self.device) for s, a, b in part.train]
            if resume is None:
                torch.manual_seed(seed)
                net.reset_parameters()
                codec.fit(train)
            features = [codec.encode(f).float() for f in train]
            held = []  # (features up to the stretch's end, first held-out row)
            for s, a, b in part.held_out:
                x = codec.encode(frames[s][:b].to(self.device)).float()
                held.append((x, max(1, a - (b - x.shape[0]))))
            inputs, targets = layout(features, self.settings["batch_size"])
            opt = self._optimizer()
            if resume is None:
                torch.manual_seed(seed)  # dropout stream, independent of the init
                self.state = self._state(0, opt, frames)
            else:
                self._resume(resume, history, opt)
            return self._run(inputs, targets, held, opt, frames, epochs)

    def _run(self, inputs, targets, held, opt, frames, epochs) -> dict[str, Any]:
        from tqdm import tqdm  # text bars on stderr: no widget warnings in notebooks

        net, settings = self.network, self.settings
        spans = windows(inputs.shape[1], settings["seq_length"])
        start = self.state["epoch"]
        bar = tqdm(total=epochs * len(spans), initial=start * len(spans),
                   disable=not self.progress, file=sys.stderr, desc="train", unit="step",
                   dynamic_ncols=True, leave=True)
        try:
            for epoch in range(start + 1, epochs + 1):
                if self._patience_spent():
                    break
                began = time.perf_counter()
                net.train()
                train_loss = self._epoch(inputs, targets, spans, opt, bar, epoch)
                net.eval()
                with torch.no_grad():
                    val = self.validation_loss(held)
                val_loss = None if val is None else float(val)
                if not math.isfinite(train_loss) or not math.isfinite(val_loss or 0.0):
                    self._diverged(epoch, train_loss, val_loss, opt)
                record = dict(epoch=epoch, train_loss=train_loss, val_loss=val_loss,
                              seconds=time.perf_counter() - began,
                              frames=inputs.shape[1] * settings["batch_size"])
                for key in EPOCH_KEYS:
                    self.history[key].append(record[key])
                if self.best is None or val_loss is None or val_loss < self.best["val_loss"]:
                    self.best = {"epoch": epoch, "val_loss": val_loss,
                                 "network": _clone(net.state_dict())}
                self.history["best_epoch"] = record["best_epoch"] = self.best["epoch"]
                self.state = self._state(epoch, opt, frames)
                if self.save is not None:
                    self.save(self)
                for callback in self.callbacks:
                    callback(dict(record))
                val_text = "-" if val_loss is None else f"{val_loss:.4g}"
                bar.set_postfix_str(f"epoch {epoch} train {train_loss:.4g} val {val_text}")
        finally:
            bar.close()
            self._keep_best()
        return self.history

    def _epoch(self, inputs, targets, spans, opt, bar, epoch: int) -> float:
        """One pass over the streams in BPTT windows; returns the mean training loss."""
        net, params = self.network, [p for g in opt.param_groups for p in g["params"]]
        state, total, last_print = None, torch.zeros((), device=self.device), 0.0
        for a, b in spans:
            mixture, state = net(inputs[:, a:b], state)
            loss = net.loss(mixture, targets[:, a:b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, self.settings["clip"])
            opt.step()
            state = _detach(state)
            total = total + loss.detach() * (b - a)
            bar.update(1)
            now = time.monotonic()
            if self.progress and now - last_print > 0.5:
                bar.set_postfix_str(f"epoch {epoch} loss {loss.item():.4g}", refresh=False)
                last_print = now
        return float(total) / inputs.shape[1]

    def validation_loss(self, held: list[tuple[torch.Tensor, int]]) -> torch.Tensor | None:
        """Mean loss per held-out row, or ``None`` when nothing is held out.

        Args:
            held: per held-out stretch, its sound's features ``(R, F)`` up to the stretch's
                end and the first held-out row ``r >= 1``: rows ``r .. R-1`` are predicted
                with the state warmed up on the rows before.
        """
        total, count = None, 0
        for x, first in held:
            if x.shape[0] - first < 1:
                continue
            raw, _ = self.network.raw(x[None, :-1])  # predicts rows 1..R-1
            loss = self.network.loss(self.network.mixture(raw[:, first - 1 :]), x[None, first:])
            total = loss * (x.shape[0] - first) + (0 if total is None else total)
            count += x.shape[0] - first
        return None if total is None else total / count

    # -- state ------------------------------------------------------------------------------------
    def _optimizer(self) -> torch.optim.Optimizer:
        kind = torch.optim.Adagrad if self.settings["optimizer"] == "adagrad" else torch.optim.Adam
        return kind(self.network.parameters(), lr=self.settings["lr"])

    def _state(self, epoch: int, opt: torch.optim.Optimizer, frames: list[Frames]) -> dict:
        rng: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"epoch": epoch, "network": _clone(self.network.state_dict()),
                "optimizer": copy.deepcopy(opt.state_dict()), "rng": rng,
                "settings": dict(self.settings), "frame_counts": [f.n_frames for f in frames]}

    def _resume(self, state: dict[str, Any], history: dict[str, Any], opt) -> None:
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
        except (ValueError, KeyError, RuntimeError) as error:
            raise PvrnnError(f"checkpoint={self.checkpoint!r}: optimizer state does not "
                             f"match ({error})") from None
        torch.set_rng_state(state["rng"]["cpu"])
        if self.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.state = {**state, "network": _clone(self.network.state_dict())}

    def _patience_spent(self) -> bool:
        if self.patience is None or self.best is None or not self.history["epoch"]:
            return False
        return self.history["epoch"][-1] - self.best["epoch"] >= self.patience

    def _keep_best(self) -> None:
        if self.best is not None:
            self.network.load_state_dict(self.best["network"])
        self.network.eval()

    def _diverged(self, epoch: int, train_loss: float, val_loss: float | None, opt) -> None:
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
