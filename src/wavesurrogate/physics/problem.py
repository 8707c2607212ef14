"""What a solver solves: grid, medium, source, initial condition, boundary and time axis (SI units).

The rectangle is [0, (nx-1)·dx] × [0, (ny-1)·dy] with grid nodes on its edges; arrays are indexed
``[y, x]`` and frames ``[frame, y, x]``. The equation is u_tt = ∇·(c(x)² ∇u) + s(x, t).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

BoundaryKind = Literal["dirichlet", "neumann", "absorbing"]


@dataclass(frozen=True)
class Grid:
    """A structured grid of nx × ny nodes with spacings dx, dy in metres."""

    nx: int
    ny: int
    dx: float
    dy: float

    @property
    def x(self) -> np.ndarray:
        """Node x coordinates in metres, shape [nx]."""
        return np.arange(self.nx) * self.dx

    @property
    def y(self) -> np.ndarray:
        """Node y coordinates in metres, shape [ny]."""
        return np.arange(self.ny) * self.dy

    @property
    def lx(self) -> float:
        """Length of the rectangle along x in metres."""
        return (self.nx - 1) * self.dx

    @property
    def ly(self) -> float:
        """Length of the rectangle along y in metres."""
        return (self.ny - 1) * self.dy

    @property
    def shape(self) -> tuple[int, int]:
        """Array shape (ny, nx)."""
        return (self.ny, self.nx)


@dataclass(frozen=True)
class Source:
    """A source term s(x, t) = amplitude · g(x) · w(t): spatial part g (point or Gaussian), wavelet w."""

    kind: Literal["none", "point", "gaussian"] = "none"
    x_m: float = 0.0
    y_m: float = 0.0
    freq_hz: float = 10.0
    wavelet: Literal["ricker", "gaussian"] = "ricker"
    amplitude: float = 1.0
    width_m: float | None = None  # standard deviation of a Gaussian source; default 2·max(dx, dy)
    delay_s: float | None = None  # wavelet centre; default 1.2/freq_hz


@dataclass(frozen=True)
class Initial:
    """Initial displacement (velocity u_t(0) = 0): zero, a Gaussian pulse, or a standing mode (m, n)."""

    kind: Literal["zero", "gaussian", "mode"] = "zero"
    x_m: float = 0.0
    y_m: float = 0.0
    width_m: float = 1.0
    amplitude: float = 1.0
    m: int = 1
    n: int = 1


@dataclass(frozen=True)
class Boundary:
    """Boundary condition on all four edges; an absorbing layer of ``width`` cells lies outside the grid."""

    kind: BoundaryKind = "absorbing"
    width: int = 20


@dataclass(frozen=True)
class TimeAxis:
    """Time stepping: step dt_s; n_frames stored frames (frame 0 at t = 0), one every frame_stride steps."""

    dt_s: float
    n_frames: int
    frame_stride: int = 1

    @property
    def n_steps(self) -> int:
        """Number of time steps taken."""
        return (self.n_frames - 1) * self.frame_stride

    @property
    def times_s(self) -> np.ndarray:
        """Times of the stored frames in seconds, shape [n_frames]."""
        return np.arange(self.n_frames) * self.frame_stride * self.dt_s


@dataclass(frozen=True, eq=False)
class Problem:
    """One forward problem: everything a solver needs, nothing about how it solves it."""

    grid: Grid
    velocity: np.ndarray  # c(x) in m/s, shape [ny, nx]
    time: TimeAxis
    source: Source = field(default_factory=Source)
    initial: Initial = field(default_factory=Initial)
    boundary: Boundary = field(default_factory=Boundary)
    space_order: int = 2  # FD only: 2 or 4
