"""POD floor: the error of the best p-mode linear projection of the training fields onto test fields.

A DeepONet with p basis functions outputs ``sum_k b_k t_k`` (+ a scalar bias): every prediction lies in a
p-dimensional span of trunk functions. The best such span for the training fields (least squares) is that of
their top-p right singular vectors (proper orthogonal decomposition), so its relative L2 on test fields is a
floor the network cannot beat unless its trunk generalises better than the training data's own modes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

__all__ = ["pod_modes", "pod_floor", "pod_floor_curve"]

_EPS = float(torch.finfo(torch.float64).eps)


def _matrix(x: Tensor | np.ndarray, name: str) -> Tensor:
    """``x`` ``[N, ...]`` as a float64 ``[N, D]`` matrix, one flattened sample per row."""
    t = torch.as_tensor(x).detach().to(torch.float64)
    if t.ndim < 2 or t.shape[0] == 0:
        raise ValueError(f"pod: {name} must be [N, ...] with N >= 1 and a sample axis, got {list(t.shape)}")
    return t.reshape(t.shape[0], -1)


def pod_modes(x: Tensor) -> tuple[Tensor, Tensor]:
    """Singular values ``[r]`` (descending, field units), right singular vectors ``[D, r]`` of ``x [N, D]``.

    Only the numerical rank r is kept. When N < D the modes come from the N × N Gram matrix ``x xᵀ`` (eigh:
    cheaper than an SVD of a wide matrix), ``v = xᵀ u / σ``, re-orthonormalised by QR; the Gram matrix squares
    the condition number, so modes with σ < σ_max · sqrt(D · eps) are dropped as noise there. Otherwise
    ``torch.linalg.svd`` and the rank tolerance σ_max · max(N, D) · eps (as ``numpy.linalg.matrix_rank``).
    """
    n, d = x.shape
    if n < d:
        lam, u = torch.linalg.eigh(x @ x.T)
        lam, u = lam.flip(0), u.flip(1)
        keep = lam > max(float(lam[0]), 0.0) * d * _EPS
        sigma = lam[keep].sqrt()
        q, r = torch.linalg.qr(x.T @ (u[:, keep] / sigma))
        return sigma, q * torch.sign(torch.diagonal(r))  # QR keeps the nested spans and (by sign) the vectors
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    keep = s > (float(s[0]) if s.numel() else 0.0) * max(n, d) * _EPS
    return s[keep], vh[keep].T


def pod_floor(
    train: Tensor | np.ndarray, test: Tensor | np.ndarray, ps: Iterable[int], center: bool = False
) -> dict[int, float]:
    """Pooled relative L2 (dimensionless) of ``test`` ``[M, ...]`` projected on the top-p modes of ``train``
    ``[N, ...]``, for each p of ``ps``.

    Uncentred by default, like DeepONet's ``sum_k b_k t_k``; ``center`` subtracts the training mean before the
    decomposition and the projection and adds it back (a p-mode model plus a mean field). A p larger than the
    numerical rank r of the training matrix (see :func:`pod_modes`) is clamped to r: its floor is r's. NaN if
    the test fields are all zero.
    """
    x, y = _matrix(train, "train"), _matrix(test, "test")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"pod: train samples have {x.shape[1]} values, test samples {y.shape[1]}")
    wanted = sorted({int(p) for p in ps})
    if not wanted or wanted[0] < 0:
        raise ValueError(f"pod: ps must be non-negative integers, got {wanted}")
    total = float(y.norm())
    if center:
        mean = x.mean(dim=0)
        x, y = x - mean, y - mean
    _, v = pod_modes(x)
    coeffs = y @ v[:, : min(wanted[-1], v.shape[1])]
    residual, done, out = y.clone(), 0, {}
    for p in wanted:  # residual of the nested projections, computed (not by Pythagoras) to keep exact zeros
        k = min(p, v.shape[1])
        residual -= coeffs[:, done:k] @ v[:, done:k].T
        done = k
        out[p] = float(residual.norm()) / total if total > 0 else math.nan
    return out


def pod_floor_curve(
    train: Tensor | np.ndarray, test: Tensor | np.ndarray, ps: Iterable[int], n_sources: Iterable[int],
    center: bool = False,
) -> dict[int, dict[int, float]]:  # fmt: skip
    """POD floor against the number of training samples: ``{n: pod_floor(train[:n], test, ps)}`` per n."""
    ps, out = list(ps), {}
    for n in n_sources:
        if not 1 <= int(n) <= len(train):
            raise ValueError(f"pod: n_sources entries must be in [1, {len(train)}], got {n}")
        out[int(n)] = pod_floor(train[: int(n)], test, ps, center)
    return out
