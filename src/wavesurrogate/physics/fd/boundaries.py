"""FD boundary treatment: walls per face, ghost extensions, the absorbing sponge, impedance walls and
rigid obstacles (measured in physics.checks).

The absorbing layer is a sponge u_tt + η(x)·u_t = ∇·(c²∇u) of ``width`` cells outside the physical grid,
velocity extended by edge replication, with a profile η(d) = A·c/L·(d/L)^p (d the distance into the
layer, L its thickness), closed at its outer edge by the first-order (Engquist–Majda) absorbing
condition u_t = c·∂u/∂n discretised by the box scheme.

An impedance wall (real Z, air density ρ) imposes ∂u/∂n = −(ρ/Z)·∂u/∂t (n outward) through a mirror
ghost node corrected by the centred time difference; eliminated from the wall node's update, this is a
damping term a·(u^{n+1} − u^{n−1}) on the wall nodes with a = c²·ρ·dt/(Z·h) (h the spacing normal to the
wall), the same form as the sponge, solved in closed form.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wavesurrogate.errors import ConfigError
from wavesurrogate.physics.problem import Boundary, Box, Grid

# Sponge profile η(d) = SPONGE_STRENGTH·c/L·(d/L)^SPONGE_POWER, tuned with reflection_coefficient().
SPONGE_STRENGTH = 2.0
SPONGE_POWER = 1.0
KINDS = ("dirichlet", "neumann", "absorbing", "impedance")


def walls(boundary: Boundary | Sequence, ndim: int) -> tuple[tuple[Boundary, Boundary], ...]:
    """Per axis (array order), per side (low, high): the Boundary of each face, checked (ConfigError).

    ``boundary``: one Boundary for every face, or one entry per axis ((y, x) or (z, y, x)), each a
    Boundary for both sides or a pair (low, high).
    """
    if isinstance(boundary, Boundary):
        axes = [boundary] * ndim
    else:
        axes = list(boundary)
        if len(axes) != ndim:
            raise ConfigError(f"boundary: need one entry per axis ({ndim}), got {len(axes)}")
    out = []
    for a in axes:
        pair = (a, a) if isinstance(a, Boundary) else tuple(a)
        if len(pair) != 2 or not all(isinstance(b, Boundary) for b in pair):
            raise ConfigError("boundary: an axis takes a Boundary or a pair (low, high) of them")
        for b in pair:
            if b.kind not in KINDS:
                raise ConfigError(f"boundary.kind: unknown {b.kind!r}")
            if b.kind == "absorbing" and b.width < 1:
                raise ConfigError(f"boundary.width: an absorbing layer needs ≥ 1 cell, got {b.width}")
            if b.kind == "impedance" and not (b.impedance_rayl is not None and b.impedance_rayl > 0
                                              and b.rho_kgm3 > 0):
                raise ConfigError("boundary.impedance_rayl: an impedance wall needs Z > 0 and rho_kgm3 > 0")
        out.append(pair)
    return tuple(out)


def ghost_signs(kind: str) -> tuple[float, float]:
    """(ghost sign, edge factor) of a face: odd extension with u = 0 on the edge (Dirichlet) or even
    (mirror) extension (Neumann, impedance (whose wall term is a damping), and the outer edge of an
    absorbing layer, whose edge value the first-order absorbing condition then sets)."""
    return (-1.0, 0.0) if kind == "dirichlet" else (1.0, 1.0)


def abc_coefficient(c_mps: np.ndarray, dt_s: float, h_m: float) -> np.ndarray:
    """κ = (1 − ρ)/(1 + ρ), ρ = c·dt/h, of the box-scheme first-order absorbing condition u_t = ±c·u_n:
    u_edge⁺ = u_next + κ·(u_edge − u_next⁺) (dimensionless)."""
    rho = np.asarray(c_mps) * dt_s / h_m
    return (1.0 - rho) / (1.0 + rho)


def pad_edge(a: np.ndarray, widths: Sequence) -> np.ndarray:
    """Extend an array by widths[axis] cells (an int, or (low, high)) on each side by edge replication."""
    return np.pad(a, [(w, w) if np.ndim(w) == 0 else tuple(w) for w in widths], mode="edge")


def mirror_extend(a: np.ndarray, n: int) -> np.ndarray:
    """Extend an array by n nodes on each side, mirrored about the edge nodes."""
    return np.pad(a, n, mode="reflect")


def _along(axis: int, ndim: int, v: np.ndarray) -> np.ndarray:
    return v.reshape([-1 if k == axis else 1 for k in range(ndim)])


def damping_field(c_padded: np.ndarray, widths: Sequence, spacing: Sequence[float],
                  strength: float = SPONGE_STRENGTH, power: float = SPONGE_POWER) -> np.ndarray:
    """η in 1/s on the padded grid: zero inside, the sum of the sponges of each face outside.

    widths[axis]: an int (both sides) or (low, high) cells; spacing in array axis order.
    """
    eta = np.zeros_like(c_padded, dtype=np.float64)
    for axis, (w, h) in enumerate(zip(widths, spacing, strict=True)):
        lo, hi = (w, w) if np.ndim(w) == 0 else w
        n = c_padded.shape[axis]
        prof = np.zeros(n)
        for width, sl, depth in ((lo, slice(0, lo), np.arange(lo, 0, -1)),
                                 (hi, slice(n - hi, n), np.arange(1, hi + 1))):
            if width:
                thickness = width * h
                prof[sl] = strength / thickness * (depth * h / thickness) ** power
        if lo or hi:
            eta += c_padded * _along(axis, c_padded.ndim, prof)
    return eta


def impedance_damping(velocity: np.ndarray, faces: tuple[tuple[Boundary, Boundary], ...],
                      spacing: Sequence[float], dt_s: float) -> np.ndarray | None:
    """a = c²·ρ·dt/(Z·h) summed over the impedance walls a physical node lies on (shape of velocity;
    dimensionless), or None without impedance walls."""
    out = None
    for axis, (pair, h) in enumerate(zip(faces, spacing, strict=True)):
        for side, b in zip((0, -1), pair, strict=True):
            if b.kind != "impedance":
                continue
            out = np.zeros(velocity.shape) if out is None else out
            idx = tuple(side if k == axis else slice(None) for k in range(velocity.ndim))
            out[idx] += velocity[idx] ** 2 * b.rho_kgm3 * dt_s / (b.impedance_rayl * h)
    return out


def obstacle_mask(grid: Grid, boxes: Sequence[Box]) -> np.ndarray | None:
    """Nodes inside any obstacle box (bool, grid.shape), or None without obstacles (ConfigError for a box
    of the wrong dimension, an empty one, or one that holds no node)."""
    if not boxes:
        return None
    mask = np.zeros(grid.shape, dtype=bool)
    for k, box in enumerate(boxes):
        ranges = (box.y_m, box.x_m) if grid.ndim == 2 else (box.z_m, box.y_m, box.x_m)
        if (grid.ndim == 2 and box.z_m is not None) or any(r is None for r in ranges):
            need = "x_m, y_m" + (", z_m" if grid.ndim == 3 else "")
            raise ConfigError(f"obstacles[{k}]: needs the ranges {need} only")
        sel = []
        for (lo, hi), c, h in zip(ranges, grid.coords, grid.spacing, strict=True):
            if not lo < hi:
                raise ConfigError(f"obstacles[{k}]: needs min < max, got [{lo}, {hi}]")
            sel.append((c >= lo - 1e-9 * h) & (c <= hi + 1e-9 * h))
        inside = np.ones(grid.shape, dtype=bool)
        for axis, s in enumerate(sel):
            inside &= _along(axis, grid.ndim, s)
        if not inside.any():
            raise ConfigError(f"obstacles[{k}]: holds no grid node (smaller than a cell?)")
        mask |= inside
    return mask
