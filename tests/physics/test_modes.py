"""Eigenmodes of the FD operator (physics.fd.modes): the assembled matrix is the solver's stencil, an empty
rigid box gives the discrete cosine modes, and the modes projected with the wall damping reproduce a FD
impedance-room solve (source injection, receiver reading, Taylor start, wall weights: all the solver's)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from wavesurrogate.errors import ConfigError
from wavesurrogate.physics.fd import FDSolver, boundaries, choose_dt, core
from wavesurrogate.physics.fd.modes import assemble_operator, room_modes, wall_weights
from wavesurrogate.physics.problem import Boundary, Box, Grid, Source, TimeAxis
from wavesurrogate.physics.sources import box_modes_hz, grid_footprint, wavelet

C = 343.0
TABLE = (Box(x_m=(0.35, 0.65), y_m=(0.3, 0.5), z_m=(-0.1, 0.2)),)


@pytest.mark.parametrize("order", [2, 4])
def test_assembled_operator_is_the_solvers_stencil(order):
    g = Grid(9, 8, 0.1, 0.12, nz=7, dz=0.11)
    rng = np.random.default_rng(0)
    c = rng.uniform(300.0, 400.0, g.shape)
    L, mask = assemble_operator(g, c, order, TABLE if order == 2 else ())
    lay = core.make_layout(g, Boundary(kind="neumann"), order)
    b = core.face_coefficients(c, lay, order, core.operator_scale(g, 1.0, order), mask)
    u = np.zeros(lay.shape)
    v = rng.standard_normal(g.shape)
    u[lay.physical] = v
    want = core.apply_operator(core.fill_ghosts(u, lay), b, lay, order).reshape(-1)
    np.testing.assert_allclose(L @ v.reshape(-1), want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    if order == 2:  # symmetric under the wall weights: W L = (W L)ᵀ
        wl = (L.T.multiply(wall_weights(g.shape).reshape(-1))).T
        assert abs(wl - wl.T).max() < 1e-9 * abs(wl).max()


def test_empty_rigid_box_gives_the_discrete_cosine_modes():
    g = Grid(13, 10, 0.1, 0.11, nz=8, dz=0.12)
    log: list[dict] = []
    m = room_modes(g, np.full(g.shape, C), 1500.0, per_slice=60, log=log.append)  # slices: edges, dedup
    lam = [(4.0 / h**2) * np.sin(np.arange(n) * np.pi / (2 * (n - 1))) ** 2
           for n, h in zip(g.shape, g.spacing, strict=True)]
    ana = C * np.sqrt(lam[0][:, None, None] + lam[1][None, :, None] + lam[2][None, None, :]) / (2 * np.pi)
    want = np.sort(ana.reshape(-1))
    want = want[want < 1500.0]
    assert m.freq_hz.size == want.size == 899 and len(m.slices) > 10  # many slice edges crossed
    np.testing.assert_allclose(m.freq_hz, want, rtol=1e-8, atol=1e-4)  # λ = 0: roundoff
    gram = m.psi.T @ (m.weights[:, None] * m.psi)
    assert np.abs(gram - np.eye(gram.shape[0])).max() < 1e-8
    # the lowest five continuous box modes within 1 % (the grid's dispersion)
    np.testing.assert_allclose(m.freq_hz[1:6], box_modes_hz(g.lengths[::-1], C, 5), rtol=0.01)
    # a non-degenerate mode is the product of cosines
    z, y, x = np.meshgrid(*(np.arange(n) / (n - 1) for n in g.shape), indexing="ij")
    for lz, ly, lx in itertools.product(range(2), range(2), range(3)):
        f = np.sqrt(C**2 * (lam[0][lz] + lam[1][ly] + lam[2][lx])) / (2 * np.pi)
        k = int(np.argmin(np.abs(m.freq_hz - f)))
        if np.sum(np.abs(m.freq_hz - f) < 1e-6) != 1:
            continue
        cos = (np.cos(np.pi * lz * z) * np.cos(np.pi * ly * y) * np.cos(np.pi * lx * x)).reshape(-1)
        cos /= np.sqrt(np.sum(m.weights * cos**2))
        assert abs(np.sum(m.weights * cos * m.psi[:, k])) > 1 - 1e-9


def test_damped_projection_on_every_mode_reproduces_the_impedance_room_solve():
    """u = Σ ψ_n q_n with (1 + E) q⁺ = (2 − dt²Λ) q − (1 − E) q⁻ + dt² Ψᵀ W g w(t), E = ΨᵀWDΨ (the
    solver's wall damping D): every mode kept, the receiver traces equal the NumPy solver's."""
    g = Grid(9, 8, 0.125, 0.125, nz=6, dz=0.125)
    wall = Boundary(kind="impedance", impedance_rayl=3000.0, rho_kgm3=1.2)
    dt = choose_dt(g, C, 2)
    steps = 300
    src = Source(kind="point", x_m=0.31, y_m=0.52, z_m=0.44, freq_hz=300.0, wavelet="ricker")
    rec = np.array([[0, 0, 0], [3, 5, 7], [5, 2, 1], [2, 7, 4]])
    solver = FDSolver(g, wall, TimeAxis(dt, 2, steps), 2, "numpy", np.float64, obstacles=TABLE)
    _, traces = solver.run_recording(np.full(g.shape, C), rec, src)
    m = room_modes(g, np.full(g.shape, C), 1e5, obstacles=TABLE, per_slice=100)
    assert m.freq_hz.size == np.prod(g.shape) - int(solver.obstacles.sum())
    psi, w = m.psi, m.weights
    d = boundaries.impedance_damping(np.full(g.shape, C), solver.walls, g.spacing, dt).reshape(-1)
    e = psi.T @ ((w * d)[:, None] * psi)
    foot = grid_footprint(src, g)
    foot[solver.obstacles] = 0.0
    b = dt**2 * psi.T @ (w * foot.reshape(-1))
    wave = wavelet(src, np.arange(steps + 1) * dt)
    lam = (2 * np.pi * m.freq_hz) ** 2
    inv = np.linalg.inv(np.eye(lam.size) + e)
    read = psi[np.ravel_multi_index(tuple(rec.T), g.shape)]
    q_prev, q, out = 0.5 * b * wave[0], np.zeros(lam.size), [np.zeros(len(rec))]
    for n in range(steps):
        q_prev, q = q, inv @ ((2 - dt**2 * lam) * q - q_prev + e @ q_prev + b * wave[n])
        out.append(read @ q)
    np.testing.assert_allclose(np.array(out), traces, atol=1e-9 * np.abs(traces).max())


def test_cutoff_must_be_positive():
    g = Grid(4, 4, 0.1, 0.1, nz=4, dz=0.1)
    with pytest.raises(ConfigError, match="cutoff_hz"):
        room_modes(g, np.full(g.shape, C), 0.0)


def test_modes_are_deterministic_whatever_ran_before():
    """ARPACK's default start vector advances from call to call: without a seeded ``v0`` a second solve of
    the same room in the same process gives other eigenvectors (signs, degenerate bases)."""
    g = Grid(7, 6, 0.1, 0.11, nz=5, dz=0.12)
    c = np.full(g.shape, C)
    a = room_modes(g, c, 2500.0, per_slice=40)
    b = room_modes(g, c, 2500.0, per_slice=40)
    assert a.freq_hz.size == 210 and len(a.slices) > 3
    np.testing.assert_array_equal(a.freq_hz, b.freq_hz)
    np.testing.assert_array_equal(a.psi, b.psi)


def test_a_small_room_gets_every_mode_below_the_cutoff():
    """A room of no more nodes than ``per_slice`` + 2 (216 here, default 300) was refused with "more than
    20000 modes"; it is solved densely and gives the discrete cosine modes."""
    g = Grid(6, 6, 0.1, 0.1, nz=6, dz=0.1)
    m = room_modes(g, np.full(g.shape, C), 1000.0)
    lam = (4.0 / 0.1**2) * np.sin(np.arange(6) * np.pi / 10) ** 2
    ana = C * np.sqrt(lam[:, None, None] + lam[None, :, None] + lam[None, None, :]) / (2 * np.pi)
    want = np.sort(ana.reshape(-1))
    want = want[want < 1000.0]
    assert want.size == 35
    np.testing.assert_allclose(m.freq_hz, want, rtol=1e-8, atol=1e-4)
    gram = m.psi.T @ (m.weights[:, None] * m.psi)
    assert np.abs(gram - np.eye(gram.shape[0])).max() < 1e-8


def test_a_cutoff_with_too_many_modes_or_not_a_number_is_refused_before_any_solve(monkeypatch):
    from wavesurrogate.physics.fd import modes

    def no_solve(*a, **k):
        raise AssertionError("eigsh ran")

    monkeypatch.setattr(modes, "eigsh", no_solve)
    monkeypatch.setattr(modes, "MAX_MODES", 100)
    g = Grid(12, 10, 0.1, 0.1, nz=8, dz=0.1)  # 960 nodes; ~4,400 continuous modes below 10 kHz
    with pytest.raises(ConfigError, match="lower the cutoff"):
        room_modes(g, np.full(g.shape, C), 1e4)
    for bad in (True, "500", float("nan")):
        with pytest.raises(ConfigError, match="cutoff_hz"):
            room_modes(g, np.full(g.shape, C), bad)
