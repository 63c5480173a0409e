"""Distributed data-parallel training: torch's own engine, nothing home-made.

``torchrun --nproc_per_node N -m pvrnn train corpus/ -o model.pt`` starts N processes with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and a rendezvous in their environment; ``pvrnn train
--nproc N`` starts the same thing through :func:`launch` (``torch.distributed.run``, i.e.
the elastic agent torchrun is). In each process :func:`setup` joins the process group
(NCCL on CUDA, one GPU per process; gloo on CPU), the network is wrapped in
:class:`torch.nn.parallel.DistributedDataParallel` (gradients averaged across processes),
each process reads its share of the streams (:mod:`~pvrnn.model.streams`), and only rank 0
writes the checkpoint and the log.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist

from ..errors import PvrnnError, fail

__all__ = ["Context", "context", "setup", "teardown", "all_sum", "barrier", "max_processes",
           "launch", "launched"]


@dataclass(frozen=True)
class Context:
    """This process's place: ``rank`` of ``world`` processes (``local_rank`` on its machine)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes files and shows progress (rank 0)."""
        return self.rank == 0


def launched() -> bool:
    """Whether this process was started by torchrun (or ``--nproc``) with other processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def context() -> Context:
    """The current process group's context (one process when none is initialised)."""
    if dist.is_available() and dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size(),
                       int(os.environ.get("LOCAL_RANK", "0")))
    return Context()


def setup(device: torch.device) -> tuple[Context, torch.device]:
    """Join the process group torchrun described (if any) and pick this process's device.

    Args:
        device: the training device asked for; a CUDA device becomes ``cuda:LOCAL_RANK``.

    Returns:
        tuple: the :class:`Context` and the device to train on.
    """
    if not launched():
        return context(), device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return context(), device


def teardown() -> None:
    """Leave the process group (if this process joined one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(value: torch.Tensor) -> torch.Tensor:
    """``value`` summed over the processes (itself with one process)."""
    if context().world > 1:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def barrier() -> None:
    if context().world > 1:
        dist.barrier()


def max_processes(device: str) -> int:
    """How many training processes this machine can run: one per GPU for CUDA (and
    ``"auto"`` where CUDA is present), else one per CPU core this process may use."""
    if str(device).startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return torch.cuda.device_count()
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def launch(nproc: int, args: Sequence[str], device: str = "auto") -> None:
    """Run ``python -m pvrnn <args>`` on ``nproc`` processes, as ``torchrun --standalone
    --nproc_per_node nproc -m pvrnn <args>`` would (``torch.distributed.run``).

    Raises:
        PvrnnError: naming ``nproc`` when it is more than :func:`max_processes`, or when a
            worker fails (its own message is on stderr above).
    """
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    limit = max_processes(device)
    if nproc > limit:
        kind = "GPUs" if str(device).startswith("cuda") or torch.cuda.is_available() else \
            "CPU cores"
        raise fail("nproc", nproc, f"at most {limit}, the {kind} this machine can use")
    threads = max(1, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1) // nproc)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # torchrun would warn and set 1
    options = torchrun.parse_args(["--standalone", f"--nproc_per_node={nproc}",
                                   "--module", "pvrnn", *args])
    try:
        torchrun.run(options)
    except ChildFailedError as error:
        codes = sorted({f.exitcode for f in error.failures.values()})
        raise PvrnnError(f"nproc={nproc}: {len(error.failures)} worker process(es) failed "
                         f"(exit status {', '.join(map(str, codes))}); their message is above"
                         ) from None
