"""Eigenmodes of the FD solver's spatial operator in a room with rigid walls and obstacles.

The solver advances u^{n+1} = 2u^n − u^{n−1} + dt²·(L u^n + g·w(t_n)) with L = Σ_axes D₋(b D₊·) on the
physical nodes (``core.apply_operator``: the same stencil, face coefficients b = c² (4th order: its clipped
cubic), b = 0 on faces touching an obstacle node). With rigid walls (mirror ghosts) L = W⁻¹A, A symmetric and
W the diagonal trapezoid weights (½ per wall a node lies on, the weights of ``physics.checks``' discrete
energy). The modes solve −Aψ = λWψ, ψᵀWψ = 1, on the nodes outside obstacles (obstacle nodes are inert and
set to 0); λ = ω² in rad²/s². A field is u = Σ_n ψ_n q_n with q_n'' = −λ_n q_n + (ψ_nᵀ W g)·w(t): a point
source couples to mode n through ψ_nᵀWg and a receiver at node r reads ψ_n(r).

L is assembled by probing ``apply_operator`` with (2r+1)^d coloured comb vectors (r the stencil reach), so
it is the solver's own operator entry for entry; the eigenpairs below a cutoff are found by spectral
slicing: shift-invert Lanczos (``scipy.sparse.linalg.eigsh``) at successive shifts σ, each keeping only the
eigenvalues it is guaranteed to have found (those strictly nearer σ than its farthest one), between slice
edges set in gaps of the spectrum; clusters of equal eigenvalues are re-orthonormalised at the end. Each
run starts from a seeded vector (``v0``), so the same room gives the same modes, signs included, whatever
ran before in the process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

from wavesurrogate.errors import ConfigError
from wavesurrogate.physics.fd import core
from wavesurrogate.physics.fd.boundaries import obstacle_mask
from wavesurrogate.physics.problem import Boundary, Box, Grid

__all__ = ["RoomModes", "assemble_operator", "wall_weights", "room_modes"]

MAX_MODES = 20000  # above this a dense eigenvector block no longer fits a workstation's memory


@dataclass(frozen=True)
class RoomModes:
    """Eigenpairs of a room: ``freq_hz [n]`` ascending, ``psi [n_nodes, n]`` (W-orthonormal, float64, zero
    on obstacle nodes, nodes in C order of ``grid.shape``), ``weights [n_nodes]`` (W) and how they were
    found (``slices``: per shift σ (rad²/s²), eigenvalues requested, found and kept)."""

    freq_hz: np.ndarray
    psi: np.ndarray
    weights: np.ndarray
    slices: list[dict[str, Any]]


def wall_weights(shape: tuple[int, ...]) -> np.ndarray:
    """W: the product over axes of ½ on the first and last node (1 elsewhere), shape ``shape``."""
    w = np.ones(shape)
    for axis, n in enumerate(shape):
        line = np.ones(n)
        line[[0, -1]] = 0.5
        w = w * line.reshape([-1 if k == axis else 1 for k in range(len(shape))])
    return w


def assemble_operator(grid: Grid, velocity: np.ndarray, space_order: int = 2,
                      obstacles: tuple[Box, ...] = ()) -> tuple[sp.csr_matrix, np.ndarray | None]:
    """(L as a sparse matrix on all physical nodes (C order, 1/s²), obstacle mask or None): the solver's
    spatial operator with rigid walls, assembled from ``core.apply_operator`` by coloured probing."""
    layout = core.make_layout(grid, Boundary(kind="neumann"), space_order)
    mask = obstacle_mask(grid, obstacles)
    scale = core.operator_scale(grid, 1.0, space_order)  # 1/h² (/576): the operator in 1/s²
    b = core.face_coefficients(velocity, layout, space_order, scale, mask)
    shape, nd = grid.shape, grid.ndim
    reach = 1 if space_order == 2 else 3
    m = 2 * reach + 1
    idx = np.indices(shape).reshape(nd, -1)  # [nd, N]
    colour = np.ravel_multi_index(tuple(i % m for i in idx), (m,) * nd)
    rows, cols, vals = [], [], []
    u = np.zeros(layout.shape)
    for c in range(m**nd):
        u[:] = 0.0
        probe = np.zeros(shape)
        probe.reshape(-1)[colour == c] = 1.0
        u[layout.physical] = probe
        core.fill_ghosts(u, layout)
        y = core.apply_operator(u, b, layout, space_order).reshape(-1)  # no pads: inner = physical
        sel = np.flatnonzero(colour == c)
        for axis in range(nd):
            for d in range(-reach, reach + 1):
                if d == 0 and axis > 0:
                    continue
                at = idx[:, sel].copy()
                at[axis] += d
                ok = (at[axis] >= 0) & (at[axis] < shape[axis])
                r = np.ravel_multi_index(tuple(at[:, ok]), shape)
                rows.append(r)
                cols.append(sel[ok])
                vals.append(y[r])
    L = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(idx.shape[1],) * 2)
    L.eliminate_zeros()
    return L, mask


def _symmetric(L: sp.csr_matrix, w: np.ndarray, keep: np.ndarray) -> sp.csr_matrix:
    """S = −W^½ L W^−½ on the kept nodes, checked symmetric (ConfigError if the stencil is not)."""
    s = np.sqrt(w)
    S = (-(sp.diags(s) @ L @ sp.diags(1.0 / s))).tocsr()[keep][:, keep]
    asym = abs(S - S.T).max() if S.nnz else 0.0
    if asym > 1e-9 * max(abs(S).max(), 1e-300):
        raise ConfigError(f"modes: the rigid-wall operator is not symmetric under the wall weights "
                          f"(relative asymmetry {asym / abs(S).max():.2e})")
    return S


def _cluster_orthonormalise(lam: np.ndarray, vec: np.ndarray, rtol: float = 1e-7
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Drop vectors of a cluster of equal eigenvalues that lie in the span of the others (duplicates found
    by two slices) and orthonormalise the rest."""
    order = np.argsort(lam, kind="stable")
    lam, vec = lam[order], vec[:, order]
    keep_l, keep_v = [], []
    i, scale = 0, max(float(np.max(np.abs(lam))) if lam.size else 1.0, 1.0)
    while i < lam.size:
        j = i + 1
        while j < lam.size and lam[j] - lam[j - 1] <= rtol * scale:
            j += 1
        block = vec[:, i:j]
        if j - i > 1:
            q, r = np.linalg.qr(block)
            good = np.abs(np.diag(r)) > 0.5
            block = q[:, good]
        keep_v.append(block)
        keep_l.append(np.full(block.shape[1], lam[i:j].mean()) if j - i > 1 else lam[i:j])
        i = j
    return np.concatenate(keep_l), np.concatenate(keep_v, axis=1)


def _next_half_width(count: int, hi: float, k: int, ndim: int) -> float:
    """Half-width d of the next slice [hi − 0.3d, hi + 1.7d] expected to hold k eigenvalues, with the
    counting function N(λ) = C·λ^(d/2) (Weyl's law) fitted to the ``count`` eigenvalues below ``hi`` (the
    grid's dispersion makes the density grow faster: the 0.3d overlap absorbs it)."""
    if count < 1 or hi <= 0:
        return hi if hi > 0 else 1.0
    c = count / hi ** (ndim / 2)

    def n(d: float) -> float:
        return c * ((hi + 1.7 * d) ** (ndim / 2) - max(hi - 0.3 * d, 0.0) ** (ndim / 2))

    a, b = 0.0, hi
    while n(b) < k:
        b *= 2.0
    for _ in range(60):
        a, b = (a, 0.5 * (a + b)) if n(0.5 * (a + b)) >= k else (0.5 * (a + b), b)
    return b


def room_modes(grid: Grid, velocity: np.ndarray, cutoff_hz: float, space_order: int = 2,
               obstacles: tuple[Box, ...] = (), per_slice: int = 300, tol: float = 1e-10,
               log: Any = None) -> RoomModes:
    """Every eigenpair of the rigid-wall operator with frequency below ``cutoff_hz`` (see the module), by
    spectral slicing with ``per_slice`` eigenpairs per shift-invert run; ``log(dict)`` gets each slice."""
    real = isinstance(cutoff_hz, int | float | np.integer | np.floating) and not isinstance(cutoff_hz, bool)
    if not real or not np.isfinite(cutoff_hz) or cutoff_hz <= 0:
        raise ConfigError(f"modes: cutoff_hz must be a positive frequency, got {cutoff_hz!r}")
    L, mask = assemble_operator(grid, velocity, space_order, obstacles)
    w = wall_weights(grid.shape).reshape(-1)
    keep = np.ones(w.size, bool) if mask is None else ~mask.reshape(-1)
    S = _symmetric(L, w, keep)
    n = S.shape[0]
    # Weyl's law for the free volume at the fastest speed (the grid's dispersion only adds modes below a
    # frequency): a cutoff that would pass MAX_MODES is refused before any solve, not after hours of slices
    weyl = 4.0 * np.pi / 3.0 * n * float(np.prod(grid.spacing)) * (cutoff_hz / float(np.max(velocity))) ** 3
    if min(n, 0.5 * weyl) > MAX_MODES:
        raise ConfigError(f"modes: about {min(n, int(weyl))} modes below {cutoff_hz:g} Hz on {n} nodes, more "
                          f"than {MAX_MODES}; lower the cutoff")
    lam_cut = (2.0 * np.pi * cutoff_hz) ** 2
    if n <= per_slice + 2:  # a small room: every eigenpair at once (shift-invert needs k < n - 1)
        lam, vec = np.linalg.eigh(S.toarray())
        take = lam < lam_cut
        dense = [{"dense": True, "found": n, "kept": int(take.sum())}]
        return _modes(lam[take], vec[:, take], w, keep, dense)
    k = int(min(per_slice, n - 2))
    lams, vecs, slices = [], [], []
    lo = -np.inf
    rng = np.random.default_rng(0)  # ARPACK's own start vector changes from call to call: seed it (v0)
    top_bound = float(abs(S).sum(axis=1).max())  # Gershgorin: every eigenvalue lies below it
    sigma = -1e-3 * min(lam_cut, top_bound)  # S is singular (the constant mode): shift below 0
    lam_cut = min(lam_cut, 1.001 * top_bound)  # a cutoff above the spectrum: every mode
    while lo < lam_cut:
        if sum(v.shape[1] for v in vecs) > MAX_MODES:
            raise ConfigError(f"modes: more than {MAX_MODES} modes below {cutoff_hz:g} Hz on {n} nodes; "
                              "lower the cutoff")
        lam, vec = eigsh(S, k=k, sigma=sigma, which="LM", tol=tol, v0=rng.standard_normal(n))
        d = float(np.max(np.abs(lam - sigma)))
        guard = 1e-6 * max(abs(sigma) + d, 1.0)
        g_lo, g_hi = sigma - d + guard, sigma + d - guard  # every eigenvalue strictly inside was found
        if g_lo > lo and np.isfinite(lo):  # a hole between slices: shift down and retry
            if log is not None:
                log({"retry_sigma": float(sigma), "guaranteed_from": float(g_lo), "need": float(lo)})
            sigma = lo + 0.7 * d  # lower down the density is lower: the half-width grows, covering lo
            continue
        inside = np.sort(lam[(lam > max(lo, g_lo)) & (lam < g_hi)])
        if g_hi >= lam_cut:
            hi = lam_cut
        else:  # the slice edge in the widest gap of the slice's upper half
            top = inside[inside > sigma + 0.5 * d]
            top = np.concatenate([[sigma + 0.5 * d], top, [g_hi]])
            gap = int(np.argmax(np.diff(top)))
            hi = 0.5 * (top[gap] + top[gap + 1])
        take = (lam >= lo) & (lam < hi) if np.isfinite(lo) else lam < hi
        lams.append(lam[take])
        vecs.append(vec[:, take])
        slices.append({"sigma": float(sigma), "k": k, "found": int(lam.size), "kept": int(take.sum()),
                       "lo_hz": float(np.sqrt(max(lo, 0.0)) / (2 * np.pi)) if np.isfinite(lo) else 0.0,
                       "hi_hz": float(np.sqrt(max(hi, 0.0)) / (2 * np.pi))})
        if log is not None:
            log(slices[-1])
        lo = hi
        sigma = hi + 0.7 * _next_half_width(sum(v.size for v in lams), hi, k, grid.ndim)
    return _modes(np.concatenate(lams), np.concatenate(vecs, axis=1), w, keep, slices)


def _modes(lam: np.ndarray, vec: np.ndarray, w: np.ndarray, keep: np.ndarray, slices: list[dict[str, Any]]
           ) -> RoomModes:
    """RoomModes from eigenpairs of S on the kept nodes (clusters re-orthonormalised, ψ = W^−½ v)."""
    lam, vec = _cluster_orthonormalise(lam, vec)
    psi = np.zeros((w.size, lam.size))
    psi[keep] = vec / np.sqrt(w[keep])[:, None]
    return RoomModes(np.sqrt(np.maximum(lam, 0.0)) / (2 * np.pi), psi, w, slices)
