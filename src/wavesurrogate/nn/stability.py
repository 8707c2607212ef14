"""Stability diagnostics of autoregressive maps: a rollout's discrete energy, a step's spectral radius.

- ``discrete_energy(frames)`` ``[B, T, ...]`` → ``[B, T−1]``: ``E^n = Σ (u^n)² + Σ (u^n − u^{n−1})²`` (frames
  n = 1 … T−1). ``energy_growth`` = ``max_n E^n / E^{first}``: a rollout of a conservative or absorbing wave
  equation should not exceed ~1; a one-step map with an eigenvalue above 1 makes it grow geometrically.
- ``spectral_radius(fn, x)``: the largest |eigenvalue| of the Jacobian of ``fn`` at ``x`` (per sample of a
  batch; ``fn`` must treat samples independently), from Jacobian-vector products only. Power iteration
  first (``n_power`` steps from a seeded random vector), then an Arnoldi process of ``krylov`` steps from
  the resulting vector, whose Hessenberg matrix's largest |Ritz value| is the estimate. Plain power
  iteration does not converge when the dominant eigenvalues are a complex pair of equal modulus, which is
  the usual case for a wave map (oscillating modes); Arnoldi captures the pair exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["discrete_energy", "energy_growth", "spectral_radius", "jvp"]


def discrete_energy(frames: Tensor) -> Tensor:
    """``[B, T−1]``: ``Σ (u^n)² + Σ (u^n − u^{n−1})²`` over space, n = 1 … T−1 of ``frames [B, T, ...]``."""
    u = frames.double().flatten(2)
    return u[:, 1:].pow(2).sum(-1) + (u[:, 1:] - u[:, :-1]).pow(2).sum(-1)


def energy_growth(frames: Tensor) -> Tensor:
    """``[B]``: ``max_n E^n / E^1`` of ``discrete_energy(frames)`` (inf if E^1 = 0 and energy appears;
    needs T ≥ 2)."""
    e = discrete_energy(frames)
    if e.shape[1] == 0:
        raise ValueError("energy_growth needs at least 2 frames")
    first = e[:, :1]
    ratio = torch.where(first > 0, e / first.clamp_min(1e-300), torch.where(e > 0, torch.inf, 1.0))
    return ratio.amax(dim=1)


def jvp(fn: Callable[[Tensor], Tensor], x: Tensor, v: Tensor) -> Tensor:
    """``J_fn(x) · v`` by forward-mode AD (torch.func), or the double-backward trick where an op lacks it."""
    try:
        return torch.func.jvp(fn, (x,), (v,))[1]
    except (RuntimeError, NotImplementedError):
        return torch.autograd.functional.jvp(fn, x, v)[1]


def spectral_radius(fn: Callable[[Tensor], Tensor], x: Tensor, *, n_power: int = 20, krylov: int = 30,
                    seed: int = 0) -> Tensor:
    """Estimated largest |eigenvalue| ``[B]`` of ``∂fn/∂x`` at ``x`` ``[B, ...]`` (``fn(x)`` has x's shape).

    Deterministic: the start vector comes from ``torch.Generator().manual_seed(seed)``. The Krylov space
    stops early (and is exact) when it becomes invariant.
    """
    x = x.detach()
    b = x.shape[0]
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.device)

    def unit(a: Tensor) -> Tensor:
        return a / a.flatten(1).norm(dim=1).clamp_min(1e-300).view(-1, *[1] * (a.ndim - 1))

    def apply(a: Tensor) -> Tensor:
        return jvp(fn, x, a.to(x.dtype)).detach().double()

    v = unit(v)
    for _ in range(n_power):
        v = unit(apply(v))
    m = max(1, min(krylov, v[0].numel()))
    basis = [v.flatten(1)]
    h = torch.zeros(b, m + 1, m, dtype=torch.float64)
    size = m
    for j in range(m):
        w = apply(basis[j].view_as(x)).flatten(1)
        for _ in range(2):  # classical Gram-Schmidt, twice (re-orthogonalisation)
            for i, q in enumerate(basis):
                c = (w * q).sum(1)
                h[:, i, j] += c.cpu()
                w = w - c[:, None] * q
        nrm = w.norm(dim=1)
        h[:, j + 1, j] = nrm.cpu()
        if bool((nrm <= 1e-12 * h[:, : j + 1, j].abs().amax(1).clamp_min(1e-300).to(nrm.device)).all()):
            size = j + 1
            break
        basis.append(w / nrm.clamp_min(1e-300)[:, None])
    ritz = torch.linalg.eigvals(h[:, :size, :size])
    return ritz.abs().amax(dim=1)
