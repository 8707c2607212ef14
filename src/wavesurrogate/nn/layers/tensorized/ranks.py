"""Kernel formats' closed forms: rank rules, parameter counts and factor init variances (no tensors)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from wavesurrogate.errors import ConfigError

FORMATS = ("dense", "cp", "separable", "tucker")

__all__ = ["FORMATS", "count_parameters", "cp_rank_for_fraction", "cp_rank_for_params",
           "default_kernel_variance", "factor_variances", "resolve_rank"]


def _tuple(value: int | Sequence[int], dim: int, name: str) -> tuple[int, ...]:
    """``value`` as a ``dim``-tuple of ints (ConfigError if the length is wrong)."""
    if isinstance(value, int):
        return (value,) * dim
    out = tuple(int(v) for v in value)
    if len(out) != dim:
        raise ConfigError(f"conv.{name}: expected {dim} values, got {len(out)}")
    return out


def default_kernel_variance(fan_in: int) -> float:
    """Variance of PyTorch's default conv weight, kaiming_uniform(a=sqrt(5)): 1/(3 fan_in)."""
    return 1.0 / (3.0 * fan_in)


def resolve_rank(
    format: str, rank: Any, in_channels: int, out_channels: int, kernel_size: Sequence[int]
) -> int | tuple[int, ...] | None:
    """Validated rank: None (dense), int R (cp, separable) or tuple (R_o, R_i, *R_d) (tucker)."""
    if format not in FORMATS:
        raise ConfigError(f"conv.format: unknown format {format!r}; known: {', '.join(FORMATS)}")
    if format == "dense":
        return None
    if format == "tucker":
        if isinstance(rank, int | float) and not isinstance(rank, bool):
            r = int(rank)
            ranks: tuple[int, ...] = (min(r, out_channels), min(r, in_channels), *kernel_size)
        else:
            ranks = tuple(int(v) for v in rank)
            if len(ranks) != 2 + len(kernel_size):
                raise ConfigError(
                    f"conv.rank: tucker needs an int or {2 + len(kernel_size)} ranks, got {rank!r}"
                )
        if min(ranks) < 1:
            raise ConfigError(f"conv.rank: tucker ranks must be >= 1, got {ranks}")
        return ranks
    if format == "cp" and isinstance(rank, float) and not isinstance(rank, bool):
        if not 0.0 < rank < 1.0:  # 1.0 would read as "rank 1" to a human: ints are ranks, floats shares
            raise ConfigError(f"conv.rank: a cp rank fraction must lie in (0, 1), got {rank!r}")
        return cp_rank_for_fraction(rank, in_channels, out_channels, kernel_size)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"conv.rank: {format} needs a positive int rank, got {rank!r}")
    return rank


def cp_rank_for_params(
    layer_params: int, in_channels: int, out_channels: int, kernel_size: Sequence[int]
) -> int:
    """The largest CP rank whose factors hold at most ``layer_params`` numbers (at least 1).

    With one ``layer_params`` for every layer of a network, each layer gets the same factor budget: a narrow
    full-resolution layer gets a large rank (possibly above its channel counts: more distinct one-way filter
    pairs), a wide coarse one a small rank. On the next-frame data this allocation beat one rank for all
    layers at the same total parameters (docs/tensorized.md).
    """
    return max(1, layer_params // (in_channels + out_channels + sum(kernel_size)))


def cp_rank_for_fraction(
    fraction: float, in_channels: int, out_channels: int, kernel_size: Sequence[int]
) -> int:
    """The largest CP rank whose factors hold at most ``fraction`` (in (0, 1)) of the dense kernel's weights
    (at least 1).

    ``rank: 0.1`` thus compresses every layer by about 10x: wide layers get large ranks, narrow ones small,
    where one int rank for all layers would starve the widest layers and over-serve the narrowest.
    """
    dense = in_channels * out_channels * math.prod(kernel_size)
    per_rank = in_channels + out_channels + sum(kernel_size)
    return max(1, math.floor(fraction * dense / per_rank + 1e-9))


def count_parameters(
    format: str, in_channels: int, out_channels: int, kernel_size: Sequence[int], rank: Any = None,
    bias: bool = True,
) -> int:  # fmt: skip
    """Closed-form number of trainable parameters of a conv layer in ``format`` (see the module docstring)."""
    k = tuple(kernel_size)
    r = resolve_rank(format, rank, in_channels, out_channels, k)
    if format == "dense":
        n = out_channels * in_channels * math.prod(k)
    elif format == "cp":
        assert isinstance(r, int)
        n = r * (out_channels + in_channels + sum(k))
    elif format == "separable":
        assert isinstance(r, int)
        n = out_channels * in_channels * r * sum(k)
    else:
        assert isinstance(r, tuple)
        spatial = sum(kd * rd for kd, rd in zip(k, r[2:], strict=True))
        n = math.prod(r) + out_channels * r[0] + in_channels * r[1] + spatial
    return n + (out_channels if bias else 0)


def factor_variances(
    format: str, in_channels: int, out_channels: int, kernel_size: Sequence[int], rank: Any = None
) -> dict[str, float]:
    """Per-factor init variances making ``Var W = 1/(3 fan_in)`` exactly (independent zero-mean factors).

    cp: ``Var B = 1/in``, ``Var Y_d = 1/k_d``, ``Var A = 1/(3R)``; then
    ``Var W = R * prod = 1/(3 in prod k_d)``,
    and every stage (1x1 in->R, 1-D filters, 1x1 R->out) keeps the signal variance like a default-init conv.
    separable: all ``n = dim`` factors share ``s^2 = (v/R)^(1/n)``; ``Var W = R s^(2n) = v``.
    tucker: ``Var U_i = 1/in``, ``Var U_d = 1/k_d``, ``Var U_o = 1/R_o``, ``Var G = 1/(3 R_i prod R_d)``; then
    ``Var W = R_o R_i prod(R_d) * prod(variances) = v``.
    """
    k = tuple(kernel_size)
    r = resolve_rank(format, rank, in_channels, out_channels, k)
    v = default_kernel_variance(in_channels * math.prod(k))
    if format == "dense":
        return {"weight": v}
    if format == "cp":
        assert isinstance(r, int)
        out = {"out_factor": 1.0 / (3.0 * r), "in_factor": 1.0 / in_channels}
        out.update({f"spatial_factors.{d}": 1.0 / kd for d, kd in enumerate(k)})
        return out
    if format == "separable":
        assert isinstance(r, int)
        return {f"factors.{d}": (v / r) ** (1.0 / len(k)) for d in range(len(k))}
    assert isinstance(r, tuple)
    out = {
        "core": 1.0 / (3.0 * r[1] * math.prod(r[2:])),
        "out_factor": 1.0 / r[0],
        "in_factor": 1.0 / in_channels,
    }
    out.update({f"spatial_factors.{d}": 1.0 / kd for d, kd in enumerate(k)})
    return out

