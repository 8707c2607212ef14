"""Reading a run directory back: weights, the resume state, and ``load_run`` → model + task + statistics.

Nothing here unpickles arbitrary objects: anything unreadable, unsafe or of another architecture raises
CheckpointError with one line.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from wavesurrogate.config.train import TrainConfig
from wavesurrogate.errors import CheckpointError, UserError
from wavesurrogate.runs.layout import (
    MODEL_FORMAT,
    MODEL_JSON,
    STATE_FORMAT,
    STATS,
    WEIGHTS,
    WEIGHTS_FORMAT,
    WHICH,
    read_json,
    read_run_config,
)
from wavesurrogate.runs.state import check_structure
from wavesurrogate.safeload import check_regular, parse_json

__all__ = ["RunInfo", "load_weights", "load_into", "load_state", "load_run"]


def load_weights(path: Path, which: str = "best") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The ``which`` ("best" or "last") state dict of a weights file and its decoded metadata."""
    if which not in WHICH:
        raise CheckpointError(f"which must be one of {WHICH}, got {which!r}")
    if not os.path.lexists(path):
        raise CheckpointError(f"{path.parent}: no {path.name} (no finished epoch yet?)")
    check_regular(path, CheckpointError)
    prefix = f"{which}."
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = f.metadata() or {}
            sd = {k[len(prefix):]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
    except Exception as exc:  # safetensors raises several types for truncated/corrupted files
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: corrupted or truncated safetensors file ({msg})") from None
    if raw.get("format") != WEIGHTS_FORMAT:
        raise CheckpointError(f"{path}: not a wavesurrogate weights file (format {raw.get('format')!r})")
    meta = {k: parse_json(v, f"{path}: metadata {k!r}", CheckpointError) for k, v in raw.items()
            if k != "format"}
    if not sd:
        raise CheckpointError(f"{path}: no {which!r} weights")
    for k in ("epoch", "best_epoch"):
        v = meta.get(k, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise CheckpointError(f"{path}: malformed metadata ({k} must be an integer >= 0, got {v!r})")
    v = meta.get("best_val_loss", 0.0)
    if v is not None and (not isinstance(v, int | float) or isinstance(v, bool)):
        raise CheckpointError(f"{path}: malformed metadata (best_val_loss must be a number, got {v!r})")
    return sd, meta


def load_into(model: nn.Module, sd: dict[str, torch.Tensor], name: str, source: str) -> None:
    """Copy ``sd`` into ``model``; CheckpointError naming the first mismatch if the architecture differs."""
    want = model.state_dict()
    missing = sorted(set(want) - set(sd))
    unexpected = sorted(set(sd) - set(want))
    bad = sorted(k for k in set(want) & set(sd) if not isinstance(sd[k], torch.Tensor))
    if bad:
        raise CheckpointError(f"{source}: {bad[0]!r} is a {type(sd[bad[0]]).__name__}, not a tensor")
    shapes = sorted(k for k in set(want) & set(sd) if tuple(want[k].shape) != tuple(sd[k].shape))
    dtypes = sorted(k for k in set(want) & set(sd) if want[k].dtype != sd[k].dtype)
    problems = [f"{what} {keys[0]!r}" + (f" and {len(keys) - 1} more" if len(keys) > 1 else "")
                for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
    if shapes:
        k = shapes[0]
        problems.append(f"{k!r} has shape {tuple(sd[k].shape)}, model wants {tuple(want[k].shape)}")
    elif dtypes:
        k = dtypes[0]
        problems.append(f"{k!r} is {sd[k].dtype}, model wants {want[k].dtype}")
    if problems:
        raise CheckpointError(f"{source}: weights do not fit model {name!r} ({'; '.join(problems)})")
    model.load_state_dict(sd, strict=True)


def load_state(path: Path) -> dict[str, Any]:
    """Read the resume state with ``torch.load(weights_only=True)``; CheckpointError if unsafe or corrupt."""
    if not os.path.lexists(path):
        raise CheckpointError(f"{path.parent}: no {path.name}")
    check_regular(path, CheckpointError)
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": the error below is the one line we print
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError (unsafe pickle), RuntimeError/EOFError (truncated), …
        if "Weights only load failed" in str(exc):  # torch's text would advise weights_only=False: don't
            raise CheckpointError(f"{path}: refused to load: it holds Python objects other than tensors and "
                                  "numbers, and unpickling them could run code (not a wavesurrogate "
                                  "training state, or tampered with)") from None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: refused to load ({type(exc).__name__}: {first[:160]})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a wavesurrogate training state")
    return check_structure(state, str(path))


def check_agree(cfg: TrainConfig, stats: dict[str, Any], task: Any, kwargs: dict[str, Any],
                run_dir: Path) -> None:
    """CheckpointError unless config.yaml, stats.json and model.json of a run tell the same story: the task
    and the data options stats.json records equal the config's, and the constructor arguments the task
    derives from config and statistics equal model.json's."""
    for key in ("task", "n_in", "n_out", "inputs", "update"):
        if key in stats and stats[key] != getattr(cfg.data, key):
            raise CheckpointError(f"{run_dir / STATS}: {key} {stats[key]!r} disagrees with config.yaml "
                                  f"(data.{key}: {getattr(cfg.data, key)!r})")
    try:
        expect = parse_json(json.dumps(task.model_kwargs(cfg, stats)), "model kwargs", CheckpointError)
    except (UserError, KeyError, TypeError, ValueError, IndexError):
        return  # runs older than a rule the task now applies to new configs (model.json is what they hold)
    for key, want in expect.items():
        if key in kwargs and kwargs[key] != want:
            raise CheckpointError(f"{run_dir / MODEL_JSON}: kwargs.{key} = {str(kwargs[key])[:40]} but "
                                  f"config.yaml and {STATS} give {str(want)[:40]}")


@dataclass(frozen=True)
class RunInfo:
    """What a run directory says about its model: config, statistics, registry name/kwargs/task, epochs."""

    run_dir: Path
    config: TrainConfig
    stats: dict[str, Any]
    model_name: str
    model_kwargs: dict[str, Any]
    task: str
    package_version: str
    which: str
    epoch: int
    best_epoch: int
    model_version: int = 1


def load_run(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu"
             ) -> tuple[nn.Module, RunInfo]:
    """Rebuild a trained model from its run directory alone (``which``: "best" or "last"), in eval mode.

    Reads config.yaml, model.json, stats.json and weights.safetensors; never unpickles. The run's task
    checks its statistics (``tasks.get(info.task)`` gives the task itself). CheckpointError (one line) for
    a missing/corrupted file, an unknown model or task, or weights of another architecture.
    """
    from wavesurrogate import tasks
    from wavesurrogate.nn import registry

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory not found: {run_dir}")
    cfg = read_run_config(run_dir)
    meta, stats = read_json(run_dir / MODEL_JSON), read_json(run_dir / STATS)
    where = run_dir / MODEL_JSON
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT or not isinstance(stats, dict):
        raise CheckpointError(f"{where}: not a wavesurrogate model description")
    name, kwargs, version = meta.get("name"), meta.get("kwargs"), meta.get("model_version", 1)
    if not isinstance(name, str) or not isinstance(kwargs, dict) or not isinstance(version, int):
        raise CheckpointError(f"{where}: needs a string 'name', a mapping 'kwargs', an integer version")
    try:
        entry = registry.entry(name)
        if version > entry.version:
            raise CheckpointError(f"{where}: model {name!r} version {version} is newer than this package's "
                                  f"({entry.version}); upgrade wavesurrogate")
        task = tasks.get(str(meta.get("task", cfg.data.task)))
        tasks.check_model(task, entry, source=f"{where}: task {task.name!r} but model")
        model = registry.build(name, kwargs)
    except CheckpointError:
        raise
    except UserError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    task.check_stats(stats, str(run_dir / STATS))
    check_agree(cfg, stats, task, kwargs, run_dir)
    sd, wmeta = load_weights(run_dir / WEIGHTS, which)
    load_into(model, sd, name, str(run_dir / WEIGHTS))
    model.to(device).eval()
    info = RunInfo(run_dir=run_dir, config=cfg, stats=stats, model_name=name, model_kwargs=kwargs,
                   task=task.name, package_version=str(meta.get("package_version")), which=which,
                   epoch=int(wmeta.get("epoch", -1)), best_epoch=int(wmeta.get("best_epoch", -1)),
                   model_version=version)
    return model, info
