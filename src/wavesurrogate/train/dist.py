"""Distributed training under torchrun: rank, world size, device; barriers and sums across ranks."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from wavesurrogate.errors import ConfigError

__all__ = ["DistEnv", "dist_env", "barrier", "all_sum"]


@dataclass(frozen=True)
class DistEnv:
    """Rank, world size and device of this process; ``owns_group`` if we initialised the process group."""

    rank: int
    world: int
    device: torch.device
    owns_group: bool

    @property
    def main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0


def dist_env(device: str) -> DistEnv:
    """Read torchrun's environment and initialise the process group (gloo on CPU, nccl on GPU) if needed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no GPU is available")
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    owns = False
    if world > 1 and not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    if world > 1 and dist.get_world_size() != world:
        raise ConfigError("WORLD_SIZE does not match the initialised process group")
    return DistEnv(rank, world, dev, owns)


def barrier(env: DistEnv) -> None:
    """Wait for every rank (no-op in one process)."""
    if env.world > 1:
        dist.barrier()


def all_sum(env: DistEnv, *values: float) -> list[float]:
    """Sum float values over ranks (float64)."""
    t = torch.tensor(values, dtype=torch.float64, device=env.device if env.device.type == "cuda" else "cpu")
    if env.world > 1:
        dist.all_reduce(t)
    return [float(v) for v in t.cpu()]
