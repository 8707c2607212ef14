"""Model registry: models register by name; a checkpoint stores (name, kwargs) and rebuilds from files alone.

Contract for every registered model (see docs/architecture.md):
- constructor arguments are JSON-serialisable (numbers, strings, bools, lists, dicts);
- task "forecast": ``forward(x)`` with x float32 ``[batch, n_in + 1, ny, nx]`` (the last n_in frames, then
  the normalised velocity map as one extra channel) returns ``[batch, n_out, ny, nx]``;
- task "source_to_field": ``forward(params, coords)`` with params ``[batch, n_params]`` and coords
  ``[batch, n_points, 3]`` (x, y, t scaled to [-1, 1]) returns ``[batch, n_points]``;
- task "boundary_trace": ``forward(params)`` with params ``[batch, n_params]`` returns
  ``[batch, n_boundary, n_times]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from wavesurrogate.errors import CheckpointError, ConfigError

TASKS = ("forecast", "source_to_field", "boundary_trace")
FRAMES, POINTS, TRACE = "frames", "points", "trace"  # TEMPORARY shim until the registry of branch wt-b
_INTERFACE = dict(zip(TASKS, (FRAMES, POINTS, TRACE), strict=True))


@dataclass(frozen=True)
class Entry:
    """One registered model class and the task it solves."""

    name: str
    cls: type[nn.Module]
    task: str

    @property
    def interface(self) -> str:
        """TEMPORARY shim."""
        return _INTERFACE[self.task]

    @property
    def version(self) -> int:
        """TEMPORARY shim."""
        return int(getattr(self.cls, "version", 1))


_REGISTRY: dict[str, Entry] = {}


def register(name: str, task: str = "forecast") -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register ``cls`` under ``name`` for ``task``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {TASKS}")

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        _REGISTRY[name] = Entry(name, cls, task)
        return cls

    return deco


def _load_builtin() -> None:
    """Import the modules that register the built-in models (optional extras may be missing)."""
    import importlib

    for mod in ("wavesurrogate.nn.cnn", "wavesurrogate.nn.operators", "wavesurrogate.nn.trace"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:  # a module not written yet, or an optional extra not installed
            if exc.name is not None and exc.name.startswith("wavesurrogate"):
                continue
            if exc.name in {"neuralop", "tensorly", "tltorch"}:
                continue
            raise


def entry(name: str) -> Entry:
    """The registry entry for ``name``; ConfigError listing the known names if absent."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"model: unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def names() -> list[str]:
    """All registered model names."""
    _load_builtin()
    return sorted(_REGISTRY)


def count_trainable(model: nn.Module) -> int:
    """Number of trainable scalars of ``model``; a complex parameter counts as two real ones."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters() if p.requires_grad)


def build(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """Instantiate model ``name`` with JSON-serialisable ``kwargs``."""
    e = entry(name)
    try:
        json.dumps(kwargs)
    except TypeError as exc:
        raise ConfigError(f"model.kwargs: not JSON-serialisable ({exc})") from None
    try:
        return e.cls(**kwargs)
    except TypeError as exc:
        raise CheckpointError(f"model {name!r}: bad constructor arguments ({exc})") from None
    except (MemoryError, OverflowError, RuntimeError) as exc:  # e.g. width: 2**31 cannot be allocated
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"model {name!r}: cannot be built with {kwargs} ({first[:160]})") from None
