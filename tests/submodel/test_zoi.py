"""ZOI submodel: exact traces reproduce the full FE solve, frame-sampled traces, alignment, refinement."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.interpolate import RegularGridInterpolator

from wavesurrogate.errors import ConfigError
from wavesurrogate.physics import media
from wavesurrogate.physics.fe import solve_fe
from wavesurrogate.physics.problem import Boundary, Grid, Problem, Source, TimeAxis
from wavesurrogate.physics.zoi import (
    Zoi,
    boundary_indices,
    boundary_trace,
    exact_trace,
    interpolate_trace,
    solve_zoi,
    zoi_grid,
)

GRID = Grid(41, 41, 10.0, 10.0)
ZOI = Zoi(20, 15, 15, 13)


def _problem(stride: int, source: Source | None = None, n_steps: int = 240) -> Problem:
    c = media.gaussian_random_field(GRID, 1500.0, 0.1, 80.0, np.random.default_rng(0))
    src = source or Source("point", 120.0, 150.0, freq_hz=10.0)  # outside the ZOI (x 200..340, y 150..270)
    return Problem(GRID, c, TimeAxis(0.002, n_steps // stride + 1, stride), source=src,
                   boundary=Boundary("absorbing", 10))


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _every_step(p: Problem) -> Problem:
    return replace(p, time=TimeAxis(p.time.dt_s, p.time.n_steps + 1, 1))


def test_boundary_trace_order_and_count():
    frames = (1000.0 * np.arange(GRID.ny)[:, None] + np.arange(GRID.nx)[None, :])[None].repeat(2, axis=0)
    tr = boundary_trace(frames, ZOI)
    assert tr.shape == (2, 2 * (15 + 13) - 4) == (2, ZOI.n_boundary)
    j, i = np.divmod(tr[0], 1000.0)
    assert (j[0], i[0]) == (15, 20)  # lower-left corner first
    assert (j[14], i[14]) == (15, 34) and (j[26], i[26]) == (27, 34) and (j[40], i[40]) == (27, 20)
    steps = np.abs(np.diff(np.r_[j, j[0]])) + np.abs(np.diff(np.r_[i, i[0]]))
    assert np.all(steps == 1)  # a closed walk of unit steps ...
    assert len(set(zip(j, i, strict=True))) == ZOI.n_boundary  # ... visiting each node once
    # counter-clockwise: the first turn (bottom edge → right edge) is to the left
    assert (i[1] - i[0]) * (j[15] - j[14]) - (j[1] - j[0]) * (i[15] - i[14]) > 0
    jj, ii = boundary_indices(ZOI)
    on_edge = (jj == 15) | (jj == 27) | (ii == 20) | (ii == 34)
    assert on_edge.all()
    assert zoi_grid(GRID, ZOI) == Grid(15, 13, 10.0, 10.0)
    assert zoi_grid(GRID, ZOI, refine=2) == Grid(29, 25, 5.0, 5.0)


@pytest.mark.parametrize("element", ["p1", "q1"])
@pytest.mark.parametrize("inside", [False, True])
def test_exact_trace_at_every_step_reproduces_the_full_solve(element, inside):
    src = Source("gaussian", 260.0, 200.0, freq_hz=10.0) if inside else None
    p = _problem(stride=4, source=src)
    full_steps = solve_fe(_every_step(p), element=element)
    trace = boundary_trace(full_steps, ZOI)
    sub = solve_zoi(p, ZOI, trace, _every_step(p).time.times_s, element=element)
    ref = full_steps[:: p.time.frame_stride][(slice(None), *ZOI.slices)]
    assert sub.shape == ref.shape == (p.time.n_frames, ZOI.ny, ZOI.nx)
    assert np.abs(ref).max() > 0.05 * np.abs(full_steps).max()  # the wave is in the ZOI
    assert np.abs(sub - ref).max() <= 1e-11 * np.abs(ref).max()
    # the same trace recorded during a strided solve, without storing every step
    frames, recorded, times = exact_trace(p, ZOI, element=element)
    np.testing.assert_array_equal(frames, full_steps[:: p.time.frame_stride])
    np.testing.assert_array_equal(recorded, trace)
    np.testing.assert_allclose(times, _every_step(p).time.times_s, rtol=1e-15)


def _sampled_errors(stride: int, element: str = "p1") -> dict[str, float]:
    p = _problem(stride)
    frames = solve_fe(p, element=element)
    ref = frames[(slice(None), *ZOI.slices)]
    trace, times = boundary_trace(frames, ZOI), p.time.times_s
    out = {kind: _rel(solve_zoi(p, ZOI, trace, times, element=element, time_interp=kind), ref)
           for kind in ("cubic", "linear")}
    # the classic bug: frame k's trace used at frame k − 1 (or k + 1)
    out["shifted"] = _rel(solve_zoi(p, ZOI, np.vstack([trace[1:], trace[-1:]]), times, element=element), ref)
    out["lagged"] = _rel(solve_zoi(p, ZOI, np.vstack([trace[:1], trace[:-1]]), times, element=element), ref)
    return out


def test_frame_sampled_trace_time_interpolation_error(record_property):
    e4, e8 = _sampled_errors(4), _sampled_errors(8)
    record_property("zoi_errors_stride4", e4)
    record_property("zoi_errors_stride8", e8)
    print(f"\nZOI relative L2 error, trace at frames: stride 4 {e4}, stride 8 {e8}")
    assert e4["cubic"] < 1e-3 and e4["linear"] < 0.05
    assert e4["cubic"] < e4["linear"] / 10
    # linear interpolation is O(Δt²), the cubic spline O(Δt⁴): halving the frame interval gains ~4× / ≥ 10×
    assert e8["linear"] / e4["linear"] > 3
    assert e8["cubic"] / e4["cubic"] > 10
    # a trace off by one frame is clearly worse than the interpolation error
    for e in (e4, e8):
        assert min(e["shifted"], e["lagged"]) > 5 * e["linear"] and e["linear"] > 5 * e["cubic"]


def test_refined_submodel_approaches_the_fine_solution():
    """refine=2 driven by a fine full solve beats the coarse full solve and refine=1 on the same trace."""
    p = _problem(stride=8, source=Source("point", 120.0, 150.0, freq_hz=15.0), n_steps=160)
    fine = Grid(81, 81, 5.0, 5.0)
    Y, X = np.meshgrid(fine.y, fine.x, indexing="ij")
    c_fine = RegularGridInterpolator((GRID.y, GRID.x), p.velocity)(np.stack([Y, X], axis=-1))
    pf = Problem(fine, c_fine, TimeAxis(p.time.dt_s / 2, 2 * p.time.n_steps + 1, 1), source=p.source,
                 boundary=Boundary("absorbing", 20))
    full_fine = solve_fe(pf)[:, ::2, ::2]  # every fine step, coarse nodes
    ref = full_fine[:: 2 * p.time.frame_stride][(slice(None), *ZOI.slices)]
    trace = boundary_trace(full_fine, ZOI)
    coarse_full = _rel(solve_fe(p)[(slice(None), *ZOI.slices)], ref)
    zoi1 = _rel(solve_zoi(p, ZOI, trace, pf.time.times_s, refine=1), ref)
    zoi2 = _rel(solve_zoi(p, ZOI, trace, pf.time.times_s, refine=2), ref)
    assert zoi2 < 0.3 * zoi1 and zoi2 < 0.3 * coarse_full and zoi2 < 0.05


def test_interpolate_trace_is_exact_at_knots_and_for_low_degree():
    tt = np.linspace(0.0, 1.0, 9)
    t = np.linspace(0.0, 1.0, 41)
    cubic = np.stack([tt**3 - tt, 2 * tt**2], axis=1)
    np.testing.assert_allclose(interpolate_trace(cubic, tt, t), np.stack([t**3 - t, 2 * t**2], 1), atol=1e-12)
    np.testing.assert_allclose(interpolate_trace(3 * tt[:, None] + 1, tt, t, "linear"), 3 * t[:, None] + 1)
    np.testing.assert_array_equal(interpolate_trace(cubic, tt, tt), cubic)


def test_bad_inputs_are_one_line_config_errors():
    p = _problem(stride=4, n_steps=8)
    trace = np.zeros((p.time.n_frames, ZOI.n_boundary))
    with pytest.raises(ConfigError, match="zoi"):
        solve_zoi(p, Zoi(30, 30, 15, 15), trace, p.time.times_s)
    with pytest.raises(ConfigError, match="trace"):
        solve_zoi(p, ZOI, trace[:, :-1], p.time.times_s)
    with pytest.raises(ConfigError, match="covers"):
        solve_zoi(p, ZOI, trace[:-1], p.time.times_s[:-1])
    with pytest.raises(ConfigError, match="refine"):
        solve_zoi(p, ZOI, trace, p.time.times_s, refine=0)
