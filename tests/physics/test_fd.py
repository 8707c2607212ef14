"""FD solver: convergence against the analytic standing mode, energy, backends, absorbing layer, CFL."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from wavesurrogate.errors import CFLError
from wavesurrogate.physics import media, solve
from wavesurrogate.physics.checks import discrete_energy, reflection_coefficient
from wavesurrogate.physics.fd import FDSolver, cfl_dt_max, choose_dt, solve_fd
from wavesurrogate.physics.problem import Boundary, Grid, Initial, Problem, Source, TimeAxis
from wavesurrogate.physics.sources import standing_mode, wavelet


def _slope(hs: list[float], errs: list[float]) -> float:
    return float(np.polyfit(np.log(hs), np.log(errs), 1)[0])


def _mode_errors(kind: str, space_order: int, dt_of_n) -> tuple[list[float], list[float]]:
    hs, errs = [], []
    for n in (17, 33, 65):
        grid = Grid(nx=n, ny=n, dx=1.0 / (n - 1), dy=1.0 / (n - 1))
        t_end = 0.5
        steps = int(np.ceil(t_end / dt_of_n(grid, n)))
        time = TimeAxis(dt_s=t_end / steps, n_frames=2, frame_stride=steps)
        solver = FDSolver(grid, Boundary(kind, 0), time, space_order, backend="numpy", dtype=np.float64)
        frames = solver.run(np.ones(grid.shape), initial=Initial(kind="mode", m=2, n=1))
        exact = standing_mode(grid, 2, 1, kind, 1.0, time.times_s)
        hs.append(grid.dx)
        errs.append(float(np.abs(frames[-1] - exact[-1]).max()))
    return hs, errs


@pytest.mark.parametrize("kind", ["dirichlet", "neumann"])
def test_second_order_converges_at_rate_two(kind):
    hs, errs = _mode_errors(kind, 2, lambda g, n: 0.5 * cfl_dt_max(g, 1.0, 2))  # dt ∝ h
    assert abs(_slope(hs, errs) - 2.0) < 0.2
    assert errs[-1] < 1e-3


@pytest.mark.parametrize("kind", ["dirichlet", "neumann"])
def test_fourth_order_converges_at_rate_four_in_space(kind):
    # dt ∝ h² so that leapfrog's O(dt²) time error is O(h⁴) too
    hs, errs = _mode_errors(kind, 4, lambda g, n: 0.5 * cfl_dt_max(g, 1.0, 4) * 16.0 / (n - 1))
    assert abs(_slope(hs, errs) - 4.0) < 0.3
    assert errs[-1] < 1e-5


def _heterogeneous(grid: Grid, seed: int = 0) -> np.ndarray:
    return media.gaussian_random_field(grid, 2000.0, 0.2, 60.0, np.random.default_rng(seed))


@pytest.mark.parametrize("kind", ["dirichlet", "neumann"])
@pytest.mark.parametrize("space_order", [2, 4])
def test_energy_conserved_over_2000_steps(kind, space_order):
    grid = Grid(nx=26, ny=22, dx=10.0, dy=10.0)
    vel = _heterogeneous(grid)
    dt = choose_dt(grid, vel.max(), space_order)
    time = TimeAxis(dt_s=dt, n_frames=2001, frame_stride=1)
    solver = FDSolver(grid, Boundary(kind, 0), time, space_order, backend="numpy", dtype=np.float64)
    frames = solver.run(vel, initial=Initial(kind="gaussian", x_m=90.0, y_m=120.0, width_m=25.0))
    energy = np.array([discrete_energy(solver, vel, frames[k + 1], frames[k]) for k in range(0, 2000, 50)]
                      + [discrete_energy(solver, vel, frames[-1], frames[-2])])
    assert energy[0] > 0
    assert np.abs(frames[-1]).max() > 1e-3  # the wave is still there, not damped away
    assert np.abs(energy / energy[0] - 1.0).max() < 1e-4


def test_energy_of_devito_float32_run_conserved_over_2000_steps():
    grid = Grid(nx=26, ny=22, dx=10.0, dy=10.0)
    vel = _heterogeneous(grid, 1)
    time = TimeAxis(dt_s=choose_dt(grid, vel.max(), 4), n_frames=2001, frame_stride=1)
    solver = FDSolver(grid, Boundary("neumann", 0), time, 4, backend="devito", dtype=np.float32)
    frames = solver.run(vel, initial=Initial(kind="gaussian", x_m=120.0, y_m=100.0, width_m=25.0))
    frames = frames.astype(np.float64)
    energy = np.array([discrete_energy(solver, vel, frames[k + 1], frames[k]) for k in range(0, 2000, 100)])
    assert np.abs(frames[-1]).max() > 1e-3
    assert np.abs(energy / energy[0] - 1.0).max() < 1e-4  # measured 1e-6


@pytest.mark.parametrize("space_order", [2, 4])
def test_devito_backend_equals_numpy_backend(space_order):
    grid = Grid(nx=40, ny=32, dx=10.0, dy=10.0)
    vel = _heterogeneous(grid, 2)
    time = TimeAxis(dt_s=choose_dt(grid, vel.max(), space_order), n_frames=9, frame_stride=15)
    problem = Problem(grid, vel, time, source=Source(kind="point", x_m=153.0, y_m=121.0, freq_hz=25.0),
                      boundary=Boundary("absorbing", 8), space_order=space_order)
    calls = []
    ours = solve_fd(problem, backend="devito", progress=lambda done, total: calls.append((done, total)))
    ref = solve_fd(problem, backend="numpy", dtype=np.float32)
    assert ours.shape == ref.shape == (9, 32, 40)
    assert np.abs(ref[-1]).max() > 0
    assert np.abs(ours - ref).max() < 1e-5 * np.abs(ref).max()
    assert calls[-1] == (120, 120) and len(calls) > 1


def test_solve_dispatches_to_fd():
    grid = Grid(nx=12, ny=10, dx=1.0, dy=1.0)
    time = TimeAxis(dt_s=0.3, n_frames=3, frame_stride=2)
    problem = Problem(grid, np.ones(grid.shape), time, initial=Initial(kind="mode"),
                      boundary=Boundary("dirichlet", 0))
    a = solve(problem, solver="fd", backend="numpy", dtype=np.float64)
    b = solve_fd(problem, backend="numpy", dtype=np.float64)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("space_order", "sigma_cells"), [(2, 3.0), (4, 3.0), (2, 5.0)])
def test_absorbing_layer_reflects_under_one_percent(space_order, sigma_cells):
    # energy peaks at wavelength 2πσ: 19 and 31 cells
    r = reflection_coefficient(width=20, space_order=space_order, sigma_cells=sigma_cells)
    assert 0 < r < 0.01


def test_reflection_measurement_sees_a_reflecting_wall():
    r = reflection_coefficient(width=20, sigma_cells=3.0, strength=0.0)  # no sponge: the edge condition only
    wall = reflection_coefficient(width=2, sigma_cells=3.0, strength=60.0)  # abrupt, strong damping reflects
    assert r < 0.01 < wall


@pytest.mark.parametrize("space_order", [2, 4])
def test_absorbing_boundary_is_stable_over_many_steps(space_order):
    grid = Grid(nx=30, ny=24, dx=1.0, dy=1.5)
    vel = media.gaussian_random_field(grid, 1.0, 0.3, 4.0, np.random.default_rng(0))
    dt = choose_dt(grid, vel.max(), space_order, safety=0.99)
    solver = FDSolver(grid, Boundary("absorbing", 4), TimeAxis(dt, 6, 1000), space_order, "numpy", np.float64)
    init = np.random.default_rng(1).standard_normal(grid.shape)  # every wavenumber, every direction
    frames = solver.run(vel, initial_field=init, full=True)
    assert np.all(np.abs(frames[1:]).max(axis=(1, 2)) < np.abs(init).max())


def test_absorbing_layer_in_2d_removes_the_pulse():
    grid = Grid(nx=61, ny=61, dx=1.0, dy=1.0)
    dt = 0.5 * cfl_dt_max(grid, 1.0, 2)
    n = int(110 / dt)  # 30 to the edge, 2·20 through the layer and back, 40 more
    solver = FDSolver(grid, Boundary("absorbing", 20), TimeAxis(dt, n + 1, 1), 2, "numpy", np.float64)
    vel = np.ones(grid.shape)
    frames = solver.run(vel, initial=Initial(kind="gaussian", x_m=30.0, y_m=30.0, width_m=3.0))
    e0 = discrete_energy(solver, vel, frames[1], frames[0])
    e1 = discrete_energy(solver, vel, frames[-1], frames[-2])
    assert e1 / e0 < 0.01
    reflecting = FDSolver(grid, Boundary("neumann", 0), TimeAxis(dt, n + 1, 1), 2, "numpy", np.float64)
    kept = reflecting.run(vel, initial=Initial(kind="gaussian", x_m=30.0, y_m=30.0, width_m=3.0))
    assert discrete_energy(reflecting, vel, kept[-1], kept[-2]) / e0 > 0.99


def test_explicit_dt_above_cfl_bound_is_refused_before_running():
    grid = Grid(nx=20, ny=20, dx=2.0, dy=1.0)
    bound = cfl_dt_max(grid, 3000.0, 4)
    assert bound == pytest.approx(6.0 / 7.0 / (3000.0 * np.sqrt(0.25 + 1.0)))
    assert cfl_dt_max(grid, 3000.0, 2) == pytest.approx(1.0 / (3000.0 * np.sqrt(1.25)))
    with pytest.raises(CFLError, match=f"{bound:.6g}"):
        choose_dt(grid, 3000.0, 4, dt_s=1.01 * bound)
    assert choose_dt(grid, 3000.0, 4) == pytest.approx(0.9 * bound)
    vel = np.full(grid.shape, 3000.0)
    problem = Problem(grid, vel, TimeAxis(1.01 * bound, 5, 1), space_order=4)
    calls = []
    with pytest.raises(CFLError, match="3000 m/s"):
        solve_fd(problem, progress=lambda *a: calls.append(a))
    assert calls == []


@pytest.mark.parametrize("space_order", [2, 4])
def test_cfl_bound_is_sharp(space_order, monkeypatch):
    grid = Grid(nx=24, ny=20, dx=1.0, dy=1.5)
    bound = cfl_dt_max(grid, 1.0, space_order)
    init = np.random.default_rng(0).standard_normal(grid.shape)
    peak = {}
    for factor in (0.95, 1.05):
        time = TimeAxis(dt_s=factor * bound, n_frames=2, frame_stride=400)
        solver = FDSolver(grid, Boundary("neumann", 0), time, space_order, "numpy", np.float64)
        monkeypatch.setattr(solver, "dt", lambda v, f=factor: f * bound)  # skip the check, test the bound
        with np.errstate(over="ignore", invalid="ignore"):
            frames = solver.run(np.ones(grid.shape), initial_field=init)
        peak[factor] = np.abs(frames[-1]).max()
    assert peak[0.95] < 10 * np.abs(init).max()
    assert not np.isfinite(peak[1.05]) or peak[1.05] > 1e6 * np.abs(init).max()


def _green_trace(t: np.ndarray, r: float, c: float, src: Source) -> np.ndarray:
    """u = (1/2πc²)·∫₀^∞ w(t − (r/c)·cosh s) ds: the 2-D Green's function convolved with the wavelet."""
    s_max = np.arccosh(max(1.0, c * t.max() / r)) + 1e-9
    out = [quad(lambda s, tt=tt: float(wavelet(src, np.array(tt - r / c * np.cosh(s)))), 0.0, s_max,
                limit=200)[0] if c * tt > r else 0.0 for tt in t]
    return np.asarray(out) / (2 * np.pi * c**2)


def test_point_source_matches_2d_greens_function():
    c, h = 2000.0, 5.0
    grid = Grid(nx=161, ny=161, dx=h, dy=h)
    src = Source(kind="point", x_m=400.0, y_m=400.0, freq_hz=20.0)
    dt = choose_dt(grid, c, 4)
    time = TimeAxis(dt_s=dt, n_frames=int(0.26 / dt) + 1, frame_stride=1)
    problem = Problem(grid, np.full(grid.shape, c), time, source=src, boundary=Boundary("dirichlet", 0),
                      space_order=4)
    frames = solve_fd(problem, backend="numpy", dtype=np.float64)
    trace = frames[:, 80, 80 + 30]  # receiver 150 m east; edges 400 m away: echoes arrive after 0.32 s
    exact = _green_trace(time.times_s, 150.0, c, src)
    assert np.abs(exact).max() > 0
    assert np.linalg.norm(trace - exact) < 0.03 * np.linalg.norm(exact)


def test_progress_accepts_a_rich_progress_and_frames_follow_the_stride():
    from rich.progress import Progress

    grid = Grid(nx=16, ny=12, dx=1.0, dy=1.0)
    time = TimeAxis(dt_s=0.3, n_frames=5, frame_stride=3)
    problem = Problem(grid, np.ones(grid.shape), time, initial=Initial(kind="mode"),
                      boundary=Boundary("dirichlet", 0))
    with Progress(disable=True) as bar:
        frames = solve_fd(problem, backend="numpy", dtype=np.float64, progress=bar)
        assert bar.tasks[0].completed == bar.tasks[0].total == 12
    every = solve_fd(Problem(grid, np.ones(grid.shape), TimeAxis(0.3, 13, 1), initial=Initial(kind="mode"),
                             boundary=Boundary("dirichlet", 0)), backend="numpy", dtype=np.float64)
    np.testing.assert_allclose(frames, every[::3], rtol=0, atol=1e-14)


def test_devito_solve_leaves_subnormal_arithmetic_intact():
    """A devito solve must not switch the process to flush-to-zero (as -ffast-math objects do)."""
    import subprocess
    import sys

    code = """
import sys
import numpy as np
from wavesurrogate.physics.fd import choose_dt, solve_fd
from wavesurrogate.physics.problem import Boundary, Grid, Problem, Source, TimeAxis
def ok():
    return sys.float_info.min / 4.0 > 0.0 and float(np.float32(1e-38) / np.float32(8.0)) > 0.0
before = ok()
g = Grid(24, 24, 10.0, 10.0)
p = Problem(g, np.full(g.shape, 1500.0), TimeAxis(choose_dt(g, 1500.0, 2), 3, 2),
            Source("point", 120.0, 120.0, 20.0), boundary=Boundary("dirichlet"))
solve_fd(p, backend="devito")
print(before, ok())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["True", "True"], out.stdout + out.stderr
