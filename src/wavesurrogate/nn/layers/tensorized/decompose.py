"""A posteriori compression of trained dense convolutions: CP-ALS, per-kernel separable factors, HOSVD."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.tensorized.conv import TensorizedConv2d, TensorizedConv3d, TensorizedConvNd
from wavesurrogate.nn.layers.tensorized.recompute import _khatri_rao

__all__ = ["cp_als", "from_dense", "compress_model"]


def _unfold(t: Tensor, mode: int) -> Tensor:
    """Mode-``mode`` unfolding ``[n_mode, prod(others)]`` of ``t`` (batch axes none)."""
    return t.movedim(mode, 0).reshape(t.shape[mode], -1)


def _cp_exact(t: Tensor, rank: int) -> list[Tensor]:
    """Exact CP of ``t`` with ``rank >= prod(shape)/max(shape)`` terms: one per index of the other modes."""
    n = t.ndim
    big = max(range(n), key=lambda m: t.shape[m])
    others = [m for m in range(n) if m != big]
    grid = torch.cartesian_prod(*[torch.arange(t.shape[m]) for m in others]).reshape(-1, len(others))
    terms = grid.shape[0]
    factors = [torch.zeros(t.shape[m], rank, dtype=t.dtype) for m in range(n)]
    for j, m in enumerate(others):
        factors[m][grid[:, j], torch.arange(terms)] = 1.0
    factors[big][:, :terms] = t.movedim(big, -1).reshape(terms, t.shape[big]).t()
    return factors


def cp_als(
    t: Tensor, rank: int, n_iter: int = 300, tol: float = 1e-9, generator: torch.Generator | None = None
) -> list[Tensor]:
    """CP factors ``[n_m, rank]`` of ``t`` by alternating least squares (SVD init, float64), norms balanced.

    Exact without iterating when ``rank >= prod(shape)/max(shape)`` (an upper bound of any tensor's CP rank);
    otherwise stops when the relative error changes by less than ``tol`` between sweeps.
    """
    t = t.detach().to(torch.float64)
    n = t.ndim
    if rank * max(t.shape) >= math.prod(t.shape):
        return _balance(_cp_exact(t, rank))
    factors = []
    for m in range(n):
        u, _, _ = torch.linalg.svd(_unfold(t, m), full_matrices=False)
        f = u[:, :rank]
        if f.shape[1] < rank:
            extra = torch.randn(t.shape[m], rank - f.shape[1], dtype=torch.float64, generator=generator)
            f = torch.cat([f, extra / math.sqrt(t.shape[m])], dim=1)
        factors.append(f)
    unfolded = [_unfold(t, m) for m in range(n)]  # others in increasing order, C order = _khatri_rao's
    norm = torch.linalg.vector_norm(t)
    prev = math.inf
    for _ in range(n_iter):
        for m in range(n):
            others = [factors[j] for j in range(n) if j != m]
            gram = torch.ones(rank, rank, dtype=torch.float64)
            for f in others:
                gram = gram * (f.t() @ f)
            mttkrp = unfolded[m] @ _khatri_rao(others)
            factors[m] = torch.linalg.lstsq(gram, mttkrp.t(), rcond=None).solution.t()
        approx = factors[0] @ _khatri_rao(factors[1:]).t()
        err = float(torch.linalg.vector_norm(unfolded[0] - approx) / norm)
        if abs(prev - err) < tol or err < tol:
            break
        prev = err
    return _balance(factors)


def _balance(factors: list[Tensor]) -> list[Tensor]:
    """Rescale each rank-one term so all its factor columns have the same norm (same product)."""
    norms = torch.stack([torch.linalg.vector_norm(f, dim=0) for f in factors])  # [n, R]
    norms = norms.clamp_min(1e-300)
    target = norms.prod(dim=0) ** (1.0 / len(factors))
    return [f / norms[m] * target for m, f in enumerate(factors)]


def _separable_factors(w: Tensor, rank: int, n_iter: int = 200) -> list[Tensor]:
    """Per-kernel rank-R one-way factors ``[o, i, R, k_d]`` of ``w`` ``[o, i, *k]`` (SVD; 3-D: SVDs + ALS)."""
    w = w.detach().to(torch.float64)
    o, i, *k = w.shape
    if len(k) == 2:
        u, s, vh = torch.linalg.svd(w, full_matrices=False)  # [o,i,k0,m], [o,i,m], [o,i,m,k1]
        m = s.shape[-1]
        sq = s.sqrt()
        y = (u * sq[..., None, :]).transpose(-1, -2)  # [o,i,m,k0]
        x = vh * sq[..., None]  # [o,i,m,k1]
        if rank <= m:
            return [y[:, :, :rank], x[:, :, :rank]]
        zeros = [torch.zeros(o, i, rank - m, kd, dtype=w.dtype) for kd in k]
        return [torch.cat([y, zeros[0]], 2), torch.cat([x, zeros[1]], 2)]
    # 3-D: exact nested SVD (k0 * min(k1, k2) terms), keep the largest, then batched ALS refinement
    u, s, vh = torch.linalg.svd(w.reshape(o, i, k[0], k[1] * k[2]), full_matrices=False)
    mats = (s[..., None] * vh).reshape(o, i, -1, k[1], k[2])  # [o,i,m1,k1,k2]
    u2, s2, vh2 = torch.linalg.svd(mats, full_matrices=False)  # [o,i,m1,k1,m2], [o,i,m1,m2], [o,i,m1,m2,k2]
    m1, m2 = s2.shape[-2], s2.shape[-1]
    f0 = u[..., :, :m1].transpose(-1, -2)[:, :, :, None, :].expand(o, i, m1, m2, k[0])  # [o,i,m1,m2,k0]
    f1 = u2.transpose(-1, -2)  # [o,i,m1,m2,k1]
    f2 = vh2 * s2[..., None]  # [o,i,m1,m2,k2]
    weight = s2.reshape(o, i, m1 * m2)
    fs = [f.reshape(o, i, m1 * m2, -1) for f in (f0, f1, f2)]
    order = torch.argsort(weight, dim=-1, descending=True)[..., :rank]
    fs = [torch.take_along_dim(f, order[..., None], dim=2) for f in fs]
    if fs[0].shape[2] < rank:
        fs = [torch.cat([f, torch.zeros(o, i, rank - f.shape[2], f.shape[3], dtype=w.dtype)], 2) for f in fs]
    if rank < m1 * m2:
        fs = _batched_als3(w, fs, n_iter)
    return _balance_batched(fs)


def _batched_als3(w: Tensor, fs: list[Tensor], n_iter: int) -> list[Tensor]:
    """ALS sweeps of a per-kernel CP of ``w`` ``[o,i,a,b,c]``, factors ``[o,i,R,k]`` (error never grows)."""
    eye = 1e-12 * torch.eye(fs[0].shape[2], dtype=w.dtype)
    unfolded = [w.movedim(2 + m, 2).flatten(3) for m in range(3)]  # [o, i, k_m, prod(other k)]
    for _ in range(n_iter):
        for m in range(3):
            others = [j for j in range(3) if j != m]
            a, b = fs[others[0]], fs[others[1]]
            kr = (a[..., :, None] * b[..., None, :]).flatten(-2)  # [o, i, R, k_a * k_b]
            rhs = kr @ unfolded[m].transpose(-1, -2)  # [o, i, R, k_m]
            gram = (a @ a.transpose(-1, -2)) * (b @ b.transpose(-1, -2))
            fs[m] = torch.linalg.solve(gram + eye, rhs)
    return fs


def _balance_batched(fs: list[Tensor]) -> list[Tensor]:
    """Balance the factor norms of every rank-one term of per-kernel factors ``[o,i,R,k]``."""
    norms = torch.stack([torch.linalg.vector_norm(f, dim=-1) for f in fs]).clamp_min(1e-300)
    target = norms.prod(dim=0) ** (1.0 / len(fs))
    return [f / norms[m][..., None] * target[..., None] for m, f in enumerate(fs)]


def _hosvd(w: Tensor, ranks: Sequence[int]) -> tuple[Tensor, list[Tensor]]:
    """Truncated higher-order SVD: factors ``[n_m, R_m]`` (leading left singular vectors) and the core."""
    w = w.detach().to(torch.float64)
    factors = []
    for m, r in enumerate(ranks):
        u, _, _ = torch.linalg.svd(_unfold(w, m), full_matrices=False)
        f = u[:, :r]
        if f.shape[1] < r:
            f = torch.cat([f, torch.zeros(w.shape[m], r - f.shape[1], dtype=w.dtype)], dim=1)
        factors.append(f)
    core = w
    for f in factors:
        core = torch.tensordot(core, f, dims=([0], [0]))  # contracts mode m; rank axis moves last
    return core, factors


@torch.no_grad()
def from_dense(
    conv: nn.Module,
    rank: Any,
    format: str = "cp",
    *,
    n_iter: int = 300,
    generator: torch.Generator | None = None,
    **kwargs: Any,
) -> TensorizedConvNd:
    """Compress a trained ``nn.Conv2d``/``nn.Conv3d`` (or dense TensorizedConv) a posteriori into ``format``.

    cp: ALS (SVD init; exact construction at rank >= prod(shape)/max(shape)); separable: per-kernel SVD
    (3-D: nested SVD then per-kernel ALS); tucker: HOSVD.
    Exact at full rank (separable ``R = k`` in 2-D, ``R = k0*min(k1,k2)`` in 3-D; tucker ``(out, in, *k)``).
    ``kwargs`` go to the new layer's constructor (e.g. ``channels_last``).
    """
    if isinstance(conv, TensorizedConvNd):
        w, dim, groups = conv.reconstruct(), conv.dim, 1
        padding, padding_mode = conv.padding, conv.padding_mode
    elif isinstance(conv, nn.Conv2d | nn.Conv3d):
        w, dim, groups = conv.weight, conv.weight.ndim - 2, conv.groups
        padding, padding_mode = conv.padding, conv.padding_mode
    else:
        raise ConfigError(f"from_dense: expected nn.Conv2d/nn.Conv3d, got {type(conv).__name__}")
    if groups != 1:
        raise ConfigError(f"from_dense: groups={groups} is not supported")
    cls = TensorizedConv2d if dim == 2 else TensorizedConv3d
    out_ch, in_ch, *k = w.shape
    layer = cls(in_ch, out_ch, tuple(k), stride=conv.stride, padding=padding, dilation=conv.dilation,
                bias=conv.bias is not None, padding_mode=padding_mode, format=format, rank=rank,
                device=w.device, dtype=w.dtype, **kwargs)
    if conv.bias is not None:
        layer.bias.copy_(conv.bias)
    if format == "dense":
        layer.weight.copy_(w)
    elif format == "cp":
        fs = cp_als(w, layer.rank, n_iter=n_iter, generator=generator)
        layer.out_factor.copy_(fs[0])
        layer.in_factor.copy_(fs[1])
        for p, f in zip(layer.spatial_factors, fs[2:], strict=True):
            p.copy_(f)
    elif format == "separable":
        fs = _separable_factors(w, layer.rank, n_iter=min(n_iter, 200))
        for p, f in zip(layer.factors, fs, strict=True):
            p.copy_(f)
    else:
        core, fs = _hosvd(w, layer.rank)
        layer.core.copy_(core)
        layer.out_factor.copy_(fs[0])
        layer.in_factor.copy_(fs[1])
        for p, f in zip(layer.spatial_factors, fs[2:], strict=True):
            p.copy_(f)
    return layer


@torch.no_grad()
def compress_model(dense: nn.Module, target: nn.Module, seed: int = 0) -> nn.Module:
    """``target`` with its tensorized convs ``from_dense`` of ``dense``'s namesakes, other weights copied."""
    tensorized = {n: m for n, m in target.named_modules() if isinstance(m, TensorizedConvNd)}
    rest = {k: v for k, v in dense.state_dict().items() if not any(k.startswith(t + ".") for t in tensorized)}
    try:
        for name, mod in tensorized.items():
            layer = from_dense(dense.get_submodule(name), mod.rank, mod.format,
                               generator=torch.Generator().manual_seed(seed))
            mod.load_state_dict(layer.state_dict())
        got = target.load_state_dict(rest, strict=False)
    except (AttributeError, RuntimeError) as exc:
        why = str(exc).splitlines()[-1].strip()
        raise ConfigError(f"compress_model: architectures differ ({why})") from None
    left = [k for k in got.missing_keys if not any(k.startswith(t + ".") for t in tensorized)]
    if got.unexpected_keys or left:
        raise ConfigError(f"compress_model: architectures differ ({(got.unexpected_keys + left)[0]})")
    return target
