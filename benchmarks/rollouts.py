"""Issue 13 Done-when: long rollouts of a dense CNN and a CP CNN (<= 1/10 of its parameters) on forecast64.

    .venv/bin/python -m benchmarks.rollouts [--epochs 40] [--out benchmarks/out/rollouts.json]
    .venv/bin/python -m benchmarks.rollouts --smoke   # minutes: tiny campaigns, 1 epoch (the harness only)

1. Data: configs/forecast64.yaml (600 cases, 80 frames) and a long test campaign of the same physics
   (``forecast64_long``: 1 + 16 test cases, 205 frames, its own seed) into ``runs/rollouts/`` (kept).
2. Two cnn2d runs (width 16, 2 levels, n_in 4, n_out 1; CP: every spatial conv in CP format, each layer's
   rank the largest fitting 1,119 factor weights) with the same epochs and the recipe ``RECIPE``: forcing
   input, unrolled training on a 1 → 2 → 4 → 8 curriculum (loss over all steps), cosine schedule; Adam at
   1e-3 (dense) and 1e-2 (CP: about 10× dense). ``train_or_reuse``: finished runs are reused.
3. ``evaluate_model``: the 40-frame rollout from frame 0 of forecast64's test cases (relative L2 at h = 40
   and over all 40), the 200-frame rollout from frame 0 of the long campaign (at h = 200), energy growth,
   spectral radius; coarse-solver rows and verdict of ``eval.bench.bench_runs`` on forecast64 (same run).
4. ``goals``: 40-frame <= 10 % for both, CP <= 1.2x dense, 200-frame <= 2x the 40-frame error, coarse rows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import yaml

from wavesurrogate.config.base import read_yaml
from wavesurrogate.data.campaign import run_campaign
from wavesurrogate.eval.bench import bench_runs, machine_info
from wavesurrogate.eval.evaluate import evaluate_model
from wavesurrogate.io import atomic_write_text, write_json
from wavesurrogate.runs import load_run, read_metrics
from wavesurrogate.safeload import load_json
from wavesurrogate.train.loop import config_from_dict, train_or_reuse

ROOT = Path(__file__).resolve().parents[1]
SHORT, LONG = 40, 200
RECIPE = {"inputs": ["frames", "velocity", "forcing"], "forcing_kind": "leapfrog", "update": "leapfrog",
          "n_in": 4, "unroll": [1, 2], "noise_std": 0.1, "window_stride": 3, "max_cases": 60}
ARCH = {"width": 12, "depth": 5, "kernel_size": 5, "hidden": 8, "gain_layers": 1, "padding_mode": "replicate",
        "physics": "from_data"}
MODELS = {"dense": ({**ARCH}, 1e-3),
          "cp": ({**ARCH, "conv": {"format": "cp", "rank": 7}}, 2e-3)}


def campaigns(work: Path, smoke: bool) -> tuple[Path, Path]:
    """(forecast64 data file, long test campaign data file), simulated when missing."""
    base = read_yaml(ROOT / "configs" / "forecast64.yaml")
    if smoke:  # 16 × 16 nodes at 40 m, few cases, NumPy FD
        base.update(cases=8, test_cases=2, grid={"nx": 16, "ny": 16, "dx_m": 40.0, "dy_m": 40.0},
                    solver={"kind": "fd", "space_order": 2, "backend": "numpy"},
                    boundary={"kind": "absorbing", "width": 6})
        base["source"].update(x_m=[200.0, 400.0], y_m=[200.0, 400.0], freq_hz=[3.0, 4.0])
        base["time"] = {**base["time"], "n_frames": 20, "dt_s": 0.004}
    long = {**base, "name": base["name"] + "_long", "cases": 1, "test_cases": 2 if smoke else 16,
            "test_seed": 2000, "time": {**base["time"], "n_frames": 30 if smoke else LONG + 5}}
    out = []
    for cfg in (base, long):
        path = work / f"{cfg['name']}.h5"
        if not path.is_file():
            work.mkdir(parents=True, exist_ok=True)
            atomic_write_text(work / f"{cfg['name']}.yaml", yaml.safe_dump(cfg, sort_keys=False))
            run_campaign(work / f"{cfg['name']}.yaml", path, progress=False)
        out.append(path)
    return out[0], out[1]


def run_config(name: str, data: Path, work: Path, epochs: int, smoke: bool) -> Any:
    kwargs, lr = MODELS[name]
    if smoke:
        cp = {"conv": {"format": "cp", "rank": 2}} if "conv" in kwargs else {}
        kwargs = {**kwargs, "width": 2, "hidden": 2, **cp}
    unroll = [1, 2] if smoke else RECIPE["unroll"]
    return config_from_dict({
        "name": name, "seed": 0, "out": str(work / name), "num_threads": 1, "progress": False,
        "data": {"path": str(data), "n_in": RECIPE["n_in"], "n_out": 1,
                 "window_stride": RECIPE["window_stride"],
                 "val_fraction": 0.1, "max_cases": None if smoke else RECIPE["max_cases"],
                 "inputs": RECIPE["inputs"], "forcing_kind": RECIPE["forcing_kind"],
                 "update": RECIPE["update"]},
        "model": {"name": "wavestep2d", "kwargs": kwargs}, "optim": {"name": "adam", "lr": lr},
        "schedule": {"name": "cosine", "min_lr": lr / 100}, "epochs": epochs, "batch_size": 16,
        "rollout": {"unroll": unroll, "stage_epochs": max(1, epochs // len(unroll)),
                    "noise_std": RECIPE["noise_std"]}})


def at(ev: dict[str, Any], h: int) -> float | None:
    rel = ev["rollout"]["rel_l2"]
    return rel[min(h, len(rel)) - 1] if rel else None


def goal(measured: Any, target: float, op: str, unit: str) -> dict[str, Any]:
    ok = measured is not None and (measured <= target if op == "<=" else measured >= target)
    return {"measured": measured, "target": target, "op": op, "met": bool(ok), "unit": unit}


def goals(runs: dict[str, dict[str, Any]], coarse_rows: int) -> dict[str, Any]:
    d, c = runs["dense"], runs["cp"]
    ratio = c["rollout_short"] / d["rollout_short"] if d["rollout_short"] and c["rollout_short"] else None
    out = {f"rollout_{SHORT}_{k}": goal(r["rollout_short"], 0.10, "<=", "rel L2") for k, r in runs.items()}
    out["cp_over_dense"] = goal(ratio, 1.2, "<=", "ratio of 40-frame errors")
    out["cp_params_share"] = goal(c["params"] / d["params"], 0.1, "<=", "CP params / dense params")
    for k, r in runs.items():
        ok = r["rollout_long"] and r["rollout_short"]
        long_ratio = r["rollout_long"] / r["rollout_short"] if ok else None
        out[f"rollout_{LONG}_over_{SHORT}_{k}"] = goal(long_ratio, 2.0, "<=", "ratio")
    out["coarse_rows"] = goal(coarse_rows, 1, ">=", "coarse-solver rows in the same run")
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--work", default=None)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    work = Path(a.work or ROOT / "runs" / ("rollouts_smoke" if a.smoke else "rollouts"))
    out = Path(a.out or ROOT / "benchmarks" / "out" / ("rollouts_smoke.json" if a.smoke else "rollouts.json"))
    epochs = 1 if a.smoke else a.epochs
    t0 = time.perf_counter()
    data, long_data = campaigns(work, a.smoke)
    res: dict[str, Any] = {"data": str(data), "long_data": str(long_data), "epochs": epochs, "recipe": RECIPE,
                           "smoke": a.smoke, "machine": machine_info(), "runs": {}}
    for name in MODELS:
        run, _ = train_or_reuse(run_config(name, data, work, epochs, a.smoke))
        model, info = load_run(run)
        ev, ev_long = evaluate_model(model, info, data), evaluate_model(model, info, long_data)
        res["runs"][name] = {
            "run": str(run), "params": int(sum(q.numel() for q in model.parameters() if q.requires_grad)),
            "lr": MODELS[name][1], "train_s": sum(m["seconds"] for m in read_metrics(run)),
            "one_step": ev["one_step"]["rel_l2_pooled"], "rollout_short": at(ev, SHORT),
            "rollout_short_all": ev["rollout"]["rel_l2_all_horizons"], "rollout_long": at(ev_long, LONG),
            "horizon_short": min(SHORT, len(ev["rollout"]["rel_l2"])),
            "horizon_long": min(LONG, len(ev_long["rollout"]["rel_l2"])),
            "energy_growth": ev_long["rollout"]["energy_growth"], "flagged": ev_long["rollout"]["flagged"],
            "spectral_radius": ev["stability"]["spectral_radius"]}
    bench_runs([work / n for n in MODELS], work / "bench", data=data, repeats=3 if a.smoke else 15,
               memory=False, coarse_cases=2 if a.smoke else 8, overwrite=True)
    bench = load_json(work / "bench" / "bench.json")
    comp = bench["coarse"][0] if bench["coarse"] else {"rows": [], "verdict": None}
    keep = ("label", "factor", "error", "seconds")
    res["coarse"] = {"rows": [{k: r[k] for k in keep} for r in comp["rows"]],
                     "models": comp.get("models", []), "verdict": comp["verdict"]}
    res["goals"] = goals(res["runs"], len(comp["rows"]))
    res["wall_s"] = time.perf_counter() - t0
    write_json(out, res)
    print(out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
