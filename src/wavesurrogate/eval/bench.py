"""What a surrogate costs, measured: parameters, weight bytes, peak memory, latency, and the solver's time.

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
- ``latency_ms``: eval mode, ``torch.inference_mode``, ``warmup`` untimed calls, then the median of
  ``repeats`` timed calls (``time.perf_counter``); torch's intra-op thread count is recorded.
- ``solver_seconds``: the finite-difference solver on the same grid, medium, boundary and time step,
  compiled and warmed by one untimed run, advancing the same physical time; median of ``repeats`` runs.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from wavesurrogate.nn.registry import count_trainable

__all__ = [
    "Latency",
    "count_trainable",
    "weight_bytes",
    "peak_memory_bytes",
    "inference_peak_bytes",
    "train_step_peak_bytes",
    "tensor_peak_bytes",
    "train_step_tensor_peak_bytes",
    "inference_tensor_peak_bytes",
    "latency_ms",
    "solver_seconds",
    "speedup",
]


# ----------------------------------------------------------------------------------------------- sizes


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
    import json
    import pickle
    import subprocess
    import sys

    payload = pickle.dumps((fn, args, kwargs, torch.get_num_threads()))
    code = "from wavesurrogate.eval.bench import _child_main; _child_main()"
    try:
        proc = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"peak_memory_bytes: no answer from the child within {timeout_s:.0f} s") from None
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        res = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"peak_memory_bytes: the child failed (exit {proc.returncode}): {tail[0]}") \
            from None
    if "error" in res:
        raise RuntimeError(f"peak_memory_bytes: the measured function failed: {res['error']}")
    return res["peak"]


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
                   target_shape: tuple[int, ...], optim: str = "adam", seed: int = 0) -> None:
    """Build ``name``, then two optimiser steps on an MSE loss (the second has all optimiser state)."""
    g = torch.Generator().manual_seed(seed)
    model = _build(name, kwargs).train()
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


# ----------------------------------------------------------------------------------------------- time


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
    ms = [s * 1e3 for s in secs]
    q25, med, q75 = _quartiles(ms)
    return Latency(med, q25, q75, min(ms), int(x.shape[0]), repeats, torch.get_num_threads())


def solver_seconds(run_solver: Callable[[], Any], repeats: int = 3) -> float:
    """Median seconds of ``run_solver()`` after one untimed call (the first call compiles and warms)."""
    return statistics.median(time_calls(run_solver, warmup=1, repeats=repeats))


def speedup(solver_s: float, surrogate_s: float) -> float:
    """Solver time over surrogate time for the same prediction; below 1 the surrogate is slower."""
    if not (surrogate_s > 0 and math.isfinite(surrogate_s)):
        raise ValueError(f"surrogate time must be positive and finite, got {surrogate_s}")
    return solver_s / surrogate_s


# ----------------------------------------------------------------------------------------------- solver


def solver_config(config_yaml: str, dt_s: float, n_frames: int, backend: str | None = "devito") -> Any:
    """The campaign config of a data file, re-timed to ``n_frames`` stored frames (same dt, grid, stride).

    ``backend``: for an FD campaign, time this backend (default devito, the fastest) instead of the one the
    data were made with; None keeps the campaign's.
    """
    import yaml

    from wavesurrogate.config.base import validate
    from wavesurrogate.config.campaign import CampaignConfig

    cfg = validate(CampaignConfig, yaml.safe_load(config_yaml), source="data file config_yaml")
    time_cfg = cfg.time.model_copy(update={"n_frames": int(n_frames), "dt_s": dt_s})
    cfg = cfg.model_copy(update={"time": time_cfg})
    if cfg.solver.kind == "fd" and backend is not None:
        cfg = cfg.model_copy(update={"solver": cfg.solver.model_copy(update={"backend": backend})})
    return cfg


def time_solver(config_yaml: str, dt_s: float, params: dict[str, float], split: int, n_frames_advanced: int,
                repeats: int = 3, backend: str | None = "devito",
                velocity: np.ndarray | None = None) -> dict[str, Any]:
    """Seconds the campaign's solver takes to advance ``n_frames_advanced`` frames of one case (median).

    The solver (same grid, boundary, order, dt and frame stride as the campaign; the case's source, initial
    state and velocity ``[ny, nx]`` in m/s, rebuilt from ``params`` when not given) is built, compiled and
    warmed by one untimed run in this process, then timed ``repeats`` times advancing
    n_frames_advanced · frame_stride steps.
    """
    from wavesurrogate.data.cases import CaseSpec, case_initial, case_source, case_velocity
    from wavesurrogate.physics.problem import Problem

    cfg = solver_config(config_yaml, dt_s, n_frames_advanced + 1, backend)
    spec = CaseSpec(0, int(split), {k: float(v) for k, v in params.items()})
    vel = np.asarray(case_velocity(cfg, spec) if velocity is None else velocity, dtype=np.float64)
    source, initial = case_source(cfg, spec), case_initial(cfg, spec)
    grid, axis, boundary = cfg.grid_obj(), cfg.time_obj(), cfg.boundary_obj()
    if cfg.solver.kind == "fd":
        from wavesurrogate.physics.fd import FDSolver

        solver = FDSolver(grid, boundary, axis, cfg.solver.space_order, cfg.solver.backend, np.float32)

        def run() -> Any:
            return solver.run(vel, source, initial)
    else:
        from wavesurrogate.physics.fe import solve_fe

        problem = Problem(grid, vel, axis, source, initial, boundary, cfg.solver.space_order)

        def run() -> Any:
            return solve_fe(problem, element=cfg.solver.element)

    secs = solver_seconds(run, repeats=repeats)
    n_steps = n_frames_advanced * cfg.time.frame_stride
    return {"seconds": secs, "n_steps": n_steps, "physical_time_s": n_steps * dt_s, "kind": cfg.solver.kind,
            "backend": cfg.solver.backend if cfg.solver.kind == "fd" else cfg.solver.element,
            "space_order": cfg.solver.space_order, "threads": 1, "repeats": repeats}


# ----------------------------------------------------------------------------------------------- table


def _mib(b: float | None) -> str:
    return "n/a" if b is None else f"{b / 2**20:.1f}"


def _num(x: float | None, fmt: str) -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, fmt)


def speedup_cell(s: float | None) -> str:
    """A speed-up for the table: ``12.3×`` or ``0.45× (slower than solver)``."""
    if s is None or not math.isfinite(s):
        return "n/a"
    return f"{s:.3g}×" if s >= 1 else f"{s:.3g}× (slower than solver)"


TABLE_COLUMNS = (
    "run", "params", "weights (KiB)", "peak mem, inference b1 (MiB)", "peak mem, train step (MiB)",
    "train s/epoch", "ms/sample b1", "ms/sample b32", "test rel L2 (%)", "rollout rel L2 @10 (%)",
    "rollout rel L2 @40 (%)", "solver ms (same step)", "speed-up b1", "speed-up b32", "speed-up rollout",
)


def table_row(r: dict[str, Any]) -> list[str]:
    """The table cells of one bench record."""
    roll = r.get("rollout_rel_l2") or {}

    def pct(x: float | None) -> str:
        return _num(None if x is None else 100 * x, ".2f")

    return [
        str(r["run"]), f"{r['params']:,}", f"{r['weight_bytes'] / 1024:.1f}", _mib(r.get("peak_infer_bytes")),
        _mib(r.get("peak_train_bytes")), _num(r.get("train_s_per_epoch"), ".2f"),
        _num(r["latency_b1"]["per_sample_ms"], ".3f"), _num(r["latency_b32"]["per_sample_ms"], ".3f"),
        pct(r.get("test_rel_l2")), pct(roll.get("10")), pct(roll.get("40")),
        _num(None if r.get("solver_step") is None else 1e3 * r["solver_step"]["seconds"], ".2f"),
        speedup_cell(r.get("speedup_b1")), speedup_cell(r.get("speedup_b32")),
        speedup_cell(r.get("speedup_rollout")),
    ]


def format_table(bench: dict[str, Any]) -> str:
    """The markdown table of a bench result (bench.json mapping), with the definitions under it."""
    head = "| " + " | ".join(TABLE_COLUMNS) + " |"
    rule = "| " + " | ".join(["---"] + ["---:"] * (len(TABLE_COLUMNS) - 1)) + " |"
    rows = ["| " + " | ".join(table_row(r)) + " |" for r in bench["runs"]]
    notes = [f"- {k}: {v}" for k, v in bench.get("definitions", {}).items()]
    return "\n".join([head, rule, *rows, "", *notes])


# ----------------------------------------------------------------------------------------------- runs

ROLLOUT_HORIZONS = (10, 40)
SCHEMA = "wavesurrogate-bench/1"
DEFINITIONS = {
    "params": "trainable scalars (complex counted twice)",
    "weights": "bytes of the state dict (parameters and buffers), KiB = 1024 bytes",
    "peak mem": "peak RSS added by building the model and running it, measured in a fresh process "
                "(VmHWM − VmRSS after start-up); inference at batch 1, training = two optimiser steps at "
                "the run's batch size",
    "train s/epoch": "median wall seconds of one training epoch (metrics.jsonl; includes validation)",
    "ms/sample": "median latency of one forward pass in inference mode divided by the batch, with as many "
                 "threads as the solver (one)",
    "test rel L2": "one-step relative L2 error ‖pred − true‖ / ‖true‖ over all test windows together "
                   "(true inputs)",
    "rollout rel L2 @h": "relative L2 error of the autoregressive rollout h frames after the first input "
                         "window, pooled over the test cases",
    "solver ms (same step)": "wall time of the campaign's solver advancing the physical time of one "
                             "prediction (n_out frames × frame_stride steps of dt) on the same grid, in the "
                             "same process, compiled and warm, median of repeats",
    "threads": "surrogate and solver are timed with one thread each (the solver is single-threaded devito "
               "C); bench.json also holds the batch-32 latency and speed-up with all of torch's threads "
               "(latency_b32_all_threads, speedup_b32_all_threads)",
    "speed-up": "solver seconds / surrogate seconds for the same prediction; b1 = one prediction at batch 1, "
                "b32 = per sample in batches of 32, rollout = a rollout of the longest horizon listed at "
                "batch 1 against the solver advancing as many frames; below 1 the surrogate is slower than "
                "the solver",
}


def machine_info() -> dict[str, Any]:
    """Where the numbers were measured: CPU model, cores available, torch version and threads."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": cores, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "load_1min": load}


def _train_seconds(run_dir: Any) -> tuple[float | None, float, int]:
    """(median seconds per epoch, total seconds, epochs) from a run's metrics.jsonl."""
    import json
    from pathlib import Path

    path = Path(run_dir) / "metrics.jsonl"
    rows = [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()] \
        if path.is_file() else []
    secs = [float(r["seconds"]) for r in rows if "seconds" in r]
    return (statistics.median(secs) if secs else None), float(sum(secs)), len(rows)


def _evaluation(model: nn.Module, info: Any, data: Any) -> dict[str, Any]:
    """The run's evaluate.json if made from these weights and this data file, else a fresh evaluation."""
    import json
    from pathlib import Path

    from wavesurrogate.eval.evaluate import evaluate_model

    saved = Path(info.run_dir) / "evaluate.json"
    weights = Path(info.run_dir) / "weights.safetensors"
    if saved.is_file() and saved.stat().st_mtime >= weights.stat().st_mtime:
        try:
            ev = json.loads(saved.read_text(encoding="utf-8"))
            if ev.get("data") == str(Path(data).resolve()) and ev.get("weights") == info.which:
                return ev
        except (OSError, json.JSONDecodeError):
            pass
    return evaluate_model(model, info, data)


def _errors(ev: dict[str, Any]) -> tuple[float | None, dict[str, float | None]]:
    """(one-step test rel L2, {horizon: rollout rel L2}) from an evaluation."""
    one = (ev.get("one_step") or {}).get("rel_l2_pooled")
    roll = ev.get("rollout") or {}
    rel = roll.get("rel_l2") or []
    return one, {str(h): (rel[h - 1] if len(rel) >= h else None) for h in ROLLOUT_HORIZONS}


def _rollout_latency(model: nn.Module, n_in: int, shape: tuple[int, int], horizon: int,
                     repeats: int) -> float:
    """Median seconds of a batch-1 rollout of ``horizon`` frames from random normalised inputs."""
    from wavesurrogate.nn.rollout import rollout

    g = torch.Generator().manual_seed(0)
    x0, vel = torch.randn(1, n_in, *shape, generator=g), torch.randn(1, *shape, generator=g)
    with torch.inference_mode():
        secs = time_calls(lambda: rollout(model, x0, vel, horizon), warmup=0, repeats=repeats)  # self-warming
    return statistics.median(secs)


def _with_threads(n: int, fn: Callable[[], Any]) -> Any:
    """``fn()`` with torch's intra-op threads set to ``n`` (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def memory_specs(rec: dict[str, Any]) -> dict[str, tuple]:
    """The peak-memory measurements of a bench record: {field: (function, args)} for a child process."""
    c, (ny, nx), b = rec["n_in"] + 1, rec["grid"], rec["train_batch"]
    return {"peak_infer_bytes": (run_inference, (rec["model"], rec["kwargs"], (1, c, ny, nx))),
            "peak_train_bytes": (run_train_step, (rec["model"], rec["kwargs"], (b, c, ny, nx),
                                                  (b, rec["n_out"], ny, nx), rec["optimizer"]))}


def measure_memory(records: list[dict[str, Any]], workers: int | None = None) -> None:
    """Fill the peak-memory fields of bench records, one fresh process a measurement, ``workers`` at once.

    Only resident memory is measured, so running children side by side does not bias the numbers (nothing
    is timed meanwhile).
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(rec, key, fn, args) for rec in records for key, (fn, args) in memory_specs(rec).items()]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        futures = [(rec, key, pool.submit(peak_memory_bytes, fn, *args)) for rec, key, fn, args in jobs]
        for rec, key, fut in futures:
            rec[key] = fut.result()


def bench_run(run: Any, data: Any = None, *, repeats: int = 15, memory: bool = True, threads: int = 1,
              solver_cache: dict | None = None) -> dict[str, Any]:
    """Every measured number of one forecast run directory (a bench record); see ``DEFINITIONS``.

    Latencies and the solver are timed with the same number of threads (``threads``, default 1: the
    solver is single-threaded); the batch-32 latency with all of torch's threads is kept in the record too.
    """
    from pathlib import Path

    from wavesurrogate.data.store import open_data
    from wavesurrogate.errors import UserError
    from wavesurrogate.eval.evaluate import check_fits
    from wavesurrogate.train.checkpoint import load_run

    model, info = load_run(run, "best")
    if info.task != "forecast":
        raise UserError(f"bench: run {info.run_dir} solves {info.task!r}; bench compares forecast runs")
    data = Path(data if data is not None else info.config.data.path)
    solver_cache = {} if solver_cache is None else solver_cache
    with open_data(data) as f:
        check_fits(f, info)
        test = np.flatnonzero((f.split == 1) & f.done)
        case = int(test[0] if len(test) else np.flatnonzero(f.done)[0])
        params = {k: float(v[case]) for k, v in f.params.items()}
        velocity = f.velocity(case)
        split, config_yaml, dt, ny, nx = int(f.split[case]), f.attrs["config_yaml"], f.dt, f.ny, f.nx
        n_frames = f.n_frames
    n_in, n_out = int(info.stats["n_in"]), int(info.stats["n_out"])
    horizon = min(max(ROLLOUT_HORIZONS), n_frames - n_in)
    test_rel, roll = _errors(_evaluation(model, info, data))
    c_in = n_in + 1
    lat1 = _with_threads(threads, lambda: latency_ms(model, (1, c_in, ny, nx), repeats=repeats))
    r32 = max(3, repeats // 3)
    lat32 = _with_threads(threads, lambda: latency_ms(model, (32, c_in, ny, nx), repeats=r32))
    lat32_all = latency_ms(model, (32, c_in, ny, nx), repeats=r32)
    roll_s = None
    if horizon > 0:
        roll_s = _with_threads(threads, lambda: _rollout_latency(model, n_in, (ny, nx), horizon,
                                                                 max(2, repeats // 5)))

    def solver(n_adv: int) -> dict[str, Any]:
        key = (config_yaml, dt, n_adv)
        if key not in solver_cache:
            solver_cache[key] = time_solver(config_yaml, dt, params, split, n_adv, velocity=velocity)
        return solver_cache[key]

    step = solver(n_out)
    sol_h = solver(horizon) if horizon > 0 else None
    cfg = info.config
    rec: dict[str, Any] = {
        "run": Path(info.run_dir).name, "run_dir": str(info.run_dir), "data": str(data.resolve()),
        "model": info.model_name, "kwargs": info.model_kwargs, "n_in": n_in, "n_out": n_out, "grid": [ny, nx],
        "params": count_trainable(model), "weight_bytes": weight_bytes(model),
        "train_batch": cfg.batch_size, "optimizer": cfg.optim.name, "threads": threads,
        "latency_b1": lat1.to_dict(), "latency_b32": lat32.to_dict(),
        "latency_b32_all_threads": lat32_all.to_dict(),
        "test_rel_l2": test_rel, "rollout_rel_l2": roll, "rollout_horizon": horizon,
        "rollout_latency_s": roll_s, "solver_step": step, "solver_rollout": sol_h,
        "best_epoch": info.best_epoch,
    }
    rec["train_s_per_epoch"], rec["train_s_total"], rec["epochs"] = _train_seconds(info.run_dir)
    rec["speedup_b1"] = speedup(step["seconds"], lat1.median_ms / 1e3)
    rec["speedup_b32"] = speedup(step["seconds"], lat32.per_sample_ms / 1e3)
    rec["speedup_b32_all_threads"] = speedup(step["seconds"], lat32_all.per_sample_ms / 1e3)
    rec["speedup_rollout"] = speedup(sol_h["seconds"], roll_s) if sol_h is not None and roll_s else None
    saved = step["seconds"] - lat1.median_ms / 1e3
    total = rec["train_s_total"]
    rec["break_even_predictions"] = total / saved if saved > 0 and total else None
    rec["peak_infer_bytes"] = rec["peak_train_bytes"] = None
    if memory:
        measure_memory([rec], workers=1)
    return rec


def bench_runs(runs: Any, out_dir: Any, data: Any = None, *, repeats: int = 15, memory: bool = True,
               threads: int = 1) -> str:
    """Bench every run directory of ``runs`` into ``out_dir``/bench.json and bench.md; returns the table."""
    import json
    from pathlib import Path

    from wavesurrogate.io import atomic_write_text

    cache: dict = {}
    machine = machine_info()
    records = [bench_run(r, data, repeats=repeats, memory=False, threads=threads, solver_cache=cache)
               for r in runs]
    load_end = machine_info()["load_1min"]
    if load_end is not None:
        machine["load_1min"] = max(machine["load_1min"], load_end)  # the busier of start and end
    if memory:
        measure_memory(records)  # after all timing: the children run side by side
    bench = {"schema": SCHEMA, "machine": machine, "definitions": DEFINITIONS, "runs": records}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = format_table(bench)
    atomic_write_text(out / "bench.json", json.dumps(_finite(bench), indent=2) + "\n")
    atomic_write_text(out / "bench.md", "# Bench\n\n" + text + "\n")
    return text


def _finite(x: Any) -> Any:
    """Non-finite floats → None (JSON has no NaN/inf)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x
