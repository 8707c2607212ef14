"""Velocity media, source wavelets and footprints, initial fields."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from wavesurrogate.errors import ConfigError
from wavesurrogate.physics import media
from wavesurrogate.physics.problem import Grid, Initial, Source
from wavesurrogate.physics.sources import (
    grid_footprint,
    initial_field,
    mode_omega,
    mode_shape,
    ricker,
    source_delay,
    standing_mode,
    wavelet,
)

GRID = Grid(nx=50, ny=40, dx=10.0, dy=5.0)


def test_grf_has_requested_mean_std_and_correlation_length():
    grid = Grid(nx=256, ny=256, dx=1.0, dy=1.0)
    ell = 6.0
    c = media.gaussian_random_field(grid, 2000.0, 0.1, ell, np.random.default_rng(3))
    assert c.mean() == pytest.approx(2000.0, rel=1e-3)  # exact before the ±3σ clip
    assert c.std() == pytest.approx(200.0, rel=0.02)  # clipping at ±3σ trims a little
    z = (c - c.mean()) / c.std()
    lag = int(ell)
    corr_x = np.mean(z[:, :-lag] * z[:, lag:])
    corr_y = np.mean(z[:-lag] * z[lag:])
    expected = np.exp(-0.5)  # Gaussian covariance exp(-r²/2ℓ²) at r = ℓ
    assert corr_x == pytest.approx(expected, abs=0.08)
    assert corr_y == pytest.approx(expected, abs=0.08)
    assert np.mean(z[:, :-3 * lag] * z[:, 3 * lag:]) < 0.1


def test_grf_is_reproducible_and_bounded():
    a = media.gaussian_random_field(GRID, 1500.0, 0.2, 30.0, np.random.default_rng(1))
    b = media.gaussian_random_field(GRID, 1500.0, 0.2, 30.0, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert a.shape == GRID.shape
    assert a.min() >= 1500.0 * (1 - 0.6) - 1e-9 and a.max() <= 1500.0 * (1 + 0.6) + 1e-9


def test_layered_puts_velocities_between_interfaces():
    c = media.layered(GRID, [1500.0, 2500.0, 3500.0], [50.0, 120.0])
    y = GRID.y
    assert np.all(c[y < 50.0] == 1500.0)
    assert np.all(c[(y >= 50.0) & (y < 120.0)] == 2500.0)
    assert np.all(c[y >= 120.0] == 3500.0)
    with pytest.raises(ConfigError, match="one interface fewer"):
        media.layered(GRID, [1500.0, 2500.0], [50.0, 120.0])
    with pytest.raises(ConfigError, match="increase"):
        media.layered(GRID, [1.0, 2.0, 3.0], [120.0, 50.0])


def test_inclusions_paint_circles_with_optional_smooth_edge():
    c = media.inclusions(GRID, 2000.0, [(250.0, 100.0, 60.0, 3000.0)])
    assert c[20, 25] == 3000.0  # centre (x = 250, y = 100)
    assert c[0, 0] == 2000.0
    assert np.sum(c == 3000.0) * GRID.dx * GRID.dy == pytest.approx(np.pi * 60.0**2, rel=0.1)
    smooth = media.inclusions(GRID, 2000.0, [(250.0, 100.0, 60.0, 3000.0)], smooth_m=10.0)
    assert smooth[20, 25 + 6] == pytest.approx(2500.0, rel=1e-9)  # on the circle: half-way
    r = media.random_inclusions(GRID, 2000.0, 3, (20.0, 40.0), (2500.0, 2600.0), np.random.default_rng(0))
    assert r.min() >= 2000.0 - 1e-9 and r.max() <= 2600.0 + 1e-9 and r.max() > 2400.0


def test_from_file_reads_npy_and_h5_and_rejects_bad_input(tmp_path):
    c = np.full(GRID.shape, 1800.0)
    np.save(tmp_path / "c.npy", c)
    np.testing.assert_array_equal(media.from_file(GRID, tmp_path / "c.npy"), c)
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f["velocity"] = c[None]
        f["other"] = c
    np.testing.assert_array_equal(media.from_file(GRID, tmp_path / "c.h5"), c)
    np.testing.assert_array_equal(media.from_file(GRID, tmp_path / "c.h5", "other"), c)
    with pytest.raises(ConfigError, match="not found"):
        media.from_file(GRID, tmp_path / "missing.npy")
    with pytest.raises(ConfigError, match="'nope' not in"):
        media.from_file(GRID, tmp_path / "c.h5", "nope")
    np.save(tmp_path / "small.npy", c[:-1])
    with pytest.raises(ConfigError, match="does not match"):
        media.from_file(GRID, tmp_path / "small.npy")
    np.save(tmp_path / "neg.npy", -c)
    with pytest.raises(ConfigError, match="positive"):
        media.from_file(GRID, tmp_path / "neg.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ConfigError, match="cannot read"):
        media.from_file(GRID, tmp_path / "junk.npy")


@pytest.mark.parametrize("src", [Source(kind="point", x_m=123.0, y_m=77.0),
                                 Source(kind="gaussian", x_m=250.0, y_m=100.0),
                                 Source(kind="gaussian", x_m=250.0, y_m=100.0, width_m=25.0)])
def test_footprint_integrates_to_one(src):
    g = grid_footprint(src, GRID)
    # a Gaussian loses the mass of its tail beyond the rectangle (< 1e-4 here)
    assert g.sum() * GRID.dx * GRID.dy == pytest.approx(1.0, rel=1e-12 if src.kind == "point" else 2e-4)
    j, i = np.unravel_index(np.argmax(g), g.shape)
    assert abs(GRID.x[i] - src.x_m) <= GRID.dx and abs(GRID.y[j] - src.y_m) <= GRID.dy


def test_point_footprint_is_bilinear():
    g = grid_footprint(Source(kind="point", x_m=123.0, y_m=77.0), GRID) * GRID.dx * GRID.dy
    # x = 12.3 cells, y = 15.4 cells
    assert g[15, 12] == pytest.approx(0.7 * 0.6)
    assert g[16, 13] == pytest.approx(0.3 * 0.4)
    assert np.count_nonzero(g) == 4
    assert np.all(grid_footprint(Source(kind="none"), GRID) == 0)


def test_ricker_peaks_at_delay_with_known_zero_crossings():
    src = Source(kind="point", freq_hz=15.0, amplitude=2.5)
    d = source_delay(src)
    assert d == pytest.approx(1.2 / 15.0)
    t = np.linspace(0, 0.2, 20001)
    w = wavelet(src, t)
    assert t[np.argmax(w)] == pytest.approx(d, abs=1e-5)
    assert w.max() == pytest.approx(2.5)
    zero = 1.0 / (np.pi * 15.0 * np.sqrt(2.0))
    assert ricker(np.array([d + zero, d - zero]), 15.0, d) == pytest.approx([0.0, 0.0], abs=1e-12)
    assert abs(wavelet(src, np.array([0.0]))[0]) < 2e-5 * 2.5  # delay 1.2/f: w(0) ≈ -1.8e-5
    assert np.all(wavelet(Source(kind="none"), t) == 0)


def test_standing_mode_solves_the_wave_equation():
    grid = Grid(nx=30, ny=20, dx=0.1, dy=0.2)
    c, m, n = 3.0, 2, 3
    w = mode_omega(grid, m, n, c)
    assert w**2 == pytest.approx(c**2 * np.pi**2 * ((m / grid.lx) ** 2 + (n / grid.ly) ** 2))
    x, y, t, e = 0.7, 1.1, 0.3, 1e-4
    for kind in ("dirichlet", "neumann"):
        def u(xx, yy, tt, kind=kind):
            return np.cos(w * tt) * mode_shape(grid, m, n, kind, np.array(xx), np.array(yy))

        utt = (u(x, y, t + e) - 2 * u(x, y, t) + u(x, y, t - e)) / e**2
        lap = (u(x + e, y, t) + u(x - e, y, t) + u(x, y + e, t) + u(x, y - e, t) - 4 * u(x, y, t)) / e**2
        assert utt == pytest.approx(c**2 * lap, rel=1e-3)
    assert np.allclose(mode_shape(grid, m, n, "dirichlet")[[0, -1]], 0.0)
    at_nodes = standing_mode(grid, m, n, "neumann", c, np.array([0.0, t]))
    np.testing.assert_allclose(at_nodes[1], np.cos(w * t) * mode_shape(grid, m, n, "neumann"))


def test_initial_fields():
    assert np.all(initial_field(Initial(), GRID, "absorbing") == 0)
    init = Initial(kind="gaussian", x_m=100.0, y_m=50.0, width_m=20.0, amplitude=3.0)
    g = initial_field(init, GRID, "dirichlet")
    assert g[10, 10] == pytest.approx(3.0) and g.max() == pytest.approx(3.0)
    mode = initial_field(Initial(kind="mode", m=1, n=2), GRID, "neumann")
    np.testing.assert_allclose(mode, mode_shape(GRID, 1, 2, "neumann"))
