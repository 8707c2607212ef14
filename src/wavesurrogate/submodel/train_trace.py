"""Training of boundary-trace networks (task ``boundary_trace``) on a ``wavesurrogate-traces/1`` file.

The run directory has the project's layout (train/checkpoint.py): config.yaml (a TrainConfig whose
``data.task`` is ``boundary_trace``), model.json, stats.json, weights.safetensors (best and last),
optimizer.pt (resume state, weights-only) and metrics.jsonl. The model takes parameters in SI units and
returns traces in field units (its normalisation constants are constructor arguments), so
``load_trace_run`` rebuilds it from the files alone.

Loss: the mean over the batch of the squared relative L2 error of each case's trace, ‖p − y‖²/‖y‖², which
is the quantity the submodel error follows. Validation: the mean relative L2 error on held-back training
cases; the best epoch by that number is kept as "best".

    python -m wavesurrogate.submodel.train_trace configs/submodel.yaml --data data/traces256.h5
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from wavesurrogate.config.base import read_yaml, validate
from wavesurrogate.config.train import DataConfig, TrainConfig
from wavesurrogate.errors import CheckpointError, ConfigError, TrainingDiverged, UserError
from wavesurrogate.submodel.traces import TraceFile
from wavesurrogate.train import checkpoint as ck

WARP_PARAMS = {"source_x": "source_x_m", "source_y": "source_y_m", "freq": "freq_hz", "velocity": "c0_mps"}


class TraceDataConfig(DataConfig):
    """DataConfig of the boundary_trace task (path, val_fraction, params, max_cases are used)."""

    task: Literal["boundary_trace"] = "boundary_trace"  # type: ignore[assignment]


class TraceTrainConfig(TrainConfig):
    """TrainConfig whose data section is a boundary-trace file."""

    data: TraceDataConfig


def load_trace_train_config(path: str | Path) -> TraceTrainConfig:
    """The ``train`` section of a YAML file (or the whole file if it has none); ConfigError if invalid."""
    data = read_yaml(path)
    section = data["train"] if isinstance(data.get("train"), dict) else data
    return validate(TraceTrainConfig, section, source=f"{path}: train")


# ------------------------------------------------------------------------------------------------- data
def split_cases(f: TraceFile, cfg: TraceTrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) case indices: the file's training cases, shuffled by seed, val_fraction held back."""
    cases = f.cases("train")
    if cfg.data.max_cases is not None:
        cases = cases[: cfg.data.max_cases]
    cases = cases[np.random.default_rng(cfg.seed).permutation(cases.size)]
    n_val = int(round(cfg.data.val_fraction * cases.size))
    if cases.size - n_val < 1:
        raise ConfigError(f"data: {cases.size} training cases leave none to fit after validation")
    return np.sort(cases[n_val:]), np.sort(cases[:n_val])


def param_names(f: TraceFile, cfg: TraceTrainConfig) -> list[str]:
    """The parameters fed to the model (data.params, default all of the file's)."""
    known = list(f.params())
    names = list(cfg.data.params) if cfg.data.params is not None else known
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(f"data.params: unknown {unknown or names}; the file has {known}")
    return names


def param_matrix(f: TraceFile, names: list[str], cases: np.ndarray) -> np.ndarray:
    """Parameters [n_cases, n_params] in SI units (float64)."""
    p = f.params()
    return np.stack([np.asarray(p[n], np.float64)[cases] for n in names], axis=1)


def make_stats(f: TraceFile, names: list[str], fit: np.ndarray, val: np.ndarray) -> dict[str, Any]:
    """stats.json: parameter normalisation and trace scale of the fit cases, and the data geometry."""
    p = param_matrix(f, names, fit)
    std = p.std(axis=0)
    traces = f.traces(fit)
    zoi, c = f.zoi, f.config
    return {
        "task": "boundary_trace", "param_names": names, "param_mean": p.mean(axis=0).tolist(),
        "param_std": np.where(std > 0, std, 1.0).tolist(),
        "trace_scale": float(np.sqrt(np.mean(traces.astype(np.float64) ** 2))) or 1.0,
        "fit_cases": fit.tolist(), "val_cases": val.tolist(),
        "data": {"path": str(f.path), "nx": c.grid.nx, "ny": c.grid.ny, "dx_m": c.grid.dx_m,
                 "zoi": [zoi.i0, zoi.j0, zoi.nx, zoi.ny], "n_boundary": zoi.n_boundary,
                 "n_times": int(f.trace_t.size), "trace_dt_s": float(f.trace_t[1] - f.trace_t[0]),
                 "frame_dt": float(f.frame_t[1] - f.frame_t[0])},
    }


def model_kwargs(cfg: TraceTrainConfig, stats: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments: the config's kwargs plus the data's sizes, normalisation and geometry.

    ``warp`` in the config is a bool (default true): true fills in the parameter indices the arrival-time
    warp needs (ConfigError if a parameter is missing), false trains the plain decoder.
    """
    kw = dict(cfg.model.kwargs)
    warp = kw.pop("warp", True)
    if not isinstance(warp, bool):
        raise ConfigError("model.kwargs.warp: expected true or false")
    d, names = stats["data"], stats["param_names"]
    i0, j0, _, _ = d["zoi"]
    kw.update(n_params=len(names), n_boundary=d["n_boundary"], n_times=d["n_times"],
              trace_dt_s=d["trace_dt_s"], param_mean=stats["param_mean"], param_std=stats["param_std"],
              trace_scale=stats["trace_scale"])
    if warp:
        missing = [v for v in WARP_PARAMS.values() if v not in names]
        if missing:
            raise ConfigError(f"model.kwargs.warp: needs parameters {missing} (data.params)")
        kw["warp"] = {k: names.index(v) for k, v in WARP_PARAMS.items()}
        zx, zy = d["zoi"][2], d["zoi"][3]
        kw["zoi_m"] = [i0 * d["dx_m"], j0 * d["dx_m"], d["dx_m"], d["dx_m"], zx, zy]
    return kw


def relative_errors(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Relative L2 error per case [B] of traces [B, n_b, n_t]."""
    num = ((pred - target) ** 2).flatten(1).sum(1)
    den = (target**2).flatten(1).sum(1).clamp_min(1e-30)
    return torch.sqrt(num / den)


# --------------------------------------------------------------------------------------------- training
def _build(cfg: TraceTrainConfig, kwargs: dict[str, Any]) -> nn.Module:
    from wavesurrogate.nn import registry

    task = ck.TASK_OF_INTERFACE[registry.entry(cfg.model.name).interface]
    if task != "boundary_trace":
        raise ConfigError(f"model: {cfg.model.name!r} solves {task!r}, not 'boundary_trace'")
    return registry.build(cfg.model.name, kwargs)


def _optimizer(cfg: TraceTrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)


def _schedule_lr(cfg: TraceTrainConfig, epoch: int) -> float:
    """Learning rate of epoch (0-based), a closed form so that resuming needs no scheduler state."""
    s, lr = cfg.schedule, cfg.optim.lr
    if s.name == "cosine":
        return s.min_lr + 0.5 * (lr - s.min_lr) * (1.0 + math.cos(math.pi * epoch / cfg.epochs))
    if s.name == "step":
        return lr * s.gamma ** (epoch // s.step_size)
    if s.name == "exponential":
        return lr * s.gamma**epoch
    return lr


def _evaluate(model: nn.Module, p: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    if p.shape[0] == 0:
        return float("nan")
    model.eval()
    with torch.no_grad():
        errs = torch.cat([relative_errors(model(p[i: i + batch]), y[i: i + batch])
                          for i in range(0, p.shape[0], batch)])
    return float(errs.mean())


def train_trace(cfg: TraceTrainConfig, *, resume: bool = False, verbose: bool = False) -> Path:
    """Train (or resume) a boundary-trace run; returns the run directory."""
    cfg = cfg.resolved()
    run_dir = Path(str(cfg.out))
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    if cfg.device not in ("cpu", "auto"):
        raise ConfigError("device: the trace trainer runs on the CPU")
    with TraceFile(cfg.data.path) as f:
        names = param_names(f, cfg)
        fit, val = split_cases(f, cfg)
        stats = make_stats(f, names, fit, val)
        p_fit, p_val = (torch.tensor(param_matrix(f, names, c)) for c in (fit, val))
        y_fit, y_val = (torch.from_numpy(f.traces(c).transpose(0, 2, 1).copy()) if c.size
                        else torch.zeros(0) for c in (fit, val))
    kwargs = model_kwargs(cfg, stats)
    torch.manual_seed(cfg.seed)
    model = _build(cfg, kwargs)
    opt = _optimizer(cfg, model)
    n_params = sum(p.numel() for p in model.parameters())
    start, history, best_val, best_epoch = 0, [], math.inf, -1
    best_sd = {k: v.clone() for k, v in model.state_dict().items()}
    if (run_dir / ck.OPTIM).is_file() and resume:
        start, history, best_val, best_epoch, best_sd = _resume(run_dir, cfg, model, opt)
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise CheckpointError(f"run directory {run_dir} exists and is not empty (resume, or choose another "
                              "out)")
    run_dir.mkdir(parents=True, exist_ok=True)
    ck.save_header(run_dir, cfg, cfg.model.name, "boundary_trace", kwargs, n_params, stats)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    for _ in range(start):  # the same shuffles as an uninterrupted run
        torch.randperm(p_fit.shape[0], generator=gen)
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        lr = _schedule_lr(cfg, epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        order, losses = torch.randperm(p_fit.shape[0], generator=gen), []
        for i in range(0, order.numel(), cfg.batch_size):
            idx = order[i: i + cfg.batch_size]
            loss = (relative_errors(model(p_fit[idx]), y_fit[idx]) ** 2).mean()
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"epoch {epoch + 1}: the loss became {float(loss)}; last good "
                                       f"checkpoint kept in {run_dir}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            losses.append(float(loss.detach()))
        last = epoch + 1 == cfg.epochs
        if (epoch + 1) % cfg.eval_every and not last:
            continue
        val_err = _evaluate(model, p_val, y_val, 64)
        score = val_err if math.isfinite(val_err) else math.sqrt(float(np.mean(losses)))
        if score < best_val:
            best_val, best_epoch = score, epoch + 1
            best_sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
        line = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_rel_l2": val_err, "lr": lr,
                "epoch_s": time.perf_counter() - t0}
        history.append(line)
        _checkpoint(run_dir, model, opt, best_sd, epoch + 1, best_epoch, best_val, history)
        if verbose:
            print(f"trace: epoch {epoch + 1}/{cfg.epochs} loss {line['train_loss']:.4g} val rel L2 "
                  f"{val_err:.4g} ({line['epoch_s']:.1f} s)", file=sys.stderr, flush=True)
    return run_dir


def _checkpoint(run_dir: Path, model: nn.Module, opt: torch.optim.Optimizer, best_sd: dict[str, torch.Tensor],
                epoch: int, best_epoch: int, best_val: float, history: list[dict[str, Any]]) -> None:
    meta = {"epoch": epoch, "best_epoch": best_epoch, "best_val_loss": best_val}
    ck.save_weights(run_dir / ck.WEIGHTS, model.state_dict(), best_sd, meta)
    ck.save_state(run_dir / ck.OPTIM, {"epoch": epoch, "model": model.state_dict(), "best_model": best_sd,
                                       "optimizer": opt.state_dict(), "best_val_loss": best_val,
                                       "best_epoch": best_epoch, "history": json.dumps(history)})
    ck.write_metrics(run_dir / ck.METRICS, history)


def _resume(run_dir: Path, cfg: TraceTrainConfig, model: nn.Module, opt: torch.optim.Optimizer
            ) -> tuple[int, list[dict[str, Any]], float, int, dict[str, torch.Tensor]]:
    old = load_trace_train_config(run_dir / ck.CONFIG)
    keep = {"epochs", "num_threads", "progress", "out"}
    if {k: v for k, v in old.model_dump().items() if k not in keep} != \
            {k: v for k, v in cfg.model_dump().items() if k not in keep}:
        raise CheckpointError(f"{run_dir}: its config.yaml differs from this config beyond {sorted(keep)}")
    state = ck.load_state(run_dir / ck.OPTIM)
    ck.load_into(model, state["model"], cfg.model.name, str(run_dir / ck.OPTIM))
    opt.load_state_dict(state["optimizer"])
    return (int(state["epoch"]), json.loads(state["history"]), float(state["best_val_loss"]),
            int(state["best_epoch"]), state["best_model"])


# ---------------------------------------------------------------------------------------------- loading
def load_trace_run(run_dir: str | Path, which: str = "best"
                   ) -> tuple[nn.Module, dict[str, Any], TraceTrainConfig]:
    """(model in eval mode, stats.json, config) of a boundary-trace run; CheckpointError (one line) if bad."""
    from wavesurrogate.nn import registry

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory not found: {run_dir}")
    if not (run_dir / ck.CONFIG).is_file():
        raise CheckpointError(f"{run_dir}: no {ck.CONFIG} (not a run directory?)")
    try:
        cfg = load_trace_train_config(run_dir / ck.CONFIG)
    except UserError as exc:
        raise CheckpointError(f"{run_dir}: not a boundary-trace run ({exc})") from None
    meta, stats = ck.read_json(run_dir / ck.MODEL_JSON), ck.read_json(run_dir / ck.STATS)
    if not isinstance(meta, dict) or not isinstance(stats, dict) or not isinstance(meta.get("kwargs"), dict):
        raise CheckpointError(f"{run_dir}: model.json or stats.json is not a wavesurrogate description")
    for k in ("param_names", "data"):
        if k not in stats:
            raise CheckpointError(f"{run_dir / ck.STATS}: missing {k!r}")
    name = meta.get("name")
    try:
        if ck.TASK_OF_INTERFACE[registry.entry(str(name)).interface] != "boundary_trace":
            raise CheckpointError(f"{run_dir}: model {name!r} is not a boundary-trace model")
        model = registry.build(str(name), meta["kwargs"])
    except CheckpointError:
        raise
    except UserError as exc:
        raise CheckpointError(f"{run_dir / ck.MODEL_JSON}: {exc}") from None
    sd, _ = ck.load_weights(run_dir / ck.WEIGHTS, which)
    ck.load_into(model, sd, str(name), str(run_dir / ck.WEIGHTS))
    return model.eval(), stats, cfg


def main(argv: list[str] | None = None) -> int:
    """``python -m wavesurrogate.submodel.train_trace CONFIG [--data F] [--out D] [--name N] ...``."""
    ap = argparse.ArgumentParser(description="train a boundary-trace network")
    ap.add_argument("config", type=Path)
    ap.add_argument("--data", default=None, help="trace file (default: the config's data.path)")
    ap.add_argument("--out", default=None, help="run directory (default runs/<name>)")
    ap.add_argument("--name", default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--kwargs", default=None, help="JSON merged into model.kwargs, e.g. '{\"warp\": false}'")
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args(argv)
    try:
        cfg = load_trace_train_config(a.config)
        upd: dict[str, Any] = {}
        if a.data:
            upd["data"] = cfg.data.model_copy(update={"path": a.data})
        if a.name:
            upd["name"] = a.name
        if a.out:
            upd["out"] = a.out
        if a.epochs:
            upd["epochs"] = a.epochs
        if a.kwargs:
            try:
                extra = json.loads(a.kwargs)
            except json.JSONDecodeError:
                raise ConfigError("--kwargs: not valid JSON") from None
            upd["model"] = cfg.model.model_copy(update={"kwargs": {**cfg.model.kwargs, **extra}})
        cfg = validate(TraceTrainConfig, {**cfg.model_dump(), **{k: v.model_dump() if hasattr(v, "model_dump")
                                                                 else v for k, v in upd.items()}})
        t0 = time.perf_counter()
        run = train_trace(cfg, resume=a.resume, verbose=True)
        print(f"{run} ({time.perf_counter() - t0:.0f} s)")
    except UserError as exc:
        print(f"train_trace: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
