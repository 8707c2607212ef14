"""source_to_receiver on a 3-D room campaign (analytic image-source responses written in the schema's
layout): (x, y, z, t) coordinates that map back to the receivers' metres, trace statistics, the room kept in
the run, held-out receivers evaluated, and predict_irs answering arbitrary receivers as evaluate does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import train_tiny as tt

from wavesurrogate.data.image_room import write_image_room
from wavesurrogate.data.store import open_data
from wavesurrogate.errors import ConfigError
from wavesurrogate.eval.evaluate import evaluate_model
from wavesurrogate.physics.image_source import box_response, gaussian_pulse
from wavesurrogate.runs.load import load_run
from wavesurrogate.tasks import get
from wavesurrogate.tasks.source_to_receiver import check_position, predict_irs
from wavesurrogate.train.loop import config_from_dict, train

ROOM = (3.0, 2.5, 2.0)
PARAMS = ["source_x_m", "source_y_m", "source_z_m"]


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    rng = np.random.default_rng(1)
    src = rng.uniform([0.5, 0.5, 0.5], [2.5, 2.0, 1.5], (8, 3))
    path = tmp_path_factory.mktemp("room") / "room.h5"
    return write_image_room(path, room=ROOM, spacing_m=0.25, sources=src,
                            split=np.r_[np.zeros(6), np.ones(2)], receiver_stride=(3, 3, 3),
                            duration_s=0.03, fs_hz=4000.0)


def _cfg(data, out, **model):
    return tt.tiny_config(data, out, epochs=2, batch_size=2,
                          data={"path": str(data), "task": "source_to_receiver", "points_per_case": 64,
                                "val_fraction": 0.2, "params": PARAMS, "held_out_receivers": 3},
                          model={"name": "relative_operator",
                                 "kwargs": {"n_params": 3, "width": 16, "n_basis": 4, **model}})


def test_image_room_file_holds_the_analytic_responses(room):
    with open_data(room) as f:
        assert f.n_spatial_dims == 3 and f.trace_index("receivers").shape[1] == 3
        idx, t = f.trace_index("receivers"), f.trace_t("receivers")
        p = {k: float(f.params[k][0]) for k in PARAMS}
        got = f.traces("receivers", [0])[0]
    want = box_response([p[k] for k in PARAMS], idx[:, ::-1] * 0.25, ROOM, t, 343.0, 500.0, 0.9)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # R = 0: the free-field Green's function g(t - d/c) / (4 pi d) alone
    free = box_response([1.0, 1.0, 1.0], [[2.0, 1.5, 0.5]], ROOM, t, 343.0, 500.0, 0.0)[:, 0]
    d = np.linalg.norm([1.0, 0.5, -0.5])
    np.testing.assert_allclose(free, gaussian_pulse(t - d / 343.0, 500.0) / (4 * np.pi * d), atol=1e-12)
    # R = 1: the first reflection off the floor (z = 0) arrives from the image at z = -1
    rigid = box_response([1.0, 1.0, 1.0], [[1.0, 1.0, 1.5]], (2.0, 2.0, 2.5), t, 343.0, 500.0, 1.0)[:, 0]
    direct = gaussian_pulse(t - 0.5 / 343.0, 500.0) / (4 * np.pi * 0.5)
    floor = gaussian_pulse(t - 2.5 / 343.0, 500.0) / (4 * np.pi * 2.5)
    early = t < 2.0 / 343.0  # before any other image (the nearest others are 2 m away or more)
    np.testing.assert_allclose(rigid[early], direct[early], rtol=1e-5, atol=1e-9)
    window = (t > 2.3 / 343.0) & (t < 2.7 / 343.0)
    assert abs(rigid[window].max() - (direct + floor)[window].max()) < 0.2 * floor.max()


def test_3d_points_train_evaluate_and_answer_arbitrary_receivers(room, tmp_path):
    cfg = config_from_dict(_cfg(room, tmp_path / "r"))
    td = get("source_to_receiver").prepare(cfg)
    s = td.stats
    assert len(s["coord_min"]) == 4 and s["room"]["max_m"] == list(ROOM) and s["room"]["obstacles"] == []
    with open_data(room) as f:
        idx, tr = f.trace_index("receivers"), f.traces("receivers", s["splits"]["train"])
        t = f.trace_t("receivers")
    assert (s["coord_min"][3], s["coord_max"][3]) == (t[0], t[-1])  # time scaled over the traces
    tr = tr[:, :, s["receivers"]["train"]]
    np.testing.assert_allclose([s["field_mean"], s["field_std"]],
                               [tr.mean(dtype=np.float64), tr.std(dtype=np.float64)], rtol=1e-6)
    z = td.train.tables[1][:, 2].numpy()  # scaled z of the trained receivers, back to metres
    lo, hi = s["coord_min"][2], s["coord_max"][2]
    np.testing.assert_allclose((z + 1) / 2 * (hi - lo) + lo, idx[s["receivers"]["train"], 0] * 0.25,
                               atol=1e-5)
    params, coords, values = td.train.__getitems__([0, 1])
    assert coords.shape == (2, 64, 4) and values.shape == (2, 64)

    run = train(cfg)
    model, info = load_run(run, "best")
    res = evaluate_model(model, info, room)
    assert len(res["held_out"]["receivers"]) == 3 and res["held_out"]["n_pairs"] == 2 * 3
    # predict_irs at the held-out receivers' positions equals what evaluate compared
    with open_data(room) as f:
        case = int(np.flatnonzero(f.split == 1)[0])
        p = {k: float(f.params[k][case]) for k in info.stats["param_names"]}
    rec_m = idx[info.stats["receivers"]["held_out"]][:, ::-1] * 0.25
    irs = predict_irs(model, info.stats, p, rec_m)
    assert irs.shape == (3, t.size) and np.all(np.isfinite(irs))
    off = predict_irs(model, info.stats, p, rec_m + 0.1)  # between grid nodes: any position
    assert off.shape == irs.shape and not np.allclose(off, irs)
    with torch.no_grad():
        one = predict_irs(model, info.stats, p, rec_m[:1])
    np.testing.assert_allclose(one, irs[:1], rtol=1e-5, atol=1e-6)


def test_positions_outside_the_room_or_in_an_obstacle_are_refused():
    box = {"x_m": [1, 2], "y_m": [0, 1], "z_m": [0, 0.8]}
    r = {"min_m": [0, 0, 0], "max_m": list(ROOM), "obstacles": [box]}
    np.testing.assert_array_equal(check_position(r, [0.5, 0.5, 0.5], "--source"), [0.5, 0.5, 0.5])
    for bad, msg in (([4.0, 1, 1], "outside the room"), ([1.5, 0.5, 0.5], "inside an obstacle"),
                     ([1, 1], "three finite"), ([1, np.nan, 1], "three finite")):
        with pytest.raises(ConfigError, match=msg):
            check_position(r, bad, "--source")
