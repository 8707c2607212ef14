"""Issue 17: multi-fidelity active learning (after D-MFDAL) against random top-fidelity and random mixed.

    .venv/bin/python -m benchmarks.mfal          # full: 3 seeds, 3 strategies + ensemble, 16²/32²/64²
    .venv/bin/python -m benchmarks.mfal --smoke  # the harness only: 2 seeds, tiny grids and model (NumPy FD)

Each fidelity's seconds per solve are measured once at the start, in this process (warm solves, median), and
replayed into every run (``costs_s``), so all strategies and seeds spend the same measured cost model; each
run is ``wavesurrogate learn``'s library call, resumable (rerunning this command continues killed runs).
Every run has the same initial design per seed (all fidelities), the same top-fidelity test set and per round
a budget of ``budget_top`` top-fidelity solves. The deep ensemble runs the random-mixed strategy: its
queries are the latent model's (the random choices do not depend on the model), so the two models are
compared on the same data.

Goals (issue 17): active reaches random-top's final nRMSE with <= 0.5x its cumulative solver seconds
(mean curves over seeds, linear between rounds); active's final nRMSE <= random mixed's; the 90 % interval
of active's final model covers 80-97 % of held-out values; the full run takes <= 60 min on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from wavesurrogate.config.base import validate
from wavesurrogate.config.learn import LearnConfig
from wavesurrogate.eval.bench import machine_info
from wavesurrogate.io import write_json

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("active", "random_top", "random_mixed")


def base_config(smoke: bool) -> dict[str, Any]:
    """The learn config shared by every run (costs, seed, strategy and model kind are set per run)."""
    if smoke:
        return {"fidelities": [12, 24], "problem": {"backend": "numpy", "space_order": 2, "frames": [5]},
                "model": {"modes": 8, "latent": 4, "hidden": 16, "members": 2, "steps_first": 40,
                          "steps_round": 20, "samples": 4},
                "design": {"initial": {12: 12, 24: 3}, "candidates": 48, "test_cases": 6}, "rounds": 2}
    return {"fidelities": [16, 32, 64],
            "model": {"modes": 48, "latent": 16, "hidden": 64, "members": 5, "steps_first": 600,
                      "steps_round": 300},
            "design": {"initial": {16: 64, 32: 8, 64: 4}, "candidates": 256, "test_cases": 50}, "rounds": 6}


def _run(job: tuple[dict[str, Any], str]) -> dict[str, Any]:
    """One learn run in a worker process: its history."""
    import torch

    from wavesurrogate.apps.learn import learn

    torch.set_num_threads(1)
    cfg, out = job
    t0 = time.perf_counter()
    learn(validate(LearnConfig, cfg), Path(out))
    st = json.loads((Path(out) / "state.json").read_text(encoding="utf-8"))
    return {"history": st["history"], "wall_s": time.perf_counter() - t0}


def reach_cost(costs: np.ndarray, errs: np.ndarray, target: float) -> float | None:
    """Cumulative cost at which the curve (costs, errs) first reaches ``target`` (linear between points)."""
    for k in range(len(errs)):
        if errs[k] <= target:
            if k == 0:
                return float(costs[0])
            f = (errs[k - 1] - target) / (errs[k - 1] - errs[k])
            return float(costs[k - 1] + f * (costs[k] - costs[k - 1]))
    return None


def curves(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, list[float]]]:
    """Per strategy: mean cumulative cost, mean/std/min/max nRMSE and mean coverage per round over seeds."""
    out = {}
    for name, rs in runs.items():
        cost = np.array([[h["cost_s"] for h in r["history"]] for r in rs])
        err = np.array([[h["nrmse"] for h in r["history"]] for r in rs])
        cov = np.array([[h["coverage90"] for h in r["history"]] for r in rs])
        out[name] = {"cost_s": cost.mean(0).tolist(), "nrmse_mean": err.mean(0).tolist(),
                     "nrmse_std": err.std(0).tolist(), "nrmse_min": err.min(0).tolist(),
                     "nrmse_max": err.max(0).tolist(), "coverage90_mean": cov.mean(0).tolist()}
    return out


def goal(measured: Any, target: float, op: str, unit: str) -> dict[str, Any]:
    ok = measured is not None and (measured <= target if op == "<=" else measured >= target)
    return {"measured": measured, "target": target, "op": op, "met": bool(ok), "unit": unit}


def goals(c: dict[str, dict[str, list[float]]], wall_s: float, smoke: bool) -> dict[str, Any]:
    """The issue's targets from the mean curves."""
    rt, ac, rm = c["random_top"], c["active"], c["random_mixed"]
    target = rt["nrmse_mean"][-1]
    reach = reach_cost(np.array(ac["cost_s"]), np.array(ac["nrmse_mean"]), target)
    ratio = None if reach is None else reach / rt["cost_s"][-1]
    cov = ac["coverage90_mean"][-1]
    return {"active_cost_to_random_top_final_nrmse": goal(ratio, 0.5, "<=", "x random-top cumulative s"),
            "active_final_vs_random_mixed_nrmse": goal(ac["nrmse_mean"][-1] / rm["nrmse_mean"][-1], 1.0, "<=",
                                                       "ratio"),
            "coverage90_low": goal(cov, 0.80, ">=", "fraction"),
            "coverage90_high": goal(cov, 0.97, "<=", "fraction"),
            "wall_time": goal(wall_s / 60.0, 60.0, "<=", "min" + (" (smoke)" if smoke else ""))}


def plot(c: dict[str, dict[str, list[float]]], path: Path, seeds: int) -> None:
    """nRMSE on the top-fidelity test set against cumulative solver seconds, mean and min–max over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, cv in c.items():
        x = np.array(cv["cost_s"])
        line, = ax.plot(x, cv["nrmse_mean"], marker="o", ms=3, label=name)
        ax.fill_between(x, cv["nrmse_min"], cv["nrmse_max"], color=line.get_color(), alpha=0.2)
    ax.set_xlabel("cumulative solver seconds (measured cost per solve)")
    ax.set_ylabel("nRMSE, top-fidelity test set")
    ax.set_title(f"multi-fidelity active learning: mean and min-max over {seeds} seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--seeds", type=int, default=None, help="default 3 (smoke 2)")
    p.add_argument("--budget-top", type=float, default=8.0, help="per-round budget in top-fidelity solves")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    p.add_argument("--rounds", type=int, default=None, help="override the rounds (a reduced run)")
    p.add_argument("--steps", type=int, nargs=2, default=None, metavar=("FIRST", "ROUND"),
                   help="override model.steps_first and model.steps_round (a reduced run)")
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    tag = "mfal_smoke" if a.smoke else "mfal"
    work = a.work or ROOT / "runs" / tag
    out = a.out or ROOT / "benchmarks" / "out" / f"{tag}.json"
    seeds = a.seeds or (2 if a.smoke else 3)
    t0 = time.perf_counter()
    from wavesurrogate.apps.learn_problem import measure_costs

    base = base_config(a.smoke)
    if a.rounds:
        base["rounds"] = a.rounds
    if a.steps:
        base["model"] = {**base["model"], "steps_first": a.steps[0], "steps_round": a.steps[1]}
    probe = validate(LearnConfig, {**base, "budget_s": 1.0, "measure_repeats": 7})
    costs = measure_costs(probe, np.random.default_rng(0))
    budget = a.budget_top * costs[probe.top]
    names = (*STRATEGIES, "ensemble_random_mixed")
    jobs: dict[str, list[tuple[dict[str, Any], str]]] = {k: [] for k in names}
    for seed in range(seeds):
        for name in jobs:
            strategy = "random_mixed" if name.startswith("ensemble") else name
            cfg = {**base, "name": f"{tag}_{name}_{seed}", "seed": seed, "costs_s": costs, "budget_s": budget,
                   "strategy": strategy,
                   "model": {**base["model"],
                             "kind": "ensemble" if name.startswith("ensemble") else "dmfdal"}}
            jobs[name].append((cfg, str(work / f"{name}_seed{seed}")))
    flat = [(name, j) for name, js in jobs.items() for j in js]
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # no fork of a parent whose solver threads are running
    with ProcessPoolExecutor(max_workers=max(1, a.jobs), mp_context=ctx) as pool:
        results = list(pool.map(_run, [j for _, j in flat]))
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in jobs}
    for (name, _), r in zip(flat, results, strict=True):
        runs[name].append(r)
    wall = time.perf_counter() - t0
    c = curves(runs)
    figure = Path(out).with_suffix(".png")
    plot(c, figure, seeds)
    top = str(probe.top)
    res = {"benchmark": "mfal", "issue": 17, "smoke": a.smoke, "seeds": seeds, "machine": machine_info(),
           "load_1min_end": os.getloadavg()[0], "wall_s": wall, "jobs": a.jobs,
           "costs_s": {str(k): v for k, v in costs.items()},
           "cost_ratio_to_coarsest": {str(k): v / costs[probe.fidelities[0]] for k, v in costs.items()},
           "budget_s_per_round": budget, "budget_top_solves_per_round": a.budget_top,
           "reduced": bool(a.rounds or a.steps), "config": {k: v for k, v in base.items()},
           "figure": str(figure.resolve().relative_to(ROOT) if figure.resolve().is_relative_to(ROOT)
                         else figure),
           "curves": c,
           "final_cases": {name: [r["history"][-1]["cases"] for r in rs] for name, rs in runs.items()},
           "final_top_cases_mean": {name: float(np.mean([r["history"][-1]["cases"][top] for r in rs]))
                                    for name, rs in runs.items()},
           "run_wall_s": {name: [r["wall_s"] for r in rs] for name, rs in runs.items()},
           "goals": goals(c, wall, a.smoke)}
    write_json(out, res)
    print(json.dumps({"goals": res["goals"], "out": str(out)}, indent=1))


if __name__ == "__main__":
    main()
