"""Verification of the 3-D FD solver (issue 15): convergence, box modes, image sources, impedance walls,
energy, devito against NumPy. Small grids; NumPy float64 unless said."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.signal import find_peaks

from wavesurrogate.errors import CFLError, ConfigError
from wavesurrogate.physics.checks import discrete_energy
from wavesurrogate.physics.fd import FDSolver, cfl_dt_max, choose_dt
from wavesurrogate.physics.problem import Boundary, Box, Grid, Initial, Source, TimeAxis
from wavesurrogate.physics.sources import box_modes_hz, grid_footprint, standing_mode, wavelet

C, RHO = 343.0, 1.2


def cube(n: int, length: float = 1.0) -> Grid:
    h = length / n
    return Grid(n + 1, n + 1, h, h, nz=n + 1, dz=h)


@pytest.mark.parametrize(("order", "kind", "want"), [(2, "neumann", 2.0), (2, "dirichlet", 2.0),
                                                      (4, "neumann", 4.0)])
def test_standing_mode_converges_at_the_order(order, kind, want):
    """Mode (2, 1, 1) of the unit cube at t = 0.5: slope 2 with dt ∝ h; slope 4 with dt ∝ h² (4th order)."""
    errs, t_end = [], 0.5
    dt0 = 0.5 * cfl_dt_max(cube(8), 1.0, order)
    for n in (8, 16, 32):
        dt = dt0 * (8 / n) ** (1 if order == 2 else 2)
        steps = int(np.ceil(t_end / dt))
        g = cube(n)
        solver = FDSolver(g, Boundary(kind, 0), TimeAxis(t_end / steps, 2, steps), order, "numpy", np.float64)
        frames = solver.run(np.ones(g.shape), initial=Initial("mode", m=2, n=1, l=1))
        exact = standing_mode(g, 2, 1, kind, 1.0, [t_end], l=1)[0]
        errs.append(np.sqrt(np.mean((frames[-1] - exact) ** 2)))
    slopes = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(slopes - want) < 0.25), (errs, slopes)


def test_rigid_box_modes_from_a_long_run_spectrum():
    """The five lowest peaks of a corner receiver's spectrum (Gaussian pulse at rest, 2,300 steps) are the
    modes (c/2)·√((l/Lx)² + (m/Ly)² + (n/Lz)²) within 1 %."""
    h = 0.05
    g = Grid(21, 15, h, h, nz=10, dz=h)  # 1.0 × 0.7 × 0.45 (units with c = 1)
    dt = choose_dt(g, 1.0, 2)
    steps = int(60.0 / dt)
    solver = FDSolver(g, Boundary("neumann"), TimeAxis(dt, 2, steps), 2, "numpy", np.float64)
    _, trace = solver.run_recording(np.ones(g.shape), [[1, 1, 1]],
                                    initial=Initial("gaussian", x_m=0.13, y_m=0.11, z_m=0.08, width_m=0.08))
    x = (trace[:, 0] - trace[:, 0].mean()) * np.hanning(len(trace))
    spec, f = np.abs(np.fft.rfft(x, 16 * len(x))), np.fft.rfftfreq(16 * len(x), dt)
    band = (f > 0.2) & (f < 1.5)
    peaks, _ = find_peaks(spec * band, height=0.05 * spec[band].max())
    exact = box_modes_hz((g.lx, g.ly, g.lz), 1.0, 5)
    # modes (1,0,0) (0,1,0) (1,1,0) (2,0,0) (0,0,1)
    closed_form = [0.5, 0.5 / 0.7, 0.5 * np.hypot(1, 1 / 0.7), 1.0, 0.5 / 0.45]
    np.testing.assert_allclose(exact, closed_form, rtol=1e-12)
    assert np.all(np.abs(f[peaks][:5] / exact - 1) < 0.01), (f[peaks][:5], exact)


def _images(s: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image sources of a rigid box: positions [k, 3] (x, y, z) and reflection orders [k]."""
    pos, order = [], []
    for n in itertools.product(range(-2, 3), repeat=3):
        for p in itertools.product((0, 1), repeat=3):
            pos.append([2 * n[k] * lengths[k] + (-s[k] if p[k] else s[k]) for k in range(3)])
            order.append(sum(abs(2 * n[k] - p[k]) for k in range(3)))
    return np.array(pos), np.array(order)


def test_direct_sound_and_first_reflections_arrive_as_image_sources():
    """Rigid 2.4 × 2.0 × 1.6 m room, Gaussian-pulse point source (400 Hz, ~10 cells per shortest wavelength):
    the trace equals the image-source sum Σ w(t − r_i/c)/(4πc²r_i) within 2 % (relative L2), and each of the
    direct sound and the six first-order reflections peaks within one sample of delay + r_i/c, read on the
    trace minus the image-source model of every other arrival (they overlap in a small room)."""
    h = 0.05
    g = Grid(49, 41, h, h, nz=33, dz=h)
    lengths = np.array([g.lx, g.ly, g.lz])
    s_pos, r_node = np.array([1.70, 1.00, 0.90]), np.array([24, 19, 16])
    src = Source("point", s_pos[0], s_pos[1], freq_hz=400.0, wavelet="gaussian", z_m=s_pos[2])
    pos, order = _images(s_pos, lengths)
    dist = np.linalg.norm(pos - r_node * h, axis=1)
    dt = choose_dt(g, C, 2)
    delay = 1.2 / 400.0
    steps = int((delay + (dist[order <= 1].max() + 0.7) / C) / dt)
    solver = FDSolver(g, Boundary("neumann"), TimeAxis(dt, 2, steps), 2, "numpy", np.float64)
    _, trace = solver.run_recording(np.full(g.shape, C), [r_node[::-1]], src)
    trace, t = trace[:, 0], np.arange(steps + 1) * dt
    model = {i: wavelet(src, t - dist[i] / C) / (4 * np.pi * C**2 * dist[i])
             for i in np.flatnonzero(dist < C * t[-1] + 1.0)}
    full = sum(model.values())
    assert np.linalg.norm(trace - full) / np.linalg.norm(trace) < 0.02
    offsets = []
    for i in np.flatnonzero(order <= 1):
        rest = trace - (full - model[i])
        t_pred = delay + dist[i] / C
        win = np.flatnonzero(np.abs(t - t_pred) < 0.6e-3)
        k = win[np.argmax(rest[win])]
        y0, y1, y2 = rest[k - 1:k + 2]
        offsets.append((t[k] + dt * 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2) - t_pred) / dt)
    assert len(offsets) == 7 and np.max(np.abs(offsets)) < 1.0, offsets


@pytest.mark.parametrize("order", [2, 4])
def test_impedance_wall_reflects_plane_waves_by_r(order):
    """A plane Gaussian pulse in a duct (rigid side walls) hits an impedance wall: the reflected peak over
    the incident peak at a receiver is (ξ − 1)/(ξ + 1) within 0.02 for ξ = Z/(ρc) ∈ {2, 5, 18}."""
    h, n = 0.05, 116
    g = Grid(n, 3, h, h, nz=3, dz=h)
    x0, xr = 60, 90
    dt = choose_dt(g, C, order)
    steps = int(100 * h / (C * dt))
    t = np.arange(steps + 1) * dt
    u0 = np.exp(-((g.x - x0 * h) ** 2) / (2 * (4 * h) ** 2))[None, None, :] * np.ones(g.shape)
    t_inc, t_ref, w = (xr - x0) * h / C, (xr - x0 + 2 * (n - 1 - xr)) * h / C, 40 * h / C
    for xi in (2.0, 5.0, 18.0):
        wall = Boundary("impedance", impedance_rayl=xi * RHO * C, rho_kgm3=RHO)
        walls = (Boundary("neumann"), Boundary("neumann"), (Boundary("neumann"), wall))
        solver = FDSolver(g, walls, TimeAxis(dt, 2, steps), order, "numpy", np.float64)
        _, trace = solver.run_recording(np.full(g.shape, C), [[1, 1, xr]], initial_field=u0)
        inc, ref = trace[np.abs(t - t_inc) < w, 0], trace[np.abs(t - t_ref) < w, 0]
        r = ref[np.argmax(np.abs(ref))] / inc[np.argmax(np.abs(inc))]
        assert abs(r - (xi - 1) / (xi + 1)) < 0.02, (xi, r)


def _room_solver(order: int, walls, backend: str = "numpy", n_frames: int = 2001, stride: int = 1):
    g = Grid(12, 10, 0.1, 0.1, nz=9, dz=0.1)
    vel = C * (1 + 0.2 * np.random.default_rng(1).random(g.shape))  # heterogeneous, ±10 %
    obstacles = [Box((0.4, 0.6), (0.3, 0.5), (0.0, 0.3))]  # on the floor
    dt = choose_dt(g, vel.max(), order)
    dtype = np.float64 if backend == "numpy" else np.float32
    return FDSolver(g, walls, TimeAxis(dt, n_frames, stride), order, backend, dtype, obstacles=obstacles), vel


def test_energy_is_conserved_with_rigid_walls_and_obstacles():
    """2,000 steps, heterogeneous c, a box obstacle: discrete energy constant to 1e-4 (2nd order); with
    impedance walls it never grows and decays."""
    init = Initial("gaussian", x_m=0.3, y_m=0.5, z_m=0.5, width_m=0.15)
    solver, vel = _room_solver(2, Boundary("neumann"))
    frames = solver.run(vel, initial=init)
    e = np.array([discrete_energy(solver, vel, frames[k + 1], frames[k]) for k in range(0, 2000, 50)])
    assert np.max(np.abs(e / e[0] - 1)) < 1e-4
    assert np.all(frames[:, 0:4, 3:6, 4:7] == 0.0)  # obstacle nodes stay at rest
    solver, vel = _room_solver(2, Boundary("impedance", impedance_rayl=7400.0), n_frames=301)
    frames = solver.run(vel, initial=init)
    e = np.array([discrete_energy(solver, vel, frames[k + 1], frames[k]) for k in range(0, 300, 10)])
    assert np.all(np.diff(e) <= 1e-12 * e[0]) and e[-1] < 0.9 * e[0]


def test_devito_matches_numpy_in_3d_with_every_wall_kind():
    """Mixed walls (impedance, rigid, sponge, Dirichlet), a box obstacle, a point source and receivers:
    devito float32 equals the NumPy float64 reference within 1e-5 of the peak, frames and traces."""
    walls = ((Boundary("impedance", impedance_rayl=7400.0), Boundary("neumann")),
             (Boundary("absorbing", 4), Boundary("dirichlet")), Boundary("impedance", impedance_rayl=2000.0))
    src = Source("point", 0.33, 0.61, 400.0, z_m=0.52)
    rec = np.array([[5, 3, 4], [5, 5, 9], [8, 8, 10]])
    out = []
    for backend in ("numpy", "devito"):
        solver, vel = _room_solver(2, walls, backend, n_frames=11, stride=20)
        out.append(solver.run_recording(vel, rec, src))
    (f64, t64), (f32, t32) = out
    assert f64.shape == f32.shape == (11, 9, 10, 12) and t64.shape == t32.shape == (201, 3)
    assert np.abs(f32 - f64).max() < 1e-5 * np.abs(f64).max()
    assert np.abs(t32 - t64).max() < 1e-5 * np.abs(t64).max()
    np.testing.assert_array_equal(t64[::20], f64[:, rec[:, 0], rec[:, 1], rec[:, 2]])
    # one solver reused (its state buffer not cleared between runs, frames written into fresh arrays): a
    # run after another case equals the first run bit for bit
    solver, vel = _room_solver(2, walls, "devito", n_frames=11, stride=20)
    first = solver.run_recording(vel, rec, src)
    solver.run(vel * 0.9, Source("point", 0.5, 0.4, 300.0, z_m=0.3))
    again = solver.run_recording(vel, rec, src)
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[1])


def test_3d_cfl_bound_and_bad_inputs():
    """dt_max = 1/(k·c·√(1/dx² + 1/dy² + 1/dz²)); an explicit dt above it is refused naming dz; receivers
    in an obstacle, an empty obstacle, and an impedance wall without Z are refused."""
    g = Grid(10, 8, 0.1, 0.2, nz=6, dz=0.05)
    want = 1.0 / (C * np.sqrt(1 / 0.01 + 1 / 0.04 + 1 / 0.0025))
    assert cfl_dt_max(g, C, 2) == pytest.approx(want, rel=1e-12)
    assert cfl_dt_max(g, C, 4) == pytest.approx(want * 6 / 7, rel=1e-12)
    with pytest.raises(CFLError, match="dz = 0.05 m"):
        choose_dt(g, C, 2, dt_s=1.01 * want)
    solver, vel = _room_solver(2, Boundary("neumann"), n_frames=2)
    with pytest.raises(ConfigError, match="inside an obstacle"):
        solver.run_recording(vel, [[0, 4, 5]])
    with pytest.raises(ConfigError, match="holds no grid node"):
        FDSolver(g, Boundary("neumann"), TimeAxis(1e-5, 2), obstacles=[Box((0.01, 0.02), (0.0, 1.0), (0, 1))])
    with pytest.raises(ConfigError, match="impedance"):
        FDSolver(g, Boundary("impedance"), TimeAxis(1e-5, 2))


def test_3d_point_source_footprint_integrates_to_one():
    """Trilinear point source and sampled Gaussian source: Σ g·dV = 1 inside the box."""
    g = cube(20, 2.0)
    for src in (Source("point", 0.73, 1.01, z_m=0.58), Source("gaussian", 1.0, 1.0, z_m=1.0, width_m=0.2)):
        fp = grid_footprint(src, g)
        assert fp.shape == g.shape
        assert np.sum(fp) * 0.1**3 == pytest.approx(1.0, rel=1e-6)
