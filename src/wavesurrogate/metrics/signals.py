"""Receiver-signal metrics of Borrel-Jensen et al. (PNAS 2023) for impulse responses, per source×receiver.

Shapes: ``pred`` and ``true`` are ``[N, n_times]``, one row per (source, receiver) pair; every function
returns ``[N]`` in float64, NaN for a pair whose true signal is identically zero.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wavesurrogate.metrics.spatial import _err, rel_l2

__all__ = ["peak_normalised_rmse", "relative_rmse", "mean_relative_error_above"]


def _signals(pred: Tensor, true: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(pred − true, true, max|true|) in float64 for signals ``[N, n_times]``."""
    if pred.ndim != 2:
        raise ValueError(f"signal metrics need [N, n_times] signals, got {list(pred.shape)}")
    e, t = _err(pred, true)
    return e, t, t.abs().amax(dim=1)


def peak_normalised_rmse(pred: Tensor, true: Tensor) -> Tensor:
    """RMSE over time of both signals divided by max|true| of their pair ``[N]`` (dimensionless)."""
    e, _, peak = _signals(pred, true)
    return torch.where(peak > 0, e.pow(2).mean(dim=1).sqrt() / torch.where(peak > 0, peak, 1.0), torch.nan)


def relative_rmse(pred: Tensor, true: Tensor) -> Tensor:
    """``‖p − t‖ / ‖t‖`` over time per pair ``[N]`` (dimensionless; the RMSE ratio, equal to the L2 ratio)."""
    _signals(pred, true)
    return rel_l2(pred, true)


def mean_relative_error_above(pred: Tensor, true: Tensor, db: float = -60.0) -> Tensor:
    """Mean of ``|p − t| / |t|`` over the times where ``|t| ≥ 10^(db/20) · max|t|``, per pair ``[N]``.

    ``db`` (dB re the pair's peak, ≤ 0) keeps the quiet tail, where relative errors explode, out of the mean.
    """
    if not db <= 0:
        raise ValueError(f"mean_relative_error_above: db must be <= 0 (dB re the peak), got {db}")
    e, t, peak = _signals(pred, true)
    mag = t.abs()
    mask = (mag >= 10.0 ** (db / 20.0) * peak[:, None]) & (mag > 0)
    ratio = torch.where(mask, e.abs() / torch.where(mask, mag, 1.0), 0.0)
    count = mask.sum(dim=1)
    return torch.where(count > 0, ratio.sum(dim=1) / count.clamp(min=1), torch.nan)
