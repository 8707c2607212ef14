"""Case splits, normalisation statistics, forecast windows and source-to-field points on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wavesurrogate.data.windows import (
    compute_stats,
    split_cases,
)
from wavesurrogate.errors import DataFileError
from wavesurrogate.tasks.forecast import ForecastWindows
from wavesurrogate.tasks.source_to_field import SourceToFieldPoints


@settings(max_examples=60, deadline=None)
@given(
    split=st.lists(st.integers(0, 1), min_size=0, max_size=40),
    frac=st.floats(0.0, 0.9),
    seed=st.integers(0, 2**31),
    data=st.data(),
)
def test_split_cases_disjoint_by_case_and_complete(split, frac, seed, data):
    n = len(split)
    done = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    s = split_cases(n, np.array(split, np.uint8), frac, seed, done)
    tr, va, te = (set(a.tolist()) for a in s)
    assert not (tr & va) and not (tr & te) and not (va & te)
    idx = np.arange(n)
    assert te == set(idx[(np.array(split) == 1) & done].tolist()) if n else te == set()
    pool = set(idx[(np.array(split, int) == 0) & done].tolist()) if n else set()
    assert tr | va == pool
    if frac > 0 and len(pool) >= 2:
        assert len(va) >= 1 and len(tr) >= 1
    assert all(np.all(np.diff(a) > 0) for a in s)


def test_split_cases_is_seeded_and_counts_val_fraction():
    split = np.array([0] * 10 + [1] * 3, np.uint8)
    a = split_cases(13, split, 0.3, seed=5)
    assert len(a.val) == 3 and len(a.train) == 7 and a.test.tolist() == [10, 11, 12]
    b = split_cases(13, split, 0.3, seed=5)
    assert a.val.tolist() == b.val.tolist()
    others = {tuple(split_cases(13, split, 0.3, seed=s).val.tolist()) for s in range(10)}
    assert len(others) > 1  # the seed matters


def test_split_cases_rejects_bad_split_values():
    with pytest.raises(DataFileError, match="split values"):
        split_cases(3, np.array([0, 2, 1], np.uint8), 0.0, 0)


def test_compute_stats_against_numpy():
    rng = np.random.default_rng(0)
    f = rng.normal(2.0, 3.0, size=(3, 4, 5, 6)).astype(np.float32)
    v = rng.uniform(1500, 3000, size=(3, 5, 6)).astype(np.float32)
    s = compute_stats(f, v, params={"a": np.array([1.0, 2.0, 6.0]), "k": np.array([4.0, 4.0, 4.0])},
                      param_names=["k", "a"],
                      coords={"x": np.linspace(0, 2, 6), "y": np.arange(5), "t": [0, 1]})
    assert s["field_mean"] == pytest.approx(float(np.mean(f.astype(np.float64))))
    assert s["field_std"] == pytest.approx(float(np.std(f.astype(np.float64))))
    assert s["velocity_mean"] == pytest.approx(float(np.mean(v.astype(np.float64))))
    assert s["param_names"] == ["k", "a"]
    assert s["param_mean"] == pytest.approx([4.0, 3.0])
    assert s["param_std"] == pytest.approx([1.0, np.std([1.0, 2.0, 6.0])])  # constant parameter → std 1
    assert s["coord_min"] == [0.0, 0.0, 0.0] and s["coord_max"] == [2.0, 4.0, 1.0]


def _cases(n_cases=3, n_frames=6, ny=4, nx=5):
    f = np.arange(n_cases * n_frames * ny * nx, dtype=np.float32).reshape(n_cases, n_frames, ny, nx)
    v = 100.0 + np.arange(n_cases * ny * nx, dtype=np.float32).reshape(n_cases, ny, nx)
    return f, v


def test_forecast_windows_count_and_content():
    f, v = _cases()
    stats = {"field_mean": 1.0, "field_std": 2.0, "velocity_mean": 100.0, "velocity_std": 4.0}
    ds = ForecastWindows(f, v, n_in=2, n_out=2, stats=stats)
    assert len(ds) == 3 * (6 - 2 - 2 + 1)
    x, y = ds[5]  # case 1, start frame 2
    assert ds.locate(5) == (1, 2)
    assert x.shape == (3, 4, 5) and y.shape == (2, 4, 5)
    np.testing.assert_allclose(x[:2].numpy(), (f[1, 2:4] - 1.0) / 2.0)
    np.testing.assert_allclose(x[2].numpy(), (v[1] - 100.0) / 4.0)
    np.testing.assert_allclose(y.numpy(), (f[1, 4:6] - 1.0) / 2.0)
    strided = ForecastWindows(f, v, n_in=1, n_out=1, stats=stats, stride=2)
    assert len(strided) == 3 * 3 and strided.locate(4) == (1, 2)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_forecast_windows_need_enough_frames():
    f, v = _cases(n_frames=3)
    stats = {"field_mean": 0.0, "field_std": 1.0, "velocity_mean": 0.0, "velocity_std": 1.0}
    with pytest.raises(DataFileError, match="fewer than"):
        ForecastWindows(f, v, n_in=2, n_out=2, stats=stats)


def test_source_to_field_points_sample_the_field_deterministically():
    n_cases, nt, ny, nx = 3, 4, 5, 6
    x, y, t = np.linspace(0, 1, nx), np.linspace(-2, 2, ny), np.linspace(0, 0.3, nt)
    rng = np.random.default_rng(0)
    f = rng.normal(size=(n_cases, nt, ny, nx)).astype(np.float32)
    params = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    stats = {"field_mean": 0.5, "field_std": 2.0, "param_mean": [2.0, 20.0], "param_std": [1.0, 10.0],
             "coord_min": [0.0, -2.0, 0.0], "coord_max": [1.0, 2.0, 0.3]}
    ds = SourceToFieldPoints(f, params, x, y, t, points_per_case=50, stats=stats, seed=7)
    p, c, val = ds[2]
    assert p.tolist() == pytest.approx([1.0, 1.0])
    assert c.shape == (50, 3) and val.shape == (50,)
    assert float(c.min()) >= -1.0 and float(c.max()) <= 1.0
    # invert the scaling to grid indices and look the values up independently
    ix = np.rint((c[:, 0].numpy() + 1) / 2 * (nx - 1)).astype(int)
    iy = np.rint((c[:, 1].numpy() + 1) / 2 * (ny - 1)).astype(int)
    it = np.rint((c[:, 2].numpy() + 1) / 2 * (nt - 1)).astype(int)
    np.testing.assert_allclose(val.numpy(), (f[2, it, iy, ix] - 0.5) / 2.0, rtol=1e-6)
    again = SourceToFieldPoints(f, params, x, y, t, points_per_case=50, stats=stats, seed=7)
    assert torch.equal(again[2][1], c)  # same (seed, epoch, case) → same points
    again.set_epoch(1)
    assert not torch.equal(again[2][1], c)  # a new epoch draws new points
    assert not torch.equal(ds[1][1], c)  # another case draws other points
