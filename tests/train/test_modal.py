"""modal_operator on a tiny FD room campaign (impedance walls Z = 7,400 Pa·s/m as the furnished room, a rigid
table): the modes' source and receiver coefficients are the solver's injection and reading, the closed-form
fit reproduces held-out solver impulse responses, queries agree with evaluation, the modes cache is reused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from wavesurrogate.data.campaign import run_campaign
from wavesurrogate.data.store import open_data
from wavesurrogate.eval.evaluate import evaluate_model
from wavesurrogate.physics.sources import grid_footprint
from wavesurrogate.runs.load import load_run
from wavesurrogate.tasks import get
from wavesurrogate.tasks.source_to_receiver import predict_irs
from wavesurrogate.train.loop import config_from_dict, train

PARAMS = ["source_x_m", "source_y_m", "source_z_m"]
CAMPAIGN = {"name": "tiny_room", "seed": 0, "cases": 20, "test_cases": 4, "test_seed": 1000,
            "solver": {"kind": "fd", "space_order": 2, "backend": "numpy"},
            "grid": {"nx": 11, "ny": 9, "nz": 7, "dx_m": 0.2, "dy_m": 0.2, "dz_m": 0.2},
            "time": {"n_frames": 2, "frame_stride": 300},
            "boundary": {"kind": "impedance", "impedance_rayl": 7400.0, "rho_kgm3": 1.2},
            "obstacles": [{"name": "table", "x_m": [0.9, 1.3], "y_m": [0.5, 0.9], "z_m": [-0.1, 0.3]}],
            "medium": {"kind": "constant", "c_mps": 343.0},
            "source": {"kind": "point", "wavelet": "ricker", "x_m": [0.3, 1.7], "y_m": [0.3, 1.3],
                       "z_m": [0.5, 0.9], "freq_hz": 150.0, "amplitude": 1.0},
            "record": {"receivers": {"lattice": [4, 3, 2], "stride": 2}}}


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    d = tmp_path_factory.mktemp("modal_room")
    (d / "c.yaml").write_text(yaml.safe_dump(CAMPAIGN), encoding="utf-8")
    return run_campaign(d / "c.yaml", d / "room.h5", workers=1, overwrite=False, progress=False)


def _cfg(data, out, cutoff_hz=500.0):
    return config_from_dict({
        "name": "modal", "seed": 0, "out": str(out), "num_threads": 1, "progress": False,
        "data": {"path": str(data), "task": "source_to_receiver", "val_fraction": 0.2, "params": PARAMS,
                 "held_out_receivers": 4, "points_per_case": 64},
        "model": {"name": "modal_operator", "kwargs": {"n_params": 3, "cutoff_hz": cutoff_hz}},
        "optim": {"name": "adam", "lr": 1e-9}, "epochs": 1, "batch_size": 8})


@pytest.fixture(scope="module")
def run(room, tmp_path_factory):
    return train(_cfg(room, tmp_path_factory.mktemp("modal_run") / "run"))


def test_fit_reproduces_held_out_solver_responses(room, run):
    model, info = load_run(run)
    m = info.stats["modes"]
    assert m["n_modes"] == 109 and m["f_top_hz"] < 500.0 and m["fit"]["ridge"] in m["fit"]["ridge_grid"]
    ev = evaluate_model(model, info, room)
    # measured: held out 0.033 peak-normalised RMSE, 0.17 relative L2 (test sources, unseen receivers)
    assert ev["held_out"]["peak_normalised_rmse"] < 0.045 and ev["held_out"]["rel_l2"] < 0.2
    assert ev["held_out"]["n_pairs"] == 16 and ev["trained"]["rel_l2"] < 0.2


def test_coefficients_are_the_solvers_injection_and_reading(run):
    """a(s) = ΨᵀW·g_s·dV with g_s the solver's footprint (sources.grid_footprint, obstacle nodes off);
    ψ(r) at a node is the node's value."""
    from wavesurrogate.physics.problem import Grid, Source

    model, info = load_run(run)
    nz, ny, nx = info.stats["modes"]["grid_shape"]
    g = Grid(nx, ny, 0.2, 0.2, nz=nz, dz=0.2)
    psi = model.psi.reshape(-1, model.n_modes).double().numpy()
    w = model.wall_w.double().numpy()
    for pos in ([0.33, 0.47, 0.61], [1.95, 1.58, 1.18], [0.2, 0.0, 0.4]):
        foot = grid_footprint(Source(kind="point", x_m=pos[0], y_m=pos[1], z_m=pos[2]), g).reshape(-1)
        want = psi.T @ (w * foot) * 0.2**3
        got = model.at_sources(torch.tensor([pos], dtype=torch.float64))[0].double().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    node = torch.tensor([[0.4, 0.6, 1.0]], dtype=torch.float64)  # node (z 5, y 3, x 2)
    np.testing.assert_allclose(model.at_receivers(node)[0].numpy(), psi[(5 * ny + 3) * nx + 2], rtol=1e-6)


def test_query_agrees_with_evaluation_and_truncation_keeps_low_modes(room, run):
    model, info = load_run(run)
    s = info.stats
    with open_data(room) as f:
        case = int(np.flatnonzero(f.split == 1)[0])
        p = {k: float(f.params[k][case]) for k in s["param_names"]}
        ho = s["receivers"]["held_out"]
        rec_m = f.trace_index("receivers")[ho][:, ::-1] * np.asarray(f.spacing[::-1])
        true = f.traces("receivers", [case])[0][:, ho].T
    got = predict_irs(model, s, p, rec_m)
    assert got.shape == true.shape
    assert np.linalg.norm(got - true) < 0.2 * np.linalg.norm(true)
    ev = get("source_to_receiver").evaluate(model, info, open_data(room), np.array([case]))
    assert ev["held_out"]["n_pairs"] == len(ho)
    small = model.truncated(20)
    assert small.n_modes == 20 and torch.equal(small.response, model.response[:20])
    assert not np.allclose(predict_irs(small, s, p, rec_m), got)


def test_modes_are_cached_in_the_run_directory(room, run):
    cfg = _cfg(room, run)
    td = get("source_to_receiver").prepare(cfg)
    assert td.stats["modes"]["cached"] is True and td.stats["modes"]["n_modes"] == 109
    model, _ = load_run(run)
    np.testing.assert_array_equal(td.extra["psi"], model.psi.reshape(-1, 109).numpy())


def test_a_lower_cutoff_reads_the_lower_modes_of_a_cached_higher_one(room, run):
    td = get("source_to_receiver").prepare(_cfg(room, run, cutoff_hz=400.0))
    m = td.stats["modes"]
    assert m["cached"] is True and 0 < m["n_modes"] < 109 and np.all(td.extra["freq_hz"] < 400.0)
    model, _ = load_run(run)
    np.testing.assert_array_equal(td.extra["psi"], model.psi.reshape(-1, 109)[:, : m["n_modes"]].numpy())


def test_bad_setups_are_one_line_config_errors():
    from wavesurrogate.errors import ConfigError
    from wavesurrogate.nn import registry
    from wavesurrogate.tasks import _modal

    geo2 = {"coord_min": [0.0, 0.0, 0.0], "coord_max": [1.0, 1.0, 0.01], "source_params": [0, 1],
            "param_mean": [0.5, 0.5], "param_std": [0.2, 0.2], "c_ref_mps": 343.0, "f_max_hz": 500.0}
    kw = {"n_params": 2, "geometry": geo2, "grid_shape": [3, 4, 5], "spacing_m": [0.1, 0.1, 0.1],
          "n_modes": 2, "n_times": 4, "t0_s": 0.0, "dt_s": 0.001}
    with pytest.raises(ConfigError, match="3-D"):
        registry.build("modal_operator", kw)
    geo3 = {**geo2, "coord_min": [0.0, 0.0, 0.0, 0.0], "coord_max": [1.0, 1.0, 1.0, 0.01],
            "source_params": [0, 1, 2], "param_mean": [0.5] * 3, "param_std": [0.2] * 3}
    with pytest.raises(ConfigError, match="grid_shape"):
        registry.build("modal_operator", {**kw, "n_params": 3, "geometry": geo3, "grid_shape": [3, 4]})
    with pytest.raises(ConfigError, match="3-D room file"):
        _modal.model_kwargs({}, {"receivers": {"n_times": 4}})


def test_a_modes_cache_that_does_not_fit_the_room_is_refused_and_a_killed_write_is_swept(room, run, tmp_path):
    """A cache with the room's key but psi rows of another grid was returned as it was (the run then failed
    with a ValueError traceback in ``set_modes``); a temp file of a killed cache write stayed forever."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from wavesurrogate.errors import CheckpointError
    from wavesurrogate.tasks import _modal

    with safe_open(str(run / _modal.MODES_FILE), "np") as h:
        meta = h.metadata()
    got = load_file(str(run / _modal.MODES_FILE))
    save_file({"psi": got["psi"][:-5], "freq_hz": got["freq_hz"]}, str(tmp_path / _modal.MODES_FILE),
              metadata=meta)
    with open_data(room) as f, pytest.raises(CheckpointError, match="do not fit the room's 693 nodes"):
        _modal.room_modes(f, 500.0, tmp_path)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    stale = fresh / f".{_modal.MODES_FILE}.x1y2z3.tmp"
    stale.write_bytes(b"\0" * 1000)
    with open_data(room) as f:
        psi, freq, info = _modal.room_modes(f, 300.0, fresh)
    assert not info["cached"] and psi.shape == (693, freq.size) and np.all(freq < 300.0)
    assert sorted(p.name for p in fresh.iterdir()) == [_modal.MODES_FILE]


@pytest.mark.parametrize("cutoff", ["abc", True, [500.0], -1.0])
def test_a_nonsensical_cutoff_is_one_config_error_and_nothing_is_written(room, tmp_path, cutoff):
    from wavesurrogate.errors import ConfigError

    with pytest.raises(ConfigError, match="cutoff_hz"):
        train(_cfg(room, tmp_path / "r", cutoff_hz=cutoff))
    assert not (tmp_path / "r").exists()
