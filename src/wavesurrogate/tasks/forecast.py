"""Task ``forecast``: the next ``n_out`` frames from the last ``n_in`` frames and the velocity map.

Model interface ``frames``: ``forward(x)`` with x float32 ``[batch, n_in + 1, ny, nx]`` (the last n_in
frames, then the normalised velocity map as one extra channel) returns ``[batch, n_out, ny, nx]``.
Evaluation: one-step metrics over the test cases' windows (true inputs; every ``window_stride`` frames), and
an autoregressive rollout from frames ``rollout_start ..`` to the last frame, with errors per horizon, over
all horizons together, and a ``diverged`` flag (non-finite, or pooled relative L2 above the threshold)
instead of a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from wavesurrogate.data.windows import compute_stats
from wavesurrogate.errors import ConfigError, DataFileError
from wavesurrogate.metrics import temporal
from wavesurrogate.metrics.suite import summarise
from wavesurrogate.nn.registry import FRAMES
from wavesurrogate.tasks.base import (
    Affine,
    Task,
    TrainData,
    check_geometry,
    check_grid_stats,
    check_numbers,
    load_cases,
)

__all__ = ["ForecastWindows", "Forecast", "TASK", "field_affine", "velocity_affine"]


def field_affine(stats: Mapping[str, Any]) -> Affine:
    """The field normalisation of a run's statistics."""
    return Affine(float(stats["field_mean"]), float(stats["field_std"]))


def velocity_affine(stats: Mapping[str, Any]) -> Affine:
    """The velocity normalisation of a run's statistics."""
    return Affine(float(stats["velocity_mean"]), float(stats["velocity_std"]))


class ForecastWindows(Dataset):
    """Windows of consecutive frames: input = n_in frames + velocity channel, target = next n_out frames.

    ``fields`` ``[case, frame, y, x]`` and ``velocity`` ``[case, y, x]`` hold only this split's cases;
    item ``i`` is ``(x [n_in + 1, y, x], y [n_out, y, x])`` float32, normalised with ``stats``.
    Windows start every ``stride`` frames; window ``i`` is (case ``i // per_case``, start
    ``stride * (i % per_case)``).
    """

    def __init__(self, fields: np.ndarray, velocity: np.ndarray, n_in: int, n_out: int,
                 stats: Mapping[str, Any], stride: int = 1) -> None:
        fields, velocity = np.asarray(fields), np.asarray(velocity)
        if fields.ndim != 4 or velocity.shape != (fields.shape[0], *fields.shape[2:]):
            raise DataFileError(f"fields {fields.shape} and velocity {velocity.shape} do not match")
        if n_in < 1 or n_out < 1 or stride < 1:
            raise ValueError("n_in, n_out and stride must be >= 1")
        n_frames = fields.shape[1]
        if n_frames < n_in + n_out:
            raise DataFileError(f"cases have {n_frames} frames, fewer than n_in + n_out = {n_in + n_out}")
        self.n_in, self.n_out, self.stride = n_in, n_out, stride
        self.per_case = (n_frames - n_in - n_out) // stride + 1
        self.fields = field_affine(stats).encode(fields)
        self.velocity = velocity_affine(stats).encode(velocity)

    def __len__(self) -> int:
        return self.fields.shape[0] * self.per_case

    def locate(self, i: int) -> tuple[int, int]:
        """(case position within this split, first input frame) of window ``i``."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        return i // self.per_case, self.stride * (i % self.per_case)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        c, t0 = self.locate(int(i))
        x = torch.cat([self.fields[c, t0 : t0 + self.n_in], self.velocity[c][None]], dim=0)
        y = self.fields[c, t0 + self.n_in : t0 + self.n_in + self.n_out]
        return x, y


class Forecast(Task):
    """Frames → next frames, rolled out autoregressively."""

    name = "forecast"
    interfaces = (FRAMES,)

    def check_config(self, cfg: Any) -> None:
        for k in ("n_in", "n_out"):
            if k in cfg.model.kwargs and cfg.model.kwargs[k] != getattr(cfg.data, k):
                raise ConfigError(f"model.kwargs.{k} = {cfg.model.kwargs[k]} but data.{k} = "
                                  f"{getattr(cfg.data, k)}")

    def model_kwargs(self, cfg: Any, stats: dict[str, Any]) -> dict[str, Any]:
        """The config's kwargs; ``n_in`` and ``n_out`` from ``data`` where the config omits them."""
        return {"n_in": cfg.data.n_in, "n_out": cfg.data.n_out, **cfg.model.kwargs}

    def prepare(self, cfg: Any, stats: dict[str, Any] | None = None) -> TrainData:
        d, got = cfg.data, load_cases(cfg, stats)
        if stats is None:
            stats = compute_stats(*got.train)
        train = ForecastWindows(*got.train, d.n_in, d.n_out, stats, d.window_stride)
        val = None if got.val is None else ForecastWindows(*got.val, d.n_in, d.n_out, stats, d.window_stride)
        return TrainData(train, val, {**stats, "task": self.name, "n_in": d.n_in, "n_out": d.n_out,
                                      **got.record})

    def check_stats(self, stats: dict[str, Any], source: str) -> None:
        check_numbers(stats, source, {"field_mean": False, "field_std": True, "velocity_mean": False,
                                      "velocity_std": True}, ints=("n_in", "n_out"))
        check_grid_stats(stats, source)

    def check_fits(self, f: Any, info: Any) -> None:
        where = f"{f.path}: run {info.run_dir.name}"
        check_geometry(f, info.stats, where)
        n_in = int(info.stats["n_in"])
        if f.n_frames < n_in + 1:
            raise DataFileError(f"{where} needs at least n_in + 1 = {n_in + 1} frames, the file has "
                                f"{f.n_frames}")

    @torch.no_grad()
    def evaluate(self, model: nn.Module, info: Any, f: Any, cases: np.ndarray, *, batch_size: int = 32,
                 rollout_start: int = 0, window_stride: int = 1) -> dict[str, Any]:
        """One-step metrics (windows every ``window_stride`` frames); the rollout from ``rollout_start``."""
        from wavesurrogate.metrics.spatial import pooled_rel_l2
        from wavesurrogate.nn.rollout import rollout

        fields, velocity = f.load_all(cases)
        s = info.stats
        n_in, n_out = int(s["n_in"]), int(s["n_out"])
        fa = field_affine(s)
        out: dict[str, Any] = {"one_step": None}
        if fields.shape[1] >= n_in + n_out:
            ds = ForecastWindows(fields, velocity, n_in, n_out, s, window_stride)
            preds, trues = [], []
            for start in range(0, len(ds), batch_size):
                xs, ys = zip(*(ds[i] for i in range(start, min(start + batch_size, len(ds)))), strict=True)
                preds.append(fa.decode(model(torch.stack(xs))))
                trues.append(fa.decode(torch.stack(ys)))
            out["one_step"] = summarise(preds, trues, f.n_spatial_dims)
        last = fields.shape[1] - n_in - 1
        if not 0 <= rollout_start <= last:
            raise ConfigError(f"--rollout-start: frame {rollout_start} leaves no frame to forecast (the data "
                              f"has {fields.shape[1]} frames, the model reads {n_in}: use 0..{last})")
        s0, n_steps = rollout_start, fields.shape[1] - n_in - rollout_start
        norm_f, norm_v = fa.encode(fields[:, s0 : s0 + n_in]), velocity_affine(s).encode(velocity)
        pred = torch.cat([fa.decode(rollout(model, norm_f[c : c + batch_size], norm_v[c : c + batch_size],
                                            n_steps)) for c in range(0, fields.shape[0], batch_size)])
        true = torch.from_numpy(fields[:, s0 + n_in :].astype(np.float64))
        errs = temporal.rollout_errors(pred, true)
        at = temporal.diverged_at(errs)
        out["rollout"] = {"start_frame": s0, "horizon": list(range(1, n_steps + 1)),
                          "time_s": [h * f.frame_dt for h in range(1, n_steps + 1)], **errs,
                          "rel_l2_all_horizons": pooled_rel_l2(pred, true),
                          "diverged": at is not None, "diverged_at": at}
        out["diverged"] = at is not None
        return out


TASK = Forecast()
