"""One training loop for every registered model: deterministic, resumable, DDP-ready, crash-safe.

- Determinism: the model is initialised after ``torch.manual_seed(seed)``; epoch ``e`` shuffles with a
  generator seeded by (seed, e) and reseeds torch's global RNG (dropout) from (seed, e, rank), all inside
  ``torch.random.fork_rng`` so the caller's RNG is untouched. Same seed → same weights (same machine,
  same thread count).
- Checkpoints at every epoch end (rank 0): weights.safetensors, metrics.jsonl, then optimizer.pt (the
  commit point, carrying everything a resume needs), each written atomically. A resume restarts from the
  last committed epoch, so a run killed at any moment and resumed ends with the weights of an
  uninterrupted run.
- DDP: launched by torchrun (env ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``), gloo on CPU, nccl on GPU.
  Every rank draws the same global batch and takes a contiguous slice of it; the local loss is
  ``sum of squared errors × world / global element count``, so DDP's gradient average is exactly the
  gradient of the global-batch mean: losses match one process with the same global batch.
- Guard: a non-finite training or validation loss raises ``TrainingDiverged``; the last checkpoint stays.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Dataset

from wavesurrogate.config.base import dump_yaml, validate
from wavesurrogate.config.train import RESUMABLE_CHANGES, TrainConfig, load_train_config
from wavesurrogate.data.windows import (
    ForecastWindows,
    SourceToFieldPoints,
    compute_stats,
    param_matrix,
    sample_seed,
    split_cases,
)
from wavesurrogate.errors import CheckpointError, ConfigError, DataFileError, TrainingDiverged, UserError
from wavesurrogate.io import atomic_write_text
from wavesurrogate.nn.registry import count_trainable
from wavesurrogate.train import checkpoint as ck

__all__ = ["train", "train_from_config", "config_from_dict", "build_model", "prepare_data", "TrainData",
           "DistEnv", "dist_env"]


# ------------------------------------------------------------------------------------------------ data


@dataclass
class TrainData:
    """Training and validation datasets and the statistics (incl. splits and geometry) of the run."""

    train: Dataset
    val: Dataset | None
    stats: dict[str, Any]


def prepare_data(cfg: TrainConfig, stats: dict[str, Any] | None = None) -> TrainData:
    """Split the data file by case and build the datasets; ``stats`` (from a run being resumed) are reused."""
    from wavesurrogate.data.store import open_data

    d = cfg.data
    with open_data(d.path) as f:
        n = f.n_cases if d.max_cases is None else min(d.max_cases, f.n_cases)
        splits = split_cases(n, f.split[:n], d.val_fraction, cfg.seed, f.done[:n])
        if len(splits.train) == 0:
            raise DataFileError(f"{d.path}: no finished training cases (split == 0) to train on")
        geometry = {"ny": f.ny, "nx": f.nx, "n_frames": f.n_frames, "dt": f.dt,
                    "frame_stride": f.frame_stride, "frame_dt": f.frame_dt, "dx": f.dx, "dy": f.dy}
        split_lists = {k: [int(i) for i in v] for k, v in splits._asdict().items()}
        if stats is not None and stats.get("splits") != split_lists:
            raise CheckpointError(f"{d.path}: case splits differ from the run's stats.json (data changed?)")
        tr_f, tr_v = f.load_all(splits.train)
        va_f, va_v = f.load_all(splits.val) if len(splits.val) else (None, None)
        fparams, x, y, t = f.params, f.x, f.y, f.t
    if d.task == "forecast":
        if stats is None:
            stats = compute_stats(tr_f, tr_v)
        train = ForecastWindows(tr_f, tr_v, d.n_in, d.n_out, stats, d.window_stride)
        val = None if va_f is None else ForecastWindows(va_f, va_v, d.n_in, d.n_out, stats, d.window_stride)
    else:
        names = list(d.params) if d.params is not None else sorted(fparams)
        if stats is None:
            sub = {k: np.asarray(fparams[k])[splits.train] for k in names if k in fparams}
            stats = compute_stats(tr_f, params=sub, param_names=names, coords={"x": x, "y": y, "t": t})
        train = SourceToFieldPoints(tr_f, param_matrix(fparams, names, splits.train), x, y, t,
                                    d.points_per_case, stats, cfg.seed)
        val = None
        if va_f is not None:
            val = SourceToFieldPoints(va_f, param_matrix(fparams, names, splits.val), x, y, t,
                                      d.points_per_case, stats, sample_seed(cfg.seed, 0xFA1))
    stats = {**stats, "task": d.task, "n_in": d.n_in, "n_out": d.n_out, "data": geometry,
             "splits": split_lists}
    return TrainData(train, val, stats)


# ----------------------------------------------------------------------------------------------- model


def build_model(cfg: TrainConfig) -> nn.Module:
    """The configured model, weights initialised from ``cfg.seed`` (the caller's RNG is untouched)."""
    from wavesurrogate.nn import registry

    task = ck.TASK_OF_INTERFACE[registry.entry(cfg.model.name).interface]
    if task != cfg.data.task:
        raise ConfigError(f"model: {cfg.model.name!r} solves {task!r}, but data.task is {cfg.data.task!r}")
    if cfg.data.task == "forecast":
        for k in ("n_in", "n_out"):
            if k in cfg.model.kwargs and cfg.model.kwargs[k] != getattr(cfg.data, k):
                want = getattr(cfg.data, k)
                raise ConfigError(f"model.kwargs.{k} = {cfg.model.kwargs[k]} but data.{k} = {want}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        try:
            return registry.build(cfg.model.name, dict(cfg.model.kwargs))
        except CheckpointError as exc:  # bad kwargs are a config problem at training time
            raise ConfigError(f"model.kwargs: {exc}") from None


def _optimizer(cfg: TrainConfig, params: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, weight_decay=o.weight_decay, momentum=o.momentum)


def _scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
    s = cfg.schedule
    if s.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=s.min_lr)
    if s.name == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=s.step_size, gamma=s.gamma)
    if s.name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=s.gamma)
    return None


# ------------------------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class DistEnv:
    """Rank, world size and device of this process; ``owns_group`` if we initialised the process group."""

    rank: int
    world: int
    device: torch.device
    owns_group: bool

    @property
    def main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0


def dist_env(device: str) -> DistEnv:
    """Read torchrun's environment and initialise the process group (gloo on CPU, nccl on GPU) if needed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no GPU is available")
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    owns = False
    if world > 1 and not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    if world > 1 and dist.get_world_size() != world:
        raise ConfigError("WORLD_SIZE does not match the initialised process group")
    return DistEnv(rank, world, dev, owns)


def _barrier(env: DistEnv) -> None:
    if env.world > 1:
        dist.barrier()


def _all_sum(env: DistEnv, *values: float) -> list[float]:
    """Sum float values over ranks (float64)."""
    t = torch.tensor(values, dtype=torch.float64, device=env.device if env.device.type == "cuda" else "cpu")
    if env.world > 1:
        dist.all_reduce(t)
    return [float(v) for v in t.cpu()]


# ------------------------------------------------------------------------------------------------ steps


def _collate(ds: Dataset, idx: Sequence[int], device: torch.device) -> list[Tensor]:
    items = [ds[int(i)] for i in idx]
    return [torch.stack(parts).to(device) for parts in zip(*items, strict=True)]


def _local_slice(idx: Tensor, env: DistEnv) -> tuple[Tensor, float]:
    """This rank's contiguous part of a global batch and its weight (0 for a dummy sample if it got none)."""
    part = torch.tensor_split(idx, env.world)[env.rank]
    return (part, 1.0) if len(part) else (idx[:1], 0.0)


def _train_step(model: nn.Module, ds: Dataset, idx: Tensor, env: DistEnv, cfg: TrainConfig,
                opt: torch.optim.Optimizer, where: str) -> float:
    """One optimiser step on the global batch ``idx``; returns the global-batch mean squared error."""
    part, weight = _local_slice(idx, env)
    *inputs, target = _collate(ds, part.tolist(), env.device)
    pred = model(*inputs)
    if pred.shape != target.shape:
        raise ConfigError(f"model output {tuple(pred.shape)} does not match the target {tuple(target.shape)}")
    sse = (pred - target).pow(2).sum() * weight
    n_global = len(idx) * target[0].numel()
    (loss,) = _all_sum(env, float(sse.detach()))
    loss /= n_global
    if not math.isfinite(loss):
        raise TrainingDiverged(f"training loss became {loss} at {where}")
    (sse * (env.world / n_global)).backward()
    if cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


@torch.no_grad()
def _evaluate(model: nn.Module, ds: Dataset, env: DistEnv, batch_size: int) -> float:
    """Mean squared error (normalised units) over ``ds``, each rank taking every world-th batch."""
    was = model.training
    model.eval()
    sse, count = 0.0, 0.0
    n = len(ds)  # type: ignore[arg-type]
    starts = list(range(0, n, batch_size))
    for s in starts[env.rank :: env.world]:
        *inputs, target = _collate(ds, range(s, min(s + batch_size, n)), env.device)
        sse += float((model(*inputs) - target).double().pow(2).sum())
        count += target.numel()
    model.train(was)
    tot, cnt = _all_sum(env, sse, count)
    return tot / cnt


# ---------------------------------------------------------------------------------------------- progress


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    cols = (TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4g}"), TextColumn("{task.fields[sps]:.0f} samples/s"),
            TimeElapsedColumn())
    with Progress(*cols, console=Console(stderr=True), disable=not enabled) as p:
        yield p


# ------------------------------------------------------------------------------------------------ train


def _prepare_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse to start a new run over an existing one unless ``overwrite`` (then remove only run files)."""
    present = [f for f in ck.RUN_FILES if (run_dir / f).exists()]
    if present and not overwrite:
        raise CheckpointError(f"{run_dir} already holds a run ({present[0]}); use --resume or --overwrite")


def _check_resume_config(saved: TrainConfig, given: TrainConfig) -> None:
    a, b = saved.model_dump(mode="json"), given.resolved().model_dump(mode="json")
    diff = sorted(k for k in a if a[k] != b[k] and k not in RESUMABLE_CHANGES)
    if diff:
        raise ConfigError(f"--resume: config differs from the run's config.yaml in {', '.join(diff)}")
    if a["epochs"] != b["epochs"] and saved.schedule.name == "cosine":
        raise ConfigError("--resume: epochs cannot change with a cosine schedule (it spans the epochs)")


def train(
    cfg: TrainConfig,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    *,
    overwrite: bool = False,
    stop_after_epoch: int | None = None,
) -> Path:
    """Train ``cfg`` into run directory ``out`` (default ``cfg.out`` or runs/<name>); returns it.

    ``resume``: continue that run directory from its last committed epoch (``cfg`` may then differ from
    the stored config only in epochs, num_threads, progress, out). ``stop_after_epoch``: return after that
    many finished epochs, as if interrupted (for tests and time-boxed jobs).
    """
    if resume is not None:
        run_dir = Path(resume).resolve()
        saved = ck.read_run_config(run_dir)
        if cfg is not None:
            _check_resume_config(saved, cfg)
            cfg = saved.model_copy(update={k: getattr(cfg, k) for k in RESUMABLE_CHANGES if k != "out"})
        else:
            cfg = saved
        cfg = cfg.model_copy(update={"out": str(run_dir)})
    else:
        if out is not None:
            cfg = cfg.model_copy(update={"out": str(out)})
        cfg = cfg.resolved()
        run_dir = Path(cfg.out)  # type: ignore[arg-type]
    env = dist_env(cfg.device)
    threads = torch.get_num_threads()
    try:
        if cfg.num_threads is not None:
            torch.set_num_threads(cfg.num_threads)
        with torch.random.fork_rng(devices=[]):
            return _train(cfg, run_dir, resume is not None, overwrite, env, stop_after_epoch)
    finally:
        torch.set_num_threads(threads)
        if env.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, run_dir: Path, resuming: bool, overwrite: bool, env: DistEnv,
           stop_after: int | None) -> Path:
    state = None
    if resuming and (run_dir / ck.OPTIM).is_file():
        state = ck.load_state(run_dir / ck.OPTIM)
    if not resuming:
        _prepare_dir(run_dir, overwrite)
    _barrier(env)
    stats = ck.read_json(run_dir / ck.STATS) if state is not None else None
    if stats is not None:
        ck.check_stats(stats, cfg.data.task, str(run_dir / ck.STATS))
    data = prepare_data(cfg, stats)
    model = build_model(cfg)
    if state is not None:
        ck.load_into(model, state["model"], cfg.model.name, str(run_dir / ck.OPTIM))
    model.to(env.device)
    if env.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for tmp in run_dir.glob(".*.tmp"):  # leftovers of writes interrupted by a kill
            if any(tmp.name.startswith(f".{f}.") for f in ck.RUN_FILES):
                tmp.unlink(missing_ok=True)
        if state is None:
            for f in ck.RUN_FILES:
                (run_dir / f).unlink(missing_ok=True)
            n_params = count_trainable(model)
            ck.save_header(run_dir, cfg, cfg.model.name, cfg.data.task, dict(cfg.model.kwargs), n_params,
                           data.stats)
    _barrier(env)

    opt = _optimizer(cfg, model.parameters())
    sched = _scheduler(cfg, opt)
    start, step, history = 0, 0, []
    best_sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_val, best_epoch = math.inf, 0
    if state is not None:
        try:
            opt.load_state_dict(state["optimizer"])
            if sched is not None:
                sched.load_state_dict(state["scheduler"])
            start, step, history = int(state["epoch"]), int(state["global_step"]), list(state["metrics"])
            best_sd = state["best_model"]
            best_val, best_epoch = float(state["best_val_loss"]), int(state["best_epoch"])
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{run_dir / ck.OPTIM}: does not fit this config ({exc})") from None
        if env.main:
            ck.write_metrics(run_dir / ck.METRICS, history)  # drop lines of an epoch not committed
            atomic_write_text(run_dir / ck.CONFIG, dump_yaml(cfg))  # e.g. more epochs given on resume
    net: nn.Module = model
    if env.world > 1:
        ids = [env.device] if env.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    show = (cfg.progress if cfg.progress is not None else sys.stderr.isatty()) and env.main
    with _progress(show) as bar:
        for epoch in range(start, cfg.epochs):
            if stop_after is not None and epoch >= stop_after:
                break
            losses, train_seconds = _train_epoch(net, data.train, env, cfg, opt, epoch, bar, history, run_dir)
            step += len(losses)
            t1 = time.perf_counter()
            lr = opt.param_groups[0]["lr"]
            if sched is not None:
                sched.step()
            val_loss = None
            if data.val is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
                val_loss = _evaluate(model, data.val, env, cfg.batch_size)
                if not math.isfinite(val_loss):
                    raise TrainingDiverged(f"validation loss became {val_loss} at epoch {epoch + 1} "
                                           f"(last good checkpoint: {_last_good(history, run_dir)})")
            if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
                raise TrainingDiverged(f"weights became non-finite in epoch {epoch + 1} "
                                       f"(last good checkpoint: {_last_good(history, run_dir)})")
            train_loss = float(np.mean(losses))
            score = val_loss if data.val is not None else train_loss
            if score is not None and score < best_val:
                best_val, best_epoch = score, epoch + 1
                best_sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
            n_train = len(data.train)  # type: ignore[arg-type]
            line = {"epoch": epoch + 1, "step": step, "train_loss": train_loss, "val_loss": val_loss,
                    "lr": lr, "seconds": train_seconds + time.perf_counter() - t1,
                    "samples_per_s": n_train / max(train_seconds, 1e-9)}
            if cfg.log_step_losses:
                line["step_losses"] = losses
            history.append(line)
            if show:
                val = "-" if val_loss is None else f"{val_loss:.4g}"
                bar.console.print(f"epoch {epoch + 1}/{cfg.epochs}  train {train_loss:.4g}  val {val}  "
                                  f"lr {lr:.3g}  {line['samples_per_s']:.0f} samples/s", soft_wrap=True)
            if env.main:
                _checkpoint(run_dir, model, best_sd, opt, sched, history, step, best_val, best_epoch)
            _barrier(env)
    return run_dir


def _train_epoch(
    net: nn.Module, ds: Dataset, env: DistEnv, cfg: TrainConfig, opt: torch.optim.Optimizer, epoch: int,
    bar: Any, history: list[dict[str, Any]], run_dir: Path,
) -> tuple[list[float], float]:
    """One epoch of steps (0-based ``epoch``) over a (seed, epoch) permutation; (step losses, seconds)."""
    torch.manual_seed(sample_seed(cfg.seed, epoch, env.rank))
    if hasattr(ds, "set_epoch"):
        ds.set_epoch(epoch)
    n = len(ds)  # type: ignore[arg-type]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(sample_seed(cfg.seed, epoch)))
    n_steps = math.ceil(n / cfg.batch_size)
    task = bar.add_task("train", total=n_steps, epoch=epoch + 1, loss=math.nan, sps=0.0)
    net.train()
    t0 = time.perf_counter()
    losses: list[float] = []
    for s in range(n_steps):
        idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
        where = f"epoch {epoch + 1}, step {s + 1} (last good checkpoint: {_last_good(history, run_dir)})"
        losses.append(_train_step(net, ds, idx, env, cfg, opt, where))
        done = min((s + 1) * cfg.batch_size, n)
        bar.update(task, advance=1, loss=losses[-1], sps=done / max(time.perf_counter() - t0, 1e-9))
    bar.remove_task(task)
    return losses, time.perf_counter() - t0


def _last_good(history: list[dict[str, Any]], run_dir: Path) -> str:
    return f"epoch {history[-1]['epoch']} in {run_dir}" if history else "none, no epoch finished"


def _checkpoint(
    run_dir: Path, model: nn.Module, best_sd: dict[str, Tensor], opt: torch.optim.Optimizer, sched: Any,
    history: list[dict[str, Any]], step: int, best_val: float, best_epoch: int,
) -> None:
    """Write weights, metrics, then the resume state (commit point), each atomically."""
    epoch = int(history[-1]["epoch"])
    last = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    best = {k: v.detach().cpu().clone() for k, v in best_sd.items()}
    ck.save_weights(run_dir / ck.WEIGHTS, last, best,
                    {"epoch": epoch, "best_epoch": best_epoch, "best_val_loss": best_val})
    ck.write_metrics(run_dir / ck.METRICS, history)
    ck.save_state(run_dir / ck.OPTIM, {
        "epoch": epoch, "global_step": step, "model": last, "best_model": best, "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict() if sched is not None else {}, "best_val_loss": best_val,
        "best_epoch": best_epoch, "metrics": history,
    })


def train_from_config(
    config_path: str | Path | None,
    resume: str | Path | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """CLI entry: load the YAML config (or the run's own, given ``resume`` alone), train; the run dir."""
    if config_path is None and resume is None:
        raise UserError("train: give a CONFIG or --resume RUN")
    cfg = load_train_config(config_path) if config_path is not None else None
    if cfg is None:
        cfg = ck.read_run_config(Path(resume))  # type: ignore[arg-type]
    return train(cfg, out=out, resume=resume, overwrite=overwrite)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Validate a config mapping (tests, notebooks); ConfigError with one line on failure."""
    return validate(TrainConfig, data)
