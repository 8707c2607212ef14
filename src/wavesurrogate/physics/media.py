"""Velocity models c(x) in m/s on a grid: constant, layered, Gaussian random field, inclusions, from file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wavesurrogate.errors import ConfigError
from wavesurrogate.physics.problem import Grid
from wavesurrogate.safeload import check_regular, h5_contained


def constant(grid: Grid, c_mps: float) -> np.ndarray:
    """Homogeneous medium, shape [ny, nx]."""
    return np.full(grid.shape, float(c_mps))


def layered(grid: Grid, velocities_mps: Sequence[float], interfaces_m: Sequence[float]) -> np.ndarray:
    """Horizontal layers: velocities[k] between interfaces (depths along y in metres, increasing)."""
    if len(velocities_mps) != len(interfaces_m) + 1:
        raise ConfigError("medium.interfaces_m: need one interface fewer than velocities")
    if any(b <= a for a, b in zip(interfaces_m, interfaces_m[1:], strict=False)):
        raise ConfigError("medium.interfaces_m: interfaces must increase")
    k = np.searchsorted(np.asarray(interfaces_m, dtype=float), grid.y, side="right")
    c = np.asarray(velocities_mps, dtype=float)[k]
    return np.repeat(c[:, None], grid.nx, axis=1)


def vertical_gradient(grid: Grid, c0_mps: float, gradient: float) -> np.ndarray:
    """c = c0·(1 + gradient·(y − ly/2)/(ly/2)) in m/s, shape [ny, nx]."""
    half = 0.5 * grid.ly
    c = float(c0_mps) * (1.0 + float(gradient) * (grid.y - half) / half)
    return np.repeat(c[:, None], grid.nx, axis=1)


def gaussian_random_field(grid: Grid, mean_mps: float, contrast: float, correlation_length_m: float,
                          rng: np.random.Generator) -> np.ndarray:
    """Smooth random medium c = mean·(1 + contrast·z), z a unit-variance field with Gaussian covariance.

    z is white noise filtered in Fourier space by the spectrum of exp(-r²/(2ℓ²)); it is clipped at ±3 so
    that c stays within mean·(1 ± 3·contrast).
    """
    ny, nx = grid.shape
    pad_y, pad_x = ny + 2 * int(np.ceil(3 * correlation_length_m / grid.dy)), nx + 2 * int(
        np.ceil(3 * correlation_length_m / grid.dx))
    noise = rng.standard_normal((pad_y, pad_x))
    ky = 2 * np.pi * np.fft.fftfreq(pad_y, d=grid.dy)
    kx = 2 * np.pi * np.fft.rfftfreq(pad_x, d=grid.dx)
    # amplitude filter = sqrt of the power spectrum of a Gaussian covariance with length ℓ
    filt = np.exp(-(correlation_length_m**2) * (ky[:, None] ** 2 + kx[None, :] ** 2) / 4.0)
    z = np.fft.irfft2(np.fft.rfft2(noise) * filt, s=(pad_y, pad_x))[:ny, :nx]
    z = (z - z.mean()) / (z.std() + 1e-30)
    return mean_mps * (1.0 + contrast * np.clip(z, -3.0, 3.0))


def inclusions(grid: Grid, background_mps: float, circles: Sequence[tuple[float, float, float, float]],
               smooth_m: float = 0.0) -> np.ndarray:
    """Background with circular inclusions (x_m, y_m, radius_m, c_mps); later circles paint over earlier.

    With smooth_m > 0 each edge is a tanh ramp of that half-width (avoids staircase reflections).
    """
    c = np.full(grid.shape, float(background_mps))
    X, Y = grid.x[None, :], grid.y[:, None]
    for x0, y0, r, ci in circles:
        d = np.hypot(X - x0, Y - y0) - r
        w = (d <= 0).astype(float) if smooth_m <= 0 else 0.5 * (1.0 - np.tanh(d / smooth_m))
        c = c * (1.0 - w) + ci * w
    return c


def random_inclusions(grid: Grid, background_mps: float, n: int, radius_m: tuple[float, float],
                      c_mps: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """n circular inclusions with radius and velocity drawn uniformly from the given ranges."""
    circles = [(rng.uniform(0, grid.lx), rng.uniform(0, grid.ly), rng.uniform(*radius_m), rng.uniform(*c_mps))
               for _ in range(n)]
    return inclusions(grid, background_mps, circles, smooth_m=max(grid.dx, grid.dy))


def from_file(grid: Grid, path: str | Path, dataset: str | None = None) -> np.ndarray:
    """Velocity array from a .npy file or an HDF5 dataset (default 'velocity'), checked against the grid."""
    path = Path(path)
    if not os.path.lexists(path):
        raise ConfigError(f"medium.path: file not found: {path}")
    check_regular(path, ConfigError)  # a FIFO or device would block the reader

    def fits(shape: tuple[int, ...]) -> None:  # checked before the array is read
        if tuple(shape) not in (grid.shape, (1, *grid.shape)):
            raise ConfigError(f"medium.path: array shape {tuple(shape)} does not match grid (ny, nx) = "
                              f"{grid.shape}")

    try:
        if path.suffix == ".npy":
            c = np.load(path, allow_pickle=False, mmap_mode="r")  # the header only, until read
            fits(c.shape)
            c = np.array(c)
        else:
            import h5py

            with h5py.File(path, "r") as f:
                key = dataset or "velocity"
                if key not in f:
                    raise ConfigError(f"medium.dataset: {key!r} not in {path}")
                h5_contained(f, f"medium.path: {path}", ConfigError, only=key)
                if not isinstance(f[key], h5py.Dataset):
                    raise ConfigError(f"medium.dataset: {key!r} in {path} is not a dataset")
                fits(f[key].shape)
                c = np.asarray(f[key])
    except ConfigError:
        raise
    except Exception as exc:  # unreadable or not the announced format
        raise ConfigError(f"medium.path: cannot read {path}: {type(exc).__name__}") from None
    if c.ndim == 3 and c.shape[0] == 1:
        c = c[0]
    if c.shape != grid.shape:
        raise ConfigError(f"medium.path: array shape {c.shape} does not match grid (ny, nx) = {grid.shape}")
    c = c.astype(np.float64)
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise ConfigError(f"medium.path: velocities in {path} must be finite and positive")
    return c
