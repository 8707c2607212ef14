"""What an FD solve costs, measured and extrapolated: per-step cost from two run lengths, and the grid a
room needs at a given f_max (issue 15: time the 2 kHz room solve or extrapolate it from its per-step cost).

Method: one FDSolver per run length n (same grid, walls, obstacles, receivers), timed alternately by
``eval.timing.round_robin`` (one untimed round that compiles and warms, then ``repeats`` rounds); t(n) is
the median CPU time of this process (the solve runs on one thread, so on a loaded shared machine CPU time
is what one free core would take; the median wall times are kept beside it). Per-step cost =
(t(n₂) − t(n₁))/(n₂ − n₁), fixed cost = t(n₁) − n₁·per-step; a solve of N steps is then
``fixed_s + N·per_step_s``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from wavesurrogate.eval.timing import round_robin
from wavesurrogate.physics.fd import FDSolver, choose_dt
from wavesurrogate.physics.problem import Box, Grid, Source, TimeAxis


def room_grid(lengths_m: Sequence[float], f_max_hz: float, c_mps: float = 343.0,
              points_per_wavelength: float = 6.0) -> Grid:
    """The 3-D grid of a box room (x, y, z lengths in m) with h = c/(f_max·ppw) rounded so that each side
    holds a whole number of cells (h slightly smaller along an axis where needed)."""
    h = c_mps / (f_max_hz * points_per_wavelength)
    cells = [max(2, int(np.ceil(length / h))) for length in lengths_m]
    (nx, ny, nz), (dx, dy, dz) = [n + 1 for n in cells], [length / n for length, n in zip(lengths_m, cells,
                                                                                           strict=True)]
    return Grid(nx, ny, dx, dy, nz=nz, dz=dz)


@dataclass(frozen=True)
class StepCost:
    """Measured cost of an FD solve: seconds per step and fixed seconds per call, at ``nodes`` nodes."""

    per_step_s: float
    fixed_s: float
    nodes: int
    steps: tuple[int, ...]  # run lengths timed; the first two give the cost
    seconds: tuple[float, ...]  # median CPU seconds of each run length
    wall_seconds: tuple[float, ...]  # median wall seconds of the same calls
    dt_s: float

    def solve_s(self, n_steps: int) -> float:
        """Extrapolated seconds of a solve of n_steps on the same grid."""
        return self.fixed_s + n_steps * self.per_step_s

    @property
    def node_steps_per_s(self) -> float:
        """Node updates per second."""
        return self.nodes / self.per_step_s

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "node_steps_per_s": self.node_steps_per_s}


def fd_step_cost(grid: Grid, boundary: Any, *, obstacles: Sequence[Box] = (), c_mps: float = 343.0,
                 space_order: int = 2, steps: tuple[int, ...] = (100, 200),
                 receivers: np.ndarray | None = None, freq_hz: float = 250.0, backend: str = "devito",
                 repeats: int = 3) -> StepCost:
    """Per-step and fixed cost of ``FDSolver.run_recording`` on a grid (constant c, a Ricker point source at
    the centre, 2 frames, float32) from runs of steps[0] and steps[1] steps; further run lengths are timed
    in the same rounds (to check the extrapolation)."""
    dt = choose_dt(grid, c_mps, space_order)
    vel = np.full(grid.shape, c_mps)
    src = Source("point", grid.lx / 2, grid.ly / 2, freq_hz, z_m=grid.lz / 2)
    rec = np.array([[n // 3 for n in grid.shape]]) if receivers is None else receivers
    fns = {}
    for n in steps:
        solver = FDSolver(grid, boundary, TimeAxis(dt, 2, n), space_order, backend, np.float32,
                          obstacles=obstacles)
        fns[n] = lambda s=solver: s.run_recording(vel, rec, src)
    times = round_robin(fns, repeats=repeats, warmup=1)
    cpu = tuple(statistics.median(times[n][1]) for n in steps)
    wall = tuple(statistics.median(times[n][0]) for n in steps)
    per_step = (cpu[1] - cpu[0]) / (steps[1] - steps[0])
    return StepCost(per_step, cpu[0] - steps[0] * per_step, int(np.prod(grid.shape)), tuple(steps), cpu,
                    wall, dt)
