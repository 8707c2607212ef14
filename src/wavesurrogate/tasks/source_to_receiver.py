"""Task ``source_to_receiver``: case parameters (e.g. the source position) → the impulse response at any
receiver position (Borrel-Jensen et al., PNAS 2023).

Model interface ``points``, exactly as ``source_to_field``: ``forward(params [B, P], coords [B, Q, 3])`` →
``[B, Q]``, with the same statistics (field, parameter and coordinate normalisation of the training split,
``source_to_field.point_stats``), so one model serves both tasks. On 3-D data (a room) the coordinates are
``(x, y, z, t)`` ``[B, Q, 4]``, the source position ``source_{x,y,z}_m``, the field statistics those of the
training traces (the stored fields of a 3-D campaign are optional and decimated) and ``stats["room"]`` keeps
the room's extent and obstacles, so a run answers queries (:func:`predict_irs`) without its data file.
Training samples (receiver, time) points
of the receiver traces ``traces/<data.receivers>`` of the training receivers; ``data.held_out_receivers``
are never trained on. Evaluation: every test source at the held-out and at the trained receivers, with the
paper's signal metrics per source × receiver pair (``metrics.signals``) and the pooled relative L2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from wavesurrogate.data.store import open_data
from wavesurrogate.data.windows import param_matrix, sample_seed, scale_axis
from wavesurrogate.errors import CheckpointError, ConfigError, DataFileError
from wavesurrogate.metrics.signals import mean_relative_error_above, peak_normalised_rmse, relative_rmse
from wavesurrogate.metrics.spatial import pooled_rel_l2
from wavesurrogate.nn.registry import POINTS
from wavesurrogate.safeload import parse_yaml
from wavesurrogate.tasks import _modal
from wavesurrogate.tasks.base import Affine, Task, TrainData, check_numbers, load_cases
from wavesurrogate.tasks.source_to_field import (
    PointSamples,
    SourceToField,
    axis_table,
    geometry_kwargs,
    param_affine,
    point_stats,
)

__all__ = ["SourceToReceiver", "TASK", "held_out", "receiver_coords", "predict_irs", "room_of",
           "check_position"]

HELD_OUT_SEED = 0x4EC  # the held-out receivers depend on their count only, not on the run's seed


def held_out(spec: int | list[int], n: int, field: str = "data.held_out_receivers") -> list[int]:
    """Sorted positions of the held-out receivers among ``n``: ``spec`` of them drawn by a fixed-seed
    permutation, or the listed ones. ConfigError unless at least one receiver is left to train on."""
    if isinstance(spec, int):
        if not 0 <= spec < n:
            raise ConfigError(f"{field}: must be in [0, {n - 1}] (the file has {n} receivers), got {spec}")
        perm = np.random.default_rng(sample_seed(HELD_OUT_SEED, n)).permutation(n)
        return sorted(int(i) for i in perm[:spec])
    if len(set(spec)) != len(spec) or any(not 0 <= i < n for i in spec) or len(spec) >= n:
        raise ConfigError(f"{field}: expected distinct positions in [0, {n - 1}] leaving one to train on, "
                          f"got {spec}")
    return sorted(int(i) for i in spec)


def receiver_coords(stats: dict[str, Any], f: Any, name: str, which: list[int]) -> tuple[Tensor, Tensor]:
    """Scaled (x, y, (z,) 0) of receivers ``which`` ``[R, n + 1]`` and (0, …, t) of the trace times
    ``[n_t, n + 1]``."""
    idx = f.trace_index(name)[which]  # [R, n] in axis order ((z,) y, x)
    pos = idx[:, ::-1] * np.asarray(f.spacing[::-1])  # metres, (x, y(, z))
    return scaled_points(stats, pos), time_table(stats, f.trace_t(name))


def scaled_points(stats: dict[str, Any], pos_m: np.ndarray) -> Tensor:
    """Positions ``[R, n]`` (m, (x, y(, z))) as scaled coordinates ``[R, n + 1]`` with t = 0."""
    lo, hi = stats["coord_min"], stats["coord_max"]
    n = len(lo) - 1
    pos = np.asarray(pos_m, np.float64).reshape(-1, n)
    rec = torch.zeros(pos.shape[0], n + 1)
    for k in range(n):
        rec[:, k] = torch.from_numpy(scale_axis(pos[:, k], lo[k], hi[k]).astype(np.float32))
    return rec


def time_table(stats: dict[str, Any], t_s: np.ndarray) -> Tensor:
    """Trace times (s) as scaled coordinates ``[n_t, n + 1]`` (zero on the spatial columns)."""
    lo, hi = stats["coord_min"], stats["coord_max"]
    t = torch.from_numpy(scale_axis(np.asarray(t_s, np.float64), lo[-1], hi[-1]).astype(np.float32))
    return axis_table(t, len(lo) - 1, len(lo))


def room_of(f: Any) -> dict[str, Any]:
    """The room of 3-D data file ``f``: ``min_m``/``max_m`` (x, y, z extent of the grid) and ``obstacles``
    (boxes ``{"x_m": [a, b], "y_m": …, "z_m": …}`` found under any ``obstacles`` key of the file's campaign
    config, read as plain YAML so a config of a newer schema still yields its boxes)."""

    axes = (f.x, f.y, f.z)
    boxes: list[dict[str, list[float]]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "obstacles" and isinstance(v, list):
                    xyz = ("x_m", "y_m", "z_m")
                    boxes.extend({a: [float(x) for x in b[a]] for a in xyz}
                                 for b in v if isinstance(b, dict) and all(a in b for a in xyz))
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    try:
        walk(parse_yaml(f.attrs.get("config_yaml", "") or "{}", "config_yaml", DataFileError))
    except DataFileError:  # the reader has validated it already; a file without one has no obstacles
        pass
    return {"min_m": [float(np.min(a)) for a in axes], "max_m": [float(np.max(a)) for a in axes],
            "obstacles": boxes}


def check_position(room: dict[str, Any], pos: Any, what: str) -> np.ndarray:
    """``pos`` (x, y, z) in metres as an array; ConfigError (one line) if it is not three finite numbers,
    lies outside the room or inside an obstacle."""
    p = np.asarray(pos, np.float64).reshape(-1)
    if p.size != 3 or not np.all(np.isfinite(p)):
        raise ConfigError(f"{what}: expected three finite coordinates x y z in metres, got {list(p)}")
    lo, hi = room["min_m"], room["max_m"]
    if np.any(p < np.asarray(lo)) or np.any(p > np.asarray(hi)):
        raise ConfigError(f"{what}: ({', '.join(f'{v:g}' for v in p)}) m lies outside the room "
                          f"[{lo[0]:g}, {hi[0]:g}] × [{lo[1]:g}, {hi[1]:g}] × [{lo[2]:g}, {hi[2]:g}] m")
    for b in room.get("obstacles", []):
        if all(b[a][0] <= v <= b[a][1] for a, v in zip(("x_m", "y_m", "z_m"), p, strict=True)):
            raise ConfigError(f"{what}: ({', '.join(f'{v:g}' for v in p)}) m lies inside an obstacle "
                              f"(x {b['x_m']}, y {b['y_m']}, z {b['z_m']} m)")
    return p


@torch.no_grad()
def predict_irs(model: nn.Module, stats: dict[str, Any], params: dict[str, float],
                receivers_m: np.ndarray) -> np.ndarray:
    """Impulse responses ``[R, n_t]`` (field units, at the trained trace times ``stats["receivers"]``'s
    ``t0_s + k dt_s``) at ``receivers_m`` ``[R, n]`` (m) for one case given by its parameters (names of
    ``stats["param_names"]``, SI). A model with ``forward_product(params, receivers, times)`` (e.g.
    ``separable_operator``) is asked for the receiver × time product directly."""
    r = stats["receivers"]
    names = list(stats.get("param_names", []))
    p = param_affine(stats).encode(np.asarray([[float(params[k]) for k in names]], np.float64))
    rec = scaled_points(stats, receivers_m)
    times = time_table(stats, r["t0_s"] + r["dt_s"] * np.arange(r["n_times"]))
    fa = Affine(float(stats["field_mean"]), float(stats["field_std"]))
    product = getattr(model, "forward_product", None)
    if callable(product):  # position × time models answer the product at R + n_t evaluations
        return fa.decode(product(p, rec[:, :-1], times[:, -1])[0]).double().numpy()
    coords = (rec[:, None, :] + times[None, :, :]).reshape(-1, rec.shape[1])
    return fa.decode(model(p, coords[None])[0]).reshape(rec.shape[0], -1).double().numpy()


class SourceToReceiver(Task):
    """Parameters → receiver impulse responses at any (x, y), trained on (receiver, time) points."""

    name = "source_to_receiver"
    interfaces = (POINTS,)

    def prepare(self, cfg: Any, stats: dict[str, Any] | None = None) -> TrainData:
        d, got = cfg.data, load_cases(cfg, stats)
        names, stats = point_stats(cfg, got, stats)
        with open_data(d.path) as f:
            if d.receivers not in f.trace_names:
                raise DataFileError(f"{d.path}: no traces/{d.receivers} (set record.receivers, or "
                                    f"data.receivers to one of {f.trace_names or 'none'})")
            n, tt = f.trace_index(d.receivers).shape[0], f.trace_t(d.receivers)
            if stats.get("receivers") is None:
                out = held_out(d.held_out_receivers, n)
                stats = {**stats, "receivers": {"name": d.receivers, "held_out": out,
                                                "train": [i for i in range(n) if i not in out],
                                                "n_times": int(tt.size), "t0_s": float(tt[0]),
                                                "dt_s": float(tt[1] - tt[0])}}
                if f.n_spatial_dims == 3:  # the traces' own statistics, and the room for queries
                    tr = f.traces(d.receivers, got.splits.train)[:, :, stats["receivers"]["train"]]
                    m, sd = float(tr.mean(dtype=np.float64)), float(tr.std(dtype=np.float64))
                    stats.update(field_mean=m, field_std=sd if sd > 0 else 1.0, room=room_of(f),
                                 coord_min=[*stats["coord_min"][:-1], float(tt.min())],
                                 coord_max=[*stats["coord_max"][:-1], float(tt.max())])
            r = stats["receivers"]
            fa = Affine(float(stats["field_mean"]), float(stats["field_std"]))
            rec, times = receiver_coords(stats, f, d.receivers, r["train"])

            def points(cases: np.ndarray, seed: int) -> PointSamples:
                values = fa.encode(np.ascontiguousarray(f.traces(d.receivers, cases)[:, :, r["train"]]))
                return PointSamples(values, param_affine(stats).encode(param_matrix(f.params, names, cases)),
                                    [times, rec], d.points_per_case, seed)

            sp = got.splits
            train = points(sp.train, cfg.seed)
            val = points(sp.val, sample_seed(cfg.seed, 0xFA1)) if len(sp.val) else None
            extra: dict[str, Any] = {}
            if _modal.is_modal(cfg) and "modes" not in stats:  # a fresh modal run: modes, fitting data
                stats, extra = _modal.prepare(cfg, f, stats, fa, got.splits)
        return TrainData(train, val, {**stats, "task": self.name, "n_in": d.n_in, "n_out": d.n_out,
                                      **got.record}, extra)

    def model_kwargs(self, cfg: Any, stats: dict[str, Any]) -> dict[str, Any]:
        """The config's kwargs; a model with the ``geometry`` capability also gets ``geometry``, one with the
        ``modal`` capability the room's grid, mode count and trace times (``tasks._modal``)."""
        kw = geometry_kwargs(cfg, stats)
        return _modal.model_kwargs(kw, stats) if _modal.is_modal(cfg) else kw

    def init_model(self, model: nn.Module, data: TrainData) -> None:
        """A modal model gets the room's modes and its responses fitted in closed form (``tasks._modal``)."""
        if "psi" in data.extra:
            _modal.init_model(model, data)

    def check_stats(self, stats: dict[str, Any], source: str) -> None:
        SourceToField().check_stats(stats, source)
        r = stats.get("receivers")
        def ints(k: str) -> bool:
            return isinstance(r.get(k), list) and all(isinstance(i, int) for i in r[k])

        lists = isinstance(r, dict) and ints("held_out") and ints("train")
        if not lists or not isinstance(r.get("name"), str):
            raise CheckpointError(f"{source}: 'receivers' must give the trace name and the held-out and "
                                  "trained receiver positions")
        check_numbers(r, source, ints=("n_times",))

    def check_fits(self, f: Any, info: Any) -> None:
        SourceToField().check_fits(f, info)
        r = info.stats["receivers"]
        if r["name"] not in f.trace_names:
            raise DataFileError(f"{f.path}: no traces/{r['name']}, which run {info.run_dir.name} was "
                                "trained on")
        n, n_t = f.trace_index(r["name"]).shape[0], f.trace_t(r["name"]).size
        if n != len(r["held_out"]) + len(r["train"]) or n_t != r["n_times"]:
            raise DataFileError(f"{f.path}: traces/{r['name']} has {n} receivers × {n_t} times, the run was "
                                f"trained on {len(r['held_out']) + len(r['train'])} × {r['n_times']}")

    @torch.no_grad()
    def evaluate(self, model: nn.Module, info: Any, f: Any, cases: np.ndarray, *, batch_size: int = 32,
                 rollout_start: int = 0, chunk: int = 32768) -> dict[str, Any]:
        s = info.stats
        r, fa = s["receivers"], Affine(float(s["field_mean"]), float(s["field_std"]))
        p = param_affine(s).encode(param_matrix(f.params, list(s.get("param_names", [])), cases))
        true = f.traces(r["name"], cases).astype(np.float64)  # [N, n_t, n_r]
        out: dict[str, Any] = {}
        for key in ("held_out", "trained"):
            which = r["held_out" if key == "held_out" else "train"]
            if not which:
                out[key] = None
                continue
            rec, times = receiver_coords(s, f, r["name"], which)
            coords = (rec[:, None, :] + times[None, :, :]).reshape(-1, rec.shape[1])  # receiver-major
            pred = torch.stack([fa.decode(torch.cat([model(p[i : i + 1], coords[None, q : q + chunk])[0]
                                                     for q in range(0, len(coords), chunk)]))
                                for i in range(len(cases))]).reshape(len(cases), len(which), -1)
            t = torch.from_numpy(true[:, :, which].transpose(0, 2, 1).copy())
            out[key] = signal_summary(pred.reshape(-1, t.shape[-1]), t.reshape(-1, t.shape[-1]))
            out[key].update(n_sources=len(cases), receivers=[int(i) for i in which])
        one = out["held_out"] or out["trained"]
        return {"one_step": one, **out, "rollout": None, "diverged": not np.isfinite(one["rmse"])}


def signal_summary(pred: Tensor, true: Tensor) -> dict[str, Any]:
    """Means over source × receiver pairs ``[N, n_t]`` of the signal metrics, pooled relative L2 and RMSE."""
    def mean(v: Tensor) -> float:
        v = v[torch.isfinite(v)]
        return float(v.mean()) if v.numel() else float("nan")

    return {"n_pairs": int(pred.shape[0]), "peak_normalised_rmse": mean(peak_normalised_rmse(pred, true)),
            "relative_rmse": mean(relative_rmse(pred, true)),
            "mean_relative_error_above_60db": mean(mean_relative_error_above(pred, true, -60.0)),
            "rel_l2": pooled_rel_l2(pred, true), "rmse": float((pred - true).pow(2).mean().sqrt())}


TASK = SourceToReceiver()
