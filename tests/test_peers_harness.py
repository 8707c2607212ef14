"""The neural-operator peers through the real harness: a campaign file, ``train.loop.train``, ``load_run``,
``eval.evaluate``. Each peer (FNO, TFNO, DeepONet and a CP-compressed CNN) trains and its loss falls; its run
directory alone rebuilds it in a fresh interpreter with the outputs of the trained model; DeepONet's harness
evaluation (pointwise at the grid nodes) equals its gridded prediction."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from wavesurrogate import metrics as M
from wavesurrogate.data.windows import scale_axis
from wavesurrogate.eval.evaluate import evaluate_model
from wavesurrogate.runs import load_run
from wavesurrogate.train.loop import config_from_dict, train

pytest.importorskip("neuralop", reason="FNO/TFNO need the optional extra .[operators]")

CAMPAIGN = {
    "name": "peers_tiny", "seed": 5, "cases": 10, "test_cases": 2, "test_seed": 55,
    "solver": {"kind": "fd", "space_order": 4, "backend": "numpy"},
    "grid": {"nx": 16, "ny": 16, "dx_m": 10.0, "dy_m": 10.0},
    "time": {"n_frames": 10, "frame_stride": 3},
    "boundary": {"kind": "absorbing", "width": 6},
    "medium": {"kind": "constant", "c_mps": [1800.0, 2200.0]},
    "source": {"kind": "point", "x_m": [40.0, 110.0], "y_m": [40.0, 110.0], "freq_hz": 12.0,
               "amplitude": 1.0e7, "delay_s": 0.0},
}
FORECAST = {"task": "forecast", "n_in": 2, "n_out": 1, "val_fraction": 0.2}
FIELD = {"task": "source_to_field", "points_per_case": 256, "val_fraction": 0.2,
         "params": ["source_x_m", "source_y_m"]}
PEERS: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = {
    "fno": (FORECAST, "fno", {"n_in": 2, "n_out": 1, "n_modes": [6, 6], "hidden_channels": 8, "n_layers": 2}),
    "tfno": (FORECAST, "tfno", {"n_in": 2, "n_out": 1, "n_modes": [6, 6], "hidden_channels": 8, "n_layers": 2,
                                "rank": 0.5}),
    "cnn_cp": (FORECAST, "cnn2d", {"n_in": 2, "n_out": 1, "width": 8, "depth": 1,
                                   "conv": {"format": "cp", "rank": 4}}),
    "deeponet": (FIELD, "deeponet", {"n_params": 2, "n_basis": 16, "branch_width": 24, "branch_depth": 2,
                                     "trunk_width": 24, "trunk_depth": 2, "n_fourier": 8}),
}
# DeepONet sees one sample (256 points) per case and epoch: more, smaller steps (each costs milliseconds)
EPOCHS = {"fno": 4, "tfno": 4, "cnn_cp": 4, "deeponet": 30}
BATCH = {"fno": 4, "tfno": 4, "cnn_cp": 4, "deeponet": 2}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16 × 16 campaign (NumPy FD, constant media, moving point sources): 10 training + 2 test cases."""
    from wavesurrogate.config.campaign import load_campaign_config
    from wavesurrogate.data.campaign import simulate

    d = tmp_path_factory.mktemp("peers_data")
    (d / "campaign.yaml").write_text(yaml.safe_dump(CAMPAIGN), encoding="utf-8")
    return simulate(load_campaign_config(d / "campaign.yaml"), d / "data.h5", workers=1, progress=False)


def peer_config(peer: str, data: Path, out: Path) -> dict[str, Any]:
    """The training config of one peer: same optimiser, schedule and epochs for all."""
    task, name, kwargs = PEERS[peer]
    return {"name": peer, "seed": 1, "out": str(out), "data": {"path": str(data), **task},
            "model": {"name": name, "kwargs": kwargs}, "optim": {"name": "adam", "lr": 3e-3},
            "epochs": EPOCHS[peer], "batch_size": BATCH[peer], "num_threads": 1, "progress": False}


@pytest.fixture(scope="module")
def runs(data_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each peer trained by ``train.loop.train`` into its own run directory."""
    root = tmp_path_factory.mktemp("peers_runs")
    return {p: train(config_from_dict(peer_config(p, data_file, root / p))) for p in PEERS}


def history(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("peer", list(PEERS))
def test_peer_trains_and_its_loss_falls(peer: str, runs: dict[str, Path]) -> None:
    h = history(runs[peer])
    assert [r["epoch"] for r in h] == list(range(1, EPOCHS[peer] + 1))
    losses = [r["train_loss"] for r in h]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.8 * losses[0], losses  # 1.0 = predicting the training mean
    assert min(r["val_loss"] for r in h) < h[0]["val_loss"]


# A fresh interpreter that knows nothing but the run directories: rebuild each model, recompute its
# validation loss on the harness's validation split, and save its output on a fixed input.
REBUILD = textwrap.dedent("""
    import json, sys
    import numpy as np, torch
    from wavesurrogate.runs import load_run
    from wavesurrogate.train.loop import prepare_data
    torch.set_num_threads(1)
    out = {}
    for run in sys.argv[1:]:
        model, info = load_run(run, "best")
        val = prepare_data(info.config, info.stats).val
        sse, n = 0.0, 0
        bs = info.config.batch_size
        with torch.no_grad():
            for s in range(0, len(val), bs):
                items = [val[i] for i in range(s, min(s + bs, len(val)))]
                *inputs, target = [torch.stack(p) for p in zip(*items)]
                sse += float((model(*inputs) - target).double().pow(2).sum())
                n += target.numel()
            g = torch.Generator().manual_seed(0)
            if info.task == "forecast":
                y = model(torch.randn(2, info.config.data.n_in + 1, 16, 16, generator=g))
            else:
                y = model(torch.randn(2, 2, generator=g), torch.rand(2, 50, 3, generator=g) * 2 - 1)
        np.save(f"{run}/probe.npy", y.numpy())
        out[run] = {"val_mse": sse / n, "name": info.model_name}
    print(json.dumps(out))
""")


def probe(model: torch.nn.Module, task: str, n_in: int) -> np.ndarray:
    """The same fixed-input output as REBUILD computes."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        if task == "forecast":
            return model(torch.randn(2, n_in + 1, 16, 16, generator=g)).numpy()
        return model(torch.randn(2, 2, generator=g), torch.rand(2, 50, 3, generator=g) * 2 - 1).numpy()


def test_each_peer_rebuilds_from_its_run_directory_alone(runs: dict[str, Path]) -> None:
    dirs = [str(runs[p]) for p in PEERS]
    res = subprocess.run([sys.executable, "-c", REBUILD, *dirs], capture_output=True, text=True,
                         timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    for peer, run in runs.items():
        meta = json.loads((run / "model.json").read_text())
        assert got[str(run)]["name"] == meta["name"] == PEERS[peer][1]
        # the rebuilt model reproduces the validation loss the trained model had at its best epoch
        best = min(r["val_loss"] for r in history(run))
        assert got[str(run)]["val_mse"] == pytest.approx(best, rel=1e-6), peer
        # and outputs identical to this process's rebuild (no state outside the run directory)
        torch.set_num_threads(1)
        model, info = load_run(run, "best")
        here = probe(model, info.task, int(info.config.data.n_in))
        np.testing.assert_array_equal(np.load(run / "probe.npy"), here)


def test_deeponet_harness_evaluation_equals_predict_grid(runs: dict[str, Path], data_file: Path) -> None:
    from wavesurrogate.data.store import open_data

    model, info = load_run(runs["deeponet"], "best")
    report = evaluate_model(model, info, data_file)
    s = info.stats
    with open_data(data_file) as f:
        cases = np.flatnonzero(f.split == 1)
        fields, _ = f.load_all(cases)
        names = s["param_names"]
        p = np.stack([np.asarray(f.params[n], np.float64)[cases] for n in names], axis=1)
        axes = [torch.from_numpy(scale_axis(a, s["coord_min"][k], s["coord_max"][k]).astype(np.float32))
                for k, a in enumerate((f.x, f.y, f.t))]
    p = (p - np.asarray(s["param_mean"])) / np.asarray(s["param_std"])
    params = torch.from_numpy(p.astype(np.float32))
    with torch.no_grad():
        grid = model.predict_grid(params, *axes)  # [case, t, y, x], trunk once over the grid
        tt, yy, xx = torch.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
        pointwise = model(params, torch.stack([xx, yy, tt], dim=-1).reshape(-1, 3))
    assert grid.shape == fields.shape
    torch.testing.assert_close(pointwise.reshape(grid.shape), grid, atol=1e-5, rtol=1e-5)
    pred = grid.double() * s["field_std"] + s["field_mean"]
    true = torch.from_numpy(fields.astype(np.float64))
    one = report["one_step"]
    assert report["cases"] == [int(c) for c in cases]
    assert one["rmse"] == pytest.approx(float(M.rmse(pred, true).pow(2).mean().sqrt()), rel=1e-5)
    assert one["rel_l2_pooled"] == pytest.approx(M.pooled_rel_l2(pred, true), rel=1e-5)
    assert one["max_error"] == pytest.approx(float(M.max_error(pred, true).max()), rel=1e-4)


def test_cp_decoder_of_the_benchmark_samples_its_grid_exactly() -> None:
    """nn.models.decoders (source-to-field CP CNN): pointwise queries at nodes == the decoded grid."""
    from wavesurrogate.nn import registry
    from wavesurrogate.nn.models.decoders import FieldDecoder

    kw = {"n_params": 2, "n_frames": 5, "ny": 12, "nx": 20, "width": 6, "latent": 3, "n_up": 2,
          "conv": {"format": "cp", "rank": 3}}
    torch.manual_seed(0)
    model = registry.build("field_decoder", kw).eval()
    assert isinstance(model, FieldDecoder)
    assert any(type(m).__name__ == "TensorizedConv2d" for m in model.modules())
    params = torch.randn(3, 2)
    x, y, t = torch.linspace(-1, 1, 20), torch.linspace(-1, 1, 12), torch.linspace(-1, 1, 5)
    with torch.no_grad():
        field = model.field(params)
        torch.testing.assert_close(model.predict_grid(params, x, y, t), field, atol=1e-6, rtol=1e-6)
        mid = model(params, torch.tensor([[0.05, 0.0, 0.0]]))  # off-grid: between neighbouring nodes
    lo, hi = field[:, 2, 5:7, 9:11].amin(dim=(1, 2)), field[:, 2, 5:7, 9:11].amax(dim=(1, 2))
    assert torch.all((mid[:, 0] >= lo - 1e-6) & (mid[:, 0] <= hi + 1e-6))
