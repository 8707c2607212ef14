"""Plots: files are written, readable, of the right frame count; the Pareto front is the non-dominated set."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wavesurrogate.eval import plots


def _fields(n: int = 4, ny: int = 12, nx: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    true = rng.standard_normal((n, ny, nx))
    return true, true + 0.1 * rng.standard_normal((n, ny, nx))


def test_pareto_front_is_the_non_dominated_set() -> None:
    cost = [10.0, 1.0, 5.0, 7.0, 2.0]
    err = [0.01, 0.5, 0.05, 0.2, 0.5]
    front = plots.pareto_front(cost, err)
    assert front == [1, 2, 0]  # (2, 0.5) ties (1, 0.5) at higher cost; (7, 0.2) is beaten by (5, 0.05)
    brute = [i for i in range(5)
             if not any(cost[j] <= cost[i] and err[j] <= err[i] and (cost[j], err[j]) != (cost[i], err[i])
                        for j in range(5))]
    assert sorted(front) == sorted(brute)


def test_symmetric_limit() -> None:
    assert plots._symmetric_limit(np.array([-3.0, 1.0]), np.array([2.0])) == 3.0
    assert plots._symmetric_limit(np.zeros(4)) == 1.0


def test_png_plots_are_written(tmp_path) -> None:
    true, pred = _fields()
    paths = [
        plots.snapshots(true, pred, [0.0, 1e-3, 2e-3, 3e-3], tmp_path / "snap.png",
                        extent_m=(0, 1.5, 0, 1.1)),
        plots.rollout_curves({"a": ([1, 2, 3], [0.01, 0.02, 0.04])}, tmp_path / "roll.png"),
        plots.pareto([{"label": "a", "params": 100, "latency_ms": 1.0, "error": 0.1},
                      {"label": "b", "params": 1000, "latency_ms": 2.0, "error": 0.05}], tmp_path / "p.png"),
        plots.training_curves({"a": [{"epoch": 0, "train_loss": 1.0, "val_loss": 1.1},
                                     {"epoch": 1, "train_loss": 0.5, "val_loss": None}]}, tmp_path / "t.png"),
    ]
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 200
    assert sorted(x.name for x in tmp_path.iterdir()) == ["p.png", "roll.png", "snap.png", "t.png"]  # no temp


def test_rollout_gif_has_one_frame_per_field_frame(tmp_path) -> None:
    true, pred = _fields(n=5)
    out = plots.rollout_gif(true, pred, tmp_path / "r.gif", times_s=np.arange(5) * 1e-3, title="x")
    with Image.open(out) as im:
        assert im.format == "GIF" and im.n_frames == 5


def test_shape_mismatch_is_an_error(tmp_path) -> None:
    true, pred = _fields()
    with pytest.raises(ValueError, match="snapshots"):
        plots.snapshots(true, pred[:, :-1], [0, 1, 2, 3], tmp_path / "x.png")
    with pytest.raises(ValueError, match="rollout_gif"):
        plots.rollout_gif(true, pred[:2], tmp_path / "x.gif")


def test_elastic_curves_draw_each_family_as_a_line(tmp_path) -> None:
    from matplotlib.figure import Figure

    def rec(run, params, ms, err, fam=None, b=1, r=1):
        el = None if fam is None else {"family": fam, "blocks": b, "rank": r}
        return {"run": run, "params": params, "latency_b1": {"median_ms": ms}, "test_rel_l2": err,
                "elastic": el}

    records = [rec("s1", 500, 1.0, 0.2, "/r/fixed", 1, 2), rec("full", 5000, 3.0, 0.05, "/r/fixed", 4, 12),
               rec("s2", 1500, 1.8, 0.1, "/r/fixed", 2, 3), rec("alone", 500, 1.0, 0.25)]
    drawn = {}
    orig = Figure.savefig

    def spy(self, *a, **k):
        drawn["lines"] = [[tuple(ln.get_xdata()) for ln in ax.get_lines()] for ax in self.axes]
        return orig(self, *a, **k)

    Figure.savefig = spy
    try:
        out = plots.elastic_curves(records, tmp_path / "e.png")
    finally:
        Figure.savefig = orig
    assert Image.open(out).size[0] > 100
    assert drawn["lines"][0] == [(500.0, 1500.0, 5000.0)]  # one family, sorted by size; "alone" a point
    assert drawn["lines"][1] == [(1.0, 1.8, 3.0)]
