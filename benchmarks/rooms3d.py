"""Issue 15 (B) Done-when: a 3-D furnished-room surrogate of impulse responses against the FD solver.

    .venv/bin/python -m benchmarks.rooms3d            # about an hour on 2 cores: benchmarks/out/rooms3d.json
    .venv/bin/python -m benchmarks.rooms3d --smoke    # minutes: a tiny room, 1 epoch (the harness only)

1. Data: a 5 × 4 × 3 m room with a table and a cabinet (rigid voxel boxes), walls of real impedance
   Z = 7,400 Pa·s/m (R ≈ 0.895), c = 343 m/s, a Ricker point source of 200 Hz (band to f_max = 500 Hz), 6
   points per shortest wavelength, leapfrog at 0.95 × the CFL step, devito. ``n_train`` + ``n_test`` source
   positions drawn uniformly (seeded) away from walls and furniture; a receiver lattice (grid nodes outside
   the furniture) records every step, kept at ``fs`` (≥ 4 samples per f_max period) for ``ir_s``. Written in
   the schema's 3-D layout (``traces/receivers``; fields: the first and last frame) by this script with
   ``FDSolver`` + ``DataWriter`` (part A's 3-D campaigns may replace this step), reused when present.
2. Models (``source_to_receiver``, 8 receivers held out, never trained on; ``train_or_reuse``):
   ``separable_operator`` (branch on source and receiver positions, trunk on t) and the volumetric
   ``field_decoder`` dense and CP (``TensorizedConv3d``) on a coarse lattice of the room, same recipe.
3. Measured in this run: ``evaluate_model`` on the test sources at the held-out receivers (peak-normalised
   RMSE, relative L2); T30 of every such pair predicted vs solver (``metrics.room``); one query (1 source,
   8 receivers: ``predict_irs``) at one thread, median of ``eval.timing``; the solve for that query (the
   same FD solve recording those 8 receivers, warm, median of 3); the 2 kHz solve extrapolated from its
   measured per-step cost on the 2 kHz grid (``STEPS_2K`` steps timed, warm). Figures in ``out_dir``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from wavesurrogate.data.store import open_data
from wavesurrogate.data.writer import DataWriter
from wavesurrogate.eval import room_plots
from wavesurrogate.eval.bench import machine_info
from wavesurrogate.eval.evaluate import evaluate_model
from wavesurrogate.eval.timing import latency_fn, solver_seconds, speedup, with_threads
from wavesurrogate.io import write_json
from wavesurrogate.metrics.room import t30
from wavesurrogate.physics.fd.core import cfl_dt_max
from wavesurrogate.physics.fd.solver import FDSolver
from wavesurrogate.physics.problem import Boundary, Box, Grid, Source, TimeAxis
from wavesurrogate.runs import load_run, read_metrics
from wavesurrogate.tasks.source_to_receiver import predict_irs
from wavesurrogate.train.loop import config_from_dict, train_or_reuse

ROOT = Path(__file__).resolve().parents[1]
C, Z_WALL, PPW, STEPS_2K, QUERY_RECEIVERS = 343.0, 7400.0, 6, 40, 8
FULL = {"room": [5.0, 4.0, 3.0], "f_max": 500.0, "ir_s": 0.4, "fs": 2000.0, "n_train": 320, "n_test": 40,
        "lattice": [5, 4, 3], "margin": 0.5, "seed": 15,
        "furniture": [{"x_m": [1.5, 2.7], "y_m": [1.2, 2.0], "z_m": [0.0, 0.75]},   # table
                      {"x_m": [4.4, 5.0], "y_m": [0.0, 1.2], "z_m": [0.0, 2.0]}]}  # cabinet
SMOKE = {**FULL, "room": [2.0, 1.6, 1.2], "f_max": 250.0, "ir_s": 0.1, "fs": 1000.0, "n_train": 12,
         "n_test": 3, "lattice": [4, 3, 2], "margin": 0.3,
         "furniture": [{"x_m": [0.8, 1.2], "y_m": [0.5, 0.9], "z_m": [0.0, 0.4]}]}
RECIPE = {"epochs": 30, "batch_size": 8, "points_per_case": 4096, "lr": 1e-3}
MODELS = {"separable": ("separable_operator", {"n_basis": 64, "width": 96, "depth": 3, "trunk_width": 96,
                                               "trunk_depth": 2, "n_fourier_t": 64, "n_fourier_x": 4}),
          "decoder_dense": ("field_decoder", {"width": 32, "latent": 2, "n_up": 2, "kernel_size": 3}),
          "decoder_cp": ("field_decoder", {"width": 32, "latent": 2, "n_up": 2, "kernel_size": 3,
                                           "conv": {"format": "cp", "rank": 8}})}
DECODER_EPOCHS = 12  # the dense/CP comparison: the same, shorter recipe for both
LR = {"decoder_cp": 1e-2}  # CP factors train at ~10x the dense rate (as benchmarks/rollouts.py)


def inside(p: np.ndarray, boxes: list[dict[str, list[float]]], pad: float = 0.0) -> np.ndarray:
    """``[N]`` True where points ``[N, 3]`` lie in a box grown by ``pad`` m."""
    out = np.zeros(len(p), bool)
    for b in boxes:
        lo = np.array([b["x_m"][0], b["y_m"][0], b["z_m"][0]]) - pad
        hi = np.array([b["x_m"][1], b["y_m"][1], b["z_m"][1]]) + pad
        out |= np.all((p >= lo) & (p <= hi), axis=1)
    return out


def sources(s: dict[str, Any], n: int, seed: int) -> np.ndarray:
    """``[n, 3]`` source positions, uniform at least ``margin`` from the walls and 0.25 m from furniture."""
    rng, out = np.random.default_rng(seed), []
    while len(out) < n:
        p = rng.uniform(s["margin"], np.asarray(s["room"]) - s["margin"], (1, 3))
        if not inside(p, s["furniture"], 0.25)[0]:
            out.append(p[0])
    return np.asarray(out)


def solver(s: dict[str, Any], f_max: float, steps: int | None = None) -> tuple[FDSolver, Grid, int, int]:
    """(solver, grid, steps, trace stride) at ``PPW`` points per wavelength of ``f_max``."""
    n = [int(math.ceil(length * PPW * f_max / C)) + 1 for length in s["room"]]
    g = Grid(nx=n[0], ny=n[1], nz=n[2], dx=s["room"][0] / (n[0] - 1), dy=s["room"][1] / (n[1] - 1),
             dz=s["room"][2] / (n[2] - 1))
    dt = 0.95 * cfl_dt_max(g, C, 2)
    stride = max(1, int(round(1.0 / (s["fs"] * dt))))
    steps = steps or int(math.ceil(s["ir_s"] / (stride * dt))) * stride
    boxes = tuple(Box(tuple(b["x_m"]), tuple(b["y_m"]), tuple(b["z_m"])) for b in s["furniture"])
    fd = FDSolver(g, Boundary(kind="impedance", impedance_rayl=Z_WALL), TimeAxis(dt, 2, steps), 2, "devito",
                  obstacles=boxes)
    return fd, g, steps, stride


def receivers(s: dict[str, Any], g: Grid) -> np.ndarray:
    """Node indices ``[R, 3]`` (z, y, x) of a lattice ``margin`` inside the walls, outside the furniture."""
    axes = [np.unique(np.rint(np.linspace(s["margin"], length - s["margin"], k) / h).astype(int))
            for length, k, h in zip(s["room"][::-1], s["lattice"][::-1], g.spacing, strict=True)]
    idx = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return idx[~inside(idx[:, ::-1] * np.asarray(g.spacing[::-1]), s["furniture"], 0.2)]


def source(p: np.ndarray, f_max: float) -> Source:
    return Source(kind="point", x_m=float(p[0]), y_m=float(p[1]), z_m=float(p[2]), freq_hz=f_max / 2.5,
                  wavelet="ricker")


def campaign(path: Path, s: dict[str, Any]) -> Path:
    """The data file (reused when it holds this setup)."""
    if path.is_file():
        with open_data(path) as f:
            if yaml.safe_load(f.attrs["config_yaml"]).get("setup") == s:
                return path
    fd, g, steps, stride = solver(s, s["f_max"])
    idx = receivers(s, g)
    pts = np.concatenate([sources(s, s["n_train"], s["seed"]), sources(s, s["n_test"], s["seed"] + 1)])
    t = np.arange(steps // stride + 1) * stride * fd.time.dt_s
    cfg = {"setup": s, "solver": "fd devito, order 2", "walls": {"impedance_rayl": Z_WALL},
           "obstacles": s["furniture"], "source": {"wavelet": "ricker", "freq_hz": s["f_max"] / 2.5}}
    attrs = {"solver": "fd", "space_order": 2, "dt": fd.time.dt_s, "frame_stride": steps,
             "boundary": f"impedance {Z_WALL:g}", "seed": s["seed"], "package_version": "rooms3d",
             "config_yaml": yaml.safe_dump(cfg), "dx": g.dx, "dy": g.dy, "dz": g.dz}
    names = ["freq_hz", "source_x_m", "source_y_m", "source_z_m"]
    vel = np.full(g.shape, C, np.float32)
    with DataWriter(path, n_cases=len(pts), n_frames=2, x=g.x, y=g.y, z=g.z, t=np.array([0.0, t[-1]]),
                    attrs=attrs, param_names=names, solve_s=True, traces={"receivers": (t, idx)}) as w:
        for i, p in enumerate(pts):
            t0 = time.perf_counter()
            frames, tr = fd.run_recording(vel, idx, source(p, s["f_max"]))
            w.write_case(i, frames, vel, dict(zip(names, [s["f_max"] / 2.5, *p], strict=True)),
                         split=int(i >= s["n_train"]), traces={"receivers": tr[::stride]},
                         solve_s=time.perf_counter() - t0)
    return path


def run_config(name: str, data: Path, work: Path, smoke: bool) -> Any:
    model, kw = MODELS[name]
    with open_data(data) as f:
        nt, (nz, ny, nx) = f.trace_t("receivers").size, (6, 8, 10)
    if model == "field_decoder":
        kw = {**kw, "n_params": 3, "n_frames": nt, "nz": nz, "ny": ny, "nx": nx}
    else:
        kw = {**kw, "n_params": 3}
    if smoke:
        kw = {**kw, "width": 8, **({"trunk_width": 8, "n_basis": 8} if "trunk_width" in kw else {})}
    epochs = 1 if smoke else (DECODER_EPOCHS if model == "field_decoder" else RECIPE["epochs"])
    return config_from_dict({
        "name": name, "seed": 0, "out": str(work / name), "num_threads": 2, "progress": False,
        "data": {"path": str(data), "task": "source_to_receiver", "val_fraction": 0.1,
                 "params": ["source_x_m", "source_y_m", "source_z_m"], "held_out_receivers": QUERY_RECEIVERS,
                 "points_per_case": 256 if smoke else RECIPE["points_per_case"]},
        "model": {"name": model, "kwargs": kw}, "optim": {"name": "adam", "lr": LR.get(name, RECIPE["lr"])},
        "schedule": {"name": "cosine", "min_lr": 1e-5}, "epochs": epochs, "batch_size": RECIPE["batch_size"]})


def measure(name: str, run: Path, data: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Errors, T30 and the query latency of one run; and its held-out predictions for the figures."""
    model, info = load_run(run, "best")
    model.eval()
    s, ev = info.stats, evaluate_model(model, info, data)
    ho = s["receivers"]["held_out"]
    with open_data(data) as f:
        test = np.flatnonzero(f.split == 1)
        rec_m = f.trace_index("receivers")[ho][:, ::-1] * np.asarray(f.spacing[::-1])
        true = f.traces("receivers", test)[:, :, ho].transpose(0, 2, 1).astype(np.float64)
        params = [{k: float(f.params[k][c]) for k in s["param_names"]} for c in test]
        fs = 1.0 / float(np.diff(f.trace_t("receivers")[:2])[0])
    pred = np.stack([predict_irs(model, s, p, rec_m) for p in params])
    tp, tt = t30(pred, fs).reshape(-1), t30(true, fs).reshape(-1)
    ok = np.isfinite(tp) & np.isfinite(tt)
    rel = np.abs(tp[ok] / tt[ok] - 1.0)
    lat = with_threads(1, lambda: latency_fn(lambda: predict_irs(model, s, params[0], rec_m), 1, 5, 30))
    h = ev["held_out"]
    out = {"run": str(run), "model": MODELS[name][0],
           "params": int(sum(q.numel() for q in model.parameters() if q.requires_grad)),
           "train_s": sum(m["seconds"] for m in read_metrics(run)), "epochs": len(read_metrics(run)),
           "peak_normalised_rmse": h["peak_normalised_rmse"], "rel_l2": h["rel_l2"],
           "relative_rmse": h["relative_rmse"], "n_pairs": h["n_pairs"],
           "trained_receivers_peak_normalised_rmse": ev["trained"]["peak_normalised_rmse"],
           "t30_median_rel_error": float(np.median(rel)) if rel.size else None,
           "t30_mean_rel_error": float(np.mean(rel)) if rel.size else None,
           "t30_within_10pct": float(np.mean(rel <= 0.1)) if rel.size else None, "t30_pairs": int(ok.sum()),
           "t30_solver_median_s": float(np.median(tt[ok])) if ok.any() else None,
           "query_ms": lat.median_ms, "query_ms_q25": lat.q25_ms, "query_ms_q75": lat.q75_ms}
    return out, {"pred": pred, "true": true, "fs": np.array(fs), "rec_m": rec_m}


def solver_timing(s: dict[str, Any], data: Path, ho: list[int]) -> dict[str, Any]:
    """The FD solve of one query (receivers ``ho``), warm, and the 2 kHz solve from its measured per-step
    cost."""
    fd, g, steps, _ = solver(s, s["f_max"])
    with open_data(data) as f:
        idx = f.trace_index("receivers")[ho]
        p = np.array([float(f.params[k][np.flatnonzero(f.split == 1)[0]]) for k in
                      ("source_x_m", "source_y_m", "source_z_m")])
    vel = np.full(g.shape, C, np.float32)
    solve = solver_seconds(lambda: fd.run_recording(vel, idx, source(p, s["f_max"])), repeats=3)
    f2 = 4 * s["f_max"]  # 2 kHz for the full room
    fd2, g2, _, _ = solver({**s, "fs": 4 * s["fs"]}, f2, steps=STEPS_2K)
    vel2 = np.full(g2.shape, C, np.float32)
    idx2 = np.rint(idx * np.asarray(g.spacing) / np.asarray(g2.spacing)).astype(int)
    per_step = solver_seconds(lambda: fd2.run_recording(vel2, idx2, source(p, f2)), repeats=2) / STEPS_2K
    steps2 = int(math.ceil(s["ir_s"] / fd2.time.dt_s))
    return {"query_solve_s": solve, "grid": list(g.shape), "steps": steps, "dt_s": fd.time.dt_s,
            "per_step_s": solve / steps, "f_2k_hz": f2, "grid_2k": list(g2.shape), "dt_2k_s": fd2.time.dt_s,
            "per_step_2k_s": per_step, "steps_2k": steps2, "solve_2k_s": per_step * steps2,
            "solve_2k_1s_s": per_step * math.ceil(1.0 / fd2.time.dt_s),
            "solve_2k_how": f"extrapolated: {STEPS_2K} steps timed on the 2 kHz grid (warm), x steps needed"}


def goal(measured: Any, target: float, op: str, unit: str) -> dict[str, Any]:
    ok = measured is not None and (measured <= target if op == "<=" else measured >= target)
    return {"measured": measured, "target": target, "op": op, "met": bool(ok), "unit": unit}


def figures(out_dir: Path, s: dict[str, Any], data: Path, run: Path, pr: dict[str, np.ndarray]) -> list[str]:
    _, info = load_run(run, "best")
    with open_data(data) as f:
        pos = np.stack([f.params[k] for k in ("source_x_m", "source_y_m", "source_z_m")], 1)
        sp, idx = f.split, f.trace_index("receivers")
        rec = idx[:, ::-1] * np.asarray(f.spacing[::-1])
    r = info.stats["receivers"]
    paths = [room_plots.room_layout(info.stats["room"], out_dir / "room.png",
                                    {"train": pos[sp == 0], "test": pos[sp == 1]},
                                    {"train": rec[r["train"]], "held out": rec[r["held_out"]]},
                                    title=f"furnished room {s['room']} m")]
    pred, true = pr["pred"][0], pr["true"][0]
    t = np.arange(true.shape[1]) / float(pr["fs"])
    paths.append(room_plots.impulse_responses(t, pred[:3], true[:3], out_dir / "ir.png",
                                              [f"test source 0, held-out receiver {k}" for k in range(3)]))
    paths.append(room_plots.decay_curves(pr["pred"].reshape(-1, true.shape[1]),
                                         pr["true"].reshape(-1, true.shape[1]), float(pr["fs"]),
                                         out_dir / "edc.png"))
    return [str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in paths]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--work", default=None)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    tag = "rooms3d_smoke" if a.smoke else "rooms3d"
    s = SMOKE if a.smoke else FULL
    work = Path(a.work or ROOT / "runs" / tag)
    out = Path(a.out or ROOT / "benchmarks" / "out" / f"{tag}.json")
    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    data = campaign(work / "room.h5", s)
    with open_data(data) as f:
        solve_s = [f.solve_s(i) for i in range(f.n_cases)]
        n_rec = f.trace_index("receivers").shape[0]
    res: dict[str, Any] = {"setup": s, "recipe": RECIPE, "decoder_epochs": DECODER_EPOCHS, "smoke": a.smoke,
                           "machine": machine_info(), "data": str(data), "n_receivers": n_rec,
                           "campaign_solve_s_median": statistics.median(solve_s),
                           "campaign_s": float(np.sum(solve_s)), "runs": {}}
    preds = {}
    for name in MODELS:
        run, _ = train_or_reuse(run_config(name, data, work, a.smoke))
        res["runs"][name], preds[name] = measure(name, run, data)
    ho = load_run(work / "separable", "best")[1].stats["receivers"]["held_out"]
    res["solver"] = solver_timing(s, data, ho)
    main_run = res["runs"]["separable"]
    res["speedup"] = speedup(res["solver"]["query_solve_s"], main_run["query_ms"] / 1e3)
    res["speedup_2k"] = speedup(res["solver"]["solve_2k_s"], main_run["query_ms"] / 1e3)
    d, c = res["runs"]["decoder_dense"], res["runs"]["decoder_cp"]
    res["decoder_cp_vs_dense"] = {"params_ratio": c["params"] / d["params"],
                                  "error_ratio": c["peak_normalised_rmse"] / d["peak_normalised_rmse"],
                                  "query_ratio": c["query_ms"] / d["query_ms"]}
    res["figures"] = figures(out.parent / tag, s, data, work / "separable", preds["separable"])
    res["goals"] = {
        "ir_peak_normalised_rmse": goal(main_run["peak_normalised_rmse"], 0.05, "<=", "RMSE / peak"),
        "t30_within_10pct": goal(main_run["t30_median_rel_error"], 0.10, "<=", "median |T30 rel. error|"),
        "query_ms_1_thread": goal(main_run["query_ms"], 5.0, "<=", "ms (1 source, 8 receivers)"),
        "speedup_vs_solver": goal(res["speedup"], 100.0, ">=", "x (same run)"),
        "f_max_hz": goal(s["f_max"], 500.0, ">=", "Hz"),
        "training_sources": goal(s["n_train"], 300, ">=", "source positions")}
    res["wall_s"] = time.perf_counter() - t0
    write_json(out, res)
    print(out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
