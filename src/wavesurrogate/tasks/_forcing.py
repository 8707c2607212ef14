"""The forecast task's forcing input: the source term per frame interval of a data file's cases
(``load_forcing``), its scale, the normalised forcing channels and when each case's source stops. A private
helper of ``tasks/forecast.py`` (discovery skips ``_`` modules)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from wavesurrogate.errors import DataFileError

__all__ = ["forcing_kind", "load_forcing", "forcing_scale", "forcing_channels", "source_info", "SOURCE_OFF"]

SOURCE_OFF = 1e-3  # the source has stopped once its per-frame amplitude stays below this share of its peak


def forcing_kind(stats: Mapping[str, Any]) -> str:
    """The run's forcing kind (``physics.sources.frame_forcing``): ``interval`` unless stats say otherwise."""
    return str(stats.get("forcing_kind", "interval"))


def load_forcing(f: Any, cases: Any, n_frames: int | None = None,
                 kind: str = "interval") -> tuple[np.ndarray, np.ndarray]:
    """(amplitude [case, frame], footprint [case, y, x]) float64 of the source term per frame of ``cases``
    of data file ``f`` (``physics.sources.frame_forcing`` of ``f.problem(case)`` of that ``kind``, cropped to
    a stored window); DataFileError (one line) if the file cannot rebuild its problems."""
    from wavesurrogate.physics.sources import frame_forcing

    if f.n_spatial_dims != 2:
        raise DataFileError(f"{f.path}: forcing inputs need a 2-D file, it has {f.n_spatial_dims} dimensions")
    n = f.n_frames if n_frames is None else n_frames
    amps, feet = [], []
    for case in np.asarray(cases, dtype=np.int64).reshape(-1):
        try:
            amp, foot = frame_forcing(f.problem(int(case)), n, kind)
        except DataFileError as exc:
            raise DataFileError(f"forcing inputs need the campaign config of the data file ({exc})") from None
        ij0 = f.attrs.get("window_ij0")
        if ij0 is not None:
            foot = foot[ij0[0] : ij0[0] + f.ny, ij0[1] : ij0[1] + f.nx]
        amps.append(amp)
        feet.append(foot)
    shape = (0, *f.spatial_shape)
    return (np.array(amps, dtype=np.float64).reshape(-1, n),
            np.array(feet, dtype=np.float64).reshape(-1, *shape[1:]) if feet else np.zeros(shape))


def forcing_scale(forcing: tuple[np.ndarray, np.ndarray]) -> float:
    """max |amplitude · footprint| over the cases (1 if all zero): forcing channels then lie in [-1, 1]."""
    amp, foot = forcing
    if not amp.size:
        return 1.0
    m = float((np.abs(amp).max(axis=1) * np.abs(foot).reshape(len(foot), -1).max(axis=1)).max())
    return m if m > 0 else 1.0


def forcing_channels(forcing: tuple[np.ndarray, np.ndarray], stats: Mapping[str, Any], first: int,
                     end: int) -> Tensor:
    """Normalised forcing ``[case, end − first, y, x]`` float32 of frames ``first .. end − 1``."""
    amp = torch.from_numpy(forcing[0][:, first:end] / float(stats["forcing_scale"])).float()
    return amp[:, :, None, None] * torch.from_numpy(forcing[1]).float()[:, None]


def source_info(f: Any, cases: np.ndarray, n_frames: int,
                kind: str = "interval") -> tuple[np.ndarray, np.ndarray, list[int]] | None:
    """(amplitude, footprint, frame from which each case's source is off) of ``cases``; None when the
    file cannot rebuild its problems (no campaign config, 3-D)."""
    try:
        amp, foot = load_forcing(f, cases, n_frames, kind)
    except DataFileError:
        return None
    stops = []
    for a in np.abs(amp[:, : f.n_frames]):
        on = np.flatnonzero(a > SOURCE_OFF * a.max()) if a.max() > 0 else np.array([], dtype=int)
        stops.append(int(on[-1]) + 1 if on.size else 0)
    return amp, foot, stops
