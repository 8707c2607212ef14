"""eval.solve_cost: the room grid at f_max (closed form) and the per-step cost fit."""

from __future__ import annotations

import numpy as np
import pytest

from wavesurrogate.eval.solve_cost import fd_step_cost, room_grid
from wavesurrogate.physics.problem import Boundary


def test_room_grid_has_the_points_per_wavelength():
    g = room_grid((5.0, 4.0, 3.0), 500.0)  # h ≤ 343/(500·6) = 0.11433 m
    assert (g.nx, g.ny, g.nz) == (45, 36, 28)
    assert (g.lx, g.ly, g.lz) == pytest.approx((5.0, 4.0, 3.0))
    assert max(g.spacing) <= 343.0 / 3000.0 and min(g.spacing) > 0.95 * 343.0 / 3000.0


def test_step_cost_is_a_line_through_the_timed_runs():
    g = room_grid((0.6, 0.5, 0.4), 2000.0)
    cost = fd_step_cost(g, Boundary("impedance", impedance_rayl=7400.0), steps=(4, 12, 8), backend="numpy",
                        repeats=1)
    assert cost.per_step_s > 0 and cost.nodes == int(np.prod(g.shape)) and cost.steps == (4, 12, 8)
    assert cost.solve_s(4) == pytest.approx(cost.seconds[0])
    assert cost.solve_s(12) == pytest.approx(cost.seconds[1])
    assert cost.as_dict()["node_steps_per_s"] == pytest.approx(cost.nodes / cost.per_step_s)
