"""The training log: a CSV beside the checkpoint (``model.csv`` for ``model.pt``), and
TensorBoard event files (``model.tb/``) when ``torch.utils.tensorboard`` is importable.

One row per epoch (``kind="epoch"``) and, with ``log_every=N``, one per N steps
(``kind="step"``; its ``train_loss`` is the mean over those steps, ``val_loss`` empty).
Rows are appended and flushed as training goes. The epoch row is written *before* the
checkpoint, so after a crash the log never lacks an epoch the checkpoint holds; a resumed
run drops the rows after the checkpoint's epoch (and a line cut by the crash) first.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

from .atomic import atomic_write

__all__ = ["TrainingLog", "COLUMNS", "read_log", "log_path"]

COLUMNS = ("kind", "epoch", "step", "train_loss", "val_loss", "lr", "seconds", "frames",
           "frames_per_second", "data_seconds")


def log_path(checkpoint: str | os.PathLike[str]) -> Path:
    """``model.pt`` -> ``model.csv``."""
    return Path(checkpoint).with_suffix(".csv")


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a training log as dicts: ``kind`` (str), ``epoch`` and ``step`` (int), the
    rest floats (``None`` for empty cells); a last line cut short by a crash is left out."""
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if None in row.values() or set(row) != set(COLUMNS):
                continue  # truncated line
            try:
                rows.append({k: _value(k, v) for k, v in row.items()})
            except ValueError:
                continue
    return rows


def _value(key: str, text: str) -> Any:
    if key == "kind":
        return text
    if text == "":
        return None
    return int(text) if key in ("epoch", "step") else float(text)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "" if value is None else str(value)
    return f"{value:.8g}" if isinstance(value, float) else str(value)


class TrainingLog:
    """Appends rows to ``path`` (and TensorBoard when importable).

    Args:
        path: the CSV file.
        resume_epoch (int, optional): continue a log: keep the rows up to this epoch.
            ``None``: start a new log (an existing file is replaced).
        tensorboard (bool): also write ``<stem>.tb/`` event files if TensorBoard imports.
    """

    def __init__(self, path: str | os.PathLike[str], resume_epoch: int | None = None,
                 tensorboard: bool = True) -> None:
        self.path = Path(path)
        kept = []
        if resume_epoch is not None and self.path.is_file():
            kept = [r for r in read_log(self.path) if r["epoch"] <= resume_epoch]
        text = io.StringIO()
        writer = csv.DictWriter(text, COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in kept:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        atomic_write(self.path, lambda handle: handle.write(text.getvalue().encode()))
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, COLUMNS, lineterminator="\n")
        self._board = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: the CSV is the log
                pass
            else:
                self._board = SummaryWriter(log_dir=str(self.path.with_suffix(".tb")))

    def write(self, kind: str, **values: Any) -> None:
        """One row (``kind`` "epoch" or "step"; missing columns empty), flushed."""
        self._writer.writerow({k: _cell(values.get(k)) for k in COLUMNS if k != "kind"}
                              | {"kind": kind})
        self._file.flush()
        if self._board is not None:
            for key in ("train_loss", "val_loss", "lr", "frames_per_second"):
                if values.get(key) is not None:
                    self._board.add_scalar(f"{kind}/{key}", values[key], values["step"])
            self._board.flush()

    def close(self) -> None:
        self._file.close()
        if self._board is not None:
            self._board.close()
