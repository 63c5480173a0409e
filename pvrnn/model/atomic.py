"""Files that are whole or absent: write a temporary file beside the target, fsync, rename."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["atomic_write"]


def atomic_write(target: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write`` on a binary handle of a temporary file in ``target``'s folder, fsync
    it, then ``os.replace`` it onto ``target``; on any failure the temporary file is removed
    and ``target`` is untouched."""
    target = Path(target)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
