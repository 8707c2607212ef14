"""Case splits and normalisation statistics, from arrays of cases (the tasks build their datasets on them).

Independent of the file layer: everything takes in-memory arrays in the axis order ``[case, frame, y, x]``.
Splits are by case, so frames of one case never land in two splits; the test split is the file's own
(``split == 1``: held-out source positions and media chosen by the campaign).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from wavesurrogate.errors import DataFileError

__all__ = [
    "Splits",
    "split_cases",
    "compute_stats",
    "RunningMeanStd",
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


class RunningMeanStd:
    """Mean and population std of chunks seen one at a time (one pass; memory: three numbers per chunk).

    The mean sums each chunk's float64 sum in order, exactly as ``_mean_std`` does, so fed the same chunks
    it is bit-identical; the variance combines each chunk's own sum of squared deviations (Chan et al.),
    equal to ``_mean_std``'s two-pass value up to float64 rounding. A zero std is reported as 1.
    """

    def __init__(self) -> None:
        self.n, self.total = 0, 0
        self.parts: list[tuple[int, float, float]] = []

    def add(self, chunk: np.ndarray) -> None:
        """Account for every element of ``chunk``."""
        c = np.asarray(chunk)
        if not c.size:
            return
        s = float(np.sum(c, dtype=np.float64))
        m = s / c.size
        self.parts.append((c.size, m, float(np.sum((c.astype(np.float64) - m) ** 2))))
        self.n, self.total = self.n + c.size, self.total + s

    def result(self) -> tuple[float, float]:
        """(mean, std) of everything added; DataFileError if nothing was."""
        if self.n == 0:
            raise DataFileError("cannot compute normalisation statistics: the training split is empty")
        mean = self.total / self.n
        var = sum(m2 + k * (m - mean) ** 2 for k, m, m2 in self.parts) / self.n
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
    ``coord_max`` (used to scale coordinates to [-1, 1]; with "z": [x, y, z, t]). A zero std is stored as 1.
    """
    fields = np.asarray(fields)
    if fields.ndim not in (4, 5):
        raise DataFileError(f"fields must be [case, frame, (z,) y, x], got shape {fields.shape}")
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
        keys = ("x", "y", "z", "t") if "z" in coords else ("x", "y", "t")
        stats["coord_min"] = [float(np.min(coords[k])) for k in keys]
        stats["coord_max"] = [float(np.max(coords[k])) for k in keys]
    return stats


def scale_axis(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``[lo, hi]`` affinely onto [-1, 1] (a flat axis, ``hi == lo``, maps to 0)."""
    values = np.asarray(values, np.float64)
    if hi > lo:
        return 2.0 * (values - lo) / (hi - lo) - 1.0
    return np.zeros_like(values)
