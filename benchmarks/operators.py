"""Peers at matched parameter budgets, trained and measured by one harness; prints JSON.

    .venv/bin/python -m benchmarks.operators [--jobs 2] [--out benchmarks/out/operators.json]
    .venv/bin/python -m benchmarks.operators --write-configs     # regenerate configs/peers/{forecast,field}/
    .venv/bin/python -m benchmarks.operators --smoke             # minutes: one budget, one epoch, few cases

What it does, in order:
1. Data: runs the campaigns configs/peers/forecast64_small.yaml (forecast task) and
   configs/peers/source64.yaml (source-to-field task) into runs/peers/data/ (skipped when the files exist).
2. Training: every config in configs/peers/forecast/ and configs/peers/field/ through ``train_or_reuse``
   (same optimiser, schedule, epochs, batch and data per task; one intra-op thread per run; ``--jobs`` runs at
   once). A run directory that already finished its epochs is reused.
3. Measuring, one model at a time and nothing else of ours running: each model is rebuilt with ``load_run``
   from its run directory (best weights) and
   - forecast: one-step error on the test cases' windows, a rollout from frame ``--rollout-start`` (after the
     source has stopped injecting) with errors at horizons 10 and 40, latency at batch 1 and 32
     (``eval.timing.latency_ms``), the 40-step rollout at batch 1, and the speed-up over the FD solver
     (``eval.bench.time_solver``: devito, one thread, advancing the same frames of a test case);
   - source-to-field: the whole test field (predict_grid on the file's grid), and for one new source position
     at the 4,096 points of the last frame: the latency (DeepONet: trunk precomputed for the fixed query grid,
     and all points new), the FD solver's time to reach that frame, and the speed-up.
Errors are in the data's field units (predictions de-normalised with the run's training statistics).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from wavesurrogate import metrics as M
from wavesurrogate.config.base import read_yaml
from wavesurrogate.config.train import TrainConfig, load_train_config
from wavesurrogate.data.campaign import run_campaign
from wavesurrogate.data.store import open_data
from wavesurrogate.data.windows import param_matrix
from wavesurrogate.eval import memory as Mem
from wavesurrogate.eval import timing as T
from wavesurrogate.eval.bench import machine_info, time_solver
from wavesurrogate.eval.evaluate import evaluate_model
from wavesurrogate.io import atomic_write_text, to_json, write_json
from wavesurrogate.nn import registry
from wavesurrogate.nn.budget import params_for_budget, width_for_budget
from wavesurrogate.nn.rollout import rollout
from wavesurrogate.runs import MODEL_JSON, load_run, read_json, read_metrics
from wavesurrogate.tasks.base import test_cases
from wavesurrogate.tasks.source_to_field import grid_coords, param_affine
from wavesurrogate.train.loop import config_from_dict, train_or_reuse

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "peers"
BUDGETS = (10_000, 50_000, 250_000)
N_IN, N_OUT = 4, 1
FIELD_PARAMS = ["source_x_m", "source_y_m"]
CP_RANK_RATIO = 1.0  # compressed CNNs: CP rank = round(ratio * width) in every spatial conv
QUERY_POINTS = 4096
TARGET_MS = 5.0

DATA = {"forecast": ("forecast64_small.yaml", "runs/peers/data/forecast64_small.h5"),
        "source_to_field": ("source64.yaml", "runs/peers/data/source64.h5")}

# Settings shared by every run of a task: only the model differs.
COMMON: dict[str, Any] = {"seed": 0, "optim": {"name": "adam", "lr": 1e-3},
                          "schedule": {"name": "cosine", "min_lr": 1e-5}, "num_threads": 1, "progress": False}
TASK_SETTINGS: dict[str, dict[str, Any]] = {
    "forecast": {"epochs": 4, "batch_size": 8,
                 "data": {"task": "forecast", "n_in": N_IN, "n_out": N_OUT, "window_stride": 8,
                          "val_fraction": 0.1}},
    "source_to_field": {"epochs": 16, "batch_size": 8,
                        "data": {"task": "source_to_field", "points_per_case": 2048, "val_fraction": 0.1,
                                 "params": FIELD_PARAMS}},
}
SUBDIR = {"forecast": "forecast", "source_to_field": "field"}


# ------------------------------------------------------------------------------------------------ budgets


def _cp(width: int) -> dict[str, Any]:
    return {"format": "cp", "rank": max(2, round(CP_RANK_RATIO * width))}


def model_specs(budgets: tuple[int, ...], geometry: dict[str, int]) -> list[tuple[str, str, str, dict]]:
    """(task, label, registry name, kwargs) of every compared model at every budget."""
    cnn = {"n_in": N_IN, "n_out": N_OUT, "depth": 2}
    dec = {"n_params": len(FIELD_PARAMS), **geometry}
    out = []
    for b in budgets:
        tag = f"{b // 1000}k"
        out.append(("forecast", f"cnn_dense_{tag}", "cnn2d",
                    width_for_budget("cnn2d", lambda w: {**cnn, "width": w}, b)))
        out.append(("forecast", f"cnn_cp_{tag}", "cnn2d",
                    width_for_budget("cnn2d", lambda w: {**cnn, "width": w, "conv": _cp(w)}, b)))
        for name in ("fno", "tfno"):
            out.append(("forecast", f"{name}_{tag}", name,
                        params_for_budget(name, b, n_in=N_IN, n_out=N_OUT, domain_padding=0.125)))
        out.append(("source_to_field", f"deeponet_{tag}", "deeponet",
                    params_for_budget("deeponet", b, n_params=len(FIELD_PARAMS))))
        out.append(("source_to_field", f"decoder_cp_{tag}", "field_decoder",
                    width_for_budget("field_decoder", lambda w: {**dec, "width": w, "conv": _cp(w)}, b)))
    return out


def run_config(task: str, label: str, name: str, kwargs: dict[str, Any], workdir: str) -> dict[str, Any]:
    """The training config mapping of one run (paths relative to the repository root)."""
    s = TASK_SETTINGS[task]
    return {"name": label, **COMMON, "out": f"{workdir}/{label}", "epochs": s["epochs"],
            "batch_size": s["batch_size"], "data": {"path": DATA[task][1], **s["data"]},
            "model": {"name": name, "kwargs": kwargs}}


def write_configs(workdir: str = "runs/peers") -> list[Path]:
    """Write configs/peers/{forecast,field}/<label>.yaml from the budget rules; the paths written."""
    geometry = _field_geometry(CONFIGS / DATA["source_to_field"][0])
    paths = []
    for task, label, name, kwargs in model_specs(BUDGETS, geometry):
        cfg = run_config(task, label, name, kwargs, workdir)
        config_from_dict(cfg)  # validate
        p = CONFIGS / SUBDIR[task] / f"{label}.yaml"
        p.parent.mkdir(parents=True, exist_ok=True)
        n = Mem.count_trainable(registry.build(name, kwargs))
        head = (f"# {label}: {name} near {label.rsplit('_', 1)[1]} parameters "
                f"({n:,}); written by benchmarks/operators.py --write-configs\n")
        atomic_write_text(p, head + yaml.safe_dump(cfg, sort_keys=False))
        paths.append(p)
    return paths


def _field_geometry(campaign_yaml: Path) -> dict[str, int]:
    c = read_yaml(campaign_yaml)
    return {"n_frames": int(c["time"]["n_frames"]), "ny": int(c["grid"]["ny"]), "nx": int(c["grid"]["nx"])}


# ---------------------------------------------------------------------------------------------------- data


def make_data(smoke: bool) -> dict[str, Path]:
    """Run the two campaigns unless their files exist; {task: data file}."""
    out = {}
    for task, (cfg_name, rel) in DATA.items():
        path = ROOT / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            run_campaign(CONFIGS / cfg_name, path, progress=False)
            print(f"[operators] simulated {path.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        out[task] = path
    return out


def _describe(path: Path) -> dict[str, Any]:
    with open_data(path) as f:
        return {"file": str(path.relative_to(ROOT)), "cases": int(f.n_cases),
                "train_pool_cases": int(np.sum(f.split == 0)), "test_cases": int(np.sum(f.split == 1)),
                "frames": int(f.n_frames), "grid": [int(f.ny), int(f.nx)], "frame_dt_s": float(f.frame_dt),
                "dt_s": float(f.dt), "frame_stride": int(f.frame_stride)}


# ------------------------------------------------------------------------------------------------ training


def train_one(cfg_path: str) -> tuple[str, float | None]:
    """Train, resume or reuse one config (in a worker process); (config path, wall seconds; None: reused)."""
    os.chdir(ROOT)  # relative paths in the configs are from the repository root
    t0 = time.perf_counter()
    _, trained = train_or_reuse(load_train_config(cfg_path))
    return cfg_path, time.perf_counter() - t0 if trained else None


def train_all(cfgs: list[tuple[Path, TrainConfig]], jobs: int) -> dict[str, float]:
    """Train every unfinished config, ``jobs`` at a time (largest first); {config path: wall seconds}."""
    todo = sorted((str(p) for p, _ in cfgs), key=lambda p: -int(re.search(r"_(\d+)k", Path(p).stem).group(1)))
    walls: dict[str, float] = {}
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) if jobs > 1 else nullcontext() as ex:
        done = map(train_one, todo) if ex is None else (
            f.result() for f in as_completed([ex.submit(train_one, p) for p in todo]))
        for p, w in done:
            if w is not None:
                walls[p] = w
                print(f"[operators] trained {Path(p).stem} in {w:.0f} s", file=sys.stderr, flush=True)
    return walls


def _history(run: Path) -> dict[str, Any]:
    lines = read_metrics(run)
    meta = read_json(run / MODEL_JSON)
    return {"epochs": len(lines), "steps": int(lines[-1]["step"]),
            "train_seconds": sum(x["seconds"] for x in lines),
            "first_train_loss": lines[0]["train_loss"], "last_train_loss": lines[-1]["train_loss"],
            "best_val_loss": min((x["val_loss"] for x in lines if x["val_loss"] is not None), default=None),
            "model_json_n_params": meta.get("n_params")}


# ------------------------------------------------------------------------------------------------- forecast


def forecast_errors(ev: dict[str, Any], window_stride: int, horizons: tuple[int, ...]) -> dict[str, Any]:
    """The one-step and rollout errors (at ``horizons``) of an ``evaluate_model`` result (field units)."""
    one, roll = ev["one_step"], ev["rollout"]
    n = min(max(horizons), len(roll["horizon"]))
    errs = {k: roll[k][:n] for k in ("rel_l2", "rmse")}
    return {"one_step": {"windows": one["n_samples"], "window_stride": window_stride,
                         "rel_l2_pooled": one["rel_l2_pooled"], "rmse": one["rmse"]},
            "rollout": {"start_frame": roll["start_frame"], "steps": n, "cases": len(ev["cases"]),
                        **{k: {str(h): v[h - 1] for h in horizons if h <= n} for k, v in errs.items()},
                        "diverged_at": M.diverged_at(errs)}}


def measure_forecast(run: Path, data: Path, solver: dict[str, Any], args: argparse.Namespace) -> dict:
    """Rebuild a forecast run from its directory and measure errors, latency and speed-up."""
    model, info = load_run(run, "best")
    ev = evaluate_model(model, info, data, rollout_start=args.rollout_start, window_stride=args.window_stride)
    ny, nx = info.stats["data"]["ny"], info.stats["data"]["nx"]
    rec: dict[str, Any] = {"run": run.name, "model": info.model_name, "kwargs": info.model_kwargs,
                           "params": Mem.count_trainable(model), "weight_bytes": Mem.weight_bytes(model),
                           "best_epoch": info.best_epoch, **_history(run)}
    rec.update(forecast_errors(ev, args.window_stride, (10, 40)))
    shape = (N_IN + 1, ny, nx)
    b1 = T.latency_ms(model, (1, *shape), warmup=3, repeats=args.repeats)
    b32 = T.latency_ms(model, (32, *shape), warmup=1, repeats=max(3, args.repeats // 4))
    x0, v0 = torch.randn(1, N_IN, ny, nx), torch.randn(1, ny, nx)
    steps = rec["rollout"]["steps"]
    roll_s = T.solver_seconds(lambda: rollout(model, x0, v0, steps), repeats=3)
    rec.update(latency_b1=b1.to_dict(), latency_b32=b32.to_dict(), rollout_b1_seconds=roll_s)
    one, many = solver["one_frame"]["seconds"], solver["rollout"]["seconds"]
    rec.update(speedup_b1=T.speedup(one, b1.per_sample_ms / 1e3),
               speedup_b32=T.speedup(one, b32.per_sample_ms / 1e3), speedup_rollout=T.speedup(many, roll_s))
    return rec


# ------------------------------------------------------------------------------------------ source to field


def _field_summary(one: dict[str, Any]) -> dict[str, float]:
    """The field errors of an evaluation summary; the truth's RMS is RMSE / pooled relative L2."""
    return {"rel_l2_mean": one["rel_l2"], "rel_l2_pooled": one["rel_l2_pooled"], "rmse": one["rmse"],
            "field_rms": one["rmse"] / one["rel_l2_pooled"]}


def measure_field(run: Path, data: Path, solver: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Rebuild a source-to-field run; whole-field test errors; latency for one new source at 4,096 points."""
    model, info = load_run(run, "best")
    s, ev = info.stats, evaluate_model(model, info, data)
    with open_data(data) as f:  # one new source (the first test case's), the last frame's grid nodes
        p1 = param_affine(s).encode(param_matrix(f.params, list(s["param_names"]), ev["cases"][:1]))
        q = grid_coords(s, f.x, f.y, f.t[-1:])
    rec: dict[str, Any] = {"run": run.name, "model": info.model_name, "kwargs": info.model_kwargs,
                           "params": Mem.count_trainable(model), "weight_bytes": Mem.weight_bytes(model),
                           "best_epoch": info.best_epoch, **_history(run), "test_cases": len(ev["cases"]),
                           "test_whole_field": _field_summary(ev["one_step"]),
                           "test_last_frame": _field_summary(ev["last_frame"])}
    lat: dict[str, Any] = {"query_points": int(q.shape[0]), "threads": torch.get_num_threads()}
    with torch.inference_mode():
        if hasattr(model, "trunk_basis"):
            basis = model.trunk_basis(q)
            cached = T.time_calls(lambda: model.combine(model.branch_coeffs(p1), basis),
                                  warmup=20, repeats=200)
            lat["cached_trunk_ms"] = 1e3 * float(np.median(cached))
            same = torch.allclose(model.combine(model.branch_coeffs(p1), basis), model(p1, q), atol=1e-5)
            lat["cached_equals_full"] = bool(same)
        full = T.time_calls(lambda: model(p1, q), warmup=3, repeats=args.repeats)
        lat["all_new_points_ms"] = 1e3 * float(np.median(full))
    best_ms = lat.get("cached_trunk_ms", lat["all_new_points_ms"])
    lat["meets_5ms"] = best_ms <= TARGET_MS
    solve = solver["to_last_frame"]["seconds"]
    lat["speedup_fixed_query"] = T.speedup(solve, best_ms / 1e3)
    lat["speedup_all_new_points"] = T.speedup(solve, lat["all_new_points_ms"] / 1e3)
    rec["new_source_latency"] = lat
    return rec


# ------------------------------------------------------------------------------------------------- solver


def time_solvers(data: dict[str, Path], rollout_steps: int, repeats: int) -> dict[str, Any]:
    """FD solver seconds (devito, one thread) for the answers the surrogates give, on the first test case."""
    out: dict[str, Any] = {}
    for task, path in data.items():
        with open_data(path) as f:
            c = int(test_cases(f)[0][0])
            params = {k: float(v[c]) for k, v in f.params.items()}
            cfg_yaml, dt, n_frames = f.attrs["config_yaml"], f.dt, f.n_frames
        fc = task == "forecast"
        frames = {"one_frame": 1, "rollout": rollout_steps} if fc else {"to_last_frame": n_frames - 1}
        out[task] = {"case": c, **{k: time_solver(cfg_yaml, dt, params, 1, n, repeats=repeats)
                                   for k, n in frames.items()}}
    return out


# --------------------------------------------------------------------------------------------------- main


def _load_configs(smoke: bool, workdir: str, no_extra: bool = False) -> list[tuple[Path, TrainConfig]]:
    """The run configs: the committed files (matched ones, then ``extra/`` unless ``no_extra``), or (smoke)
    10 k models, one epoch, few cases, in ``workdir``."""
    if not smoke:
        paths = sorted((CONFIGS / "forecast").glob("*.yaml")) + sorted((CONFIGS / "field").glob("*.yaml"))
        if not paths:
            raise SystemExit("no configs in configs/peers/{forecast,field}: run with --write-configs first")
        if not no_extra:
            paths += sorted((CONFIGS / "extra").glob("*.yaml"))
        return [(p, load_train_config(p)) for p in paths]
    geometry = _field_geometry(CONFIGS / DATA["source_to_field"][0])
    out = []
    tmp = ROOT / workdir / "configs"
    tmp.mkdir(parents=True, exist_ok=True)
    for task, label, name, kwargs in model_specs((10_000,), geometry):
        cfg = run_config(task, label, name, kwargs, workdir)
        cfg.update(epochs=1)
        cfg["data"] = {**cfg["data"], "max_cases": 12 if task == "forecast" else 24}
        p = tmp / f"{label}.yaml"
        p.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        out.append((p, load_train_config(p)))
    return out


def main() -> None:
    """Parse arguments, make data, train, measure, print (and write) the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/out/operators.json", help="also write the JSON here")
    ap.add_argument("--jobs", type=int, default=1, help="training runs at once (one thread each)")
    ap.add_argument("--repeats", type=int, default=20, help="timed calls per latency (batch 32: a quarter)")
    ap.add_argument("--window-stride", type=int, default=2, help="test windows: one every N frames")
    ap.add_argument("--rollout-start", type=int, default=36, help="first input frame of the test rollouts")
    ap.add_argument("--write-configs", action="store_true", help="write the run configs and exit")
    ap.add_argument("--smoke", action="store_true", help="a quick end-to-end check (not a result)")
    ap.add_argument("--no-extra", action="store_true", help="skip configs/peers/extra/ (unmatched runs)")
    args = ap.parse_args()
    os.chdir(ROOT)
    if args.write_configs:
        for p in write_configs():
            print(p.relative_to(ROOT))
        return
    workdir = "runs/peers_smoke" if args.smoke else "runs/peers"
    torch.set_num_threads(1)
    t_start, load_start = time.time(), os.getloadavg()
    data = make_data(args.smoke)
    cfgs = _load_configs(args.smoke, workdir, args.no_extra)
    walls = train_all(cfgs, args.jobs)
    t_trained = time.time()
    solver = time_solvers(data, 40, repeats=7)
    result: dict[str, Any] = {
        "benchmark": "operators", "smoke": args.smoke,
        "command": "-m benchmarks.operators " + " ".join(sys.argv[1:]),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {**machine_info(), "load_avg_start": load_start},
        "data": {task: _describe(p) for task, p in data.items()},
        "training": {"common": COMMON, "tasks": TASK_SETTINGS, "jobs": args.jobs,
                     "cp_rank_ratio": CP_RANK_RATIO,
                     "wall_seconds": {Path(k).stem: v for k, v in walls.items()},
                     "reused_runs": sorted(Path(str(c.out)).name for p, c in cfgs if str(p) not in walls)},
        "measure": {"threads": 1, "latency_repeats": args.repeats, "test_window_stride": args.window_stride,
                    "rollout_start_frame": args.rollout_start, "target_ms": TARGET_MS},
        "solver": solver, "forecast": [], "source_to_field": [],
    }
    for path, cfg in cfgs:
        run = ROOT / str(cfg.out)
        task = cfg.data.task
        print(f"[operators] measuring {run.name}", file=sys.stderr, flush=True)
        if task == "forecast":
            rec = measure_forecast(run, data[task], solver["forecast"], args)
        else:
            rec = measure_field(run, data[task], solver["source_to_field"], args)
        rec["extra"] = path.parent.name == "extra"  # not part of the matched comparison
        result[task].append(rec)
    result["seconds"] = {"total": time.time() - t_start, "training": t_trained - t_start,
                         "measuring": time.time() - t_trained}
    result["machine"]["load_avg_end"] = os.getloadavg()
    print(to_json(result))
    if args.out and not args.smoke:
        (ROOT / args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(ROOT / args.out, result)


if __name__ == "__main__":
    main()
