"""The ``geometry`` constructor argument of models with ``capabilities = {"geometry": True}``.

A task passes such a model ``geometry: dict`` with exactly the keys

- ``coord_min``, ``coord_max``: ``[x, y, t]`` (m, m, s), the physical values of the scaled coordinate -1
  and +1;
- ``source_params``: ``[i_x, i_y]``, the indices of the source x and y (in metres) within the parameters;
- ``param_mean``, ``param_std``: the normalisation of the parameters, ``p_norm = (p - mean) / std``;
- ``c_ref_mps``: the reference wave speed of the data; ``f_max_hz``: the highest frequency of the source.

:func:`parse_geometry` validates it (``ConfigError``, one line naming the field) into a :class:`Geometry`,
which maps normalised parameters to the source position in the scaled frame and physical quantities to scaled
units. This module is plain arithmetic: it knows no file, task or solver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from wavesurrogate.errors import ConfigError

__all__ = ["GEOMETRY_KEYS", "Geometry", "parse_geometry", "pulse_sigma_m"]

GEOMETRY_KEYS = (
    "coord_min", "coord_max", "source_params", "param_mean", "param_std", "c_ref_mps", "f_max_hz"
)


def _numbers(geometry: dict[str, Any], key: str, n: int | None = None) -> tuple[float, ...]:
    """``geometry[key]`` as a tuple of finite floats (of length ``n`` if given); ConfigError otherwise."""
    value = geometry[key]
    ok = isinstance(value, list | tuple) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not ok or (n is not None and len(value) != n) or not value:
        want = f"a list of {n} finite numbers" if n is not None else "a non-empty list of finite numbers"
        raise ConfigError(f"model.geometry.{key}: expected {want}, got {value!r}")
    return tuple(float(v) for v in value)


def _positive(geometry: dict[str, Any], key: str) -> float:
    value = geometry[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        raise ConfigError(f"model.geometry.{key}: expected a positive finite number, got {value!r}")
    return float(value)


def pulse_sigma_m(c_ref_mps: float, f_max_hz: float) -> float:
    """Width σ (m) of the initial pulse ``exp(-r²/σ²)`` as Borrel-Jensen et al.'s code:
    ``c / (π f_max / 2)``."""
    return c_ref_mps / (math.pi * f_max_hz / 2.0)


@dataclass(frozen=True)
class Geometry:
    """A validated geometry dict (see the module docstring); all lengths in m, times in s."""

    coord_min: tuple[float, float, float]
    coord_max: tuple[float, float, float]
    source_params: tuple[int, int]
    param_mean: tuple[float, ...]
    param_std: tuple[float, ...]
    c_ref_mps: float
    f_max_hz: float

    @property
    def half_extent(self) -> tuple[float, float, float]:
        """Physical size of one scaled unit along x, y (m) and t (s): ``(max - min) / 2``."""
        return tuple((b - a) / 2.0 for a, b in zip(self.coord_min, self.coord_max, strict=True))  # type: ignore[return-value]

    def to_scaled(self, value: float, axis: int) -> float:
        """A physical length (axis 0, 1: m) or duration (axis 2: s) in scaled units."""
        return value / self.half_extent[axis]

    def source_affine(self) -> tuple[Tensor, Tensor]:
        """``(scale [2], offset [2])`` (float64) with source (x, y) scaled
        ``= p_norm[source_params] * scale + offset``."""
        scale, offset = [], []
        for axis, i in enumerate(self.source_params):
            h = self.half_extent[axis]
            scale.append(self.param_std[i] / h)
            offset.append((self.param_mean[i] - self.coord_min[axis]) / h - 1.0)
        return torch.tensor(scale, dtype=torch.float64), torch.tensor(offset, dtype=torch.float64)

    def source_m(self, params: Tensor) -> Tensor:
        """Source (x, y) in metres ``[..., 2]`` from normalised params ``[..., P]``."""
        i = list(self.source_params)
        std = params.new_tensor([self.param_std[k] for k in i])
        mean = params.new_tensor([self.param_mean[k] for k in i])
        return params[..., i] * std + mean

    def source_scaled(self, params: Tensor) -> Tensor:
        """Source (x, y) in the scaled frame ``[..., 2]`` from normalised params ``[..., P]``."""
        scale, offset = self.source_affine()
        return params[..., list(self.source_params)] * scale.to(params) + offset.to(params)

    def physical_frequencies(self, n_fourier: int, scale: float | list[float] = 1.0) -> Tensor:
        """Frequency matrix ``[n_fourier, 3]`` (cycles per scaled unit) of Borrel-Jensen et al.'s features.

        ``n_fourier / 3`` physical frequencies ``f_j = f_max / (2 j)``, j = 1, 2, ... (the paper: f_max/2, /4,
        /6 for ``n_fourier = 9``), wavenumbers ``k_j = f_j / c_ref`` (cycles per metre) on x, y and on
        ``c_ref t`` (time in metres), each feature along one axis; in scaled units ``k_j · half-extent``
        (x, y) and ``f_j · half-extent_t`` (t). ``scale`` (one number or one per axis) multiplies them.
        """
        if n_fourier < 3 or n_fourier % 3:
            raise ConfigError(
                "model.n_fourier: 'physical' features need a positive multiple of 3 (paper: 9), "
                f"got {n_fourier}"
            )
        scales = [float(scale)] * 3 if isinstance(scale, int | float) else [float(s) for s in scale]
        if len(scales) != 3 or not all(s > 0 and math.isfinite(s) for s in scales):
            raise ConfigError(f"model.fourier_scale: expected one positive number or three, got {scale!r}")
        k = n_fourier // 3
        f = torch.tensor([self.f_max_hz / (2.0 * j) for j in range(1, k + 1)], dtype=torch.float64)
        hx, hy, ht = self.half_extent
        per_axis = (
            f / self.c_ref_mps * hx,
            f / self.c_ref_mps * hy,
            f / self.c_ref_mps * (self.c_ref_mps * ht),
        )
        b = torch.zeros(n_fourier, 3, dtype=torch.float64)
        for axis in range(3):
            b[axis * k : (axis + 1) * k, axis] = per_axis[axis] * scales[axis]
        return b.to(torch.float32)

    def pulse_grid(self, ppw: float = 2.0) -> tuple[Tensor, Tensor]:
        """Sensor coordinates x ``[nx]``, y ``[ny]`` (m, float64): a regular grid over the domain with spacing
        at most ``c_ref / (ppw · f_max)`` (``ppw`` points per shortest wavelength), ends included."""
        if isinstance(ppw, bool) or not isinstance(ppw, int | float) or not (math.isfinite(ppw) and ppw > 0):
            raise ConfigError(f"model.pulse_ppw: expected a positive number, got {ppw!r}")
        dx = self.c_ref_mps / (ppw * self.f_max_hz)
        axes = []
        for axis in range(2):
            lo, hi = self.coord_min[axis], self.coord_max[axis]
            n = math.ceil((hi - lo) / dx - 1e-9) + 1
            axes.append(torch.linspace(lo, hi, n, dtype=torch.float64))
        return axes[0], axes[1]

    def pulse(self, params: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """The initial pulse ``exp(-r²/σ²)`` centred on each source, on the grid x ``[nx]``, y ``[ny]`` (m) →
        ``[..., ny * nx]`` (row-major, y then x), σ = :func:`pulse_sigma_m`."""
        src = self.source_m(params)
        sigma = pulse_sigma_m(self.c_ref_mps, self.f_max_hz)
        dx = (x.to(params) - src[..., 0:1]) / sigma  # [..., nx]
        dy = (y.to(params) - src[..., 1:2]) / sigma  # [..., ny]
        return torch.exp(-(dy.unsqueeze(-1) ** 2 + dx.unsqueeze(-2) ** 2)).flatten(-2)


def parse_geometry(geometry: Any, n_params: int | None = None) -> Geometry:
    """Validate a geometry dict (module docstring) into a :class:`Geometry`; ConfigError (one line) if not."""
    if not isinstance(geometry, dict):
        raise ConfigError(f"model.geometry: expected a mapping with keys {', '.join(GEOMETRY_KEYS)}, got "
                          f"{type(geometry).__name__} (the task supplies it)")
    missing = [k for k in GEOMETRY_KEYS if k not in geometry]
    unknown = sorted(set(geometry) - set(GEOMETRY_KEYS))
    if missing or unknown:
        raise ConfigError(f"model.geometry: missing keys {missing}, unknown keys {unknown}; "
                          f"expected {', '.join(GEOMETRY_KEYS)}")
    lo, hi = _numbers(geometry, "coord_min", 3), _numbers(geometry, "coord_max", 3)
    if not all(b > a for a, b in zip(lo, hi, strict=True)):
        raise ConfigError(f"model.geometry.coord_max: must exceed coord_min on every axis, got {hi} vs {lo}")
    mean, std = _numbers(geometry, "param_mean"), _numbers(geometry, "param_std")
    if len(std) != len(mean) or not all(s > 0 for s in std):
        raise ConfigError(f"model.geometry.param_std: expected {len(mean)} positive numbers, got {list(std)}")
    if n_params is not None and len(mean) != n_params:
        raise ConfigError(
            f"model.geometry.param_mean: has {len(mean)} entries, the model takes {n_params} params"
        )
    src = geometry["source_params"]
    ok = isinstance(src, list | tuple) and len(src) == 2 and all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(mean) for i in src
    )
    if not ok or src[0] == src[1]:
        raise ConfigError(f"model.geometry.source_params: expected two distinct indices in [0, {len(mean)}), "
                          f"got {src!r}")
    return Geometry(lo, hi, (int(src[0]), int(src[1])), mean, std,  # type: ignore[arg-type]
                    _positive(geometry, "c_ref_mps"), _positive(geometry, "f_max_hz"))
