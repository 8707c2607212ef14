"""The metric suite the evaluator iterates (as the_well does), split by kind: spatial, spectral, temporal.

A :class:`Metric` is a per-sample function (``fn(pred, true)``; spectral ones also get ``n_spatial_dims``)
and a pooling rule that turns every sample's values into the reported number. Adding a metric is one
function and one line in :data:`METRICS`. Temporal metrics (errors per rollout horizon, divergence) act on
whole rollouts ``[N, H, ...]`` and are listed in :data:`TEMPORAL`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from wavesurrogate.metrics.spatial import max_error, rel_l2, rmse, squared_norms
from wavesurrogate.metrics.spectral import BANDS, frmse
from wavesurrogate.metrics.temporal import diverged_at, rollout_errors

__all__ = ["Metric", "METRICS", "TEMPORAL", "summarise"]

Kind = Literal["spatial", "spectral", "temporal"]


@dataclass(frozen=True)
class Metric:
    """One metric: ``fn`` gives per-sample values ``[N, ...]``, ``pool`` reduces all samples' values."""

    name: str
    kind: Kind
    fn: Callable[..., Any]
    pool: Callable[[Tensor], Any] = lambda v: v


def _nanmean(v: Tensor) -> float | None:
    """Mean of the non-NaN values, None if there are none."""
    finite = v[~torch.isnan(v)]
    return float(finite.mean()) if finite.numel() else None


def _ratio(v: Tensor) -> float | None:
    """sqrt(Σ ‖p − t‖² / Σ ‖t‖²) from per-sample squared norms ``[N, 2]``; None if the truth is all zero."""
    e2, t2 = (float(x) for x in v.sum(dim=0))
    return math.sqrt(e2 / t2) if t2 > 0 else None


def _rms_bands(v: Tensor) -> dict[str, float]:
    """Root of the mean square over samples, per band, by band name."""
    return {name: float(x) for name, x in zip(BANDS, v.pow(2).mean(dim=0).sqrt(), strict=True)}


METRICS: tuple[Metric, ...] = (
    Metric("rel_l2", "spatial", rel_l2, _nanmean),
    Metric("rel_l2_pooled", "spatial", squared_norms, _ratio),
    Metric("rmse", "spatial", rmse, lambda v: float(v.pow(2).mean().sqrt())),  # root of the mean square
    Metric("max_error", "spatial", max_error, lambda v: float(v.max())),
    Metric("frmse", "spectral", frmse, _rms_bands),
    Metric("n_zero_truth", "spatial", rel_l2, lambda v: int(torch.isnan(v).sum())),  # NaN: all-zero truth
)

TEMPORAL: tuple[Metric, ...] = (
    Metric("rollout_errors", "temporal", rollout_errors),
    Metric("diverged_at", "temporal", diverged_at),
)


def summarise(pred_batches: Iterable[Tensor], true_batches: Iterable[Tensor], n_spatial_dims: int = 2,
              metrics: tuple[Metric, ...] = METRICS) -> dict[str, Any]:
    """Every metric of ``metrics`` pooled over batches of samples ``[B, ..., *spatial]`` (field units).

    Returns ``{"n_samples": N, <metric name>: pooled value, ...}`` in the order of ``metrics``.
    """
    values: dict[str, list[Tensor]] = {m.name: [] for m in metrics}
    n = 0
    for p, t in zip(pred_batches, true_batches, strict=True):
        cache: dict[tuple[Callable[..., Any], str], Tensor] = {}
        for m in metrics:
            key = (m.fn, m.kind)
            if key not in cache:  # spectral metrics also get the number of spatial axes
                cache[key] = m.fn(p, t, n_spatial_dims=n_spatial_dims) if m.kind == "spectral" else m.fn(p, t)
            values[m.name].append(cache[key])
        n += int(p.shape[0])
    if n == 0:
        raise ValueError("summarise needs at least one sample")
    return {"n_samples": n, **{m.name: m.pool(torch.cat(values[m.name])) for m in metrics}}
