"""Spectral error (PDEBench-style fRMSE in radial-wavenumber bands) for fields with 1, 2 or 3 spatial axes.

The error of each frame is Fourier transformed over its last ``n_spatial_dims`` axes (``[..., y, x]`` or
``[..., z, y, x]``); each mode has the integer radial wavenumber ``k = floor(sqrt(Σ_d k_d²))`` (``k_d``:
wavelengths across the grid along axis d, as from ``fftfreq(n) * n``). Bands: low ``k < 4``, mid
``4 ≤ k < 12``, high ``k ≥ 12`` (PDEBench's ``iLow = 4``, ``iHigh = 12``).
``fRMSE_band = sqrt(Σ_{modes in band} |ê|² / M²)`` with ``M`` the number of grid points of a frame, averaged
over frames inside the square root, so by Parseval ``low² + mid² + high² = RMSE²`` exactly (unlike PDEBench,
all quadrants/octants and the corners beyond the Nyquist sphere are counted; the corners go to the high band).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["BAND_EDGES", "BANDS", "radial_wavenumber", "frmse"]

BAND_EDGES = (4, 12)
BANDS = ("low", "mid", "high")


def radial_wavenumber(*shape: int) -> Tensor:
    """Integer radial wavenumber ``floor(sqrt(Σ k_d²))`` of each FFT mode of a grid ``shape``, int64."""
    if not shape:
        raise ValueError("radial_wavenumber needs at least one axis length")
    ks = torch.meshgrid(*[torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64) for n in shape], indexing="ij")
    return torch.floor(torch.sqrt(sum(k**2 for k in ks)) + 1e-9).to(torch.int64)


def frmse(pred: Tensor, true: Tensor, edges: tuple[int, int] = BAND_EDGES, n_spatial_dims: int = 2) -> Tensor:
    """Per-sample band-limited RMSE ``[N, 3]`` (low, mid, high; field units) over the last ``n_spatial_dims``
    axes; every axis between the first and those is a frame."""
    d = int(n_spatial_dims)
    if d < 1 or pred.shape != true.shape or pred.ndim < d + 1:
        raise ValueError(f"frmse needs pred and true of the same shape [N, ..., {d} spatial axes]")
    lo, hi = edges
    if not 0 < lo < hi:
        raise ValueError("band edges must satisfy 0 < low < high")
    shape = tuple(pred.shape[-d:])
    e = (pred.detach().to(torch.float64) - true.detach().to(torch.float64)).reshape(pred.shape[0], -1, *shape)
    dims = tuple(range(-d, 0))
    power = torch.fft.fftn(e, dim=dims).abs().pow(2) / float(math.prod(shape)) ** 2  # sums to MSE per frame
    k = radial_wavenumber(*shape)
    masks = (k < lo, (k >= lo) & (k < hi), k >= hi)
    bands = [power[..., m].sum(dim=-1).mean(dim=1) for m in masks]  # band MSE averaged over frames
    return torch.stack(bands, dim=1).sqrt()
