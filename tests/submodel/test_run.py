"""Trace network (interpolation, warp, shapes), trace training, and `wavesurrogate submodel` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from wavesurrogate.apps.submodel import load_trace_run
from wavesurrogate.cli import main
from wavesurrogate.config.base import read_yaml, validate
from wavesurrogate.config.campaign import CampaignConfig, check_campaign, load_campaign_config
from wavesurrogate.config.train import TrainConfig
from wavesurrogate.data.campaign import simulate
from wavesurrogate.errors import CheckpointError
from wavesurrogate.nn import registry
from wavesurrogate.nn.models.trace import TraceCNN, catmull_rom, perimeter_xy
from wavesurrogate.physics.fe import rectangle_boundary_order
from wavesurrogate.physics.sources import ricker
from wavesurrogate.train.loop import train

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "submodel_test.yaml"
TRAIN = CONFIG.with_name("submodel_test_train.yaml")


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory) -> Path:
    data = load_campaign_config(CONFIG).model_dump(mode="json")
    data.update(cases=8, test_cases=2)
    cfg = check_campaign(validate(CampaignConfig, data))
    return simulate(cfg, tmp_path_factory.mktemp("traces") / "t.h5", workers=1, progress=False)


@pytest.fixture(scope="module")
def trained_run(trace_file, tmp_path_factory) -> Path:
    return train(train_config(trace_file, tmp_path_factory.mktemp("runs") / "run", epochs=15))


def train_config(data: Path, out: Path, **update) -> TrainConfig:
    d = read_yaml(TRAIN)
    d["data"]["path"], d["out"] = str(data), str(out)
    d.update(update)
    return validate(TrainConfig, d)


def test_catmull_rom_is_third_order_and_zero_outside():
    errors = []
    for n in (32, 64):
        x = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
        q = torch.linspace(0.13, 0.87, 101, dtype=torch.float64)
        got = catmull_rom(torch.sin(6 * torch.pi * x)[None], (q * (n - 1))[None])[0]
        errors.append(float((got - torch.sin(6 * torch.pi * q)).abs().max()))
    assert errors[0] / errors[1] > 6.0, errors  # third order: 8× per halving (torch's bicubic is first order)
    v = torch.ones(1, 8, dtype=torch.float64)
    out = catmull_rom(v, torch.tensor([[-5.0, 3.5, 20.0]], dtype=torch.float64))
    assert out.tolist() == [[0.0, 1.0, 0.0]]


def test_perimeter_follows_the_zoi_boundary_order():
    xy = perimeter_xy([100.0, 50.0, 5.0, 10.0, 7, 4]).numpy()
    flat = rectangle_boundary_order(7, 4)
    np.testing.assert_allclose(xy[:, 0], 100.0 + 5.0 * (flat % 7))
    np.testing.assert_allclose(xy[:, 1], 50.0 + 10.0 * (flat // 7))


def _model(**kw) -> TraceCNN:
    args = dict(n_params=5, n_boundary=60, n_times=81, trace_dt_s=0.004, param_mean=[400, 400, 20, 2000, 0],
                param_std=[100, 100, 3, 100, 0.05], zoi_m=[160.0, 160.0, 10.0, 10.0, 16, 16],
                warp={"source_x": 0, "source_y": 1, "freq": 2, "velocity": 3}, n_tau=32,
                latent_shape=[4, 4], channels=[8, 8], hidden=16, latent_channels=4)
    args.update(kw)
    return registry.build("trace_cnn", args)


def test_trace_cnn_shapes_formats_and_registry():
    assert registry.entry("trace_cnn").interface == registry.TRACE
    p = torch.tensor([[300.0, 420.0, 18.0, 2000.0, 0.05], [90.0, 100.0, 22.0, 1900.0, -0.02]],
                     dtype=torch.float64)
    for warp in (True, False):
        kw = {} if warp else {"warp": None}
        dense, cp = _model(**kw), _model(conv={"format": "cp", "rank": 2}, **kw)
        assert dense(p).shape == cp(p).shape == (2, 60, 81)
        n_conv = [sum(q.numel() for q in m.convs.parameters()) for m in (dense, cp)]
        assert n_conv[1] < n_conv[0] / 2
    with pytest.raises(Exception, match="params"):
        _model()(p[:, :4])
    torch.manual_seed(0)
    plain = _model()
    torch.manual_seed(0)
    shifted = _model(shift_knots=4)  # the arrival correction starts at zero and learns through the warp
    assert torch.equal(plain(p), shifted(p))
    (shifted(p) ** 2).sum().backward()
    assert shifted.shift.weight.grad.abs().sum() > 0


def test_warp_puts_the_decoded_pulse_at_the_straight_ray_arrival(monkeypatch):
    model = _model(n_tau=128)
    tau = torch.linspace(*model.tau_window, model.n_tau, dtype=torch.float64)
    pulse = torch.from_numpy(ricker(tau.numpy(), 1.0, 0.0)).float()  # v(τ): unit-frequency Ricker at τ = 0
    monkeypatch.setattr(model, "_decode", lambda p: (pulse.expand(p.shape[0], model.n_boundary, -1), None))
    xs, ys, f, c = 300.0, 420.0, 18.0, 2000.0
    out = model(torch.tensor([[xs, ys, f, c, 0.0]], dtype=torch.float64))[0].double()
    xy = perimeter_xy([160.0, 160.0, 10.0, 10.0, 16, 16])
    r = torch.hypot(xy[:, 0] - xs, xy[:, 1] - ys)
    t = torch.arange(81, dtype=torch.float64) * 0.004
    amp = torch.sqrt(model.r_ref / r)
    arrival = 1.2 / f + r / c
    expected = amp[:, None] * torch.from_numpy(ricker((t[None] - arrival[:, None]).numpy(), f, 0.0))
    err = (out - expected * model.trace_scale).abs().max() / expected.abs().max()
    assert err < 0.01, float(err)  # Catmull–Rom, 16 samples per period
    assert (out.argmax(dim=1) - torch.round(arrival / 0.004)).abs().max() <= 1


def test_training_reduces_the_trace_error_and_resumes(trace_file, trained_run, tmp_path):
    lines = [json.loads(s) for s in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 15
    assert lines[-1]["train_loss"] < 0.5 * lines[0]["train_loss"], (lines[0], lines[-1])
    model, info = load_trace_run(trained_run)
    assert info.stats["param_names"] == ["source_x_m", "source_y_m", "freq_hz", "medium_c0_mps",
                                         "medium_gradient"]
    assert model.warp is not None and info.config.data.task == "boundary_trace"
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    train(train_config(trace_file, run, epochs=16), resume=run)
    last = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(last) == 16 and last[:15] == lines
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(train_config(trace_file, run, epochs=17))


def test_cli_submodel_end_to_end(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    out = tmp_path / "out"
    assert main(["submodel", str(run), "--case", "9", "--out", str(out)]) == 0
    assert "case 9 (test)" in capsys.readouterr().out
    res = json.loads((out / "submodel.json").read_text())
    assert res["floor_rel_l2"] < 1e-3 < res["zoi_rel_l2"]
    assert res["trace_rel_l2"] > 0 and res["network_s"] > 0 and res["zoi_solve_s"] > 0
    with np.load(out / "zoi_field.npz") as z:
        assert z["submodel"].shape == z["truth"].shape == (21, 16, 16)
        assert z["trace_net"].shape == z["trace_exact"].shape == (81, 60)
        assert np.allclose(z["trace_t_s"][1] - z["trace_t_s"][0], 0.004)
        assert not np.allclose(z["submodel"], z["submodel_exact_trace"])
    assert (out / "submodel.png").stat().st_size > 10_000
    # default data and output locations come from the run
    assert main(["submodel", str(run), "--case", "0"]) == 0
    assert (run / "submodel" / "case_0000" / "submodel.json").is_file()
    capsys.readouterr()
    for argv, msg in ((["submodel", str(run), "--case", "10"], "out of range"),
                      (["submodel", str(tmp_path), "--case", "0"], "not a run directory")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1
