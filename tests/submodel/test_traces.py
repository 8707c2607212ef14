"""Boundary-trace campaigns through `wavesurrogate simulate`: layout, band sampling, gradient medium, traces
against an independent solve, exact trace → submodel, resume, bad configs and damaged files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from wavesurrogate.cli import main
from wavesurrogate.config.base import dump_yaml, validate
from wavesurrogate.config.campaign import CampaignConfig, check_campaign, load_campaign_config
from wavesurrogate.data import campaign
from wavesurrogate.data.campaign import simulate
from wavesurrogate.data.cases import resolve
from wavesurrogate.data.store import describe, open_data
from wavesurrogate.errors import CFLError, ConfigError, DataFileError
from wavesurrogate.physics.fe import FESolver
from wavesurrogate.physics.zoi import Zoi, boundary_indices, boundary_trace, solve_zoi

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "submodel_test.yaml"


def small_config(**update) -> CampaignConfig:
    """The test config with 4 + 2 cases; ``update`` replaces top-level keys or merges into sections."""
    data = load_campaign_config(CONFIG).model_dump(mode="json")
    data.update(cases=4, test_cases=2)
    for k, v in update.items():
        data[k] = {**data[k], **v} if isinstance(v, dict) and isinstance(data.get(k), dict) else v
    return check_campaign(validate(CampaignConfig, data))


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory) -> Path:
    return simulate(small_config(), tmp_path_factory.mktemp("traces") / "t.h5", workers=2, progress=False)


def _rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def test_layout_shapes_band_and_gradient_medium(trace_file):
    cfg = resolve(small_config())
    zoi, dt = cfg.zoi_obj(), cfg.time.dt_s
    with h5py.File(trace_file, "r") as f:
        assert f.attrs["schema"] == b"wavesurrogate/2"
        assert list(f.attrs["grid_shape"]) == [48, 48] and list(f.attrs["window_ij0"]) == [zoi.j0, zoi.i0]
        v = f["traces/boundary/values"]
        assert v.shape == (6, 81, zoi.n_boundary) and v.dtype == np.float32 and v.chunks == (1, 81, 60)
        np.testing.assert_allclose(f["traces/boundary/t_s"][()], np.arange(81) * 2 * dt, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(f["traces/boundary/index"][()], np.stack(boundary_indices(zoi), 1))
        assert f["fields"].shape == (6, 21, 16, 16) and f["velocity"].shape == (6, 16, 16)
        np.testing.assert_allclose(f["x"][()], (zoi.i0 + np.arange(16)) * 10.0)
        np.testing.assert_allclose(f["y"][()], (zoi.j0 + np.arange(16)) * 10.0)
        assert list(f["split"][()]) == [0, 0, 0, 0, 1, 1]
        assert np.all(f["solve_s"][()] > 0)
    with open_data(trace_file) as f:
        p, lo, hi = f.params, *f.config.source.zoi_band_m
        x0, x1, y0, y1 = zoi.i0 * 10.0, (zoi.i0 + 15) * 10.0, zoi.j0 * 10.0, (zoi.j0 + 15) * 10.0
        d = np.maximum.reduce([x0 - p["source_x_m"], p["source_x_m"] - x1, y0 - p["source_y_m"],
                               p["source_y_m"] - y1])
        assert np.all((d >= lo) & (d <= hi)), "sources must lie in the band outside the ZOI"
        assert np.all((p["freq_hz"] >= 15.0) & (p["freq_hz"] <= 25.0))
        assert len(set(p["source_x_m"].round(6))) == 6, "cases must differ"
        assert f.trace_names == ["boundary"] and f.solve_s(0) > 0
        for case in range(6):  # the gradient medium, closed form, on the stored ZOI window
            c0, g = p["medium_c0_mps"][case], p["medium_gradient"][case]
            assert 1800 <= c0 <= 2200 and abs(g) <= 0.1
            want = c0 * (1 + g * (f.y - 235.0) / 235.0)  # ly = 47 · 10 m
            np.testing.assert_allclose(f.velocity(case), np.repeat(want[:, None], 16, 1), rtol=1e-6)
        assert np.abs(f.traces("boundary", [0])).max() > 1e-3 and np.abs(f.fields(0)).max() > 1e-3


def test_traces_equal_an_independent_solve_and_the_stored_frames(trace_file):
    with open_data(trace_file) as f:
        cfg = f.config
        zoi = cfg.zoi_obj()
        every = cfg.time.frame_stride // cfg.record.boundary_trace_stride
        local = Zoi(0, 0, zoi.nx, zoi.ny)
        for case in range(f.n_cases):
            trace, field = f.traces("boundary", [case])[0], f.fields(case)
            np.testing.assert_array_equal(trace[::every], boundary_trace(field, local))
            assert np.abs(trace[1::every] - boundary_trace(field, local)[:-1]).max() > 1e-3  # one sample late
        # a fresh solver (its own Lanczos bound, no shared reference solver), recording every step
        problem = f.problem(5)
        frames, record = FESolver.from_problem(problem, cfg.solver.element).solve_problem_recording(
            problem, *boundary_indices(zoi))
        trace, field = f.traces("boundary", [5])[0], f.fields(5)
        scale = np.abs(record).max()
        stride = cfg.record.boundary_trace_stride
        np.testing.assert_allclose(trace, record[::stride], rtol=0, atol=1e-6 * scale)
        np.testing.assert_allclose(field, frames[(slice(None), *zoi.slices)], rtol=0, atol=1e-6 * scale)


def test_exact_trace_from_the_file_reproduces_the_full_solve(trace_file, tmp_path):
    with open_data(trace_file) as f:
        zoi, t_s, errors = f.config.zoi_obj(), f.trace_t("boundary"), []
        for case in f.cases("test"):
            trace, field = f.traces("boundary", [case])[0], f.fields(case)
            sub = solve_zoi(f.problem(case), zoi, trace, t_s, element=f.config.solver.element)
            errors.append(_rel(sub, field))
            lagged = np.concatenate([trace[:1], trace[:-1]])  # one trace sample late
            assert _rel(solve_zoi(f.problem(case), zoi, lagged, t_s), field) > 30 * errors[-1]
    assert max(errors) < 1e-3, errors  # time interpolation of a trace sampled every 2 steps
    # sampled at every step: the submodel is the full solve restricted to the ZOI (float32 storage)
    cfg = small_config(cases=1, test_cases=0, record={"boundary_trace_stride": 1})
    with open_data(simulate(cfg, tmp_path / "every_step.h5", workers=1, progress=False)) as f:
        trace, field = f.traces("boundary", [0])[0], f.fields(0)
        assert _rel(solve_zoi(f.problem(0), cfg.zoi_obj(), trace, f.trace_t("boundary")), field) < 1e-6


def test_full_frames_with_traces_index_the_full_grid(tmp_path):
    cfg = small_config(cases=1, test_cases=0, record={"frames": "full", "solve_s": False})
    with open_data(simulate(cfg, tmp_path / "full.h5", workers=1, progress=False)) as f:
        assert f.spatial_shape == (48, 48) and "window_ij0" not in f.attrs and f.solve_s(0) is None
        u, idx, every = f.fields(0), f.trace_index("boundary"), cfg.time.frame_stride // 2
        np.testing.assert_array_equal(f.traces("boundary", [0])[0][::every], u[:, idx[:, 0], idx[:, 1]])
        assert "traces      boundary: [case, time, receiver] = [1, 81, 60]" in describe(f.path)


def test_resume_keeps_the_traces_of_finished_shards(trace_file, tmp_path, monkeypatch):
    out, cfg = tmp_path / "r.h5", small_config()

    class Crash(Exception):
        pass

    def crash_after_three(index: int) -> None:
        if len(list((tmp_path / "r.h5.work").glob("case-*.npz"))) >= 3:
            raise Crash

    with pytest.raises(Crash):
        simulate(cfg, out, workers=1, progress=False, on_shard=crash_after_three)
    ran: list[int] = []
    real = campaign.solve_case
    monkeypatch.setattr(campaign, "solve_case", lambda c, s: (ran.append(s.index), real(c, s))[1])
    simulate(cfg, out, workers=1, progress=False)
    assert sorted(ran) == [3, 4, 5]
    with h5py.File(out, "r") as a, h5py.File(trace_file, "r") as b:  # same config → same data
        for k in ("traces/boundary/values", "fields", "velocity", "checksum", "traces/boundary/t_s"):
            np.testing.assert_array_equal(a[k][()], b[k][()])


def test_configs_without_the_new_keys_dump_as_before():
    cfg = load_campaign_config(CONFIG.with_name("demo.yaml"))
    text = dump_yaml(cfg)
    assert "record" not in text and "zoi_band_m" not in text and cfg.record.frames == "full"


def test_bad_configs(tmp_path, capsys):
    with pytest.raises(ConfigError, match="zoi_band_m"):
        small_config(source={"zoi_band_m": [20.0, 400.0]})
    with pytest.raises(ConfigError, match="frame_stride"):
        small_config(record={"boundary_trace_stride": 3})
    with pytest.raises(ConfigError, match="boundary_trace_stride"):
        small_config(record={"boundary_trace_stride": 8}, time={"frame_stride": 8})
    with pytest.raises(ConfigError, match="record.zoi"):
        small_config(record={"zoi": None})
    with pytest.raises(ConfigError, match="solver.kind"):
        small_config(solver={"kind": "fd"})
    with pytest.raises(ConfigError, match="medium.gradient"):
        small_config(medium={"gradient": [-0.5, 1.0]})
    with pytest.raises(CFLError, match="time.dt_s"):
        resolve(small_config(time={"dt_s": 0.01}))
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text().replace("zoi_band_m: [20.0, 80.0]", "zoi_band_m: [20.0, 400.0]"))
    assert main(["simulate", str(bad), "--out", str(tmp_path / "o.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert "zoi_band_m" in err and len(err.splitlines()) == 1 and not (tmp_path / "o.h5").exists()


def test_damaged_trace_files(trace_file, tmp_path):
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(trace_file.read_bytes())
    with h5py.File(damaged, "r+") as f:
        f["traces/boundary/values"][1, 10, 3] += 1.0
    with open_data(damaged) as f:
        f.case(0)
        with pytest.raises(DataFileError, match="checksum"):
            f.traces("boundary", [1])
        with pytest.raises(DataFileError, match="out of range"):
            f.traces("boundary", [6])
        with pytest.raises(DataFileError, match="no receiver traces 'receivers'"):
            f.trace_t("receivers")
    for edit, msg in ((lambda f: f["traces/boundary"].__delitem__("index"), "must hold datasets"),
                      (lambda f: f["traces/boundary"].__delitem__("t_s")
                       or f["traces/boundary"].create_dataset("t_s", data=np.zeros(3)), "t_s"),
                      (lambda f: f.__delitem__("solve_s") or f.create_dataset("solve_s", data=np.zeros(2)),
                       "solve_s"),
                      (lambda f: f.attrs.__setitem__("window_ij0", [-1, 2]), "window_ij0")):
        broken = tmp_path / "broken.h5"
        broken.write_bytes(trace_file.read_bytes())
        with h5py.File(broken, "r+") as f:
            edit(f)
        with pytest.raises(DataFileError, match=msg) as exc:
            open_data(broken)
        assert len(str(exc.value).splitlines()) == 1


def test_problem_is_refused_when_the_rebuilt_velocity_differs(trace_file, tmp_path):
    """problem(case) rebuilds the case from config + parameters; a parameter edited after the campaign
    (or media code that changed) gives another velocity than the stored one: one DataFileError."""
    with open_data(trace_file) as f:
        c = f.problem(2).velocity
        window = tuple(slice(o, o + s) for o, s in zip(f.attrs["window_ij0"], f.spatial_shape, strict=True))
        np.testing.assert_array_equal(c.astype(np.float32)[window], f.velocity(2))
    edited = tmp_path / "edited.h5"
    edited.write_bytes(trace_file.read_bytes())
    with h5py.File(edited, "r+") as f:
        f["params/medium_c0_mps"][2] += 50.0
    with open_data(edited) as f, pytest.raises(DataFileError, match="case 2: the velocity rebuilt"):
        f.problem(2)


def test_trace_campaign_bytes_do_not_depend_on_the_number_of_workers(tmp_path):
    """Without the wall-time record, the same config gives the same file bytes on 1 or 2 processes."""
    cfg = small_config(cases=2, test_cases=1, record={"solve_s": False})
    one = simulate(cfg, tmp_path / "one.h5", workers=1, progress=False)
    two = simulate(cfg, tmp_path / "two.h5", workers=2, progress=False)
    assert one.read_bytes() == two.read_bytes()
