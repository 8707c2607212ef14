"""Writing a run directory: header (config, model description, statistics), weights, resume state, metrics.

Every file goes through ``wavesurrogate.io`` (temp file, fsync, rename, directory fsync).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save
from torch import Tensor, nn

from wavesurrogate.config.base import dump_yaml
from wavesurrogate.config.train import TrainConfig
from wavesurrogate.io import atomic_write_bytes, atomic_write_text, write_json
from wavesurrogate.runs.layout import (
    CONFIG,
    METRICS,
    MODEL_FORMAT,
    MODEL_JSON,
    OPTIM,
    STATE_FORMAT,
    STATS,
    WEIGHTS,
    WEIGHTS_FORMAT,
)

__all__ = ["save_header", "save_config", "save_weights", "save_state", "write_metrics", "save_checkpoint"]


def save_config(run_dir: Path, cfg: TrainConfig) -> None:
    """Write the resolved ``config.yaml``."""
    atomic_write_text(run_dir / CONFIG, dump_yaml(cfg))


def save_header(run_dir: Path, cfg: TrainConfig, name: str, task: str, kwargs: dict[str, Any],
                n_params: int, stats: dict[str, Any], model_version: int = 1,
                init_from: dict[str, str] | None = None
                ) -> None:
    """Write ``config.yaml``, ``model.json`` (``init_from``: the run whose weights started this one) and
    ``stats.json``, each atomically."""
    from wavesurrogate import __version__

    model = {"format": MODEL_FORMAT, "name": name, "task": task, "kwargs": kwargs,
             "model_version": int(model_version), "package_version": __version__, "n_params": int(n_params)}
    if init_from is not None:
        model["init_from"] = init_from
    save_config(run_dir, cfg)
    write_json(run_dir / MODEL_JSON, model)
    write_json(run_dir / STATS, stats)


def _cpu(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}


def save_weights(path: Path, last: dict[str, Tensor], best: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Write ``best.*`` and ``last.*`` state dicts to one safetensors file (metadata values JSON-encoded)."""
    tensors = {f"last.{k}": v for k, v in _cpu(last).items()}
    tensors.update({f"best.{k}": v for k, v in _cpu(best).items()})
    metadata = {"format": WEIGHTS_FORMAT, **{k: json.dumps(v) for k, v in meta.items()}}
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write the resume state (plain containers of tensors/numbers/strings) atomically with torch.save."""
    buf = io.BytesIO()
    torch.save({"format": STATE_FORMAT, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def write_metrics(path: Path, lines: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.jsonl`` atomically with one JSON object per line."""
    atomic_write_text(path, "".join(json.dumps(line) + "\n" for line in lines))


def save_checkpoint(run_dir: Path, model: nn.Module, best_sd: dict[str, Tensor], opt: torch.optim.Optimizer,
                    sched: Any, history: list[dict[str, Any]], step: int, best_val: float,
                    best_epoch: int) -> None:
    """Write weights, metrics, then the resume state (the commit point), each atomically."""
    epoch = int(history[-1]["epoch"])
    last, best = _cpu(model.state_dict()), _cpu(best_sd)
    save_weights(run_dir / WEIGHTS, last, best, {"epoch": epoch, "best_epoch": best_epoch,
                                                  "best_val_loss": best_val})
    write_metrics(run_dir / METRICS, history)
    save_state(run_dir / OPTIM, {
        "epoch": epoch, "global_step": step, "model": last, "best_model": best, "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict() if sched is not None else {}, "best_val_loss": best_val,
        "best_epoch": best_epoch, "metrics": history,
    })
