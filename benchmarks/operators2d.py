"""Source → field operators in 2-D (issue 12): free field and a room, against the fine and coarse solvers.

    .venv/bin/python -m benchmarks.operators2d [--jobs 2] [--out benchmarks/out/operators2d.json]
    .venv/bin/python -m benchmarks.operators2d --smoke      # minutes: few cases, few steps (tests)

1. Data: configs/operators/free64.yaml (constant medium, absorbing walls, 700 + 100 sources) and room64.yaml
   (Neumann walls, two layers: translation does not hold) into runs/operators2d/data/ (kept when present).
2. POD floors of each training set: the error of the best p-mode projection of the test fields, against p and
   the number of training sources (``metrics.pod.pod_floor_curve``).
3. Training through ``train_or_reuse`` (one thread per run, ``--jobs`` at once), settings in ``RUNS``:
   the translation-aware operator (``relative_operator``), DeepONet as Borrel-Jensen et al. build it (pulse
   branch input, physical Fourier features, sine, SIREN, AdamW, clipping, 0.9^(step/2000) decay) at a CPU
   width, POD-DeepONet, the CP CNN decoder beside its dense twin, and the receiver model
   (``source_to_receiver``).
4. Measuring, one model at a time: held-out errors through the task's ``evaluate``; a new source at 4,096
   arbitrary (x, y, t) points at batch 1 and one thread (and the cached-trunk path on a fixed grid where the
   model has one); the fine FD solve of the same question and coarser FD solves (``eval.baselines``) of the
   same test sources, timed in this process. Every accuracy row carries the fine solve and the cheapest
   coarse solve that is no worse, and a flag when some solve beats the model on both error and time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wavesurrogate.data.campaign import run_campaign
from wavesurrogate.data.store import open_data
from wavesurrogate.data.windows import split_cases
from wavesurrogate.eval import baselines as B
from wavesurrogate.eval.bench import machine_info
from wavesurrogate.eval.evaluate import evaluate_model
from wavesurrogate.eval.timing import time_calls, with_threads
from wavesurrogate.io import to_json, write_json
from wavesurrogate.metrics.pod import pod_floor_curve
from wavesurrogate.nn.models.relative import RadialTable
from wavesurrogate.nn.registry import count_trainable
from wavesurrogate.runs import load_run, read_metrics
from wavesurrogate.tasks.base import test_cases
from wavesurrogate.tasks.source_to_field import param_affine
from wavesurrogate.train.loop import config_from_dict, train_or_reuse

ROOT = Path(__file__).resolve().parents[1]
WORK = "runs/operators2d"
SETS = {"free": "free64", "room": "room64"}
PARAMS = ["source_x_m", "source_y_m"]
QUERY_POINTS, TARGET_MS, TARGET_SPEEDUP = 4096, 5.0, 20.0
FACTORS = (1.0, 0.75, 0.5, 0.375, 0.25)
SIREN_SINE = {"activation": "sine", "init": "siren"}
RADIAL = {"inputs": "radial", "width": 48, "depth": 3, "n_basis": 1, **SIREN_SINE}

# name: (set, task, model, model kwargs, training overrides). Steps = epochs × ceil(630 / batch).
COMMON: dict[str, Any] = {"seed": 0, "num_threads": 1, "progress": False, "eval_every": 25, "batch_size": 32,
                          "optim": {"name": "adam", "lr": 1e-3},
                          "schedule": {"name": "cosine", "min_lr": 1e-5}}
PAPER = {"optim": {"name": "adamw", "lr": 1e-3}, "grad_clip": 0.01, "batch_size": 64,
         "schedule": {"name": "exponential_steps", "gamma": 0.9, "decay_steps": 2000}}
RUNS: dict[str, tuple[str, str, str, dict[str, Any], dict[str, Any]]] = {
    "free_relative": ("free", "source_to_field", "relative_operator",
                      RADIAL, {"epochs": 800}),
    "free_deeponet_paper_256": ("free", "source_to_field", "deeponet",
                                {"branch_input": "pulse", "fourier": "physical", "n_fourier": 9,
                                 "n_basis": 100,
                                 "branch_width": 256, "branch_depth": 2, "trunk_width": 256, "trunk_depth": 2,
                                 "modified": True, "include_coords": True, **SIREN_SINE},
                                {**PAPER, "epochs": 100, "points_per_case": 200}),
    "free_pod_deeponet_100": ("free", "source_to_field", "pod_deeponet", {"n_basis": 100}, {"epochs": 150}),
    "free_decoder_dense": ("free", "source_to_field", "field_decoder", {"width": 32},
                           {"epochs": 15, "batch_size": 8}),
    "free_decoder_cp": ("free", "source_to_field", "field_decoder",
                        {"width": 32, "conv": {"format": "cp", "rank": 8}},
                        {"epochs": 15, "batch_size": 8, "lr": 1e-2}),
    "free_receivers": ("free", "source_to_receiver", "relative_operator",
                       RADIAL, {"epochs": 300}),
    "room_relative": ("room", "source_to_field", "relative_operator",
                      {"inputs": "both", "absolute": True, "width": 64, "depth": 4, "n_basis": 1,
                       **SIREN_SINE},
                      {"epochs": 300}),
    "room_pod_deeponet_100": ("room", "source_to_field", "pod_deeponet", {"n_basis": 100}, {"epochs": 150}),
}
# the longest trainings first
ORDER = {"room_relative": 9, "free_deeponet_paper_256": 8, "free_decoder_dense": 7, "free_relative": 6}
GROUPS = {"relative": "translation-aware", "deeponet_paper": "DeepONet (paper recipe)",
          "pod_deeponet": "POD-DeepONet", "decoder_dense": "dense CNN decoder",
          "decoder_cp": "CP CNN decoder",
          "receivers": "translation-aware (receivers)"}


def data_path(s: str) -> Path:
    return ROOT / WORK / "data" / f"{SETS[s]}.h5"


def run_config(name: str, smoke: bool) -> dict[str, Any]:
    """The training config mapping of run ``name`` (``smoke``: 40 cases, 2 epochs)."""
    s, task, model, kwargs, over = RUNS[name]
    over = dict(over)
    lr = over.pop("lr", None)
    ppc = over.pop("points_per_case", 512)
    cfg = {**COMMON, **over, "name": name, "out": str(ROOT / WORK / ("smoke" if smoke else "runs") / name),
           "data": {"path": str(data_path(s)), "task": task, "val_fraction": 0.1, "points_per_case": ppc,
                    "params": PARAMS},
           "model": {"name": model, "kwargs": kwargs}}
    if lr is not None:
        cfg["optim"] = {**cfg["optim"], "lr": lr}
    kwargs = {**kwargs, "n_params": len(PARAMS)}
    if model in ("pod_deeponet", "field_decoder"):  # grid models: the stored grid
        with open_data(data_path(s)) as f:
            kwargs.update(n_frames=f.n_frames, ny=f.ny, nx=f.nx)
    cfg["model"]["kwargs"] = kwargs
    if smoke:
        cfg.update(epochs=2, eval_every=1)
        cfg["data"]["max_cases"] = 40
    return cfg


# --------------------------------------------------------------------------------------------------- data


def make_data(smoke: bool) -> dict[str, Any]:
    """Run the campaigns that are missing; describe every data file."""
    out = {}
    for s, stem in SETS.items():
        path = data_path(s)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            print(f"[operators2d] simulating {stem}", file=sys.stderr, flush=True)
            run_campaign(ROOT / "configs" / "operators" / f"{stem}.yaml", path, progress=False)
        with open_data(path) as f:
            out[s] = {"file": str(path.relative_to(ROOT)), "train_pool_cases": int(np.sum(f.split == 0)),
                      "test_cases": int(np.sum(f.split == 1)), "frames": int(f.n_frames),
                      "grid": [int(f.ny), int(f.nx)], "spacing_m": [float(f.dy), float(f.dx)],
                      "frame_dt_s": float(f.frame_dt), "dt_s": float(f.dt),
                      "boundary": f.config.boundary.kind,
                      "medium": f.config.medium.kind}
    return out


def pod_floors(s: str, smoke: bool) -> dict[str, Any]:
    """POD floor of set ``s``: relative L2 of the best p-mode projection of its test fields, against p and the
    number of training sources (the first n of the runs' own training split: the pool minus the validation
    cases), on the fields as stored; uncentred (a DeepONet's Σ b_k t_k) and centred (mean + p modes, as
    POD-DeepONet)."""
    with open_data(data_path(s)) as f:
        n = 40 if smoke else f.n_cases  # smoke runs train on the first 40 cases (data.max_cases)
        train = split_cases(n, f.split[:n], 0.1, COMMON["seed"], f.done[:n]).train
        test = np.flatnonzero(f.split == 1)[: 20 if smoke else None]
        tr, te = f.load_all(train)[0], f.load_all(test)[0]
    n_all = len(train)
    ns = sorted({n for n in (100, 200, 400, n_all) if n <= n_all})
    ps = [p for p in (25, 50, 100, 200, 400) if p < n_all]
    out: dict[str, Any] = {"p": ps, "n_sources": ns, "n_test": len(test)}
    for key, center in (("floor", False), ("floor_centred", True)):
        curve = pod_floor_curve(tr, te, ps, ns, center=center)
        out[key] = {str(n): {str(p): v for p, v in row.items()} for n, row in curve.items()}
    return out


def floor_at(floors: dict[str, Any], p: int, centred: bool = False) -> float | None:
    """The POD floor with all training sources at p modes (None if p was not measured)."""
    row = floors["floor_centred" if centred else "floor"][str(max(floors["n_sources"]))]
    return row.get(str(p))


# ----------------------------------------------------------------------------------------------- training


def train_one(args: tuple[str, bool]) -> tuple[str, float | None]:
    """Train, resume or reuse one run in a worker process; (name, wall seconds or None when reused)."""
    name, smoke = args
    os.chdir(ROOT)
    t0 = time.perf_counter()
    _, trained = train_or_reuse(config_from_dict(run_config(name, smoke)))
    return name, time.perf_counter() - t0 if trained else None


def train_all(names: list[str], jobs: int, smoke: bool) -> dict[str, float]:
    walls = {}
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as ex:
        for name, w in ex.map(train_one, [(n, smoke) for n in names]):
            if w is not None:
                walls[name] = w
                print(f"[operators2d] trained {name} in {w:.0f} s", file=sys.stderr, flush=True)
    return walls


def history(run: Path) -> dict[str, Any]:
    """Steps, train seconds (sum of epoch times) and the validation-loss trend of a finished run."""
    lines = read_metrics(run)
    val = [(x["step"], x["val_loss"]) for x in lines if x.get("val_loss") is not None]
    last_q = [v for s, v in val if s >= 0.75 * val[-1][0]] if val else []
    tl = [x["train_loss"] for x in lines]
    q = len(tl) // 4
    plateau = (1 - float(np.mean(tl[-q:])) / float(np.mean(tl[-2 * q:-q]))) if q >= 2 else None
    return {"epochs": len(lines), "steps": int(lines[-1]["step"]), "train_loss_gain_last_quarter": plateau,
            "train_seconds": sum(x["seconds"] for x in lines), "last_train_loss": lines[-1]["train_loss"],
            "val_loss": val,
            "val_gain_last_quarter": (1 - min(last_q) / max(last_q)) if len(last_q) > 1 else None}


# -------------------------------------------------------------------------------------------- measuring


def _ms(fn: Any, repeats: int) -> float:
    return 1e3 * statistics.median(with_threads(1, lambda: time_calls(fn, warmup=5, repeats=repeats)))


@torch.inference_mode()
def latency(model: torch.nn.Module, info: Any, f: Any, repeats: int) -> dict[str, Any]:
    """A new (held-out) source at 4,096 arbitrary (x, y, t) points, batch 1, one thread; and, for models with
    a trunk or basis independent of the source, the cached path on a fixed query grid (the last frame)."""
    case = int(test_cases(f)[0][0])
    p = param_affine(info.stats).encode(np.array([[f.params[n][case] for n in PARAMS]]))
    g = torch.Generator().manual_seed(7)
    pts = torch.rand(1, QUERY_POINTS, 3, generator=g) * 2 - 1
    out = {"query_points": QUERY_POINTS, "threads": 1, "arbitrary_ms": _ms(lambda: model(p, pts), repeats)}
    if hasattr(model, "trunk_basis") and hasattr(model, "branch_coeffs"):
        basis = model.trunk_basis(pts[0])
        out["cached_ms"] = _ms(lambda: model.combine(model.branch_coeffs(p), basis), repeats)
    elif hasattr(model, "sample_basis"):
        basis = model.sample_basis(pts[0])
        out["cached_ms"] = _ms(lambda: basis[:, :1].T + model.branch_coeffs(p) @ basis[:, 1:].T, repeats)
    return out


def measure(name: str, smoke: bool, coarse: dict[str, list[dict[str, Any]]], floors: dict[str, Any],
            repeats: int) -> dict[str, Any]:
    """Errors, size, latency and the solver baselines of one trained run."""
    s, task, model_name, _, _ = RUNS[name]
    run = Path(run_config(name, smoke)["out"])
    model, info = load_run(run)
    model.eval()
    ev = evaluate_model(model, info, data_path(s))
    with open_data(data_path(s)) as f:
        lat = latency(model, info, f, repeats)
    rec = {"run": name, "set": s, "task": task, "model": model_name, "kwargs": model.init_kwargs,
           "params": count_trainable(model), **history(run), "latency": lat}
    rows = coarse[s]
    fine = next(r for r in rows if r["factor"] == 1.0)
    if task == "source_to_receiver":
        h = ev["held_out"]
        rec["receivers"] = {"held_out": h, "trained": ev["trained"]}
        rec["error"] = h["rel_l2"]
    else:
        rec["test"] = {k: ev["one_step"][k] for k in ("rel_l2", "rel_l2_pooled", "rmse")}
        rec["last_frame"] = {k: ev["last_frame"][k] for k in ("rel_l2", "rel_l2_pooled")}
        rec["error"] = ev["one_step"]["rel_l2_pooled"]
        n_basis = model.init_kwargs.get("n_basis")
        if model_name in ("deeponet", "pod_deeponet") and n_basis is not None:
            rec["pod_floor_same_p"] = floor_at(floors[s], int(n_basis), centred=model_name == "pod_deeponet")
    model_s = lat["arbitrary_ms"] / 1e3
    rec["baselines"] = {"fine_seconds": fine["seconds"], "speedup_vs_fine": fine["seconds"] / model_s}
    if task == "source_to_receiver":  # the solver rows' errors are over whole fields, not at receivers
        rec["baselines"]["note"] = ("trace error at held-out receivers: not compared with the field "
                                    "errors of the solves")
        rows = []
    else:
        best = B.coarsest_no_worse(rows, rec["error"])
        rec["baselines"].update(coarsest_no_worse=None if best is None else
                                {"factor": best["factor"], "error": best["error"],
                                 "seconds": best["seconds"]},
                                beaten_by_solver=B.beaten(rec["error"], model_s, rows),
                                more_accurate_than_every_coarse_solve=all(
                                    rec["error"] < r["error"] for r in rows if r["factor"] < 1.0))
    if "cached_ms" in lat:
        rec["baselines"]["speedup_cached_vs_fine"] = fine["seconds"] / (lat["cached_ms"] / 1e3)
    if is_radial(model):  # the (r, t) table of a radial operator: arbitrary points by one bilinear gather
        rec["table"] = radial_table(model, info, s, task, fine["seconds"], rows, repeats)
    print(f"[operators2d] {name}: error {100 * rec['error']:.2f} %, {lat['arbitrary_ms']:.2f} ms",
          file=sys.stderr, flush=True)
    return rec


def paper_width_cost(smoke: bool) -> dict[str, Any]:
    """Seconds per training step of the paper's 2-D DeepONet (2 × 2048, batch 64 sources × 200 points) here:
    why the paper-width run is not trained on this CPU (the paper trains 60–80k steps)."""
    cfg = config_from_dict(run_config("free_deeponet_paper_256", smoke))
    kw = {**cfg.model.kwargs, "branch_width": 2048, "trunk_width": 2048}
    from wavesurrogate.train.loop import build_model, prepare_data

    data = prepare_data(cfg)
    model = build_model(cfg.model_copy(update={"model": cfg.model.model_copy(update={"kwargs": kw})}),
                        data.stats)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    batch = data.train.__getitems__([i % len(data.train) for i in range(64)])

    def step() -> None:
        opt.zero_grad()
        ((model(batch[0], batch[1]) - batch[2]) ** 2).mean().backward()
        opt.step()

    secs = with_threads(1, lambda: time_calls(step, warmup=1, repeats=2))
    sps = statistics.median(secs)
    return {"params": count_trainable(model), "seconds_per_step": sps, "steps_in_60_min": int(3600 / sps),
            "paper_steps": 80000, "hours_for_paper_steps": 80000 * sps / 3600}


def is_radial(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a radial relative_operator that ``RadialTable`` can tabulate."""
    kw = getattr(model, "init_kwargs", {})
    return (type(model).__name__ == "RelativeOperator" and kw.get("inputs") == "radial"
            and not kw.get("absolute") and kw.get("fourier", "none") == "none" and model.branch is None)


def radial_table(model: Any, info: Any, s: str, task: str, fine_s: float, rows: list[dict[str, Any]],
                 repeats: int) -> dict[str, Any]:
    """Error (the task's evaluate), 4,096-point latency and speed-up of the model's (r, t) table."""
    table = RadialTable(model).eval()
    ev = evaluate_model(table, info, data_path(s))
    err = ev["held_out"]["rel_l2"] if task == "source_to_receiver" else ev["one_step"]["rel_l2_pooled"]
    with open_data(data_path(s)) as f:
        ms = latency(table, info, f, repeats)["arbitrary_ms"]
    out = {"n_r": int(table.table.shape[-1]), "n_t": int(table.table.shape[-2]), "error": err,
           "arbitrary_ms": ms, "speedup_vs_fine": fine_s / (ms / 1e3)}
    if rows:
        out["beaten_by_solver"] = B.beaten(err, ms / 1e3, rows)
    if task == "source_to_receiver":
        out["receivers_held_out"] = ev["held_out"]
    return out


def solver_rows(s: str, smoke: bool, repeats: int) -> list[dict[str, Any]]:
    """Fine and coarse FD solves of the test sources of set ``s`` (errors against the stored fields)."""
    with open_data(data_path(s)) as f:
        cases = np.flatnonzero(f.split == 1)[: 4 if smoke else 100]
        rows = B.coarse_solves(f, cases, FACTORS, threads=1, repeats=repeats)
    for r in rows:
        r.pop("cases", None)
    return rows


# ------------------------------------------------------------------------------------------------ goals


def _goal(measured: Any, target: float, op: str, unit: str, **extra: Any) -> dict[str, Any]:
    ok = isinstance(measured, int | float) and np.isfinite(measured)
    met = ok and (measured <= target if op == "<=" else measured >= target)
    return {"measured": measured if ok else None, "target": target, "op": op, "met": bool(met), "unit": unit,
            **extra}


def goals(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One entry per "Done when" target of issue 12, from the measured records."""
    by = {r["run"]: r for r in records}
    fields = [r for r in records if r["task"] == "source_to_field"]

    def best(s: str) -> dict[str, Any] | None:
        ok = [r for r in fields if r["set"] == s and r["params"] <= 2_000_000 and r["train_seconds"] <= 3600]
        return min(ok, key=lambda r: r["error"]) if ok else None

    out: dict[str, Any] = {}
    free, room = best("free"), best("room")
    out["free_field_rel_l2"] = _goal(free and free["error"], 0.05, "<=", "fraction", run=free and free["run"])
    out["free_field_rel_l2_stretch"] = _goal(free and free["error"], 0.02, "<=", "fraction")
    out["room_rel_l2"] = _goal(room and room["error"], 0.10, "<=", "fraction", run=room and room["run"])
    paper = by.get("free_deeponet_paper_256")
    if paper:
        out["paper_deeponet_converged"] = _goal(paper["train_loss_gain_last_quarter"], 0.05, "<=",
                                                "fraction of mean train loss gained in the last quarter of "
                                                "epochs against the quarter before (a plateau, not the "
                                                "paper's 80k steps)", steps=paper["steps"], paper_steps=80000,
                                                error=paper["error"],
                                                pod_floor_same_p=paper.get("pod_floor_same_p"))
    if free:
        out["new_source_4096_points_ms"] = _goal(free["latency"]["arbitrary_ms"], TARGET_MS, "<=", "ms",
                                                 run=free["run"])
        tab = free.get("table")
        fast = tab if tab and tab["error"] <= max(0.05, 1.05 * free["error"]) else None  # as accurate
        out["speedup_vs_fine_solver"] = _goal(
            (fast or free["baselines"])["speedup_vs_fine"], TARGET_SPEEDUP, ">=", "x", run=free["run"],
            path="(r, t) table" if fast else "network", error=(fast or free)["error"],
            network_speedup=free["baselines"]["speedup_vs_fine"])
    dense, cp = by.get("free_decoder_dense"), by.get("free_decoder_cp")
    if dense and cp:
        out["cp_decoder_error_ratio"] = _goal(cp["error"] / dense["error"], 1.2, "<=", "x dense twin's error")
        out["cp_decoder_param_ratio"] = _goal(cp["params"] / dense["params"], 0.1, "<=",
                                              "x dense twin's params")
    rec = by.get("free_receivers")
    if rec:
        out["receivers_peak_normalised_rmse"] = _goal(rec["receivers"]["held_out"]["peak_normalised_rmse"],
                                                      0.05,
                                                      "<=", "peak-normalised RMSE, 8 held-out receivers")
    def decided(b: dict[str, Any]) -> bool:  # a finite fine time, and a coarse solve no worse or none at all
        fine_ok = isinstance(b.get("fine_seconds"), float) and np.isfinite(b["fine_seconds"])
        return fine_ok and (b.get("coarsest_no_worse") is not None
                            or bool(b.get("more_accurate_than_every_coarse_solve")))

    out["field_rows_with_both_baselines"] = _goal(
        sum(decided(r["baselines"]) for r in fields) / max(1, len(fields)), 1.0, ">=",
        "fraction of field rows")
    return out


def verdict_models(records: list[dict[str, Any]], s: str) -> list[dict[str, Any]]:
    """(name, error, seconds at arbitrary points) of every run of set ``s`` and of its (r, t) table."""
    out = []
    for r in records:
        if r["set"] == s and r["task"] == "source_to_field":  # receiver errors are not field errors
            out.append({"name": r["run"], "error": r["error"], "seconds": r["latency"]["arbitrary_ms"] / 1e3})
            if r.get("table"):
                t = r["table"]
                out.append({"name": f"{r['run']} (r, t) table", "error": t["error"],
                            "seconds": t["arbitrary_ms"] / 1e3})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="trainings at once (one thread each)")
    ap.add_argument("--out", default=None, help="JSON path (default: benchmarks/out/operators2d.json)")
    ap.add_argument("--only", nargs="*", default=None, help="runs to train and measure (default: all)")
    ap.add_argument("--repeats", type=int, default=50, help="timed calls per latency")
    ap.add_argument("--smoke", action="store_true", help="40 training cases, 2 epochs: checks the harness")
    ap.add_argument("--train-only", action="store_true", help="train (or reuse) the runs, measure nothing")
    a = ap.parse_args()
    t0 = time.perf_counter()
    names = list(RUNS) if a.only is None else a.only
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        ap.error(f"--only: unknown run {unknown[0]!r}; known: {', '.join(RUNS)}")
    data = make_data(a.smoke)
    walls = train_all(sorted(names, key=lambda n: -ORDER.get(n, 0)), a.jobs, a.smoke)
    if a.train_only:
        return
    t_train = time.perf_counter()
    sets = sorted({RUNS[n][0] for n in names})
    floors = {s: pod_floors(s, a.smoke) for s in sets}
    coarse = {s: solver_rows(s, a.smoke, 2 if a.smoke else 3) for s in sets}
    records = [measure(n, a.smoke, coarse, floors, 5 if a.smoke else a.repeats) for n in names]
    paper_cost = paper_width_cost(a.smoke) if "free_deeponet_paper_256" in names else None
    command = " ".join([".venv/bin/python -m benchmarks.operators2d", *sys.argv[1:]])
    res = {"benchmark": "operators2d", "smoke": a.smoke, "command": command,
           "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine_info(),
           "data": data, "pod_floor": floors, "solver": coarse, "runs": records, "goals": goals(records),
           "paper_width_cost": paper_cost,
           "training": {"common": COMMON, "paper": PAPER, "wall_seconds": walls},
           "verdicts": {s: B.verdict(verdict_models(records, s), coarse[s]) for s in sets},
           "seconds": {"training": t_train - t0, "total": time.perf_counter() - t0}}
    out = Path(a.out) if a.out else ROOT / "benchmarks" / "out" / ("operators2d_smoke.json" if a.smoke
                                                                   else "operators2d.json")
    write_json(out, res)
    print(to_json(res["goals"]))


if __name__ == "__main__":
    main()
