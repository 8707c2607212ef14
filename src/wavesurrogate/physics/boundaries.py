"""Boundary treatment for the FD solver: ghost extensions, the absorbing sponge, and its measured reflection.

The absorbing layer is a sponge u_tt + η(x)·u_t = ∇·(c²∇u) of ``width`` cells outside the physical grid,
velocity extended by edge replication, with a profile η(d) = A·c/L·(d/L)^p (d the distance into the
layer, L its thickness), closed at its outer edge by the first-order (Engquist–Majda) absorbing
condition u_t = c·∂u/∂n discretised by the box scheme.
"""

from __future__ import annotations

import numpy as np

# Sponge profile η(d) = SPONGE_STRENGTH·c/L·(d/L)^SPONGE_POWER, tuned with reflection_coefficient().
SPONGE_STRENGTH = 2.0
SPONGE_POWER = 1.0


def ghost_signs(kind: str) -> tuple[float, float]:
    """(ghost sign, edge factor) of an edge: odd extension with u = 0 on the edge (Dirichlet) or even
    (mirror) extension (Neumann, and the outer edge of an absorbing layer, whose edge value the
    first-order absorbing condition then sets)."""
    return (-1.0, 0.0) if kind == "dirichlet" else (1.0, 1.0)


def abc_coefficient(c_mps: np.ndarray, dt_s: float, h_m: float) -> np.ndarray:
    """κ = (1 − ρ)/(1 + ρ), ρ = c·dt/h, of the box-scheme first-order absorbing condition u_t = ±c·u_n:
    u_edge⁺ = u_next + κ·(u_edge − u_next⁺) (dimensionless)."""
    rho = np.asarray(c_mps) * dt_s / h_m
    return (1.0 - rho) / (1.0 + rho)


def pad_edge(a: np.ndarray, widths: tuple[int, int]) -> np.ndarray:
    """Extend an [y, x] array by (wy, wx) cells on each side by edge replication."""
    wy, wx = widths
    return np.pad(a, ((wy, wy), (wx, wx)), mode="edge")


def mirror_extend(a: np.ndarray, n: int, sign: float = 1.0) -> np.ndarray:
    """Extend an [y, x] array by n nodes on each side, mirrored about the edge nodes (times ``sign``)."""
    out = np.pad(a, n, mode="reflect")
    if sign != 1.0:
        out[:n] *= sign
        out[-n:] *= sign
        out[:, :n] *= sign
        out[:, -n:] *= sign
    return out


def damping_profile(n_cells: int, h_m: float, c_mps: float | np.ndarray,
                    strength: float = SPONGE_STRENGTH, power: float = SPONGE_POWER) -> np.ndarray:
    """Sponge coefficient η in 1/s at depths d = 1..n_cells cells into a layer of n_cells cells."""
    thickness = n_cells * h_m
    d = np.arange(1, n_cells + 1) * h_m
    return strength * np.asarray(c_mps)[..., None] / thickness * (d / thickness) ** power


def damping_field(c_padded: np.ndarray, widths: tuple[int, int], spacing: tuple[float, float],
                  strength: float = SPONGE_STRENGTH, power: float = SPONGE_POWER) -> np.ndarray:
    """η in 1/s on the padded grid [ny + 2wy, nx + 2wx]: zero inside, sum of the x and y sponges outside."""
    eta = np.zeros_like(c_padded, dtype=np.float64)
    for axis, (w, h) in enumerate(zip(widths, spacing, strict=True)):
        if w == 0:
            continue
        n = c_padded.shape[axis]
        depth = np.zeros(n)
        depth[:w] = np.arange(w, 0, -1)
        depth[n - w:] = np.arange(1, w + 1)
        thickness = w * h
        prof = strength / thickness * (depth * h / thickness) ** power
        eta += c_padded * (prof[:, None] if axis == 0 else prof[None, :])
    return eta


def reflection_coefficient(width: int = 20, space_order: int = 2, sigma_cells: float = 3.0,
                           backend: str = "numpy", strength: float = SPONGE_STRENGTH,
                           power: float = SPONGE_POWER, n_cells: int = 160) -> float:
    """Reflected fraction of the energy of a normally incident pulse on the absorbing layer (dimensionless).

    A plane Gaussian pulse exp(-x²/2σ²) (σ = ``sigma_cells`` cells, energy peaked at wavelength 2πσ) starts
    at rest in the middle of a channel of ``n_cells`` cells with absorbing x edges and mirror y edges; it
    splits into two halves that run into the layers. When any reflection would be back in the middle of
    the channel, the energy left in the physical region, divided by the initial energy, is returned.
    """
    from wavesurrogate.physics.fd import FDSolver, cfl_dt_max, discrete_energy
    from wavesurrogate.physics.problem import Boundary, Grid, TimeAxis

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
