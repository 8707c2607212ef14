"""Core of the FD solver of u_tt = ∇·(c²∇u) + s on a rectangle: leapfrog in time, 2nd/4th order in space.

Discretisation (see docs/solvers.md): u^{n+1} = 2u^n − u^{n−1} + dt²·(D₋(b D₊u) + s^n), with D₊ a staggered
first difference node → face and D₋ = −D₊ᵀ face → node, so the operator K = −D₋ b D₊ is symmetric and the
discrete energy is conserved. 2nd order: D₊u = (u_{i+1} − u_i)/h, b = face mean of c². 4th order:
D₊u = (27(u_{i+1} − u_i) − (u_{i+2} − u_{i−1}))/(24h), b = 4-point cubic interpolation of c² clipped to
the range of its 4 nodes (so 0 < b ≤ max c²). Boundaries are ghost nodes: odd extension with u = 0 on the
edge (Dirichlet) or even extension (Neumann). Absorbing: a sponge η outside the grid adds
η·(u^{n+1} − u^{n−1})/(2dt) to the left-hand side, and its outer edge follows the first-order absorbing
condition (box scheme) with mirror ghosts beyond it.

The computational grid holds, per axis, G ghost nodes, the sponge (absorbing only), the physical nodes,
the sponge and G ghost nodes (G = 1 or 3). This module holds what both backends (fd.numpy, fd.devito)
need: CFL bound, layout, ghost filling, coefficients and the prepared arrays of one run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from wavesurrogate.errors import CFLError, ConfigError
from wavesurrogate.physics.fd import boundaries
from wavesurrogate.physics.problem import Boundary, Grid

SPACE_ORDERS = (2, 4)
# max over wavenumbers of |symbol of D₊|·h/2: 1 (2nd order), (27 + 1)/24 = 7/6 (4th order)
_SYMBOL_MAX = {2: 1.0, 4: 7.0 / 6.0}
_GHOSTS = {2: 1, 4: 3}
SOURCE_RTOL = 1e-9  # footprint entries below this fraction of the peak are not injected (devito)


def ghost_width(space_order: int) -> int:
    """Number of ghost nodes per side the stencil needs (1 for 2nd order, 3 for 4th order)."""
    _check_order(space_order)
    return _GHOSTS[space_order]


def _check_order(space_order: int) -> None:
    if space_order not in SPACE_ORDERS:
        raise ConfigError(f"space_order: must be one of {SPACE_ORDERS}, got {space_order}")


def cfl_dt_max(grid: Grid, c_max_mps: float, space_order: int) -> float:
    """Largest stable leapfrog step in seconds: dt ≤ 2/sqrt(λ_max(K)) = 1/(k·c_max·sqrt(1/dx² + 1/dy²)).

    λ_max(K) ≤ c_max²·Σ_axes (2k/h)², k = 1 (2nd order) or 7/6 (4th order), reached by the sawtooth mode.
    """
    _check_order(space_order)
    if not c_max_mps > 0:
        raise ConfigError(f"velocity: maximum must be positive, got {c_max_mps}")
    return 1.0 / (_SYMBOL_MAX[space_order] * c_max_mps * np.sqrt(1.0 / grid.dx**2 + 1.0 / grid.dy**2))


def choose_dt(grid: Grid, c_max: float, space_order: int, dt_s: float | None = None,
              safety: float = 0.9) -> float:
    """Time step in seconds: safety × the CFL bound, or the explicit dt_s after checking it (CFLError)."""
    bound = cfl_dt_max(grid, c_max, space_order)
    if dt_s is None:
        return safety * bound
    if not dt_s > 0:
        raise ConfigError(f"time.dt_s: must be positive, got {dt_s}")
    if dt_s > bound:
        raise CFLError(f"time.dt_s = {dt_s:.6g} s breaks the CFL bound dt ≤ {bound:.6g} s "
                       f"for c_max = {c_max:.6g} m/s (space_order {space_order}, dx = {grid.dx:g} m, "
                       f"dy = {grid.dy:g} m)")
    return float(dt_s)


@dataclass(frozen=True)
class Layout:
    """Where the physical grid sits in the computational grid (ghosts + sponge + physical nodes)."""

    ghost: int
    pad: tuple[int, int]  # sponge cells per side (y, x)
    kinds: tuple[str, str]  # boundary kind per axis (y, x)
    physical_shape: tuple[int, int]

    @property
    def inner_shape(self) -> tuple[int, int]:
        """Updated nodes (physical + sponge), [y, x]."""
        return tuple(n + 2 * p for n, p in zip(self.physical_shape, self.pad, strict=True))

    @property
    def shape(self) -> tuple[int, int]:
        """Computational array shape including ghost nodes, [y, x]."""
        return tuple(m + 2 * self.ghost for m in self.inner_shape)

    @property
    def physical(self) -> tuple[slice, slice]:
        """Slices of the physical grid in the computational array."""
        return tuple(slice(self.ghost + p, self.ghost + p + n)
                     for n, p in zip(self.physical_shape, self.pad, strict=True))

    @property
    def inner(self) -> tuple[slice, slice]:
        """Slices of the updated nodes in the computational array."""
        return tuple(slice(self.ghost, self.ghost + m) for m in self.inner_shape)

    @property
    def signs(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Per axis (y, x): (ghost sign, edge factor)."""
        return tuple(boundaries.ghost_signs(k) for k in self.kinds)


def make_layout(grid: Grid, boundary: Boundary | tuple[Boundary, Boundary], space_order: int) -> Layout:
    """Computational layout for a grid and a boundary (one for all edges, or per axis (y, x))."""
    axes = boundary if isinstance(boundary, tuple) else (boundary, boundary)
    for b in axes:
        if b.kind not in ("dirichlet", "neumann", "absorbing"):
            raise ConfigError(f"boundary.kind: unknown {b.kind!r}")
        if b.kind == "absorbing" and b.width < 1:
            raise ConfigError(f"boundary.width: an absorbing layer needs ≥ 1 cell, got {b.width}")
    pad = tuple(b.width if b.kind == "absorbing" else 0 for b in axes)
    return Layout(ghost_width(space_order), pad, tuple(b.kind for b in axes), grid.shape)


def fill_ghosts(u: np.ndarray, layout: Layout) -> np.ndarray:
    """In place: zero Dirichlet edges and set ghost nodes by odd/even extension; returns u."""
    g = layout.ghost
    (sy, ey), (sx, ex) = layout.signs
    my, mx = layout.inner_shape
    lo_y, hi_y, lo_x, hi_x = g, g + my - 1, g, g + mx - 1
    u[lo_y] *= ey
    u[hi_y] *= ey
    u[:, lo_x] *= ex
    u[:, hi_x] *= ex
    for k in range(1, g + 1):
        u[lo_y - k] = sy * u[lo_y + k]
        u[hi_y + k] = sy * u[hi_y - k]
        u[:, lo_x - k] = sx * u[:, lo_x + k]
        u[:, hi_x + k] = sx * u[:, hi_x - k]
    return u


def edge_coefficients(velocity: np.ndarray, layout: Layout, dt_s: float, spacing: tuple[float, float],
                      dtype: Any = np.float64) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per axis (y, x): κ of the outer-edge absorbing condition on its two outer edges (zero elsewhere),
    shape = layout.shape; None for a reflecting axis."""
    g = layout.ghost
    out: list[np.ndarray | None] = []
    for axis, (kind, h) in enumerate(zip(layout.kinds, spacing, strict=True)):
        if kind != "absorbing":
            out.append(None)
            continue
        kappa = np.zeros(layout.shape, dtype=dtype)
        m = layout.inner_shape[axis]
        for e, side in ((g, 0), (g + m - 1, -1)):
            # c on the outer edge: the physical edge line, edge-replicated along it and mirrored into ghosts
            line = velocity[:, side] if axis == 1 else velocity[side, :]
            other = 1 - axis
            line = np.pad(np.pad(line, layout.pad[other], mode="edge"), g, mode="reflect")
            idx = (slice(None), e) if axis == 1 else (e, slice(None))
            kappa[idx] = boundaries.abc_coefficient(line, dt_s, h)
        out.append(kappa)
    return out[0], out[1]


def absorb_edges(new: np.ndarray, old: np.ndarray, abc: tuple[np.ndarray | None, np.ndarray | None],
                 layout: Layout) -> None:
    """In place: outer-edge values of absorbing axes from the box-scheme condition, x edges then y edges."""
    g = layout.ghost
    my, mx = layout.inner_shape
    kx, ky = abc[1], abc[0]
    if kx is not None:
        for e, nb in ((g, g + 1), (g + mx - 1, g + mx - 2)):
            new[:, e] = old[:, nb] + kx[:, e] * (old[:, e] - new[:, nb])
    if ky is not None:
        for e, nb in ((g, g + 1), (g + my - 1, g + my - 2)):
            new[e] = old[nb] + ky[e] * (old[e] - new[nb])


def face_coefficients(velocity: np.ndarray, layout: Layout, space_order: int,
                      scale: tuple[float, float] = (1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """scale · c² at faces in m²/s², shapes = layout.shape: bx[j, i] at (j, i+½), by[j, i] at (j+½, i)."""
    c = boundaries.pad_edge(np.asarray(velocity, dtype=np.float64), layout.pad)
    c2 = boundaries.mirror_extend(c * c, layout.ghost + 2)  # index k ↔ computational k − 2
    ny, nx = layout.shape

    def faces(a: list[np.ndarray], s: float) -> np.ndarray:  # a = c² at nodes k−1, k, k+1, k+2 of face k+½
        if space_order == 2:
            return (0.5 * s) * (a[1] + a[2])
        cubic = (s / 16.0) * (9.0 * (a[1] + a[2]) - (a[0] + a[3]))
        lo = s * np.minimum(np.minimum(a[0], a[1]), np.minimum(a[2], a[3]))
        hi = s * np.maximum(np.maximum(a[0], a[1]), np.maximum(a[2], a[3]))
        return np.clip(cubic, lo, hi)

    rows, cols = slice(2, ny + 2), slice(2, nx + 2)
    bx = faces([c2[rows, 1 + k:nx + 1 + k] for k in range(4)], scale[1])
    by = faces([c2[1 + k:ny + 1 + k, cols] for k in range(4)], scale[0])
    return bx, by


def operator_scale(grid: Grid, dt_s: float, space_order: int) -> tuple[float, float]:
    """Factors (y, x) that turn face c² into the stencil coefficients dt²/h² (/ 24² for 4th order)."""
    s = 1.0 if space_order == 2 else 1.0 / 576.0
    return s * dt_s**2 / grid.dy**2, s * dt_s**2 / grid.dx**2


def apply_operator(u: np.ndarray, by: np.ndarray, bx: np.ndarray, layout: Layout,
                   space_order: int) -> np.ndarray:
    """dt²·D₋(b D₊u) on the updated nodes, [my, mx], from a ghost-filled u and scaled coefficients."""
    g = layout.ghost
    my, mx = layout.inner_shape
    iy, ix = layout.inner

    def along_x(v: np.ndarray, b: np.ndarray, m: int) -> np.ndarray:
        if space_order == 2:  # faces g-1 .. g+m-1
            f = b[:, g - 1:g + m] * (v[:, g:g + m + 1] - v[:, g - 1:g + m])
            return f[:, 1:] - f[:, :-1]
        # faces g-2 .. g+m (face k between nodes k and k+1)
        d = 27.0 * (v[:, g - 1:g + m + 2] - v[:, g - 2:g + m + 1]) - (v[:, g:g + m + 3] - v[:, g - 3:g + m])
        f = b[:, g - 2:g + m + 1] * d
        return 27.0 * (f[:, 2:m + 2] - f[:, 1:m + 1]) - (f[:, 3:m + 3] - f[:, 0:m])

    lx = along_x(u[iy], bx[iy], mx)
    ly = along_x(u[:, ix].T, by[:, ix].T, my).T
    return lx + ly


@dataclass
class Arrays:
    """Everything a backend needs for one run, on the computational grid (dtype as requested)."""

    layout: Layout
    space_order: int
    by: np.ndarray  # scaled coefficients dt²·c²_face/h² (/576 for 4th order)
    bx: np.ndarray
    damp: np.ndarray | None  # η·dt/2, None if no sponge
    abc: tuple[np.ndarray | None, np.ndarray | None]  # per axis (y, x): κ of the outer-edge condition
    u0: np.ndarray  # ghost-filled u at step 0
    um1: np.ndarray  # ghost-filled u at step −1 (Taylor)
    source: np.ndarray  # dt²·g(x) on the physical grid [ny, nx], s²/m²
    wave: np.ndarray  # w(t_n), n = 0 .. n_steps
    n_steps: int
    stride: int
    n_frames: int
    source_points: tuple[np.ndarray, np.ndarray]  # (physical [y, x] indices [k, 2], source there [k])


def source_points(source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes of a footprint with a value above SOURCE_RTOL of its peak and their values (what devito
    injects; the NumPy backend adds the dense footprint)."""
    mag = np.abs(source)
    peak = mag.max() if mag.size else 0.0
    pts = np.argwhere(mag > SOURCE_RTOL * peak) if peak > 0 else np.zeros((0, 2), dtype=np.intp)
    return pts, source[pts[:, 0], pts[:, 1]]

