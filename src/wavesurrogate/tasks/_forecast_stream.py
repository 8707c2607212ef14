"""Streaming training data of the ``forecast`` task (``data.stream``): windows read case by case from a file.

``Forecast.prepare`` hands over here when ``data.stream`` is set. The case splits are those of the in-memory
path (``tasks.base.split_file``); the statistics come from one pass over the training cases
(``data.windows.RunningMeanStd``: the field mean bit-identical to the in-memory one, the rest equal to
float64 rounding, so their float32 roundings, which normalise, agree); ``StreamedWindows`` yields the
very tensors ``ForecastWindows`` yields, reading each case (one HDF5 chunk) when a window needs it and
keeping normalised cases in a bounded LRU cache (``data.stream.CaseCache``) shared by the training and
validation sets. The file is opened lazily in each process (``data.stream.ProcessFile``): the datasets
pickle without it, so DataLoader workers (fork or spawn) each open their own handle.

This module imports nothing of ``tasks.forecast`` (which imports it): the forcing loader is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from wavesurrogate.data.stream import CaseCache, ProcessFile
from wavesurrogate.data.windows import RunningMeanStd, sample_seed
from wavesurrogate.errors import DataFileError
from wavesurrogate.tasks.base import Affine, TrainData, file_geometry, split_file

__all__ = ["StreamedWindows", "prepare_streamed", "stream_stats"]

ForcingLoader = Callable[[Any, Any], tuple[np.ndarray, np.ndarray]]  # (file, cases) → (amp, footprint)


def stream_stats(f: Any, cases: np.ndarray, load_forcing: ForcingLoader | None = None) -> dict[str, Any]:
    """Field and velocity mean/std (and ``forcing_scale`` with ``load_forcing``) of ``cases`` of open file
    ``f``, reading each case once and holding one at a time."""
    field, velocity, scale = RunningMeanStd(), RunningMeanStd(), 0.0
    for k in np.asarray(cases, dtype=np.int64):
        u, c = f.case(int(k))
        field.add(u)
        velocity.add(c)
        if load_forcing is not None:  # max |A·g| of the case, exactly as forecast.forcing_scale takes it
            amp, foot = load_forcing(f, [int(k)])
            if amp.size:
                scale = max(scale, float((np.abs(amp).max(axis=1) * np.abs(foot).reshape(1, -1).max(axis=1))
                                         .max()))
        del u, c
    (fm, fs), (vm, vs) = field.result(), velocity.result()
    stats: dict[str, Any] = {"field_mean": fm, "field_std": fs, "velocity_mean": vm, "velocity_std": vs}
    if load_forcing is not None:
        stats["forcing_scale"] = scale if scale > 0 else 1.0
    return stats


class StreamedWindows(Dataset):
    """``ForecastWindows`` of the file cases ``cases`` (same item ``i``, same tensors), read lazily.

    ``file``: the ``ProcessFile`` of the data file; ``cache``: the LRU cache of normalised cases (key: the
    file's case index); ``load_forcing`` (forcing inputs) rebuilds a case's source term when it is read.
    """

    def __init__(self, file: ProcessFile, cases: np.ndarray, n_frames: int, n_in: int, n_out: int,
                 stats: Mapping[str, Any], stride: int = 1, *, cache: CaseCache,
                 load_forcing: ForcingLoader | None = None, unroll: tuple[int, ...] = (1,),
                 stage_epochs: int = 1, noise_std: float = 0.0, seed: int = 0) -> None:
        if n_in < 1 or n_out < 1 or stride < 1 or min(unroll) < 1 or stage_epochs < 1:
            raise ValueError("n_in, n_out, stride, unroll and stage_epochs must be >= 1")
        need = n_in + max(unroll) * n_out
        if n_frames < need:
            times = " · max(unroll)" if max(unroll) > 1 else ""
            raise DataFileError(f"cases have {n_frames} frames, fewer than n_in + n_out{times} = {need}")
        self.file, self.cases, self.cache = file, np.asarray(cases, dtype=np.int64), cache
        self.n_in, self.n_out, self.stride, self.n_frames = n_in, n_out, stride, n_frames
        self.unroll, self.stage_epochs = tuple(unroll), stage_epochs
        self.noise_std, self.seed = noise_std, seed
        self.field = Affine(float(stats["field_mean"]), float(stats["field_std"]))
        self.velocity = Affine(float(stats["velocity_mean"]), float(stats["velocity_std"]))
        self.load_forcing = load_forcing
        self.forcing_scale = float(stats["forcing_scale"]) if load_forcing is not None else None
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Select the curriculum stage of 0-based ``epoch`` (the loop calls this before each epoch)."""
        self.epoch = epoch
        self.steps = self.unroll[min(epoch // self.stage_epochs, len(self.unroll) - 1)]
        self.per_case = (self.n_frames - self.n_in - self.steps * self.n_out) // self.stride + 1

    def __len__(self) -> int:
        return len(self.cases) * self.per_case

    def _load(self, case: int) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor] | None]:
        f = self.file.get()
        u, c = f.case(case)  # one chunk, checksum-verified
        forcing = None
        if self.load_forcing is not None:
            amp, foot = self.load_forcing(f, [case])
            forcing = (torch.from_numpy(amp[0] / self.forcing_scale).float(),
                       torch.from_numpy(foot[0]).float())
        return self.field.encode(u), self.velocity.encode(c), forcing

    def case(self, c: int) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor] | None]:
        """(normalised fields [frame, y, x], velocity [y, x], forcing (amplitude/scale [frame],
        footprint [y, x]) or None) of the ``c``-th case of this split, from the cache or the file."""
        k = int(self.cases[c])
        return self.cache.get(k, lambda: self._load(k))

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(i)
        c, t0 = i // self.per_case, self.stride * (i % self.per_case)
        t1, t2 = t0 + self.n_in, t0 + self.n_in + self.steps * self.n_out
        fields, velocity, forcing = self.case(c)
        frames = fields[t0:t1]
        if self.noise_std > 0:
            gen = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, i))
            frames = frames + self.noise_std * torch.randn(frames.shape, generator=gen)
        parts = [frames, velocity[None]]
        if forcing is not None:
            parts.append(forcing[0][t1:t2, None, None] * forcing[1][None])
        return torch.cat(parts, dim=0), fields[t1:t2]


def prepare_streamed(cfg: Any, stats: dict[str, Any] | None, run: dict[str, Any],
                     load_forcing: ForcingLoader) -> TrainData:
    """The forecast task's ``TrainData`` with streamed datasets (``run``: the task's keys of stats.json)."""
    from wavesurrogate.data.store import open_data

    d, r = cfg.data, cfg.rollout
    forcing = load_forcing if "forcing" in d.inputs else None
    with open_data(d.path) as f:
        splits, split_lists = split_file(f, cfg, stats)
        record = {"data": file_geometry(f), "splits": split_lists}
        if stats is None:
            stats = stream_stats(f, splits.train, forcing)
        n_frames = f.n_frames
    stats = {**stats, **run, **record}
    file, cache = ProcessFile(d.path), CaseCache(int(d.stream.cache_mb * 2**20))
    train = StreamedWindows(file, splits.train, n_frames, d.n_in, d.n_out, stats, d.window_stride,
                            cache=cache, load_forcing=forcing, unroll=tuple(r.unroll),
                            stage_epochs=r.stage_epochs, noise_std=r.noise_std, seed=cfg.seed)
    val = None if not len(splits.val) else StreamedWindows(  # validated at the last stage's horizon
        file, splits.val, n_frames, d.n_in, d.n_out, stats, d.window_stride, cache=cache,
        load_forcing=forcing, unroll=(r.unroll[-1],))
    return TrainData(train, val, stats)
