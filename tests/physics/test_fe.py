"""FE solver: analytic modes (order 2), FD agreement, energy, absorbing reflection, CFL, mesh files."""

from __future__ import annotations

import meshio
import numpy as np
import pytest
from scipy.special import j0, jn_zeros
from skfem import MeshTri

from wavesurrogate.errors import CFLError, ConfigError
from wavesurrogate.physics.fd import solve_fd
from wavesurrogate.physics.fe import (
    FESolver,
    fe_cfl_dt_max,
    load_mesh,
    rectangle_boundary_order,
    rectangle_mesh,
    solve_fe,
    solve_fe_mesh,
)
from wavesurrogate.physics.problem import Boundary, Grid, Initial, Problem, Source, TimeAxis
from wavesurrogate.physics.sources import mode_omega, standing_mode


def _mode_problem(n: int, kind: str, c: float = 1.0) -> tuple[Problem, np.ndarray]:
    """Mode (1, 2) in the unit square over one period, dt = h/(4c); the problem and the exact frames."""
    g = Grid(n, n, 1.0 / (n - 1), 1.0 / (n - 1))
    period = 2 * np.pi / mode_omega(g, 1, 2, c)
    n_steps = 4 * int(np.ceil(period / (0.25 * g.dx / c) / 4))
    time = TimeAxis(period / n_steps, 5, n_steps // 4)
    p = Problem(g, np.full(g.shape, c), time, initial=Initial(kind="mode", m=1, n=2), boundary=Boundary(kind))
    return p, standing_mode(g, 1, 2, kind, c, time.times_s)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("element", ["p1", "q1"])
@pytest.mark.parametrize("kind", ["dirichlet", "neumann"])
def test_standing_mode_converges_at_order_two(element, kind):
    errors = []
    for n in (9, 17, 33):
        p, exact = _mode_problem(n, kind)
        errors.append(_rel(solve_fe(p, element=element), exact))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert errors[-1] < 0.01
    assert np.all((orders > 1.8) & (orders < 2.3)), (errors, orders)


def test_p1_equals_second_order_fd_for_constant_speed_dirichlet():
    # lumped P1 on right triangles is the 5-point stencil: both solvers must agree to round-off
    g = Grid(21, 17, 10.0, 10.0)
    p = Problem(g, np.full(g.shape, 1500.0), TimeAxis(0.003, 6, 4),
                source=Source("gaussian", 110.0, 70.0, freq_hz=15.0), boundary=Boundary("dirichlet"))
    fd = solve_fd(p, backend="numpy", dtype=np.float64)
    assert _rel(solve_fe(p, element="p1"), fd) < 1e-12


def test_fd_and_fe_agree_to_the_discretisation_error():
    """Heterogeneous medium, Neumann walls: FD, P1, Q1 at h and h/2 against P1 at h/4."""
    L = 320.0

    def run(r: int) -> dict[str, np.ndarray]:
        n = 16 * r + 1
        g = Grid(n, n, L / (n - 1), L / (n - 1))
        c = 1500 * (1 + 0.15 * np.sin(2 * np.pi * g.x[None, :] / L) * np.cos(np.pi * g.y[:, None] / L))
        p = Problem(g, c, TimeAxis(0.002 / r, 5, 25 * r), boundary=Boundary("neumann"),
                    source=Source("gaussian", 170.0, 150.0, freq_hz=8.0, width_m=30.0))
        out = {"fd": solve_fd(p, backend="numpy", dtype=np.float64)}
        out |= {el: solve_fe(p, element=el) for el in ("p1", "q1")}
        return {k: v[:, ::r, ::r] for k, v in out.items()}

    coarse, fine, ref = run(1), run(2), run(4)["p1"]
    for el in ("p1", "q1"):
        for sol in (coarse, fine):
            disc = max(_rel(sol["fd"], ref), _rel(sol[el], ref))
            assert _rel(sol[el], sol["fd"]) <= 1.5 * disc
        # the FD–FE gap closes like h² (≥ 3× per halving)
        assert _rel(fine[el], fine["fd"]) < _rel(coarse[el], coarse["fd"]) / 3
    assert _rel(fine["q1"], ref) < 0.02 and _rel(fine["p1"], ref) < 0.01


def _energies(solver: FESolver, frames: np.ndarray, dt: float) -> np.ndarray:
    return np.array([solver.energy(a, b, dt) for a, b in zip(frames[:-1], frames[1:], strict=True)])


@pytest.mark.parametrize("element", ["p1", "q1"])
@pytest.mark.parametrize("kind", ["dirichlet", "neumann"])
def test_energy_is_conserved_with_reflecting_walls(element, kind):
    g = Grid(25, 19, 10.0, 12.0)
    rng = np.random.default_rng(3)
    c = 1500.0 * (1.0 + 0.3 * rng.random(g.shape))
    p = Problem(g, c, TimeAxis(0.002, 301, 1), boundary=Boundary(kind),
                initial=Initial("gaussian", x_m=100.0, y_m=90.0, width_m=25.0))
    solver = FESolver.from_problem(p, element)
    frames = solver.solve_problem(p).reshape(p.time.n_frames, -1)
    e = _energies(solver, frames, p.time.dt_s)
    assert np.ptp(e) / e[0] < 1e-10
    assert np.abs(frames).max() > 0.05  # the wave is still there, bouncing


def test_absorbing_boundary_energy_never_grows_and_leaves():
    g = Grid(31, 31, 10.0, 10.0)
    p = Problem(g, np.full(g.shape, 1500.0), TimeAxis(0.002, 201, 1), boundary=Boundary("absorbing", 10),
                initial=Initial("gaussian", x_m=150.0, y_m=150.0, width_m=20.0))
    solver = FESolver.from_problem(p, "p1")
    u0 = solver.solve_problem(p)  # physical grid only; energy needs all nodes
    full = solver.run(np.pad(u0[0], 10).ravel(), p.time)
    e = _energies(solver, full, p.time.dt_s)
    assert np.all(np.diff(e) <= 1e-12 * e[0])
    assert e[-1] < 0.01 * e[0]


def _normal_reflection(element: str, width: int, h: float = 10.0, ppw: float = 15.0) -> float:
    """Reflected / incident energy at receivers between a point source and the left wall (normal incidence).

    The incident reference is the same FE solve on a domain so large that its walls stay silent; by the
    image principle the wave reflected at x = 0 equals R times the reference at the mirrored receivers.
    """
    c, nx, ny, d_src = 1500.0, 51, 71, 15
    f = c / (ppw * h)
    dt = 0.4 * h / c
    t_end = 1.2 / f + (d_src + 10 + 2 * width) * h / c + 2.5 / f
    time = TimeAxis(dt, int(np.ceil(t_end / dt)) + 1, 1)
    g = Grid(nx, ny, h, h)
    jr, rx = (ny - 1) // 2, np.arange(0, 11)
    p = Problem(g, np.full(g.shape, c), time, boundary=Boundary("absorbing", width),
                source=Source("point", d_src * h, jr * h, freq_hz=f))
    sol = solve_fe(p, element=element)[:, jr, rx]
    P = int(np.ceil(c * t_end / h)) // 2 + 5
    G = Grid(nx + 2 * P, ny + 2 * P, h, h)
    pr = Problem(G, np.full(G.shape, c), time, boundary=Boundary("neumann"),
                 source=Source("point", (d_src + P) * h, (jr + P) * h, freq_hz=f))
    ref = solve_fe(pr, element=element)
    reflected = sol - ref[:, P + jr, P + rx]
    image = ref[:, P + jr, P - rx]
    return float(np.sum(reflected**2) / np.sum(image**2))


@pytest.mark.parametrize("element, width", [("p1", 0), ("q1", 0), ("p1", 20)])
def test_absorbing_reflection_of_normal_incidence_below_one_percent(element, width):
    r = _normal_reflection(element, width)
    assert r < 0.01
    assert r > 1e-7  # the measurement sees something (a perfect absorber would be suspicious)


def test_cfl_bound_is_sharp_and_refused_before_running(monkeypatch):
    g = Grid(21, 21, 10.0, 10.0)
    c = np.full(g.shape, 1500.0)
    for element in ("p1", "q1"):
        p = Problem(g, c, TimeAxis(1e-3, 2, 1), boundary=Boundary("neumann"),
                    initial=Initial("gaussian", x_m=100.0, y_m=100.0, width_m=10.0))
        bound = fe_cfl_dt_max(p, element=element)
        # interior symbols: λ_max = 8c²/h² (P1 = 5-point stencil), 4c²/h² (Q1); Neumann edges lift it a bit
        h_over_c = 10.0 / 1500.0
        lo, hi = (0.95 / np.sqrt(2), 1 / np.sqrt(2)) if element == "p1" else (0.95, 1.0)
        assert lo * h_over_c < bound <= hi * h_over_c * (1 + 1e-9)
        calls: list[int] = []
        bad = Problem(g, c, TimeAxis(1.01 * bound, 3000, 1), boundary=Boundary("neumann"))
        with pytest.raises(CFLError, match=f"{bound:.6g}"):
            solve_fe(bad, element=element, progress=lambda i, n, calls=calls: calls.append(i))
        assert calls == []
        # the bound is real: 1 % below it the energy is bounded, 2 % above it (check bypassed) it explodes
        ok = Problem(g, c, TimeAxis(0.99 * bound, 2, 2000), boundary=Boundary("neumann"),
                     initial=Initial("gaussian", x_m=100.0, y_m=100.0, width_m=10.0))
        assert np.abs(solve_fe(ok, element=element)[-1]).max() < 2.0
        monkeypatch.setattr(FESolver, "check_dt", lambda self, dt, element="": None)
        over = Problem(g, c, TimeAxis(1.02 * bound, 2, 2000), boundary=Boundary("neumann"),
                       initial=Initial("gaussian", x_m=100.0, y_m=100.0, width_m=10.0))
        with np.errstate(over="ignore", invalid="ignore"):
            assert not np.abs(solve_fe(over, element=element)[-1]).max() < 1e3
        monkeypatch.undo()


def test_point_source_load_is_the_basis_at_the_point():
    for element in ("p1", "q1"):
        solver = FESolver(rectangle_mesh(5, 4, 2.0, 3.0, element), 1.0)
        f = solver.point_load(3.0, 4.5)  # cell (1, 1), local (0.5, 0.5)
        assert f.sum() == pytest.approx(1.0)
        if element == "q1":
            np.testing.assert_allclose(f[[6, 7, 11, 12]], 0.25)
        with pytest.raises(ConfigError, match="outside the mesh"):
            solver.point_load(-1.0, 1.0)


def test_time_dependent_dirichlet_values_reproduce_a_travelling_standing_wave():
    # u = cos(ωt)·cos(k·x + 0.3), boundary values from the exact solution: order-2 error, both forms equal
    errors = []
    for n in (17, 33):
        g = Grid(n, n, 1.0 / (n - 1), 1.0 / (n - 1))
        k, c = 2.5 * np.pi, 1.0
        time = TimeAxis(0.25 * g.dx, 5, (n - 1))
        X = np.broadcast_to(g.x[None, :], g.shape).ravel()
        exact = np.cos(k * c * time.times_s)[:, None] * np.cos(k * X + 0.3)[None, :]
        solver = FESolver.from_problem(Problem(g, np.full(g.shape, c), time, boundary=Boundary("dirichlet")))
        bnd = solver.boundary_nodes
        np.testing.assert_array_equal(bnd, rectangle_boundary_order(n, n))
        t_steps = np.arange(time.n_steps + 1) * time.dt_s
        arr = np.cos(k * c * t_steps)[:, None] * np.cos(k * X[bnd] + 0.3)[None, :]
        u_arr = solver.run(np.cos(k * X + 0.3), time, dirichlet_values=arr)
        xb = X[bnd]
        u_fun = solver.run(np.cos(k * X + 0.3), time,
                           dirichlet_values=lambda t, xb=xb, k=k: np.cos(k * t) * np.cos(k * xb + 0.3))
        np.testing.assert_allclose(u_arr, u_fun, atol=1e-13)
        errors.append(_rel(u_arr, exact))
    assert errors[1] < 0.01 and 3.5 < errors[0] / errors[1] < 4.6
    with pytest.raises(ConfigError, match="dirichlet_values"):
        solver.run(None, time, dirichlet_values=arr[:-1])


def test_boundary_order_is_counter_clockwise_from_lower_left():
    order = rectangle_boundary_order(4, 3)
    np.testing.assert_array_equal(order, [0, 1, 2, 3, 7, 11, 10, 9, 8, 4])


def test_float32_and_shapes():
    p, _ = _mode_problem(9, "dirichlet")
    u = solve_fe(p, element="q1", dtype=np.float32)
    assert u.dtype == np.float32 and u.shape == (5, 9, 9)


def test_disk_mesh_file_matches_the_bessel_mode(tmp_path):
    """Dirichlet mode J0(j01·r/R)·cos(c·j01·t/R) on a disk mesh written to and read from a .msh file."""
    m = MeshTri.init_circle(4)  # unit disk, polygonal boundary
    path = tmp_path / "disk.msh"
    meshio.write(path, meshio.Mesh(m.p.T, [("triangle", m.t.T)]), file_format="gmsh22")
    mesh = load_mesh(path)
    assert mesh.nvertices == m.nvertices
    r = np.hypot(*mesh.p)
    k = jn_zeros(0, 1)[0]
    c, dt = 1.0, 0.2 * float(mesh.param())
    n_steps = int(np.ceil(np.pi / (c * k) / dt))  # half a period: the mode flips sign
    time = TimeAxis(np.pi / (c * k) / n_steps, 2, n_steps)
    u = solve_fe_mesh(path, c, Source(), j0(k * r), "dirichlet", time)
    exact = np.cos(c * k * time.times_s)[:, None] * j0(k * r)[None, :]
    assert _rel(u[-1], exact[-1]) < 0.03
    # energy conserved on the unstructured mesh too
    solver = FESolver(mesh, c, fixed_nodes=mesh.boundary_nodes())
    frames = solver.run(j0(k * r) * (r < 0.99), TimeAxis(dt, 200, 1))
    e = _energies(solver, frames, dt)
    assert np.ptp(e) / e[0] < 1e-10


def test_load_mesh_errors_are_one_line_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_mesh(tmp_path / "missing.msh")
    bad = tmp_path / "bad.msh"
    bad.write_text("not a mesh\n")
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_mesh(bad)
    assert "\n" not in str(info.value)


def test_with_velocity_reuses_the_mesh_and_matches_a_fresh_assembly():
    g = Grid(15, 13, 10.0, 10.0)
    c1, c2 = np.full(g.shape, 1500.0), 1500.0 + 20.0 * np.arange(g.nx)[None, :] * np.ones((g.ny, 1))
    p1 = Problem(g, c1, TimeAxis(0.002, 11, 5), boundary=Boundary("absorbing", 4),
                 source=Source("point", 70.0, 60.0, freq_hz=20.0))
    p2 = Problem(g, c2, p1.time, source=p1.source, boundary=p1.boundary)
    solver = FESolver.from_problem(p1, "q1")
    other = solver.with_velocity(c2)
    assert other.basis is solver.basis
    np.testing.assert_allclose(other.solve_problem(p2), solve_fe(p2, element="q1"), rtol=0, atol=1e-15)
    assert _rel(solver.solve_problem(p1), solve_fe(p2, element="q1")) > 1e-3  # the velocity mattered


def test_absorbing_boundary_on_a_mesh_file_lets_the_energy_out():
    m = MeshTri.init_circle(4).scaled(100.0)
    r = np.hypot(*m.p)
    solver = FESolver(m, 1500.0, absorbing=True)
    dt = 0.4 * solver.dt_max()
    frames = solve_fe_mesh(m, 1500.0, Source(), np.exp(-(r**2) / (2 * 10.0**2)), "absorbing",
                           TimeAxis(dt, 400, 1))
    e = _energies(solver, frames, dt)
    assert np.all(np.diff(e) <= 1e-12 * e[0]) and e[-1] < 0.02 * e[0]
