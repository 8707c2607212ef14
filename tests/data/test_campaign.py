"""Campaigns: per-case seeded sampling, stored content equals the solver's, byte determinism, crash-resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from wavesurrogate.config.campaign import load_campaign_config
from wavesurrogate.data import campaign
from wavesurrogate.data.campaign import read_shard, run_campaign, simulate
from wavesurrogate.data.cases import load_campaign, resolve, run_case, sample_cases
from wavesurrogate.data.schema import case_checksum, decode_chunk, encode_chunk
from wavesurrogate.data.store import open_data
from wavesurrogate.errors import CFLError, ConfigError, DataFileError, UserError


def tiny(**over) -> dict:
    """A campaign small enough for tests: 20 × 20 nodes, NumPy FD, 12 frames."""
    cfg = {
        "name": "tiny", "seed": 3, "cases": 4, "test_cases": 2, "test_seed": 99,
        "solver": {"kind": "fd", "space_order": 4, "backend": "numpy"},
        "grid": {"nx": 20, "ny": 18, "dx_m": 10.0, "dy_m": 10.0},
        "time": {"n_frames": 12, "frame_stride": 3},
        "boundary": {"kind": "absorbing", "width": 6},
        "medium": {"kind": "grf", "mean_mps": [1800.0, 2200.0], "contrast": [0.0, 0.1],
                   "correlation_length_m": [30.0, 50.0]},
        "source": {"kind": "point", "x_m": [40.0, 150.0], "y_m": [40.0, 130.0], "freq_hz": [15.0, 25.0],
                   "amplitude": 1.0e7},
    }
    for k, v in over.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return cfg


def write_cfg(path: Path, **over) -> Path:
    path.write_text(yaml.safe_dump(tiny(**over)), encoding="utf-8")
    return path


def test_sampling_is_per_case_and_in_range(tmp_path: Path) -> None:
    small = load_campaign(write_cfg(tmp_path / "a.yaml"))
    big = load_campaign(write_cfg(tmp_path / "b.yaml", cases=7, test_cases=3))
    a, b = sample_cases(small), sample_cases(big)
    assert [s.index for s in b] == list(range(10)) and [s.split for s in b] == [0] * 7 + [1] * 3
    assert [s.params for s in a[:4]] == [s.params for s in b[:4]]  # case i depends only on (seed, i)
    assert [s.params for s in a[4:]] == [s.params for s in b[7:9]]  # test case j only on (test_seed, j)
    expect = np.random.default_rng([3, 2]).uniform(40.0, 150.0)  # first draw of train case 2
    assert a[2].params["source_x_m"] == expect
    freqs = np.array([s.params["freq_hz"] for s in b])
    assert np.all((freqs >= 15.0) & (freqs <= 25.0)) and np.unique(freqs).size == 10
    reseeded = load_campaign(write_cfg(tmp_path / "c.yaml", seed=4))
    assert sample_cases(reseeded)[0].params != a[0].params


def test_stored_content_equals_solver_and_bytes_are_reproducible(tmp_path: Path) -> None:
    cfg = load_campaign(write_cfg(tmp_path / "c.yaml"))
    out1 = simulate(cfg, tmp_path / "one.h5", workers=1, progress=False)
    out2 = simulate(cfg, tmp_path / "two.h5", workers=2, progress=False)  # process pool, other order
    assert out1.read_bytes() == out2.read_bytes()
    assert not (tmp_path / "one.h5.work").exists()
    specs = sample_cases(cfg)
    with open_data(out1) as d:
        assert (d.n_cases, d.n_frames, d.ny, d.nx) == (6, 12, 18, 20)
        assert d.dt == cfg.time.dt_s and d.frame_stride == 3
        np.testing.assert_allclose(d.t, np.arange(12) * 3 * cfg.time.dt_s)
        np.testing.assert_array_equal(d.split, [0, 0, 0, 0, 1, 1])
        assert load_campaign(write_cfg(tmp_path / "c.yaml")) == cfg
        assert yaml.safe_load(d.attrs["config_yaml"])["time"]["dt_s"] == cfg.time.dt_s
        for spec in (specs[1], specs[5]):
            frames, velocity = run_case(cfg, spec)  # independent recomputation
            np.testing.assert_array_equal(d.fields(spec.index), frames)
            np.testing.assert_array_equal(d.velocity(spec.index), velocity)
            assert d.params["freq_hz"][spec.index] == spec.params["freq_hz"]
        assert np.abs(d.fields(0)).max() > 1e-3  # the source radiated


class Crash(Exception):
    pass


def test_resume_after_crash_gives_identical_file(tmp_path: Path, monkeypatch) -> None:
    cfg = load_campaign(write_cfg(tmp_path / "c.yaml"))
    fresh = simulate(cfg, tmp_path / "fresh.h5", workers=1, progress=False).read_bytes()
    out = tmp_path / "out.h5"

    def crash_after_three(i: int) -> None:
        if i == 2:
            raise Crash

    with pytest.raises(Crash):
        simulate(cfg, out, workers=1, progress=False, on_shard=crash_after_three)
    assert not out.exists()
    assert sorted(p.name for p in (tmp_path / "out.h5.work").glob("case-*.npz")) == [
        "case-000000.npz", "case-000001.npz", "case-000002.npz"]
    # damage one finished shard and leave a partial temporary write: both must be redone/cleaned
    shard1 = tmp_path / "out.h5.work" / "case-000001.npz"
    shard1.write_bytes(shard1.read_bytes()[:-100])
    (tmp_path / "out.h5.work" / ".case-000003.npz.junk.tmp").write_bytes(b"partial")
    ran: list[int] = []
    real = campaign.solve_case
    monkeypatch.setattr(campaign, "solve_case", lambda c, s: (ran.append(s.index), real(c, s))[1])
    simulate(cfg, out, workers=1, progress=False)
    assert sorted(ran) == [1, 3, 4, 5]  # none twice, none missing
    assert out.read_bytes() == fresh
    assert not (tmp_path / "out.h5.work").exists()


def test_refuses_shards_of_another_config(tmp_path: Path) -> None:
    cfg = load_campaign(write_cfg(tmp_path / "c.yaml"))
    with pytest.raises(Crash):
        simulate(cfg, tmp_path / "o.h5", workers=1, progress=False,
                 on_shard=lambda i: (_ for _ in ()).throw(Crash))
    other = load_campaign(write_cfg(tmp_path / "d.yaml", seed=5))
    with pytest.raises(UserError, match="different config"):
        simulate(other, tmp_path / "o.h5", workers=1, progress=False)
    assert (tmp_path / "o.h5.work" / "case-000000.npz").exists() and not (tmp_path / "o.h5").exists()
    simulate(other, tmp_path / "o.h5", workers=1, progress=False, overwrite=True)
    with open_data(tmp_path / "o.h5") as d:
        assert d.attrs["seed"] == 5


def test_existing_output_untouched_and_finished_cleanup(tmp_path: Path) -> None:
    cfg = load_campaign(write_cfg(tmp_path / "c.yaml"))
    out = simulate(cfg, tmp_path / "o.h5", workers=1, progress=False)
    before = out.read_bytes()
    with pytest.raises(UserError, match="already exists"):
        simulate(cfg, out, workers=1, progress=False)
    assert out.read_bytes() == before
    # a run stopped after the rename but before removing its work dir: rerun just finishes the cleanup
    work = tmp_path / "o.h5.work"
    work.mkdir()
    (work / "manifest.json").write_text(json.dumps(campaign._manifest(cfg)))
    assert simulate(cfg, out, workers=1, progress=False) == out
    assert not work.exists() and out.read_bytes() == before


def test_dask_path_equals_local_path(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    cfg = load_campaign(write_cfg(tmp_path / "c.yaml"))
    local = simulate(cfg, tmp_path / "local.h5", workers=1, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                                  silence_logs=40) as cluster:
        viadask = simulate(cfg, tmp_path / "dask.h5", scheduler=cluster.scheduler_address, progress=False)
    assert viadask.read_bytes() == local.read_bytes()


def test_unreachable_scheduler_is_a_user_error(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    cfg = load_campaign(write_cfg(tmp_path / "c.yaml"))
    with pytest.raises(UserError, match="cannot connect|no answer"):
        simulate(cfg, tmp_path / "o.h5", scheduler="tcp://127.0.0.1:9", progress=False, scheduler_timeout_s=1)
    assert not (tmp_path / "o.h5").exists()


def test_fe_solver_campaign_case(tmp_path: Path) -> None:
    cfg = load_campaign(write_cfg(tmp_path / "c.yaml", solver={"kind": "fe", "element": "q1"},
                                         grid={"nx": 12, "ny": 12}, boundary={"kind": "neumann"},
                                         source={"x_m": [40.0, 70.0], "y_m": [40.0, 70.0]}))
    spec = sample_cases(cfg)[0]
    frames, velocity = run_case(cfg, spec)
    assert frames.shape == (12, 12, 12) and velocity.shape == (12, 12)
    assert np.all(np.isfinite(frames)) and np.abs(frames).max() > 0


def test_kill_and_resume_equals_uninterrupted(tmp_path: Path) -> None:
    """SIGKILL the real command (2 worker processes) once shards exist, rerun it, compare with a clean run."""
    cfg_path = write_cfg(tmp_path / "c.yaml", cases=24, test_cases=4, grid={"nx": 40, "ny": 40},
                         time={"n_frames": 40, "frame_stride": 4},
                         source={"x_m": [100.0, 300.0], "y_m": [100.0, 300.0]})
    fresh = run_campaign(cfg_path, tmp_path / "fresh.h5", workers=1, progress=False).read_bytes()
    out, work = tmp_path / "out.h5", tmp_path / "out.h5.work"
    cmd = [sys.executable, "-m", "wavesurrogate.cli", "simulate", str(cfg_path), "--out", str(out),
           "--workers", "1"]
    proc = subprocess.Popen(cmd[:-1] + ["2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(list(work.glob("case-*.npz"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    n_before = len(list(work.glob("case-*.npz")))
    if out.exists():  # the machine was too fast to interrupt: the file must still be the same
        assert out.read_bytes() == fresh
        pytest.skip("campaign finished before it could be killed")
    assert 3 <= n_before < 28
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert out.read_bytes() == fresh
    assert not work.exists()


def test_read_shard_detects_tampering(tmp_path: Path) -> None:
    cfg = load_campaign(write_cfg(tmp_path / "c.yaml"))
    spec, other = sample_cases(cfg)[:2]
    case = campaign.run_case_encoded(cfg, spec)
    frames, velocity = run_case(cfg, spec)
    np.testing.assert_array_equal(decode_chunk(case.chunk, frames.shape), frames)
    campaign.write_shard(tmp_path, spec, case)
    assert read_shard(tmp_path, spec, frames.shape).checksum == case_checksum(frames, velocity)
    with np.load(tmp_path / "case-000000.npz") as z:
        parts = {k: z[k] for k in z.files}
    parts["chunk"] = np.frombuffer(encode_chunk(frames * 2), dtype=np.uint8)  # decodable, wrong data
    np.savez(tmp_path / "case-000000.npz", **parts)
    with pytest.raises(DataFileError, match="checksum"):
        read_shard(tmp_path, spec, frames.shape)
    campaign.write_shard(tmp_path, spec, case)
    os.replace(tmp_path / "case-000000.npz", tmp_path / "case-000001.npz")
    with pytest.raises(DataFileError, match="does not match"):
        read_shard(tmp_path, other, frames.shape)


@pytest.mark.slow  # devito imports and generates code in three processes
def test_devito_backend_bytes_independent_of_processes(tmp_path: Path) -> None:
    cfg = load_campaign(write_cfg(tmp_path / "c.yaml", solver={"backend": "devito"}))
    one = simulate(cfg, tmp_path / "one.h5", workers=1, progress=False)  # compiled in this process
    two = simulate(cfg, tmp_path / "two.h5", workers=2, progress=False)  # compiled in two fresh workers
    assert one.read_bytes() == two.read_bytes()


def test_loading_builds_no_solver_and_resolve_fixes_dt(tmp_path: Path, monkeypatch) -> None:
    from wavesurrogate.physics import fe

    def no_solver(*a, **k):
        raise AssertionError("an FE solver was built while loading")

    monkeypatch.setattr(fe.FESolver, "from_problem", no_solver)
    fe_cfg = load_campaign_config(write_cfg(tmp_path / "fe.yaml", solver={"kind": "fe", "element": "p1"}))
    assert fe_cfg.time.dt_s is None
    cfg = load_campaign_config(write_cfg(tmp_path / "c.yaml"))
    assert cfg.time.dt_s is None
    # GRF: c_max = 2200·(1 + 3·0.1) m/s; 4th order: dt ≤ 1/((7/6)·c_max·√(2/h²)), h = 10 m; safety 0.9
    bound = 1.0 / (7.0 / 6.0 * 2200.0 * 1.3 * math.sqrt(2.0 / 100.0))
    resolved = resolve(cfg)
    assert resolved.time.dt_s == pytest.approx(0.9 * bound, rel=1e-12)
    assert resolve(resolved) == resolved == load_campaign(tmp_path / "c.yaml")


def test_resolve_refuses_what_needs_the_solver_or_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "m.yaml"
    missing.write_text(yaml.safe_dump({**tiny(), "medium": {"kind": "file", "path": "nope.npy"}}))
    assert load_campaign_config(missing).medium.path == str((tmp_path / "nope.npy").resolve())
    with pytest.raises(ConfigError, match=r"m\.yaml: medium\.path"):
        load_campaign(missing)
    fast = yaml.safe_load(write_cfg(tmp_path / "f.yaml").read_text())
    fast["time"]["dt_s"] = 0.01
    (tmp_path / "f.yaml").write_text(yaml.safe_dump(fast))
    assert load_campaign_config(tmp_path / "f.yaml").time.dt_s == 0.01
    with pytest.raises(CFLError, match=r"f\.yaml: time\.dt_s = 0\.01 s breaks the CFL bound"):
        load_campaign(tmp_path / "f.yaml")
