"""wavestep2d: the physics initialisation is the solver's own s-step frame map (Chebyshev identity of the
leapfrog recurrence), checked against an independent leapfrog loop; the leapfrog forcing kind's weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.polynomial import chebyshev as C

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.models.wavestep import WaveStep2d, leapfrog_roots

LAP4 = np.array([-1 / 12, 4 / 3, -5 / 2, 4 / 3, -1 / 12])


@pytest.mark.parametrize("s", [1, 2, 3, 4, 5, 6, 7])
def test_roots_factor_the_frame_polynomial(s):
    x = np.linspace(0.0, 4.0, 23)
    exact = 2 * C.chebval(1 - x / 2, [0] * s + [1]) - 2
    fact = -(s**2) * x * np.prod([1 - x / r for r in leapfrog_roots(s)], axis=0)
    assert len(leapfrog_roots(s)) == s - 1
    np.testing.assert_allclose(fact, exact, atol=1e-9 * max(1.0, np.abs(exact).max()))


def _lap(u, dx, dy):
    p = np.pad(u, 2)
    ny, nx = u.shape
    return (sum(LAP4[k] * p[2:-2, k : k + nx] for k in range(5)) / dx**2
            + sum(LAP4[k] * p[k : k + ny, 2:-2] for k in range(5)) / dy**2)


def _physics(s, dt, dx, dy, cm, cs):
    return {"c_mean": cm, "c_std": cs, "dt_s": dt, "stride": s, "dx_m": dx, "dy_m": dy, "field_std": 1.0,
            "forcing_scale": 1.0}


@pytest.mark.parametrize("conv", [None, {"format": "cp", "rank": 3}])
def test_physics_init_is_the_s_step_leapfrog_map(conv):
    """Frames s steps apart from an independent leapfrog loop (zero outside the grid, as the convs pad):
    the untrained network's update gives the next frame to float64 round-off, in a varying medium."""
    rng = np.random.default_rng(0)
    ny, nx, s, dt, dx, dy = 24, 20, 5, 1.2e-3, 10.0, 12.0
    yy, xx = np.mgrid[0:ny, 0:nx]
    c = 2000.0 + 300.0 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    u_prev = np.exp(-((xx - 9) ** 2 + (yy - 12) ** 2) / 6.0) + 0.01 * rng.standard_normal((ny, nx))
    u = u_prev.copy()
    frames = [u.copy()]
    for n in range(2 * s):
        u, u_prev = 2 * u - u_prev + dt**2 * c**2 * _lap(u, dx, dy), u
        if (n + 1) % s == 0:
            frames.append(u.copy())
    cm, cs = 2100.0, 250.0
    torch.manual_seed(0)
    m = WaveStep2d(n_in=2, width=4, depth=6, kernel_size=5, hidden=4, conv=conv,
                   physics=_physics(s, dt, dx, dy, cm, cs)).double().eval()
    x = torch.from_numpy(np.stack([frames[0], frames[1], (c - cm) / cs]))[None]
    with torch.no_grad():
        r = m(x)[0, 0].numpy()
    pred = 2 * frames[1] - frames[0] + r
    err = np.linalg.norm(pred - frames[2]) / np.linalg.norm(frames[2])
    # float32 init of the gains and stencils (then .double()): 1e-6; CP: its free rank-one terms start at
    # 1e-4 of their random size
    assert err < (1e-6 if conv is None else 1e-4)
    assert np.linalg.norm(r) > 0.05 * np.linalg.norm(frames[2])  # the update is not trivial


def test_physics_needs_depth_of_the_stride_and_known_keys():
    with pytest.raises(ConfigError, match="depth >= 5"):
        WaveStep2d(depth=4, physics=_physics(5, 1e-3, 10.0, 10.0, 2000.0, 100.0))
    with pytest.raises(ConfigError, match="keys"):
        WaveStep2d(depth=5, physics={"c_mean": 1.0})
    with pytest.raises(ConfigError, match="CP"):
        WaveStep2d(depth=5, conv={"format": "tucker", "rank": 2},
                   physics=_physics(5, 1e-3, 10.0, 10.0, 2000.0, 100.0))


def test_leapfrog_forcing_weights_sum_to_the_interval_integral():
    """Each solver step's injection is split (s − j)/s onto frame k and j/s onto frame k + 1: the frames'
    amplitudes sum to the same total as the interval kind's, and a constant source gives equal amplitudes."""
    from wavesurrogate.physics import sources
    from wavesurrogate.physics.problem import Grid, Problem, Source, TimeAxis

    prob = Problem(grid=Grid(nx=16, ny=16, dx=10.0, dy=10.0), velocity=np.full((16, 16), 2000.0),
                   source=Source(kind="point", x_m=80.0, y_m=80.0, freq_hz=12.0, wavelet="ricker"),
                   time=TimeAxis(dt_s=1e-3, n_frames=60, frame_stride=4))
    a_int, g1 = sources.frame_forcing(prob, kind="interval")
    a_lf, g2 = sources.frame_forcing(prob, kind="leapfrog")
    np.testing.assert_array_equal(g1, g2)
    s, n = 4, 60
    m = np.arange((n - 1) * s)
    w = sources.wavelet(prob.source, m * 1e-3) * 1e-3  # the wavelet has decayed long before the last frame
    scale = np.abs(w).sum()
    np.testing.assert_allclose(a_lf.sum(), w.sum(), atol=1e-9 * scale)  # each step's weights sum to one
    # centre of mass: step m lands at frame (m + s)/s (hat centred on the frame after its interval's start)
    tol = 1e-9 * scale * n * s
    np.testing.assert_allclose((np.arange(n) * s * a_lf).sum(), ((m + s) * w).sum(), atol=tol)
    j = m % s  # interval kind: step m lands on frame k = (m − j)/s + 1
    np.testing.assert_allclose((np.arange(n) * s * a_int).sum(), ((m - j + s) * w).sum(), atol=tol)
    assert np.abs(a_lf - a_int).max() > 0.05 * np.abs(a_int).max()
    with pytest.raises(ConfigError, match="forcing kind"):
        sources.frame_forcing(prob, kind="centred")
