"""What a training checks before it writes anything: its outputs against its inputs, the resume state of
the run directory, the optimiser moments of that state (docs/reliability.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from wavesurrogate.config.train import TrainConfig
from wavesurrogate.errors import CheckpointError, ConfigError
from wavesurrogate.outputs import check_outputs as guard_outputs
from wavesurrogate.outputs import same_file
from wavesurrogate.runs import layout
from wavesurrogate.runs.load import load_state

__all__ = ["check_outputs", "resume_state", "check_moments"]


def check_outputs(cfg: TrainConfig, run_dir: Path, init_from: str | Path | None) -> None:
    """The run's files may not be what it reads: its data file, or the files of the run it starts from."""
    if init_from is not None and same_file(init_from, run_dir):
        raise ConfigError(f"--init-from {init_from}: is the run directory being written; "
                          "choose another --out")
    inputs = [cfg.data.path, *(layout.run_files(init_from) if init_from is not None else ())]
    guard_outputs(layout.run_files(run_dir), inputs, overwrite=True, option="run directory")


def resume_state(run_dir: Path) -> dict[str, Any] | None:
    """The resume state of ``run_dir``, or None: the run restarts, which loses at most one epoch (what a kill
    during the first checkpoint leaves: weights and metrics of epoch 1, no optimizer.pt yet).

    A run without optimizer.pt that finished all its epochs, or more than one, is refused (CheckpointError):
    retraining it would replace the weights of that work, and nothing says what happened to its state.
    """
    if os.path.lexists(run_dir / layout.OPTIM):  # a FIFO, device or link is refused by load_state
        return load_state(run_dir / layout.OPTIM)
    done, planned = len(layout.read_metrics(run_dir)), layout.read_run_config(run_dir).epochs
    if done >= planned or done > 1:
        how = "finished" if done >= planned else "ran"
        raise CheckpointError(f"--resume: {run_dir} {how} {done} of {planned} epochs (metrics.jsonl) but has "
                              f"no {layout.OPTIM}, so it cannot be resumed (restarting would replace its "
                              f"weights); to train on, use --init-from {run_dir} with another --out")
    return None


def check_moments(opt: torch.optim.Optimizer) -> None:
    """ValueError unless every per-parameter tensor of a loaded optimiser state has its parameter's shape
    (a tampered moment would fail at the first step, after the resumed run had started)."""
    for group in opt.param_groups:
        for p in group["params"]:
            for k, v in opt.state.get(p, {}).items():
                if not isinstance(v, Tensor) or v.dim() == 0:  # e.g. Adam's step count
                    continue
                if v.shape != p.shape:
                    raise ValueError(f"optimizer state {k!r} of shape {tuple(v.shape)} for a parameter of "
                                     f"shape {tuple(p.shape)}")
                if not bool(torch.isfinite(v).all()):
                    raise ValueError(f"optimizer state {k!r} is not finite")
