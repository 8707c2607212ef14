"""The FD solver front: FDSolver (one grid, boundary, time axis and order; many runs) and solve_fd."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from wavesurrogate.errors import ConfigError
from wavesurrogate.physics.fd import boundaries, core
from wavesurrogate.physics.fd.numpy import run_numpy
from wavesurrogate.physics.problem import Boundary, Box, Grid, Initial, Problem, Source, TimeAxis
from wavesurrogate.physics.sources import grid_footprint, initial_field, wavelet

BACKENDS = ("devito", "numpy")


class FDSolver:
    """Leapfrog FD solver for fixed grid, walls, obstacles, time axis and order; run() for many media/sources.

    grid: 2-D or 3-D. boundary: one Boundary for every face, or one entry per axis (array order: (y, x) or
    (z, y, x)), each a Boundary or a pair (low, high) of them. obstacles: rigid boxes (physics.problem.Box).
    The devito operator is built and compiled once on the first run and reused (same shapes, any velocity,
    source, initial state, dt).
    """

    def __init__(self, grid: Grid, boundary: Boundary | Sequence, time: TimeAxis,
                 space_order: int = 2, backend: str = "devito", dtype: Any = np.float32,
                 sponge: tuple[float, float] = (boundaries.SPONGE_STRENGTH, boundaries.SPONGE_POWER),
                 obstacles: Sequence[Box] = ()):
        if backend not in BACKENDS:
            raise ConfigError(f"solver.backend: must be one of {BACKENDS}, got {backend!r}")
        if time.n_frames < 1 or time.frame_stride < 1:
            raise ConfigError("time: n_frames and frame_stride must be ≥ 1")
        self.grid, self.time, self.space_order, self.backend = grid, time, space_order, backend
        self.dtype = np.dtype(dtype)
        self.sponge = sponge
        self.layout = core.make_layout(grid, boundary, space_order)
        self.walls = boundaries.walls(boundary, grid.ndim)
        self.obstacles = boundaries.obstacle_mask(grid, tuple(obstacles))
        self._devito: Any = None
        self._medium_cache: tuple[np.ndarray, Any] | None = None
        self._source_cache: tuple[Any, Any] | None = None
        self._rest: tuple[np.ndarray, Any] | None = None  # (its wave, (u0, um1)): a run from rest

    @property
    def damped(self) -> bool:
        """Whether a sponge layer or an impedance wall is present (the damped update)."""
        return any(p > 0 for pair in self.layout.pads for p in pair) or any(
            k == "impedance" for pair in self.layout.faces for k in pair)

    def dt(self, velocity: np.ndarray) -> float:
        """Time step in seconds for this velocity (time.dt_s checked against the CFL bound)."""
        return core.choose_dt(self.grid, float(np.max(velocity)), self.space_order, self.time.dt_s)

    def _medium(self, velocity: np.ndarray) -> tuple[float, Any, Any, Any, Any]:
        """(dt, b per axis (solver dtype), damp, abc, b in float64) of a velocity, computed once and kept
        while run() gets equal velocities.

        The key is the velocity's values (a copy is kept and compared), so a changed array in place or
        another array with other values is recomputed; equal values give the very same arrays.
        """
        grid, lay, so = self.grid, self.layout, self.space_order
        velocity = np.asarray(velocity)
        if velocity.shape != grid.shape:
            raise ConfigError(f"velocity: shape {velocity.shape} does not match grid {grid.shape}")
        cached = self._medium_cache
        if cached is not None and np.array_equal(cached[0], velocity):
            return cached[1]
        velocity = np.asarray(velocity, dtype=np.float64)
        if not np.all(np.isfinite(velocity)) or np.any(velocity <= 0):
            raise ConfigError("velocity: values must be finite and positive")
        dt = self.dt(velocity)
        b64 = core.face_coefficients(velocity, lay, so, core.operator_scale(grid, dt, so), self.obstacles)
        damp = None
        if self.damped:
            damp = np.zeros(lay.shape, dtype=self.dtype)
            if any(p > 0 for pair in lay.pads for p in pair):
                c_pad = boundaries.pad_edge(velocity, lay.pads)
                damp[lay.inner] = boundaries.damping_field(c_pad, lay.pads, grid.spacing, *self.sponge)
                damp *= 0.5 * dt
            wall = boundaries.impedance_damping(velocity, self.walls, grid.spacing, dt)
            if wall is not None:
                damp[lay.physical] += wall.astype(self.dtype)
        abc = core.edge_coefficients(velocity, lay, dt, grid.spacing, self.dtype)
        out = (dt, tuple(self._cast(b) for b in b64), damp, abc, b64)
        self._medium_cache = (velocity.copy(), out)
        return out

    def _source(self, source: Source, dt: float) -> tuple[np.ndarray, np.ndarray, Any]:
        """(dt²·footprint, wavelet samples, injection points) of a source and dt, kept while they repeat."""
        key = (source, dt)
        if self._source_cache is not None and self._source_cache[0] == key:
            return self._source_cache[1]
        footprint = dt**2 * grid_footprint(source, self.grid)
        if self.obstacles is not None:
            footprint[self.obstacles] = 0.0  # nothing is injected into a rigid obstacle
        wave = wavelet(source, np.arange(self.time.n_steps + 1) * dt)
        out = (footprint, wave, core.source_points(footprint))
        self._source_cache = (key, out)
        return out

    def _cast(self, a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(a, dtype=self.dtype)

    def receiver_nodes(self, receivers: Any) -> np.ndarray:
        """Physical node indices of receivers, int [n, ndim] in array axis order, checked (ConfigError)."""
        idx = np.asarray(receivers)
        nd = self.grid.ndim
        if idx.ndim != 2 or idx.shape[1] != nd or idx.dtype.kind not in "iu" or len(idx) == 0:
            raise ConfigError(f"receivers: need integer node indices [n, {nd}], got shape {idx.shape}")
        if np.any(idx < 0) or np.any(idx >= np.asarray(self.grid.shape)):
            raise ConfigError(f"receivers: a node lies outside the grid {self.grid.shape}")
        if self.obstacles is not None and np.any(self.obstacles[tuple(idx.T)]):
            raise ConfigError("receivers: a node lies inside an obstacle")
        return idx.astype(np.intp)

    def prepare(self, velocity: np.ndarray, source: Source | None = None, initial: Initial | None = None,
                initial_field_: np.ndarray | None = None, receivers: Any = None) -> core.Arrays:
        """Check dt (CFLError) and build the computational arrays of one run.

        What depends on the velocity alone, or on the source and dt alone, is reused from the previous
        call when those are equal (the same arrays, which the devito backend then does not copy again).
        """
        grid, lay, so = self.grid, self.layout, self.space_order
        dt, b, damp, abc, b64 = self._medium(velocity)
        footprint, wave, points = self._source(source or Source(), dt)
        rec = None if receivers is None else self.receiver_nodes(receivers)
        at_rest = initial_field_ is None and (initial or Initial()).kind == "zero"
        if at_rest and self._rest is not None and self._rest[0] is wave:
            u0, um1 = self._rest[1]  # never written to by either backend
        else:
            u0 = np.zeros(lay.shape)
            if initial_field_ is not None:
                u0[lay.physical] = initial_field_
            elif not at_rest:
                u0[lay.physical] = initial_field(initial or Initial(), grid, lay.faces[-1][0])
            if self.obstacles is not None:
                u0[lay.physical][self.obstacles] = 0.0
            core.fill_ghosts(u0, lay)
            um1 = u0.copy()  # u^{-1} = u^0 + dt²/2·(L u^0 + s^0): second-order Taylor step from rest
            if np.any(u0):
                um1[lay.inner] += 0.5 * core.apply_operator(u0, b64, lay, so)
            um1[lay.physical] += 0.5 * footprint * wave[0]
            core.fill_ghosts(um1, lay)
            u0, um1 = self._cast(u0), self._cast(um1)
            if at_rest:  # depends on the source and dt alone: kept with them
                self._rest = (wave, (u0, um1))
        return core.Arrays(lay, so, b, damp, abc, u0, um1, footprint, wave, self.time.n_steps,
                           self.time.frame_stride, self.time.n_frames, points, rec)

    def run(self, velocity: np.ndarray, source: Source | None = None, initial: Initial | None = None, *,
            initial_field: np.ndarray | None = None, progress: Any = None,
            full: bool = False) -> np.ndarray:
        """Frames [n_frames, *grid.shape] at steps 0, stride, 2·stride, … (full=True: the computational
        grid)."""
        return self._run(velocity, source, initial, initial_field, progress, full, None)[0]

    def run_recording(self, velocity: np.ndarray, receivers: Any, source: Source | None = None,
                      initial: Initial | None = None, *, initial_field: np.ndarray | None = None,
                      progress: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(frames [n_frames, *grid.shape], receiver traces [n_steps + 1, n_receivers] at every step
        0 … n_steps): receivers are physical node indices [n, ndim] in array axis order."""
        return self._run(velocity, source, initial, initial_field, progress, False, receivers)

    def _run(self, velocity: np.ndarray, source: Source | None, initial: Initial | None,
             initial_field_: np.ndarray | None, progress: Any, full: bool,
             receivers: Any) -> tuple[np.ndarray, np.ndarray | None]:
        arrays = self.prepare(velocity, source, initial, initial_field_, receivers)
        report = _progress_callback(progress, arrays.n_steps)
        region = None if full else self.layout.physical
        if self.backend == "numpy":
            frames, traces = run_numpy(arrays, report)
            return (frames if full else np.ascontiguousarray(frames[(slice(None), *region)])), traces
        if self._devito is None:
            from wavesurrogate.physics.fd.devito import DevitoStepper

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



def solve_fd(problem: Problem, *, backend: str = "devito", dtype: Any = np.float32,
             progress: Any = None) -> np.ndarray:
    """Solve one problem by finite differences; frames [n_frames, *grid.shape] at steps 0, stride, …"""
    solver = FDSolver(problem.grid, problem.boundary, problem.time, problem.space_order, backend, dtype,
                      obstacles=problem.obstacles)
    return solver.run(problem.velocity, problem.source, problem.initial, progress=progress)

