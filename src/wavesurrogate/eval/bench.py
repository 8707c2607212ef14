"""What a surrogate costs, measured: parameters, weight bytes, peak memory, latency, and the solver's time.

Methods (the numbers in ``bench.md`` mean exactly this):
- ``count_trainable``: trainable scalars (a complex parameter counts as two real ones).
- ``weight_bytes``: bytes of the tensors in the state dict (parameters and persistent buffers), shared
  tensors counted once; float32 weights take 4 bytes a parameter.
- ``peak_memory_bytes(fn, ...)``: ``fn`` runs in a fresh ``spawn``-ed Python process. After importing torch
  and the built-in models and one tiny convolution (library start-up is not charged), the process resets
  its peak resident set size (``/proc/self/clear_refs`` ← 5), reads VmRSS as the baseline, calls ``fn``, and
  reports VmHWM − baseline. A fresh process is needed because memory freed earlier in a long-lived
  process stays resident in the allocator and would hide new allocations; tracemalloc does not see
  torch's allocator. Linux only; elsewhere the number is ``None``.
- ``latency_ms``: eval mode, ``torch.inference_mode``, ``warmup`` untimed calls, then the median of
  ``repeats`` timed calls (``time.perf_counter``); torch's intra-op thread count is recorded.
- ``solver_seconds``: the finite-difference solver on the same grid, medium, boundary and time step,
  compiled and warmed by one untimed run, advancing the same physical time; median of ``repeats`` runs.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "Latency",
    "count_trainable",
    "weight_bytes",
    "peak_memory_bytes",
    "inference_peak_bytes",
    "train_step_peak_bytes",
    "latency_ms",
    "solver_seconds",
    "speedup",
]


# ----------------------------------------------------------------------------------------------- sizes


def count_trainable(model: nn.Module) -> int:
    """Number of trainable scalars of ``model``; a complex parameter counts as two real ones."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters() if p.requires_grad)


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the tensors in ``model.state_dict()`` (parameters, persistent buffers); shared ones once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for t in model.state_dict().values():
        key = (t.untyped_storage().data_ptr(), t.storage_offset())
        if key in seen:
            continue
        seen.add(key)
        total += t.numel() * t.element_size()
    return total


# ----------------------------------------------------------------------------------------------- memory


def _proc_status_kib(field: str) -> int | None:
    """A ``Vm*`` field of /proc/self/status in KiB, or None where there is no procfs."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False if the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _warm_start() -> None:
    """Load what every measurement shares (built-in models, one tiny conv) so it is not charged to ``fn``."""
    from wavesurrogate.nn import registry

    registry.names()
    with torch.no_grad():
        torch.nn.functional.conv2d(torch.ones(1, 1, 8, 8), torch.ones(1, 1, 3, 3))


def _measure_child(conn: Any, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    """Child side of :func:`peak_memory_bytes`: send (peak bytes or None, error text or None)."""
    try:
        torch.set_num_threads(kwargs.pop("_threads", torch.get_num_threads()))
        _warm_start()
        reset = _reset_peak_rss()
        before = _proc_status_kib("VmRSS")
        if not reset:
            hwm = _proc_status_kib("VmHWM")
            if hwm is not None and before is not None and hwm > before:  # an earlier peak would be charged
                before = None
        fn(*args, **kwargs)
        after = _proc_status_kib("VmHWM")
        conn.send((None if before is None or after is None else (after - before) * 1024, None))
    except Exception as exc:  # report, don't hang the parent
        conn.send((None, f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def peak_memory_bytes(fn: Callable[..., Any], *args: Any, timeout_s: float = 600.0,
                      **kwargs: Any) -> int | None:
    """Peak resident memory (bytes) that ``fn(*args, **kwargs)`` adds, measured in a fresh process.

    ``fn`` and its arguments must be picklable (a module-level function). None where procfs is missing.
    """
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    kwargs = {**kwargs, "_threads": torch.get_num_threads()}
    proc = ctx.Process(target=_measure_child, args=(child, fn, args, kwargs), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout_s):
            raise RuntimeError(f"peak_memory_bytes: no answer from the child within {timeout_s:.0f} s")
        peak, err = parent.recv()
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if err is not None:
        raise RuntimeError(f"peak_memory_bytes: the measured function failed: {err}")
    return peak


def _build(name: str, kwargs: dict[str, Any]) -> nn.Module:
    from wavesurrogate.nn.registry import build

    return build(name, kwargs)


def fill_bytes(n_bytes: int) -> float:
    """Allocate and touch ``n_bytes`` of float32 (a reference load for testing :func:`peak_memory_bytes`)."""
    x = torch.ones(n_bytes // 4, dtype=torch.float32)
    return float(x.sum()) if x.numel() else 0.0


def run_inference(name: str, kwargs: dict[str, Any], input_shape: tuple[int, ...], seed: int = 0) -> None:
    """Build registered model ``name`` and run one forward pass on a random input (inference mode)."""
    g = torch.Generator().manual_seed(seed)
    model = _build(name, kwargs).eval()
    x = torch.randn(*input_shape, generator=g)
    with torch.inference_mode():
        model(x)


def run_train_step(name: str, kwargs: dict[str, Any], input_shape: tuple[int, ...],
                   target_shape: tuple[int, ...], lr: float = 1e-3, seed: int = 0) -> None:
    """Build ``name``, then two steps of AdamW on an MSE loss (the second step has all optimizer state)."""
    g = torch.Generator().manual_seed(seed)
    model = _build(name, kwargs).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    x = torch.randn(*input_shape, generator=g)
    y = torch.randn(*target_shape, generator=g)
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()


def inference_peak_bytes(name: str, kwargs: dict[str, Any], input_shape: tuple[int, ...]) -> int | None:
    """Peak memory (bytes) of building model ``name`` and one forward pass at ``input_shape``."""
    return peak_memory_bytes(run_inference, name, kwargs, tuple(input_shape))


def train_step_peak_bytes(name: str, kwargs: dict[str, Any], input_shape: tuple[int, ...],
                          target_shape: tuple[int, ...], lr: float = 1e-3) -> int | None:
    """Peak memory (bytes) of building ``name`` and training (weights, grads, AdamW state, activations)."""
    return peak_memory_bytes(run_train_step, name, kwargs, tuple(input_shape), tuple(target_shape), lr)


# ----------------------------------------------------------------------------------------------- time


@dataclass(frozen=True)
class Latency:
    """Wall time of one call: median and quartiles over ``repeats`` timed calls, in milliseconds."""

    median_ms: float
    q25_ms: float
    q75_ms: float
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


def time_calls(fn: Callable[[], Any], warmup: int = 3, repeats: int = 15) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def latency_ms(model: nn.Module, x: torch.Tensor | tuple[int, ...], warmup: int = 3, repeats: int = 15,
               seed: int = 0) -> Latency:
    """Latency of ``model(x)`` in inference mode; ``x`` a batch or its shape (random normal input)."""
    if not isinstance(x, torch.Tensor):
        x = torch.randn(*x, generator=torch.Generator().manual_seed(seed))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            secs = time_calls(lambda: model(x), warmup=warmup, repeats=repeats)
    finally:
        model.train(was_training)
    q25, med, q75 = _quartiles([s * 1e3 for s in secs])
    return Latency(med, q25, q75, int(x.shape[0]), repeats, torch.get_num_threads())


def solver_seconds(run_solver: Callable[[], Any], repeats: int = 3) -> float:
    """Median seconds of ``run_solver()`` after one untimed call (the first call compiles and warms)."""
    return statistics.median(time_calls(run_solver, warmup=1, repeats=repeats))


def speedup(solver_s: float, surrogate_s: float) -> float:
    """Solver time over surrogate time for the same prediction; below 1 the surrogate is slower."""
    if not (surrogate_s > 0 and math.isfinite(surrogate_s)):
        raise ValueError(f"surrogate time must be positive and finite, got {surrogate_s}")
    return solver_s / surrogate_s
