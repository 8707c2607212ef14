"""Source wavelets in time, source footprints in space, and initial conditions (SI units)."""

from __future__ import annotations

import numpy as np

from wavesurrogate.errors import ConfigError
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
    return src.width_m if src.width_m is not None else 2.0 * max(grid.spacing)


def gaussian_footprint(x: np.ndarray, y: np.ndarray, x0: float, y0: float, sigma: float) -> np.ndarray:
    """Normalised 2-D Gaussian exp(-r²/2σ²)/(2πσ²) in 1/m² at points (x, y) (broadcasting)."""
    r2 = (x - x0) ** 2 + (y - y0) ** 2
    return np.exp(-r2 / (2.0 * sigma**2)) / (2.0 * np.pi * sigma**2)


def source_position(src: Source, grid: Grid) -> tuple[float, ...]:
    """The source position in metres in array axis order: (y, x) or (z, y, x)."""
    return (src.y_m, src.x_m) if grid.ndim == 2 else (src.z_m, src.y_m, src.x_m)


def grid_footprint(src: Source, grid: Grid) -> np.ndarray:
    """Spatial part g(x) on grid nodes in 1/m² (1/m³ in 3-D), shape grid.shape; Σ g·dV = 1 for a source
    well inside.

    A point source is spread (bi/tri)linearly onto its 2^d neighbouring nodes (weights / dV); a Gaussian
    source is sampled at the nodes (normalised by (2πσ²)^(d/2)).
    """
    g = np.zeros(grid.shape, dtype=np.float64)
    if src.kind == "none":
        return g
    pos, sigma = source_position(src, grid), source_width(src, grid)
    if src.kind == "gaussian":
        if grid.ndim == 2:
            return gaussian_footprint(grid.x[None, :], grid.y[:, None], src.x_m, src.y_m, sigma)
        r2 = sum(((c - p) ** 2).reshape([-1 if k == a else 1 for k in range(3)])
                 for a, (c, p) in enumerate(zip(grid.coords, pos, strict=True)))
        return np.exp(-r2 / (2.0 * sigma**2)) / (2.0 * np.pi * sigma**2) ** 1.5
    corner, weights = [], []
    for p, h, n in zip(pos, grid.spacing, grid.shape, strict=True):
        f = p / h
        i0 = int(np.clip(np.floor(f), 0, n - 2))
        corner.append(i0)
        weights.append((1.0 - (f - i0), f - i0))
    for offs in np.ndindex(*(2,) * grid.ndim):
        g[tuple(c + o for c, o in zip(corner, offs, strict=True))] += np.prod(
            [w[o] for w, o in zip(weights, offs, strict=True)])
    return g / np.prod(grid.spacing)


def mode_shape(grid: Grid, m: int, n: int, kind: str, x: np.ndarray | None = None,
               y: np.ndarray | None = None, l: int = 1, z: np.ndarray | None = None) -> np.ndarray:  # noqa: E741
    """Standing mode (m, n[, l]): sin·sin(·sin) (Dirichlet) or cos·cos(·cos) (Neumann) walls, at (x, y[, z])
    or the nodes (3-D grids: mode number l along z)."""
    f = np.sin if kind == "dirichlet" else np.cos
    if grid.ndim == 3:
        x = grid.x[None, None, :] if x is None else x
        y = grid.y[None, :, None] if y is None else y
        z = grid.z[:, None, None] if z is None else z
        return f(m * np.pi * x / grid.lx) * f(n * np.pi * y / grid.ly) * f(l * np.pi * z / grid.lz)
    x = grid.x[None, :] if x is None else x
    y = grid.y[:, None] if y is None else y
    return f(m * np.pi * x / grid.lx) * f(n * np.pi * y / grid.ly)


def mode_omega(grid: Grid, m: int, n: int, c_mps: float, l: int = 1) -> float:  # noqa: E741
    """Angular frequency (rad/s) of standing mode (m, n[, l]) in a rectangle (box) with constant speed c."""
    if grid.ndim == 3:
        return c_mps * np.pi * float(np.sqrt((m / grid.lx) ** 2 + (n / grid.ly) ** 2 + (l / grid.lz) ** 2))
    return c_mps * np.pi * np.hypot(m / grid.lx, n / grid.ly)


def box_modes_hz(lengths_m: tuple[float, ...], c_mps: float, count: int) -> np.ndarray:
    """The ``count`` lowest non-zero modal frequencies of a rigid box (Hz): (c/2)·√Σ(l_k/L_k)², sorted."""
    top = count + 1
    ls = np.stack(np.meshgrid(*([np.arange(top)] * len(lengths_m)), indexing="ij"), -1).reshape(-1,
                                                                                            len(lengths_m))
    f = 0.5 * c_mps * np.sqrt(np.sum((ls / np.asarray(lengths_m)) ** 2, axis=1))
    return np.sort(f[f > 0])[:count]


def standing_mode(grid: Grid, m: int, n: int, kind: str, c_mps: float, t_s: np.ndarray,
                  l: int = 1) -> np.ndarray:  # noqa: E741
    """Analytic solution cos(ωt)·mode(x) started at rest; shape [len(t), *grid.shape]."""
    w = mode_omega(grid, m, n, c_mps, l)
    t = np.cos(w * np.asarray(t_s)).reshape(-1, *([1] * grid.ndim))
    return t * mode_shape(grid, m, n, kind, l=l)[None]


def initial_field(init: Initial, grid: Grid, boundary_kind: str) -> np.ndarray:
    """Initial displacement u(x, 0) on grid nodes, shape grid.shape (float64)."""
    if init.kind == "zero":
        return np.zeros(grid.shape)
    if init.kind == "gaussian":
        pos = (init.y_m, init.x_m) if grid.ndim == 2 else (init.z_m, init.y_m, init.x_m)
        r2 = sum(((c - p) ** 2).reshape([-1 if k == a else 1 for k in range(grid.ndim)])
                 for a, (c, p) in enumerate(zip(grid.coords, pos, strict=True)))
        return init.amplitude * np.exp(-r2 / (2.0 * init.width_m**2))
    kind = "neumann" if boundary_kind in ("neumann", "impedance") else "dirichlet"
    return init.amplitude * mode_shape(grid, init.m, init.n, kind, l=init.l)


FORCING_KINDS = ("interval", "leapfrog")


def frame_forcing(problem: Problem, n_frames: int | None = None,
                  kind: str = "interval") -> tuple[np.ndarray, np.ndarray]:
    """The source term per frame as the FD scheme injects it: ``(amplitude [n_frames], g [ny, nx])``.

    Frame k's forcing is ``amplitude[k] · g(x)``; g is ``grid_footprint`` (1/m²), ``amplitude[0] = 0``.
    ``kind="interval"``: ``amplitude[k] = Σ_m a·w(t_m)·dt`` over the solver steps m = (k−1)·s … k·s − 1 that
    lead to frame k (s = frame stride; the time integral over the frame interval, by the scheme's own rule).
    ``kind="leapfrog"``: the same integral weighted by the hat that the frame-level leapfrog residual
    u^k − 2u^{k−1} + u^{k−2} gives each injection to first order: (s − j)/s for step (k−1)·s + j and j/s for
    step (k−2)·s + j (centred on frame k − 1, the two intervals around it; weights sum to s, so both kinds
    agree for a constant source). ``n_frames`` may exceed the stored frames (the source is known at any time).
    """
    if kind not in FORCING_KINDS:
        raise ConfigError(f"forcing kind must be one of {', '.join(FORCING_KINDS)}, got {kind!r}")
    t = problem.time
    n, s = (t.n_frames if n_frames is None else int(n_frames)), t.frame_stride
    w = (wavelet(problem.source, np.arange(max(n - 1, 0) * s) * t.dt_s) * t.dt_s).reshape(max(n - 1, 0), s)
    if kind == "interval":
        amp = np.concatenate([[0.0], w.sum(axis=1)])[:n]
    else:
        j = np.arange(s)
        fwd, bwd = w @ ((s - j) / s), w @ (j / s)
        amp = np.concatenate([[0.0], fwd + np.concatenate([[0.0], bwd[:-1]])])[:n]
    return amp, grid_footprint(problem.source, problem.grid)
