"""One training loop for every task and model: deterministic, resumable, DDP-ready, crash-safe.

The task (``tasks.get(cfg.data.task)``) gives the datasets, statistics, constructor arguments and the
per-sample loss; this loop knows nothing else about what the tensors mean. ``init_from=RUN`` starts from
that run's best weights (fine-tuning).

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
  ``sum of per-sample losses × world / global batch size``, so DDP's gradient average is exactly the
  gradient of the global-batch mean: losses match one process with the same global batch.
- Guard: a non-finite training or validation loss raises ``TrainingDiverged``; the last checkpoint stays.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from wavesurrogate import tasks
from wavesurrogate.config.base import validate
from wavesurrogate.config.train import RESUMABLE_CHANGES, TrainConfig, load_train_config
from wavesurrogate.data.windows import sample_seed
from wavesurrogate.errors import CheckpointError, ConfigError, TrainingDiverged, UserError
from wavesurrogate.nn.registry import count_trainable
from wavesurrogate.progress import progress_wanted
from wavesurrogate.runs import layout
from wavesurrogate.runs.layout import holds_config, read_metrics, start_weights
from wavesurrogate.runs.load import load_into, load_weights, read_run_config
from wavesurrogate.runs.save import save_checkpoint, save_config, save_header
from wavesurrogate.runs.state import check_against
from wavesurrogate.tasks.base import Task, TrainData
from wavesurrogate.train.dist import DistEnv, all_sum, barrier, dist_env
from wavesurrogate.train.guard import check_moments, check_outputs, resume_state
from wavesurrogate.train.optim import optimizer, scheduler, steps_per_batch
from wavesurrogate.train.progress import epoch_progress

__all__ = ["train", "train_or_reuse", "train_from_config", "config_from_dict", "build_model", "prepare_data",
           "TrainData"]


def prepare_data(cfg: TrainConfig, stats: dict[str, Any] | None = None) -> TrainData:
    """The datasets and statistics of ``cfg`` as its task builds them (``stats`` of a run are reused)."""
    return tasks.get(cfg.data.task).prepare(cfg, stats)


def build_model(cfg: TrainConfig, stats: dict[str, Any] | None = None) -> nn.Module:
    """The configured model for its task, weights initialised from ``cfg.seed`` (caller's RNG untouched)."""
    from wavesurrogate.nn import registry

    task = tasks.get(cfg.data.task)
    tasks.check_model(task, registry.entry(cfg.model.name))
    task.check_config(cfg)
    kwargs = task.model_kwargs(cfg, stats or {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        try:
            return registry.build(cfg.model.name, kwargs)
        except CheckpointError as exc:  # bad kwargs are a config problem at training time
            raise ConfigError(f"model.kwargs: {exc}") from None


def _collate(ds: Dataset, idx: Sequence[int], device: torch.device) -> list[Tensor]:
    """The batch of items ``idx`` on ``device``; a dataset with ``__getitems__`` builds it in one call."""
    if hasattr(ds, "__getitems__"):
        return [part.to(device) for part in ds.__getitems__([int(i) for i in idx])]
    items = [ds[int(i)] for i in idx]
    return [torch.stack(parts).to(device) for parts in zip(*items, strict=True)]


def _local_slice(idx: Tensor, env: DistEnv) -> tuple[Tensor, float]:
    """This rank's contiguous part of a global batch and its weight (0 for a dummy sample if it got none)."""
    part = torch.tensor_split(idx, env.world)[env.rank]
    return (part, 1.0) if len(part) else (idx[:1], 0.0)


def _train_step(model: nn.Module, task: Task, ds: Dataset, idx: Tensor, env: DistEnv, cfg: TrainConfig,
                opt: torch.optim.Optimizer, where: str) -> float:
    """One optimiser step on the global batch ``idx``; returns the global-batch mean loss."""
    part, weight = _local_slice(idx, env)
    local = task.batch_loss(model, _collate(ds, part.tolist(), env.device), cfg).sum() * weight
    (loss,) = all_sum(env, float(local.detach()))
    loss /= len(idx)
    if not math.isfinite(loss):
        raise TrainingDiverged(f"training loss became {loss} at {where}")
    (local * (env.world / len(idx))).backward()
    if cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


@torch.no_grad()
def _evaluate(model: nn.Module, task: Task, ds: Dataset, env: DistEnv, cfg: TrainConfig) -> float:
    """Mean per-sample loss (normalised units) over ``ds``, each rank taking every world-th batch."""
    was = model.training
    model.eval()
    sse, count = 0.0, 0.0
    n = len(ds)  # type: ignore[arg-type]
    starts = list(range(0, n, cfg.batch_size))
    for s in starts[env.rank :: env.world]:
        batch = _collate(ds, range(s, min(s + cfg.batch_size, n)), env.device)
        sse += float(task.batch_loss(model, batch, cfg).double().sum())
        count += batch[-1].shape[0]
    model.train(was)
    tot, cnt = all_sum(env, sse, count)
    return tot / cnt


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
    init_from: str | Path | None = None,
) -> Path:
    """Train ``cfg`` into run directory ``out`` (default ``cfg.out`` or runs/<name>); returns it.

    ``resume``: continue that run directory from its last committed epoch (``cfg`` may then differ from
    the stored config only in epochs, num_threads, progress, out). ``stop_after_epoch``: return after that
    many finished epochs, as if interrupted (for tests and time-boxed jobs). ``init_from``: a run
    directory of the same model whose best weights start this run (fine-tuning; optimiser state is new).
    """
    if resume is not None and init_from is not None:
        raise ConfigError("--init-from: a resumed run continues from its own weights; give one of the two")
    if resume is not None:
        run_dir = Path(resume).resolve()
        saved = read_run_config(run_dir)
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
    task = tasks.get(cfg.data.task)
    check_outputs(cfg, run_dir, init_from)
    env = dist_env(cfg.device)
    threads = torch.get_num_threads()
    try:
        if cfg.num_threads is not None:
            torch.set_num_threads(cfg.num_threads)
        with layout.lock_run(run_dir) if env.main else contextlib.nullcontext(), \
                torch.random.fork_rng(devices=[]):
            return _train(cfg, task, run_dir, resume is not None, overwrite, env, stop_after_epoch,
                          init_from)
    finally:
        torch.set_num_threads(threads)
        if env.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _start(cfg: TrainConfig, task: Task, run_dir: Path, resuming: bool, overwrite: bool, env: DistEnv,
           init_from: str | Path | None) -> tuple[nn.Module, TrainData, dict[str, Any] | None]:
    """Data, model (resumed or initialised, moved to the device) and resume state; writes the header."""
    state = resume_state(run_dir) if resuming else None
    if not resuming:
        layout.prepare_dir(run_dir, overwrite)
    barrier(env)
    stats = layout.read_json(run_dir / layout.STATS) if state is not None else None
    if stats is not None:
        task.check_stats(stats, str(run_dir / layout.STATS))
        if "splits" not in stats:
            raise CheckpointError(f"{run_dir / layout.STATS}: written before the shared training loop (no "
                                  "case splits), so it cannot be resumed; retrain, or use --init-from")
    data = task.prepare(cfg, stats)
    model = build_model(cfg, data.stats)
    if state is not None:
        load_into(model, state["model"], cfg.model.name, str(run_dir / layout.OPTIM))
        check_against(state, model, str(run_dir / layout.OPTIM))
    elif init_from is not None:
        _init_from(model, cfg, run_dir, Path(init_from))
    else:
        task.init_model(model, data)  # fresh run only: e.g. a POD basis from the training fields
    _dry_run(model, task, data.train, cfg)  # a model that does not fit its data fails before any write
    model.to(env.device)
    if env.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        layout.remove_partial_writes(run_dir)
        if state is None:
            from wavesurrogate.nn import registry

            for f in layout.RUN_FILES:
                (run_dir / f).unlink(missing_ok=True)
            d = registry.describe(model)
            save_header(run_dir, cfg, d["name"], task.name, d["kwargs"], count_trainable(model), data.stats,
                        d["version"], init_from=None if init_from is None else start_weights(init_from))
    barrier(env)
    return model, data, state


def _init_from(model: nn.Module, cfg: TrainConfig, run_dir: Path, source: Path) -> None:
    """Load the best weights of run ``source`` (same model name and version) into ``model``."""
    from wavesurrogate.nn import registry

    where = f"--init-from {source}"
    if source.resolve() == run_dir.resolve():
        raise ConfigError(f"{where}: is the run directory being written; choose another --out")
    meta = layout.read_json(source / layout.MODEL_JSON)
    want = (cfg.model.name, registry.entry(cfg.model.name).version)
    got = (meta.get("name"), meta.get("model_version", 1)) if isinstance(meta, dict) else (None, None)
    if got != want:
        raise CheckpointError(f"{where}: holds model {got[0]!r} version {got[1]}, this run trains "
                              f"{want[0]!r} version {want[1]}")
    load_into(model, load_weights(source / layout.WEIGHTS, "best")[0], cfg.model.name, where)


def _dry_run(model: nn.Module, task: Task, ds: Dataset, cfg: TrainConfig) -> None:
    """One sample through the model and the task's loss, in eval mode and without gradients."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            task.batch_loss(model, _collate(ds, [0], torch.device("cpu")), cfg)
    except UserError:
        raise
    except (RuntimeError, ValueError, IndexError) as exc:  # e.g. a layer of another width than the data's
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"model: {type(model).__name__} does not fit the data ({first[:160]})") from None
    finally:
        model.train(was)


def _train(cfg: TrainConfig, task: Task, run_dir: Path, resuming: bool, overwrite: bool, env: DistEnv,
           stop_after: int | None, init_from: str | Path | None) -> Path:
    model, data, state = _start(cfg, task, run_dir, resuming, overwrite, env, init_from)
    opt = optimizer(cfg, model.parameters())
    sched = scheduler(cfg, opt)
    start, step, history = 0, 0, []
    best_sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_val, best_epoch = math.inf, 0
    if state is not None:
        try:
            opt.load_state_dict(state["optimizer"])
            check_moments(opt)
            if sched is not None:
                sched.load_state_dict(state["scheduler"])
            start, step, history = int(state["epoch"]), int(state["global_step"]), list(state["metrics"])
            best_sd = state["best_model"]
            best_val, best_epoch = float(state["best_val_loss"]), int(state["best_epoch"])
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{run_dir / layout.OPTIM}: does not fit this config ({exc})") from None
    # A resumed run rewrites nothing until its first new checkpoint: config.yaml (e.g. more epochs) with
    # it, and metrics.jsonl then drops the lines of an epoch that was not committed.
    config_pending = state is not None
    net: nn.Module = model
    if env.world > 1:
        ids = [env.device] if env.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    show = progress_wanted(cfg.progress) and env.main
    with epoch_progress(show) as bar:
        for epoch in range(start, cfg.epochs):
            if stop_after is not None and epoch >= stop_after:
                break
            lr = opt.param_groups[0]["lr"]  # the rate this epoch started with
            losses, train_seconds = _train_epoch(net, task, data.train, env, cfg, opt, epoch, bar, history,
                                                 run_dir, sched if steps_per_batch(cfg) else None)
            step += len(losses)
            t1 = time.perf_counter()
            if sched is not None and not steps_per_batch(cfg):
                sched.step()
            val_loss = None
            if data.val is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
                val_loss = _evaluate(model, task, data.val, env, cfg)
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
                if config_pending:
                    save_config(run_dir, cfg)
                    config_pending = False
                save_checkpoint(run_dir, model, best_sd, opt, sched, history, step, best_val, best_epoch)
            barrier(env)
    return run_dir


def _train_epoch(
    net: nn.Module, task: Task, ds: Dataset, env: DistEnv, cfg: TrainConfig, opt: torch.optim.Optimizer,
    epoch: int, bar: Any, history: list[dict[str, Any]], run_dir: Path, step_sched: Any = None,
) -> tuple[list[float], float]:
    """One epoch of steps (0-based ``epoch``) over a (seed, epoch) permutation; (step losses, seconds).
    ``step_sched`` (a per-step schedule) is stepped after every optimiser step."""
    torch.manual_seed(sample_seed(cfg.seed, epoch, env.rank))
    if hasattr(ds, "set_epoch"):
        ds.set_epoch(epoch)
    n = len(ds)  # type: ignore[arg-type]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(sample_seed(cfg.seed, epoch)))
    n_steps = math.ceil(n / cfg.batch_size)
    bar_task = bar.add_task("train", total=n_steps, epoch=epoch + 1, loss=math.nan, sps=0.0)
    net.train()
    t0 = time.perf_counter()
    losses: list[float] = []
    for s in range(n_steps):
        idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
        where = f"epoch {epoch + 1}, step {s + 1} (last good checkpoint: {_last_good(history, run_dir)})"
        losses.append(_train_step(net, task, ds, idx, env, cfg, opt, where))
        if step_sched is not None:
            step_sched.step()
        done = min((s + 1) * cfg.batch_size, n)
        bar.update(bar_task, advance=1, loss=losses[-1], sps=done / max(time.perf_counter() - t0, 1e-9))
    bar.remove_task(bar_task)
    return losses, time.perf_counter() - t0


def _last_good(history: list[dict[str, Any]], run_dir: Path) -> str:
    return f"epoch {history[-1]['epoch']} in {run_dir}" if history else "none, no epoch finished"


def train_or_reuse(cfg: TrainConfig, *, init_from: str | Path | None = None) -> tuple[Path, bool]:
    """(run dir, trained?): a finished run of ``cfg`` is reused, an interrupted one resumed, else trained."""
    cfg = cfg.resolved()
    run = Path(cfg.out)  # type: ignore[arg-type]
    start = None if init_from is None else start_weights(init_from)
    same = holds_config(run, cfg, ignore=("num_threads", "progress"), init_from=start)
    done = len(read_metrics(run)) if same else 0
    if done >= cfg.epochs:
        return run, False
    if done and (run / layout.OPTIM).is_file():
        return train(cfg, resume=run), True
    return train(cfg, overwrite=True, init_from=init_from), True


def train_from_config(
    config_path: str | Path | None,
    resume: str | Path | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    init_from: str | Path | None = None,
    progress: bool | None = None,
) -> Path:
    """CLI entry: load the YAML config (or the run's own, given ``resume`` alone), train; the run dir.
    ``progress``: overrides the config's (None: keep it)."""
    if config_path is None and resume is None:
        raise UserError("train: give a CONFIG or --resume RUN")
    cfg = load_train_config(config_path) if config_path is not None else None
    if cfg is None:
        cfg = read_run_config(Path(resume))  # type: ignore[arg-type]
    if progress is not None:
        cfg = cfg.model_copy(update={"progress": progress})
    return train(cfg, out=out, resume=resume, overwrite=overwrite, init_from=init_from)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Validate a config mapping (tests, notebooks); ConfigError with one line on failure."""
    return validate(TrainConfig, data)
