"""Test helpers for the training tests: tiny models registered under test-only names, tiny data files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from wavesurrogate.nn import registry

FORECAST = "test_tiny_forecast"
FIELD = "test_tiny_field"


class TinyForecast(nn.Module):
    """Two 3×3 convolutions; ``nan_after`` > 0 makes the k-th training forward (and later) return NaN."""

    def __init__(self, n_in: int = 2, n_out: int = 1, width: int = 4, nan_after: int = 0,
                 sleep_s: float = 0.0, dropout: float = 0.0):
        super().__init__()
        self.c1 = nn.Conv2d(n_in + 1, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, n_out, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.nan_after, self.sleep_s, self.calls = nan_after, sleep_s, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sleep_s:
            time.sleep(self.sleep_s)
        y = self.c2(self.drop(torch.tanh(self.c1(x))))
        if self.training:
            self.calls += 1
            if self.nan_after and self.calls >= self.nan_after:
                y = y * float("nan")
        return y


class TinyField(nn.Module):
    """MLP on (params, x, y, t) → value."""

    def __init__(self, n_params: int = 2, width: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_params + 3, width), nn.Tanh(), nn.Linear(width, 1))

    def forward(self, params: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        p = params[:, None, :].expand(-1, coords.shape[1], -1)
        return self.net(torch.cat([p, coords], dim=-1))[..., 0]


def _register(name: str, interface: str, cls: type[nn.Module]) -> None:
    if name not in registry._REGISTRY:
        registry.register(name, interface)(cls)


_register(FORECAST, registry.FRAMES, TinyForecast)
_register(FIELD, registry.POINTS, TinyField)


def tiny_fields(n_cases: int = 6, n_frames: int = 8, n: int = 16, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Travelling plane waves per case: (fields [case, frame, y, x], velocity [case, y, x], params)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, n)
    t = np.arange(n_frames) * 0.05
    kx = rng.uniform(1.0, 3.0, n_cases)
    c = rng.uniform(1.0, 2.0, n_cases)
    envelope = np.exp(-((x - 0.3) ** 2) / 0.1)[None, :, None]
    fields = np.stack([np.sin(2 * np.pi * kx[i] * (x[None, None, :] - c[i] * t[:, None, None])) * envelope
                       + 0.1 * kx[i] for i in range(n_cases)]).astype(np.float32)
    velocity = (np.ones((n_cases, n, n)) * c[:, None, None]).astype(np.float32)
    return fields, velocity, {"kx": kx, "c_m_per_s": c}, x, t


def write_tiny_file(path: Path, n_cases: int = 6, n_test: int = 2, n_frames: int = 8, n: int = 16,
                    seed: int = 0) -> Path:
    """A tiny schema-wavesurrogate/1 file: the last ``n_test`` cases are the test split."""
    from wavesurrogate.data.store import DataWriter

    fields, velocity, params, x, t = tiny_fields(n_cases, n_frames, n, seed)
    attrs = {"solver": "synthetic", "space_order": 2, "dt": 0.01, "dx": float(x[1] - x[0]),
             "dy": float(x[1] - x[0]), "frame_stride": 5, "boundary": "none", "seed": seed,
             "package_version": "test", "config_yaml": ""}
    with DataWriter(path, n_cases=n_cases, n_frames=n_frames, x=x, y=x, t=t, attrs=attrs,
                    param_names=sorted(params)) as w:
        for i in range(n_cases):
            w.write_case(i, fields[i], velocity[i], {k: float(v[i]) for k, v in params.items()},
                         split=int(i >= n_cases - n_test))
    return path


def tiny_config(data_file: Path, out: Path, **over: Any) -> dict[str, Any]:
    """A tiny forecast config as a mapping (``over`` replaces top-level keys)."""
    cfg: dict[str, Any] = {
        "name": "tiny", "seed": 3, "out": str(out),
        "data": {"path": str(data_file), "task": "forecast", "n_in": 2, "n_out": 1, "val_fraction": 0.25},
        "model": {"name": FORECAST, "kwargs": {"n_in": 2, "n_out": 1, "width": 4}},
        "optim": {"name": "adam", "lr": 1e-2},
        "epochs": 4, "batch_size": 4, "progress": False, "num_threads": 1,
    }
    cfg.update(over)
    return cfg


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    """Write a config mapping as YAML."""
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path
