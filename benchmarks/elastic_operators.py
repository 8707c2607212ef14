"""Issue 18 item 4: an elastic operator (TFNO, CP spectral weights) sliced in (Fourier modes, CP rank).

    .venv/bin/python -m benchmarks.elastic_operators [--data runs/rollouts/forecast64.h5] [--epochs 4]
    .venv/bin/python -m benchmarks.elastic_operators --smoke   # a minute: 16² campaign, 1 epoch

A small forecast setting that runs in about ten minutes on one core (reusing ``benchmarks.elastic``'s run
config, evaluation, latency/memory and goal helpers):

1. Data: forecast64 (64² nodes), its first ``MAX_CASES`` cases for training and validation (windows every
   ``STRIDE`` frames), its first ``EVAL_CASES`` test cases for the errors.
2. ``tfno`` with ``factorization: cp`` and an integer rank (nested: ``nn.models.fno``): n_modes 16 × 16,
   hidden 16, 4 Fourier layers, CP rank 16 per spectral weight; the pairs (modes, rank) ``PAIRS``. ``fixed``
   (the loss summed over every pair each step + 0.3 × distillation toward the full model's detached output,
   the same ``tasks._elastic`` loss as the CNNs) and one network per pair trained alone (``alone_m_r``),
   same recipe, seed and epochs (equal steps).
3. ``wavesurrogate slice --modes m --rank r`` (``runs.slice.slice_run``) writes each pair as a standalone run;
   errors by the forecast task (one-step pooled relative L2, rollout from frame 0 at h = 40).
4. Per slice: weight bytes, inference memory of one batch-32 forward (tensor-level peak), batch-1 latency
   (paired round robin, median). Training cost: process CPU seconds of ``fixed`` against the largest network
   trained alone (both trained fresh here, one thread).
5. ``goals``: per pair one-step and 40-frame error ≤ 1.2× alone; each smaller slice below the full network in
   weight bytes and latency; elastic training ≤ 2.5× the largest alone (CPU seconds); a pair outside the list
   refused with exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.elastic import RECIPE, costs, evaluate, goal, run_config
from benchmarks.rollouts import campaigns
from wavesurrogate import tasks
from wavesurrogate.eval.bench import machine_info
from wavesurrogate.io import write_json
from wavesurrogate.runs import load_run, read_metrics
from wavesurrogate.runs.slice import slice_run
from wavesurrogate.train.loop import train_or_reuse

ROOT = Path(__file__).resolve().parents[1]
MODEL = "tfno"
ARCH = {"n_modes": [16, 16], "hidden_channels": 16, "n_layers": 4, "factorization": "cp", "rank": 16}
PAIRS = [(4, 4), (8, 8), (16, 16)]
MAX_CASES, STRIDE, EVAL_CASES = 32, 4, 8


def train_timed(cfg: Any) -> tuple[Path, dict[str, Any]]:
    """Train ``cfg`` (or reuse its finished run): the run and its cost (process CPU seconds when trained
    here, None when reused; the run's own wall seconds from metrics.jsonl)."""
    c0 = time.process_time()
    run, trained = train_or_reuse(cfg)
    cpu = time.process_time() - c0 if trained else None
    return run, {"run": str(run), "cpu_s": cpu, "train_s": sum(m["seconds"] for m in read_metrics(run))}


def refusal(run: Path, work: Path, pairs: list[tuple[int, int]]) -> dict[str, Any]:
    """``slice --modes`` on a pair outside the trained list: exit code, its one line, nothing written."""
    from wavesurrogate.cli import main

    m, r = next((m, r) for m, _ in pairs for _, r in pairs if (m, r) not in pairs)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["slice", str(run), "--modes", str(m), "--rank", str(r), "--out", str(work / "refused")])
    return {"pair": [m, r], "exit_code": code, "message": err.getvalue().strip(),
            "written": (work / "refused").exists()}


def goals(res: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    full = "x".join(str(v) for v in res["pairs"][-1])
    for key, s in res["slices"].items():
        a = res["alone"][key]
        for m in ("one_step", "rollout"):
            r = s[m] / a[m] if a[m] else None
            out[f"{key}_{m}_over_alone"] = goal(r, 1.2, "<=", f"ratio of {m} rel L2 (slice / trained alone)")
        if key != full:
            c, f = res["costs"][key], res["costs"][full]
            out[f"{key}_weight_bytes_below_full"] = goal(c["weight_bytes"] / f["weight_bytes"], 0.99, "<=",
                                                         "ratio to the full network")
            out[f"{key}_latency_below_full"] = goal(c["latency_ms"] / f["latency_ms"], 0.99, "<=",
                                                    "ratio to the full network, batch 1, median of paired "
                                                    "rounds")
    tc = res["train_cost"]
    ratio = tc["fixed"]["cpu_s"] / tc["alone"]["cpu_s"] if tc["fixed"]["cpu_s"] and tc["alone"]["cpu_s"] \
        else None
    out["elastic_train_cpu_over_largest_alone"] = goal(ratio, 2.5, "<=", "ratio of process CPU seconds "
                                                       "(whole training, one thread)")
    ref = res["refusal"]
    out["untrained_pair_refused"] = goal(int(ref["exit_code"] == 2 and not ref["written"]), 1, ">=",
                                         "exit code 2, nothing written")
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=None, help="forecast64 data file (default: made once into "
                   "runs/rollouts/, as benchmarks.rollouts does)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-cases", type=int, default=MAX_CASES)
    p.add_argument("--eval-cases", type=int, default=EVAL_CASES)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--goals-only", action="store_true", help="recompute the goals of the --out JSON")
    p.add_argument("--work", default=None)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    name = "elastic_operators" + ("_smoke" if a.smoke else "")
    work = Path(a.work or ROOT / "runs" / name)
    out = Path(a.out or ROOT / "benchmarks" / "out" / f"{name}.json")
    if a.goals_only:
        res = json.loads(out.read_text(encoding="utf-8"))
        res["goals"] = goals(res)
        write_json(out, res)
        print(json.dumps(res["goals"], indent=1))
        return
    t0 = time.perf_counter()
    data = a.data or campaigns(work if a.smoke else ROOT / "runs" / "rollouts", a.smoke)[0]
    epochs = 1 if a.smoke else a.epochs
    arch = {**ARCH, "hidden_channels": 4, "n_modes": [8, 8], "rank": 8} if a.smoke else ARCH
    pairs = [(min(m, arch["n_modes"][0]), min(r, arch["rank"])) for m, r in PAIRS]
    pairs = list(dict.fromkeys(pairs))
    res: dict[str, Any] = {"data": str(data), "model": MODEL, "arch": arch, "pairs": [list(q) for q in pairs],
                           "epochs": epochs, "recipe": RECIPE, "smoke": a.smoke, "machine": machine_info(),
                           "max_cases": None if a.smoke else a.max_cases, "window_stride": STRIDE,
                           "eval_cases": a.eval_cases}

    def cfg(run_name: str, kw: dict[str, Any], el: dict[str, Any] | None) -> Any:
        return run_config(run_name, data, work, epochs, a.smoke, kw, el, a.max_cases, model=MODEL)

    res["alone"], res["slices"], sliced = {}, {}, {}
    largest: dict[str, Any] = {}
    for m, r in pairs:  # small to large, then fixed: the largest alone and fixed both train warm (imports)
        alone, largest = train_timed(cfg(f"alone_{m}x{r}", {**arch, "n_modes": [m, m], "rank": r}, None))
        res["alone"][f"{m}x{r}"] = {**evaluate(alone, data, a.eval_cases), **largest}
    el = {"pairs": res["pairs"], "sampling": "all", "distill": RECIPE["distill"]}
    fixed, res["fixed"] = train_timed(cfg("fixed", arch, el))
    for m, r in pairs:
        key = f"{m}x{r}"
        sliced[key] = slice_run(fixed, m, r, work / "slices" / f"fixed_{key}", overwrite=True, axis="modes")
        res["slices"][key] = evaluate(sliced[key], data, a.eval_cases)
    res["train_cost"] = {"fixed": res["fixed"], "alone": largest}
    info = load_run(fixed)[1]
    g = info.stats["data"]
    res["costs"] = costs(sliced, (g["ny"], g["nx"]), tasks.get("forecast").in_channels(info.stats),
                         10 if a.smoke else 40, model=MODEL)
    res["refusal"] = refusal(fixed, work, pairs)
    res["goals"] = goals(res)
    res["wall_s"] = time.perf_counter() - t0
    write_json(out, res)
    print(out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
