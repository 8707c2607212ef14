"""The ``geometry`` constructor argument of models with ``capabilities = {"geometry": True}``.

A task passes such a model ``geometry: dict`` with exactly the keys

- ``coord_min``, ``coord_max``: ``[x, y, t]`` (m, m, s) in 2-D or ``[x, y, z, t]`` in 3-D, the physical
  values of the scaled coordinate -1 and +1 (their length fixes the number of spatial dimensions n);
- ``source_params``: ``[i_x, i_y]`` (3-D: ``[i_x, i_y, i_z]``), the indices of the source coordinates (in
  metres) within the parameters;
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

    coord_min: tuple[float, ...]
    coord_max: tuple[float, ...]
    source_params: tuple[int, ...]
    param_mean: tuple[float, ...]
    param_std: tuple[float, ...]
    c_ref_mps: float
    f_max_hz: float

    @property
    def n_dims(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return len(self.coord_min) - 1

    @property
    def half_extent(self) -> tuple[float, ...]:
        """Physical size of one scaled unit along x, y (, z) (m) and t (s): ``(max - min) / 2``."""
        return tuple((b - a) / 2.0 for a, b in zip(self.coord_min, self.coord_max, strict=True))  # type: ignore[return-value]

    def to_scaled(self, value: float, axis: int) -> float:
        """A physical length (spatial axes: m) or duration (the last axis: s) in scaled units."""
        return value / self.half_extent[axis]

    def source_affine(self) -> tuple[Tensor, Tensor]:
        """``(scale [n], offset [n])`` (float64) with the source position scaled
        ``= p_norm[source_params] * scale + offset``."""
        scale, offset = [], []
        for axis, i in enumerate(self.source_params):
            h = self.half_extent[axis]
            scale.append(self.param_std[i] / h)
            offset.append((self.param_mean[i] - self.coord_min[axis]) / h - 1.0)
        return torch.tensor(scale, dtype=torch.float64), torch.tensor(offset, dtype=torch.float64)

    def source_m(self, params: Tensor) -> Tensor:
        """Source position in metres ``[..., n]`` from normalised params ``[..., P]``."""
        i = list(self.source_params)
        std = params.new_tensor([self.param_std[k] for k in i])
        mean = params.new_tensor([self.param_mean[k] for k in i])
        return params[..., i] * std + mean

    def source_scaled(self, params: Tensor) -> Tensor:
        """Source position in the scaled frame ``[..., n]`` from normalised params ``[..., P]``."""
        scale, offset = self.source_affine()
        return params[..., list(self.source_params)] * scale.to(params) + offset.to(params)

    def physical_frequencies(self, n_fourier: int, scale: float | list[float] = 1.0) -> Tensor:
        """Frequency matrix ``[n_fourier, n + 1]`` (cycles per scaled unit) of Borrel-Jensen et al.'s
        features.

        ``n_fourier / (n + 1)`` physical frequencies ``f_j = f_max / (2 j)``, j = 1, 2, ... (the paper:
        f_max/2, /4, /6 for ``n_fourier = 9`` in 2-D), wavenumbers ``k_j = f_j / c_ref`` (cycles per metre) on
        each spatial axis and on ``c_ref t`` (time in metres), each feature along one axis; in scaled units
        ``k_j · half-extent`` (space) and ``f_j · half-extent_t`` (t). ``scale`` (one number or one per axis)
        multiplies them.
        """
        d = self.n_dims + 1
        if n_fourier < d or n_fourier % d:
            raise ConfigError(
                f"model.n_fourier: 'physical' features need a positive multiple of {d} (paper: 9 in 2-D), "
                f"got {n_fourier}"
            )
        scales = [float(scale)] * d if isinstance(scale, int | float) else [float(s) for s in scale]
        if len(scales) != d or not all(s > 0 and math.isfinite(s) for s in scales):
            raise ConfigError(f"model.fourier_scale: expected one positive number or {d}, got {scale!r}")
        k = n_fourier // d
        f = torch.tensor([self.f_max_hz / (2.0 * j) for j in range(1, k + 1)], dtype=torch.float64)
        *hs, ht = self.half_extent
        per_axis = (*(f / self.c_ref_mps * h for h in hs), f / self.c_ref_mps * (self.c_ref_mps * ht))
        b = torch.zeros(n_fourier, d, dtype=torch.float64)
        for axis in range(d):
            b[axis * k : (axis + 1) * k, axis] = per_axis[axis] * scales[axis]
        return b.to(torch.float32)

    def pulse_grid(self, ppw: float = 2.0) -> tuple[Tensor, Tensor]:
        """Sensor coordinates x ``[nx]``, y ``[ny]`` (m, float64): a regular grid over the domain with spacing
        at most ``c_ref / (ppw · f_max)`` (``ppw`` points per shortest wavelength), ends included."""
        if isinstance(ppw, bool) or not isinstance(ppw, int | float) or not (math.isfinite(ppw) and ppw > 0):
            raise ConfigError(f"model.pulse_ppw: expected a positive number, got {ppw!r}")
        if self.n_dims != 2:
            raise ConfigError(f"model.branch_input: the 'pulse' branch is 2-D only, the data is "
                              f"{self.n_dims}-D")
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
    lo = _numbers(geometry, "coord_min")
    if len(lo) not in (3, 4):
        raise ConfigError(f"model.geometry.coord_min: expected [x, y, t] or [x, y, z, t], got {list(lo)}")
    hi = _numbers(geometry, "coord_max", len(lo))
    n_dims = len(lo) - 1
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
    ok = isinstance(src, list | tuple) and len(src) == n_dims and all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(mean) for i in src
    )
    if not ok or len(set(src)) != len(src):
        raise ConfigError(f"model.geometry.source_params: expected {n_dims} distinct indices in "
                          f"[0, {len(mean)}), got {src!r}")
    return Geometry(lo, hi, tuple(int(i) for i in src), mean, std,
                    _positive(geometry, "c_ref_mps"), _positive(geometry, "f_max_hz"))
