"""Coarse-solver baselines: geometry by closed form, the fine solve reproduced, convergence, verdicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from wavesurrogate.data.campaign import run_campaign
from wavesurrogate.data.store import open_data
from wavesurrogate.errors import ConfigError
from wavesurrogate.eval.baselines import (
    beaten,
    coarse_grid,
    coarse_problem,
    coarse_solves,
    coarsening,
    coarsest_no_worse,
    linear_weights,
    resample,
    row_error,
    verdict,
)
from wavesurrogate.io import to_json
from wavesurrogate.physics.fd.core import cfl_dt_max
from wavesurrogate.physics.problem import Boundary, Grid, Initial, Problem, Source, TimeAxis


def test_coarse_grid_node_counts_and_spacing() -> None:
    g = Grid(64, 48, 10.0, 5.0)
    assert coarse_grid(g, 1.0) is g
    h = coarse_grid(g, 0.5)  # n' = round(63·0.5) + 1 = 33 (31.5 rounds to even 32), round(47·0.5) + 1 = 25
    assert (h.nx, h.ny) == (33, 25)
    assert h.dx == pytest.approx(630.0 / 32) and h.dy == pytest.approx(235.0 / 24)
    assert (h.lx, h.ly) == pytest.approx((g.lx, g.ly))  # the same rectangle
    q = coarse_grid(g, 0.75)
    assert (q.nx, q.ny) == (round(63 * 0.75) + 1, round(47 * 0.75) + 1) == (48, 36)
    for bad in (0.0, 1.5, -0.5, float("nan")):
        with pytest.raises(ConfigError, match="factor"):
            coarse_grid(g, bad)
    with pytest.raises(ConfigError, match="need ≥ 3"):
        coarse_grid(Grid(9, 9, 1.0, 1.0), 0.1)


def test_coarsening_width_and_time_step() -> None:
    g, b = Grid(25, 25, 10.0, 10.0), Boundary("absorbing", 6)
    dt, stride, c_max = 1e-3, 4, 3000.0
    fine = coarsening(g, b, 4, 1.0, dt, stride, c_max)
    assert (fine.dt_s, fine.steps_per_frame, fine.width) == (dt, stride, (6, 6))  # the stored solve
    c = coarsening(g, b, 4, 0.5, dt, stride, c_max, cfl_safety=0.9)
    assert (c.grid.nx, c.grid.dx, c.width) == (13, 20.0, (3, 3))  # 6 cells of 10 m = 3 cells of 20 m
    bound = 0.9 / (7 / 6 * c_max * math.sqrt(2) / 20.0)  # 4th order: k = 7/6
    assert bound == pytest.approx(0.9 * cfl_dt_max(c.grid, c_max, 4))
    k = math.ceil(dt * stride / bound)  # smallest stable integer subdivision of a frame
    assert c.steps_per_frame == k and c.dt_s == pytest.approx(dt * stride / k)
    assert c.dt_s <= bound < dt * stride / (k - 1)
    assert c.steps_per_frame < stride  # the coarse grid takes fewer, longer steps
    d = coarsening(Grid(25, 25, 10.0, 10.0), Boundary("dirichlet", 20), 2, 0.5, dt, stride, c_max)
    assert d.width == (10, 10)  # recorded as scaled; a reflecting boundary has no layer to use it


def test_bilinear_resampling_is_exact_for_bilinear_functions() -> None:
    ys, xs = np.linspace(0, 3, 4), np.linspace(0, 5, 6)
    yd, xd = np.linspace(0, 3, 11), np.linspace(0, 5, 7)
    f = lambda y, x: 2.0 + 0.5 * x - 1.5 * y + 0.25 * x * y  # noqa: E731
    a = f(ys[:, None], xs[None, :])
    got = resample(np.stack([a, 2 * a]), (ys, xs), (yd, xd))
    want = f(yd[:, None], xd[None, :])
    np.testing.assert_allclose(got[0], want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[1], 2 * want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(linear_weights(xs, xs), np.eye(6))  # nodes map onto themselves


def test_coarse_problem_keeps_the_physics() -> None:
    g = Grid(25, 25, 10.0, 10.0)
    vel = 2000.0 + 2.0 * g.x[None, :] + 0.0 * g.y[:, None]  # linear: resampled exactly
    p = Problem(g, vel, TimeAxis(1e-3, 5, 4), Source("gaussian", 100.0, 120.0, 15.0),
                Initial("gaussian", 50.0, 60.0, 30.0), Boundary("absorbing", 6), 4)
    c = coarsening(g, p.boundary, 4, 0.5, 1e-3, 4, 2500.0)
    q = coarse_problem(p, c)
    assert q.grid == c.grid and q.boundary == Boundary("absorbing", 3)
    np.testing.assert_allclose(q.velocity, 2000.0 + 2.0 * q.grid.x[None, :].repeat(13, 0), rtol=1e-12)
    assert (q.source.x_m, q.source.y_m, q.source.width_m) == (100.0, 120.0, 20.0)  # fine default 2·dx kept
    assert q.initial == p.initial
    assert q.time == TimeAxis(c.dt_s, 5, c.steps_per_frame)


def _campaign(tmp: Path) -> Path:
    cfg = {
        "name": "smooth", "seed": 1, "cases": 1, "test_cases": 1, "test_seed": 7,
        "solver": {"kind": "fd", "space_order": 4, "backend": "devito"},
        "grid": {"nx": 25, "ny": 25, "dx_m": 10.0, "dy_m": 10.0},
        "time": {"n_frames": 6, "frame_stride": 4},
        "boundary": {"kind": "absorbing", "width": 6},
        "medium": {"kind": "constant", "c_mps": 2000.0},
        "source": {"kind": "none"},
        "initial": {"kind": "gaussian", "x_m": [110.0, 130.0], "y_m": [110.0, 130.0], "width_m": 40.0},
    }
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return run_campaign(path, tmp / "data.h5", workers=1, progress=False)


@pytest.fixture(scope="module")
def solves(tmp_path_factory):
    data = _campaign(tmp_path_factory.mktemp("coarse"))
    with open_data(data) as f:
        return coarse_solves(f, [0, 1], (1.0, 0.75, 0.5), repeats=2, start=2), f.n_frames, data


def test_fine_solve_reproduces_the_stored_fields(solves) -> None:
    rows, _, _ = solves
    fine = rows[0]
    assert fine["factor"] == 1.0 and fine["geometry"]["grid"] == [25, 25]
    assert fine["error_all_frames"] <= 1e-6 and all(c["error"] <= 1e-6 for c in fine["cases"])
    assert fine["seconds"] > 0 and all(c["seconds_min"] <= c["seconds"] for c in fine["cases"])


def test_coarser_is_less_accurate_and_cheaper_in_steps(solves) -> None:
    rows, n_frames, _ = solves
    fine, q, h = rows
    assert q["geometry"]["grid"] == [19, 19] and h["geometry"]["grid"] == [13, 13]
    assert h["geometry"]["width"] == [3, 3] and q["geometry"]["width"] == [round(6 * 10 / (240 / 18))] * 2
    assert fine["error"] < q["error"] < h["error"] < 0.15  # a smooth pulse: small, growing with h
    assert h["n_steps"] <= q["n_steps"] <= fine["n_steps"] == (n_frames - 1) * 4
    for r in rows:  # pooled errors agree with the per-frame norms and with the start they were asked for
        assert row_error(r, 2) == pytest.approx(r["error"])
        assert row_error(r, 0) == pytest.approx(r["error_all_frames"])
    json.loads(to_json(rows))  # plain JSON


def test_bad_inputs_are_one_line_errors(solves) -> None:
    with open_data(solves[2]) as f:
        for kw, msg in (({"threads": 2}, "threads"), ({"repeats": 0}, "repeats"), ({"start": 99}, "start"),
                        ({"factors": (1.0, 2.0)}, "factor")):
            with pytest.raises(ConfigError, match=msg) as e:
                coarse_solves(f, [0], **kw)
            assert "\n" not in str(e.value)


ROWS = [
    {"label": "full-resolution", "error": 0.0, "seconds": 0.050},
    {"label": "¾-resolution", "error": 0.02, "seconds": 0.020},
    {"label": "½-resolution", "error": 0.041, "seconds": 0.007},
]


def test_coarsest_no_worse_and_beaten() -> None:
    assert coarsest_no_worse(ROWS, 0.05)["label"] == "½-resolution"
    assert coarsest_no_worse(ROWS, 0.03)["label"] == "¾-resolution"
    assert coarsest_no_worse(ROWS, 0.0)["label"] == "full-resolution"
    assert coarsest_no_worse(ROWS, -1.0) is None
    assert beaten(0.05, 0.009, ROWS)  # ½ resolution: 4.1 % < 5 % and 7 ms < 9 ms
    assert not beaten(0.03, 0.005, ROWS)  # faster than every solve
    assert not beaten(0.01, 0.030, ROWS)  # only the full solve is more accurate, and it is slower
    assert beaten(0.01, 0.060, ROWS)


def test_verdict_sentences_follow_the_numbers() -> None:
    lost = verdict([{"name": "A", "error": 0.05, "seconds": 0.009},
                    {"name": "B", "error": 0.06, "seconds": 0.012}], ROWS)
    assert lost.startswith("No surrogate beats the ½-resolution solve (4.1 %, 7 ms) on both error and time")
    won = verdict([{"name": "X", "error": 0.03, "seconds": 0.002}], ROWS)
    assert won == ("X beats every coarse solve of equal error: the cheapest solve at least as accurate, the "
                   "¾-resolution one (2.0 % against 3.0 %), takes 20 ms against 2 ms (10×).")
    mixed = verdict([{"name": "X", "error": 0.03, "seconds": 0.002},
                     {"name": "Y", "error": 0.05, "seconds": 0.009}], ROWS)
    assert "X beats every coarse solve" in mixed
    assert ("Y (5.0 %, 9 ms) is beaten on both error and time by the ½-resolution solve (4.1 %, 7 ms)."
            in mixed)
    assert verdict([], ROWS).startswith("No coarse-solver comparison")


def test_bench_comparison_table_and_report(solves) -> None:
    from wavesurrogate.eval.baselines import coarsest_no_worse
    from wavesurrogate.eval.bench import coarse_comparison
    from wavesurrogate.eval.report import verdicts
    from wavesurrogate.eval.table import COARSE_COLUMNS, format_table

    rows, n_frames, data = solves
    half = rows[2]
    base = {"data": str(Path(data).resolve()), "grid": [25, 25], "rollout_first_frame": 2,
            "n_frames": n_frames, "rollout_horizon": 2}
    # "slow" is worse than the ½-resolution solve on both; "fast" is 1,000× faster than any solve
    slow = {**base, "run": "slow", "rollout_rel_l2_all": 2 * half["error"], "rollout_latency_s": 10.0}
    fast = {**base, "run": "fast", "rollout_rel_l2_all": 2 * half["error"], "rollout_latency_s": 1e-6}
    comp = coarse_comparison([slow, fast], (1.0, 0.5), repeats=1, max_cases=1)
    assert len(comp) == 1 and comp[0]["start"] == 2 and comp[0]["cases"] == [1]  # the test case
    assert [r["factor"] for r in comp[0]["rows"]] == [1.0, 0.5]
    assert comp[0]["rows"][0]["error"] == 0.0  # the fine solve, re-run
    pts = {m["name"]: m for m in comp[0]["models"]}
    assert pts["slow"]["seconds"] == pytest.approx(10.0 / 2 * (n_frames - 2))  # scaled to predicted frames
    # the cheapest measured solve that beats "slow" (at 25² the full and ½ solves cost about the same, so
    # which is cheaper is the timing's to say)
    solved = comp[0]["rows"]
    beating = [r for r in solved if r["error"] < 2 * half["error"] and r["seconds"] < pts["slow"]["seconds"]]
    cheapest = min(beating, key=lambda r: r["seconds"])
    assert slow["coarse_beaten_by"] == cheapest["label"] and fast["coarse_beaten_by"] is None
    said = comp[0]["verdict"]
    assert "slow (" in said and f"is beaten on both error and time by the {cheapest['label']} solve" in said
    assert "fast beats every coarse solve of equal error" in said
    lat = {"median_ms": 1.0, "per_sample_ms": 1.0}
    runs = [{**r, "params": 10, "weight_bytes": 40, "latency_b1": lat, "latency_b32": lat}
            for r in (slow, fast)]
    bench = {"runs": runs, "coarse": comp}
    md = format_table(bench)
    assert "| " + " | ".join(COARSE_COLUMNS) + " |" in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| slow (rollout)"))
    no_worse = coarsest_no_worse(solved, slow["rollout_rel_l2_all"])  # the timing's to say, as above
    assert no_worse is not None and line.endswith(f"| **{no_worse['label']} solve** |")
    assert next(ln for ln in md.splitlines() if ln.startswith("| fast (rollout)")).endswith("| none |")
    assert next(ln for ln in md.splitlines() if ln.startswith("| FD ½-resolution")).startswith(
        "| FD ½-resolution | 13×13 | 2 |")
    assert comp[0]["verdict"] in verdicts(bench)


def test_solver_pareto_figure(tmp_path: Path) -> None:
    from PIL import Image

    from wavesurrogate.eval.plots import solver_pareto

    out = solver_pareto([{"name": "X", "error": 0.03, "seconds": 0.002}], ROWS, tmp_path / "p.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 300
