"""Bench and predictions go through the task's inputs and update: a forcing + leapfrog run on a tiny campaign
is benched (latency of its real call, rollout, coarse rows) and ``Forecast.predict`` is the leapfrog step."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from wavesurrogate.config.campaign import load_campaign_config
from wavesurrogate.data.campaign import simulate
from wavesurrogate.data.store import open_data
from wavesurrogate.errors import DataFileError
from wavesurrogate.eval.bench import bench_runs
from wavesurrogate.runs import load_run
from wavesurrogate.tasks.forecast import TASK, field_affine, forcing_channels, load_forcing, velocity_affine
from wavesurrogate.train.loop import config_from_dict, train

CAMPAIGN = {
    "name": "tiny", "seed": 3, "cases": 4, "test_cases": 2, "test_seed": 99,
    "solver": {"kind": "fd", "space_order": 2, "backend": "numpy"},
    "grid": {"nx": 16, "ny": 16, "dx_m": 10.0, "dy_m": 10.0},
    "time": {"n_frames": 16, "frame_stride": 3},
    "boundary": {"kind": "absorbing", "width": 6},
    "medium": {"kind": "grf", "mean_mps": [1800.0, 2200.0], "contrast": [0.0, 0.1],
               "correlation_length_m": [30.0, 50.0]},
    "source": {"kind": "point", "x_m": [50.0, 100.0], "y_m": [50.0, 100.0], "freq_hz": [25.0, 35.0],
               "amplitude": 1.0e7},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("bench_inputs")
    (d / "c.yaml").write_text(yaml.safe_dump(CAMPAIGN), encoding="utf-8")
    data = simulate(load_campaign_config(d / "c.yaml"), d / "data.h5", workers=1, progress=False)
    cfg = config_from_dict({
        "name": "full", "seed": 1, "out": str(d / "full"),
        "data": {"path": str(data), "n_in": 2, "n_out": 1, "val_fraction": 0.25,
                 "inputs": ["frames", "velocity", "forcing"], "update": "leapfrog"},
        "model": {"name": "cnn2d", "kwargs": {"width": 4, "depth": 1}}, "rollout": {"unroll": [2]},
        "optim": {"lr": 3e-3}, "epochs": 1, "batch_size": 8, "progress": False, "num_threads": 1})
    return train(cfg), data


def test_predict_is_the_leapfrog_step_on_the_forcing(run) -> None:
    run_dir, data = run
    model, info = load_run(run_dir)
    s = info.stats
    with open_data(data) as f:
        cases = np.flatnonzero(f.split == 1)
        fields, velocity = f.load_all(cases)
        forcing = load_forcing(f, cases, f.n_frames + 1)
    start = 6
    pred = TASK.predict(model, s, fields, velocity, start, 3, forcing=forcing)
    assert pred.shape == (len(cases), 3, 16, 16) and pred.dtype == torch.float64
    fa = field_affine(s)
    u = fa.encode(fields[:, start - 2 : start])
    x = torch.cat([u, velocity_affine(s).encode(velocity)[:, None],
                   forcing_channels(forcing, s, start, start + 1)], dim=1)
    with torch.no_grad():
        want = fa.decode(2 * u[:, 1:] - u[:, :1] + model(x))[:, 0]
    assert torch.allclose(pred[:, 0], want, rtol=1e-5, atol=1e-6 * float(want.abs().max()))
    # the forcing is read: another source term gives another prediction
    other = (forcing[0] * 3.0, forcing[1])
    assert not torch.allclose(TASK.predict(model, s, fields, velocity, start, 1, forcing=other), pred[:, :1])
    with pytest.raises(DataFileError, match="reads the forcing"):
        TASK.predict(model, s, fields, velocity, start, 1)


def test_bench_measures_the_forcing_leapfrog_run(run, tmp_path) -> None:
    run_dir, data = run
    text = bench_runs([run_dir], tmp_path, data=data, repeats=3, memory=True, coarse=(1.0, 0.5),
                      coarse_cases=1)
    bench = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    rec = bench["runs"][0]
    assert rec["in_channels"] == 2 + 1 + 1 and rec["update"] == "leapfrog"
    assert rec["inputs"] == ["frames", "velocity", "forcing"]
    assert rec["latency_b1"]["batch"] == 1 and rec["latency_b32"]["batch"] == 32
    assert rec["latency_b1"]["median_ms"] > 0 and rec["rollout_latency_s"] > 0
    assert rec["peak_infer_bytes"] > 0 and rec["peak_train_bytes"] > 0  # the child built 4 input channels
    ev = json.loads((run_dir / "evaluate.json").read_text(encoding="utf-8")) if (
        run_dir / "evaluate.json").is_file() else None
    assert ev is None or rec["rollout_rel_l2_all"] == ev["rollout"]["rel_l2_all_horizons"]
    assert math.isfinite(rec["rollout_rel_l2_all"]) and rec["rollout_first_frame"] == 2  # from frame 0
    comp = bench["coarse"][0]
    assert [r["factor"] for r in comp["rows"]] == [1.0, 0.5] and comp["rows"][0]["error"] < 1e-3
    assert comp["verdict"] and "Verdict: " + comp["verdict"] in text
