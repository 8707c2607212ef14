"""source_to_field: the init_model hook (POD basis of the training fields, fresh runs only, checked against an
independent SVD) and batches of many sources × few points gathered at once."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
import train_tiny as tt

from wavesurrogate.data.store import open_data
from wavesurrogate.nn import registry
from wavesurrogate.tasks.source_to_field import SourceToFieldPoints
from wavesurrogate.train.loop import _collate, config_from_dict, train

CALLS: list[tuple[torch.Tensor, torch.Tensor]] = []


class BasisField(tt.TinyField):
    """A points model with a POD basis buffer; records every set_basis call."""

    def __init__(self, n_params: int = 2, width: int = 8, n_modes: int = 3):
        super().__init__(n_params, width)
        self.n_modes = n_modes
        self.register_buffer("modes", torch.zeros(n_modes, 8, 16, 16))
        self.register_buffer("mean", torch.zeros(8, 16, 16))

    def set_basis(self, mean: torch.Tensor, modes: torch.Tensor) -> None:
        CALLS.append((mean.clone(), modes.clone()))
        self.mean.copy_(mean)
        self.modes.copy_(modes)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tt.write_tiny_file(tmp_path_factory.mktemp("data") / "tiny.h5")


@pytest.fixture
def basis_model(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register("test_basis_field", registry.POINTS)(BasisField)
    CALLS.clear()
    return "test_basis_field"


def _cfg(data: Path, out: Path, name: str, **over):
    return config_from_dict(tt.tiny_config(
        data, out, **{"epochs": 1, "batch_size": 2, "model": {"name": name, "kwargs": {}},
                      "data": {"path": str(data), "task": "source_to_field", "points_per_case": 16,
                               "val_fraction": 0.25}, **over}))


def test_fresh_run_gets_the_pod_basis_of_the_training_fields(data, tmp_path, basis_model):
    import json

    run = train(_cfg(data, tmp_path / "a", basis_model))
    assert len(CALLS) == 1
    mean, modes = CALLS[0]
    stats = json.loads((run / "stats.json").read_text())
    with open_data(data) as f:  # independent: NumPy SVD of the centred, normalised training fields
        u = np.stack([f.fields(i) for i in stats["splits"]["train"]]).astype(np.float64)
    x = ((u - stats["field_mean"]) / stats["field_std"]).reshape(len(u), -1)
    _, s, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    assert mean.dtype == modes.dtype == torch.float32 and modes.shape == (3, *u.shape[1:])
    np.testing.assert_allclose(mean.numpy().ravel(), x.mean(0), atol=1e-6)
    modes = modes.reshape(3, -1).T
    k = int(np.sum(s > s[0] * 1e-6))  # 4 training cases: rank 3 after centring
    m = modes.double().numpy()
    np.testing.assert_allclose(np.abs(m[:, :k].T @ vt[:k].T), np.eye(k), atol=1e-5)  # same vectors up to sign
    np.testing.assert_array_equal(m[:, k:], 0.0)
    again = train(_cfg(data, tmp_path / "b", basis_model))  # deterministic
    assert torch.equal(CALLS[1][1].reshape(3, -1).T, modes) and again != run


def test_no_basis_on_resume_or_init_from(data, tmp_path, basis_model):
    part = train(_cfg(data, tmp_path / "p", basis_model, epochs=2), stop_after_epoch=1)
    assert len(CALLS) == 1
    train(None, resume=part)
    train(_cfg(data, tmp_path / "i", basis_model), init_from=part)
    assert len(CALLS) == 1


def test_a_batch_of_64_sources_by_200_points_is_gathered_at_once():
    n, nt, ny, nx = 80, 24, 64, 64
    rng = np.random.default_rng(0)
    fields = rng.standard_normal((n, nt, ny, nx)).astype(np.float32)
    params = rng.uniform(100, 530, (n, 2))
    x = y = np.arange(64) * 10.0
    t = np.arange(nt) * 0.015
    stats = {"field_mean": 0.5, "field_std": 2.0, "param_mean": [300.0, 300.0], "param_std": [100.0, 100.0],
             "coord_min": [0.0, 0.0, 0.0], "coord_max": [630.0, 630.0, float(t[-1])]}
    ds = SourceToFieldPoints(fields, params, x, y, t, 200, stats, seed=5)
    ds.set_epoch(3)
    idx = list(range(3, 67))
    p, c, v = _collate(ds, idx, torch.device("cpu"))
    assert p.shape == (64, 2) and c.shape == (64, 200, 3) and v.shape == (64, 200)
    for b in (0, 17, 63):  # each row is exactly the item of its case, and indexes its case's field
        for got, want in zip((p[b], c[b], v[b]), ds[idx[b]], strict=True):
            assert torch.equal(got, want)
        ix, iy, it = (np.rint((c[b, :, k].numpy() + 1) / 2 * (m - 1)).astype(int)
                      for k, m in ((0, nx), (1, ny), (2, nt)))
        np.testing.assert_allclose(v[b].numpy(), (fields[idx[b], it, iy, ix] - 0.5) / 2.0, rtol=1e-6)
    t0 = time.perf_counter()
    for _ in range(20):
        _collate(ds, idx, torch.device("cpu"))
    per_batch = (time.perf_counter() - t0) / 20
    assert per_batch < 5e-3, per_batch  # measured ~0.3 ms on a shared core; per-item loops took ~8 ms
    ds.set_epoch(4)
    assert not torch.equal(_collate(ds, idx, torch.device("cpu"))[1], c)
