"""What a resume state (``optimizer.pt``) must hold, checked before anything uses it.

``check_structure`` runs right after the weights-only load: a bounded walk (``safeload.check_tree``: a
pickle whose lists share references 10⁹ ways is refused after at most ``MAX_NODES`` steps), then every key
with its type. ``check_against`` runs once the model is built: weights and optimiser moments of the
model's shapes and dtypes, parameter groups naming exactly the model's parameters. Each problem is one
CheckpointError line naming the key.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from wavesurrogate.errors import CheckpointError
from wavesurrogate.safeload import check_tree

__all__ = ["check_structure", "check_against"]

_NUMBER = (int, float)
_SCALARS = (str, bool, int, float, type(None), torch.Tensor)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    return isinstance(v, _NUMBER) and not isinstance(v, bool) and math.isfinite(v)


def _leaf(x: Any) -> bool:
    return isinstance(x, _SCALARS)


def check_structure(state: Any, source: str) -> dict[str, Any]:
    """``state`` if it has the shape of a training state written by ``runs.save.save_state``."""
    check_tree(state, source, CheckpointError, leaf=_leaf)
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: not a wavesurrogate training state")
    need: dict[str, Any] = {"epoch": _is_int, "global_step": _is_int, "best_epoch": _is_int,
                            "best_val_loss": lambda v: isinstance(v, _NUMBER) and not isinstance(v, bool),
                            "model": dict, "best_model": dict, "optimizer": dict, "scheduler": dict,
                            "metrics": list}
    for key, ok in need.items():
        if key not in state:
            raise CheckpointError(f"{source}: no {key!r} (truncated or tampered with)")
        v = state[key]
        if not (isinstance(v, ok) if isinstance(ok, type) else ok(v)):
            raise CheckpointError(f"{source}: {key!r} has the wrong type ({type(v).__name__})")
    for key in ("epoch", "global_step", "best_epoch"):
        if state[key] < 0:
            raise CheckpointError(f"{source}: {key!r} must be >= 0, got {state[key]}")
    if state["best_epoch"] > state["epoch"]:
        raise CheckpointError(f"{source}: best_epoch {state['best_epoch']} after epoch {state['epoch']}")
    for key in ("model", "best_model"):
        bad = [k for k, t in state[key].items() if not isinstance(k, str) or not isinstance(t, torch.Tensor)]
        if bad:
            raise CheckpointError(f"{source}: {key!r} must map names to tensors ({bad[0]!r})")
    rows = state["metrics"]
    if len(rows) != state["epoch"] or any(not isinstance(r, dict) or r.get("epoch") != i + 1
                                          for i, r in enumerate(rows)):
        raise CheckpointError(f"{source}: 'metrics' must hold one row per epoch 1 … {state['epoch']}")
    opt = state["optimizer"]
    if not isinstance(opt.get("state"), dict) or not isinstance(opt.get("param_groups"), list) or not all(
            isinstance(g, dict) and isinstance(g.get("params"), list) for g in opt["param_groups"]):
        raise CheckpointError(f"{source}: 'optimizer' must hold 'state' and 'param_groups' with 'params'")
    for i, g in enumerate(opt["param_groups"]):
        for k, v in g.items():
            if k in ("lr", "weight_decay", "momentum", "eps", "dampening", "initial_lr") and not _finite(v):
                raise CheckpointError(f"{source}: optimizer param_groups[{i}].{k} must be a finite number")
            if k == "betas" and not (isinstance(v, tuple | list) and len(v) == 2 and all(map(_finite, v))):
                raise CheckpointError(f"{source}: optimizer param_groups[{i}].betas must be two numbers")
    sch = state["scheduler"]
    for k, v in sch.items():
        ok = (_is_int(v) if k in ("last_epoch", "_step_count", "T_max", "step_size") else
              isinstance(v, list) and all(_finite(x) for x in v) if k in ("base_lrs", "_last_lr") else
              _finite(v) if k in ("gamma", "eta_min") else True)
        if not ok:
            raise CheckpointError(f"{source}: scheduler {k!r} has the wrong type ({type(v).__name__})")
    return state


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return tuple(a.shape) == tuple(b.shape) and a.dtype == b.dtype


def check_against(state: dict[str, Any], model: nn.Module, source: str) -> None:
    """The state's weights and optimiser moments fit ``model`` (shapes, dtypes, parameter indices)."""
    want = model.state_dict()
    for key in ("model", "best_model"):
        sd = state[key]
        if set(sd) != set(want):
            odd = sorted(set(sd) ^ set(want))[0]
            raise CheckpointError(f"{source}: {key!r} does not fit the model (parameter {odd!r})")
        bad = sorted(k for k in sd if not _same(sd[k], want[k]))
        if bad:
            k = bad[0]
            raise CheckpointError(f"{source}: {key}.{k} is {sd[k].dtype} {tuple(sd[k].shape)}, the model "
                                  f"wants {want[k].dtype} {tuple(want[k].shape)}")
    params = list(model.parameters())
    opt = state["optimizer"]
    ids = [i for g in opt["param_groups"] for i in g["params"]]
    if sorted(i for i in ids if _is_int(i)) != list(range(len(params))) or len(ids) != len(params):
        raise CheckpointError(f"{source}: optimizer parameter groups do not name the model's {len(params)} "
                              "parameters")
    for i, moments in opt["state"].items():
        if not _is_int(i) or not 0 <= i < len(params) or not isinstance(moments, dict):
            raise CheckpointError(f"{source}: optimizer state of an unknown parameter {i!r}")
        p = params[i]
        for name, m in moments.items():
            if not isinstance(m, torch.Tensor):
                if isinstance(m, _NUMBER) and not isinstance(m, bool):
                    continue  # e.g. a step count kept as a number
                raise CheckpointError(f"{source}: optimizer state {i}.{name} is a {type(m).__name__}")
            if m.numel() == 1 and m.dim() <= 1 and name == "step":
                continue
            if not _same(m, p.detach()):
                raise CheckpointError(f"{source}: optimizer moment {i}.{name} is {m.dtype} {tuple(m.shape)}, "
                                      f"its parameter is {p.dtype} {tuple(p.shape)}")
