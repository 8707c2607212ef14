"""Zone-of-interest (ZOI) FE submodel: the FE solver on a rectangle of the grid, driven on its boundary.

The ZOI boundary gets time-dependent Dirichlet data (the "trace"): the field on the ZOI boundary nodes over
time, from the exact full solve (the error floor) or from a network. Traces list the boundary nodes
counter-clockwise from the ZOI's lower-left corner, each node once (``boundary_indices``), and are given at
``trace_times_s`` (typically the stored frame times); the submodel interpolates them to its step times.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy.interpolate import CubicSpline, RegularGridInterpolator

from wavesurrogate.errors import ConfigError
from wavesurrogate.physics.fe import Element, FESolver, Progress, rectangle_boundary_order, rectangle_mesh
from wavesurrogate.physics.problem import Grid, Problem, Source, TimeAxis
from wavesurrogate.physics.sources import initial_field, mode_shape, source_width, wavelet

TimeInterp = Literal["cubic", "linear"]


@dataclass(frozen=True)
class Zoi:
    """A rectangle of nx × ny grid nodes whose lower-left node is (i0, j0) in full-grid node indices."""

    i0: int
    j0: int
    nx: int
    ny: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """Slices (y, x) of the ZOI nodes in a full-grid array."""
        return slice(self.j0, self.j0 + self.ny), slice(self.i0, self.i0 + self.nx)

    @property
    def n_boundary(self) -> int:
        """Number of boundary nodes, 2·(nx + ny) − 4."""
        return 2 * (self.nx + self.ny) - 4


def check_zoi(grid: Grid, zoi: Zoi) -> None:
    """Raise ConfigError unless the ZOI has ≥ 3 × 3 nodes and lies inside the grid."""
    if zoi.nx < 3 or zoi.ny < 3:
        raise ConfigError(f"zoi: needs at least 3 × 3 nodes, got nx={zoi.nx}, ny={zoi.ny}")
    if zoi.i0 < 0 or zoi.j0 < 0 or zoi.i0 + zoi.nx > grid.nx or zoi.j0 + zoi.ny > grid.ny:
        raise ConfigError(f"zoi: nodes x {zoi.i0}..{zoi.i0 + zoi.nx - 1}, y {zoi.j0}..{zoi.j0 + zoi.ny - 1} "
                          f"leave the grid of {grid.nx} × {grid.ny} nodes")


def zoi_grid(grid: Grid, zoi: Zoi, refine: int = 1) -> Grid:
    """The ZOI's own grid (spacings divided by refine); its origin is (i0·dx, j0·dy) in the full grid."""
    check_zoi(grid, zoi)
    return Grid((zoi.nx - 1) * refine + 1, (zoi.ny - 1) * refine + 1, grid.dx / refine, grid.dy / refine)


def boundary_indices(zoi: Zoi) -> tuple[np.ndarray, np.ndarray]:
    """Full-grid (j, i) of the ZOI boundary nodes, counter-clockwise from the lower-left corner, each once."""
    flat = rectangle_boundary_order(zoi.nx, zoi.ny)
    return zoi.j0 + flat // zoi.nx, zoi.i0 + flat % zoi.nx


def boundary_trace(frames: np.ndarray, zoi: Zoi) -> np.ndarray:
    """Field on the ZOI boundary nodes: frames [n_frames, ny, nx] → [n_frames, n_boundary]."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[1] < zoi.j0 + zoi.ny or frames.shape[2] < zoi.i0 + zoi.nx:
        raise ConfigError(f"boundary_trace: frames of shape {frames.shape} do not contain the ZOI {zoi}")
    jj, ii = boundary_indices(zoi)
    return frames[:, jj, ii]


def interpolate_trace(trace: np.ndarray, trace_times_s: np.ndarray, t_s: np.ndarray,
                      kind: TimeInterp = "cubic") -> np.ndarray:
    """Trace [n_times, n_b] at times t_s (s), not-a-knot cubic spline or linear in time; [len(t), n_b]."""
    trace, tt, t_s = np.asarray(trace, np.float64), np.asarray(trace_times_s, np.float64), np.asarray(t_s)
    if trace.ndim != 2 or tt.shape != (trace.shape[0],):
        raise ConfigError(f"trace: expected [n_times, n_boundary] with {tt.shape} times, got {trace.shape}")
    if tt.size < 2 or np.any(np.diff(tt) <= 0):
        raise ConfigError("trace_times_s: need at least two strictly increasing times")
    span = 1e-9 * (tt[-1] - tt[0])
    if t_s.min() < tt[0] - span or t_s.max() > tt[-1] + span:
        raise ConfigError(f"trace_times_s: the trace covers {tt[0]:.6g}..{tt[-1]:.6g} s but the submodel "
                          f"needs {t_s.min():.6g}..{t_s.max():.6g} s")
    t_s = np.clip(t_s, tt[0], tt[-1])
    if kind == "cubic" and tt.size >= 4:
        return CubicSpline(tt, trace, axis=0)(t_s)
    if kind not in ("cubic", "linear"):
        raise ConfigError(f"time_interp: expected 'cubic' or 'linear', got {kind!r}")
    k = np.clip(np.searchsorted(tt, t_s, side="right") - 1, 0, tt.size - 2)
    w = ((t_s - tt[k]) / (tt[k + 1] - tt[k]))[:, None]
    return (1.0 - w) * trace[k] + w * trace[k + 1]


def refine_trace(trace: np.ndarray, zoi: Zoi, refine: int) -> np.ndarray:
    """Boundary values at the refined ZOI's boundary nodes, linear along the perimeter; [n, n_b·refine]."""
    if refine == 1:
        return trace
    n_fine = zoi.n_boundary * refine
    f = np.arange(n_fine)
    k, w = f // refine, (f % refine) / refine
    return (1.0 - w) * trace[:, k] + w * trace[:, (k + 1) % zoi.n_boundary]


def restrict_problem(problem: Problem, zoi: Zoi, refine: int = 1) -> tuple[Problem, np.ndarray, np.ndarray]:
    """The ZOI problem (Dirichlet walls, source in ZOI coordinates, dt/refine) with its velocity and u0.

    Velocity is bilinear between the coarse nodes when refined; the source keeps the full grid's Gaussian
    width; a point source outside the ZOI is dropped. Returns (problem, velocity [ny, nx], u0 [ny, nx]).
    """
    if int(refine) != refine or refine < 1:
        raise ConfigError(f"refine: must be a positive integer, got {refine}")
    grid = problem.grid
    g = zoi_grid(grid, zoi, refine)
    x0, y0 = zoi.i0 * grid.dx, zoi.j0 * grid.dy
    x, y = x0 + g.x, y0 + g.y
    c = np.asarray(problem.velocity, np.float64)
    if refine == 1:
        c_zoi = c[zoi.slices].copy()
    else:
        interp = RegularGridInterpolator((grid.y, grid.x), c)
        Y, X = np.meshgrid(np.minimum(y, grid.ly), np.minimum(x, grid.lx), indexing="ij")
        c_zoi = interp(np.stack([Y, X], axis=-1))
    src = problem.source
    inside = x0 <= src.x_m <= x0 + g.lx and y0 <= src.y_m <= y0 + g.ly
    if src.kind == "point" and not inside:
        src = Source()
    elif src.kind != "none":
        src = replace(src, x_m=src.x_m - x0, y_m=src.y_m - y0, width_m=source_width(src, grid))
    u0 = _initial_at(problem, x, y) if refine > 1 else initial_field(
        problem.initial, grid, problem.boundary.kind)[zoi.slices]
    t = problem.time
    time = TimeAxis(t.dt_s / refine, t.n_frames, t.frame_stride * refine)
    sub = Problem(g, c_zoi, time, source=src, boundary=replace(problem.boundary, kind="dirichlet", width=0))
    return sub, c_zoi, u0


def _initial_at(problem: Problem, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    init, grid = problem.initial, problem.grid
    X, Y = x[None, :], y[:, None]
    if init.kind == "zero":
        return np.zeros((y.size, x.size))
    if init.kind == "gaussian":
        return init.amplitude * np.exp(-((X - init.x_m) ** 2 + (Y - init.y_m) ** 2) / (2.0 * init.width_m**2))
    kind = "neumann" if problem.boundary.kind == "neumann" else "dirichlet"
    return init.amplitude * mode_shape(grid, init.m, init.n, kind, X, Y)


def exact_trace(problem: Problem, zoi: Zoi, *, element: Element = "p1", dtype: type = np.float64,
                progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full FE solve recording the ZOI boundary at every step: (frames, trace [n_steps + 1, n_b], times s)."""
    check_zoi(problem.grid, zoi)
    solver = FESolver.from_problem(problem, element, dtype)
    frames, trace = solver.solve_problem_recording(problem, *boundary_indices(zoi), progress=progress)
    return frames, trace, np.arange(problem.time.n_steps + 1) * problem.time.dt_s


def solve_zoi(full_problem: Problem, zoi: Zoi, trace: np.ndarray, trace_times_s: np.ndarray, *,
              element: Element = "p1", refine: int = 1, time_interp: TimeInterp = "cubic",
              dtype: type = np.float64, progress: Progress | None = None) -> np.ndarray:
    """FE on the ZOI only, Dirichlet data = trace interpolated to each step; [n_frames, zoi.ny, zoi.nx].

    The submodel steps with full_problem's dt / refine and stores full_problem's frames; with refine > 1 the
    values are returned at the coarse ZOI nodes.
    """
    sub, c_zoi, u0 = restrict_problem(full_problem, zoi, refine)
    trace = np.asarray(trace, np.float64)
    if trace.ndim != 2 or trace.shape[1] != zoi.n_boundary:
        raise ConfigError(f"trace: expected [n_times, {zoi.n_boundary}] for this ZOI, got {trace.shape}")
    g, t = sub.grid, sub.time
    mesh = rectangle_mesh(g.nx, g.ny, g.dx, g.dy, element)
    solver = FESolver(mesh, c_zoi.ravel(), fixed_nodes=rectangle_boundary_order(g.nx, g.ny), dtype=dtype)
    step_times = np.arange(t.n_steps + 1) * t.dt_s
    values = refine_trace(interpolate_trace(trace, trace_times_s, step_times, time_interp), zoi, refine)
    load = solver.source_load(sub.source, sub.source.width_m)
    frames = solver.run(u0.ravel(), t, load=load, source_time=wavelet(sub.source, step_times),
                        dirichlet_values=values, progress=progress)
    return np.ascontiguousarray(frames.reshape(-1, g.ny, g.nx)[:, ::refine, ::refine])
