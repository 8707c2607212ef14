"""Task ``source_to_receiver``: case parameters (e.g. the source position) → the impulse response at any
receiver position (Borrel-Jensen et al., PNAS 2023).

Model interface ``points``, exactly as ``source_to_field``: ``forward(params [B, P], coords [B, Q, 3])`` →
``[B, Q]``, with the same statistics (field, parameter and coordinate normalisation of the training split,
``source_to_field.point_stats``), so one model serves both tasks. Training samples (receiver, time) points
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
from wavesurrogate.tasks.base import Affine, Task, TrainData, check_numbers, load_cases
from wavesurrogate.tasks.source_to_field import (
    PointSamples,
    SourceToField,
    axis_table,
    geometry_kwargs,
    param_affine,
    point_stats,
)

__all__ = ["SourceToReceiver", "TASK", "held_out", "receiver_coords"]

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
    """Scaled (x, y, 0) of receivers ``which`` ``[R, 3]`` and (0, 0, t) of the trace times ``[n_t, 3]``."""
    lo, hi = stats["coord_min"], stats["coord_max"]
    idx = f.trace_index(name)[which]
    xy = [scale_axis(idx[:, k] * d, lo[c], hi[c]) for k, d, c in ((1, f.dx, 0), (0, f.dy, 1))]
    rec = torch.zeros(len(which), 3)
    rec[:, 0], rec[:, 1] = (torch.from_numpy(a.astype(np.float32)) for a in xy)
    t = torch.from_numpy(scale_axis(f.trace_t(name), lo[2], hi[2]).astype(np.float32))
    return rec, axis_table(t, 2)


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
            n = f.trace_index(d.receivers).shape[0]
            if stats.get("receivers") is None:
                out = held_out(d.held_out_receivers, n)
                stats = {**stats, "receivers": {"name": d.receivers, "held_out": out,
                                                "train": [i for i in range(n) if i not in out],
                                                "n_times": int(f.trace_t(d.receivers).size)}}
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
        return TrainData(train, val, {**stats, "task": self.name, "n_in": d.n_in, "n_out": d.n_out,
                                      **got.record})

    def model_kwargs(self, cfg: Any, stats: dict[str, Any]) -> dict[str, Any]:
        """The config's kwargs; a model with the ``geometry`` capability also gets ``geometry``."""
        return geometry_kwargs(cfg, stats)

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
            coords = (rec[:, None, :] + times[None, :, :]).reshape(-1, 3)  # receiver-major, then time
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
