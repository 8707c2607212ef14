"""Task ``source_to_field``: case parameters (e.g. the source position) → the field at (x, y, t) points.

Model interface ``points``: ``forward(params, coords)`` with params ``[batch, n_params]`` (normalised) and
coords ``[batch, n_points, 3]`` (x, y, t scaled to [-1, 1]) returns ``[batch, n_points]`` (normalised).
Evaluation: the whole field of each test case predicted from its parameters, in the file's field units, and
its last frame alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from wavesurrogate.data.windows import compute_stats, param_matrix, sample_seed, scale_axis
from wavesurrogate.errors import CheckpointError, DataFileError
from wavesurrogate.metrics.suite import summarise
from wavesurrogate.nn.registry import POINTS
from wavesurrogate.tasks.base import (
    Affine,
    Task,
    TrainData,
    check_geometry,
    check_grid_stats,
    check_numbers,
    finite,
    load_cases,
)

__all__ = ["SourceToFieldPoints", "SourceToField", "TASK", "param_affine", "grid_coords"]


def param_affine(stats: Mapping[str, Any]) -> Affine:
    """The parameter normalisation of a run's statistics."""
    return Affine(np.asarray(stats.get("param_mean", []), np.float64),
                  np.asarray(stats.get("param_std", []), np.float64))


def scaled_axes(stats: Mapping[str, Any], x: np.ndarray, y: np.ndarray, t: np.ndarray) -> list[Tensor]:
    """The x, y and t axes mapped onto [-1, 1] with the run's ``coord_min``/``coord_max``, float32."""
    lo, hi = stats["coord_min"], stats["coord_max"]
    return [torch.from_numpy(scale_axis(a, lo[k], hi[k]).astype(np.float32)) for k, a in enumerate((x, y, t))]


def grid_coords(stats: Mapping[str, Any], x: np.ndarray, y: np.ndarray, t: np.ndarray) -> Tensor:
    """Scaled (x, y, t) of every node of every frame, ``[n_t · n_y · n_x, 3]`` in frame-major order."""
    ax = scaled_axes(stats, x, y, t)
    tt, yy, xx = torch.meshgrid(ax[2], ax[1], ax[0], indexing="ij")
    return torch.stack([xx, yy, tt], dim=-1).reshape(-1, 3)


class SourceToFieldPoints(Dataset):
    """Per case: normalised parameters → field values at (x, y, t) points sampled with a seeded generator.

    Item ``i`` (case ``i`` of this split) is ``(params [P], coords [Q, 3] in [-1, 1], values [Q])``
    float32. Points are drawn uniformly over the grid nodes with a generator seeded by
    (seed, epoch, case), so any process and any resume draws the same points; ``set_epoch`` changes them.
    """

    def __init__(self, fields: np.ndarray, params: np.ndarray, x: np.ndarray, y: np.ndarray, t: np.ndarray,
                 points_per_case: int, stats: Mapping[str, Any], seed: int) -> None:
        fields, params = np.asarray(fields), np.asarray(params, np.float64)
        if fields.ndim != 4 or fields.shape[1:] != (len(t), len(y), len(x)):
            raise DataFileError(f"fields {fields.shape} != t/y/x lengths {len(t)}/{len(y)}/{len(x)}")
        if params.shape[0] != fields.shape[0]:
            raise DataFileError("params and fields have different numbers of cases")
        if points_per_case < 1:
            raise ValueError("points_per_case must be >= 1")
        self.values = Affine(float(stats["field_mean"]), float(stats["field_std"])).encode(fields)
        self.params = param_affine(stats).encode(params)
        self.axes = scaled_axes(stats, x, y, t)
        self.q, self.seed, self.epoch = points_per_case, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the points of ``epoch`` (deterministic in (seed, epoch, case))."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.values.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(i)
        g = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, i))
        nt, ny, nx = self.values.shape[1:]
        it = torch.randint(nt, (self.q,), generator=g)
        iy = torch.randint(ny, (self.q,), generator=g)
        ix = torch.randint(nx, (self.q,), generator=g)
        coords = torch.stack([self.axes[0][ix], self.axes[1][iy], self.axes[2][it]], dim=-1)
        return self.params[i], coords, self.values[i, it, iy, ix]


class SourceToField(Task):
    """Parameters → field at any (x, y, t), trained on random points."""

    name = "source_to_field"
    interfaces = (POINTS,)

    def prepare(self, cfg: Any, stats: dict[str, Any] | None = None) -> TrainData:
        d, got = cfg.data, load_cases(cfg, stats)
        names = list(stats["param_names"]) if stats is not None else (
            list(d.params) if d.params is not None else sorted(got.params))
        c = got.coords
        if stats is None:
            sub = {k: np.asarray(got.params[k])[got.splits.train] for k in names if k in got.params}
            stats = compute_stats(got.train[0], params=sub, param_names=names, coords=c)

        def points(fields: np.ndarray, cases: np.ndarray, seed: int) -> SourceToFieldPoints:
            return SourceToFieldPoints(fields, param_matrix(got.params, names, cases), c["x"], c["y"], c["t"],
                                       d.points_per_case, stats, seed)

        train = points(got.train[0], got.splits.train, cfg.seed)
        val = None if got.val is None else points(got.val[0], got.splits.val, sample_seed(cfg.seed, 0xFA1))
        return TrainData(train, val, {**stats, "task": self.name, "n_in": d.n_in, "n_out": d.n_out,
                                      **got.record})

    def check_stats(self, stats: dict[str, Any], source: str) -> None:
        check_numbers(stats, source, {"field_mean": False, "field_std": True})
        check_grid_stats(stats, source)
        names = stats.get("param_names")
        n = len(names) if isinstance(names, list) else -1
        check_numbers(stats, source, lists={"param_mean": n, "param_std": n, "coord_min": 3, "coord_max": 3})
        if not all(finite(s, positive=True) for s in stats["param_std"]):
            raise CheckpointError(f"{source}: 'param_std' must be positive")

    def check_fits(self, f: Any, info: Any) -> None:
        where = f"{f.path}: run {info.run_dir.name}"
        check_geometry(f, info.stats, where)
        missing = [n for n in info.stats.get("param_names", []) if n not in f.params]
        if missing:
            raise DataFileError(f"{where} needs parameter {missing[0]!r}, absent from the file")

    @torch.no_grad()
    def evaluate(self, model: nn.Module, info: Any, f: Any, cases: np.ndarray, *, batch_size: int = 32,
                 rollout_start: int = 0, chunk: int = 32768) -> dict[str, Any]:
        s = info.stats
        fields, _ = f.load_all(cases)
        p = param_affine(s).encode(param_matrix(f.params, list(s.get("param_names", [])), cases))
        coords = grid_coords(s, f.x, f.y, f.t)
        fa = Affine(float(s["field_mean"]), float(s["field_std"]))
        preds = []
        for i in range(len(cases)):
            v = torch.cat([model(p[i : i + 1], coords[None, q : q + chunk])[0]
                           for q in range(0, len(coords), chunk)])
            preds.append(fa.decode(v.reshape(fields.shape[1:])))
        pred, true, nd = torch.stack(preds), torch.from_numpy(fields.astype(np.float64)), f.n_spatial_dims
        one = summarise([pred], [true], nd)
        return {"one_step": one, "last_frame": summarise([pred[:, -1:]], [true[:, -1:]], nd), "rollout": None,
                "diverged": not np.isfinite(one["rmse"])}


TASK = SourceToField()
