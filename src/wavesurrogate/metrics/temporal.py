"""Temporal metrics of autoregressive rollouts ``[N, H, ...]``: errors per horizon, the divergence point."""

from __future__ import annotations

import math

from torch import Tensor

from wavesurrogate.metrics.spatial import max_error, pooled_rel_l2, rmse

__all__ = ["DIVERGENCE_THRESHOLD", "rollout_errors", "diverged_at"]

DIVERGENCE_THRESHOLD = 1e3  # relative L2 above this counts as a diverged rollout


def rollout_errors(pred: Tensor, true: Tensor) -> dict[str, list[float]]:
    """Errors per horizon of rollouts ``[N, H, ...]``: pooled relative L2, RMSE, max error, each ``[H]``."""
    if pred.shape != true.shape or pred.ndim < 2:
        raise ValueError("rollout_errors needs pred and true of the same shape [N, H, ...]")
    out: dict[str, list[float]] = {"rel_l2": [], "rmse": [], "max_error": []}
    for h in range(pred.shape[1]):
        p, t = pred[:, h], true[:, h]
        out["rel_l2"].append(pooled_rel_l2(p, t))
        out["rmse"].append(float(rmse(p, t).pow(2).mean().sqrt()))
        out["max_error"].append(float(max_error(p, t).max()))
    return out


def diverged_at(errors: dict[str, list[float]], threshold: float = DIVERGENCE_THRESHOLD) -> int | None:
    """First horizon (1-based) with a non-finite RMSE or relative L2 > ``threshold``; None if bounded.

    A NaN relative error caused by an all-zero true frame is not divergence.
    """
    for h, (r, e) in enumerate(zip(errors["rel_l2"], errors["rmse"], strict=True), start=1):
        if not math.isfinite(e) or (math.isfinite(r) and r > threshold) or r == math.inf:
            return h
    return None
