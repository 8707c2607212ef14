"""Issue 18 Done-when: one elastic CP network, sliced to several budgets, against networks trained alone.

    .venv/bin/python -m benchmarks.elastic [--epochs 6] [--out benchmarks/out/elastic.json]
    .venv/bin/python -m benchmarks.elastic --smoke   # minutes: tiny campaign, 1 epoch (the harness only)

1. Data: forecast64 (``benchmarks.rollouts.campaigns``: configs/forecast64.yaml, made once into
   ``runs/rollouts/`` and shared with that benchmark); training on its first ``MAX_CASES`` cases, windows
   every ``STRIDE`` frames; evaluation on its first ``EVAL_CASES`` test cases.
2. ``elastic_cnn2d`` (width 24, 6 residual blocks of two 3×3 CP convs, rank 12, dense 1×1 lift and head) at
   the pairs ``PAIRS`` (blocks, rank) = (1, 2), (2, 3), (3, 6), (6, 12), the issue's (1, R/8), (2, R/4),
   (3, R/2), (B, R) rounded: 1/137 … 1/7.6 of the same network with dense 3×3 convs. Runs, all with the
   same recipe, seed and epochs (equal steps), through the one loop (``train_or_reuse``): ``fixed``
   (elastic, loss summed over every pair each step + 0.3 × distillation toward the full model),
   ``random`` (elastic, one random pair per step, same distillation), and one network per pair trained
   alone (``alone_b_r``).
3. ``wavesurrogate slice`` (``runs.slice.slice_run``) writes each pair of ``fixed`` and ``random`` as a
   standalone run; each is evaluated by the forecast task: one-step relative L2 (pooled) and the 40-frame
   rollout from frame 0 (relative L2 at h = 40).
4. Per slice of ``fixed`` against the full run: weight bytes (``eval.memory.weight_bytes``), inference memory
   (tensor-level peak of one batch-32 forward, ``eval.memory.inference_tensor_peak_bytes``; the resident-set
   peak in a fresh process beside it), batch-1 latency (``eval.timing.round_robin``, paired rounds, median).
5. Training cost: one epoch of ``fixed`` and of the largest network alone, fresh runs one after the other,
   process CPU seconds (one thread, so the compute whatever the machine's load) and wall seconds; the
   full runs' own epoch times (``train_s``) are kept beside it.
6. ``bench`` of the slices beside the runs trained alone (its table and ``elastic.png``: the family's
   error against parameters and latency as a curve; no coarse solves here).
7. ``goals``: per pair one-step and 40-frame error ≤ 1.2× alone; fixed beats random on most pairs (one-step
   and 40-frame, counted); elastic training ≤ 2.5× the largest alone (CPU seconds of an epoch); each slice
   below the full run in weight bytes, inference memory and latency; a pair outside the list refused
   with exit 2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.rollouts import campaigns
from wavesurrogate import tasks
from wavesurrogate.data.store import open_data
from wavesurrogate.eval.bench import bench_runs, machine_info
from wavesurrogate.eval.memory import inference_peak_bytes, inference_tensor_peak_bytes, weight_bytes
from wavesurrogate.eval.timing import round_robin
from wavesurrogate.io import write_json
from wavesurrogate.nn.registry import count_trainable
from wavesurrogate.runs import load_run, read_metrics
from wavesurrogate.runs.slice import slice_run
from wavesurrogate.tasks.base import test_cases
from wavesurrogate.train.loop import config_from_dict, train_or_reuse

ROOT = Path(__file__).resolve().parents[1]
HORIZON = 40
ARCH = {"width": 24, "blocks": 6, "rank": 12}
PAIRS = [(1, 2), (2, 3), (3, 6), (6, 12)]
RECIPE = {"inputs": ["frames", "velocity", "forcing"], "update": "direct", "lr": 5e-3, "batch_size": 16,
          "distill": 0.3}
MAX_CASES, STRIDE, EVAL_CASES = 120, 4, 16


def dense_params(width: int, blocks: int, n_in: int = 4, n_extra: int = 1, k: int = 3) -> int:
    """Parameters of the same network with dense k×k convolutions (the reference of the shares)."""
    lift, head = (n_in + 1 + n_extra) * width + width, width + 1
    return lift + head + blocks * 2 * (width * width * k * k + width)


def run_config(name: str, data: Path, work: Path, epochs: int, smoke: bool, arch: dict[str, Any],
               elastic: dict[str, Any] | None, max_cases: int = MAX_CASES, model: str = "elastic_cnn2d",
               recipe: dict[str, Any] = RECIPE) -> Any:
    cfg = {
        "name": name, "seed": 0, "out": str(work / name), "num_threads": 1, "progress": False,
        "data": {"path": str(data), "n_in": 4, "n_out": 1, "window_stride": 1 if smoke else STRIDE,
                 "val_fraction": 0.1, "max_cases": None if smoke else max_cases,
                 "inputs": recipe["inputs"], "update": recipe["update"]},
        "model": {"name": model, "kwargs": arch}, "optim": {"name": "adam", "lr": recipe["lr"]},
        "schedule": {"name": "cosine", "min_lr": 1e-5}, "epochs": epochs, "batch_size": recipe["batch_size"],
        "grad_clip": 1.0}
    if elastic is not None:
        cfg["elastic"] = elastic
    return config_from_dict(cfg)


def evaluate(run: Path, data: Path, n_cases: int) -> dict[str, Any]:
    """One-step (pooled rel L2) and rollout errors of ``run`` on the first ``n_cases`` test cases."""
    model, info = load_run(run)
    with open_data(data) as f:
        cases = test_cases(f)[0][:n_cases]
        ev = tasks.get(info.task).evaluate(model, info, f, cases, window_stride=2)
    rel = ev["rollout"]["rel_l2"]
    h = min(HORIZON, len(rel))
    return {"run": str(run), "params": count_trainable(model), "one_step": ev["one_step"]["rel_l2_pooled"],
            "rollout": rel[h - 1], "horizon": h, "rollout_all": ev["rollout"]["rel_l2_all_horizons"],
            "diverged": ev["rollout"]["diverged"], "weight_bytes": weight_bytes(model),
            "train_s": sum(m["seconds"] for m in read_metrics(run))}


def costs(runs: dict[str, Path], shape: tuple[int, int], in_ch: int, repeats: int,
          model: str = "elastic_cnn2d") -> dict[str, Any]:
    """Batch-1 latency (paired round robin, median ms) and inference memory of each run."""
    import torch

    models = {k: load_run(r)[0] for k, r in runs.items()}
    x = torch.randn(1, in_ch, *shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        times = round_robin({k: (lambda m=m: m(x)) for k, m in models.items()}, repeats, warmup=3)
    out = {}
    batch = (32, in_ch, *shape)
    for k, m in models.items():
        kw = load_run(runs[k])[1].model_kwargs
        out[k] = {"latency_ms": 1e3 * statistics.median(times[k][0]),
                  "latency_cpu_ms": 1e3 * statistics.median(times[k][1]),
                  "infer_tensor_peak_bytes": inference_tensor_peak_bytes(model, kw, batch),
                  "infer_rss_peak_bytes": inference_peak_bytes(model, kw, batch),
                  "weight_bytes": weight_bytes(m)}
    return out


def train_cost(data: Path, work: Path, smoke: bool, arch: dict[str, int], max_cases: int) -> dict[str, Any]:
    """Process CPU seconds (one thread: the compute, whatever the machine's load) and wall seconds of one
    epoch of elastic (fixed list) training and of the largest network alone, fresh runs side by side."""
    from wavesurrogate.train.loop import train

    out = {}
    el = {"pairs": [list(q) for q in PAIRS], "sampling": "all", "distill": RECIPE["distill"]}
    for name, kw, e in (("fixed", arch, el), ("alone", arch, None)):
        cfg = run_config(f"timing_{name}", data, work, 1, smoke, kw, e, max_cases)
        c0, t0 = time.process_time(), time.perf_counter()
        run = train(cfg, overwrite=True)
        out[name] = {"cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0,
                     "epoch_s": read_metrics(run)[0]["seconds"]}
    out["cpu_ratio"] = out["fixed"]["cpu_s"] / out["alone"]["cpu_s"]
    out["wall_ratio"] = out["fixed"]["wall_s"] / out["alone"]["wall_s"]
    return out


def goal(measured: Any, target: float, op: str, unit: str) -> dict[str, Any]:
    ok = measured is not None and (measured <= target if op == "<=" else measured >= target)
    return {"measured": measured, "target": target, "op": op, "met": bool(ok), "unit": unit}


def goals(res: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sl, cost = res["slices"], res["costs"]
    wins = {"one_step": 0, "rollout": 0}
    full = f"{PAIRS[-1][0]}x{PAIRS[-1][1]}"
    for key, s in sl.items():
        alone = res["alone"][key]
        for m in ("one_step", "rollout"):
            r = s["fixed"][m] / alone[m] if alone[m] else None
            out[f"{key}_{m}_over_alone"] = goal(r, 1.2, "<=", f"ratio of {m} rel L2 (slice / trained alone)")
            wins[m] += int(s["fixed"][m] < s["random"][m])
        if key != full:
            c, f = cost[key], cost[full]
            below = "ratio to the full run (at least 1 % below it)"
            out[f"{key}_weight_bytes_below_full"] = goal(c["weight_bytes"] / f["weight_bytes"], 0.99, "<=",
                                                         below)
            out[f"{key}_infer_memory_below_full"] = goal(
                c["infer_tensor_peak_bytes"] / f["infer_tensor_peak_bytes"], 0.99, "<=", below)
            out[f"{key}_latency_below_full"] = goal(c["latency_ms"] / f["latency_ms"], 0.99, "<=",
                                                    below + ", batch 1, median of paired rounds")
    n = len(sl)
    for m in ("one_step", "rollout"):
        out[f"fixed_beats_random_{m}"] = goal(wins[m], n // 2 + 1, ">=", f"pairs of {n} (most)")
    tc = res.get("train_cost") or {}
    out["elastic_train_cpu_over_largest_alone"] = goal(tc.get("cpu_ratio"), 2.5, "<=", "ratio of process "
                                                       "CPU seconds of one epoch (one thread), fresh runs")
    shares = [sl[k]["params"] / res["dense_params"] for k in sl]
    out["smallest_share_of_dense"] = goal(min(shares), 1 / 50, "<=", "params / dense params")
    out["pairs"] = goal(n, 4, ">=", "slices")
    out["untrained_pair_refused"] = goal(int(res["refusal"]["exit_code"] == 2), 1, ">=", "exit code 2")
    return out


def refusal(run: Path, work: Path) -> dict[str, Any]:
    """The slice verb on a pair outside the trained list: exit code and its one line."""
    import contextlib
    import io

    from wavesurrogate.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["slice", str(run), "--blocks", "1", "--rank", str(PAIRS[-1][1]), "--out",
                     str(work / "refused")])
    return {"pair": [1, PAIRS[-1][1]], "exit_code": code, "message": err.getvalue().strip()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--max-cases", type=int, default=MAX_CASES, help="training + validation cases")
    p.add_argument("--eval-cases", type=int, default=EVAL_CASES, help="test cases evaluated")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--timing-only", action="store_true", help="re-measure the training cost and the goals "
                   "into the existing --out JSON (the rest of it is kept)")
    p.add_argument("--no-bench", action="store_true", help="skip the bench step (its figure)")
    p.add_argument("--goals-only", action="store_true", help="recompute the goals of the --out JSON")
    p.add_argument("--work", default=None)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    work = Path(a.work or ROOT / "runs" / ("elastic_smoke" if a.smoke else "elastic"))
    data_dir = work if a.smoke else ROOT / "runs" / "rollouts"
    out = Path(a.out or ROOT / "benchmarks" / "out" / ("elastic_smoke.json" if a.smoke else "elastic.json"))
    epochs = 1 if a.smoke else a.epochs
    arch = {**ARCH, "width": 6} if a.smoke else ARCH
    t0 = time.perf_counter()
    if a.goals_only:
        res = json.loads(out.read_text(encoding="utf-8"))
        res["goals"] = goals(res)
        write_json(out, res)
        print(json.dumps(res["goals"], indent=1))
        return
    data, _ = campaigns(data_dir, a.smoke)
    if a.timing_only:
        res = json.loads(out.read_text(encoding="utf-8"))
        res["train_cost"] = train_cost(data, work, a.smoke, arch, a.max_cases)
        res["goals"] = goals(res)
        write_json(out, res)
        print(json.dumps(res["goals"], indent=1))
        return
    pairs = [list(q) for q in PAIRS]
    res: dict[str, Any] = {"data": str(data), "epochs": epochs, "arch": arch, "pairs": pairs,
                           "recipe": RECIPE, "smoke": a.smoke, "machine": machine_info(),
                           "max_cases": None if a.smoke else a.max_cases, "window_stride": STRIDE,
                           "eval_cases": a.eval_cases,
                           "dense_params": dense_params(arch["width"], arch["blocks"])}
    runs = {}
    for mode in ("fixed", "random"):
        el = {"pairs": pairs, "sampling": "all" if mode == "fixed" else "random",
              "distill": RECIPE["distill"]}
        runs[mode] = train_or_reuse(run_config(mode, data, work, epochs, a.smoke, arch, el, a.max_cases))[0]
        res[mode] = {"run": str(runs[mode]), "train_s": sum(m["seconds"] for m in read_metrics(runs[mode]))}
    res["alone"], res["slices"], sliced = {}, {}, {}
    for b, r in PAIRS:
        key = f"{b}x{r}"
        alone = train_or_reuse(run_config(f"alone_{key}", data, work, epochs, a.smoke,
                                          {**arch, "blocks": b, "rank": r}, None, a.max_cases))[0]
        res["alone"][key] = evaluate(alone, data, a.eval_cases)
        row: dict[str, Any] = {}
        for mode in ("fixed", "random"):
            s = slice_run(runs[mode], b, r, work / "slices" / f"{mode}_{key}", overwrite=True)
            row[mode] = evaluate(s, data, a.eval_cases)
            if mode == "fixed":
                sliced[key] = s
        row["params"] = row["fixed"]["params"]
        row["share_of_dense"] = row["params"] / res["dense_params"]
        res["slices"][key] = row
    info = load_run(runs["fixed"])[1]
    g = info.stats["data"]
    res["costs"] = costs(sliced, (g["ny"], g["nx"]), tasks.get("forecast").in_channels(info.stats),
                         10 if a.smoke else 60)
    res["refusal"] = refusal(runs["fixed"], work)
    res["train_cost"] = train_cost(data, work, a.smoke, arch, a.max_cases)
    if not a.no_bench:  # bench's table and its elastic.png curves (bench evaluates every test case)
        alone_runs = [work / f"alone_{b}x{r}" for b, r in PAIRS]
        bench_runs([*sliced.values(), *alone_runs], work / "bench", data=data, repeats=3 if a.smoke else 9,
                   memory=False, coarse=())
        res["bench_figure"] = str(work / "bench" / "elastic.png")
    res["goals"] = goals(res)
    res["wall_s"] = time.perf_counter() - t0
    write_json(out, res)
    print(out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
