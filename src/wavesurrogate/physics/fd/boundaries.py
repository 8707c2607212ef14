"""FD boundary treatment: ghost extensions and the absorbing sponge (measured in physics.checks).

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


def mirror_extend(a: np.ndarray, n: int) -> np.ndarray:
    """Extend an [y, x] array by n nodes on each side, mirrored about the edge nodes."""
    return np.pad(a, n, mode="reflect")


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
