"""Rollout-aware forecasts on a real (tiny, NumPy FD) campaign: forcing inputs, leapfrog update, unrolled and
pushforward training on a curriculum, seeded input noise, energy and spectral-radius reports in evaluate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import train_tiny as tt
import yaml

from wavesurrogate import tasks
from wavesurrogate.config.campaign import load_campaign_config
from wavesurrogate.data.campaign import simulate
from wavesurrogate.data.store import open_data
from wavesurrogate.errors import ConfigError, DataFileError
from wavesurrogate.eval.evaluate import evaluate_run
from wavesurrogate.physics.sources import frame_forcing, source_delay
from wavesurrogate.runs import load_run
from wavesurrogate.train.loop import config_from_dict, train

CAMPAIGN = {
    "name": "tiny", "seed": 3, "cases": 5, "test_cases": 2, "test_seed": 99,
    "solver": {"kind": "fd", "space_order": 2, "backend": "numpy"},
    "grid": {"nx": 16, "ny": 16, "dx_m": 10.0, "dy_m": 10.0},
    "time": {"n_frames": 20, "frame_stride": 3},
    "boundary": {"kind": "absorbing", "width": 6},
    "medium": {"kind": "grf", "mean_mps": [1800.0, 2200.0], "contrast": [0.0, 0.1],
               "correlation_length_m": [30.0, 50.0]},
    "source": {"kind": "point", "x_m": [50.0, 100.0], "y_m": [50.0, 100.0], "freq_hz": [25.0, 35.0],
               "amplitude": 1.0e7},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("campaign")
    (d / "c.yaml").write_text(yaml.safe_dump(CAMPAIGN), encoding="utf-8")
    return simulate(load_campaign_config(d / "c.yaml"), d / "data.h5", workers=1, progress=False)


def cfg(data: Path, out: Path, data_over: dict | None = None, **over):
    c = {"name": "r", "seed": 1, "out": str(out),
         "data": {"path": str(data), "n_in": 2, "n_out": 1, "val_fraction": 0.25, **(data_over or {})},
         "model": {"name": "cnn2d", "kwargs": {"width": 4, "depth": 1}},
         "optim": {"lr": 3e-3}, "epochs": 2, "batch_size": 8, "progress": False, "num_threads": 1}
    c.update(over)
    return config_from_dict(c)


FULL = {"inputs": ["frames", "velocity", "forcing"], "update": "leapfrog"}


def test_frame_forcing_integrates_the_ricker_wavelet():
    # ∫ a(1 − 2π²f²τ²) e^{−π²f²τ²} dτ = a τ e^{−π²f²τ²}: the per-frame amplitude is a left Riemann sum of it
    from wavesurrogate.physics.problem import Grid, Problem, Source, TimeAxis

    grid = Grid(nx=9, ny=7, dx=10.0, dy=10.0)
    src = Source(kind="point", x_m=31.0, y_m=24.0, freq_hz=10.0, amplitude=3.0)
    p = Problem(grid, np.full((7, 9), 2000.0), TimeAxis(dt_s=1e-4, n_frames=30, frame_stride=100), src)
    amp, foot = frame_forcing(p, 32)
    tau = np.arange(32) * 100 * 1e-4 - source_delay(src)
    a = (np.pi * 10.0 * tau) ** 2
    integral = np.diff(3.0 * tau * np.exp(-a))
    w = 3.0 * (1 - 2 * a) * np.exp(-a)
    want = np.concatenate([[0.0], integral - 0.5e-4 * np.diff(w)])  # left sum = ∫ − dt/2·Δw + O(dt²)
    assert amp.shape == (32,) and amp[0] == 0.0
    assert np.abs(amp - want).max() < 1e-5 * np.abs(want).max()
    assert math.isclose(foot.sum() * 100.0, 1.0, rel_tol=1e-12)  # bilinear point source, weights / (dx·dy)
    assert foot[2, 3] == pytest.approx(0.9 * 0.6 / 100.0)  # (x, y) = (31, 24): i0 = 3, j0 = 2


def test_windows_carry_forcing_noise_and_the_curriculum(data, tmp_path):
    c = cfg(data, tmp_path / "w", FULL, rollout={"unroll": [1, 3], "stage_epochs": 2, "noise_std": 0.1})
    td = tasks.get("forecast").prepare(c)
    ds = td.train
    x, y = ds[0]
    assert x.shape == (4, 16, 16) and y.shape == (1, 16, 16)
    ds.set_epoch(2)
    x3, y3 = ds[0]
    assert x3.shape == (6, 16, 16) and y3.shape == (3, 16, 16)
    assert len(ds) == len(td.stats["splits"]["train"]) * (20 - 2 - 3 + 1)
    with open_data(data) as f:
        amp, foot = frame_forcing(f.problem(int(td.stats["splits"]["train"][0])))
    want = amp[2:5, None, None] * foot[None] / td.stats["forcing_scale"]
    torch.testing.assert_close(x3[3:], torch.from_numpy(want).float())
    with open_data(data) as f:
        first = f.load_all(td.stats["splits"]["train"][:1])[0][0, :2]
    clean = (torch.from_numpy(first) - td.stats["field_mean"]) / td.stats["field_std"]
    noise = x3[:2] - clean
    assert 0.07 < float(noise.std()) < 0.13
    torch.testing.assert_close(ds[0][0], x3)  # seeded by (seed, epoch, i)
    ds.set_epoch(3)
    assert not torch.equal(ds[0][0][:2], x3[:2])  # another epoch, other noise
    with open_data(data) as f:
        val_frames = f.load_all(td.stats["splits"]["val"][:1])[0][0, :2]
    clean_val = (torch.from_numpy(val_frames) - td.stats["field_mean"]) / td.stats["field_std"]
    torch.testing.assert_close(td.val[0][0][:2], clean_val.float())
    assert td.val[0][1].shape[0] == 3  # validation at the last stage's horizon, without noise


def test_unrolled_loss_is_the_rollout_loss_and_pushforward_has_one_step_of_gradient(data, tmp_path):
    from wavesurrogate.nn.rollout import rollout
    from wavesurrogate.train.loop import build_model

    task = tasks.get("forecast")
    c = cfg(data, tmp_path / "u", FULL, rollout={"unroll": [4]})
    td = task.prepare(c)
    model = build_model(c, td.stats)
    assert model.n_extra == 1 and model.residual is False
    x, y = (torch.stack(t) for t in zip(td.train[0], td.train[5], strict=True))
    loss = task.batch_loss(model, [x, y], c)
    pred = rollout(model, x[:, :2], x[:, 2], 4, extra=x[:, 3:], update="leapfrog")
    torch.testing.assert_close(loss, (pred - y).pow(2).flatten(1).mean(1))
    loss.sum().backward()
    full = model.lift[0].weight.grad.clone()
    model.zero_grad()
    pf = c.model_copy(update={"rollout": c.rollout.model_copy(update={"pushforward": True})})
    task.batch_loss(model, [x, y], pf).sum().backward()
    with torch.no_grad():  # the pushforward gradient is that of the last step from the detached state
        state = torch.cat([x[:, :2], pred[:, :3]], dim=1)[:, -2:]
    state.requires_grad_(False)
    model.zero_grad()
    from wavesurrogate.nn.rollout import step

    want = (step(model, state, x[:, 2:3], x[:, 6:7], "leapfrog") - y[:, 3:]).pow(2).flatten(1).mean(1)
    want.sum().backward()
    g = model.lift[0].weight.grad.clone()
    model.zero_grad()
    task.batch_loss(model, [x, y], pf).sum().backward()
    torch.testing.assert_close(model.lift[0].weight.grad, g)
    assert not torch.allclose(g, full)


def test_bad_options_are_one_line_config_errors(data, tmp_path):
    with pytest.raises(ConfigError, match="leapfrog needs two time levels"):
        cfg(data, tmp_path / "a", {"n_in": 1, "update": "leapfrog"})
    with pytest.raises(ConfigError, match="inputs must be"):
        cfg(data, tmp_path / "a", {"inputs": ["frames", "forcing"]})
    with pytest.raises(ConfigError, match="options of the forecast task"):
        cfg(data, tmp_path / "a", {"task": "source_to_field"}, rollout={"unroll": [2]})
    with pytest.raises(ConfigError, match="unroll"):
        cfg(data, tmp_path / "a", rollout={"unroll": [0]})
    with pytest.raises(ConfigError, match="residual: false"):
        model = {"name": "cnn2d", "kwargs": {"width": 4, "residual": True}}
        train(cfg(data, tmp_path / "a", FULL, model=model))
    tiny = tt.write_tiny_file(tmp_path / "tiny.h5")  # synthetic: no campaign config to rebuild sources from
    with pytest.raises(DataFileError, match="forcing inputs need the campaign config"):
        train(cfg(tiny, tmp_path / "b", {"inputs": ["frames", "velocity", "forcing"]}))


def test_training_is_seeded_and_evaluate_reports_energy_and_spectral_radius(data, tmp_path):
    over = {"rollout": {"unroll": [1, 2], "stage_epochs": 1, "noise_std": 0.01}}
    a = train(cfg(data, tmp_path / "a", FULL, **over))
    b = train(cfg(data, tmp_path / "b", FULL, **over))
    la = [json.loads(s)["train_loss"] for s in (a / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(s)["train_loss"] for s in (b / "metrics.jsonl").read_text().splitlines()]
    assert la == lb and all(math.isfinite(v) for v in la)
    stats = json.loads((a / "stats.json").read_text())
    assert stats["inputs"] == FULL["inputs"] and stats["update"] == "leapfrog" and stats["forcing_scale"] > 0
    res = json.loads(evaluate_run(a, data))
    r = res["rollout"]
    assert r["start_frame"] == 0 and len(r["rel_l2"]) == 18
    assert len(r["energy_growth_cases"]) == 2 and isinstance(r["flagged"], bool)
    assert r["flagged"] == (r["energy_growth"] > r["energy_threshold"])
    assert all(2 <= s < 20 for s in r["energy_from_frame"])
    st = res["stability"]
    assert len(st["spectral_radius_cases"]) == 2 and st["spectral_radius"] == max(st["spectral_radius_cases"])
    model, info = load_run(a)
    assert info.stats["update"] == "leapfrog"
