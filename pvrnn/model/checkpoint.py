"""Model files: one ``torch.save`` dict of tensors and plain containers, written atomically.

The layout (``format_version`` :data:`FORMAT_VERSION`)::

    format_version, pvrnn_version, config (a plain dict), codec (state dict),
    network (the kept weights: the best-validation epoch's), reference (per sound: priming
    and reset frames), history (per-epoch lists and best_epoch), training (None, or the last
    epoch's state to resume from: epoch, network, optimizer, rng, settings, frame_counts)

Files load with ``torch.load(weights_only=True)``. Version 1 files (no ``best_epoch``, no
latest weights in ``training``: their ``network`` was the last epoch's) still load and resume.
The checkpoint that ``fit(checkpoint=...)`` writes every epoch is the same format.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import PvrnnError, fail
from .atomic import atomic_write
from .codec import FrameCodec
from .config import SoundModelConfig
from .data import REFERENCE_KEYS
from .network import SpectralRNN
from .train import EPOCH_KEYS

__all__ = ["FORMAT_VERSION", "atomic_save", "read_model_file", "read_config", "model_state",
           "restore", "check_resume"]

#: Training settings that files written before they existed were trained with.
RESUME_DEFAULTS = {"schedule": "constant"}

#: Version of the model-file layout written by :func:`model_state`.
FORMAT_VERSION = 2

#: Configuration fields added since files of this format were first written, with the value
#: their absence means (a file without ``representation`` holds phase-vocoder frames; one
#: without ``bottleneck`` or ``input_noise`` was trained with neither, whatever today's
#: defaults are).
ADDED_FIELDS = {"representation": "pv", "bottleneck": None, "input_noise": 0.0}


def _version() -> str:
    from .. import __version__

    return __version__


def to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor (in dicts, lists, tuples) detached and moved to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu")
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def model_state(config: dict[str, Any], codec: FrameCodec, network: dict[str, torch.Tensor],
                reference: list[dict[str, torch.Tensor]], history: dict[str, Any],
                training: dict[str, Any] | None) -> dict[str, Any]:
    """The model-file dict, on the CPU (``network``: the weights to keep, a state dict)."""
    return to_cpu({
        "format_version": FORMAT_VERSION,
        "pvrnn_version": _version(),
        "config": config,
        "codec": codec.state_dict(),
        "network": network,
        "reference": reference,
        "history": copy.deepcopy(history),
        "training": training,
    })


def atomic_save(obj: Any, path: Any) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then ``os.replace``.

    Raises:
        PvrnnError: when ``path`` is not a path in an existing folder.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise fail("path", path, "a file path")
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise fail("path", str(path), f"a file in an existing folder ({str(folder)!r} is not one)")
    atomic_write(target, lambda handle: torch.save(obj, handle))


def read_model_file(path: Any) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` of a model file, its version and keys checked.

    Raises:
        PvrnnError: naming the file when it is missing, unreadable, not a pvrnn model file,
            of a newer format or incomplete.
    """
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


def read_config(data: dict[str, Any], path: Any) -> SoundModelConfig:
    """The configuration a model-file dict holds; :class:`PvrnnError` naming the file."""
    try:
        saved = data["config"]
        return SoundModelConfig.from_dict(
            {**ADDED_FIELDS, **saved} if isinstance(saved, dict) else saved)
    except PvrnnError as error:
        raise PvrnnError(f"path={str(path)!r}: bad configuration in the model file: "
                         f"{error}") from None


def restore(data: dict[str, Any], config: dict[str, Any], codec: FrameCodec,
            network: SpectralRNN, path: Any) -> tuple[list[dict[str, torch.Tensor]],
                                                      dict[str, Any], dict[str, Any] | None]:
    """Load a model-file dict into ``codec`` and ``network``, strictly.

    Args:
        data: from :func:`read_model_file`.
        config: the model's configuration as a dict; the file's must equal it.
        codec, network: loaded in place (on their own device).
        path: named in errors.

    Returns:
        tuple: the reference frames (on the codec's device), the history and the training
        state (``None`` if the file has none).

    Raises:
        PvrnnError: naming the file and the first mismatch.
    """
    theirs = data["config"]
    if isinstance(theirs, dict):
        theirs = {**ADDED_FIELDS, **theirs}
    if not isinstance(theirs, dict) or theirs != config:
        theirs = theirs if isinstance(theirs, dict) else {}
        key = next(k for k in config if config[k] != theirs.get(k))
        raise PvrnnError(f"path={str(path)!r}: the file's {key}={theirs.get(key)!r} does not "
                         f"match this model's {key}={config[key]!r}")
    device = codec.mean.device
    try:
        codec.load_state_dict(data["codec"], strict=True)
        network.load_state_dict(data["network"], strict=True)
        reference = [{k: torch.as_tensor(r[k]).to(device) for k in REFERENCE_KEYS}
                     for r in data["reference"]]
        history = {k: list(data["history"][k]) for k in EPOCH_KEYS}
    except (RuntimeError, KeyError, TypeError, PvrnnError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise PvrnnError(f"path={str(path)!r}: the model file does not match its "
                         f"configuration ({first})") from None
    # version 1 kept the last epoch's weights
    last = history["epoch"][-1] if history["epoch"] else None
    history["best_epoch"] = data["history"].get("best_epoch", last)
    if not reference or not codec.fitted:
        raise PvrnnError(f"path={str(path)!r}: holds no fitted model")
    for r in reference:
        if {tuple(v.shape[1:]) for v in r.values()} != {(codec.n_partials,)}:
            raise PvrnnError(f"path={str(path)!r}: reference frames have the wrong shape")
    network.eval()
    return reference, history, data.get("training")


def check_resume(data: dict[str, Any], settings: dict[str, Any], frame_counts: list[int],
                 path: Any) -> dict[str, Any]:
    """The training state of ``data`` if a fit with ``settings`` on sounds of ``frame_counts``
    frames may resume it; else :class:`PvrnnError` naming the first difference."""
    training = data.get("training")
    if training is None:
        raise PvrnnError(f"checkpoint={str(path)!r}: holds no training state to resume from "
                         "(it was not written by fit)")
    saved = {**RESUME_DEFAULTS, **training["settings"]}
    for key, value in settings.items():
        if saved.get(key) != value:
            raise PvrnnError(
                f"{key}={value!r}: expected {saved.get(key)!r} as in checkpoint={str(path)!r} "
                "(a resumed run must use the same training settings)"
            )
    if list(frame_counts) != list(training["frame_counts"]):
        raise PvrnnError(
            f"sources: {len(frame_counts)} sound(s) of {list(frame_counts)} frames, but "
            f"checkpoint={str(path)!r} was trained on {list(training['frame_counts'])} "
            "frames; expected the same sources"
        )
    return training
