"""What one training step reads: parallel streams of frames cut into truncated-BPTT windows.

Both kinds of training data give the :class:`~pvrnn.model.train.Trainer` the same thing:
``batch_size`` streams of feature rows read in consecutive windows of ``seq_length``
steps, the recurrent state carried from one window of a stream to the next. In distributed
training, process ``rank`` of ``world`` reads streams ``rank * B / world ..`` of the same
global layout, so ``world`` processes of ``B / world`` streams train as one of ``B``.

- :class:`MemoryStreams`: in-memory sources (today's ``fit``): the training stretches are
  encoded once, laid out by :func:`~pvrnn.model.data.layout`, and every epoch reads the same
  windows (exactly the single-process behaviour before corpora existed).
- :class:`CorpusStreams`: a :class:`~pvrnn.model.corpus.FrameCorpus`. Every epoch draws a
  new plan from ``(seed, epoch)``: the training stretches in a shuffled order, each starting
  at a random offset in ``[0, seq_length)`` (so window boundaries move), joined and cut into
  the ``B`` streams. A step reads its windows from the cached files (one ``preadv`` per run
  of consecutive rows, each frame once) and encodes them once (a
  :class:`torch.utils.data.DataLoader`, optionally with workers, pinned memory on CUDA).
  Each input row's target is the next row of the same file: pairs never cross files; the
  state does (as :func:`~pvrnn.model.data.layout` joins stretches).

Validation is by held-out stretches (:func:`~pvrnn.model.data.split`): whole files when there
are several; each is predicted with the state warmed up on its file's earlier rows.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch

from ..dsp.frames import Frames
from ..errors import fail
from .codec import FrameCodec
from .corpus import FrameCorpus
from .data import layout, split, windows

__all__ = ["MemoryStreams", "CorpusStreams", "CODEC_FIT_FRAMES"]

#: At most this many training frames (in chunks of :data:`CODEC_CHUNK`, spread evenly over
#: the training stretches) fit a corpus's codec normalisation; all of them when fewer. The
#: cap is also :data:`CODEC_FIT_VALUES` values (frames x bins): the codec pools its rows in
#: float64, so 2**25 values are 256 MiB (at 1025 bins: 16 384 frames, 6 min at hop 512).
CODEC_FIT_FRAMES = 1 << 16
CODEC_FIT_VALUES = 1 << 25
CODEC_CHUNK = 1024

#: Rows per forward pass when a corpus's held-out files are scored.
VALIDATION_CHUNK = 4096


def _shard(batch_size: int, rank: int, world: int) -> slice:
    if batch_size % world:
        raise fail("batch_size", batch_size, f"a multiple of the {world} processes (each "
                   "reads batch_size / processes streams)")
    per = batch_size // world
    return slice(rank * per, (rank + 1) * per)


def _nll_sum(network, x: torch.Tensor, first: int, state=None) -> tuple[torch.Tensor, Any]:
    """Summed loss of rows ``first..`` of ``x`` ``(R, F)`` predicted from the rows before."""
    raw, state = network.raw(x[None, :-1], state)  # predicts rows 1..R-1
    count = x.shape[0] - max(first, 1)
    if count < 1:
        return x.new_zeros(()), state
    loss = network.loss(network.mixture(raw[:, max(first, 1) - 1 :]), x[None, max(first, 1):])
    return loss * count, state


class MemoryStreams:
    """In-memory frames as fixed streams (see the module docstring).

    Args:
        frames: one 2-D Frames ``(n_frames, n_partials)`` per sound.
        settings: ``seq_length``, ``batch_size``, ``validation``, ``seed``.
        device: where the features live.
        rank, world: this process and the number of processes.
    """

    def __init__(self, frames: list[Frames], settings: dict[str, Any], device: torch.device,
                 rank: int = 0, world: int = 1) -> None:
        self.settings, self.device, self.rank, self.world = settings, device, rank, world
        self.frame_counts = [f.n_frames for f in frames]
        self._frames = frames
        self._part = split(self.frame_counts, settings["validation"], settings["seed"])
        self._streams = _shard(settings["batch_size"], rank, world)

    def codec_frames(self) -> list[Frames]:
        """The training stretches (what the codec is fitted on)."""
        return [self._frames[s][a:b].to(self.device) for s, a, b in self._part.train]

    def prepare(self, codec: FrameCodec) -> None:
        """Encode the training stretches and lay out the streams."""
        features = [codec.encode(f).float() for f in self.codec_frames()]
        self._held = []  # (features up to the stretch's end, first held-out row)
        for s, a, b in self._part.held_out[self.rank :: self.world]:
            x = codec.encode(self._frames[s][:b].to(self.device)).float()
            self._held.append((x, max(1, a - (b - x.shape[0]))))
        inputs, targets = layout(features, self.settings["batch_size"])
        self._inputs, self._targets = inputs[self._streams], targets[self._streams]
        self._spans = windows(inputs.shape[1], self.settings["seq_length"])
        self.frames_per_epoch = inputs.shape[0] * inputs.shape[1]

    @property
    def steps(self) -> int:
        return len(self._spans)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The windows ``(inputs, targets)``, each ``(B / world, <= seq_length, F)``."""
        for a, b in self._spans:
            yield self._inputs[:, a:b], self._targets[:, a:b]

    def validation(self, network) -> tuple[torch.Tensor, int]:
        """Summed held-out loss of this process's share, and its number of rows."""
        total, count = torch.zeros((), device=self.device), 0
        for x, first in self._held:
            loss, _ = _nll_sum(network, x, first)
            total, count = total + loss, count + max(0, x.shape[0] - first)
        return total, count

    @property
    def has_validation(self) -> bool:
        return bool(self._part.held_out)


class _Steps(torch.utils.data.Dataset):
    """Item ``t``: step ``t`` of one epoch's plan for this process's streams (CPU tensors)."""

    def __init__(self, corpus: FrameCorpus, codec: FrameCodec, files: np.ndarray,
                 rows: np.ndarray, seq_length: int, delta: int) -> None:
        self.corpus, self.codec, self.files, self.rows = corpus, codec, files, rows
        self.seq_length, self.delta = seq_length, delta
        self._buffer: torch.Tensor | None = None  # float64 rows of _encode, reused
        self._row = corpus.array(0).shape[1:]  # (2, P) per cached frame

    def __len__(self) -> int:
        return -(-self.files.shape[1] // self.seq_length)

    def __getitem__(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        a = t * self.seq_length
        files = self.files[:, a : a + self.seq_length].ravel()  # (B * S) file of each pair
        rows = self.rows[:, a : a + self.seq_length].ravel()  # first frame row of each pair
        n_streams, steps = self.files.shape[0], files.size // self.files.shape[0]
        # A run: consecutive pairs of a stream on consecutive rows of one file (most of a
        # window). Each run's frames are read once, with the ``extra`` frames its last target
        # needs after it, into one flat array; encoding that array once gives every pair's
        # input (its feature row) and target (the next one), each computed once, elementwise
        # exactly as when every pair was encoded alone (the features across a run's end are
        # never picked).
        extra = 1 + self.delta
        start = np.ones(files.size, dtype=bool)
        start[1:] = (files[1:] != files[:-1]) | (rows[1:] != rows[:-1] + 1)
        start[::steps] = True  # each stream starts a run
        runs = np.cumsum(start) - 1
        position = np.arange(files.size) + extra * runs  # each pair's first frame, flat
        last = np.flatnonzero(np.append(start[1:], True))  # each run's last pair
        first = np.flatnonzero(start)  # each run's first pair
        lengths = last - first + 1 + extra  # frames read per run
        data = np.empty((files.size + extra * last.size, *self._row), dtype=np.float32)
        run_files = files[first]
        for f in np.unique(run_files):  # a few files, one read per run
            mine = run_files == f
            self.corpus.read_runs(int(f), rows[first[mine]], lengths[mine], data,
                                  position[first[mine]])
        features = self._encode(torch.from_numpy(data))
        index = torch.from_numpy(position)
        inputs = features.index_select(0, index).view(n_streams, steps, -1)
        targets = features.index_select(0, index + 1).view(n_streams, steps, -1)
        return inputs, targets  # (B, S, F) each

    def _encode(self, rows: torch.Tensor) -> torch.Tensor:
        """Cached rows ``(N, 2, P)`` -> features, float32: ``codec.encode``, bit for bit (a
        test checks it), with the float64 work done in place in one buffer kept across steps
        instead of ``encode``'s six temporaries (half the step's data time)."""
        codec = self.codec
        if type(codec) is not FrameCodec:  # another representation: its own encode
            return codec.encode(self.corpus.to_frames(rows)).float()
        codec._check_frames(self.corpus.to_frames(rows[:1]), codec.analysis, "frames")
        k = codec.n_partials
        n = rows.shape[0]
        if self._buffer is None or self._buffer.shape[0] < n:
            self._buffer = torch.empty((n + n // 4, 2 * k), dtype=torch.float64)
        raw = self._buffer[:n]
        raw[:, :k].copy_(rows[:, 0, :k])  # float32 -> float64, exact
        raw[:, k:].copy_(rows[:, 1, :k])
        if codec.magnitude == "log":
            raw[:, :k].clamp_min_(0).add_(codec.floor).log_()
        if codec.mode == "delta":
            raw = torch.sub(raw[1:], raw[:-1])  # torch.diff's subtraction
        return raw.sub_(codec.mean).div_(codec.std).to(torch.float32)


class CorpusStreams:
    """A :class:`FrameCorpus` as shuffled streams read from disk (see the module docstring).

    Args:
        corpus: prepared.
        settings: ``seq_length``, ``batch_size``, ``validation``, ``seed``.
        device: where the batches go (pinned memory and non-blocking copies on CUDA).
        rank, world: this process and the number of processes.
        workers (int): data-loader worker processes (0: read in the training process).
        mode: the codec's mode (``"delta"`` features need one more frame per row).
    """

    def __init__(self, corpus: FrameCorpus, settings: dict[str, Any], device: torch.device,
                 rank: int = 0, world: int = 1, workers: int = 0, mode: str = "absolute") -> None:
        self.corpus, self.settings, self.device = corpus, settings, device
        self.rank, self.world, self.workers = rank, world, workers
        self.delta = 1 if mode == "delta" else 0
        self.frame_counts = corpus.n_frames
        self._part = split(self.frame_counts, settings["validation"], settings["seed"])
        self._streams = _shard(settings["batch_size"], rank, world)
        # pairs (input row, target row) per training stretch, in feature rows
        self._pairs = np.array([b - a - self.delta - 1 for _, a, b in self._part.train])
        if (self._pairs < settings["batch_size"]).all() and self._pairs.sum() < settings[
                "batch_size"]:
            raise fail("batch_size", settings["batch_size"],
                       f"at most {max(int(self._pairs.sum()), 1)}: the training files hold "
                       "too few frames for that many streams")

    def codec_frames(self) -> list[Frames]:
        """Training frames to fit the codec on: all of them up to :data:`CODEC_FIT_FRAMES`
        (and :data:`CODEC_FIT_VALUES`), else chunks of :data:`CODEC_CHUNK` frames at evenly
        spaced places."""
        train = self._part.train
        lengths = np.array([b - a for _, a, b in train])
        n_bins = self.corpus.array(0).shape[-1]
        cap = min(CODEC_FIT_FRAMES, max(CODEC_CHUNK, CODEC_FIT_VALUES // n_bins))
        if lengths.sum() <= cap:
            return [self.corpus.frames(s, a, b) for s, a, b in train]
        ends = np.cumsum(lengths)
        starts = np.linspace(0, ends[-1] - 1, cap // CODEC_CHUNK).astype(np.int64)
        chunks = []
        for p in starts:
            k = int(np.searchsorted(ends, p, side="right"))
            s, a, b = train[k]
            lo = a + int(p - (ends[k] - lengths[k]))
            lo = max(a, min(lo, b - CODEC_CHUNK))
            chunks.append(self.corpus.frames(s, lo, min(b, lo + CODEC_CHUNK)))
        return chunks

    def prepare(self, codec: FrameCodec) -> None:
        # the model's own codec class: a DFTCodec (representation="dft") encodes real/imag
        self._codec = type(codec)(n_partials=codec.n_partials, mode=codec.mode,
                                  magnitude=codec.magnitude)
        self._codec.load_state_dict(codec.state_dict())  # a CPU copy for the loader
        self._codec.to("cpu")
        self._device_codec = codec
        b = self.settings["batch_size"]
        self.frames_per_epoch = (int(self._pairs.sum()) // b) * b  # about: offsets vary it

    def plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Epoch ``epoch``'s streams: ``(files, rows)``, each ``(B, L)``: the file and first
        frame row of every (input, target) pair of every stream, in reading order."""
        gen = torch.Generator().manual_seed(self.settings["seed"] * 1_000_003 + epoch)
        order = torch.randperm(len(self._pairs), generator=gen).numpy()
        seq = self.settings["seq_length"]
        pairs = self._pairs[order]
        skip = (torch.rand(len(order), generator=gen).numpy() * np.minimum(seq, pairs // 2 + 1))
        skip = skip.astype(np.int64)
        counts = pairs - skip
        total = int(counts.sum())
        b = self.settings["batch_size"]
        length = total // b
        if length < 1:
            raise fail("batch_size", b, f"at most {total}: the training files hold too few "
                       "frames for that many streams")
        position = np.arange(length * b)
        stretch = np.repeat(np.arange(len(order)), counts)[position]  # vectorized, no loop
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        starts = np.array([self._part.train[k][1] for k in order]) + skip
        files = np.array([self._part.train[k][0] for k in order])[stretch]
        rows = starts[stretch] + (position - first[stretch])
        return files.reshape(b, length), rows.reshape(b, length)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        files, rows = self.plan(epoch)
        self.frames_per_epoch = files.size
        mine = self._streams
        steps = _Steps(self.corpus, self._codec, files[mine], rows[mine],
                       self.settings["seq_length"], self.delta)
        cuda = self.device.type == "cuda"
        loader = torch.utils.data.DataLoader(
            steps, batch_size=None, shuffle=False, num_workers=self.workers, pin_memory=cuda,
            persistent_workers=False, prefetch_factor=4 if self.workers else None)
        for inputs, targets in loader:
            yield (inputs.to(self.device, non_blocking=cuda),
                   targets.to(self.device, non_blocking=cuda))

    @property
    def steps(self) -> int:
        files, _ = self.plan(1)
        return -(-files.shape[1] // self.settings["seq_length"])

    def validation(self, network) -> tuple[torch.Tensor, int]:
        """Summed loss over this process's held-out stretches, read in chunks with the state
        carried (memory bounded by :data:`VALIDATION_CHUNK`)."""
        codec = self._device_codec
        total, count = torch.zeros((), device=self.device), 0
        for s, a, b in self._part.held_out[self.rank :: self.world]:
            state, n_rows = None, b - self.delta  # feature rows 0 .. n_rows-1
            first = max(1, a - self.delta)
            for lo in range(0, n_rows - 1, VALIDATION_CHUNK):  # loop over chunks, not frames
                hi = min(n_rows, lo + VALIDATION_CHUNK + 1)  # rows lo..hi-1 (hi-1 a target)
                frames = self.corpus.frames(s, lo, hi + self.delta).to(self.device)
                x = codec.encode(frames).float()
                loss, state = _nll_sum(network, x, max(first - lo, 1), state)
                total = total + loss
            count += max(0, n_rows - first)
        return total, count

    @property
    def has_validation(self) -> bool:
        return bool(self._part.held_out)
