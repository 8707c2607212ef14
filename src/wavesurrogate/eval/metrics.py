"""Error metrics, split by kind (as the_well does): spatial, spectral, temporal. All computed in float64.

Shapes: ``pred`` and ``true`` are ``[N, ..., ny, nx]``; a *sample* is one index of the first axis, and the
per-sample metrics pool all its other axes (frames, y, x).

- spatial: relative L2 ``‖p − t‖₂ / ‖t‖₂``, RMSE ``sqrt(mean (p − t)²)``, max error ``max |p − t|``;
- spectral (PDEBench-style fRMSE): the error of each 2-D frame is Fourier transformed over (y, x); each
  mode has the integer radial wavenumber ``k = floor(sqrt(ky² + kx²))`` (``kx``, ``ky``: wavelengths across
  the grid, as from ``fftfreq(n) * n``). Bands: low ``k < 4``, mid ``4 ≤ k < 12``, high ``k ≥ 12`` (PDEBench's
  ``iLow = 4``, ``iHigh = 12``). ``fRMSE_band = sqrt(Σ_{modes in band} |ê|² / (ny nx)²)`` averaged over frames
  inside the square root, so by Parseval ``low² + mid² + high² = RMSE²`` exactly (unlike PDEBench, all
  quadrants and the corners beyond the Nyquist circle are counted; the corners go to the high band);
- temporal: errors of an autoregressive rollout at each horizon, pooled over samples, and the first
  horizon where the rollout diverged (non-finite, or relative L2 above a threshold).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "BAND_EDGES",
    "BANDS",
    "DIVERGENCE_THRESHOLD",
    "rel_l2",
    "pooled_rel_l2",
    "rmse",
    "max_error",
    "radial_wavenumber",
    "frmse",
    "rollout_errors",
    "diverged_at",
]

BAND_EDGES = (4, 12)
BANDS = ("low", "mid", "high")
DIVERGENCE_THRESHOLD = 1e3  # relative L2 above this counts as a diverged rollout


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
    """Per-sample relative L2 error ``[N]``; NaN where the true sample is identically zero."""
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


def radial_wavenumber(ny: int, nx: int) -> Tensor:
    """Integer radial wavenumber ``floor(sqrt(ky² + kx²))`` of each FFT mode, ``[ny, nx]`` int64."""
    ky = torch.fft.fftfreq(ny, d=1.0 / ny, dtype=torch.float64)
    kx = torch.fft.fftfreq(nx, d=1.0 / nx, dtype=torch.float64)
    k = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    return torch.floor(k + 1e-9).to(torch.int64)


def frmse(pred: Tensor, true: Tensor, edges: tuple[int, int] = BAND_EDGES) -> Tensor:
    """Per-sample band-limited RMSE ``[N, 3]`` (low, mid, high) over the last two axes (y, x)."""
    if pred.shape != true.shape or pred.ndim < 3:
        raise ValueError("frmse needs pred and true of the same shape [N, ..., ny, nx]")
    lo, hi = edges
    if not 0 < lo < hi:
        raise ValueError("band edges must satisfy 0 < low < high")
    ny, nx = pred.shape[-2:]
    e = (pred.detach().to(torch.float64) - true.detach().to(torch.float64)).reshape(pred.shape[0], -1, ny, nx)
    power = torch.fft.fft2(e).abs().pow(2) / float(ny * nx) ** 2  # [N, frames, ny, nx], sums to MSE per frame
    k = radial_wavenumber(ny, nx)
    masks = (k < lo, (k >= lo) & (k < hi), k >= hi)
    bands = [power[..., m].sum(dim=-1).mean(dim=1) for m in masks]  # band MSE averaged over frames
    return torch.stack(bands, dim=1).sqrt()


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
