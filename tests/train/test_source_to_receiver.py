"""Task source_to_receiver on a tiny FD campaign with a receiver lattice: held-out receivers never trained
on, the statistics of source_to_field, metrics against an independent computation, the geometry contract
of points models and bad configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import train_tiny as tt
import yaml

from wavesurrogate import runs as ck
from wavesurrogate.data.campaign import simulate
from wavesurrogate.data.cases import load_campaign
from wavesurrogate.data.store import open_data
from wavesurrogate.errors import ConfigError
from wavesurrogate.eval.evaluate import evaluate_model
from wavesurrogate.nn import registry
from wavesurrogate.runs.load import load_run
from wavesurrogate.tasks import get
from wavesurrogate.tasks.source_to_receiver import held_out
from wavesurrogate.train.loop import build_model, config_from_dict, train

TASK = "source_to_receiver"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from tests.data.test_campaign import tiny

    d = tmp_path_factory.mktemp("rec")
    cfg = tiny(cases=6, test_cases=2,
               time={"n_frames": 8, "frame_stride": 4},
               record={"receivers": {"lattice": [4, 3], "stride": 2}})
    cfg["medium"] = {"kind": "constant", "c_mps": 2000.0}
    (d / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return simulate(load_campaign(d / "c.yaml"), d / "r.h5", workers=1, progress=False)


def _cfg(data: Path, out: Path, task: str = TASK, **data_over) -> dict:
    return tt.tiny_config(data, out, epochs=2, batch_size=2,
                          data={"path": str(data), "task": task, "points_per_case": 32, "val_fraction": 0.25,
                                "params": ["source_x_m", "source_y_m"], **data_over},
                          model={"name": tt.FIELD, "kwargs": {"n_params": 2, "width": 8}})


def test_held_out_receivers_are_fixed_and_never_trained_on(data, tmp_path):
    assert held_out(3, 12) == held_out(3, 12) and len(held_out(3, 12)) == 3
    cfg = config_from_dict(_cfg(data, tmp_path / "r", held_out_receivers=3))
    td = get(TASK).prepare(cfg)
    r = td.stats["receivers"]
    assert r["held_out"] == held_out(3, 12) and sorted(r["held_out"] + r["train"]) == list(range(12))
    with open_data(data) as f:
        idx, dx, tr = f.trace_index("receivers"), f.dx, f.traces("receivers", td.stats["splits"]["train"])
    xs = td.train.tables[1][:, 0].numpy()  # scaled x of the trained receivers, back to metres
    lo, hi = td.stats["coord_min"][0], td.stats["coord_max"][0]
    np.testing.assert_allclose((xs + 1) / 2 * (hi - lo) + lo, idx[r["train"], 1] * dx, atol=1e-4)
    fm, fs = td.stats["field_mean"], td.stats["field_std"]
    want = (tr[:, :, r["train"]] - fm) / fs
    np.testing.assert_allclose(td.train.values.numpy(), want, rtol=1e-5, atol=1e-6)
    # the same statistics as source_to_field: one model serves both tasks
    other = get("source_to_field").prepare(config_from_dict(_cfg(data, tmp_path / "f", "source_to_field")))
    for k in ("field_mean", "field_std", "param_mean", "param_std", "coord_min", "coord_max", "c_ref_mps",
              "f_max_hz"):
        assert other.stats[k] == td.stats[k], k
    with pytest.raises(ConfigError, match="data.held_out_receivers"):
        get(TASK).prepare(config_from_dict(_cfg(data, tmp_path / "x", held_out_receivers=12)))
    with pytest.raises(ConfigError, match="data.held_out_receivers"):
        get(TASK).prepare(config_from_dict(_cfg(data, tmp_path / "x", held_out_receivers=[1, 1])))


def test_trains_and_evaluates_with_the_signal_metrics(data, tmp_path):
    run = train(config_from_dict(_cfg(data, tmp_path / "r", held_out_receivers=[0, 5])))
    assert json.loads((run / ck.STATS).read_text())["receivers"]["held_out"] == [0, 5]
    model, info = load_run(run, "best")
    res = evaluate_model(model, info, data)
    assert res["task"] == TASK and res["one_step"] == res["held_out"] and res["held_out"]["n_pairs"] == 4
    # independent: predict each (source, receiver, time) point alone and compute the metrics in NumPy
    s = info.stats
    with open_data(data) as f:
        cases, idx, t_s = np.flatnonzero(f.split == 1), f.trace_index("receivers"), f.trace_t("receivers")
        true = f.traces("receivers", cases)
        px, py = f.params["source_x_m"][cases], f.params["source_y_m"][cases]
        for key, which in (("held_out", [0, 5]), ("trained", [r for r in range(12) if r not in (0, 5)])):
            pnr, rel, num, den = [], [], 0.0, 0.0
            for n in range(len(cases)):
                p = (np.array([px[n], py[n]]) - s["param_mean"]) / s["param_std"]
                for r in which:
                    xyt = np.stack([np.full_like(t_s, idx[r, 1] * f.dx), np.full_like(t_s, idx[r, 0] * f.dy),
                                    t_s], 1)
                    lo, hi = np.array(s["coord_min"]), np.array(s["coord_max"])
                    q = torch.tensor(2 * (xyt - lo) / (hi - lo) - 1, dtype=torch.float32)[None]
                    with torch.no_grad():
                        y = model(torch.tensor(p, dtype=torch.float32)[None], q)[0].double().numpy()
                    y = y * s["field_std"] + s["field_mean"]
                    tr = true[n, :, r].astype(np.float64)
                    pnr.append(np.sqrt(np.mean((y - tr) ** 2)) / np.abs(tr).max())
                    rel.append(np.linalg.norm(y - tr) / np.linalg.norm(tr))
                    num, den = num + np.sum((y - tr) ** 2), den + np.sum(tr**2)
            got = res[key]
            assert got["receivers"] == which and got["n_sources"] == 2
            assert got["peak_normalised_rmse"] == pytest.approx(np.mean(pnr), rel=1e-5)
            assert got["relative_rmse"] == pytest.approx(np.mean(rel), rel=1e-5)
            assert got["rel_l2"] == pytest.approx(np.sqrt(num / den), rel=1e-5)
            assert np.isfinite(got["mean_relative_error_above_60db"])


class GeometryField(tt.TinyField):
    """A points model with the geometry capability that keeps what it was given."""

    capabilities = {"geometry": True}

    def __init__(self, n_params: int = 2, width: int = 8, geometry: dict | None = None):
        super().__init__(n_params, width)
        self.geometry = geometry


@pytest.fixture
def geometry_model(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register("test_geometry_field", registry.POINTS)(GeometryField)
    return "test_geometry_field"


@pytest.mark.parametrize("task", [TASK, "source_to_field"])
def test_geometry_contract(data, tmp_path, geometry_model, task):
    raw = _cfg(data, tmp_path / "g", task, params=["freq_hz", "source_y_m", "source_x_m"])
    raw["model"] = {"name": geometry_model, "kwargs": {"n_params": 3}}
    cfg = config_from_dict(raw)
    td = get(task).prepare(cfg)
    g = build_model(cfg, td.stats).geometry
    with open_data(data) as f:
        train = td.stats["splits"]["train"]
        c_ref = float(np.mean([f.velocity(i).astype(np.float64).mean() for i in train]))
        want = {"coord_min": [0.0, 0.0, 0.0], "coord_max": [19 * 10.0, 17 * 10.0, float(f.t[-1])],
                "source_params": [2, 1], "c_ref_mps": c_ref,
                "f_max_hz": 2.5 * float(np.max(f.params["freq_hz"][train])),
                "param_mean": [float(np.mean(f.params[k][train]))
                               for k in ("freq_hz", "source_y_m", "source_x_m")]}
    assert g["c_ref_mps"] == 2000.0 == pytest.approx(c_ref)  # constant medium: its speed
    for k, v in want.items():
        assert g[k] == pytest.approx(v, rel=1e-12), k
    assert len(g["param_std"]) == 3 and all(type(v) is float for v in g["param_std"] + g["coord_max"])
    json.dumps(g)
    raw["data"]["params"] = ["freq_hz", "source_y_m"]
    raw["model"]["kwargs"]["n_params"] = 2
    with pytest.raises(ConfigError, match="data.params: .*'source_x_m'"):
        bad = config_from_dict(raw)
        build_model(bad, get(task).prepare(bad).stats)
