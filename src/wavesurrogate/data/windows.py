"""From arrays of cases to torch Datasets: case splits, normalisation statistics, forecast windows, points.

Independent of the file layer: everything takes in-memory arrays in the axis order ``[case, frame, y, x]``.
Splits are by case, so frames of one case never land in two splits; the test split is the file's own
(``split == 1``: held-out source positions and media chosen by the campaign).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from wavesurrogate.errors import DataFileError

__all__ = [
    "Splits",
    "split_cases",
    "compute_stats",
    "ForecastWindows",
    "SourceToFieldPoints",
    "scale_coords",
    "scale_axis",
    "param_matrix",
    "sample_seed",
]

TRAIN, TEST = 0, 1


class Splits(NamedTuple):
    """Case indices (sorted, disjoint) of the training, validation and test splits."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def sample_seed(*parts: int) -> int:
    """A 63-bit seed mixing integers (seed, epoch, case, …) deterministically (splitmix64)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) & 0xFFFFFFFFFFFFFFFF
        h = (h + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def split_cases(
    n_cases: int,
    split: np.ndarray | None,
    val_fraction: float,
    seed: int,
    done: np.ndarray | None = None,
) -> Splits:
    """Train/val/test case indices: test = ``split == 1``; val = a seeded ``val_fraction`` of the rest.

    Unfinished cases (``done == False``) are left out. With ``val_fraction > 0`` and at least two
    training-pool cases, validation gets at least one case and training keeps at least one.
    """
    if n_cases < 0:
        raise ValueError("n_cases must be >= 0")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError("val_fraction must be in [0, 1)")
    split = np.zeros(n_cases, np.uint8) if split is None else np.asarray(split)
    done = np.ones(n_cases, bool) if done is None else np.asarray(done, bool)
    if split.shape != (n_cases,) or done.shape != (n_cases,):
        raise DataFileError(f"split/done arrays must have shape ({n_cases},)")
    bad = ~np.isin(split, (TRAIN, TEST))
    if bad.any():
        raise DataFileError(f"split values must be 0 (train) or 1 (test); case {int(np.argmax(bad))} is not")
    idx = np.arange(n_cases)
    pool = idx[(split == TRAIN) & done]
    test = idx[(split == TEST) & done]
    n_val = int(round(val_fraction * len(pool)))
    if val_fraction > 0 and len(pool) >= 2:
        n_val = min(max(n_val, 1), len(pool) - 1)
    else:
        n_val = min(n_val, max(len(pool) - 1, 0))
    rng = np.random.default_rng(sample_seed(seed, 0x5B1))
    chosen = rng.permutation(len(pool))[:n_val]
    val = np.sort(pool[chosen])
    train = np.setdiff1d(pool, val)
    return Splits(train.astype(np.int64), val.astype(np.int64), np.sort(test).astype(np.int64))


def _mean_std(chunks: Sequence[np.ndarray]) -> tuple[float, float]:
    """Mean and population std over all elements of ``chunks`` (float64 accumulation); std 0 → 1."""
    n = sum(c.size for c in chunks)
    if n == 0:
        raise DataFileError("cannot compute normalisation statistics: the training split is empty")
    mean = sum(float(np.sum(c, dtype=np.float64)) for c in chunks) / n
    var = sum(float(np.sum((c.astype(np.float64) - mean) ** 2)) for c in chunks) / n
    std = float(np.sqrt(var))
    return float(mean), (std if std > 0 and np.isfinite(std) else 1.0)


def param_matrix(params: Mapping[str, np.ndarray], names: Sequence[str], cases: np.ndarray) -> np.ndarray:
    """``[len(cases), len(names)]`` float64 matrix of the named case parameters."""
    missing = [n for n in names if n not in params]
    if missing:
        raise DataFileError(f"data file has no parameter {missing[0]!r}; it has: {', '.join(sorted(params))}")
    if not names:
        return np.zeros((len(cases), 0))
    return np.stack([np.asarray(params[n], np.float64)[cases] for n in names], axis=1)


def compute_stats(
    fields: np.ndarray,
    velocity: np.ndarray | None = None,
    params: Mapping[str, np.ndarray] | None = None,
    param_names: Sequence[str] = (),
    coords: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Normalisation statistics of the *training* cases only (pass only those cases' arrays).

    ``fields`` ``[case, frame, y, x]`` → scalar ``field_mean``/``field_std``; ``velocity`` ``[case, y, x]``
    → ``velocity_mean``/``velocity_std``; ``params`` (already restricted to training cases) → per-name
    ``param_mean``/``param_std`` lists in ``param_names`` order; ``coords`` {"x","y","t"} → ``coord_min``/
    ``coord_max`` (used to scale coordinates to [-1, 1]). A zero std is stored as 1.
    """
    fields = np.asarray(fields)
    if fields.ndim != 4:
        raise DataFileError(f"fields must be [case, frame, y, x], got shape {fields.shape}")
    fm, fs = _mean_std([fields[i] for i in range(fields.shape[0])])
    stats: dict[str, Any] = {"field_mean": fm, "field_std": fs}
    if velocity is not None:
        vm, vs = _mean_std([np.asarray(velocity)])
        stats.update(velocity_mean=vm, velocity_std=vs)
    if params is not None:
        names = list(param_names)
        stats["param_names"] = names
        means, stds = [], []
        for n in names:
            if n not in params:
                raise DataFileError(f"data file has no parameter {n!r}; it has: {', '.join(sorted(params))}")
            m, s = _mean_std([np.asarray(params[n], np.float64)])
            means.append(m)
            stds.append(s)
        stats.update(param_mean=means, param_std=stds)
    if coords is not None:
        stats["coord_min"] = [float(np.min(coords[k])) for k in ("x", "y", "t")]
        stats["coord_max"] = [float(np.max(coords[k])) for k in ("x", "y", "t")]
    return stats


def scale_axis(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``[lo, hi]`` affinely onto [-1, 1] (a flat axis, ``hi == lo``, maps to 0)."""
    values = np.asarray(values, np.float64)
    if hi > lo:
        return 2.0 * (values - lo) / (hi - lo) - 1.0
    return np.zeros_like(values)


def scale_coords(xyt: np.ndarray, stats: Mapping[str, Any]) -> np.ndarray:
    """Physical (x, y, t) ``[..., 3]`` → [-1, 1] per axis using ``coord_min``/``coord_max``."""
    xyt = np.asarray(xyt, np.float64)
    lo, hi = stats["coord_min"], stats["coord_max"]
    return np.stack([scale_axis(xyt[..., k], lo[k], hi[k]) for k in range(3)], axis=-1)


def _normalised(a: np.ndarray, mean: float, std: float) -> np.ndarray:
    """float32 copy of ``(a - mean) / std`` (computed in float32, no float64 temporary of a large array)."""
    out = np.array(a, dtype=np.float32, copy=True)
    out -= np.float32(mean)
    out /= np.float32(std)
    return out


class ForecastWindows(Dataset):
    """Windows of consecutive frames: input = n_in frames + velocity channel, target = next n_out frames.

    ``fields`` ``[case, frame, y, x]`` and ``velocity`` ``[case, y, x]`` hold only this split's cases;
    item ``i`` is ``(x [n_in + 1, y, x], y [n_out, y, x])`` float32, normalised with ``stats``.
    Windows start every ``stride`` frames; window ``i`` is (case ``i // per_case``, start
    ``stride * (i % per_case)``).
    """

    def __init__(
        self,
        fields: np.ndarray,
        velocity: np.ndarray,
        n_in: int,
        n_out: int,
        stats: Mapping[str, Any],
        stride: int = 1,
    ) -> None:
        fields = np.asarray(fields)
        velocity = np.asarray(velocity)
        if fields.ndim != 4 or velocity.shape != (fields.shape[0], *fields.shape[2:]):
            raise DataFileError(f"fields {fields.shape} and velocity {velocity.shape} do not match")
        if n_in < 1 or n_out < 1 or stride < 1:
            raise ValueError("n_in, n_out and stride must be >= 1")
        n_frames = fields.shape[1]
        if n_frames < n_in + n_out:
            raise DataFileError(f"cases have {n_frames} frames, fewer than n_in + n_out = {n_in + n_out}")
        self.n_in, self.n_out, self.stride = n_in, n_out, stride
        self.per_case = (n_frames - n_in - n_out) // stride + 1
        fm, fs = float(stats["field_mean"]), float(stats["field_std"])
        vm, vs = float(stats["velocity_mean"]), float(stats["velocity_std"])
        self.fields = torch.from_numpy(_normalised(fields, fm, fs))
        self.velocity = torch.from_numpy(_normalised(velocity, vm, vs))

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


class SourceToFieldPoints(Dataset):
    """Per case: normalised parameters → field values at (x, y, t) points sampled with a seeded generator.

    Item ``i`` (case ``i`` of this split) is ``(params [P], coords [Q, 3] in [-1, 1], values [Q])``
    float32. Points are drawn uniformly over the grid nodes with a generator seeded by
    (seed, epoch, case), so any process and any resume draws the same points; ``set_epoch`` changes them.
    """

    def __init__(
        self,
        fields: np.ndarray,
        params: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        t: np.ndarray,
        points_per_case: int,
        stats: Mapping[str, Any],
        seed: int,
    ) -> None:
        fields = np.asarray(fields)
        params = np.asarray(params, np.float64)
        if fields.ndim != 4 or fields.shape[1:] != (len(t), len(y), len(x)):
            raise DataFileError(f"fields {fields.shape} != t/y/x lengths {len(t)}/{len(y)}/{len(x)}")
        if params.shape[0] != fields.shape[0]:
            raise DataFileError("params and fields have different numbers of cases")
        if points_per_case < 1:
            raise ValueError("points_per_case must be >= 1")
        fm, fs = float(stats["field_mean"]), float(stats["field_std"])
        pm = np.asarray(stats.get("param_mean", []), np.float64)
        ps = np.asarray(stats.get("param_std", []), np.float64)
        self.values = torch.from_numpy(_normalised(fields, fm, fs))
        self.params = torch.from_numpy(((params - pm) / ps).astype(np.float32))
        lo, hi = stats["coord_min"], stats["coord_max"]
        self.axes = [torch.from_numpy(scale_axis(a, lo[k], hi[k]).astype(np.float32))
                     for k, a in enumerate((x, y, t))]
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

