"""Spatial error metrics, per sample, in float64: relative L2, RMSE, max error (any number of spatial dims).

Shapes: ``pred`` and ``true`` are ``[N, ...]``; a *sample* is one index of the first axis, and the per-sample
metrics pool all its other axes (frames, [z,] y, x).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["rel_l2", "pooled_rel_l2", "rmse", "max_error", "squared_norms"]


def _err(pred: Tensor, true: Tensor) -> tuple[Tensor, Tensor]:
    """(pred − true, true) in float64, flattened per sample to ``[N, -1]``."""
    if pred.shape != true.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and true {tuple(true.shape)} differ in shape")
    if pred.ndim < 1 or pred.shape[0] == 0:
        raise ValueError("need at least one sample")
    p = pred.detach().to(torch.float64).reshape(pred.shape[0], -1)
    t = true.detach().to(torch.float64).reshape(true.shape[0], -1)
    return p - t, t


def rel_l2(pred: Tensor, true: Tensor) -> Tensor:
    """Per-sample relative L2 error ``[N]`` (dimensionless); NaN where the true sample is identically zero."""
    e, t = _err(pred, true)
    num, den = e.norm(dim=1), t.norm(dim=1)
    return torch.where(den > 0, num / torch.where(den > 0, den, 1.0), torch.nan)


def pooled_rel_l2(pred: Tensor, true: Tensor) -> float:
    """Relative L2 over all samples together: ``‖p − t‖ / ‖t‖`` of the concatenation (NaN if ‖t‖ = 0)."""
    e, t = _err(pred, true)
    den = float(t.norm())
    return float(e.norm()) / den if den > 0 else math.nan


def rmse(pred: Tensor, true: Tensor) -> Tensor:
    """Per-sample root-mean-square error ``[N]`` (field units)."""
    e, _ = _err(pred, true)
    return e.pow(2).mean(dim=1).sqrt()


def max_error(pred: Tensor, true: Tensor) -> Tensor:
    """Per-sample maximum absolute error ``[N]`` (field units)."""
    e, _ = _err(pred, true)
    return e.abs().amax(dim=1)


def squared_norms(pred: Tensor, true: Tensor) -> Tensor:
    """Per-sample ``(‖p − t‖², ‖t‖²)`` ``[N, 2]`` (field units squared), the parts of a pooled relative L2."""
    e, t = _err(pred, true)
    return torch.stack([e.pow(2).sum(dim=1), t.pow(2).sum(dim=1)], dim=1)
