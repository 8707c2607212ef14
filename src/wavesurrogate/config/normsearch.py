"""Config of the norm–activation search (``wavesurrogate normsearch CONFIG``; ``apps/normsearch.py``).

A minimal config::

    work: runs/normsearch
    data: {path: data.h5, n_in: 4, n_out: 1, window_stride: 4, val_fraction: 0.2}
    archs:
      - {label: dense, model: cnn2d, kwargs: {n_in: 4, n_out: 1, width: 8, depth: 2}, lr: 3.0e-3}
      - {label: cp, model: cnn2d, kwargs: {..., conv: {format: cp, rank: 4}}, lr: 1.0e-2}
      - {label: unet, model: unet2d, kwargs: {n_in: 4, n_out: 1, width: 8, depth: 2}, lr: 3.0e-3}
    candidates: 200
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from wavesurrogate.config.base import Strict, load_config

__all__ = ["SearchArch", "QualityGate", "StabilityGate", "NormSearchConfig", "load_normsearch_config"]


class SearchArch(Strict):
    """One architecture of the fitness: a registered frames model, its kwargs (without ``norm``), its rate."""

    label: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    model: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    lr: float = Field(gt=0.0)


class QualityGate(Strict):
    """Short training on the first architecture; a candidate whose validation loss exceeds ``max_ratio`` ×
    GroupNorm+GELU's after the same training is rejected."""

    epochs: int = Field(1, ge=1)
    max_ratio: float = Field(1.5, gt=0.0)


class StabilityGate(Strict):
    """Short training on the first architecture at ``lr_factor`` × its rate without gradient clipping; a
    candidate whose loss becomes non-finite, or whose last epoch's mean step loss exceeds ``max_ratio`` ×
    GroupNorm+GELU's under the same rate, is rejected (unstable). Relative, because at a large rate even the
    reference may end above its first step's loss (it did at 10× on the 32² forecast: 0.92 vs 0.79)."""

    epochs: int = Field(1, ge=1)
    lr_factor: float = Field(30.0, gt=1.0)
    max_ratio: float = Field(2.0, gt=0.0)


class NormSearchConfig(Strict):
    """Tournament evolution of norm–activation graphs, fitness over several forecast architectures."""

    name: str = "normsearch"
    seed: int = 0
    work: str = Field(description="directory of the search state and its training runs")
    task: str = Field("forecast", description="the task every candidate trains on (frames models: forecast)")
    data: dict[str, Any] = Field(description="the data section of a training config, without its task")
    archs: list[SearchArch] = Field(min_length=1)
    candidates: int = Field(ge=1, description="candidates evaluated in total, the built-in seeds included")
    seeds: list[str] = Field(["gn_gelu", "none_gelu", "evonorm_b0", "evonorm_s0", "identity"], min_length=1,
                             description="built-in layers evaluated first (the first is the reference: "
                                         "gn_gelu)")
    population: int = Field(16, ge=2, description="the newest accepted candidates tournaments draw from")
    tournament: int = Field(4, ge=2)
    epochs: int = Field(2, ge=1, description="training epochs per architecture for the fitness")
    batch_size: int = Field(16, ge=1)
    max_nodes: int = Field(24, ge=1)
    quality: QualityGate = QualityGate()
    stability: StabilityGate = StabilityGate()
    num_threads: int | None = Field(1, ge=1)

    @field_validator("seeds")
    @classmethod
    def _reference_first(cls, v: list[str]) -> list[str]:
        from wavesurrogate.nn.layers.normact import BUILTIN

        if v[0] != "gn_gelu" or any(s not in BUILTIN for s in v) or len(set(v)) != len(v):
            raise ValueError(f"distinct built-in names ({', '.join(BUILTIN)}), gn_gelu first; got {v}")
        return v


def load_normsearch_config(path: str) -> NormSearchConfig:
    """Read and validate a search config (one-line ConfigError on failure)."""
    return load_config(path, NormSearchConfig)
