"""Source wavelets in time, source footprints in space, and initial conditions (SI units)."""

from __future__ import annotations

import numpy as np

from wavesurrogate.physics.problem import Grid, Initial, Problem, Source


def ricker(t_s: np.ndarray, freq_hz: float, delay_s: float) -> np.ndarray:
    """Ricker wavelet (1 - 2π²f²τ²)·exp(-π²f²τ²), τ = t - delay; dimensionless, peak 1 at τ = 0."""
    a = (np.pi * freq_hz * (np.asarray(t_s, dtype=np.float64) - delay_s)) ** 2
    return (1.0 - 2.0 * a) * np.exp(-a)


def gaussian_pulse(t_s: np.ndarray, freq_hz: float, delay_s: float) -> np.ndarray:
    """Gaussian pulse exp(-π²f²τ²), τ = t - delay; dimensionless, peak 1 at τ = 0."""
    a = (np.pi * freq_hz * (np.asarray(t_s, dtype=np.float64) - delay_s)) ** 2
    return np.exp(-a)


def source_delay(src: Source) -> float:
    """Wavelet centre in seconds (default 1.2/f, where the Ricker wavelet is ~2e-5 of its peak)."""
    return src.delay_s if src.delay_s is not None else 1.2 / src.freq_hz


def wavelet(src: Source, t_s: np.ndarray) -> np.ndarray:
    """amplitude · w(t) of the source at times t_s (zeros for kind 'none')."""
    t_s = np.asarray(t_s, dtype=np.float64)
    if src.kind == "none":
        return np.zeros_like(t_s)
    fn = ricker if src.wavelet == "ricker" else gaussian_pulse
    return src.amplitude * fn(t_s, src.freq_hz, source_delay(src))


def source_width(src: Source, grid: Grid) -> float:
    """Standard deviation of a Gaussian source footprint in metres."""
    return src.width_m if src.width_m is not None else 2.0 * max(grid.dx, grid.dy)


def gaussian_footprint(x: np.ndarray, y: np.ndarray, x0: float, y0: float, sigma: float) -> np.ndarray:
    """Normalised 2-D Gaussian exp(-r²/2σ²)/(2πσ²) in 1/m² at points (x, y) (broadcasting)."""
    r2 = (x - x0) ** 2 + (y - y0) ** 2
    return np.exp(-r2 / (2.0 * sigma**2)) / (2.0 * np.pi * sigma**2)


def grid_footprint(src: Source, grid: Grid) -> np.ndarray:
    """Spatial part g(x) on grid nodes in 1/m², shape [ny, nx]; Σ g·dx·dy = 1 for a source well inside.

    A point source is spread bilinearly onto its four neighbouring nodes (weights / (dx·dy)); a Gaussian
    source is sampled at the nodes.
    """
    g = np.zeros(grid.shape, dtype=np.float64)
    if src.kind == "none":
        return g
    if src.kind == "gaussian":
        return gaussian_footprint(grid.x[None, :], grid.y[:, None], src.x_m, src.y_m, source_width(src, grid))
    fx, fy = src.x_m / grid.dx, src.y_m / grid.dy
    i0 = int(np.clip(np.floor(fx), 0, grid.nx - 2))
    j0 = int(np.clip(np.floor(fy), 0, grid.ny - 2))
    wx, wy = fx - i0, fy - j0
    for dj, wyy in ((0, 1.0 - wy), (1, wy)):
        for di, wxx in ((0, 1.0 - wx), (1, wx)):
            g[j0 + dj, i0 + di] += wxx * wyy
    return g / (grid.dx * grid.dy)


def mode_shape(grid: Grid, m: int, n: int, kind: str, x: np.ndarray | None = None,
               y: np.ndarray | None = None) -> np.ndarray:
    """Standing mode (m, n): sin·sin (Dirichlet) or cos·cos (Neumann) walls, at (x, y) or the nodes."""
    x = grid.x[None, :] if x is None else x
    y = grid.y[:, None] if y is None else y
    f = np.sin if kind == "dirichlet" else np.cos
    return f(m * np.pi * x / grid.lx) * f(n * np.pi * y / grid.ly)


def mode_omega(grid: Grid, m: int, n: int, c_mps: float) -> float:
    """Angular frequency (rad/s) of standing mode (m, n) in a rectangle with constant speed c."""
    return c_mps * np.pi * np.hypot(m / grid.lx, n / grid.ly)


def standing_mode(grid: Grid, m: int, n: int, kind: str, c_mps: float, t_s: np.ndarray) -> np.ndarray:
    """Analytic solution cos(ωt)·mode(x, y) started at rest; shape [len(t), ny, nx]."""
    w = mode_omega(grid, m, n, c_mps)
    return np.cos(w * np.asarray(t_s))[:, None, None] * mode_shape(grid, m, n, kind)[None]


def initial_field(init: Initial, grid: Grid, boundary_kind: str) -> np.ndarray:
    """Initial displacement u(x, 0) on grid nodes, shape [ny, nx] (float64)."""
    if init.kind == "zero":
        return np.zeros(grid.shape)
    if init.kind == "gaussian":
        r2 = (grid.x[None, :] - init.x_m) ** 2 + (grid.y[:, None] - init.y_m) ** 2
        return init.amplitude * np.exp(-r2 / (2.0 * init.width_m**2))
    kind = "neumann" if boundary_kind == "neumann" else "dirichlet"
    return init.amplitude * mode_shape(grid, init.m, init.n, kind)


def frame_forcing(problem: Problem, n_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The source term per frame interval as the FD scheme injects it: ``(amplitude [n_frames], g [ny, nx])``.

    Frame k's forcing is ``amplitude[k] · g(x)`` with ``amplitude[k] = Σ_m a·w(t_m)·dt`` over the solver steps
    m = (k−1)·stride … k·stride − 1 that lead to frame k (the time integral of the source over the frame
    interval, by the scheme's own rule), ``amplitude[0] = 0``; g is ``grid_footprint`` (1/m²). ``n_frames``
    may exceed the stored frames (the source is known at any time).
    """
    t = problem.time
    n = t.n_frames if n_frames is None else int(n_frames)
    w = wavelet(problem.source, np.arange(max(n - 1, 0) * t.frame_stride) * t.dt_s) * t.dt_s
    amp = np.concatenate([[0.0], w.reshape(max(n - 1, 0), t.frame_stride).sum(axis=1)])[:n]
    return amp, grid_footprint(problem.source, problem.grid)
