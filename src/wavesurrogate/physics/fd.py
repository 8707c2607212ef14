"""Finite-difference solver of u_tt = ∇·(c²∇u) + s on a rectangle: leapfrog in time, 2nd/4th order in space.

Discretisation (see docs/solvers.md): u^{n+1} = 2u^n − u^{n−1} + dt²·(D₋(b D₊u) + s^n), with D₊ a staggered
first difference node → face and D₋ = −D₊ᵀ face → node, so the operator K = −D₋ b D₊ is symmetric and the
discrete energy is conserved. 2nd order: D₊u = (u_{i+1} − u_i)/h, b = face mean of c². 4th order:
D₊u = (27(u_{i+1} − u_i) − (u_{i+2} − u_{i−1}))/(24h), b = 4-point cubic interpolation of c² clipped to
the range of its 4 nodes (so 0 < b ≤ max c²). Boundaries are ghost nodes: odd extension with u = 0 on the
edge (Dirichlet) or even extension (Neumann). Absorbing: a sponge η outside the grid adds
η·(u^{n+1} − u^{n−1})/(2dt) to the left-hand side, and its outer edge follows the first-order absorbing
condition (box scheme) with mirror ghosts beyond it.

The computational grid holds, per axis, G ghost nodes, the sponge (absorbing only), the physical nodes,
the sponge and G ghost nodes (G = 1 or 3). Two backends run it: devito (compiled once per shape) and
NumPy (independent reference).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from wavesurrogate.errors import CFLError, ConfigError
from wavesurrogate.physics import boundaries
from wavesurrogate.physics.problem import Boundary, Grid, Initial, Problem, Source, TimeAxis
from wavesurrogate.physics.sources import grid_footprint, initial_field, wavelet

SPACE_ORDERS = (2, 4)
BACKENDS = ("devito", "numpy")
# max over wavenumbers of |symbol of D₊|·h/2: 1 (2nd order), (27 + 1)/24 = 7/6 (4th order)
_SYMBOL_MAX = {2: 1.0, 4: 7.0 / 6.0}
_GHOSTS = {2: 1, 4: 3}
_SOURCE_RTOL = 1e-9  # footprint entries below this fraction of the peak are not injected (devito)

Progress = Callable[[int, int], Any]


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


class FDSolver:
    """Leapfrog FD solver for fixed grid, boundary, time axis and order; run() for many media/sources.

    boundary: one Boundary for all edges or a pair (y axis, x axis). The devito operator is built and
    compiled once on the first run and reused (same shapes, any velocity, source, initial state, dt).
    """

    def __init__(self, grid: Grid, boundary: Boundary | tuple[Boundary, Boundary], time: TimeAxis,
                 space_order: int = 2, backend: str = "devito", dtype: Any = np.float32,
                 sponge: tuple[float, float] = (boundaries.SPONGE_STRENGTH, boundaries.SPONGE_POWER)):
        if backend not in BACKENDS:
            raise ConfigError(f"solver.backend: must be one of {BACKENDS}, got {backend!r}")
        if time.n_frames < 1 or time.frame_stride < 1:
            raise ConfigError("time: n_frames and frame_stride must be ≥ 1")
        self.grid, self.time, self.space_order, self.backend = grid, time, space_order, backend
        self.dtype = np.dtype(dtype)
        self.sponge = sponge
        self.layout = make_layout(grid, boundary, space_order)
        self._devito: Any = None

    @property
    def damped(self) -> bool:
        """Whether a sponge layer is present."""
        return any(p > 0 for p in self.layout.pad)

    def dt(self, velocity: np.ndarray) -> float:
        """Time step in seconds for this velocity (time.dt_s checked against the CFL bound)."""
        return choose_dt(self.grid, float(np.max(velocity)), self.space_order, self.time.dt_s)

    def prepare(self, velocity: np.ndarray, source: Source | None = None, initial: Initial | None = None,
                initial_field_: np.ndarray | None = None) -> Arrays:
        """Check dt (CFLError) and build the computational arrays of one run."""
        grid, lay, so = self.grid, self.layout, self.space_order
        velocity = np.asarray(velocity, dtype=np.float64)
        if velocity.shape != grid.shape:
            raise ConfigError(f"velocity: shape {velocity.shape} does not match grid (ny, nx) = {grid.shape}")
        if not np.all(np.isfinite(velocity)) or np.any(velocity <= 0):
            raise ConfigError("velocity: values must be finite and positive")
        dt = self.dt(velocity)
        bx, by = face_coefficients(velocity, lay, so, operator_scale(grid, dt, so))
        damp = None
        if self.damped:
            c_pad = boundaries.pad_edge(velocity, lay.pad)
            damp = np.zeros(lay.shape, dtype=self.dtype)
            damp[lay.inner] = boundaries.damping_field(c_pad, lay.pad, (grid.dy, grid.dx), *self.sponge)
            damp *= 0.5 * dt
        abc = edge_coefficients(velocity, lay, dt, (grid.dy, grid.dx), self.dtype)
        source = source or Source()
        footprint = dt**2 * grid_footprint(source, grid)
        n_steps = self.time.n_steps
        wave = wavelet(source, np.arange(n_steps + 1) * dt)
        u0 = np.zeros(lay.shape)
        if initial_field_ is not None:
            u0[lay.physical] = initial_field_
        else:
            u0[lay.physical] = initial_field(initial or Initial(), grid, lay.kinds[1])
        fill_ghosts(u0, lay)
        um1 = u0.copy()  # u^{-1} = u^0 + dt²/2·(L u^0 + s^0): second-order Taylor step from rest
        if np.any(u0):
            um1[lay.inner] += 0.5 * apply_operator(u0, by, bx, lay, so)
        um1[lay.physical] += 0.5 * footprint * wave[0]
        fill_ghosts(um1, lay)

        def cast(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.ascontiguousarray(a, dtype=self.dtype)

        return Arrays(lay, so, cast(by), cast(bx), damp, abc, cast(u0), cast(um1), footprint, wave, n_steps,
                      self.time.frame_stride, self.time.n_frames)

    def run(self, velocity: np.ndarray, source: Source | None = None, initial: Initial | None = None, *,
            initial_field: np.ndarray | None = None, progress: Any = None,
            full: bool = False) -> np.ndarray:
        """Frames [n_frames, ny, nx] at steps 0, stride, 2·stride, … (full=True: the computational grid)."""
        arrays = self.prepare(velocity, source, initial, initial_field)
        report = _progress_callback(progress, arrays.n_steps)
        region = None if full else self.layout.physical
        if self.backend == "numpy":
            frames = run_numpy(arrays, report)
            return frames if full else np.ascontiguousarray(frames[(slice(None), *region)])
        if self._devito is None:
            from wavesurrogate.physics.fd_devito import DevitoStepper

            self._devito = DevitoStepper(self.layout, self.space_order, self.dtype, self.damped,
                                         self.time.n_frames)
        return self._devito.run(arrays, report, region)


def _progress_callback(progress: Any, n_steps: int) -> Callable[[int], None] | None:
    """Turn None, a callable(step_done, n_steps) or a rich Progress into callable(step_done)."""
    if progress is None:
        return None
    if hasattr(progress, "add_task") and hasattr(progress, "update"):
        task = progress.add_task("fd", total=n_steps)
        return lambda done: progress.update(task, completed=done)
    return lambda done: progress(done, n_steps)


def run_numpy(a: Arrays, report: Callable[[int], None] | None = None) -> np.ndarray:
    """Reference NumPy time loop; frames on the computational grid [n_frames, Ny, Nx]."""
    lay, so = a.layout, a.space_order
    inner = lay.inner
    dtype = a.u0.dtype
    src = np.zeros(lay.shape, dtype=dtype)
    src[lay.physical] = a.source
    src = src[inner]
    wave = a.wave.astype(dtype)
    frames = np.empty((a.n_frames, *lay.shape), dtype=dtype)
    frames[0] = a.u0
    u_prev, u = a.um1.copy(), a.u0.copy()
    if a.damp is not None:
        d = a.damp[inner]
        num_prev, denom = (1.0 - d).astype(dtype), (1.0 + d).astype(dtype)
    every = max(1, a.n_steps // 100)
    for n in range(a.n_steps):
        lap = apply_operator(u, a.by, a.bx, lay, so) + src * wave[n]
        if a.damp is None:
            u_prev[inner] = 2 * u[inner] - u_prev[inner] + lap
        else:
            u_prev[inner] = (2 * u[inner] - num_prev * u_prev[inner] + lap) / denom
        absorb_edges(u_prev, u, a.abc, lay)
        fill_ghosts(u_prev, lay)
        u_prev, u = u, u_prev
        if (n + 1) % a.stride == 0:
            frames[(n + 1) // a.stride] = u
        if report is not None and ((n + 1) % every == 0 or n + 1 == a.n_steps):
            report(n + 1)
    return frames


def solve_fd(problem: Problem, *, backend: str = "devito", dtype: Any = np.float32,
             progress: Any = None) -> np.ndarray:
    """Solve one problem by finite differences; frames [n_frames, ny, nx] at steps 0, stride, …"""
    solver = FDSolver(problem.grid, problem.boundary, problem.time, problem.space_order, backend, dtype)
    return solver.run(problem.velocity, problem.source, problem.initial, progress=progress)


def discrete_energy(solver: FDSolver, velocity: np.ndarray, u_next: np.ndarray, u: np.ndarray) -> float:
    """Leapfrog energy ½‖(u^{n+1}−u^n)/dt‖² + ½Σ_faces b·D₊u^{n+1}·D₊u^n over the physical grid, in m⁴/s².

    Trapezoid weights at reflecting edges, where ghosts are rebuilt: then this is exactly conserved
    without sources. At absorbing edges only faces whose stencil lies inside the physical grid count.
    """
    grid, lay, so = solver.grid, solver.layout, solver.space_order
    dt = solver.dt(velocity)
    bx, by = face_coefficients(velocity, lay, so)
    phys = lay.physical

    def extend(v: np.ndarray) -> np.ndarray:
        full = np.zeros(lay.shape)
        full[phys] = v
        return fill_ghosts(full, lay)

    a, b = extend(u_next), extend(u)
    wy, wx = np.ones(grid.ny), np.ones(grid.nx)
    for w, kind in ((wy, lay.kinds[0]), (wx, lay.kinds[1])):
        if kind != "absorbing":
            w[0] = w[-1] = 0.5
    kinetic = 0.5 * np.sum(wy[:, None] * wx[None, :] * ((u_next - u) / dt) ** 2)
    pot = _face_potential(a[phys[0]], b[phys[0]], bx[phys[0]], phys[1], grid.dx, wy, so,
                          lay.kinds[1] == "absorbing")
    pot += _face_potential(a[:, phys[1]].T, b[:, phys[1]].T, by[:, phys[1]].T, phys[0], grid.dy, wx, so,
                           lay.kinds[0] == "absorbing")
    return float((kinetic + 0.5 * pot) * grid.dx * grid.dy)


def _face_potential(va: np.ndarray, vb: np.ndarray, bf: np.ndarray, cols: slice, h: float,
                    w_rows: np.ndarray, so: int, absorbing: bool) -> float:
    """Σ_rows w·Σ_faces b·D₊va·D₊vb over the faces between the first and last physical column."""
    lo, hi = cols.start, cols.stop - 1  # physical nodes lo..hi; faces k+½ for k = lo..hi-1
    k = np.arange(lo, hi)
    if absorbing and so == 4:  # keep the faces whose 4-node stencil is physical
        k = k[(k - 1 >= lo) & (k + 2 <= hi)]

    def d(v: np.ndarray) -> np.ndarray:
        if so == 2:
            return (v[:, k + 1] - v[:, k]) / h
        return (27.0 * (v[:, k + 1] - v[:, k]) - (v[:, k + 2] - v[:, k - 1])) / (24.0 * h)

    return float(np.sum(w_rows[:, None] * bf[:, k] * d(va) * d(vb)))
