"""3-D room campaigns (issue 15): configs/rooms/tiny.yaml end to end (3-D fields, receiver traces against an
independent solve, resume after a crash, Dask), the furnished room's config, and bad 3-D configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from wavesurrogate.data import campaign
from wavesurrogate.data.campaign import simulate
from wavesurrogate.data.cases import load_campaign
from wavesurrogate.data.store import open_data
from wavesurrogate.errors import ConfigError
from wavesurrogate.physics.fd import FDSolver

ROOT = Path(__file__).resolve().parents[2]
TINY, FURNISHED = ROOT / "configs/rooms/tiny.yaml", ROOT / "configs/rooms/furnished.yaml"


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("room") / "tiny.h5"
    return simulate(load_campaign(TINY), out, workers=1, progress=False)


def test_tiny_room_file_is_3d_with_traces_of_an_independent_solve(tiny_file):
    """n_spatial_dims 3, axes [case, frame, z, y, x], receivers at their nearest nodes (k, j, i), traces
    every 4 steps equal to the solver's own recording for the problem rebuilt from the file."""
    with open_data(tiny_file) as f:
        assert f.n_spatial_dims == 3 and f.axes == ("case", "frame", "z", "y", "x")
        assert f.spatial_shape == (9, 11, 13) and f.n_cases == 3 and f.n_frames == 4
        idx = f.trace_index("receivers")
        np.testing.assert_array_equal(idx, [[5, 2, 2], [3, 5, 9], [7, 9, 11]])
        assert f.trace_t("receivers").shape == (16,)
        np.testing.assert_allclose(np.diff(f.trace_t("receivers")), 4 * f.dt, rtol=1e-12)
        for case in range(3):
            p = f.problem(case)  # rebuilt from the stored config; checks the velocity too
            assert p.grid.ndim == 3 and len(p.obstacles) == 1
            solver = FDSolver(p.grid, p.boundary, p.time, p.space_order, "numpy", np.float64,
                              obstacles=p.obstacles)
            frames, trace = solver.run_recording(p.velocity, idx, p.source)
            stored = f.traces("receivers", [case])[0]
            assert np.abs(stored - trace[::4]).max() <= 1e-5 * np.abs(trace).max()
            assert np.abs(f.fields(case) - frames).max() <= 1e-5 * np.abs(frames).max()
            assert np.abs(trace).max() > 0
            assert np.all(f.fields(case)[:, 0:4, 3:6, 4:7] == 0.0)  # the table's nodes stay at rest


def test_tiny_room_resume_after_crash_gives_identical_bytes(tiny_file, tmp_path, monkeypatch):
    cfg = load_campaign(TINY)
    out = tmp_path / "o.h5"
    with pytest.raises(Crash):
        simulate(cfg, out, workers=1, progress=False, on_shard=lambda i: (_ for _ in ()).throw(Crash))
    ran: list[int] = []
    real = campaign.solve_case
    monkeypatch.setattr(campaign, "solve_case", lambda c, s: (ran.append(s.index), real(c, s))[1])
    simulate(cfg, out, workers=1, progress=False)
    assert sorted(ran) == [1, 2]
    assert out.read_bytes() == tiny_file.read_bytes()


def test_tiny_room_on_dask_equals_local(tiny_file, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                                  silence_logs=40) as cluster:
        out = simulate(load_campaign(TINY), tmp_path / "d.h5", scheduler=cluster.scheduler_address,
                       progress=False)
    assert out.read_bytes() == tiny_file.read_bytes()


def test_furnished_room_config_resolves():
    """The shipped furnished room: 45 × 36 × 27 nodes, Z = 7400 on every wall, table and cabinet, 90 receivers
    outside them, 2,320 steps (0.40 s), sources sampled outside the obstacles."""
    cfg = load_campaign(FURNISHED)
    g = cfg.grid_obj()
    assert g.shape == (27, 36, 45) and cfg.boundary_obj().impedance_rayl == 7400.0
    assert [o.name for o in cfg.obstacles] == ["table", "cabinet"]
    assert cfg.receiver_index().shape == (90, 3)
    assert cfg.time_obj().n_steps == 2320 and 0.39 < cfg.time_obj().n_steps * cfg.time.dt_s < 0.41
    assert 343.0 / (500.0 * g.dx) == pytest.approx(6.0, rel=0.01)  # 6 points per wavelength at 500 Hz


def _bad(tmp_path: Path, **changes) -> Path:
    d = yaml.safe_load(TINY.read_text())
    for k, v in changes.items():
        *head, last = k.split(".")
        node = d
        for h in head:
            node = node[h]
        if v is None:
            node.pop(last)
        else:
            node[last] = v
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


@pytest.mark.parametrize(("changes", "field"), [
    ({"obstacles": [{"x_m": [0.4, 0.6], "y_m": [0.3, 0.5]}]}, "obstacles[0].z_m"),
    ({"obstacles": [{"x_m": [0.4, 0.6], "y_m": [0.3, 0.5], "z_m": [0.9, 1.5]}]}, "obstacles[0].z_m"),
    ({"record.receivers": {"nodes": [[5, 4, 2]]}}, "inside an obstacle"),
    ({"record.receivers": {"nodes": [[5, 4]]}}, "3 entries"),
    ({"boundary.impedance_rayl": None}, "impedance_rayl"),
    ({"medium": {"kind": "grf", "mean_mps": 343.0, "contrast": 0.1, "correlation_length_m": 0.3}},
     "medium.kind"),
    ({"solver": {"kind": "fe"}}, "solver.kind"),
    ({"source.z_m": [0.1, 0.9]}, "source.z_m"),
    ({"grid.dz_m": None}, "grid"),
])
def test_bad_room_configs_are_one_line_errors(tmp_path, changes, field):
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")) as exc:
        load_campaign(_bad(tmp_path, **changes))
    assert "\n" not in str(exc.value)


def test_source_on_a_2d_grid_takes_no_z(tmp_path):
    d = {"cases": 1, "grid": {"nx": 9, "ny": 9, "dx_m": 1.0, "dy_m": 1.0}, "time": {"n_frames": 3},
         "medium": {"kind": "constant", "c_mps": 1.0}, "source": {"z_m": 0.5}}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError, match="source.z_m: only on a 3-D grid"):
        load_campaign(p)


def test_3d_file_medium_is_read_and_bounds_dt(tmp_path):
    """A [nz, ny, nx] velocity from a .npy file: checked against the grid, its maximum sets dt."""
    c = np.full((9, 11, 13), 343.0)
    c[4:, :, :] = 400.0  # a faster upper half
    np.save(tmp_path / "c.npy", c)
    d = yaml.safe_load(TINY.read_text())
    d["medium"] = {"kind": "file", "path": "c.npy"}
    (tmp_path / "room.yaml").write_text(yaml.safe_dump(d))
    cfg = load_campaign(tmp_path / "room.yaml")
    assert cfg.time.dt_s == pytest.approx(0.9 * 0.1 / (400.0 * np.sqrt(3.0)), rel=1e-12)
    np.save(tmp_path / "c.npy", c[:, :, :-1])
    with pytest.raises(ConfigError, match="medium.path"):
        load_campaign(tmp_path / "room.yaml")
