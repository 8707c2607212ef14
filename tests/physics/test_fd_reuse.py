"""FDSolver reused across runs: what one solver hoists and caches (Operator arguments, coefficient fields,
source set-up, the state at rest) never changes a result. Devito is compared bit for bit with a fresh
solver, and with the independent NumPy backend within float32 tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from wavesurrogate.physics import media
from wavesurrogate.physics.fd import FDSolver, choose_dt
from wavesurrogate.physics.problem import Boundary, Grid, Initial, Source, TimeAxis

GRID = Grid(nx=30, ny=24, dx=10.0, dy=8.0)
VEL_A = media.gaussian_random_field(GRID, 2000.0, 0.2, 60.0, np.random.default_rng(3))
VEL_B = media.gaussian_random_field(GRID, 1800.0, 0.2, 60.0, np.random.default_rng(4))
SRC_A = Source(kind="point", x_m=123.0, y_m=97.0, freq_hz=30.0)
SRC_B = Source(kind="gaussian", x_m=180.0, y_m=60.0, freq_hz=25.0)
INIT = Initial(kind="gaussian", x_m=100.0, y_m=90.0, width_m=20.0)
BOUNDARY = (Boundary("neumann"), Boundary("absorbing", 6))


def _time(space_order: int) -> TimeAxis:
    dt = choose_dt(GRID, 3600.0, space_order)  # fixed dt: every velocity here shares the time axis
    return TimeAxis(dt_s=dt, n_frames=7, frame_stride=9)


def _solver(space_order: int, backend: str = "devito") -> FDSolver:
    return FDSolver(GRID, BOUNDARY, _time(space_order), space_order, backend=backend,
                    dtype=np.float32 if backend == "devito" else np.float64)


CASES = {  # name: (velocity, source, initial)
    "a": (VEL_A, SRC_A, None),
    "b": (VEL_B, SRC_B, None),
    "a_init": (VEL_A, SRC_A, INIT),
}


@pytest.fixture(scope="module", params=[2, 4])
def fresh(request) -> tuple[int, dict[str, np.ndarray], FDSolver]:
    """Each case solved by a solver of its own (devito) and by the NumPy backend in float64; and one
    devito solver that the tests share and reuse (in any order, as a campaign or the baselines do)."""
    so = request.param
    out = {name: _solver(so).run(*case) for name, case in CASES.items()}
    out.update({f"{name}_numpy": _solver(so, "numpy").run(*case) for name, case in CASES.items()})
    return so, out, _solver(so)


def test_one_solver_reused_equals_fresh_solvers_bit_for_bit(fresh):
    so, ref, solver = fresh
    for name in ("a", "a", "b", "a_init", "a", "b", "a_init", "a_init"):
        frames = solver.run(*CASES[name])
        np.testing.assert_array_equal(frames, ref[name], err_msg=name)
        assert frames.flags.c_contiguous and frames.shape == (7, *GRID.shape)
        scale = np.abs(ref[f"{name}_numpy"]).max()
        assert scale > 0 and np.abs(frames - ref[f"{name}_numpy"]).max() < 1e-5 * scale, name


def test_cached_inputs_are_keyed_by_value_not_by_object(fresh):
    so, ref, solver = fresh
    vel = VEL_A.copy()
    first = solver.run(vel, SRC_A)
    np.testing.assert_array_equal(first, ref["a"])
    vel[:] = VEL_B  # the same array changed in place: a different medium
    np.testing.assert_array_equal(solver.run(vel, SRC_B), ref["b"])
    # equal values in other objects (float32 copy of the velocity, an equal Source) give the same answer
    same_src = Source(kind="point", x_m=123.0, y_m=97.0, freq_hz=30.0)
    np.testing.assert_array_equal(solver.run(VEL_A.copy(), same_src), ref["a"])
    other_src = Source(kind="point", x_m=123.0, y_m=97.0, freq_hz=31.0)
    assert not np.array_equal(solver.run(VEL_A, other_src), ref["a"])
    np.testing.assert_array_equal(solver.run(VEL_A, SRC_A), ref["a"])
    # frames returned earlier are the caller's own: later runs do not write into them
    np.testing.assert_array_equal(first, ref["a"])


def test_progress_chunks_and_explicit_initial_field_give_the_same_fields(fresh):
    so, ref, solver = fresh
    calls: list[int] = []
    chunked = solver.run(*CASES["a"], progress=lambda done, total: calls.append(done))
    np.testing.assert_array_equal(chunked, ref["a"])
    assert len(calls) > 1 and calls[-1] == _time(so).n_steps
    np.testing.assert_array_equal(solver.run(*CASES["a"]), ref["a"])
    # an explicit initial field equal to the Initial's gives the same run, and the rest state comes back
    u0 = ref["a_init"][0]
    np.testing.assert_allclose(solver.run(VEL_A, SRC_A, initial_field=u0), ref["a_init"], rtol=0,
                               atol=1e-6 * np.abs(ref["a_init"]).max())
    np.testing.assert_array_equal(solver.run(*CASES["a"]), ref["a"])


def test_bad_velocity_is_refused_after_a_good_one():
    from wavesurrogate.errors import ConfigError

    solver = _solver(2, "numpy")
    solver.run(VEL_A, SRC_A)
    bad = VEL_A.copy()
    bad[3, 4] = -1.0
    with pytest.raises(ConfigError, match="finite and positive"):
        solver.run(bad, SRC_A)
    with pytest.raises(ConfigError, match="does not match grid"):
        solver.run(VEL_A[:-1], SRC_A)


def test_frames_written_in_place_of_the_operator_buffer_and_the_full_grid(fresh):
    """The Operator writes each run's frames straight into the array run() returns (its own buffer stands
    in between runs): a bare kernel call after a run leaves the returned frames alone, and the full
    computational grid (another saved box, another Operator) holds the physical frames at the layout's
    physical slices."""
    so, ref, solver = fresh
    frames = solver.run(*CASES["b"])
    st = solver._devito
    st._apply(0, _time(so).n_steps, _time(so).frame_stride)  # into the Operator's own buffer
    np.testing.assert_array_equal(frames, ref["b"])
    full = solver.run(*CASES["b"], full=True)
    assert full.shape == (7, *solver.layout.shape)
    np.testing.assert_array_equal(full[(slice(None), *solver.layout.physical)], ref["b"])
    np.testing.assert_array_equal(solver.run(*CASES["a"]), ref["a"])
