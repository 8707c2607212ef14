"""What a surrogate holds in memory, measured: parameters, weight bytes, peak resident memory, tensor peak.

Methods (the numbers in ``bench.md`` mean exactly this):
- ``count_trainable``: trainable scalars (a complex parameter counts as two real ones).
- ``weight_bytes``: bytes of the tensors in the state dict (parameters and persistent buffers), shared
  tensors counted once; float32 weights take 4 bytes a parameter.
- ``peak_memory_bytes(fn, ...)``: ``fn`` runs in a fresh Python process (``python -c``). After importing torch
  and the built-in models and one tiny convolution (library start-up is not charged), the process resets
  its peak resident set size (``/proc/self/clear_refs`` ← 5), reads VmRSS as the baseline, calls ``fn``, and
  reports VmHWM − baseline. A fresh process is needed because memory freed earlier in a long-lived
  process stays resident in the allocator and would hide new allocations; tracemalloc does not see
  torch's allocator. Linux only; elsewhere the number is ``None``.
- ``tensor_peak_bytes(fn, ...)``: the peak of the bytes held by live tensors while ``fn`` runs (weights,
  gradients, optimiser state, activations, temporaries), from the allocation and free records that
  ``torch.profiler`` keeps with ``profile_memory=True``, replayed in time order (frees of tensors made
  before ``fn`` are not recorded, so the curve starts at 0). Unlike the resident set it
  ignores library code pages and allocator caching, so it is deterministic and isolates what a model
  itself needs; ``train_step_tensor_peak_bytes`` / ``inference_tensor_peak_bytes`` apply it to one training
  step (the second, with optimiser state) / one forward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from wavesurrogate.errors import UserError
from wavesurrogate.nn.registry import build, count_trainable
from wavesurrogate.safeload import parse_json

__all__ = [
    "count_trainable", "weight_bytes", "peak_memory_bytes", "inference_peak_bytes", "train_step_peak_bytes",
    "tensor_peak_bytes", "train_step_tensor_peak_bytes", "inference_tensor_peak_bytes", "fill_bytes",
    "run_inference", "run_train_step",
]


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


def _child_main() -> None:
    """Child side of :func:`peak_memory_bytes`: (fn, args, kwargs, threads) pickled on stdin → JSON line."""
    import json
    import pickle
    import sys

    try:
        fn, args, kwargs, threads = pickle.loads(sys.stdin.buffer.read())
        torch.set_num_threads(threads)
        _warm_start()
        reset = _reset_peak_rss()
        before = _proc_status_kib("VmRSS")
        if not reset:
            hwm = _proc_status_kib("VmHWM")
            if hwm is not None and before is not None and hwm > before:  # an earlier peak would be charged
                before = None
        fn(*args, **kwargs)
        after = _proc_status_kib("VmHWM")
        res: dict[str, Any] = {"peak": None if before is None or after is None else (after - before) * 1024}
    except Exception as exc:  # report, don't hang the parent
        res = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write("\n" + json.dumps(res) + "\n")


def peak_memory_bytes(fn: Callable[..., Any], *args: Any, timeout_s: float = 600.0,
                      **kwargs: Any) -> int | None:
    """Peak resident memory (bytes) that ``fn(*args, **kwargs)`` adds, measured in a fresh Python process.

    ``fn`` must be importable by name (a module-level function) and its arguments picklable. The child is a
    plain ``python -c`` (it does not re-run the caller's ``__main__``). None where procfs is missing.
    """
    import pickle
    import subprocess
    import sys

    payload = pickle.dumps((fn, args, kwargs, torch.get_num_threads()))
    code = "from wavesurrogate.eval.memory import _child_main; _child_main()"
    try:
        proc = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"peak_memory_bytes: no answer from the child within {timeout_s:.0f} s") from None
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        res = parse_json(lines[-1], "peak_memory_bytes child")
    except (IndexError, UserError):
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"peak_memory_bytes: the child failed (exit {proc.returncode}): {tail[0]}") \
            from None
    if "error" in res:
        raise RuntimeError(f"peak_memory_bytes: the measured function failed: {res['error']}")
    return res["peak"]


def fill_bytes(n_bytes: int) -> float:
    """Allocate and touch ``n_bytes`` of float32 (a reference load for testing :func:`peak_memory_bytes`)."""
    x = torch.ones(n_bytes // 4, dtype=torch.float32)
    return float(x.sum()) if x.numel() else 0.0


def run_inference(name: str, kwargs: dict[str, Any], input_shape: tuple[int, ...], seed: int = 0) -> None:
    """Build registered model ``name`` and run one forward pass on a random input (inference mode)."""
    g = torch.Generator().manual_seed(seed)
    model = build(name, kwargs).eval()
    x = torch.randn(*input_shape, generator=g)
    with torch.inference_mode():
        model(x)


def run_train_step(name: str, kwargs: dict[str, Any], input_shape: tuple[int, ...],
                   target_shape: tuple[int, ...], optim: str = "adam", seed: int = 0) -> None:
    """Build ``name``, then two optimiser steps on an MSE loss (the second has all optimiser state)."""
    g = torch.Generator().manual_seed(seed)
    model = build(name, kwargs).train()
    if optim == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    else:  # adam and adamw keep the same state (two moments a parameter)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
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
                          target_shape: tuple[int, ...], optim: str = "adam") -> int | None:
    """Peak memory (bytes) of building ``name``, training (weights, grads, optimiser state, activations)."""
    return peak_memory_bytes(run_train_step, name, kwargs, tuple(input_shape), tuple(target_shape), optim)


def tensor_peak_bytes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Peak bytes of live CPU tensors during ``fn(*args, **kwargs)``: every allocation and free the profiler
    recorded (its raw ``[memory]`` records, each with its own time stamp), replayed in time order."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(*args, **kwargs)
    try:  # the raw records: one per allocation (+) or free (-), at the time it happened
        raw = prof.profiler.kineto_results.events()  # type: ignore[union-attr]
        events = sorted((e.start_ns(), e.nbytes()) for e in raw if e.name() == "[memory]")
    except AttributeError:  # older/newer torch without that handle: per-op net bytes at the op's start
        events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events()
                        if e.self_cpu_memory_usage)
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return int(peak)


def train_step_tensor_peak_bytes(name: str, kwargs: dict[str, Any], input_shape: tuple[int, ...],
                                 target_shape: tuple[int, ...], optim: str = "adam") -> int:
    """Tensor-level peak (bytes) of building ``name`` and two optimiser steps (see ``run_train_step``)."""
    return tensor_peak_bytes(run_train_step, name, kwargs, tuple(input_shape), tuple(target_shape), optim)


def inference_tensor_peak_bytes(name: str, kwargs: dict[str, Any], input_shape: tuple[int, ...]) -> int:
    """Tensor-level peak (bytes) of building ``name`` and one forward pass at ``input_shape``."""
    return tensor_peak_bytes(run_inference, name, kwargs, tuple(input_shape))

