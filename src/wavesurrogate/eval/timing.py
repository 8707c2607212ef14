"""The one timing helper of the package: per-call wall (and CPU) times, model latency, solver time, speed-up.

Methods (the numbers in ``bench.md`` mean exactly this):
- ``round_robin`` / ``time_calls``: ``warmup`` untimed rounds, then ``repeats`` timed rounds; a round calls
  each function once (variants interleaved, so a load change on a shared machine hits all alike). Each
  call is timed alone with ``time.perf_counter`` (wall) and ``time.process_time`` (CPU of this process).
- ``latency_ms``: eval mode, ``torch.inference_mode``, ``warmup`` untimed calls, then the median, quartiles
  and minimum of ``repeats`` timed calls; torch's intra-op thread count is recorded.
- ``solver_seconds``: one untimed call (the first compiles and warms), then the median of ``repeats`` calls.

Not ``torch.utils.benchmark.Timer``: it adds hidden warm-up calls, reports means of blocks (no per-call
minimum or quartiles, which the table shows) and runs with one thread unless told otherwise.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["Latency", "round_robin", "time_calls", "latency_ms", "latency_fn", "solver_seconds", "speedup",
           "with_threads"]


@dataclass(frozen=True)
class Latency:
    """Wall time of one call: median, quartiles and minimum over ``repeats`` timed calls, in milliseconds."""

    median_ms: float
    q25_ms: float
    q75_ms: float
    min_ms: float
    batch: int
    repeats: int
    threads: int

    @property
    def per_sample_ms(self) -> float:
        """Median milliseconds per sample of the batch."""
        return self.median_ms / self.batch

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, with ``per_sample_ms``."""
        return {**asdict(self), "per_sample_ms": self.per_sample_ms}


def _quartiles(samples: list[float]) -> tuple[float, float, float]:
    if len(samples) == 1:
        return samples[0], samples[0], samples[0]
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return q[0], statistics.median(samples), q[2]


def round_robin(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 0
                ) -> dict[str, tuple[list[float], list[float]]]:
    """(wall seconds, CPU seconds) of each timed call of each function, one call of each per round."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    out: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in fns}
    for i in range(warmup + repeats):
        for name, fn in fns.items():
            c0 = time.process_time()
            t0 = time.perf_counter()
            fn()
            wall = time.perf_counter() - t0
            cpu = time.process_time() - c0
            if i >= warmup:
                out[name][0].append(wall)
                out[name][1].append(cpu)
    return out


def time_calls(fn: Callable[[], Any], warmup: int = 3, repeats: int = 15) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    return round_robin({"fn": fn}, repeats, warmup)["fn"][0]


def latency_ms(model: nn.Module, x: torch.Tensor | tuple[int, ...], warmup: int = 3, repeats: int = 15,
               seed: int = 0) -> Latency:
    """Latency of ``model(x)`` in inference mode; ``x`` a batch or its shape (random normal input)."""
    if not isinstance(x, torch.Tensor):
        x = torch.randn(*x, generator=torch.Generator().manual_seed(seed))
    was_training = model.training
    model.eval()
    try:
        return latency_fn(lambda: model(x), int(x.shape[0]), warmup=warmup, repeats=repeats)
    finally:
        model.train(was_training)


def latency_fn(fn: Callable[[], Any], batch: int, warmup: int = 3, repeats: int = 15) -> Latency:
    """Latency of ``fn()`` (one call on a batch of ``batch`` samples) in inference mode."""
    with torch.inference_mode():
        secs = time_calls(fn, warmup=warmup, repeats=repeats)
    ms = [s * 1e3 for s in secs]
    q25, med, q75 = _quartiles(ms)
    return Latency(med, q25, q75, min(ms), int(batch), repeats, torch.get_num_threads())


def solver_seconds(run_solver: Callable[[], Any], repeats: int = 3) -> float:
    """Median seconds of ``run_solver()`` after one untimed call (the first call compiles and warms)."""
    return statistics.median(time_calls(run_solver, warmup=1, repeats=repeats))


def speedup(solver_s: float, surrogate_s: float) -> float:
    """Solver time over surrogate time for the same prediction; below 1 the surrogate is slower."""
    if not (surrogate_s > 0 and math.isfinite(surrogate_s)):
        raise ValueError(f"surrogate time must be positive and finite, got {surrogate_s}")
    return solver_s / surrogate_s


def with_threads(n: int, fn: Callable[[], Any]) -> Any:
    """``fn()`` with torch's intra-op threads set to ``n`` (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)
