"""Shared fixtures of the deploy tests: two tiny real campaigns (NumPy FD), a forecast run (cnn2d, forcing
input, leapfrog update) and a source → field run (relative_operator), each trained a few
epochs, their exports."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

SOURCE = {"kind": "point", "x_m": [50.0, 100.0], "y_m": [50.0, 100.0], "freq_hz": [25.0, 35.0],
          "amplitude": 1.0e7}
FORECAST_CAMPAIGN = {
    "name": "deploy_forecast", "seed": 3, "cases": 5, "test_cases": 2, "test_seed": 99,
    "solver": {"kind": "fd", "space_order": 2, "backend": "numpy"},
    "grid": {"nx": 16, "ny": 16, "dx_m": 10.0, "dy_m": 10.0},
    "time": {"n_frames": 20, "frame_stride": 3},
    "boundary": {"kind": "absorbing", "width": 6},
    "medium": {"kind": "grf", "mean_mps": [1800.0, 2200.0], "contrast": [0.0, 0.1],
               "correlation_length_m": [30.0, 50.0]},
    "source": SOURCE,
}
FREE_CAMPAIGN = {
    "name": "deploy_free", "seed": 4, "cases": 8, "test_cases": 2, "test_seed": 98,
    "solver": {"kind": "fd", "space_order": 2, "backend": "numpy"},
    "grid": {"nx": 16, "ny": 16, "dx_m": 10.0, "dy_m": 10.0},
    "time": {"n_frames": 10, "frame_stride": 4},
    "boundary": {"kind": "absorbing", "width": 6},
    "medium": {"kind": "constant", "c_mps": 2000.0},
    "source": {**SOURCE, "freq_hz": 30.0},
}


def _simulate(d: Path, campaign: dict) -> Path:
    from wavesurrogate.config.campaign import load_campaign_config
    from wavesurrogate.data.campaign import simulate

    (d / "c.yaml").write_text(yaml.safe_dump(campaign), encoding="utf-8")
    return simulate(load_campaign_config(d / "c.yaml"), d / "data.h5", workers=1, progress=False)


@pytest.fixture(scope="session")
def forecast_run(tmp_path_factory) -> Path:
    """A cnn2d forecast run (forcing input, leapfrog update) on a 16² NumPy FD campaign, 2 epochs."""
    from wavesurrogate.train.loop import config_from_dict, train

    d = tmp_path_factory.mktemp("forecast")
    data = _simulate(d, FORECAST_CAMPAIGN)
    return train(config_from_dict({
        "name": "f", "seed": 1, "out": str(d / "run"),
        "data": {"path": str(data), "n_in": 2, "n_out": 1, "val_fraction": 0.25,
                 "inputs": ["frames", "velocity", "forcing"], "update": "leapfrog"},
        "model": {"name": "cnn2d", "kwargs": {"width": 4, "depth": 1}},
        "optim": {"lr": 3e-3}, "epochs": 2, "batch_size": 8, "progress": False, "num_threads": 1}))


@pytest.fixture(scope="session")
def field_run(tmp_path_factory) -> Path:
    """A relative_operator source → field run on a 16² free-field NumPy FD campaign, a few epochs."""
    from wavesurrogate.train.loop import config_from_dict, train

    d = tmp_path_factory.mktemp("free")
    data = _simulate(d, FREE_CAMPAIGN)
    return train(config_from_dict({
        "name": "s", "seed": 1, "out": str(d / "run"),
        "data": {"path": str(data), "task": "source_to_field", "params": ["source_x_m", "source_y_m"],
                 "val_fraction": 0.2, "points_per_case": 256},
        "model": {"name": "relative_operator",
                  "kwargs": {"inputs": "radial", "width": 16, "depth": 2, "n_basis": 1, "n_params": 2}},
        "optim": {"lr": 3e-3}, "epochs": 5, "batch_size": 4, "progress": False, "num_threads": 1}))


@pytest.fixture(scope="session")
def forecast_onnx(forecast_run, tmp_path_factory) -> Path:
    from wavesurrogate.runs.export import export_run

    return export_run(forecast_run, tmp_path_factory.mktemp("fx") / "forecast.onnx")


@pytest.fixture(scope="session")
def field_onnx(field_run, tmp_path_factory) -> Path:
    from wavesurrogate.runs.export import export_run

    return export_run(field_run, tmp_path_factory.mktemp("sx") / "field.onnx")


@pytest.fixture(scope="session")
def field_server(field_run):
    """``wavesurrogate serve`` of the source → field run on an ephemeral port, serving in a thread."""
    import threading

    from wavesurrogate.apps.serve import make_server

    srv = make_server(field_run, port=0)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()
