"""What a solver solves: grid, medium, source, initial condition, boundary and time axis (SI units).

The rectangle is [0, (nx-1)·dx] × [0, (ny-1)·dy] with grid nodes on its edges; arrays are indexed
``[y, x]`` and frames ``[frame, y, x]``. A 3-D grid (``nz`` given) is the box × [0, (nz-1)·dz], arrays
``[z, y, x]``. The equation is u_tt = ∇·(c(x)² ∇u) + s(x, t).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

BoundaryKind = Literal["dirichlet", "neumann", "absorbing", "impedance"]
AXES = ("z", "y", "x")  # names of the spatial axes of a 3-D array; a 2-D array uses the last two


@dataclass(frozen=True)
class Grid:
    """A structured grid of nx × ny (× nz) nodes with spacings dx, dy (, dz) in metres."""

    nx: int
    ny: int
    dx: float
    dy: float
    nz: int | None = None  # None: a 2-D grid
    dz: float | None = None

    def __post_init__(self) -> None:
        if (self.nz is None) != (self.dz is None):
            raise ValueError("Grid: give both nz and dz (3-D) or neither (2-D)")

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return 2 if self.nz is None else 3

    @property
    def z(self) -> np.ndarray:
        """Node z coordinates in metres, shape [nz] (3-D grids)."""
        return np.arange(self.nz or 1) * (self.dz or 0.0)

    @property
    def lz(self) -> float:
        """Length of the box along z in metres (0 for a 2-D grid)."""
        return 0.0 if self.nz is None else (self.nz - 1) * self.dz

    @property
    def spacing(self) -> tuple[float, ...]:
        """Spacings in metres in array axis order: (dy, dx) or (dz, dy, dx)."""
        return (self.dy, self.dx) if self.nz is None else (self.dz, self.dy, self.dx)

    @property
    def coords(self) -> tuple[np.ndarray, ...]:
        """Node coordinates per axis in array axis order: (y, x) or (z, y, x), metres."""
        return (self.y, self.x) if self.nz is None else (self.z, self.y, self.x)

    @property
    def lengths(self) -> tuple[float, ...]:
        """Side lengths in metres in array axis order."""
        return (self.ly, self.lx) if self.nz is None else (self.lz, self.ly, self.lx)

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
    def shape(self) -> tuple[int, ...]:
        """Array shape (ny, nx), or (nz, ny, nx) in 3-D."""
        return (self.ny, self.nx) if self.nz is None else (self.nz, self.ny, self.nx)


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
    z_m: float = 0.0  # 3-D grids only


@dataclass(frozen=True)
class Initial:
    """Initial displacement (velocity u_t(0) = 0): zero, a Gaussian pulse, or a standing mode (m, n[, l])."""

    kind: Literal["zero", "gaussian", "mode"] = "zero"
    x_m: float = 0.0
    y_m: float = 0.0
    width_m: float = 1.0
    amplitude: float = 1.0
    m: int = 1
    n: int = 1
    z_m: float = 0.0  # 3-D grids only
    l: int = 1  # noqa: E741  (mode number along z, 3-D grids only)


@dataclass(frozen=True)
class Boundary:
    """Boundary condition of a wall (or of all walls); an absorbing layer of ``width`` cells lies outside
    the grid. ``impedance``: a locally reacting wall of real impedance ``impedance_rayl`` (Pa·s/m) in air of
    density ``rho_kgm3``, ∂u/∂n = −ρ/Z·∂u/∂t (n outward): normal-incidence reflection (ξ−1)/(ξ+1),
    ξ = Z/(ρc)."""

    kind: BoundaryKind = "absorbing"
    width: int = 20
    impedance_rayl: float | None = None
    rho_kgm3: float = 1.2


@dataclass(frozen=True)
class Box:
    """A rigid obstacle: the grid nodes in [x0, x1] × [y0, y1] (× [z0, z1]) in metres; its faces are
    Neumann walls half a cell outside those nodes."""

    x_m: tuple[float, float]
    y_m: tuple[float, float]
    z_m: tuple[float, float] | None = None  # 3-D grids: required


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
    velocity: np.ndarray  # c(x) in m/s, shape grid.shape ([ny, nx] or [nz, ny, nx])
    time: TimeAxis
    source: Source = field(default_factory=Source)
    initial: Initial = field(default_factory=Initial)
    boundary: Boundary | tuple = field(default_factory=Boundary)  # FD: or per axis, or per face (fd.core)
    space_order: int = 2  # FD only: 2 or 4
    obstacles: tuple[Box, ...] = ()  # FD only: rigid voxel boxes
