"""What every task provides: datasets and statistics for training, a processor, checks, evaluation.

The one training loop (``train/loop.py``) and the one evaluator (``eval/evaluate.py``) call only this
interface; nothing outside ``tasks/`` branches on a task's name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from wavesurrogate.errors import CheckpointError, ConfigError, DataFileError

__all__ = ["Task", "TrainData", "Affine", "Loaded", "load_cases", "finite", "check_numbers",
           "check_grid_stats", "check_geometry", "test_cases", "split_file",
           "file_geometry"]


@dataclass
class TrainData:
    """Training and validation datasets and the statistics (incl. splits and geometry) of the run."""

    train: Dataset
    val: Dataset | None
    stats: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)  # in-memory products of prepare for init_model


@dataclass(frozen=True)
class Affine:
    """One normalisation: ``encode(a) = (a − mean) / std`` to float32, ``decode(t) = t · std + mean``."""

    mean: Any
    std: Any

    def encode(self, a: np.ndarray) -> Tensor:
        """float32 tensor of the normalised array (computed in float32; no float64 copy of a large array)."""
        a = np.asarray(a)
        if a.dtype == np.float64:  # small arrays (parameters): normalise in float64, then round once
            return torch.from_numpy(((a - self.mean) / self.std).astype(np.float32))
        out = np.array(a, dtype=np.float32, copy=True)
        out -= np.asarray(self.mean, np.float32)
        out /= np.asarray(self.std, np.float32)
        return torch.from_numpy(out)

    def decode(self, t: Tensor) -> Tensor:
        """float64 values in physical units."""
        return t.double() * torch.as_tensor(self.std, dtype=torch.float64) + torch.as_tensor(
            self.mean, dtype=torch.float64)


def finite(v: Any, positive: bool = False) -> bool:
    """Whether ``v`` is a finite (and, with ``positive``, positive) real number."""
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    return ok and (v > 0 if positive else True)


def check_numbers(stats: Mapping[str, Any], source: str, scalars: Mapping[str, bool] = (),
                  ints: tuple[str, ...] = (), lists: Mapping[str, int] = ()) -> None:
    """CheckpointError unless ``stats`` has the finite ``scalars`` (value: must be positive), positive
    ``ints`` and ``lists`` of the given lengths of finite numbers."""
    if not isinstance(stats, dict):
        raise CheckpointError(f"{source}: expected a JSON object")
    for k, positive in dict(scalars).items():
        if not finite(stats.get(k), positive):
            kind = "a positive finite" if positive else "a finite"
            raise CheckpointError(f"{source}: {k!r} must be {kind} number, got {stats.get(k)!r}")
    for k in ints:
        v = stats.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise CheckpointError(f"{source}: {k!r} must be a positive integer, got {v!r}")
    for k, length in dict(lists).items():
        v = stats.get(k)
        if not isinstance(v, list) or len(v) != length or not all(finite(x) for x in v):
            raise CheckpointError(f"{source}: {k!r} must be a list of {max(length, 0)} finite numbers")


def check_grid_stats(stats: Mapping[str, Any], source: str) -> None:
    """CheckpointError unless ``stats["data"]`` gives the grid (ny, nx) and frame_dt trained on."""
    geo = stats.get("data")
    if not isinstance(geo, dict) or not all(isinstance(geo.get(k), int) for k in ("ny", "nx")) \
            or not finite(geo.get("frame_dt"), positive=True):
        raise CheckpointError(f"{source}: 'data' must give the grid (ny, nx) and frame_dt trained on")


def check_geometry(f: Any, stats: Mapping[str, Any], where: str) -> None:
    """DataFileError unless data file ``f`` has the grid and frame spacing the run was trained on."""
    g = stats.get("data", {})
    if (f.ny, f.nx) != (g.get("ny"), g.get("nx")):
        raise DataFileError(f"{where} was trained on a {g.get('ny')}x{g.get('nx')} grid, "
                            f"the file has {f.ny}x{f.nx}")
    fdt = float(g.get("frame_dt", f.frame_dt))
    if not math.isclose(f.frame_dt, fdt, rel_tol=1e-6):
        raise DataFileError(f"{where} was trained with frames {fdt:g} s apart, the file has {f.frame_dt:g} s")


def test_cases(f: Any) -> tuple[np.ndarray, str]:
    """The test cases of ``f`` (finished only), or all finished cases if it has no test split."""
    done = f.done
    test = np.flatnonzero((f.split == 1) & done)
    if len(test):
        return test, "test"
    cases = np.flatnonzero(done)
    if not len(cases):
        raise DataFileError(f"{f.path}: no finished cases to evaluate")
    return cases, "all"


class Task:
    """Base of every task. Subclasses set ``name`` and ``interfaces`` (model interfaces of nn.registry)."""

    name: ClassVar[str]
    interfaces: ClassVar[tuple[str, ...]]

    def check_config(self, cfg: Any) -> None:
        """Task-specific consistency of a TrainConfig (ConfigError, one line); none by default."""

    def prepare(self, cfg: Any, stats: dict[str, Any] | None = None) -> TrainData:
        """Split the data file, build the datasets; ``stats`` (from a run being resumed) are reused."""
        raise NotImplementedError

    def model_kwargs(self, cfg: Any, stats: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments of the model: the config's (tasks may add what the data determines)."""
        return dict(cfg.model.kwargs)

    def init_model(self, model: nn.Module, data: TrainData) -> None:
        """Set up a freshly built model from the training data (not on resume or ``init_from``); nothing by
        default. Must be deterministic."""

    def sample_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """Loss per sample ``[B]`` (normalised units); the training loss is its mean over the batch."""
        if pred.shape != target.shape:
            raise ConfigError(f"model output {tuple(pred.shape)} does not match the target "
                              f"{tuple(target.shape)}")
        return (pred - target).pow(2).flatten(1).mean(1)

    def batch_pred(self, model: nn.Module, batch: list[Tensor], cfg: Any) -> tuple[Tensor, Tensor]:
        """(prediction, target) of one collated batch, what ``sample_loss`` compares: by default the model
        on every tensor but the last, and the last."""
        *inputs, target = batch
        return model(*inputs), target

    def batch_loss(self, model: nn.Module, batch: list[Tensor], cfg: Any) -> Tensor:
        """Loss per sample ``[B]`` of one collated batch, for training and validation (the loop's only
        loss): ``sample_loss`` of ``batch_pred``; with ``cfg.elastic`` summed over the nested sub-networks
        plus their distillation toward the full model (``tasks._elastic``)."""
        if getattr(cfg, "elastic", None) is not None:
            from wavesurrogate.tasks._elastic import elastic_loss

            return elastic_loss(self, model, batch, cfg)
        return self.sample_loss(*self.batch_pred(model, batch, cfg))

    def check_stats(self, stats: dict[str, Any], source: str) -> None:
        """CheckpointError (one line) unless ``stats`` holds what evaluating this task's models reads."""

    def check_fits(self, f: Any, info: Any) -> None:
        """DataFileError (one line) unless data file ``f`` fits the run ``info`` was trained on."""

    def evaluate(self, model: nn.Module, info: Any, f: Any, cases: np.ndarray, *, batch_size: int = 32,
                 rollout_start: int = 0) -> dict[str, Any]:
        """Metrics of ``model`` on ``cases`` of the open data file ``f``: one_step, rollout, diverged."""
        raise NotImplementedError

    def export(self, model: nn.Module, stats: dict[str, Any]) -> tuple[nn.Module, dict[str, Tensor], dict]:
        """For ``wavesurrogate export``: (the model wrapped in physical units, example inputs by name, the
        sidecar's layout); ExportError for a task without an ONNX form (the default)."""
        from wavesurrogate.errors import ExportError

        raise ExportError(f"task {self.name!r} has no ONNX form yet (export knows the tasks that define "
                          "Task.export)")

    def export_samples(self, f: Any, cases: np.ndarray, stats: dict[str, Any], n: int
                       ) -> list[dict[str, np.ndarray]]:
        """Up to ``n`` inputs of the exported graph (by name, float32, physical units) drawn from ``cases``
        of the open data file ``f``: what int8 calibrates on."""
        return []


@dataclass
class Loaded:
    """The arrays of one data file's training and validation cases, with what the run records of it."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray] | None
    splits: Any
    params: dict[str, np.ndarray]
    coords: dict[str, np.ndarray]
    record: dict[str, Any]


def split_file(f: Any, cfg: Any, stats: dict[str, Any] | None) -> tuple[Any, dict[str, list[int]]]:
    """The case splits of open data file ``f`` (test = its split 1) and their lists as stats.json keeps
    them; CheckpointError if they differ from the ``stats`` of a run being resumed."""
    from wavesurrogate.data.windows import split_cases

    d = cfg.data
    n = f.n_cases if d.max_cases is None else min(d.max_cases, f.n_cases)
    splits = split_cases(n, f.split[:n], d.val_fraction, cfg.seed, f.done[:n])
    if len(splits.train) == 0:
        raise DataFileError(f"{d.path}: no finished training cases (split == 0) to train on")
    split_lists = {k: [int(i) for i in v] for k, v in splits._asdict().items()}
    if stats is not None and stats.get("splits") != split_lists:
        raise CheckpointError(f"{d.path}: case splits differ from the run's stats.json (data changed?)")
    return splits, split_lists


def file_geometry(f: Any) -> dict[str, Any]:
    """What ``stats.json`` records of open data file ``f``'s grid and time axis (key ``data``)."""
    out = {"ny": f.ny, "nx": f.nx, "n_frames": f.n_frames, "dt": f.dt, "frame_stride": f.frame_stride,
           "frame_dt": f.frame_dt, "dx": f.dx, "dy": f.dy}
    if f.n_spatial_dims == 3:
        out.update(nz=f.spatial_shape[0], dz=f.spacing[0])
    return out


def load_cases(cfg: Any, stats: dict[str, Any] | None) -> Loaded:
    """Split the data file by case (test = the file's split 1) and load the training and validation cases."""
    from wavesurrogate.data.store import open_data

    with open_data(cfg.data.path) as f:
        splits, split_lists = split_file(f, cfg, stats)
        geometry = file_geometry(f)
        train = f.load_all(splits.train)
        val = f.load_all(splits.val) if len(splits.val) else None
        params, coords = f.params, {"x": f.x, "y": f.y, "t": f.t}
        if f.n_spatial_dims == 3:
            coords["z"] = f.z
    return Loaded(train, val, splits, params, coords, {"data": geometry, "splits": split_lists})
