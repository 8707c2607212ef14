"""What ``wavesurrogate export`` (``runs/export.py``) asks of a task: the run's model wrapped in physical
units, example inputs, the sidecar's layout, and calibration inputs for int8. A private helper of
``tasks/forecast.py`` (``Forecast.export``: one model call with the run's update) and
``tasks/source_to_field.py`` (``SourceToField.export``: SI parameters and (x, y, t) → the field); discovery
skips ``_`` modules.

The sidecar's ``rollout`` section (frames models) or ``points`` section (points models) is what the torch-free
runtime ``wavesurrogate.edge`` reads to know how to call the graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["Export", "FrameStep", "PointsField", "frames_export", "frames_samples", "points_export",
           "points_samples"]

Export = tuple[nn.Module, dict[str, Tensor], dict[str, Any]]  # (module, example inputs by name, layout)
FIELD_UNIT = "field units of the data"


class FrameStep(nn.Module):
    """One call of a frames run in physical units: normalise, ``rollout.step`` (direct or leapfrog),
    de-normalise."""

    def __init__(self, model: nn.Module, stats: Mapping[str, Any], forcing: bool, update: str) -> None:
        super().__init__()
        self.model, self.forcing, self.update = model, forcing, update
        for name, v in (("f_mean", stats["field_mean"]), ("f_std", stats["field_std"]),
                        ("v_mean", stats["velocity_mean"]), ("v_std", stats["velocity_std"]),
                        ("s_scale", stats.get("forcing_scale", 1.0))):
            self.register_buffer(name, torch.tensor(float(v), dtype=torch.float32))

    def forward(self, frames: Tensor, velocity: Tensor, forcing: Tensor | None = None) -> Tensor:
        from wavesurrogate.nn.rollout import step

        f = (frames - self.f_mean) / self.f_std
        v = (velocity - self.v_mean) / self.v_std
        extra = forcing / self.s_scale if self.forcing else None
        return step(self.model, f, v, extra, self.update) * self.f_std + self.f_mean


def frames_export(model: nn.Module, stats: Mapping[str, Any], forcing: bool, update: str) -> Export:
    """A frames run for export: inputs frames, velocity (and forcing), output next_frames."""
    g = stats["data"]
    ny, nx, n_in, n_out = int(g["ny"]), int(g["nx"]), int(stats["n_in"]), int(stats["n_out"])
    mod = FrameStep(model, stats, forcing, update).eval()
    gen = torch.Generator().manual_seed(0)
    ex = {"frames": float(stats["field_mean"]) + float(stats["field_std"]) * torch.randn(2, n_in, ny, nx,
                                                                                         generator=gen),
          "velocity": torch.full((2, 1, ny, nx), float(stats["velocity_mean"]))}
    inputs = [{"name": "frames", "shape": ["batch", n_in, ny, nx], "unit": FIELD_UNIT,
               "what": f"the last {n_in} frames, oldest first"},
              {"name": "velocity", "shape": ["batch", 1, ny, nx], "unit": "m/s", "what": "velocity map"}]
    if forcing:
        ex["forcing"] = torch.zeros(2, n_out, ny, nx)
        inputs.append({"name": "forcing", "shape": ["batch", n_out, ny, nx],
                       "unit": "source term (amplitude x footprint of physics.sources.frame_forcing, kind "
                               f"{stats.get('forcing_kind', 'interval')})",
                       "what": f"the source term of the {n_out} frame(s) being predicted"})
    return mod, ex, {"inputs": inputs,
                     "outputs": [{"name": "next_frames", "shape": ["batch", n_out, ny, nx],
                                  "unit": FIELD_UNIT, "what": "the next frames, the run's update applied"}],
                     "rollout": {"n_in": n_in, "n_out": n_out, "update": update, "forcing": forcing,
                                 **({"forcing_kind": stats["forcing_kind"]}
                                    if "forcing_kind" in stats else {})}}


def _pick(n_items: int, n: int) -> np.ndarray:
    """Up to ``n`` indices spread evenly over ``range(n_items)``."""
    return np.unique(np.linspace(0, n_items - 1, n).round().astype(int))


def frames_samples(f: Any, cases: np.ndarray, stats: Mapping[str, Any], n: int,
                   forcing: Any | None) -> list[dict[str, np.ndarray]]:
    """``n`` windows spread over ``cases`` of data file ``f`` as graph inputs (float32, physical units);
    ``forcing``: ``load_forcing`` of ``f`` for these cases when the run reads it."""
    n_in, n_out = int(stats["n_in"]), int(stats["n_out"])
    starts = [(k, t) for k in range(len(cases)) for t in range(0, f.n_frames - n_in - n_out + 1)]
    out = []
    fields = {k: f.fields(int(cases[k])) for k in sorted({starts[i][0] for i in _pick(len(starts), n)})}
    for i in _pick(len(starts), n) if starts else []:
        k, t = starts[i]
        x = {"frames": fields[k][None, t : t + n_in], "velocity": f.velocity(int(cases[k]))[None, None]}
        if forcing is not None:
            amp = forcing[0][k, t + n_in : t + n_in + n_out, None, None]
            x["forcing"] = (amp * forcing[1][k][None])[None]
        out.append({key: np.ascontiguousarray(v, dtype=np.float32) for key, v in x.items()})
    return out


class PointsField(nn.Module):
    """A points run in physical units: parameters (SI) and (x m, y m, t s) → the field in field units."""

    def __init__(self, model: nn.Module, stats: Mapping[str, Any]) -> None:
        super().__init__()
        self.model = model
        lo = torch.tensor(stats["coord_min"], dtype=torch.float64)
        hi = torch.tensor(stats["coord_max"], dtype=torch.float64)
        flat = hi <= lo  # a flat axis maps to 0, as data.windows.scale_axis does
        gain = torch.where(flat, torch.zeros_like(hi), 2.0 / torch.where(flat, torch.ones_like(hi), hi - lo))
        self.register_buffer("c_gain", gain.float())
        self.register_buffer("c_offset", torch.where(flat, torch.zeros_like(hi), -1.0 - lo * gain).float())
        self.register_buffer("p_mean", torch.tensor(stats["param_mean"], dtype=torch.float32))
        self.register_buffer("p_std", torch.tensor(stats["param_std"], dtype=torch.float32))
        self.register_buffer("f_mean", torch.tensor(float(stats["field_mean"]), dtype=torch.float32))
        self.register_buffer("f_std", torch.tensor(float(stats["field_std"]), dtype=torch.float32))

    def forward(self, params: Tensor, coords: Tensor) -> Tensor:
        p = (params - self.p_mean) / self.p_std
        return self.model(p, coords * self.c_gain + self.c_offset) * self.f_std + self.f_mean


def points_export(model: nn.Module, stats: Mapping[str, Any]) -> Export:
    """A points run for export: inputs params, coords, output field."""
    names = [str(v) for v in stats["param_names"]]
    mod = PointsField(model, stats).eval()
    lo, hi = torch.tensor(stats["coord_min"]), torch.tensor(stats["coord_max"])
    gen = torch.Generator().manual_seed(0)
    ex = {"params": torch.tensor([stats["param_mean"]] * 2, dtype=torch.float32),
          "coords": (lo + (hi - lo) * torch.rand(2, 64, 3, generator=gen)).float()}
    return mod, ex, {
        "inputs": [{"name": "params", "shape": ["batch", len(names)], "unit": "SI (see param_names)",
                    "what": "case parameters", "param_names": names},
                   {"name": "coords", "shape": ["batch", "points", 3], "unit": "m, m, s",
                    "what": "query points (x, y, t)"}],
        "outputs": [{"name": "field", "shape": ["batch", "points"], "unit": FIELD_UNIT,
                     "what": "the field at the points"}],
        "points": {"param_names": names, "param_mean": [float(v) for v in stats["param_mean"]],
                   "coord_min": [float(v) for v in stats["coord_min"]],
                   "coord_max": [float(v) for v in stats["coord_max"]]}}


def points_samples(f: Any, cases: np.ndarray, stats: Mapping[str, Any], n: int,
                   n_points: int = 4096) -> list[dict[str, np.ndarray]]:
    """Up to ``n`` of ``cases`` (spread evenly) at ``n_points`` random grid points each, as graph inputs."""
    params = np.stack([np.asarray(f.params[k], np.float64)[cases] for k in stats["param_names"]], axis=1)
    x, y, t = (np.asarray(a, np.float64) for a in (f.x, f.y, f.t))
    rng = np.random.default_rng(0)
    out = []
    for i in _pick(len(cases), n) if len(cases) else []:
        pts = np.stack([rng.choice(x, n_points), rng.choice(y, n_points), rng.choice(t, n_points)], axis=-1)
        out.append({"params": params[i : i + 1].astype(np.float32), "coords": pts[None].astype(np.float32)})
    return out
