"""A priori against a posteriori compression of the forecast CNN (issue 3); prints JSON.

    .venv/bin/python -m benchmarks.compression [--data FILE] [--epochs 8] [--max-cases 120]
                                               [--lrs 3e-4,...,2e-2] [--out benchmarks/out/compression.json]
    .venv/bin/python -m benchmarks.compression --small          # minutes: the demo campaign, 3 epochs

What it does, in order:
1. Data: ``--data`` or the standard campaign configs/forecast64.yaml simulated into
   ``<workdir>/data/forecast64.h5`` (``--small``: configs/demo.yaml), skipped when the file is complete.
2. Models, all ``cnn2d`` (width 16, 2 levels, n_in 4, n_out 1), trained by ``train.loop.train`` with the
   same data, batch, epochs and optimiser (Adam, cosine decay to 1e-5): the dense reference; CP with the
   equal-budget rank rule (``layer_params``: every conv layer gets the largest rank whose factors fit the
   same number of weights) at the largest budget with ≤ 1/10 and ≤ 1/30 of the dense parameters; CP with
   one rank for all layers (largest ≤ 1/10, nearest 1/30); separable at rank 1 (its smallest: 6/9 of dense
   for 3 × 3 kernels, so it cannot reach 1/10; trained at the dense network's chosen rate only). Every other
   model is trained at every learning rate of ``--lrs`` and the one with the lowest validation loss is kept
   (test cases never choose); a rate that diverges is recorded.
3. A posteriori: the chosen dense network's spatial convolutions compressed by ``from_dense``
   to CP at the same per-layer ranks as the equal-budget models (other weights copied), written as a run
   directory, then fine-tuned from it by ``train(cfg, init_from=...)`` for the same number of epochs at each
   learning rate (same loop and loss; best validation epoch; best rate on validation).
4. Measures per model: trainable parameters, weight bytes, peak memory of inference (batch 1) and of a
   training step (the run's batch), both as process RSS growth and as live-tensor bytes; one-step test
   relative L2 (pooled over windows); rollout relative L2 at 40 frames from the first window
   (``evaluate_model``) and from the latest start that leaves 40 frames (after most of the source emission;
   error at the 40th frame and over the 40 frames together); inference ms at batch 1 and 32 (torch's
   default threads); ratios compressed / dense; the goals of issue 3 checked against those ratios.
   Training seconds are wall time on a possibly shared machine (runs may have been trained in parallel):
   compare them only between runs made under the same load.
Everything is resumable: finished runs are reused.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from torch import nn

from wavesurrogate.data.campaign import run_campaign
from wavesurrogate.data.store import open_data
from wavesurrogate.errors import TrainingDiverged
from wavesurrogate.eval import memory as Mem
from wavesurrogate.eval import timing as T
from wavesurrogate.eval.bench import machine_info
from wavesurrogate.eval.evaluate import evaluate_model
from wavesurrogate.io import to_json, write_json
from wavesurrogate.nn import registry
from wavesurrogate.nn.layers.tensorized import compress_model
from wavesurrogate.runs import WEIGHTS, RunInfo, load_run, read_metrics, save_header, save_weights
from wavesurrogate.train.loop import config_from_dict, train_or_reuse

ROOT = Path(__file__).resolve().parents[1]
BASE = {"n_in": 4, "n_out": 1, "width": 16, "depth": 2, "kernel_size": 3}
HORIZON = 40


def make_data(args: argparse.Namespace) -> Path:
    """The data file: ``--data``, or the standard (or small) campaign simulated once into the workdir."""
    if args.data is not None:
        return Path(args.data)
    name = "demo" if args.small else "forecast64"
    out = Path(args.workdir) / "data" / f"{name}.h5"
    if out.is_file():
        with open_data(out) as f:
            if bool(f.done.all()):
                return out
    out.parent.mkdir(parents=True, exist_ok=True)
    run_campaign(ROOT / "configs" / f"{name}.yaml", out, overwrite=out.exists(), progress=False)
    return out


def count(kwargs: dict[str, Any]) -> int:
    """Trainable parameters of cnn2d(**kwargs)."""
    return Mem.count_trainable(registry.build("cnn2d", kwargs))


def choose_ranks(dense_params: int) -> dict[str, int]:
    """Uniform CP ranks: the largest with ≤ 1/10 of the dense parameters, and the one nearest 1/30."""
    counts = {r: count({**BASE, "conv": {"format": "cp", "rank": r}}) for r in range(1, 65)}
    tenth = max(r for r, n in counts.items() if n <= dense_params / 10)
    thirtieth = min(counts, key=lambda r: abs(math.log(counts[r] / (dense_params / 30))))
    return {"1/10": tenth, "1/30": thirtieth}


def choose_budgets(dense_params: int) -> dict[str, int]:
    """Per-layer factor budgets (``layer_params``): the largest with ≤ 1/10 and with ≤ 1/30 of dense's."""
    out = {}
    for share, frac in (("1/10", 10), ("1/30", 30)):
        lo, hi = 10, 100_000  # count() grows with the budget: bisect the largest within the share
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if count({**BASE, "conv": {"format": "cp", "layer_params": mid}}) <= dense_params / frac:
                lo = mid
            else:
                hi = mid
        out[share] = lo
    return out


def train_config(label: str, kwargs: dict[str, Any], data: Path, args: argparse.Namespace,
                 lr: float = 1e-3) -> Any:
    """The shared training config of one model (only the model and the learning rate differ between runs)."""
    return config_from_dict({
        "name": label, "seed": 0, "out": str(Path(args.workdir) / "runs" / label),
        "data": {"path": str(data), "task": "forecast", "n_in": BASE["n_in"], "n_out": BASE["n_out"],
                 "window_stride": args.window_stride, "val_fraction": 0.1, "max_cases": args.max_cases},
        "model": {"name": "cnn2d", "kwargs": kwargs}, "optim": {"name": "adam", "lr": lr},
        "schedule": {"name": "cosine", "min_lr": 1e-5}, "epochs": args.epochs, "batch_size": args.batch,
        "progress": False,
    }).resolved()


def _best_val(run: Path) -> float:
    """The lowest finite validation loss of a run's epochs (inf if none is finite)."""
    vals = [r["val_loss"] for r in read_metrics(run) if r.get("val_loss") is not None]
    return min((v for v in vals if math.isfinite(v)), default=math.inf)


def search(label: str, kwargs: dict[str, Any], data: Path, args: argparse.Namespace, lrs: list[float],
           init_from: Path | None = None) -> tuple[Path, dict[str, float], list[float]]:
    """(run with the lowest validation loss, {lr: its loss}, diverged rates) of ``label`` over ``lrs``."""
    tried: dict[float, tuple[Path, float]] = {}
    diverged = []
    for lr in lrs:
        print(f"[compression] training {label} at lr {lr:g} ({count(kwargs):,} parameters"
              f"{', from ' + init_from.name if init_from else ''})", file=sys.stderr, flush=True)
        try:
            cfg = train_config(f"{label}_lr{lr:g}", kwargs, data, args, lr)
            run, _ = train_or_reuse(cfg, init_from=init_from)
        except TrainingDiverged as exc:  # a too-large rate on the grid: recorded, not chosen
            print(f"[compression] {label} at lr {lr:g} diverged: {exc}", file=sys.stderr, flush=True)
            diverged.append(lr)
            continue
        tried[lr] = (run, _best_val(run))
    if not tried:
        raise SystemExit(f"compression: {label} diverged at every learning rate {lrs}")
    best = min(tried, key=lambda lr: tried[lr][1])
    return tried[best][0], {f"{lr:g}": v for lr, (_, v) in tried.items()}, diverged


def compressed_run(dense_run: Path, kwargs: dict[str, Any], out: Path) -> Path:
    """Run directory ``out`` (no epoch) of the dense run's best network compressed to cnn2d(**kwargs)."""
    dense, info = load_run(dense_run, "best")
    model = compress_model(dense, registry.build("cnn2d", kwargs))
    cfg = info.config.model_copy(update={"out": str(out), "model": info.config.model.model_copy(
        update={"kwargs": kwargs})})
    out.mkdir(parents=True, exist_ok=True)
    save_header(out, cfg, "cnn2d", "forecast", model.init_kwargs, Mem.count_trainable(model), info.stats,
                registry.entry("cnn2d").version)
    sd = model.state_dict()
    save_weights(out / WEIGHTS, sd, sd, {"epoch": 0, "best_epoch": 0, "from_dense": str(dense_run)})
    return out


def late_rollout(model: nn.Module, info: RunInfo, data: Path, n_frames: int) -> dict[str, float] | None:
    """Rel. L2 (test cases pooled) of 40-frame rollouts from the latest start: at frame 40, over all 40."""
    start = n_frames - HORIZON - int(info.stats["n_in"])
    if start < 0:
        return None
    r = evaluate_model(model, info, data, rollout_start=start)["rollout"]
    return {"start_frame": start + int(info.stats["n_in"]), "at_40": r["rel_l2"][-1],
            "over_40": r["rel_l2_all_horizons"]}


def measure(label: str, run: Path, data: Path, repeats: int) -> dict[str, Any]:
    """Every measured number of one model (the best weights of run directory ``run``)."""
    model, info = load_run(run, "best")
    geo = info.stats["data"]
    ny, nx = geo["ny"], geo["nx"]
    c, b = BASE["n_in"] + 1, info.config.batch_size
    x1, xb, yb = (1, c, ny, nx), (b, c, ny, nx), (b, BASE["n_out"], ny, nx)
    ev = evaluate_model(model, info, data)
    roll = ev["rollout"]["rel_l2"] if ev.get("rollout") else []
    lat1 = T.latency_ms(model, x1, repeats=repeats)
    lat32 = T.latency_ms(model, (32, c, ny, nx), repeats=max(3, repeats // 3))
    kwargs = info.model_kwargs
    late = late_rollout(model, info, data, geo["n_frames"])
    rows = read_metrics(run)
    return {
        "label": label, "kwargs": kwargs, "params": Mem.count_trainable(model),
        "weight_bytes": Mem.weight_bytes(model),
        "peak_infer_bytes": Mem.inference_peak_bytes("cnn2d", kwargs, x1),
        "peak_train_bytes": Mem.train_step_peak_bytes("cnn2d", kwargs, xb, yb),
        "tensor_peak_infer_bytes": Mem.inference_tensor_peak_bytes("cnn2d", kwargs, x1),
        "tensor_peak_train_bytes": Mem.train_step_tensor_peak_bytes("cnn2d", kwargs, xb, yb),
        "test_rel_l2": ev["one_step"]["rel_l2_pooled"],
        "rollout40_rel_l2_from_start": roll[HORIZON - 1] if len(roll) >= HORIZON else None,
        "rollout40_late": late,
        "rollout40_rel_l2_late": None if late is None else late["over_40"],
        "ms_b1": lat1.per_sample_ms, "ms_per_sample_b32": lat32.per_sample_ms, "threads": lat1.threads,
        "train_s": sum(r["seconds"] for r in rows), "epochs": len(rows),
    }


RATIO_KEYS = ("params", "weight_bytes", "peak_infer_bytes", "peak_train_bytes", "tensor_peak_infer_bytes",
              "tensor_peak_train_bytes", "test_rel_l2", "rollout40_rel_l2_late", "ms_b1", "ms_per_sample_b32",
              "train_s")


def goals(results: dict[str, Any], budgets: dict[str, int], ranks: dict[str, int]) -> dict[str, Any]:
    """Issue 3's "done when" items, each with the measured ratio (compressed / dense) it rests on."""
    out: dict[str, Any] = {}
    for kind, label in [(f"a priori cp layer_params {p}", f"cp_p{p}") for p in budgets.values()] + \
            [(f"a posteriori cp layer_params {p}", f"post_cp_p{p}") for p in budgets.values()] + \
            [(f"a priori cp uniform rank {r}", f"cp_r{r}") for r in ranks.values()]:
        res = results.get(label)
        if res is not None:
            q = res["ratio_to_dense"]
            out[f"{kind} ({q['params']:.3f} of the parameters)"] = {
                "params_ratio": q["params"],
                "test_rel_l2_ratio": q["test_rel_l2"], "accuracy_met (<= 1.10)": _le(q["test_rel_l2"], 1.10),
                "rollout_ratio": q["rollout40_rel_l2_late"],
                "rollout_met (<= 1.2)": _le(q["rollout40_rel_l2_late"], 1.2),
                "memory_lower (weights, tensor peak train, tensor peak inference)": all(
                    _le(q[k], 1.0, strict=True) for k in
                    ("weight_bytes", "tensor_peak_train_bytes", "tensor_peak_infer_bytes")),
                "inference_not_slower (batch 1, batch 32)": [_le(q["ms_b1"], 1.0),
                                                             _le(q["ms_per_sample_b32"], 1.0)],
            }
    return out


def _le(x: float | None, bound: float, strict: bool = False) -> bool | None:
    """x <= bound (x < bound if strict); None when x was not measured."""
    if x is None:
        return None
    return x < bound if strict else x <= bound


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="forecast data file (default: the standard campaign)")
    ap.add_argument("--small", action="store_true", help="the demo campaign and 3 epochs, for trying")
    ap.add_argument("--workdir", default="runs/compression")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--max-cases", type=int, default=None, help="use the first N cases of the file")
    ap.add_argument("--window-stride", type=int, default=None)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--lrs", default="3e-4,1e-3,3e-3,5e-3,1e-2,2e-2",
                    help="learning rates tried for every model (comma-separated); best on validation kept")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    if args.small:
        args.epochs = args.epochs or 3
        args.window_stride = args.window_stride or 2
        args.workdir = args.workdir + "-small"
    args.epochs = args.epochs or 8
    args.window_stride = args.window_stride or 4
    if args.max_cases is None and not args.small:
        args.max_cases = 120
    lrs = [float(v) for v in args.lrs.split(",")]
    t_all = time.perf_counter()
    data = make_data(args)
    dense_params = count(BASE)
    ranks = choose_ranks(dense_params)
    budgets = choose_budgets(dense_params)
    specs = {"dense": BASE}
    specs.update({f"cp_p{p}": {**BASE, "conv": {"format": "cp", "layer_params": p}}
                  for p in budgets.values()})
    specs.update({f"cp_r{r}": {**BASE, "conv": {"format": "cp", "rank": r}} for r in ranks.values()})
    specs["separable_r1"] = {**BASE, "conv": {"format": "separable", "rank": 1}}
    results: dict[str, Any] = {}
    runs: dict[str, Path] = {}
    for label, kwargs in specs.items():
        # separable r1 cannot reach 1/10 of the parameters: shown at the dense network's chosen rate only
        grid = [load_run(runs["dense"], "best")[1].config.optim.lr] if label.startswith("separable") else lrs
        runs[label], by_lr, diverged = search(label, kwargs, data, args, grid)
        kind = "dense" if label == "dense" else "a priori" if label.startswith("cp_p") else \
            "a priori, uniform rank" if label.startswith("cp_r") else "a priori, separable"
        results[label] = {"kind": kind, "lr": load_run(runs[label], "best")[1].config.optim.lr,
                          "val_loss_by_lr": by_lr, "diverged_lrs": diverged,
                          **measure(label, runs[label], data, args.repeats)}
    for p in budgets.values():  # a posteriori: from_dense of the chosen dense network, then fine-tuned
        label = f"post_cp_p{p}"
        kwargs = {**BASE, "conv": {"format": "cp", "layer_params": p}}
        start = compressed_run(runs["dense"], kwargs, Path(args.workdir) / "runs" / f"{label}_from_dense")
        run, by_lr, diverged = search(label, kwargs, data, args, lrs, init_from=start)
        res = measure(label, run, data, args.repeats)
        res["train_s"] += results["dense"]["train_s"]  # the dense training it started from counts
        results[label] = {"kind": "a posteriori", "lr": load_run(run, "best")[1].config.optim.lr,
                          "from": str(runs["dense"]), "val_loss_by_lr": by_lr, "diverged_lrs": diverged,
                          **res}
    dense = results["dense"]
    for res in results.values():
        res["ratio_to_dense"] = {k: (res[k] / dense[k] if res.get(k) and dense.get(k) else None)
                                 for k in RATIO_KEYS}
    out = {
        "benchmark": "compression", "data": str(Path(data).resolve()), "machine": machine_info(),
        "settings": {"epochs": args.epochs, "batch": args.batch, "window_stride": args.window_stride,
                     "max_cases": args.max_cases, "learning_rates": lrs,
                     "optimiser": "adam, cosine to 1e-5; per model the learning rate with the lowest "
                                  "validation loss (test cases never used to choose)",
                     "architecture": BASE},
        "layer_params": budgets, "uniform_ranks": ranks, "dense_target_test_rel_l2": 0.05,
        "dense_meets_target": dense["test_rel_l2"] is not None and dense["test_rel_l2"] <= 0.05,
        "separable_note": "separable rank 1 keeps 6/9 of a dense 3x3 conv's weights: it cannot reach 1/10",
        "goals": goals(results, budgets, ranks),
        "results": list(results.values()), "seconds": time.perf_counter() - t_all,
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, out)
    print(to_json(out))


if __name__ == "__main__":
    main()
