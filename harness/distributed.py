"""Data-parallel evaluation under torchrun: which rank does what, and gathering evaluator states.

Each rank evaluates whole batches (round-robin by batch index), so every batch holds exactly the samples it
holds in one process (attacks average their loss over a batch, so its composition matters) and merging the
gathered batch states in batch order reproduces one process's numbers. Rank 0 alone reads and writes the
store, prints and renders; gloo on CPU, nccl on CUDA (``LOCAL_RANK`` picks the GPU).
"""
from __future__ import annotations

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
    """Join torchrun's process group (once); with CUDA each rank takes the GPU its LOCAL_RANK names."""
    world = world_from_env()
    if world.distributed and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(world.local_rank)
        # long timeout: performance jobs run on rank 0 alone while the other ranks wait at the next gather
        torch.distributed.init_process_group(backend=backend, timeout=datetime.timedelta(hours=12))
    return world


def rank_device(device: torch.device, world: World) -> torch.device:
    """Under torchrun, ``cuda`` means this rank's GPU."""
    if device.type == "cuda" and world.distributed:
        return torch.device("cuda", world.local_rank)
    return device
