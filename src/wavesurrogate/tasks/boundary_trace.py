"""Task ``boundary_trace``: source and medium parameters → the field on the ZOI boundary over time.

Model interface ``trace``: ``forward(params)`` with params in SI units ``[batch, n_params]`` returns the
trace in field units ``[batch, n_boundary, n_times]`` (its normalisation constants are constructor
arguments that this task fills in from the training split, so a run directory is self-contained).
Loss per case: the squared relative L2 error ‖p − y‖² / ‖y‖², the quantity the submodel error follows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, TensorDataset

from wavesurrogate.data.store import open_data
from wavesurrogate.data.windows import param_matrix
from wavesurrogate.errors import CheckpointError, ConfigError, DataFileError
from wavesurrogate.metrics.suite import METRICS, summarise
from wavesurrogate.nn.registry import TRACE
from wavesurrogate.tasks.base import Task, TrainData, check_numbers, finite, split_file

__all__ = ["BoundaryTrace", "TASK", "WARP_PARAMS", "relative_errors"]

# Model keys of the arrival-time warp → the parameter names of a trace campaign.
WARP_PARAMS = {"source_x": "source_x_m", "source_y": "source_y_m", "freq": "freq_hz",
               "velocity": "medium_c0_mps"}
GROUP = "boundary"  # the receiver-trace group of the data file (traces/boundary)


def relative_errors(pred: Tensor, target: Tensor) -> Tensor:
    """Relative L2 error per case ``[B]`` of traces ``[B, n_b, n_t]``."""
    num = ((pred - target) ** 2).flatten(1).sum(1)
    den = (target**2).flatten(1).sum(1).clamp_min(1e-30)
    return torch.sqrt(num / den)


def _param_names(cfg: Any, known: list[str]) -> list[str]:
    names = list(cfg.data.params) if cfg.data.params is not None else known
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(f"data.params: unknown {unknown or names}; the file has {known}")
    return names


def _dataset(f: Any, names: list[str], cases: np.ndarray) -> Dataset:
    p = param_matrix(f.params, names, cases)
    y = f.traces(GROUP, cases).transpose(0, 2, 1) if len(cases) else np.zeros((0, 1, 1), np.float32)
    return TensorDataset(torch.from_numpy(p), torch.from_numpy(np.ascontiguousarray(y)))


class BoundaryTrace(Task):
    """Parameters → boundary trace, the input of the zone-of-interest FE submodel."""

    name = "boundary_trace"
    interfaces = (TRACE,)

    def prepare(self, cfg: Any, stats: dict[str, Any] | None = None) -> TrainData:
        d = cfg.data
        with open_data(d.path) as f:
            if GROUP not in f.trace_names:
                raise DataFileError(f"{d.path}: no traces/boundary (set record.boundary_trace_stride)")
            splits, split_lists = split_file(f, cfg, stats)
            names = list(stats["param_names"]) if stats is not None else _param_names(cfg, list(f.params))
            train, val = _dataset(f, names, splits.train), _dataset(f, names, splits.val)
            if stats is None:
                p = train.tensors[0].numpy()
                std = p.std(axis=0)
                c, t_s = f.config, f.trace_t(GROUP)
                zoi, g = c.zoi_obj(), c.grid
                if g.dx_m != g.dy_m:  # the arrival-time warp places the ZOI with one spacing
                    raise DataFileError(f"{d.path}: boundary_trace needs dx_m == dy_m, the file has "
                                        f"{g.dx_m:g} and {g.dy_m:g}")
                stats = {
                    "param_names": names, "param_mean": p.mean(axis=0).tolist(),
                    "param_std": np.where(std > 0, std, 1.0).tolist(),
                    "trace_scale": float(np.sqrt(np.mean(train.tensors[1].double().numpy() ** 2))) or 1.0,
                    "data": {"path": str(f.path), "nx": g.nx, "ny": g.ny, "dx_m": g.dx_m,
                             "zoi": [zoi.i0, zoi.j0, zoi.nx, zoi.ny], "n_boundary": zoi.n_boundary,
                             "n_times": int(t_s.size), "trace_dt_s": float(t_s[1] - t_s[0]),
                             "frame_dt": f.frame_dt}}
        return TrainData(train, val if len(splits.val) else None,
                         {**stats, "task": self.name, "splits": split_lists})

    def model_kwargs(self, cfg: Any, stats: dict[str, Any]) -> dict[str, Any]:
        """The config's kwargs plus sizes, normalisation and geometry; ``warp: true`` (default) fills in
        the parameter indices the arrival-time warp needs, ``false`` trains the plain decoder."""
        kw = dict(cfg.model.kwargs)
        if not stats:
            return kw
        warp = kw.pop("warp", True)
        if not isinstance(warp, bool):
            raise ConfigError("model.kwargs.warp: expected true or false")
        d, names = stats["data"], stats["param_names"]
        kw.update(n_params=len(names), n_boundary=d["n_boundary"], n_times=d["n_times"],
                  trace_dt_s=d["trace_dt_s"], param_mean=stats["param_mean"], param_std=stats["param_std"],
                  trace_scale=stats["trace_scale"])
        if warp:
            missing = [v for v in WARP_PARAMS.values() if v not in names]
            if missing:
                raise ConfigError(f"model.kwargs.warp: needs parameters {missing} (data.params)")
            kw["warp"] = {k: names.index(v) for k, v in WARP_PARAMS.items()}
            i0, j0, zx, zy = d["zoi"]
            kw["zoi_m"] = [i0 * d["dx_m"], j0 * d["dx_m"], d["dx_m"], d["dx_m"], zx, zy]
        return kw

    def sample_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape != target.shape:
            raise ConfigError(f"model output {tuple(pred.shape)} does not match the target "
                              f"{tuple(target.shape)}")
        return relative_errors(pred, target) ** 2

    def check_stats(self, stats: dict[str, Any], source: str) -> None:
        names = stats.get("param_names") if isinstance(stats, dict) else None
        n = len(names) if isinstance(names, list) else -1
        check_numbers(stats, source, {"trace_scale": True}, lists={"param_mean": n, "param_std": n})
        if not all(finite(s, positive=True) for s in stats["param_std"]):
            raise CheckpointError(f"{source}: 'param_std' must be positive")
        d = stats.get("data")
        if not isinstance(d, dict) or not all(isinstance(d.get(k), int) for k in ("n_boundary", "n_times")) \
                or not (isinstance(d.get("zoi"), list) and len(d["zoi"]) == 4) \
                or not all(finite(d.get(k), positive=True) for k in ("trace_dt_s", "dx_m")):
            raise CheckpointError(f"{source}: 'data' must give the ZOI, n_boundary, n_times, trace_dt_s and "
                                  "dx_m trained on")

    def check_fits(self, f: Any, info: Any) -> None:
        """DataFileError unless the file has the ZOI, trace length, trace step and parameters trained on."""
        if GROUP not in f.trace_names or f.config.zoi_obj() is None:
            raise DataFileError(f"{f.path}: no ZOI boundary traces (set record.boundary_trace_stride)")
        d, z, t = info.stats["data"], f.config.zoi_obj(), f.trace_t(GROUP)
        g = f.config.grid
        have = {"zoi": [z.i0, z.j0, z.nx, z.ny], "n_times": int(t.size), "trace_dt_s": float(t[1] - t[0]),
                "nx": g.nx, "ny": g.ny, "dx_m": g.dx_m}
        for k, v in have.items():
            want = d.get(k)
            if not (np.allclose(want, v, rtol=1e-9) if k in ("trace_dt_s", "dx_m") else want == v):
                raise DataFileError(f"{f.path}: {k} is {v}, but the run was trained on {want}")
        missing = [n for n in info.stats["param_names"] if n not in f.params]
        if missing:
            renamed = " (runs of the old trace trainer name it c0_mps)" if "c0_mps" in missing else ""
            raise DataFileError(f"{f.path}: lacks the parameters {missing} run {info.run_dir.name} takes"
                                + renamed)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, info: Any, f: Any, cases: np.ndarray, *, batch_size: int = 32,
                 rollout_start: int = 0) -> dict[str, Any]:
        ds = _dataset(f, list(info.stats["param_names"]), cases)
        p, y = ds.tensors
        pred = torch.cat([model(p[i : i + batch_size]) for i in range(0, len(p), batch_size)])
        spatial = tuple(m for m in METRICS if m.kind == "spatial")  # no spectrum over (node, time)
        one = summarise([pred.double()], [y.double()], metrics=spatial)
        return {"one_step": one, "rollout": None, "diverged": not np.isfinite(one["rmse"])}


TASK = BoundaryTrace()
