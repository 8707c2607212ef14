"""Distributed training under torchrun: rank, world size, device; barriers and sums across ranks."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from wavesurrogate.errors import ConfigError

__all__ = ["DistEnv", "dist_env", "read_launch_env", "barrier", "all_sum"]


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


MAX_WORLD = 4096


def _env_int(name: str, default: int, lo: int, hi: int) -> int:
    text = os.environ.get(name, str(default)).strip()
    try:
        v = int(text)
    except ValueError:
        raise ConfigError(f"environment: {name}={text[:40]!r} is not an integer") from None
    if not lo <= v <= hi:
        raise ConfigError(f"environment: {name}={v} must lie in [{lo}, {hi}]")
    return v


def read_launch_env() -> tuple[int, int, int]:
    """(world size, rank, local rank) from torchrun's variables, checked: ConfigError (one line) for a value
    that is not an integer or out of range, or a multi-process world without MASTER_ADDR/MASTER_PORT."""
    world = _env_int("WORLD_SIZE", 1, 1, MAX_WORLD)
    rank = _env_int("RANK", 0, 0, world - 1)
    local = _env_int("LOCAL_RANK", 0, 0, world - 1)
    if world > 1 and not dist.is_initialized():
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k, "").strip()]
        if missing:
            raise ConfigError(f"environment: WORLD_SIZE={world} needs {' and '.join(missing)} (launch with "
                              "torchrun, or unset WORLD_SIZE)")
        _env_int("MASTER_PORT", 0, 1, 65535)
    return world, rank, local


@contextlib.contextmanager
def _native_stderr_quiet() -> Iterator[None]:
    """File descriptor 2 sent to /dev/null inside (what native libraries print there, too)."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def dist_env(device: str) -> DistEnv:
    """Read torchrun's environment and initialise the process group (gloo on CPU, nccl on GPU) if needed."""
    world, rank, local = read_launch_env()
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no GPU is available")
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    owns = False
    if world > 1 and not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(dev)
        wait = _env_int("WAVESURROGATE_DIST_TIMEOUT_S", 300, 1, 86400)  # peers that never come: an error
        try:
            backend = "nccl" if use_cuda else "gloo"
            with _native_stderr_quiet():  # c10d logs each failed try with a C++ stack: the error says it
                dist.init_process_group(backend=backend, timeout=timedelta(seconds=wait))
        except (RuntimeError, ValueError) as exc:  # DistStoreError, DistNetworkError are RuntimeErrors
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise ConfigError(f"environment: cannot form the process group of WORLD_SIZE={world} at "
                              f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} ({first})") from None
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
