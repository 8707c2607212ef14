"""FD receivers of a campaign (record.receivers): layout, exactness against the stored frames and an
independent solve, bytes deterministic, configs without the key unchanged, bad configs."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tests.data.test_campaign import tiny
from wavesurrogate.config.campaign import load_campaign_config
from wavesurrogate.data.campaign import simulate
from wavesurrogate.data.cases import load_campaign, run_case, sample_cases
from wavesurrogate.data.store import open_data
from wavesurrogate.errors import ConfigError
from wavesurrogate.physics.fd import FDSolver


def write(path: Path, **over) -> Path:
    path.write_text(yaml.safe_dump(tiny(**over)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lattice_file(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("receivers")
    cfg = load_campaign(write(d / "r.yaml", cases=3, test_cases=1, record={"receivers": {"lattice": [3, 2],
                                                                                       "stride": 1}}))
    return simulate(cfg, d / "r.h5", workers=1, progress=False)


def test_lattice_layout_and_traces_equal_the_frames(lattice_file):
    with open_data(lattice_file) as f:
        assert f.trace_names == ["receivers"]
        idx, t_s, cfg = f.trace_index("receivers"), f.trace_t("receivers"), f.config
        # nx = 20: round((k+1)·19/4) = 5, 10, 14; ny = 18: round((k+1)·17/3) = 6, 11 — rows from low y
        np.testing.assert_array_equal(idx, [[6, 5], [6, 10], [6, 14], [11, 5], [11, 10], [11, 14]])
        np.testing.assert_allclose(t_s, np.arange(34) * cfg.time.dt_s, rtol=0, atol=1e-15)  # 11·3 steps
        every = cfg.time.frame_stride
        np.testing.assert_array_equal(t_s[::every], f.t)
        for case in range(f.n_cases):
            tr, u = f.traces("receivers", [case])[0], f.fields(case)
            assert tr.shape == (34, 6) and tr.dtype == np.float32
            np.testing.assert_array_equal(tr[::every], u[:, idx[:, 0], idx[:, 1]])  # exact at frame times
            assert np.abs(tr[1::every] - tr[::every][:-1]).max() > 1e-6  # samples between the frames


def test_frames_unchanged_and_traces_match_an_independent_fine_solve(lattice_file, tmp_path):
    cfg = load_campaign(write(tmp_path / "plain.yaml", cases=3, test_cases=1))
    spec = sample_cases(cfg)[2]
    frames, _ = run_case(cfg, spec)  # no receivers: the campaign's own time axis
    with open_data(lattice_file) as f:
        np.testing.assert_array_equal(f.fields(2), frames)  # recording leaves the frames' bits alone
        p, idx = f.problem(2), f.trace_index("receivers")
        fine = FDSolver(p.grid, p.boundary, type(p.time)(p.time.dt_s, p.time.n_steps + 1, 1), p.space_order,
                        backend="numpy").run(p.velocity, p.source, p.initial)
        np.testing.assert_array_equal(f.traces("receivers", [2])[0], fine[:, idx[:, 0], idx[:, 1]])


def test_nodes_stride_and_deterministic_bytes(tmp_path):
    rec = {"receivers": {"nodes": [[3, 4], [15, 2], [0, 17]], "stride": 3}}
    cfg = load_campaign(write(tmp_path / "n.yaml", cases=2, test_cases=1, record=rec))
    a = simulate(cfg, tmp_path / "a.h5", workers=1, progress=False)
    b = simulate(cfg, tmp_path / "b.h5", workers=2, progress=False)
    assert a.read_bytes() == b.read_bytes()
    with open_data(a) as f:
        np.testing.assert_array_equal(f.trace_index("receivers"), [[4, 3], [2, 15], [17, 0]])
        np.testing.assert_array_equal(f.trace_t("receivers"), f.t)  # stride = frame_stride: the frame times
        u = f.fields(1)
        np.testing.assert_array_equal(f.traces("receivers", [1])[0], u[:, [4, 2, 17], [3, 15, 0]])
        assert f.config.record.receivers.nodes == [(3, 4), (15, 2), (0, 17)]
    with h5py.File(a, "r") as h:
        assert "lattice" not in yaml.safe_load(h.attrs["config_yaml"])["record"]["receivers"]


def test_configs_without_receivers_dump_as_before(tmp_path):
    cfg = load_campaign_config(write(tmp_path / "z.yaml", record={"solve_s": True}))
    assert "receivers" not in yaml.safe_dump(cfg.model_dump(mode="json"))


@pytest.mark.parametrize("rec, field", [
    ({"lattice": [3, 3], "nodes": [[1, 1]]}, "exactly one"),
    ({"stride": 2}, "exactly one"),
    ({"lattice": [19, 2]}, "record.receivers.lattice"),
    ({"lattice": [0, 2]}, "record.receivers.lattice"),
    ({"nodes": [[20, 1]]}, "record.receivers.nodes"),
    ({"nodes": [[2, 1], [2, 1]]}, "record.receivers.nodes"),
    ({"nodes": [[-1, 1]]}, "record.receivers.nodes"),
    ({"nodes": [[1, 1]], "stride": 2}, "record.receivers.stride"),
    ({"nodes": [[1, 1]], "names": 2}, "record.receivers"),
])
def test_bad_receivers(tmp_path, rec, field):
    with pytest.raises(ConfigError, match=field) as e:
        load_campaign_config(write(tmp_path / "bad.yaml", record={"receivers": rec}))
    assert len(str(e.value).splitlines()) == 1


def test_receivers_need_fd(tmp_path):
    with pytest.raises(ConfigError, match="record.receivers: needs solver.kind 'fd'"):
        load_campaign_config(write(tmp_path / "fe.yaml", solver={"kind": "fe"},
                                   record={"receivers": {"lattice": [2, 2]}}))
