"""The FD solver front: FDSolver (one grid, boundary, time axis and order; many runs) and solve_fd."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from wavesurrogate.errors import ConfigError
from wavesurrogate.physics.fd import boundaries, core
from wavesurrogate.physics.fd.numpy import run_numpy
from wavesurrogate.physics.problem import Boundary, Grid, Initial, Problem, Source, TimeAxis
from wavesurrogate.physics.sources import grid_footprint, initial_field, wavelet

BACKENDS = ("devito", "numpy")


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
        self.layout = core.make_layout(grid, boundary, space_order)
        self._devito: Any = None
        self._medium_cache: tuple[np.ndarray, Any] | None = None
        self._source_cache: tuple[Any, Any] | None = None
        self._rest: tuple[np.ndarray, Any] | None = None  # (its wave, (u0, um1)): a run from rest

    @property
    def damped(self) -> bool:
        """Whether a sponge layer is present."""
        return any(p > 0 for p in self.layout.pad)

    def dt(self, velocity: np.ndarray) -> float:
        """Time step in seconds for this velocity (time.dt_s checked against the CFL bound)."""
        return core.choose_dt(self.grid, float(np.max(velocity)), self.space_order, self.time.dt_s)

    def _medium(self, velocity: np.ndarray) -> tuple[float, Any, Any, Any, Any, Any]:
        """(dt, bx, by (solver dtype), damp, abc, (bx, by) in float64) of a velocity, computed once and kept
        while run() gets equal velocities.

        The key is the velocity's values (a copy is kept and compared), so a changed array in place or
        another array with other values is recomputed; equal values give the very same arrays.
        """
        grid, lay, so = self.grid, self.layout, self.space_order
        velocity = np.asarray(velocity)
        if velocity.shape != grid.shape:
            raise ConfigError(f"velocity: shape {velocity.shape} does not match grid (ny, nx) = {grid.shape}")
        cached = self._medium_cache
        if cached is not None and np.array_equal(cached[0], velocity):
            return cached[1]
        velocity = np.asarray(velocity, dtype=np.float64)
        if not np.all(np.isfinite(velocity)) or np.any(velocity <= 0):
            raise ConfigError("velocity: values must be finite and positive")
        dt = self.dt(velocity)
        bx, by = core.face_coefficients(velocity, lay, so, core.operator_scale(grid, dt, so))
        damp = None
        if self.damped:
            c_pad = boundaries.pad_edge(velocity, lay.pad)
            damp = np.zeros(lay.shape, dtype=self.dtype)
            damp[lay.inner] = boundaries.damping_field(c_pad, lay.pad, (grid.dy, grid.dx), *self.sponge)
            damp *= 0.5 * dt
        abc = core.edge_coefficients(velocity, lay, dt, (grid.dy, grid.dx), self.dtype)
        out = (dt, self._cast(bx), self._cast(by), damp, abc, (bx, by))
        self._medium_cache = (velocity.copy(), out)
        return out

    def _source(self, source: Source, dt: float) -> tuple[np.ndarray, np.ndarray, Any]:
        """(dt²·footprint, wavelet samples, injection points) of a source and dt, kept while they repeat."""
        key = (source, dt)
        if self._source_cache is not None and self._source_cache[0] == key:
            return self._source_cache[1]
        footprint = dt**2 * grid_footprint(source, self.grid)
        wave = wavelet(source, np.arange(self.time.n_steps + 1) * dt)
        out = (footprint, wave, core.source_points(footprint))
        self._source_cache = (key, out)
        return out

    def _cast(self, a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(a, dtype=self.dtype)

    def prepare(self, velocity: np.ndarray, source: Source | None = None, initial: Initial | None = None,
                initial_field_: np.ndarray | None = None) -> core.Arrays:
        """Check dt (CFLError) and build the computational arrays of one run.

        What depends on the velocity alone, or on the source and dt alone, is reused from the previous
        call when those are equal (the same arrays, which the devito backend then does not copy again).
        """
        grid, lay, so = self.grid, self.layout, self.space_order
        dt, bx, by, damp, abc, (bx64, by64) = self._medium(velocity)
        footprint, wave, points = self._source(source or Source(), dt)
        at_rest = initial_field_ is None and (initial or Initial()).kind == "zero"
        if at_rest and self._rest is not None and self._rest[0] is wave:
            u0, um1 = self._rest[1]  # never written to by either backend
        else:
            u0 = np.zeros(lay.shape)
            if initial_field_ is not None:
                u0[lay.physical] = initial_field_
            elif not at_rest:
                u0[lay.physical] = initial_field(initial or Initial(), grid, lay.kinds[1])
            core.fill_ghosts(u0, lay)
            um1 = u0.copy()  # u^{-1} = u^0 + dt²/2·(L u^0 + s^0): second-order Taylor step from rest
            if np.any(u0):
                um1[lay.inner] += 0.5 * core.apply_operator(u0, by64, bx64, lay, so)
            um1[lay.physical] += 0.5 * footprint * wave[0]
            core.fill_ghosts(um1, lay)
            u0, um1 = self._cast(u0), self._cast(um1)
            if at_rest:  # depends on the source and dt alone: kept with them
                self._rest = (wave, (u0, um1))
        return core.Arrays(lay, so, by, bx, damp, abc, u0, um1, footprint, wave,
                           self.time.n_steps, self.time.frame_stride, self.time.n_frames, points)

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
    """Solve one problem by finite differences; frames [n_frames, ny, nx] at steps 0, stride, …"""
    solver = FDSolver(problem.grid, problem.boundary, problem.time, problem.space_order, backend, dtype)
    return solver.run(problem.velocity, problem.source, problem.initial, progress=progress)

