"""Core of the FD solver of u_tt = ∇·(c²∇u) + s on a rectangle or a box: leapfrog in time, 2nd/4th order in
space, 2-D or 3-D (arrays [(z,) y, x]).

Discretisation (see docs/solvers.md): u^{n+1} = 2u^n − u^{n−1} + dt²·(Σ_axes D₋(b D₊u) + s^n), with D₊ a
staggered first difference node → face and D₋ = −D₊ᵀ face → node, so the operator K = −Σ D₋ b D₊ is
symmetric and the discrete energy is conserved. 2nd order: D₊u = (u_{i+1} − u_i)/h, b = face mean of c².
4th order: D₊u = (27(u_{i+1} − u_i) − (u_{i+2} − u_{i−1}))/(24h), b = 4-point cubic interpolation of c²
clipped to the range of its 4 nodes (so 0 < b ≤ max c²). Walls are set per face (fd.boundaries): ghost
nodes with odd extension and u = 0 on the edge (Dirichlet) or even extension (Neumann, impedance);
absorbing: a sponge η outside the grid adds η·(u^{n+1} − u^{n−1})/(2dt) to the left-hand side, and its
outer edge follows the first-order absorbing condition (box scheme) with mirror ghosts beyond it;
impedance: a damping term on the wall nodes (same closed form). Rigid obstacles: b = 0 on every face
whose stencil touches an obstacle node (no flux: Neumann, and K stays symmetric).

The computational grid holds, per axis, G ghost nodes, the sponge of the low face (absorbing only), the
physical nodes, the sponge of the high face and G ghost nodes (G = 1 or 3). This module holds what both
backends (fd.numpy, fd.devito) need: CFL bound, layout, ghost filling, coefficients and the prepared
arrays of one run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wavesurrogate.errors import CFLError, ConfigError
from wavesurrogate.physics.fd import boundaries
from wavesurrogate.physics.problem import AXES, Boundary, Grid

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
    """Largest stable leapfrog step in seconds: dt ≤ 2/sqrt(λ_max(K)) = 1/(k·c_max·sqrt(Σ_axes 1/h²)).

    λ_max(K) ≤ c_max²·Σ_axes (2k/h)², k = 1 (2nd order) or 7/6 (4th order), reached by the sawtooth mode
    (in 3-D the bound is 1/(k·c·√3) cells for a cube grid).
    """
    _check_order(space_order)
    if not c_max_mps > 0:
        raise ConfigError(f"velocity: maximum must be positive, got {c_max_mps}")
    return 1.0 / (_SYMBOL_MAX[space_order] * c_max_mps * np.sqrt(sum(1.0 / h**2 for h in grid.spacing)))


def choose_dt(grid: Grid, c_max: float, space_order: int, dt_s: float | None = None,
              safety: float = 0.9) -> float:
    """Time step in seconds: safety × the CFL bound, or the explicit dt_s after checking it (CFLError)."""
    bound = cfl_dt_max(grid, c_max, space_order)
    if dt_s is None:
        return safety * bound
    if not dt_s > 0:
        raise ConfigError(f"time.dt_s: must be positive, got {dt_s}")
    if dt_s > bound:
        names = AXES[3 - grid.ndim:][::-1]
        hs = ", ".join(f"d{a} = {h:g} m" for a, h in zip(names, grid.spacing[::-1], strict=True))
        raise CFLError(f"time.dt_s = {dt_s:.6g} s breaks the CFL bound dt ≤ {bound:.6g} s "
                       f"for c_max = {c_max:.6g} m/s (space_order {space_order}, {hs})")
    return float(dt_s)


@dataclass(frozen=True)
class Layout:
    """Where the physical grid sits in the computational grid (ghosts + sponge + physical nodes)."""

    ghost: int
    pads: tuple[tuple[int, int], ...]  # sponge cells per axis (array order), per side (low, high)
    faces: tuple[tuple[str, str], ...]  # wall kind per axis, per side
    physical_shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions."""
        return len(self.physical_shape)

    @property
    def inner_shape(self) -> tuple[int, ...]:
        """Updated nodes (physical + sponge)."""
        return tuple(n + lo + hi for n, (lo, hi) in zip(self.physical_shape, self.pads, strict=True))

    @property
    def shape(self) -> tuple[int, ...]:
        """Computational array shape including ghost nodes."""
        return tuple(m + 2 * self.ghost for m in self.inner_shape)

    @property
    def physical(self) -> tuple[slice, ...]:
        """Slices of the physical grid in the computational array."""
        return tuple(slice(self.ghost + lo, self.ghost + lo + n)
                     for n, (lo, _) in zip(self.physical_shape, self.pads, strict=True))

    @property
    def inner(self) -> tuple[slice, ...]:
        """Slices of the updated nodes in the computational array."""
        return tuple(slice(self.ghost, self.ghost + m) for m in self.inner_shape)

    @property
    def signs(self) -> tuple[tuple[tuple[float, float], tuple[float, float]], ...]:
        """Per axis, per side (low, high): (ghost sign, edge factor)."""
        return tuple(tuple(boundaries.ghost_signs(k) for k in pair) for pair in self.faces)

    def edges(self, axis: int) -> tuple[int, int]:
        """Computational indices of the outer edge nodes (low, high) of the updated region along axis."""
        return self.ghost, self.ghost + self.inner_shape[axis] - 1

    def at(self, axis: int, index: Any) -> tuple[Any, ...]:
        """Index tuple selecting ``index`` along ``axis`` and everything along the other axes."""
        return tuple(index if k == axis else slice(None) for k in range(self.ndim))


def make_layout(grid: Grid, boundary: Boundary | Sequence, space_order: int) -> Layout:
    """Computational layout for a grid and its walls (one Boundary, one per axis, or pairs per axis)."""
    faces = boundaries.walls(boundary, grid.ndim)
    pads = tuple(tuple(b.width if b.kind == "absorbing" else 0 for b in pair) for pair in faces)
    kinds = tuple(tuple(b.kind for b in pair) for pair in faces)
    return Layout(ghost_width(space_order), pads, kinds, grid.shape)


def fill_ghosts(u: np.ndarray, layout: Layout) -> np.ndarray:
    """In place: zero Dirichlet edges and set ghost nodes by odd/even extension; returns u."""
    g, at = layout.ghost, layout.at
    for axis, ((_, e_lo), (_, e_hi)) in enumerate(layout.signs):
        lo, hi = layout.edges(axis)
        u[at(axis, lo)] *= e_lo
        u[at(axis, hi)] *= e_hi
    for k in range(1, g + 1):
        for axis, ((s_lo, _), (s_hi, _)) in enumerate(layout.signs):
            lo, hi = layout.edges(axis)
            u[at(axis, lo - k)] = s_lo * u[at(axis, lo + k)]
            u[at(axis, hi + k)] = s_hi * u[at(axis, hi - k)]
    return u


def edge_coefficients(velocity: np.ndarray, layout: Layout, dt_s: float, spacing: Sequence[float],
                      dtype: Any = np.float64) -> tuple[np.ndarray | None, ...]:
    """Per axis: κ of the outer-edge absorbing condition on its absorbing outer edges (zero elsewhere),
    shape = layout.shape; None for an axis without an absorbing face."""
    g, nd = layout.ghost, layout.ndim
    out: list[np.ndarray | None] = []
    for axis, (pair, h) in enumerate(zip(layout.faces, spacing, strict=True)):
        if "absorbing" not in pair:
            out.append(None)
            continue
        kappa = np.zeros(layout.shape, dtype=dtype)
        for e, side, kind in zip(layout.edges(axis), (0, -1), pair, strict=True):
            if kind != "absorbing":
                continue
            # c on the outer edge: the physical edge plane, edge-replicated along it and mirrored into ghosts
            plane = np.take(velocity, side, axis=axis)
            others = [layout.pads[k] for k in range(nd) if k != axis]
            plane = boundaries.mirror_extend(boundaries.pad_edge(plane, others), g)
            kappa[layout.at(axis, e)] = boundaries.abc_coefficient(plane, dt_s, h)
        out.append(kappa)
    return tuple(out)


def absorb_edges(new: np.ndarray, old: np.ndarray, abc: Sequence[np.ndarray | None], layout: Layout) -> None:
    """In place: outer-edge values of absorbing faces from the box-scheme condition, last axis first."""
    at = layout.at
    for axis in reversed(range(layout.ndim)):
        kappa = abc[axis]
        if kappa is None:
            continue
        lo, hi = layout.edges(axis)
        for e, nb, kind in ((lo, lo + 1, layout.faces[axis][0]), (hi, hi - 1, layout.faces[axis][1])):
            if kind == "absorbing":
                e_, nb_ = at(axis, e), at(axis, nb)
                new[e_] = old[nb_] + kappa[e_] * (old[e_] - new[nb_])


def face_coefficients(velocity: np.ndarray, layout: Layout, space_order: int,
                      scale: Sequence[float] | None = None,
                      obstacles: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """scale · c² at faces in m²/s² per axis (array order), shapes = layout.shape: b[axis] at index k holds
    the face between nodes k and k+1 along axis. Zero where the face's stencil touches an obstacle node
    (``obstacles``: bool on the physical grid)."""
    nd = layout.ndim
    scale = (1.0,) * nd if scale is None else tuple(scale)
    c = boundaries.pad_edge(np.asarray(velocity, dtype=np.float64), layout.pads)
    c2 = boundaries.mirror_extend(c * c, layout.ghost + 2)  # index k ↔ computational k − 2
    mask = None
    if obstacles is not None:
        mask = boundaries.mirror_extend(boundaries.pad_edge(obstacles, layout.pads), layout.ghost + 2)
    shape = layout.shape
    reach = range(4) if space_order == 4 else range(1, 3)

    def near(a: np.ndarray, axis: int, q: int) -> np.ndarray:  # node k − 1 + q of face k, along axis
        return a[tuple(slice(1 + q, n + 1 + q) if k == axis else slice(2, n + 2)
                       for k, n in enumerate(shape))]

    out = []
    for axis, s in enumerate(scale):
        a = [near(c2, axis, q) for q in range(4)]
        if space_order == 2:
            b = (0.5 * s) * (a[1] + a[2])
        else:
            cubic = (s / 16.0) * (9.0 * (a[1] + a[2]) - (a[0] + a[3]))
            lo = s * np.minimum(np.minimum(a[0], a[1]), np.minimum(a[2], a[3]))
            hi = s * np.maximum(np.maximum(a[0], a[1]), np.maximum(a[2], a[3]))
            b = np.clip(cubic, lo, hi)
        if mask is not None:
            blocked = np.zeros(shape, dtype=bool)
            for q in reach:
                blocked |= near(mask, axis, q)
            b[blocked] = 0.0
        out.append(b)
    return tuple(out)


def operator_scale(grid: Grid, dt_s: float, space_order: int) -> tuple[float, ...]:
    """Factors per axis (array order) that turn face c² into the stencil coefficients dt²/h² (/ 24²)."""
    s = 1.0 if space_order == 2 else 1.0 / 576.0
    return tuple(s * dt_s**2 / h**2 for h in grid.spacing)


def apply_operator(u: np.ndarray, b: Sequence[np.ndarray], layout: Layout, space_order: int) -> np.ndarray:
    """dt²·Σ_axes D₋(b D₊u) on the updated nodes, [*inner_shape], from a ghost-filled u and scaled b."""
    g = layout.ghost
    inner = layout.inner

    def along_last(v: np.ndarray, bf: np.ndarray, m: int) -> np.ndarray:
        if space_order == 2:  # faces g-1 .. g+m-1
            f = bf[..., g - 1:g + m] * (v[..., g:g + m + 1] - v[..., g - 1:g + m])
            return f[..., 1:] - f[..., :-1]
        # faces g-2 .. g+m (face k between nodes k and k+1)
        d = (27.0 * (v[..., g - 1:g + m + 2] - v[..., g - 2:g + m + 1])
             - (v[..., g:g + m + 3] - v[..., g - 3:g + m]))
        f = bf[..., g - 2:g + m + 1] * d
        return 27.0 * (f[..., 2:m + 2] - f[..., 1:m + 1]) - (f[..., 3:m + 3] - f[..., 0:m])

    total = None
    for axis in range(layout.ndim):
        idx = tuple(slice(None) if k == axis else inner[k] for k in range(layout.ndim))
        v, bf = np.moveaxis(u[idx], axis, -1), np.moveaxis(b[axis][idx], axis, -1)
        term = np.moveaxis(along_last(v, bf, layout.inner_shape[axis]), -1, axis)
        total = term if total is None else total + term
    return total


@dataclass
class Arrays:
    """Everything a backend needs for one run, on the computational grid (dtype as requested)."""

    layout: Layout
    space_order: int
    b: tuple[np.ndarray, ...]  # per axis: scaled coefficients dt²·c²_face/h² (/576 for 4th order)
    damp: np.ndarray | None  # η·dt/2 (sponge) + the impedance walls' a, None if neither
    abc: tuple[np.ndarray | None, ...]  # per axis: κ of the outer-edge condition
    u0: np.ndarray  # ghost-filled u at step 0
    um1: np.ndarray  # ghost-filled u at step −1 (Taylor)
    source: np.ndarray  # dt²·g(x) on the physical grid, s²/m^d
    wave: np.ndarray  # w(t_n), n = 0 .. n_steps
    n_steps: int
    stride: int
    n_frames: int
    source_points: tuple[np.ndarray, np.ndarray]  # (physical indices [k, ndim], source there [k])
    receivers: np.ndarray | None = None  # physical node indices [n_receivers, ndim] recorded every step


def source_points(source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes of a footprint with a value above SOURCE_RTOL of its peak and their values (what devito
    injects; the NumPy backend adds the dense footprint)."""
    mag = np.abs(source)
    peak = mag.max() if mag.size else 0.0
    pts = np.argwhere(mag > SOURCE_RTOL * peak) if peak > 0 else np.zeros((0, source.ndim), dtype=np.intp)
    return pts, source[tuple(pts.T)]
