"""The bench: every measured number of forecast runs against the campaign's solver, as bench.json + bench.md.

Sizes and memory are measured by :mod:`wavesurrogate.eval.memory`, times by :mod:`wavesurrogate.eval.timing`,
the table is drawn by :mod:`wavesurrogate.eval.table`. Here:
- ``time_solver``: the campaign's solver (same grid, medium, boundary and time step; FD timed with devito by
  default), compiled and warmed by one untimed run, advancing the same physical time; median of ``repeats``.
- ``bench_run`` / ``bench_runs``: one record per run (see ``DEFINITIONS``), the solver timed in the same
  process, peak memory measured after all timing in fresh processes.
- ``coarse_comparison``: the coarse-solver baselines (:mod:`wavesurrogate.eval.baselines`) of the runs' data
  file, measured in the same run, against each run's whole rollout (error and time for the same frames).
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import torch
from torch import nn

from wavesurrogate.errors import DataFileError, UserError
from wavesurrogate.eval.memory import (
    count_trainable,
    peak_memory_bytes,
    run_inference,
    run_train_step,
    weight_bytes,
)
from wavesurrogate.eval.table import format_table
from wavesurrogate.eval.timing import latency_fn, solver_seconds, speedup, time_calls, with_threads
from wavesurrogate.nn.rollout import rollout, step
from wavesurrogate.safeload import load_json
from wavesurrogate.tasks.forecast import TASK as FORECAST
from wavesurrogate.tasks.forecast import run_options

__all__ = ["solver_config", "time_solver", "machine_info", "memory_specs", "measure_memory", "bench_run",
           "bench_runs", "coarse_comparison", "DEFINITIONS", "SCHEMA", "ROLLOUT_HORIZONS"]


def solver_config(config_yaml: str, dt_s: float, n_frames: int, backend: str | None = "devito") -> Any:
    """The campaign config of a data file, re-timed to ``n_frames`` stored frames (same dt, grid, stride).

    ``backend``: for an FD campaign, time this backend (default devito, the fastest) instead of the one the
    data were made with; None keeps the campaign's.
    """
    from wavesurrogate.config.base import validate
    from wavesurrogate.config.campaign import CampaignConfig
    from wavesurrogate.errors import ConfigError
    from wavesurrogate.safeload import parse_yaml

    data = parse_yaml(config_yaml, "data file config_yaml", ConfigError)
    if not isinstance(data, dict):
        raise ConfigError("data file config_yaml: not a mapping of keys")
    cfg = validate(CampaignConfig, data, source="data file config_yaml")
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
    from wavesurrogate.data.cases import CaseSpec, case_problem

    cfg = solver_config(config_yaml, dt_s, n_frames_advanced + 1, backend)
    spec = CaseSpec(0, int(split), {k: float(v) for k, v in params.items()})
    try:
        p = case_problem(cfg, spec, None if velocity is None else np.asarray(velocity))
    except (KeyError, ValueError, TypeError, IndexError, ArithmeticError) as exc:
        raise DataFileError(f"data file: the case's parameters {sorted(params)} do not fit its config_yaml "
                            f"({type(exc).__name__}: {str(exc)[:80]})") from None
    if cfg.solver.kind == "fd":
        from wavesurrogate.physics.fd import FDSolver

        solver = FDSolver(p.grid, p.boundary, p.time, cfg.solver.space_order, cfg.solver.backend, np.float32,
                          obstacles=p.obstacles)

        def run() -> Any:
            return solver.run(p.velocity, p.source, p.initial)
    else:
        from wavesurrogate.physics.fe import solve_fe

        def run() -> Any:
            return solve_fe(p, element=cfg.solver.element)

    secs = solver_seconds(run, repeats=repeats)
    n_steps = n_frames_advanced * cfg.time.frame_stride
    return {"seconds": secs, "n_steps": n_steps, "physical_time_s": n_steps * dt_s, "kind": cfg.solver.kind,
            "backend": cfg.solver.backend if cfg.solver.kind == "fd" else cfg.solver.element,
            "space_order": cfg.solver.space_order, "threads": 1, "repeats": repeats}


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
    "coarse solver": "the campaign's FD solver (devito, one thread) re-run on the test cases on grids "
                     "coarsened per axis by each factor (same rectangle, resampled velocity, absorbing layer "
                     "of the same thickness in metres, the largest CFL-stable dt that hits every frame "
                     "time), "
                     "interpolated bilinearly onto the data grid; error = relative L2 against the stored "
                     "fields pooled over the test cases and the frames a rollout predicts (from the first "
                     "predicted frame); time = median wall seconds of one whole solve from t = 0, compiled "
                     "and warm (docs/evaluation.md)",
    "rollout (vs coarse)": "a run's whole-rollout error (all horizons pooled, evaluate.json "
                           "rel_l2_all_horizons) and its batch-1 rollout time scaled to the same frames "
                           "(rollout seconds / horizon × frames predicted); beaten = some coarse solve has "
                           "both a smaller error and a shorter time",
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
    from wavesurrogate.runs import read_metrics

    rows = read_metrics(run_dir)
    secs = [float(r["seconds"]) for r in rows if "seconds" in r]
    return (statistics.median(secs) if secs else None), float(sum(secs)), len(rows)


def _evaluation(model: nn.Module, info: Any, data: Any) -> dict[str, Any]:
    """The run's evaluate.json if made from these weights and this data file, else a fresh evaluation."""
    from pathlib import Path

    from wavesurrogate.eval.evaluate import evaluate_model

    saved = Path(info.run_dir) / "evaluate.json"
    weights = Path(info.run_dir) / "weights.safetensors"
    if saved.is_file() and saved.stat().st_mtime >= weights.stat().st_mtime:
        try:
            ev = load_json(saved)
            same = isinstance(ev, dict) and ev.get("data") == str(Path(data).resolve())
            if same and ev.get("weights") == info.which:
                return ev
        except UserError:
            pass
    return evaluate_model(model, info, data)


def _errors(ev: dict[str, Any]) -> tuple[float | None, dict[str, float | None]]:
    """(one-step test rel L2, {horizon: rollout rel L2}) from an evaluation."""
    one = (ev.get("one_step") or {}).get("rel_l2_pooled")
    roll = ev.get("rollout") or {}
    rel = roll.get("rel_l2") or []
    return one, {str(h): (rel[h - 1] if len(rel) >= h else None) for h in ROLLOUT_HORIZONS}


def _call_inputs(stats: dict[str, Any], batch: int, shape: tuple[int, int], horizon: int = 0) -> tuple:
    """Random normalised (frames ``[B, n_in]``, velocity ``[B, 1]``, forcing ``[B, max(n_out, horizon)]`` or
    None) for the calls of a run, with the channels its task reads."""
    n_in, forcing = int(stats["n_in"]), run_options(stats)[0]
    n_extra = max(int(stats["n_out"]), horizon) if forcing else 0
    x = torch.randn(batch, n_in + 1 + n_extra, *shape, generator=torch.Generator().manual_seed(0))
    return x[:, :n_in], x[:, n_in : n_in + 1], (x[:, n_in + 1 :] if forcing else None)


def _call_latency(model: nn.Module, stats: dict[str, Any], batch: int, shape: tuple[int, int],
                  repeats: int) -> Any:
    """Latency of one call of the run's step (``nn.rollout.step``: its inputs and its update)."""
    frames, vel, extra = _call_inputs(stats, batch, shape)
    return latency_fn(lambda: step(model, frames, vel, extra, run_options(stats)[1]), batch, repeats=repeats)


def _rollout_latency(model: nn.Module, stats: dict[str, Any], shape: tuple[int, int], horizon: int,
                     repeats: int) -> float:
    """Median seconds of a batch-1 rollout of ``horizon`` frames (the run's inputs and update, random)."""
    frames, vel, extra = _call_inputs(stats, 1, shape, horizon)
    kw = {"extra": extra, "update": run_options(stats)[1], "n_out": int(stats["n_out"])}
    with torch.inference_mode():  # self-warming
        secs = time_calls(lambda: rollout(model, frames, vel, horizon, **kw), warmup=0, repeats=repeats)
    return statistics.median(secs)


def memory_specs(rec: dict[str, Any]) -> dict[str, tuple]:
    """The peak-memory measurements of a bench record: {field: (function, args)} for a child process."""
    c, (ny, nx), b = rec.get("in_channels", rec["n_in"] + 1), rec["grid"], rec["train_batch"]
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
    from wavesurrogate.nn.registry import FRAMES, entry
    from wavesurrogate.runs import load_run
    from wavesurrogate.runs.slice import family

    model, info = load_run(run, "best")
    if entry(info.model_name).interface != FRAMES:
        raise UserError(f"bench: run {info.run_dir} solves {info.task!r}; bench compares rollouts of "
                        "frame-to-frame models against the solver")
    data = Path(data if data is not None else info.config.data.path)
    solver_cache = {} if solver_cache is None else solver_cache
    with open_data(data) as f:
        check_fits(f, info)
        test = np.flatnonzero((f.split == 1) & f.done)
        case = int(test[0] if len(test) else np.flatnonzero(f.done)[0])
        params = {k: float(v[case]) for k, v in f.params.items()}
        velocity = f.velocity(case)
        f.config  # noqa: B018  (config_yaml valid and agreeing with the file, else DataFileError)
        split, config_yaml, dt, ny, nx = int(f.split[case]), f.attrs["config_yaml"], f.dt, f.ny, f.nx
        n_frames = f.n_frames
    n_in, n_out = int(info.stats["n_in"]), int(info.stats["n_out"])
    horizon = min(max(ROLLOUT_HORIZONS), n_frames - n_in)
    ev = _evaluation(model, info, data)
    test_rel, roll = _errors(ev)
    ev_roll = ev.get("rollout") or {}
    st, r32 = info.stats, max(3, repeats // 3)
    lat1 = with_threads(threads, lambda: _call_latency(model, st, 1, (ny, nx), repeats))
    lat32 = with_threads(threads, lambda: _call_latency(model, st, 32, (ny, nx), r32))
    lat32_all = _call_latency(model, st, 32, (ny, nx), r32)
    roll_s = None
    if horizon > 0:
        roll_s = with_threads(threads, lambda: _rollout_latency(model, st, (ny, nx), horizon,
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
        "in_channels": FORECAST.in_channels(st), "inputs": st.get("inputs", ["frames", "velocity"]),
        "update": run_options(st)[1],
        "params": count_trainable(model), "weight_bytes": weight_bytes(model),
        "train_batch": cfg.batch_size, "optimizer": cfg.optim.name, "threads": threads,
        "latency_b1": lat1.to_dict(), "latency_b32": lat32.to_dict(),
        "latency_b32_all_threads": lat32_all.to_dict(),
        "test_rel_l2": test_rel, "rollout_rel_l2": roll, "rollout_horizon": horizon,
        "rollout_latency_s": roll_s, "solver_step": step, "solver_rollout": sol_h,
        "best_epoch": info.best_epoch, "n_frames": n_frames,
        "rollout_rel_l2_all": ev_roll.get("rel_l2_all_horizons"),
        "rollout_first_frame": int(ev_roll.get("start_frame", 0)) + n_in,
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
    rec["elastic"] = family(info.run_dir)  # a slice of an elastic run: plotted as its family's curve
    if memory:
        measure_memory([rec], workers=1)
    return rec


def coarse_comparison(records: list[dict[str, Any]], factors: Any = None, *, repeats: int = 3,
                      max_cases: int | None = None) -> list[dict[str, Any]]:
    """Coarse-solver rows per data file of ``records``, each run's comparable point, and a verdict.

    Rows come from :func:`wavesurrogate.eval.baselines.coarse_solves` on the file's test cases (the first
    ``max_cases`` if given), errors from the first frame the runs predict. A run's point: its whole-rollout
    error and its batch-1 rollout time scaled to the frames predicted; ``rec["coarse_beaten_by"]`` is the
    label of the cheapest solve that beats it on both, else None.
    """
    from pathlib import Path

    from wavesurrogate.data.store import open_data
    from wavesurrogate.eval import baselines as bl

    factors = bl.DEFAULT_FACTORS if factors is None else tuple(factors)
    out = []
    for path in dict.fromkeys(r["data"] for r in records):
        recs = [r for r in records if r["data"] == path]
        start = min(r["rollout_first_frame"] for r in recs)
        with open_data(path) as f:
            if f.config.solver.kind != "fd":
                out.append({"data": path, "start": start, "cases": [], "rows": [], "models": [],
                            "verdict": f"No coarse-solver comparison: {Path(path).name} was made by the "
                                       f"{f.config.solver.kind.upper()} solver (coarse baselines re-run "
                                       "FD)."})
                continue
            test = np.flatnonzero((f.split == 1) & f.done)
            cases = (test if len(test) else np.flatnonzero(f.done))[:max_cases]
            rows = bl.coarse_solves(f, cases, factors, repeats=repeats, start=start)
        models = []
        for r in recs:
            secs, err, h = r.get("rollout_latency_s"), r.get("rollout_rel_l2_all"), r.get("rollout_horizon")
            point = {"name": r["run"], "error": err, "start": r["rollout_first_frame"],
                     "seconds": secs / h * (r["n_frames"] - r["rollout_first_frame"]) if secs and h else None}
            at = [{**row, "error": bl.row_error(row, point["start"])} for row in rows]
            best = bl.beating_rows(err, point["seconds"], at) if err is not None and point["seconds"] else []
            r["coarse_beaten_by"] = best[0]["label"] if best else None
            models.append(point)
        out.append({"data": path, "start": start, "cases": [int(c) for c in cases], "rows": rows,
                    "models": models, "verdict": bl.verdict(models, rows)})
    return out


def bench_runs(runs: Any, out_dir: Any, data: Any = None, *, repeats: int = 15, memory: bool = True,
               threads: int = 1, coarse: Any = None, coarse_cases: int | None = 8, overwrite: bool = False
               ) -> str:
    """Bench every run directory of ``runs`` into ``out_dir``/bench.json and bench.md; returns the table
    (existing ones replaced only with ``overwrite``).

    ``coarse``: factors of the coarse-solver baselines (default ``baselines.DEFAULT_FACTORS``; ``()``: none),
    solved on the first ``coarse_cases`` test cases (None: all) in this process after the runs are timed.
    """
    from pathlib import Path

    from wavesurrogate.io import atomic_write_text, write_json
    from wavesurrogate.outputs import check_output_dir
    from wavesurrogate.runs.layout import run_files

    check_output_dir(out_dir, ["bench.json", "bench.md"], [data, *(f for r in runs for f in run_files(r))],
                     overwrite=overwrite)
    cache: dict = {}
    machine = machine_info()
    records = [bench_run(r, data, repeats=repeats, memory=False, threads=threads, solver_cache=cache)
               for r in runs]
    factors = None if coarse is None else tuple(coarse)
    comparison = (coarse_comparison(records, factors, repeats=max(2, repeats // 5), max_cases=coarse_cases)
                  if factors != () else [])
    load_end = machine_info()["load_1min"]
    if load_end is not None:
        machine["load_1min"] = max(machine["load_1min"], load_end)  # the busier of start and end
    if memory:
        measure_memory(records)  # after all timing: the children run side by side
    bench = {"schema": SCHEMA, "machine": machine, "definitions": DEFINITIONS, "runs": records,
             "coarse": comparison}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = format_table(bench)
    said = [c["verdict"] for c in comparison if c.get("verdict")]
    text = text if not said else text + "\n\n" + "\n".join(f"Verdict: {v}" for v in said)
    write_json(out / "bench.json", bench)
    if any(r.get("elastic") for r in records):  # error against size and latency: each family a curve
        from wavesurrogate.eval.plots import elastic_curves

        elastic_curves(records, out / "elastic.png")
    atomic_write_text(out / "bench.md", "# Bench\n\n" + text + "\n")
    return text

