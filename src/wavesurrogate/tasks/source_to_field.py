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
from wavesurrogate.errors import CheckpointError, ConfigError, DataFileError
from wavesurrogate.metrics.pod import pod_modes
from wavesurrogate.metrics.suite import summarise
from wavesurrogate.nn.registry import POINTS
from wavesurrogate.tasks.base import (
    Affine,
    Loaded,
    Task,
    TrainData,
    check_geometry,
    check_grid_stats,
    check_numbers,
    finite,
    load_cases,
)

__all__ = ["PointSamples", "SourceToFieldPoints", "SourceToField", "TASK", "param_affine", "grid_coords",
           "axis_table", "point_stats", "geometry_kwargs", "set_pod_basis"]


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


SOURCE_PARAMS = ("source_x_m", "source_y_m")
SOURCE_PARAMS_3D = (*SOURCE_PARAMS, "source_z_m")  # data whose statistics have [x, y, z, t] coordinates
RICKER_BAND = 2.5  # f_max_hz = RICKER_BAND · the largest peak frequency of the training cases


def point_stats(cfg: Any, got: Loaded, stats: dict[str, Any] | None) -> tuple[list[str], dict[str, Any]]:
    """(parameter names, statistics) of a points task: field, parameter and coordinate normalisation of the
    training split (``compute_stats``), ``c_ref_mps`` (mean of the training velocity maps) and
    ``f_max_hz`` (RICKER_BAND × the largest training ``freq_hz``; None without it). ``stats`` of a run being
    resumed are returned unchanged; the same file and config give the same statistics in every points task."""
    d = cfg.data
    names = list(stats["param_names"]) if stats is not None else (
        list(d.params) if d.params is not None else sorted(got.params))
    if stats is None:
        train = got.splits.train
        sub = {k: np.asarray(got.params[k])[train] for k in names if k in got.params}
        stats = compute_stats(got.train[0], params=sub, param_names=names, coords=got.coords)
        freq = got.params.get("freq_hz")
        stats.update(c_ref_mps=float(np.mean(got.train[1], dtype=np.float64)),
                     f_max_hz=None if freq is None else RICKER_BAND * float(np.max(np.asarray(freq)[train])))
    return names, stats


def geometry_kwargs(cfg: Any, stats: Mapping[str, Any]) -> dict[str, Any]:
    """The config's model kwargs, plus ``geometry`` when the model's registry entry has the ``geometry``
    capability: coord_min/coord_max ([x, y, t] in m, m, s: the [-1, 1] scaling), source_params (indices of
    source_x_m and source_y_m among the parameters), param_mean/param_std, c_ref_mps, f_max_hz (plain
    floats). ConfigError (one line) if the source position or a wavelet frequency is missing."""
    from wavesurrogate.nn import registry

    kw = dict(cfg.model.kwargs)
    if not stats or not registry.entry(cfg.model.name).capabilities.get("geometry"):
        return kw
    names = list(stats["param_names"])
    wanted = SOURCE_PARAMS_3D if len(stats["coord_min"]) == 4 else SOURCE_PARAMS
    missing = [n for n in wanted if n not in names]
    if missing:
        raise ConfigError(f"data.params: model {cfg.model.name!r} needs the source position; {missing[0]!r} "
                          f"is not among {names}")
    if stats.get("f_max_hz") is None or stats.get("c_ref_mps") is None:
        raise ConfigError(f"data.path: model {cfg.model.name!r} needs c_ref_mps and f_max_hz (a source "
                          "frequency freq_hz in the file)")
    kw["geometry"] = {"coord_min": [float(v) for v in stats["coord_min"]],
                      "coord_max": [float(v) for v in stats["coord_max"]],
                      "source_params": [names.index(n) for n in wanted],
                      "param_mean": [float(v) for v in stats["param_mean"]],
                      "param_std": [float(v) for v in stats["param_std"]],
                      "c_ref_mps": float(stats["c_ref_mps"]), "f_max_hz": float(stats["f_max_hz"])}
    return kw


def set_pod_basis(model: nn.Module, values: Tensor) -> None:
    """``model.set_basis(mean [*dims], modes [p, *dims])`` (float32) from the normalised training fields
    ``values [N, *dims]`` (dims = n_frames, ny, nx): the mean field and the top p POD modes of the centred
    fields (``metrics.pod.pod_modes``; zero past their rank). p is the first dimension of the model's
    ``modes`` buffer. Nothing for a model without ``set_basis``."""
    if not callable(getattr(model, "set_basis", None)):
        return
    p, dims = int(model.get_buffer("modes").shape[0]), tuple(values.shape[1:])
    x = values.reshape(values.shape[0], -1).double()
    mean = x.mean(dim=0)
    _, v = pod_modes(x - mean)
    modes = torch.zeros(p, x.shape[1], dtype=torch.float64)
    modes[: min(p, v.shape[1])] = v[:, :p].T
    model.set_basis(mean.float().reshape(dims), modes.float().reshape(p, *dims))


class PointSamples(Dataset):
    """Per case: normalised parameters → values at points drawn over the grid of ``values [case, *dims]``.

    ``tables[k]`` ``[dims[k], C]`` gives the scaled (x, y, t) contribution of index ``n`` along axis k (zero
    elsewhere; C = 3, or 4 for (x, y, z, t) in 3-D), so a point's coordinates are the exact sum over axes.
    Item ``i`` is ``(params [P], coords [Q, C], values [Q])`` float32. The points of an epoch are drawn at
    once, for every case, by a generator seeded with (seed, epoch): deterministic in any process and on
    resume; ``set_epoch`` changes them, and
    ``__getitems__`` gathers a whole batch in a few tensor operations (no per-item Python work).
    """

    def __init__(self, values: Tensor, params: Tensor, tables: list[Tensor], points_per_case: int,
                 seed: int) -> None:
        if points_per_case < 1:
            raise ValueError("points_per_case must be >= 1")
        if values.ndim != 1 + len(tables) or any(len(t) != n for t, n in zip(tables, values.shape[1:],
                                                                             strict=True)):
            raise DataFileError(f"values {tuple(values.shape)} do not match the coordinate tables")
        if params.shape[0] != values.shape[0]:
            raise DataFileError("params and values have different numbers of cases")
        self.values, self.params, self.tables = values, params, tables
        self.q, self.seed, self.epoch, self._drawn = points_per_case, seed, 0, None

    def set_epoch(self, epoch: int) -> None:
        """Draw the points of ``epoch`` (deterministic in (seed, epoch))."""
        self.epoch = int(epoch)

    def _index(self) -> list[Tensor]:
        """Per axis, the drawn indices ``[case, Q]`` of the current epoch."""
        if self._drawn is None or self._drawn[0] != self.epoch:
            g = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch))
            n = len(self)
            self._drawn = (self.epoch, [torch.randint(len(t), (n, self.q), generator=g) for t in self.tables])
        return self._drawn[1]

    def __len__(self) -> int:
        return self.values.shape[0]

    def __getitems__(self, cases: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        """A batch ``(params [B, P], coords [B, Q, 3], values [B, Q])`` of the given cases."""
        c = torch.as_tensor([int(i) for i in cases], dtype=torch.long)
        if len(c) and (int(c.min()) < 0 or int(c.max()) >= len(self)):
            raise IndexError(f"case out of range 0 … {len(self) - 1}")
        idx = [a[c].reshape(-1) for a in self._index()]
        flat = c.repeat_interleave(self.q)  # flat positions: index_select is far faster than fancy indexing
        for n, i in zip(self.values.shape[1:], idx, strict=True):
            flat = flat * n + i
        coords = sum(t.index_select(0, i) for t, i in zip(self.tables, idx, strict=True))
        shape, width = (len(c), self.q), self.tables[0].shape[1]
        return (self.params[c], torch.zeros(*shape, width) + coords.reshape(*shape, width),
                self.values.reshape(-1).index_select(0, flat).reshape(shape))

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        return tuple(a[0] for a in self.__getitems__([i]))  # type: ignore[return-value]


def axis_table(values: Tensor, column: int, width: int = 3) -> Tensor:
    """``[len(values), width]`` with ``values`` in ``column``, zeros elsewhere (one axis of PointSamples)."""
    out = torch.zeros(len(values), width)
    out[:, column] = values
    return out


class SourceToFieldPoints(PointSamples):
    """Per case: normalised parameters → field values at (x, y, t) points drawn uniformly over the nodes of
    every frame (``fields [case, t, y, x]``); see PointSamples."""

    def __init__(self, fields: np.ndarray, params: np.ndarray, x: np.ndarray, y: np.ndarray, t: np.ndarray,
                 points_per_case: int, stats: Mapping[str, Any], seed: int) -> None:
        fields, params = np.asarray(fields), np.asarray(params, np.float64)
        if fields.ndim != 4 or fields.shape[1:] != (len(t), len(y), len(x)):
            raise DataFileError(f"fields {fields.shape} != t/y/x lengths {len(t)}/{len(y)}/{len(x)}")
        ax = scaled_axes(stats, x, y, t)
        super().__init__(Affine(float(stats["field_mean"]), float(stats["field_std"])).encode(fields),
                         param_affine(stats).encode(params),
                         [axis_table(ax[2], 2), axis_table(ax[1], 1), axis_table(ax[0], 0)],
                         points_per_case, seed)


class SourceToField(Task):
    """Parameters → field at any (x, y, t), trained on random points."""

    name = "source_to_field"
    interfaces = (POINTS,)

    def prepare(self, cfg: Any, stats: dict[str, Any] | None = None) -> TrainData:
        d, got = cfg.data, load_cases(cfg, stats)
        names, stats = point_stats(cfg, got, stats)
        c = got.coords

        def points(fields: np.ndarray, cases: np.ndarray, seed: int) -> SourceToFieldPoints:
            return SourceToFieldPoints(fields, param_matrix(got.params, names, cases), c["x"], c["y"], c["t"],
                                       d.points_per_case, stats, seed)

        train = points(got.train[0], got.splits.train, cfg.seed)
        val = None if got.val is None else points(got.val[0], got.splits.val, sample_seed(cfg.seed, 0xFA1))
        return TrainData(train, val, {**stats, "task": self.name, "n_in": d.n_in, "n_out": d.n_out,
                                      **got.record})

    def model_kwargs(self, cfg: Any, stats: dict[str, Any]) -> dict[str, Any]:
        """The config's kwargs; a model with the ``geometry`` capability also gets ``geometry``."""
        return geometry_kwargs(cfg, stats)

    def init_model(self, model: nn.Module, data: TrainData) -> None:
        """A model with ``set_basis(mean, modes)`` gets the centred POD basis of the training fields."""
        set_pod_basis(model, data.train.values)  # type: ignore[attr-defined]

    def export(self, model: nn.Module, stats: dict[str, Any]) -> Any:
        """SI parameters and (x m, y m, t s) → the field (``tasks._export.PointsField``)."""
        from wavesurrogate.tasks._export import points_export

        return points_export(model, stats)

    def export_samples(self, f: Any, cases: np.ndarray, stats: dict[str, Any], n: int) -> list[dict]:
        """``n`` of ``cases`` at 4,096 random grid points each."""
        from wavesurrogate.tasks._export import points_samples

        return points_samples(f, cases, stats, n)

    def check_stats(self, stats: dict[str, Any], source: str) -> None:
        check_numbers(stats, source, {"field_mean": False, "field_std": True})
        check_grid_stats(stats, source)
        names = stats.get("param_names")
        n = len(names) if isinstance(names, list) else -1
        c = 4 if isinstance(stats.get("coord_min"), list) and len(stats["coord_min"]) == 4 else 3
        check_numbers(stats, source, lists={"param_mean": n, "param_std": n, "coord_min": c, "coord_max": c})
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
