"""Boundary-trace campaign: file layout, time alignment, exact trace → submodel, resume, bad inputs."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from wavesurrogate.config.base import validate
from wavesurrogate.errors import ConfigError, DataFileError
from wavesurrogate.physics.fe import solve_fe
from wavesurrogate.physics.zoi import Zoi, boundary_trace, solve_zoi
from wavesurrogate.submodel import traces
from wavesurrogate.submodel.traces import (
    SCHEMA,
    TraceCampaignConfig,
    TraceFile,
    load_traces_config,
    run_traces,
)

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "submodel_test.yaml"


def small_config(**update) -> TraceCampaignConfig:
    """The test config with fewer cases (and any top-level overrides)."""
    cfg = load_traces_config(CONFIG)
    data = cfg.model_dump()
    data.update({"cases": 4, "test_cases": 2})
    data.update(update)
    return validate(TraceCampaignConfig, data)


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory) -> Path:
    return run_traces(small_config(workers=2), tmp_path_factory.mktemp("traces") / "t.h5")


def _rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def test_layout_shapes_and_sampling(trace_file):
    cfg = small_config()
    zoi, t = cfg.zoi_obj(), cfg.time
    with h5py.File(trace_file, "r") as f:
        assert f.attrs["schema"] == SCHEMA
        assert f["trace"].shape == (6, t.n_steps // t.trace_stride + 1, zoi.n_boundary)
        assert f["zoi_fields"].shape == (6, t.n_steps // t.frame_stride + 1, zoi.ny, zoi.nx)
        assert f["trace"].chunks == (1, *f["trace"].shape[1:])
        n_t, n_f = f["trace"].shape[1], f["zoi_fields"].shape[1]
        np.testing.assert_allclose(f["trace_t"][()], np.arange(n_t) * t.trace_stride * t.dt_s)
        np.testing.assert_allclose(f["frame_t"][()], np.arange(n_f) * t.frame_stride * t.dt_s)
        assert list(f["split"][()]) == [0, 0, 0, 0, 1, 1]
        assert f["done"][()].all()
    with TraceFile(trace_file) as f:
        p = f.params()
        g = f.config.grid_obj()
        lo, hi = f.config.source.band_m
        x0, x1 = zoi.i0 * g.dx, (zoi.i0 + zoi.nx - 1) * g.dx
        y0, y1 = zoi.j0 * g.dy, (zoi.j0 + zoi.ny - 1) * g.dy
        d = np.maximum.reduce([x0 - p["source_x_m"], p["source_x_m"] - x1, y0 - p["source_y_m"],
                               p["source_y_m"] - y1])
        assert np.all((d >= lo) & (d <= hi)), "sources must lie in the band outside the ZOI"
        assert np.all((p["freq_hz"] >= 15.0) & (p["freq_hz"] <= 25.0))
        assert len(set(p["source_x_m"].round(6))) == 6, "cases must differ"
        trace, field = f.case(0)
        assert np.abs(trace).max() > 1e-3 and np.abs(field).max() > 1e-3


def test_trace_is_aligned_with_the_stored_fields_and_the_full_solve(trace_file):
    with TraceFile(trace_file) as f:
        zoi, cfg = f.zoi, f.config
        every = cfg.time.frame_stride // cfg.time.trace_stride
        local = Zoi(0, 0, zoi.nx, zoi.ny)
        for case in range(f.n_cases):
            trace, field = f.case(case)
            np.testing.assert_array_equal(trace[::every], boundary_trace(field, local))
            assert np.abs(trace[1::every] - boundary_trace(field, local)[:-1]).max() > 1e-3  # one sample late
        # the campaign's shortcut (one Lanczos bound for c_max) changes nothing: same as a plain solve_fe
        frames = solve_fe(f.problem(5), element=cfg.element)
        _, field = f.case(5)
        np.testing.assert_allclose(field, frames[(slice(None), *zoi.slices)], rtol=0,
                                   atol=1e-6 * np.abs(field).max())


def test_exact_trace_from_the_file_reproduces_the_full_solve(trace_file, tmp_path):
    with TraceFile(trace_file) as f:
        errors = []
        for case in f.cases("test"):
            trace, field = f.case(case)
            sub = solve_zoi(f.problem(case), f.zoi, trace, f.trace_t, element=f.config.element)
            errors.append(_rel(sub, field))
            lagged = np.concatenate([trace[:1], trace[:-1]])  # one trace sample late
            assert _rel(solve_zoi(f.problem(case), f.zoi, lagged, f.trace_t), field) > 30 * errors[-1]
    assert max(errors) < 1e-3, errors  # time interpolation of a trace sampled every 2 steps
    # sampled at every step: the submodel is the full solve restricted to the ZOI (float32 storage)
    path = run_traces(small_config(cases=1, test_cases=0, workers=1,
                                   time={**small_config().time.model_dump(), "trace_stride": 1}),
                      tmp_path / "every_step.h5")
    with TraceFile(path) as f:
        trace, field = f.case(0)
        assert _rel(solve_zoi(f.problem(0), f.zoi, trace, f.trace_t), field) < 1e-6


def test_resume_redoes_only_missing_or_damaged_cases(trace_file, tmp_path, monkeypatch):
    cfg = small_config(workers=1)
    out = tmp_path / "r.h5"
    resolved, lam = traces.resolve_traces(cfg)
    params, _ = traces.sample_cases(resolved)
    work = tmp_path / "r.h5.work"
    work.mkdir()
    todo = [(i, params[i]) for i in (0, 1, 2)]
    traces._solve_cases(resolved.model_dump_json(), lam, todo, str(work), False)
    shard = traces._shard(work, 1)
    shard.write_bytes(shard.read_bytes()[:-100])  # a torn shard
    seen: list[int] = []
    real = traces._solve_cases

    def spy(cfg_json, lam_max, todo, work_dir, verbose):
        seen.extend(i for i, _ in todo)
        return real(cfg_json, lam_max, todo, work_dir, verbose)

    monkeypatch.setattr(traces, "_solve_cases", spy)
    run_traces(cfg, out)
    assert seen == [1, 3, 4, 5]
    assert not work.exists()
    with h5py.File(out, "r") as a, h5py.File(trace_file, "r") as b:  # same config → same data
        for k in ("trace", "zoi_fields", "checksum", "trace_t"):
            np.testing.assert_array_equal(a[k][()], b[k][()])


def test_bad_configs_and_files(trace_file, tmp_path):
    with pytest.raises(ConfigError, match="band"):
        traces.resolve_traces(small_config(source={"band_m": [20.0, 400.0], "freq_hz": [15.0, 25.0]}))
    with pytest.raises(ConfigError, match="frame_stride"):
        small_config(time={"dt_s": 0.002, "n_steps": 160, "trace_stride": 3, "frame_stride": 8})
    with pytest.raises(ConfigError, match="trace_stride"):
        small_config(time={"dt_s": 0.002, "n_steps": 160, "trace_stride": 8, "frame_stride": 8})
    with pytest.raises(ConfigError, match="CFL"):
        traces.resolve_traces(small_config(time={"dt_s": 0.01, "n_steps": 160, "trace_stride": 2,
                                                 "frame_stride": 8}))
    bogus = tmp_path / "x.h5"
    bogus.write_text("not hdf5")
    with pytest.raises(DataFileError, match="not an HDF5"):
        TraceFile(bogus)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["schema"] = "wavesurrogate/1"
    with pytest.raises(DataFileError, match="schema"):
        TraceFile(other)
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(trace_file.read_bytes())
    with h5py.File(damaged, "r+") as f:
        f["trace"][1, 10, 3] += 1.0
    with TraceFile(damaged) as f:
        f.case(0)
        with pytest.raises(DataFileError, match="checksum"):
            f.case(1)
        with pytest.raises(DataFileError, match="out of range"):
            f.case(6)
