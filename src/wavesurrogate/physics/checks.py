"""Measurements on solver output: the FD discrete energy and the reflection of the absorbing layer."""

from __future__ import annotations

import numpy as np

from wavesurrogate.physics.fd import FDSolver, cfl_dt_max
from wavesurrogate.physics.fd.boundaries import SPONGE_POWER, SPONGE_STRENGTH
from wavesurrogate.physics.fd.core import face_coefficients, fill_ghosts
from wavesurrogate.physics.problem import Boundary, Grid, TimeAxis


def discrete_energy(solver: FDSolver, velocity: np.ndarray, u_next: np.ndarray, u: np.ndarray) -> float:
    """Leapfrog energy ½‖(u^{n+1}−u^n)/dt‖² + ½Σ_faces b·D₊u^{n+1}·D₊u^n over the physical grid, in
    m^(d+2)/s² (d = 2 or 3).

    Trapezoid weights at reflecting faces, where ghosts are rebuilt: then this is exactly conserved
    without sources (obstacle faces carry b = 0). At absorbing faces only faces whose stencil lies inside
    the physical grid count.
    """
    grid, lay, so = solver.grid, solver.layout, solver.space_order
    nd = grid.ndim
    dt = solver.dt(velocity)
    b = face_coefficients(velocity, lay, so, obstacles=solver.obstacles)
    phys = lay.physical

    def extend(v: np.ndarray) -> np.ndarray:
        full = np.zeros(lay.shape)
        full[phys] = v
        return fill_ghosts(full, lay)

    ua, ub = extend(u_next), extend(u)
    weights = []
    for n, pair in zip(grid.shape, lay.faces, strict=True):
        w = np.ones(n)
        for side, kind in zip((0, -1), pair, strict=True):
            if kind != "absorbing":
                w[side] = 0.5
        weights.append(w)

    def weight(skip: int | None = None) -> np.ndarray:
        out = np.ones([1] * nd)
        for k, w in enumerate(weights):
            if k != skip:
                out = out * w.reshape([-1 if i == k else 1 for i in range(nd)])
        return out

    kinetic = 0.5 * np.sum(weight() * ((u_next - u) / dt) ** 2)
    pot = 0.0
    for axis in range(nd):
        idx = tuple(slice(None) if k == axis else phys[k] for k in range(nd))
        va, vb = (np.moveaxis(v[idx], axis, -1) for v in (ua, ub))
        bf = np.moveaxis(b[axis][idx], axis, -1)
        w_rows = np.moveaxis(weight(skip=axis) * np.ones(grid.shape), axis, -1)[..., :1]
        pot += _face_potential(va, vb, bf, phys[axis], grid.spacing[axis], w_rows, so, lay.faces[axis])
    return float((kinetic + 0.5 * pot) * np.prod(grid.spacing))


def _face_potential(va: np.ndarray, vb: np.ndarray, bf: np.ndarray, cols: slice, h: float,
                    w_rows: np.ndarray, so: int, faces: tuple[str, str]) -> float:
    """Σ_rows w·Σ_faces b·D₊va·D₊vb over the faces between the first and last physical node of the last
    axis."""
    lo, hi = cols.start, cols.stop - 1  # physical nodes lo..hi; faces k+½ for k = lo..hi-1
    k = np.arange(lo, hi)
    if so == 4:  # at an absorbing face keep the faces whose 4-node stencil is physical
        if faces[0] == "absorbing":
            k = k[k - 1 >= lo]
        if faces[1] == "absorbing":
            k = k[k + 2 <= hi]

    def d(v: np.ndarray) -> np.ndarray:
        if so == 2:
            return (v[..., k + 1] - v[..., k]) / h
        return (27.0 * (v[..., k + 1] - v[..., k]) - (v[..., k + 2] - v[..., k - 1])) / (24.0 * h)

    return float(np.sum(w_rows * bf[..., k] * d(va) * d(vb)))


def reflection_coefficient(width: int = 20, space_order: int = 2, sigma_cells: float = 3.0,
                           backend: str = "numpy", strength: float = SPONGE_STRENGTH,
                           power: float = SPONGE_POWER, n_cells: int = 160) -> float:
    """Reflected fraction of the energy of a normally incident pulse on the absorbing layer (dimensionless).

    A plane Gaussian pulse exp(-x²/2σ²) (σ = ``sigma_cells`` cells, energy peaked at wavelength 2πσ) starts
    at rest in the middle of a channel of ``n_cells`` cells with absorbing x edges and mirror y edges; it
    splits into two halves that run into the layers. When any reflection would be back in the middle of
    the channel, the energy left in the physical region, divided by the initial energy, is returned.
    """
    h, c = 1.0, 1.0
    grid = Grid(nx=n_cells + 1, ny=5, dx=h, dy=h)
    dt = 0.5 * cfl_dt_max(grid, c, space_order)
    # reflected pulse centre back in the middle: lx/2 out, 2·width through the layer and back, lx/2 in
    n_steps = int(np.ceil((grid.lx + 2 * width * h) / c / dt))
    time = TimeAxis(dt_s=dt, n_frames=n_steps + 1, frame_stride=1)
    boundary = (Boundary("neumann", 0), Boundary("absorbing", width))
    solver = FDSolver(grid, boundary, time, space_order=space_order, backend=backend, dtype=np.float64,
                      sponge=(strength, power))
    vel = np.full(grid.shape, c)
    pulse = np.exp(-((grid.x - grid.lx / 2) ** 2) / (2 * (sigma_cells * h) ** 2))
    frames = solver.run(vel, initial_field=np.repeat(pulse[None, :], grid.ny, axis=0))
    e0 = discrete_energy(solver, vel, frames[1], frames[0])
    e1 = discrete_energy(solver, vel, frames[-1], frames[-2])
    return float(e1 / e0)
