"""Data-parallel evaluation under torchrun: which rank does what, and gathering evaluator states.

Each rank evaluates whole batches (round-robin by batch index), so every batch holds exactly the samples it
holds in one process (attacks average their loss over a batch, so its composition matters) and merging the
gathered batch states in batch order reproduces one process's numbers. Rank 0 alone reads and writes the
store, prints and renders.

The process group is always gloo, on CPU and CUDA alike: the only collectives are a few pickled evaluator
states per job (``all_gather_object``, ``broadcast_object_list``), which travel as CPU tensors, so nccl would
buy nothing and would forbid two ranks on one GPU. On CUDA rank ``LOCAL_RANK`` takes GPU ``LOCAL_RANK``;
when ranks outnumber the GPUs they share them round-robin (``LOCAL_RANK % device_count``), which is how
``torchrun --nproc-per-node 2`` runs on a one-GPU machine.

Every rank leaves the process group (``leave_world``) before its interpreter shuts down: a rank that let
gloo's threads live into interpreter finalization could abort (see ``leave_world``).
"""
from __future__ import annotations

import atexit
import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def my_batches(self, batch_count: int) -> list[int]:
        return [b for b in range(batch_count) if b % self.size == self.rank]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order (on every rank)."""
        if not self.distributed:
            return [value]
        out: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(out, value)
        return out

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if not self.distributed:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]


def world_from_env() -> World:
    """The process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK), or a single process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def init_world(device: torch.device) -> World:
    """Join torchrun's process group (once, gloo); with CUDA each rank takes its GPU (``rank_device``)."""
    world = world_from_env()
    if world.distributed and not torch.distributed.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(rank_device(device, world))
        # long timeout: performance jobs run on rank 0 alone while the other ranks wait at the next gather
        torch.distributed.init_process_group(backend="gloo", timeout=datetime.timedelta(hours=12))
        atexit.register(leave_world)  # safety net for callers other than the CLI (which leaves explicitly)
    return world


def leave_world(orderly: bool = False) -> None:
    """Destroy this process's process group, if it joined one, while the interpreter is fully alive.

    A rank must never reach interpreter shutdown with the group alive. Gloo's worker threads
    (``pt_gloo_runloop``) drop their reference to a finished collective *after* the caller's ``wait()`` has
    returned; that reference holds the output tensors of ``all_gather_object``/``broadcast_object_list``,
    which own Python objects. A rank that exits right after its last collective (every rank but 0, which
    still writes the report) can be in ``Py_FinalizeEx`` while the worker still holds it, most often under
    CPU load; the worker then takes the GIL to release the tensor's Python object, the finalizing
    interpreter ends that thread with ``pthread_exit``, whose forced unwind through a ``noexcept``
    destructor is ``std::terminate``: "terminate called without an active exception", SIGABRT.
    ``destroy_process_group`` joins those threads (and gloo's socket loop) first.

    ``orderly``: wait at a barrier for every rank first, for the success path, where all ranks finished
    together: no rank closes its connections while another may still use them. Error paths leave without
    it: a peer that never comes would keep this rank waiting for the group's 12 h timeout, whereas without
    it the peer's next collective fails at once ("Connection closed by peer"). Idempotent.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if orderly:
            dist.barrier()
    finally:
        dist.destroy_process_group()


def rank_device(device: torch.device, world: World, device_count: int | None = None) -> torch.device:
    """Under torchrun, ``cuda`` means this rank's GPU: GPU ``local_rank``, shared round-robin when there are
    more ranks on this node than GPUs (``device_count`` defaults to the GPUs torch sees)."""
    if device.type != "cuda" or not world.distributed:
        return device
    count = torch.cuda.device_count() if device_count is None else device_count
    if count < 1:
        raise RuntimeError("device cuda under torchrun, but torch sees no CUDA device on this node")
    return torch.device("cuda", world.local_rank % count)
