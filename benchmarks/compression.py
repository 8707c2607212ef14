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
   to CP at the same per-layer ranks as the equal-budget models (other weights copied), then fine-tuned for
   the same number of epochs at each learning rate (own loop, same loss: MSE on normalised frames; best
   validation epoch; best rate on validation).
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
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wavesurrogate.data.campaign import run_campaign
from wavesurrogate.data.store import open_data
from wavesurrogate.data.windows import sample_seed
from wavesurrogate.errors import TrainingDiverged
from wavesurrogate.eval import memory as Mem
from wavesurrogate.eval import timing as T
from wavesurrogate.eval.bench import machine_info
from wavesurrogate.eval.evaluate import evaluate_model
from wavesurrogate.io import to_json
from wavesurrogate.nn import registry
from wavesurrogate.nn.layers.tensorized import TensorizedConvNd, from_dense
from wavesurrogate.nn.rollout import rollout
from wavesurrogate.runs import RunInfo, load_run
from wavesurrogate.tasks.forecast import ForecastWindows
from wavesurrogate.train.loop import config_from_dict, prepare_data, train

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
    """Per-layer factor budgets (``layer_params``): the largest with ≤ 1/10 of the dense parameters, and
    the largest with ≤ 1/30."""
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


def _epochs_done(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text(encoding="utf-8").splitlines()) if path.is_file() else 0


def train_run(cfg: Any) -> Path:
    """Train (or resume, or reuse) the run of ``cfg``; its directory."""
    run = Path(cfg.out)
    done = _epochs_done(run)
    if done >= cfg.epochs:
        return run
    if done > 0 and (run / "optimizer.pt").is_file():
        return train(cfg, resume=run)
    run.mkdir(parents=True, exist_ok=True)
    return train(cfg, overwrite=True)


def _metrics(run: Path) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def compress(dense: nn.Module, kwargs: dict[str, Any]) -> nn.Module:
    """cnn2d(**kwargs) (a CP conv spec) whose spatial convs are ``from_dense`` of ``dense``'s at each layer's
    rank (other weights copied)."""
    model = registry.build("cnn2d", kwargs)
    dense_sd = dense.state_dict()
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, TensorizedConvNd):
                src = dense.get_submodule(name)
                layer = from_dense(src, mod.rank, "cp", generator=torch.Generator().manual_seed(0))
                mod.load_state_dict(layer.state_dict())
        tensorized = {n for n, m in model.named_modules() if isinstance(m, TensorizedConvNd)}
        rest = {k: v for k, v in dense_sd.items() if not any(k.startswith(t + ".") for t in tensorized)}
        missing = model.load_state_dict(rest, strict=False)
        assert not missing.unexpected_keys, missing.unexpected_keys
    return model


def _batches(ds: Any, idx: torch.Tensor, batch: int):
    for s in range(0, len(idx), batch):
        xs, ys = zip(*(ds[int(i)] for i in idx[s:s + batch]), strict=True)
        yield torch.stack(xs), torch.stack(ys)


def _best_val(rows: list[dict[str, Any]]) -> float:
    """The lowest finite validation loss of a run's epochs (inf if none is finite)."""
    vals = [r["val_loss"] for r in rows if r.get("val_loss") is not None and math.isfinite(r["val_loss"])]
    return min(vals, default=math.inf)


def fine_tune(model: nn.Module, cfg: Any, out: Path, source: Path) -> list[dict[str, Any]] | None:
    """Fine-tune ``model`` (compressed from the dense run ``source``) with ``cfg``'s data, optimiser,
    schedule, batch and epochs; keeps the best validation epoch. None if no epoch had a finite loss.
    A finished fine-tune is reused only if it started from the same dense run and epochs."""
    weights = out / "weights.pt"
    log = out / "metrics.json"
    origin = {"source": str(Path(source).resolve()), "source_epochs": _epochs_done(Path(source)),
              "epochs": cfg.epochs}
    if weights.is_file() and log.is_file():
        saved = json.loads(log.read_text(encoding="utf-8"))
        if isinstance(saved, dict) and saved.get("origin") == origin:
            if saved["rows"] is None:
                return None
            model.load_state_dict(torch.load(weights, weights_only=True))
            return saved["rows"]
    data = prepare_data(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.schedule.min_lr)
    best, best_sd, rows = math.inf, None, []
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        gen = torch.Generator().manual_seed(sample_seed(0, epoch))
        perm = torch.randperm(len(data.train), generator=gen)
        losses = []
        for x, y in _batches(data.train, perm, cfg.batch_size):
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        sched.step()
        model.eval()
        with torch.no_grad():
            se = sum(float((model(x) - y).pow(2).sum()) for x, y in
                     _batches(data.val, torch.arange(len(data.val)), 64))
        val = se / (len(data.val) * data.val[0][1].numel())
        rows.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": val,
                     "seconds": time.perf_counter() - t0})
        if math.isfinite(val) and val < best:
            best, best_sd = val, {k: v.detach().clone() for k, v in model.state_dict().items()}
        if not math.isfinite(val):
            break
    out.mkdir(parents=True, exist_ok=True)
    if best_sd is None:
        torch.save({}, weights)
        log.write_text(json.dumps({"origin": origin, "rows": None}), encoding="utf-8")
        return None
    model.load_state_dict(best_sd)
    torch.save(best_sd, weights)
    log.write_text(json.dumps({"origin": origin, "rows": rows}), encoding="utf-8")
    return rows


def late_rollout(model: nn.Module, stats: dict[str, Any], data: Path) -> dict[str, float] | None:
    """Rollouts of 40 frames from the latest start leaving 40 frames (test cases), relative L2 pooled over
    the cases: at the 40th frame (``at_40``) and over all 40 frames together (``over_40``)."""
    with open_data(data) as f:
        test = np.flatnonzero((f.split == 1) & f.done)
        fields, velocity = f.load_all(test)
    n_in = int(stats["n_in"])
    start = fields.shape[1] - HORIZON - n_in
    if start < 0:
        return None
    norm = ForecastWindows(fields, velocity, n_in, 1, stats)
    fm, fs = float(stats["field_mean"]), float(stats["field_std"])
    pred = rollout(model, norm.fields[:, start:start + n_in], norm.velocity, HORIZON).double() * fs + fm
    true = torch.from_numpy(fields[:, start + n_in:].astype(np.float64))
    return {"start_frame": start + n_in,
            "at_40": float((pred[:, -1] - true[:, -1]).norm() / true[:, -1].norm()),
            "over_40": float((pred - true).norm() / true.norm())}


def measure(label: str, model: nn.Module, info: RunInfo, data: Path, train_s: float, epochs: int,
            repeats: int) -> dict[str, Any]:
    """Every measured number of one model."""
    with open_data(data) as f:
        ny, nx = f.ny, f.nx
    c = BASE["n_in"] + 1
    ev = evaluate_model(model, info, data)
    roll = ev["rollout"]["rel_l2"] if ev.get("rollout") else []
    lat1 = T.latency_ms(model, (1, c, ny, nx), repeats=repeats)
    lat32 = T.latency_ms(model, (32, c, ny, nx), repeats=max(3, repeats // 3))
    kwargs = info.model_kwargs
    late = late_rollout(model, info.stats, data)
    return {
        "label": label, "kwargs": kwargs, "params": Mem.count_trainable(model),
        "weight_bytes": Mem.weight_bytes(model),
        "peak_infer_bytes": Mem.inference_peak_bytes("cnn2d", kwargs, (1, c, ny, nx)),
        "peak_train_bytes": Mem.train_step_peak_bytes("cnn2d", kwargs, (info.config.batch_size, c, ny, nx),
                                                    (info.config.batch_size, BASE["n_out"], ny, nx)),
        "tensor_peak_infer_bytes": Mem.inference_tensor_peak_bytes("cnn2d", kwargs, (1, c, ny, nx)),
        "tensor_peak_train_bytes": Mem.train_step_tensor_peak_bytes(
            "cnn2d", kwargs, (info.config.batch_size, c, ny, nx),
            (info.config.batch_size, BASE["n_out"], ny, nx)),
        "test_rel_l2": ev["one_step"]["rel_l2_pooled"],
        "rollout40_rel_l2_from_start": roll[HORIZON - 1] if len(roll) >= HORIZON else None,
        "rollout40_late": late,
        "rollout40_rel_l2_late": None if late is None else late["over_40"],
        "ms_b1": lat1.per_sample_ms, "ms_per_sample_b32": lat32.per_sample_ms, "threads": lat1.threads,
        "train_s": train_s, "epochs": epochs,
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
    lr_search: dict[str, dict[str, float]] = {}
    diverged: dict[str, list[float]] = {}
    for label, kwargs in specs.items():
        tried = {}
        # separable r1 cannot reach 1/10 of the parameters: shown at the dense network's chosen rate only
        sep_lr = [load_run(runs["dense"], "best")[1].config.optim.lr] if "dense" in runs else lrs[:1]
        for lr in sep_lr if label.startswith("separable") else lrs:
            print(f"[compression] training {label} at lr {lr:g} ({count(kwargs):,} parameters)",
                  file=sys.stderr, flush=True)
            cfg = train_config(f"{label}_lr{lr:g}", kwargs, data, args, lr)
            try:
                run = train_run(cfg)
            except TrainingDiverged as exc:  # a too-large rate on the grid: recorded, not chosen
                print(f"[compression] {label} at lr {lr:g} diverged: {exc}", file=sys.stderr, flush=True)
                diverged.setdefault(label, []).append(lr)
                continue
            tried[run] = _best_val(_metrics(run))
        if not tried:
            raise SystemExit(f"compression: {label} diverged at every learning rate {lrs}")
        best = min(tried, key=tried.__getitem__)  # chosen on validation, never on test
        runs[label] = best
        lr_search[label] = {f"{load_run(r, 'best')[1].config.optim.lr:g}": v for r, v in tried.items()}
    for label, run in runs.items():
        model, info = load_run(run, "best")
        rows = _metrics(run)
        kind = "dense" if label == "dense" else "a priori" if label.startswith("cp_p") else \
            "a priori, uniform rank" if label.startswith("cp_r") else "a priori, separable"
        results[label] = {"kind": kind, "lr": info.config.optim.lr,
                          "val_loss_by_lr": lr_search[label], "diverged_lrs": diverged.get(label, []),
                          **measure(label, model, info, data, sum(r["seconds"] for r in rows), len(rows),
                                    args.repeats)}
    dense_model, dense_info = load_run(runs["dense"], "best")
    for p in budgets.values():
        label = f"post_cp_p{p}"
        kwargs = {**BASE, "conv": {"format": "cp", "layer_params": p}}
        tried_post: dict[float, tuple[float, nn.Module, Any, list]] = {}
        for lr in lrs:
            print(f"[compression] a posteriori {label} at lr {lr:g} (from_dense + fine-tune)",
                  file=sys.stderr, flush=True)
            model = compress(dense_model, kwargs)
            cfg = train_config(f"{label}_lr{lr:g}", kwargs, data, args, lr)
            rows = fine_tune(model, cfg, Path(cfg.out), source=runs["dense"])
            if rows is None:
                diverged.setdefault(label, []).append(lr)
                continue
            tried_post[lr] = (_best_val(rows), model, cfg, rows)
        if not tried_post:
            raise SystemExit(f"compression: {label} diverged at every learning rate {lrs}")
        lr = min(tried_post, key=lambda k: tried_post[k][0])
        _, model, cfg, rows = tried_post[lr]
        info = RunInfo(run_dir=Path(cfg.out), config=cfg, stats=dense_info.stats, model_name="cnn2d",
                       model_kwargs=cfg.model.kwargs, task="forecast", package_version="", which="best",
                       epoch=len(rows), best_epoch=int(np.argmin([x["val_loss"] for x in rows])) + 1)
        res = measure(label, model, info, data, sum(x["seconds"] for x in rows), len(rows), args.repeats)
        res["train_s"] += results["dense"]["train_s"]  # the dense training it started from counts
        results[label] = {"kind": "a posteriori", "lr": lr, "from": str(runs["dense"]),
                          "val_loss_by_lr": {f"{k:g}": v[0] for k, v in tried_post.items()},
                          "diverged_lrs": diverged.get(label, []), **res}
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
    text = to_json(out)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
