"""Run directories: atomic writes, safetensors weights, a weights-only training state, and ``load_run``.

Layout of a run directory (see docs/training.md)::

    config.yaml          resolved TrainConfig (absolute paths)
    model.json           {"format", "name", "task", "kwargs", "package_version", "n_params"}
    stats.json           normalisation statistics of the training split + the data geometry trained on
    weights.safetensors  one file, two prefixed copies: "best.<param>" and "last.<param>";
                         metadata {"format", "epoch", "best_epoch", "best_val_loss"}
    optimizer.pt         the resume state (commit point), a dict of tensors/numbers only, read with
                         torch.load(weights_only=True): epoch, model (last), best_model, optimizer,
                         scheduler, best_val_loss, best_epoch, global_step, metrics history
    metrics.jsonl        one JSON line per finished epoch

Every file is written to a temporary file in the same directory, fsync'ed, renamed over the target and
the directory fsync'ed, so a reader (or a resume after SIGKILL) sees either the old or the new file.
Nothing here unpickles arbitrary objects: anything unreadable, unsafe or of another architecture raises
CheckpointError with one line.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save
from torch import nn

from wavesurrogate.config.base import dump_yaml, read_yaml, validate
from wavesurrogate.config.train import TrainConfig
from wavesurrogate.errors import CheckpointError, UserError
from wavesurrogate.io import atomic_write_bytes, atomic_write_text

__all__ = [
    "CONFIG",
    "MODEL_JSON",
    "STATS",
    "WEIGHTS",
    "OPTIM",
    "METRICS",
    "RUN_FILES",
    "RunInfo",
    "save_header",
    "save_weights",
    "load_weights",
    "save_state",
    "load_state",
    "write_metrics",
    "read_json",
    "read_run_config",
    "load_run",
]

CONFIG, MODEL_JSON, STATS = "config.yaml", "model.json", "stats.json"
WEIGHTS, OPTIM, METRICS = "weights.safetensors", "optimizer.pt", "metrics.jsonl"
RUN_FILES = (CONFIG, MODEL_JSON, STATS, WEIGHTS, OPTIM, METRICS)
MODEL_FORMAT = "wavesurrogate-model/1"
WEIGHTS_FORMAT = "wavesurrogate-weights/1"
STATE_FORMAT = "wavesurrogate-state/1"
WHICH = ("best", "last")
# temporary: the task a model interface (nn.registry) serves, until tasks/ maps tasks to interfaces
TASK_OF_INTERFACE = {"frames": "forecast", "points": "source_to_field", "trace": "boundary_trace"}


def read_json(path: Path) -> Any:
    """Parse a JSON file of a run directory; CheckpointError if missing or malformed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path.parent}: no {path.name} (not a run directory?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable JSON ({type(exc).__name__})") from None


# ---------------------------------------------------------------------------------------------- header


def save_header(
    run_dir: Path, cfg: TrainConfig, name: str, task: str, kwargs: dict[str, Any], n_params: int,
    stats: dict[str, Any],
) -> None:
    """Write ``config.yaml``, ``model.json`` and ``stats.json`` (each atomically)."""
    from wavesurrogate import __version__

    model = {"format": MODEL_FORMAT, "name": name, "task": task, "kwargs": kwargs,
             "package_version": __version__, "n_params": int(n_params)}
    atomic_write_text(run_dir / CONFIG, dump_yaml(cfg))
    atomic_write_text(run_dir / MODEL_JSON, json.dumps(model, indent=2) + "\n")
    atomic_write_text(run_dir / STATS, json.dumps(stats, indent=2) + "\n")


def read_run_config(run_dir: Path) -> TrainConfig:
    """The resolved TrainConfig stored in a run directory; CheckpointError if absent or invalid."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: no {CONFIG} (not a run directory?)")
    try:
        return validate(TrainConfig, read_yaml(path), source=str(path))
    except UserError as exc:
        raise CheckpointError(str(exc)) from None


# --------------------------------------------------------------------------------------------- weights


def _cpu(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}


def save_weights(
    path: Path, last: dict[str, torch.Tensor], best: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Write ``best.*`` and ``last.*`` state dicts to one safetensors file (metadata values JSON-encoded)."""
    tensors = {f"last.{k}": v for k, v in _cpu(last).items()}
    tensors.update({f"best.{k}": v for k, v in _cpu(best).items()})
    metadata = {"format": WEIGHTS_FORMAT, **{k: json.dumps(v) for k, v in meta.items()}}
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def load_weights(path: Path, which: str = "best") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The ``which`` ("best" or "last") state dict of a weights file and its decoded metadata."""
    if which not in WHICH:
        raise CheckpointError(f"which must be one of {WHICH}, got {which!r}")
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: no {path.name} (no finished epoch yet?)")
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
    try:
        meta = {k: json.loads(v) for k, v in raw.items() if k != "format"}
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: malformed metadata") from None
    if not sd:
        raise CheckpointError(f"{path}: no {which!r} weights")
    return sd, meta


def load_into(model: nn.Module, sd: dict[str, torch.Tensor], name: str, source: str) -> None:
    """Copy ``sd`` into ``model``; CheckpointError naming the first mismatch if the architecture differs."""
    want = model.state_dict()
    missing = sorted(set(want) - set(sd))
    unexpected = sorted(set(sd) - set(want))
    shapes = sorted(k for k in set(want) & set(sd) if tuple(want[k].shape) != tuple(sd[k].shape))
    problems = [f"{what} {keys[0]!r}" + (f" and {len(keys) - 1} more" if len(keys) > 1 else "")
                for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
    if shapes:
        k = shapes[0]
        problems.append(f"{k!r} has shape {tuple(sd[k].shape)}, model wants {tuple(want[k].shape)}")
    if problems:
        raise CheckpointError(f"{source}: weights do not fit model {name!r} ({'; '.join(problems)})")
    model.load_state_dict(sd, strict=True)


# ------------------------------------------------------------------------------------------ train state


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write the resume state (plain containers of tensors/numbers/strings) atomically with torch.save."""
    buf = io.BytesIO()
    torch.save({"format": STATE_FORMAT, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: Path) -> dict[str, Any]:
    """Read the resume state with ``torch.load(weights_only=True)``; CheckpointError if unsafe or corrupt."""
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: no {path.name}")
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
    return state


def write_metrics(path: Path, lines: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.jsonl`` atomically with one JSON object per line."""
    atomic_write_text(path, "".join(json.dumps(line) + "\n" for line in lines))


# -------------------------------------------------------------------------------------------- load_run


def _finite(v: Any, positive: bool = False) -> bool:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    return ok and (v > 0 if positive else True)


def check_stats(stats: dict[str, Any], task: str, source: str) -> None:
    """CheckpointError (one line) unless ``stats`` holds what evaluating a ``task`` model reads."""
    if not isinstance(stats, dict):
        raise CheckpointError(f"{source}: expected a JSON object")
    if task not in ("forecast", "source_to_field"):
        return
    scalars = {"field_mean": False, "field_std": True}
    if task == "forecast":
        scalars.update(velocity_mean=False, velocity_std=True)
    for k, positive in scalars.items():
        if not _finite(stats.get(k), positive):
            kind = "a positive finite" if positive else "a finite"
            raise CheckpointError(f"{source}: {k!r} must be {kind} number, got {stats.get(k)!r}")
    ints = ("n_in", "n_out") if task == "forecast" else ()
    for k in ints:
        if not isinstance(stats.get(k), int) or isinstance(stats.get(k), bool) or stats[k] < 1:
            raise CheckpointError(f"{source}: {k!r} must be a positive integer, got {stats.get(k)!r}")
    geo = stats.get("data")
    if not isinstance(geo, dict) or not all(isinstance(geo.get(k), int) for k in ("ny", "nx")) \
            or not _finite(geo.get("frame_dt"), positive=True):
        raise CheckpointError(f"{source}: 'data' must give the grid (ny, nx) and frame_dt trained on")
    if task == "source_to_field":
        names = stats.get("param_names")
        n = len(names) if isinstance(names, list) else -1
        lists = {"param_mean": n, "param_std": n, "coord_min": 3, "coord_max": 3}
        for k, length in lists.items():
            v = stats.get(k)
            if not isinstance(v, list) or len(v) != length or not all(_finite(x) for x in v):
                raise CheckpointError(f"{source}: {k!r} must be a list of {max(length, 0)} finite numbers")


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


def load_run(
    run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu"
) -> tuple[nn.Module, RunInfo]:
    """Rebuild a trained model from its run directory alone (``which``: "best" or "last"), in eval mode.

    Reads config.yaml, model.json, stats.json and weights.safetensors; never unpickles. CheckpointError
    (one line) for a missing/corrupted file, an unknown model name, or weights of another architecture.
    """
    from wavesurrogate.nn import registry

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory not found: {run_dir}")
    cfg = read_run_config(run_dir)
    meta = read_json(run_dir / MODEL_JSON)
    stats = read_json(run_dir / STATS)
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT or not isinstance(stats, dict):
        raise CheckpointError(f"{run_dir / MODEL_JSON}: not a wavesurrogate model description")
    name, kwargs = meta.get("name"), meta.get("kwargs")
    if not isinstance(name, str) or not isinstance(kwargs, dict):
        raise CheckpointError(f"{run_dir / MODEL_JSON}: needs a string 'name' and a mapping 'kwargs'")
    try:
        model = registry.build(name, kwargs)
    except CheckpointError:
        raise
    except UserError as exc:
        raise CheckpointError(f"{run_dir / MODEL_JSON}: {exc}") from None
    task = TASK_OF_INTERFACE[registry.entry(name).interface]
    if meta.get("task", task) != task:
        raise CheckpointError(f"{run_dir / MODEL_JSON}: task {meta.get('task')!r} but model {name!r} solves "
                              f"{task!r}")
    check_stats(stats, task, str(run_dir / STATS))
    sd, wmeta = load_weights(run_dir / WEIGHTS, which)
    load_into(model, sd, name, str(run_dir / WEIGHTS))
    model.to(device).eval()
    info = RunInfo(
        run_dir=run_dir, config=cfg, stats=stats, model_name=name, model_kwargs=kwargs,
        task=task, package_version=str(meta.get("package_version")),
        which=which, epoch=int(wmeta.get("epoch", -1)), best_epoch=int(wmeta.get("best_epoch", -1)),
    )
    return model, info
