"""Finite-element ground truth: P1 / Q1 elements (scikit-fem), lumped mass, explicit central differences.

Semi-discrete system M ü + C u̇ + K u = F(t) for u_tt = ∇·(c² ∇u) + s:
K_ij = ∫ c² ∇φ_i·∇φ_j with c² interpolated from the nodes, M the lumped (row-sum) mass, and C the sum of
the damping layer M·σ (absorbing boundary only, outside the grid) and the lumped boundary mass weighted
by c, the first-order Engquist–Majda / Robin term of u_t + c ∂u/∂n = 0. Central differences with C centred,
    (M/dt² + C/2dt) u⁺ = (2M/dt² − K) u − (M/dt² − C/2dt) u⁻ + F,
are stable for dt ≤ 2/sqrt(λ_max(M⁻¹K)) with or without C (the discrete energy never grows).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import ArpackNoConvergence, eigsh
from skfem import (
    Basis,
    BilinearForm,
    ElementQuad1,
    ElementTriP1,
    FacetBasis,
    LinearForm,
    Mesh,
    MeshQuad,
    MeshTri,
    asm,
)
from skfem.helpers import dot, grad

from wavesurrogate.errors import CFLError, ConfigError
from wavesurrogate.physics.mesh import Element, load_mesh, rectangle_boundary_order, rectangle_mesh
from wavesurrogate.physics.problem import Grid, Problem, Source, TimeAxis
from wavesurrogate.physics.sources import gaussian_footprint, initial_field, source_width, wavelet

DirichletValues = Callable[[float], np.ndarray] | np.ndarray
Progress = Callable[[int, int], None]

LAYER_STRENGTH = 0.1  # σ_max = LAYER_STRENGTH · c_max / L in the damping layer (tuned, see docs/fe.md)
_EIG_TOL = 1e-3  # relative tolerance of the Lanczos estimate of λ_max


@BilinearForm
def _stiffness(u, v, w):
    return w["c2"] * dot(grad(u), grad(v))


@LinearForm
def _weighted_integral(v, w):
    return w["f"] * v


def _element_of(mesh: Mesh):
    if isinstance(mesh, MeshTri) and mesh.t.shape[0] == 3:
        return ElementTriP1()
    if isinstance(mesh, MeshQuad) and mesh.t.shape[0] == 4:
        return ElementQuad1()
    raise ConfigError(f"mesh: {type(mesh).__name__} is not supported (linear triangles or quads only)")


# ---------------------------------------------------------------------------------------------- solver
class FESolver:
    """Assembled operators (K, lumped M, boundary and layer damping) of one mesh, reused for many solves.

    ``boundary_nodes`` are the nodes held at Dirichlet values, in the order ``dirichlet_values`` use.
    """

    def __init__(self, mesh: Mesh, velocity_nodes: np.ndarray | float, *,
                 fixed_nodes: np.ndarray | None = None, absorbing: bool = False,
                 damping_nodes: np.ndarray | None = None, dtype: type = np.float64) -> None:
        self.mesh = mesh
        self.basis = Basis(mesh, _element_of(mesh))
        self.n_nodes = int(self.basis.N)
        self.boundary_nodes = (np.zeros(0, dtype=np.int64) if fixed_nodes is None
                               else np.asarray(fixed_nodes, dtype=np.int64))
        self.dtype = np.dtype(dtype)
        self.mass = asm(_weighted_integral, self.basis, f=1.0)  # lumped mass, m² per node
        self._facet_basis = (FacetBasis(mesh, self.basis.elem, facets=mesh.boundary_facets()) if absorbing
                             else None)
        self.sigma = np.zeros(self.n_nodes) if damping_nodes is None else np.asarray(damping_nodes, float)
        self.grid_pad = 0  # structured solvers: cells of absorbing layer around the grid
        self.grid_shape: tuple[int, int] | None = None  # structured solvers: (ny, nx) of the physical grid
        self._layer: tuple[Grid, float] | None = None  # structured absorbing solvers: (grid, layer strength)
        self._assemble(velocity_nodes)

    def _assemble(self, velocity_nodes: np.ndarray | float) -> None:
        c = np.broadcast_to(np.asarray(velocity_nodes, dtype=np.float64), (self.n_nodes,)).copy()
        if not np.all(np.isfinite(c)) or np.any(c <= 0):
            raise ConfigError("velocity: must be finite and positive at every node")
        self.velocity = c
        self.stiffness = asm(_stiffness, self.basis, c2=self.basis.interpolate(c**2)).tocsr()
        self.damping = self.mass * self.sigma  # 1/s · m²
        if self._facet_basis is not None:
            fb = self._facet_basis
            self.damping = self.damping + asm(_weighted_integral, fb, f=fb.interpolate(c))
        self._lam_max: float | None = None
        self._steppers: dict[float, tuple] = {}

    def with_velocity(self, velocity: np.ndarray | float, lambda_max: float | None = None) -> FESolver:
        """A solver on the same mesh and boundaries with another velocity (nodes, or the grid [ny, nx]);
        lambda_max: a known upper bound of λ_max(M⁻¹K) in 1/s² (e.g. of a faster medium), skips Lanczos."""
        new = copy.copy(self)
        c = self._to_nodes(velocity, edge=True)
        if self._layer is not None:  # the layer's σ_max scales with c_max, as in from_problem
            grid, strength = self._layer
            new.sigma = layer_damping(grid, self.grid_pad, float(np.max(c)), strength)
        new._assemble(c)
        new._lam_max = None if lambda_max is None else float(lambda_max)
        return new

    # ---- stability
    def lambda_max(self) -> float:
        """Upper estimate of λ_max(M⁻¹K) in 1/s² (Lanczos × (1 + tol), capped by Gershgorin); cached."""
        if self._lam_max is None:
            d = 1.0 / np.sqrt(self.mass)
            S = sp.diags(d) @ self.stiffness @ sp.diags(d)
            gershgorin = float(abs(S).sum(axis=1).max())
            v0 = np.random.default_rng(0).standard_normal(self.n_nodes)
            try:
                ritz = eigsh(S, k=1, which="LA", tol=_EIG_TOL, ncv=min(20, self.n_nodes - 1), maxiter=500,
                             v0=v0, return_eigenvectors=False)[0]
                self._lam_max = min(float(ritz) * (1.0 + _EIG_TOL), gershgorin)
            except (ArpackNoConvergence, ValueError):
                self._lam_max = gershgorin
        return self._lam_max

    def dt_max(self) -> float:
        """Largest stable time step 2/sqrt(λ_max(M⁻¹K)) in seconds."""
        return 2.0 / np.sqrt(self.lambda_max())

    def check_dt(self, dt_s: float, element: str = "") -> None:
        """Raise CFLError if dt_s breaks the CFL bound."""
        bound = self.dt_max()
        if not dt_s > 0 or dt_s > bound:
            what = f" ({element})" if element else ""
            raise CFLError(f"time.dt_s = {dt_s:.6g} s breaks the FE CFL bound dt ≤ 2/sqrt(λ_max(M⁻¹K)) = "
                           f"{bound:.6g} s{what}")

    # ---- loads
    def point_load(self, x_m: float, y_m: float) -> np.ndarray:
        """Load vector of a unit point source at (x, y): basis functions evaluated there (exact delta)."""
        try:
            f = np.asarray(self.basis.point_source(np.array([x_m, y_m], dtype=np.float64)))
        except Exception:  # element finder fails outside the mesh
            raise ConfigError(f"source: point ({x_m:.6g}, {y_m:.6g}) m lies outside the mesh") from None
        if not np.all(np.isfinite(f)) or abs(f.sum() - 1.0) > 1e-8:
            raise ConfigError(f"source: point ({x_m:.6g}, {y_m:.6g}) m lies outside the mesh")
        return f

    def density_load(self, g_nodes: np.ndarray) -> np.ndarray:
        """Load vector of a source density g (1/m², nodal values): lumped mass × g."""
        return self.mass * np.asarray(g_nodes, dtype=np.float64)

    def source_load(self, source: Source, width_m: float | None = None) -> np.ndarray:
        """Load vector of the spatial part of a Source (zeros for kind 'none')."""
        if source.kind == "none":
            return np.zeros(self.n_nodes)
        if source.kind == "point":
            return self.point_load(source.x_m, source.y_m)
        sigma = source.width_m if source.width_m is not None else width_m
        if sigma is None:
            sigma = 2.0 * float(self.mesh.param())
        x, y = self.mesh.p[0, : self.n_nodes], self.mesh.p[1, : self.n_nodes]
        return self.density_load(gaussian_footprint(x, y, source.x_m, source.y_m, sigma))

    # ---- energy
    def energy(self, u_prev: np.ndarray, u_next: np.ndarray, dt_s: float) -> float:
        """Discrete energy ½ vᵀMv + ½ u⁺ᵀK u⁻ at the half step (v = (u⁺ − u⁻)/dt), conserved without C."""
        v = (np.asarray(u_next, float) - u_prev) / dt_s
        return 0.5 * float(v @ (self.mass * v)) + 0.5 * float(u_next @ (self.stiffness @ u_prev))

    # ---- time stepping
    def _stepper(self, dt: float) -> tuple:
        if dt not in self._steppers:
            m, c = self.mass, self.damping
            d = m / dt**2 + c / (2.0 * dt)
            A = sp.diags(-1.0 / d) @ self.stiffness
            A = A.tocsr()
            A.setdiag(A.diagonal() + 2.0 * m / (dt**2 * d))
            A = A.astype(self.dtype)
            A.sort_indices()
            b = (-(m / dt**2 - c / (2.0 * dt)) / d).astype(self.dtype)
            uniform_b = bool(np.all(b == -1.0))
            self._steppers = {dt: (A, b, uniform_b, 1.0 / d)}
        return self._steppers[dt]

    def run(self, u0: np.ndarray | None, time: TimeAxis, *, load: np.ndarray | None = None,
            source_time: np.ndarray | None = None, dirichlet_values: DirichletValues | None = None,
            progress: Progress | None = None) -> np.ndarray:
        """March M ü + C u̇ + K u = load·source_time(t) from rest at u0; frames [n_frames, n_nodes].

        source_time holds the wavelet at the step times n·dt (n = 0 … n_steps − 1 are used);
        dirichlet_values gives the ``boundary_nodes`` values at each step time, as an array
        [n_steps + 1, n_boundary] or a callable of t in seconds (default zero).
        """
        return self.run_recording(u0, time, np.zeros(0, np.int64), load=load, source_time=source_time,
                                  dirichlet_values=dirichlet_values, progress=progress)[0]

    def run_recording(self, u0: np.ndarray | None, time: TimeAxis, record_nodes: np.ndarray, *,
                      load: np.ndarray | None = None, source_time: np.ndarray | None = None,
                      dirichlet_values: DirichletValues | None = None, progress: Progress | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """As run(), also recording record_nodes at every step: (frames, record [n_steps + 1, n_record])."""
        dt, n_steps, stride = float(time.dt_s), time.n_steps, time.frame_stride
        rec_idx = np.asarray(record_nodes, dtype=np.int64)
        record = np.empty((n_steps + 1, rec_idx.size), dtype=self.dtype)
        self.check_dt(dt)
        A, b, uniform_b, inv_d = self._stepper(dt)
        dtype = self.dtype
        bnd = self.boundary_nodes
        g = _dirichlet_getter(dirichlet_values, bnd.size, n_steps, dt)

        u = np.zeros(self.n_nodes, dtype=np.float64) if u0 is None else np.asarray(u0, np.float64).copy()
        if u.shape != (self.n_nodes,):
            raise ConfigError(f"initial: expected {self.n_nodes} nodal values, got shape {u.shape}")
        if load is None or source_time is None:
            f_idx, f_val, w = np.zeros(0, np.int64), np.zeros(0), np.zeros(n_steps + 1)
        else:
            w = np.asarray(source_time, dtype=np.float64)
            if w.shape[0] < n_steps:
                raise ConfigError(f"source: need the wavelet at {n_steps} step times, got {w.shape[0]}")
            f_idx = np.flatnonzero(load)
            f_val = np.asarray(load, np.float64)[f_idx]
        if bnd.size:
            u[bnd] = g(0)
        # first step from rest: u¹ = u⁰ + dt²/2 · M⁻¹(F⁰ − K u⁰); damping does not act since u̇(0) = 0
        acc = -(self.stiffness @ u)
        acc[f_idx] += w[0] * f_val
        u_next = u + 0.5 * dt**2 * acc / self.mass
        f_val_d = (f_val * inv_d[f_idx]).astype(dtype)

        frames = np.empty((time.n_frames, self.n_nodes), dtype=dtype)
        frames[0] = u
        record[0] = u[rec_idx]
        u_prev, u = u.astype(dtype), u_next.astype(dtype)
        if bnd.size and n_steps:
            u[bnd] = g(1)
        tmp = np.empty_like(u)
        for n in range(1, n_steps + 1):
            record[n] = u[rec_idx]
            if n % stride == 0:
                frames[n // stride] = u
                if progress is not None:
                    progress(n, n_steps)
            if n == n_steps:
                break
            u_next = A @ u
            if uniform_b:
                u_next -= u_prev
            else:
                np.multiply(b, u_prev, out=tmp)
                u_next += tmp
            if f_idx.size and w[n] != 0.0:
                u_next[f_idx] += w[n] * f_val_d
            if bnd.size:
                u_next[bnd] = g(n + 1)
            u_prev, u = u, u_next
        return frames, record

    # ---- structured grids
    @classmethod
    def from_problem(cls, problem: Problem, element: Element = "p1", dtype: type = np.float64,
                     layer_strength: float = LAYER_STRENGTH) -> FESolver:
        """Solver on the structured mesh of the problem's grid (plus the absorbing layer outside it)."""
        grid, kind = problem.grid, problem.boundary.kind
        if problem.velocity.shape != grid.shape:
            raise ConfigError(f"velocity: shape {problem.velocity.shape} does not match grid {grid.shape}")
        pad = int(problem.boundary.width) if kind == "absorbing" else 0
        nx, ny = grid.nx + 2 * pad, grid.ny + 2 * pad
        mesh = rectangle_mesh(nx, ny, grid.dx, grid.dy, element, -pad * grid.dx, -pad * grid.dy)
        c = np.pad(np.asarray(problem.velocity, np.float64), pad, mode="edge").ravel()
        fixed = rectangle_boundary_order(nx, ny) if kind == "dirichlet" else None
        sigma = layer_damping(grid, pad, float(c.max()), layer_strength) if pad else None
        solver = cls(mesh, c, fixed_nodes=fixed, absorbing=kind == "absorbing", damping_nodes=sigma,
                     dtype=dtype)
        solver.grid_pad, solver.grid_shape = pad, grid.shape
        solver._layer = (grid, layer_strength) if pad else None
        return solver

    def grid_nodes(self, j: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Node indices of grid nodes (j, i) of the physical grid (structured solvers)."""
        if self.grid_shape is None:
            raise ConfigError("FESolver.grid_nodes: this solver was not built from a grid")
        nx = self.grid_shape[1] + 2 * self.grid_pad
        return (np.asarray(j) + self.grid_pad) * nx + np.asarray(i) + self.grid_pad

    def _to_nodes(self, arr: np.ndarray | float, edge: bool = False) -> np.ndarray:
        arr = np.asarray(arr, dtype=np.float64)
        if self.grid_shape is not None and arr.shape == self.grid_shape:
            arr = np.pad(arr, self.grid_pad, mode="edge" if edge else "constant")
        return arr.ravel() if arr.ndim else arr

    def solve_problem(self, problem: Problem, *, dirichlet_values: DirichletValues | None = None,
                      progress: Progress | None = None) -> np.ndarray:
        """Solve a problem on this solver's grid (its source, initial field, time); [n_frames, ny, nx]."""
        return self.solve_problem_recording(problem, np.zeros(0, np.int64), np.zeros(0, np.int64),
                                            dirichlet_values=dirichlet_values, progress=progress)[0]

    def solve_problem_recording(self, problem: Problem, j: np.ndarray, i: np.ndarray, *,
                                dirichlet_values: DirichletValues | None = None,
                                progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
        """As solve_problem, also recording grid nodes (j, i) at every step: (frames, [n_steps + 1, n])."""
        if self.grid_shape != problem.grid.shape:
            raise ConfigError("FESolver.solve_problem: the solver was built for another grid")
        grid, pad, kind = problem.grid, self.grid_pad, problem.boundary.kind
        u0 = _initial_nodes(problem, self.mesh.p[0], self.mesh.p[1], pad)
        load = self.source_load(problem.source, source_width(problem.source, grid))
        t = np.arange(problem.time.n_steps + 1) * problem.time.dt_s
        if dirichlet_values is not None and kind != "dirichlet":
            raise ConfigError("dirichlet_values: only valid with boundary kind 'dirichlet'")
        frames, record = self.run_recording(u0, problem.time, self.grid_nodes(j, i), load=load,
                                            source_time=wavelet(problem.source, t),
                                            dirichlet_values=dirichlet_values, progress=progress)
        ny, nx = grid.ny + 2 * pad, grid.nx + 2 * pad
        frames = frames.reshape(-1, ny, nx)
        return np.ascontiguousarray(frames[:, pad: pad + grid.ny, pad: pad + grid.nx]), record


def layer_damping(grid: Grid, pad: int, c_max_mps: float, strength: float = LAYER_STRENGTH) -> np.ndarray:
    """Damping σ in 1/s at the nodes of the grid padded by ``pad`` cells: σ_max·(d/L)² beyond each edge."""
    L_x, L_y = pad * grid.dx, pad * grid.dy
    x = (np.arange(grid.nx + 2 * pad) - pad) * grid.dx
    y = (np.arange(grid.ny + 2 * pad) - pad) * grid.dy
    dx_out = np.maximum(0.0, np.maximum(-x, x - grid.lx)) / L_x
    dy_out = np.maximum(0.0, np.maximum(-y, y - grid.ly)) / L_y
    sx = strength * c_max_mps / L_x * dx_out**2
    sy = strength * c_max_mps / L_y * dy_out**2
    return (sy[:, None] + sx[None, :]).ravel()


def _initial_nodes(problem: Problem, x: np.ndarray, y: np.ndarray, pad: int) -> np.ndarray:
    init, grid = problem.initial, problem.grid
    if init.kind == "gaussian":
        return init.amplitude * np.exp(-((x - init.x_m) ** 2 + (y - init.y_m) ** 2) / (2.0 * init.width_m**2))
    return np.pad(initial_field(init, grid, problem.boundary.kind), pad).ravel()


def _dirichlet_getter(values: DirichletValues | None, n_b: int, n_steps: int, dt: float
                      ) -> Callable[[int], np.ndarray | float]:
    """Step index n → boundary values at t = n·dt, checked once."""
    if values is None:
        return lambda n: 0.0
    if n_b == 0:
        raise ConfigError("dirichlet_values: this solver has no Dirichlet boundary nodes")
    if callable(values):
        def get(n: int) -> np.ndarray:
            v = np.asarray(values(n * dt), dtype=np.float64)
            if v.shape not in ((n_b,), ()):
                raise ConfigError(f"dirichlet_values: callable returned shape {v.shape}, expected ({n_b},)")
            return v
        return get
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n_steps + 1, n_b):
        raise ConfigError(f"dirichlet_values: expected shape ({n_steps + 1}, {n_b}) = (n_steps + 1, "
                          f"n_boundary), got {arr.shape}")
    return lambda n: arr[n]


# ---------------------------------------------------------------------------------------------- functions
def solve_fe(problem: Problem, *, element: Element = "p1", dtype: type = np.float64,
             progress: Progress | None = None, dirichlet_values: DirichletValues | None = None) -> np.ndarray:
    """Solve the problem with lumped-mass P1/Q1 FE on the grid's structured mesh; [n_frames, ny, nx]."""
    solver = FESolver.from_problem(problem, element, dtype)
    return solver.solve_problem(problem, dirichlet_values=dirichlet_values, progress=progress)


def fe_cfl_dt_max(problem: Problem | Mesh, velocity_nodes: np.ndarray | float | None = None, *,
                  element: Element = "p1", boundary_kind: str = "neumann") -> float:
    """Largest stable explicit FE time step in seconds, for a Problem or for a mesh and nodal velocity."""
    if isinstance(problem, Problem):
        return FESolver.from_problem(problem, element).dt_max()
    if velocity_nodes is None:
        raise ConfigError("fe_cfl_dt_max: a mesh needs velocity_nodes")
    return FESolver(problem, velocity_nodes, absorbing=boundary_kind == "absorbing").dt_max()


def solve_fe_mesh(mesh: Mesh | str | Path, velocity_nodes: np.ndarray | float, source: Source,
                  initial_nodes: np.ndarray | None, boundary_kind: str, time: TimeAxis, *,
                  dtype: type = np.float64, dirichlet_values: DirichletValues | None = None,
                  progress: Progress | None = None) -> np.ndarray:
    """Solve on a skfem mesh or a meshio file (P1 on triangles, Q1 on quads); frames [n_frames, n_nodes].

    Absorbing boundaries here are the first-order Engquist–Majda term only (no layer outside a mesh);
    Dirichlet nodes are ``mesh.boundary_nodes()`` in that order.
    """
    if not isinstance(mesh, Mesh):
        mesh = load_mesh(mesh)
    if boundary_kind not in ("dirichlet", "neumann", "absorbing"):
        raise ConfigError(f"boundary.kind: expected dirichlet, neumann or absorbing, got {boundary_kind!r}")
    fixed = mesh.boundary_nodes() if boundary_kind == "dirichlet" else None
    solver = FESolver(mesh, velocity_nodes, fixed_nodes=fixed, absorbing=boundary_kind == "absorbing",
                      dtype=dtype)
    t = np.arange(time.n_steps + 1) * time.dt_s
    return solver.run(initial_nodes, time, load=solver.source_load(source), source_time=wavelet(source, t),
                      dirichlet_values=dirichlet_values, progress=progress)
