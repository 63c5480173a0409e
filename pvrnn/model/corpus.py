"""A corpus on disk: many audio files analysed once, cached, and read lazily by frame rows.

``SoundModel.fit`` keeps every frame of in-memory sources (tensors, Frames, a few files) on
the training device: right for a note or a phrase. A sound library of hours does not fit
there, so :class:`FrameCorpus` is a second, explicit code path (``fit`` takes one, or a
folder, which it turns into one; ``pvrnn train`` always builds one from its files):

- each file is analysed once with the model's analysis settings (the same
  :func:`~pvrnn.model.data.source_frames` as in-memory sources) and the frames are cached as
  one ``.npy`` array ``(n_frames, 2, n_partials)`` float32 (magnitude, deviation) in
  ``.pvrnn-cache/`` beside the file, or in ``cache_dir``. The cache key holds the file's
  absolute path, size and modification time and the analysis settings, so an edited file or
  other settings analyse again (and the stale entry is removed);
- training reads the arrays a batch of windows at a time, by runs of rows
  (:meth:`FrameCorpus.read_runs`, for :class:`~pvrnn.model.streams.CorpusStreams`), so
  memory is bounded by the batch and the page cache, not by the corpus.

Each file is analysed whole: during analysis, memory grows with the longest file (about
0.2 GB per minute of 44.1 kHz audio); split longer recordings into files of minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from ..dsp.frames import Frames
from ..errors import PvrnnError, check_positive, fail
from .atomic import atomic_write
from .config import SoundModelConfig
from .data import edge_frames, source_frames

__all__ = ["FrameCorpus", "AUDIO_SUFFIXES", "find_audio", "as_corpus", "frame_counts",
           "CACHE_FOLDER", "MAX_REFERENCE_SOUNDS"]

#: File suffixes a folder is searched for (case-insensitive).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff")

def default_cache(path: Path) -> Path:
    """Where a file's analysis is cached without ``cache_dir``: ``.pvrnn-cache/`` beside it,
    or, when its folder is not writable (a system sound library, a read-only mount), a folder
    per source folder under ``$XDG_CACHE_HOME/pvrnn`` (``~/.cache/pvrnn``)."""
    beside = path.parent / CACHE_FOLDER
    if beside.is_dir() or os.access(path.parent, os.W_OK):
        return beside
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pvrnn"
    where = str(path.parent.resolve())
    return root / f"{path.parent.name}-{hashlib.sha1(where.encode()).hexdigest()[:10]}"


#: The cache folder made beside each file (unless ``cache_dir`` is given).
CACHE_FOLDER = ".pvrnn-cache"

#: Bump when the cached arrays change meaning.
CACHE_VERSION = 1

#: A corpus model keeps the priming/reset frames of at most this many files (the first ones):
#: the model file stays small however large the corpus.
MAX_REFERENCE_SOUNDS = 16


def as_corpus(sources: Any, sample_rate: float | None = None) -> FrameCorpus | None:
    """``sources`` as a :class:`FrameCorpus` when it is one or names a folder (or a list
    holding folders); ``None`` for in-memory sources (tensors, Frames, files), which ``fit``
    keeps on the training device as before."""
    if isinstance(sources, FrameCorpus):
        return sources
    items = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    paths = all(isinstance(i, (str, os.PathLike)) for i in items)
    if items and paths and any(Path(i).is_dir() for i in items):
        return FrameCorpus(items, sample_rate=sample_rate)
    return None


def frame_counts(data: Any) -> list[int]:
    """Frames per sound of a prepared corpus or a list of Frames."""
    return data.n_frames if isinstance(data, FrameCorpus) else [f.n_frames for f in data]


def find_audio(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files and folders -> audio files (folders searched recursively, sorted by path).

    Raises:
        PvrnnError: for no inputs, a missing path, or a folder with no audio files.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and p.suffix.lower() in AUDIO_SUFFIXES and CACHE_FOLDER not in p.parts)
            if not found:
                raise PvrnnError(f"input {str(name)!r}: a folder with no audio files; expected "
                                 f"files ending in {', '.join(AUDIO_SUFFIXES)}")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise PvrnnError(f"input {str(name)!r}: no such file or folder; expected audio files "
                             "or folders of them")
    if not paths:
        raise fail("inputs", list(inputs), "at least one audio file or folder")
    return paths


@dataclass(frozen=True)
class _Entry:
    path: Path
    array: Path  # the cached .npy
    n_frames: int
    sample_rate: float


class FrameCorpus:
    """Audio files and folders whose frames are analysed once, cached and memory-mapped.

    Args:
        inputs: audio files and folders of them (searched recursively for
            :data:`AUDIO_SUFFIXES`).
        sample_rate (float, optional): resample every file to this rate, Hz. Without it, files
            of another rate than the first are refused.
        cache_dir (path, optional): where the analysed frames go; default ``.pvrnn-cache/``
            beside each file.
        skip_bad (bool): skip unreadable, corrupt or too short files with a warning instead of
            raising.

    The files are listed at construction; :meth:`prepare` (called by ``fit`` with the
    model's settings) analyses what is not cached yet. After it, :attr:`n_frames`,
    :attr:`sample_rate` and :meth:`read` describe and read the frames.

    Example:
        >>> corpus = pvrnn.model.corpus.FrameCorpus(["library/"], cache_dir="cache/")
        >>> model = pvrnn.SoundModel()
        >>> model.fit(corpus, epochs=20, checkpoint="library.pt")

    Raises:
        PvrnnError: for missing inputs, an empty folder or a bad ``sample_rate``.
    """

    def __init__(self, inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str], *,
                 sample_rate: float | None = None, cache_dir: str | os.PathLike[str] | None = None,
                 skip_bad: bool = False) -> None:
        self.paths = find_audio(inputs)
        self.requested_rate = None if sample_rate is None else check_positive("sample_rate",
                                                                              sample_rate)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        if self.cache_dir is not None and self.cache_dir.exists() and not self.cache_dir.is_dir():
            raise fail("cache_dir", str(cache_dir), "a folder (or a path where one can be made)")
        self.skip_bad = bool(skip_bad)
        self.entries: list[_Entry] = []
        self._settings: dict[str, Any] | None = None

    def __repr__(self) -> str:
        state = f"{len(self.entries)} analysed" if self.entries else "not prepared"
        return f"FrameCorpus({len(self.paths)} files, {state})"

    # -- analysis and cache -----------------------------------------------------------------------
    def prepare(self, config: SoundModelConfig, *, shard: tuple[int, int] = (0, 1),
                barrier: Callable[[], None] | None = None,
                expected_rate: float | None = None) -> FrameCorpus:
        """Check the files, analyse the ones not cached for ``config``, open all; returns self.

        Args:
            config: the model's (resolved) analysis settings and ``n_partials``.
            shard: ``(rank, world)``: this process analyses files ``rank::world`` and, after
                ``barrier``, reads every file's cache (distributed training).
            barrier: called between analysing and opening (``None``: one process).
            expected_rate: Hz the files must have (a resumed model's).

        Raises:
            PvrnnError: naming the file, for an unreadable or corrupt file (unless
                ``skip_bad``), a file at another sample rate, or no usable file.
        """
        import soundfile as sf

        settings = {"version": CACHE_VERSION, "n_fft": config.n_fft,
                    "hop_length": config.hop_length, "window": config.window,
                    "n_partials": config.n_partials, "edge": edge_frames(config),
                    "sample_rate": self.requested_rate}
        usable: list[tuple[Path, float]] = []
        for path in self.paths:  # headers first: a bad file fails before hours of analysis
            try:
                info = sf.info(str(path))
                if info.frames < config.n_fft:
                    raise PvrnnError(f"holds {info.frames} samples, fewer than "
                                     f"n_fft={config.n_fft}")
            except (PvrnnError, RuntimeError, OSError, sf.LibsndfileError) as error:
                self._bad(path, error)
                continue
            rate = self.requested_rate or float(info.samplerate)
            if expected_rate is not None and rate != expected_rate:
                raise PvrnnError(f"input {str(path)!r} is at {rate:g} Hz: expected "
                                 f"{expected_rate:g} Hz, the model's (pass --sample-rate to "
                                 "resample)")
            if usable and rate != usable[0][1]:
                raise PvrnnError(
                    f"input {str(path)!r} is at {rate:g} Hz but {str(usable[0][0])!r} at "
                    f"{usable[0][1]:g} Hz: expected one rate; pass sample_rate= (--sample-rate) "
                    "to resample")
            usable.append((path, rate))
        rank, world = shard
        for i, (path, _) in enumerate(usable):
            if i % world == rank:
                self._analyse(path, config, settings)
        if barrier is not None:
            barrier()
        self.entries = []
        for path, _ in usable:
            entry = self._cached(path, settings)
            if entry is None:  # skipped as bad while analysing (here or on another rank)
                if not self.skip_bad:
                    raise PvrnnError(f"input {str(path)!r}: its analysis is missing from the cache")
                continue
            self.entries.append(entry)
        if not self.entries:
            raise PvrnnError(f"inputs: none of the {len(self.paths)} file(s) could be used; "
                             "expected at least one readable audio file")
        self._settings = settings
        return self

    def _bad(self, path: Path, error: Exception) -> None:
        detail = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
        detail = detail.replace(f"path={str(path)!r}: ", "")
        if not self.skip_bad:
            raise PvrnnError(f"input {str(path)!r}: {detail} (pass skip_bad=True / --skip-bad "
                             "to skip bad files)") from None
        warnings.warn(f"skipping input {str(path)!r}: {detail}", stacklevel=3)

    def _key(self, path: Path, settings: dict[str, Any]) -> tuple[Path, str, str]:
        stat = path.stat()
        where = str(path.resolve())
        folder = self.cache_dir if self.cache_dir is not None else default_cache(path)
        prefix = f"{path.stem}-{hashlib.sha1(where.encode()).hexdigest()[:10]}"
        key = json.dumps({**settings, "path": where, "size": stat.st_size,
                          "mtime_ns": stat.st_mtime_ns}, sort_keys=True)
        return folder, prefix, f"{prefix}-{hashlib.sha1(key.encode()).hexdigest()[:16]}"

    def _cached(self, path: Path, settings: dict[str, Any]) -> _Entry | None:
        folder, _, name = self._key(path, settings)
        meta = folder / f"{name}.json"
        if not meta.is_file():
            return None
        info = json.loads(meta.read_text())
        return _Entry(path, folder / f"{name}.npy", int(info["n_frames"]),
                      float(info["sample_rate"]))

    def _analyse(self, path: Path, config: SoundModelConfig, settings: dict[str, Any]) -> None:
        """Analyse one file into the cache (temp files + ``os.replace``), unless cached."""
        if self._cached(path, settings) is not None:
            return
        try:
            frames = source_frames(str(path), self.requested_rate, config, name=f"input {path}")
        except PvrnnError as error:
            self._bad(path, error)
            return
        folder, prefix, name = self._key(path, settings)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise fail("cache_dir", str(folder), f"a folder that can be created ({error}); "
                       "pass cache_dir= (--cache-dir) to cache elsewhere") from None
        for stale in folder.glob(f"{prefix}-*"):  # the file or the settings changed
            stale.unlink(missing_ok=True)
        data = torch.stack([frames.magnitude, frames.deviation], dim=1).numpy()  # (n, 2, P)
        atomic_write(folder / f"{name}.npy", lambda h: np.save(h, data))
        meta = {"path": str(path), "n_frames": int(data.shape[0]),
                "sample_rate": float(frames.sample_rate), "settings": settings}
        atomic_write(folder / f"{name}.json", lambda h: h.write(json.dumps(meta).encode()))

    # -- reading ----------------------------------------------------------------------------------
    @property
    def n_frames(self) -> list[int]:
        """Frames of each usable file (after :meth:`prepare`)."""
        return [e.n_frames for e in self.entries]

    @property
    def sample_rate(self) -> float:
        """The files' sample rate, Hz (after :meth:`prepare`)."""
        self._require_prepared()
        return self.entries[0].sample_rate

    def array(self, i: int) -> np.ndarray:
        """File ``i``'s frames, memory-mapped: ``(n_frames, 2, n_partials)`` float32
        (magnitude, deviation in Hz).

        A new map each call (opening one costs ~0.1 ms): the pages an epoch reads count in
        the process's resident memory while they are mapped, so maps are dropped after each
        read instead of kept (kept, one epoch over an hour of 1025-bin frames mapped 2.3 GB).
        """
        self._require_prepared()
        return np.load(self.entries[i].array, mmap_mode="r")

    def read_runs(self, i: int, starts: np.ndarray, lengths: np.ndarray, out: np.ndarray,
                  at: np.ndarray) -> None:
        """Rows ``[starts[k], starts[k] + lengths[k])`` of file ``i`` into
        ``out[at[k] : at[k] + lengths[k]]`` (``out`` C-contiguous float32 ``(n, 2, P)``), read
        with ``preadv``: one system call per run, no map (no page faults, nothing of the file
        counted in the process's resident memory)."""
        self._require_prepared()
        array = self.array(i)  # its header: where the rows start, and their shape
        offset, row = array.offset, array[0].nbytes
        if array.dtype != out.dtype or array.shape[1:] != out.shape[1:]:
            raise fail("out", out.shape, f"float32 rows of shape {array.shape[1:]}")
        del array
        if not hasattr(os, "preadv"):  # not on every platform: copy from the map
            array = self.array(i)
            for a, n, k in zip(starts.tolist(), lengths.tolist(), at.tolist()):
                out[k : k + n] = array[a : a + n]
            return
        flat = out.reshape(out.shape[0], -1).view(np.uint8)
        fd = os.open(self.entries[i].array, os.O_RDONLY)
        try:
            for a, n, k in zip(starts.tolist(), lengths.tolist(), at.tolist()):
                if os.preadv(fd, [flat[k : k + n]], offset + a * row) != n * row:
                    raise PvrnnError(f"cache {str(self.entries[i].array)!r}: shorter than its "
                                     "header says; expected it rebuilt (delete it)")
        finally:
            os.close(fd)

    def frames(self, i: int, start: int = 0, stop: int | None = None) -> Frames:
        """Rows ``[start, stop)`` of file ``i`` as 2-D :class:`~pvrnn.Frames` (a copy)."""
        rows = torch.from_numpy(np.array(self.array(i)[start:stop]))  # (n, 2, P)
        return self.to_frames(rows)

    def to_frames(self, rows: torch.Tensor) -> Frames:
        """Cached rows ``(..., n, 2, P)`` -> Frames ``(..., n, P)`` of the corpus's settings."""
        s = self._settings
        return Frames(rows[..., 0, :], deviation=rows[..., 1, :], sample_rate=self.sample_rate,
                      n_fft=s["n_fft"], hop_length=s["hop_length"])

    def reference_sounds(self) -> Iterator[Frames]:
        """The first :data:`MAX_REFERENCE_SOUNDS` files' frames (what generation primes on),
        read one at a time."""
        for i in range(min(len(self.entries), MAX_REFERENCE_SOUNDS)):
            yield self.frames(i)

    def _require_prepared(self) -> None:
        if not self.entries:
            raise PvrnnError("FrameCorpus: not prepared; expected corpus.prepare(config) first "
                             "(fit does it)")
