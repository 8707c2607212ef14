"""Model registry: models register themselves; a run stores (name, kwargs, version) and rebuilds from them.

``@register(name, interface=...)`` records the class and wraps its ``__init__`` so that every instance carries
its bound, defaults-applied, JSON-serialisable constructor arguments as ``model.init_kwargs``. A class states
``version`` (int, default 1: bump it when the same kwargs stop giving the same architecture or weights) and
``capabilities`` (flags such as ``{"onnx": True}``). Interfaces (what ``forward`` takes and returns):

- ``FRAMES``: ``forward(x)``, x ``[batch, channels_in, *spatial]`` -> ``[batch, n_out, *spatial]``;
- ``POINTS``: ``forward(params [B, P], coords [B, Q, D] or [Q, D])`` -> ``[B, Q]`` (a class with
  ``needs_velocity = True`` also takes ``velocity [B, ny, nx]`` as third argument);
- ``TRACE``: ``forward(params [B, P])`` -> ``[B, n_boundary, n_times]``;
- ``MULTI_FIDELITY``: normalised parameters and a fidelity index → mean and variance of a common output
  (``nn/models/dmfdal.py``; trained by ``wavesurrogate learn``).

Every module of ``wavesurrogate.nn.models`` is imported on first use (no list to keep up to date); a module
that fails to import is an error naming it. Optional extras are imported inside the constructors.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import math
import pkgutil
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from wavesurrogate.errors import CheckpointError, ConfigError, UserError
from wavesurrogate.limits import memory_bytes

FRAMES = "frames"
POINTS = "points"
TRACE = "trace"
MULTI_FIDELITY = "multi_fidelity"
INTERFACES = (FRAMES, POINTS, TRACE, MULTI_FIDELITY)
DEFAULT_CAPABILITIES: dict[str, bool] = {"onnx": True}

__all__ = ["FRAMES", "POINTS", "TRACE", "MULTI_FIDELITY", "INTERFACES", "Entry", "register", "entry", "names",
           "build",
           "describe", "count_trainable", "discover"]


@dataclass(frozen=True)
class Entry:
    """One registered model class: its name, class, interface, version and capability flags."""

    name: str
    cls: type[nn.Module]
    interface: str
    version: int = 1
    capabilities: dict[str, bool] = field(default_factory=dict)


_REGISTRY: dict[str, Entry] = {}
_discovered = False


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as plain JSON data (tuples become lists, arrays lists); TypeError naming ``where`` if not."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if hasattr(value, "tolist"):  # numpy / torch scalars and arrays
        return _jsonable(value.tolist(), where)
    raise TypeError(f"{where}: {type(value).__name__} is not JSON-serialisable")


def _capture_init(cls: type[nn.Module], name: str) -> None:
    """Wrap ``cls.__init__`` so each instance stores its constructor arguments as ``init_kwargs``."""
    init = cls.__init__
    sig = inspect.signature(init)
    if any(p.kind is p.VAR_POSITIONAL for p in sig.parameters.values()):
        raise TypeError(f"model {name!r}: __init__ must not take *args (kwargs are stored by name)")

    @functools.wraps(init)
    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        captured: dict[str, Any] = {}
        for i, (key, value) in enumerate(bound.arguments.items()):
            if i == 0:
                continue  # self
            if sig.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
                captured.update(value)
            else:
                captured[key] = value
        # the built class's wrapper finishes last and wins; one whose __init__ takes **kwargs forwards them to
        # its parent, so it lays its own arguments over the parent's complete (defaults-applied) capture
        forwards = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        base = getattr(self, "init_kwargs", {}) if forwards else {}
        self.init_kwargs = {**base, **_jsonable(captured, f"model {name!r} argument")}

    cls.__init__ = __init__  # type: ignore[method-assign]


def register(
    name: str,
    interface: str = FRAMES,
    *,
    version: int | None = None,
    capabilities: dict[str, bool] | None = None,
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register ``cls`` under ``name`` with ``interface``; version and capabilities default
    to the class attributes ``version`` (else 1) and ``capabilities`` (over ``DEFAULT_CAPABILITIES``)."""
    if interface not in INTERFACES:
        raise ValueError(f"unknown interface {interface!r}; known: {INTERFACES}")

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        old = _REGISTRY.get(name)
        where = (cls.__module__, cls.__qualname__)
        if old is not None and (old.cls.__module__, old.cls.__qualname__) != where:  # re-import: same class
            raise ValueError(f"model name {name!r} registered twice")
        ver = int(getattr(cls, "version", 1) if version is None else version)
        if ver < 1:
            raise ValueError(f"model {name!r}: version must be a positive int, got {ver}")
        caps = {**DEFAULT_CAPABILITIES, **getattr(cls, "capabilities", {}), **(capabilities or {})}
        cls.registry_name, cls.version, cls.capabilities = name, ver, caps  # type: ignore[attr-defined]
        if old is None or old.cls is not cls:
            _capture_init(cls, name)
        _REGISTRY[name] = Entry(name, cls, interface, ver, caps)
        return cls

    return deco


def discover() -> None:
    """Import every module of ``wavesurrogate.nn.models`` once; ImportError (one line) if one fails."""
    global _discovered
    if _discovered:
        return
    package = importlib.import_module("wavesurrogate.nn.models")
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            msg = f"model module {info.name} failed to import: {type(exc).__name__}: {first}"
            raise ImportError(msg) from exc
    _discovered = True


def entry(name: str) -> Entry:
    """The registry entry for ``name``; ConfigError listing the known names if absent."""
    discover()
    if name not in _REGISTRY:
        raise ConfigError(f"model: unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def names() -> list[str]:
    """All registered model names."""
    discover()
    return sorted(_REGISTRY)


def describe(model: nn.Module) -> dict[str, Any]:
    """``{"name", "kwargs", "version"}`` of a registered model instance: what rebuilds it with ``build``."""
    e = entry(getattr(type(model), "registry_name", type(model).__name__))
    if e.cls is not type(model):
        raise ConfigError(f"model: {type(model).__name__} is not a registered model class")
    return {"name": e.name, "kwargs": dict(model.init_kwargs), "version": e.version}


def count_trainable(model: nn.Module) -> int:
    """Number of trainable scalars of ``model``; a complex parameter counts as two real ones."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters() if p.requires_grad)


def _check_types(e: Entry, kwargs: dict[str, Any]) -> None:
    """Every argument of a plain annotated type (int, float, bool, str, a Literal, or one of them or None) of
    that type, floats finite; unknown names refused unless ``__init__`` takes ``**kwargs``. TypeError."""
    params = inspect.signature(e.cls.__init__).parameters
    try:
        hints = typing.get_type_hints(e.cls.__init__)
    except Exception:  # noqa: BLE001  (an unresolvable annotation: the constructor checks its arguments)
        hints = {}
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params) - {"self"})
        if unknown:
            raise TypeError(f"kwargs.{unknown[0]}: unknown argument")
    for key, value in kwargs.items():
        hint = hints.get(key)
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        opts = typing.get_args(hint) if union else (hint,)
        if value is None and type(None) in opts:
            continue
        checks = [_TYPE_CHECKS.get(o) for o in opts]
        for o in opts:
            if typing.get_origin(o) is typing.Literal:
                checks.append(lambda v, o=o: v in typing.get_args(o))
        if any(c is None for c in checks) or not checks:
            continue  # a container or class annotation: left to the constructor
        if not any(c(value) for c in checks):  # type: ignore[misc]
            names = " or ".join(_TYPE_NAMES.get(o, str(o)) for o in opts if o is not type(None))
            raise TypeError(f"kwargs.{key}: expected {names}, got {value!r}"[:200])


_TYPE_CHECKS: dict[Any, Callable[[Any], bool]] = {
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
    bool: lambda v: isinstance(v, bool),
    str: lambda v: isinstance(v, str),
}
_TYPE_NAMES = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}


def _finite_numbers(value: Any, where: str) -> None:
    """TypeError naming the first NaN or infinity anywhere in ``value`` (JSON data)."""
    stack = [(value, where)]
    while stack:
        v, w = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            raise TypeError(f"{w}: must be a finite number, got {v}")
        if isinstance(v, dict):
            stack.extend((x, f"{w}.{k}") for k, x in v.items())
        elif isinstance(v, list | tuple):
            stack.extend((x, f"{w}[{i}]") for i, x in enumerate(v))


MEMORY_FACTOR = 4  # training holds weights, gradients and two Adam moments
MAX_MODULES = 100_000  # submodules and parameters of one model


class _TooBig(Exception):
    pass


def _check_size(e: Entry, kwargs: dict[str, Any], have: int | None) -> None:
    """Build ``e.cls(**kwargs)`` on the meta device (nothing allocated) while counting what registers:
    MemoryError as soon as the parameters need more than ``have`` / MEMORY_FACTOR bytes or the modules and
    parameters exceed MAX_MODULES (a depth that would take hours to build); nothing where the constructor
    cannot run on the meta device (it reads values, e.g. ``.item()``)."""
    import torch
    from torch.nn.modules import module as tm

    budget = None if have is None else have // MEMORY_FACTOR
    seen = {"bytes": 0, "count": 0}

    def count(n_bytes: int) -> None:
        seen["bytes"] += n_bytes
        seen["count"] += 1
        if seen["count"] > MAX_MODULES:
            raise _TooBig(f"more than {MAX_MODULES} modules and parameters")
        if budget is not None and seen["bytes"] > budget:
            raise _TooBig(f"more than {budget / 1e9:.3g} GB of parameters; training needs ~{MEMORY_FACTOR}x "
                          f"that, more than the {have / 1e9:.3g} GB of memory available")

    hooks = [tm.register_module_parameter_registration_hook(
                 lambda m, n, p: count(0 if p is None else p.numel() * p.element_size())),
             tm.register_module_buffer_registration_hook(
                 lambda m, n, b: count(0 if b is None else b.numel() * b.element_size())),
             tm.register_module_module_registration_hook(lambda m, n, sub: count(0))]
    try:
        with torch.device("meta"):
            e.cls(**kwargs)
    except _TooBig as exc:
        raise MemoryError(str(exc)) from None
    except (TypeError, ValueError, UserError):
        raise
    except Exception as exc:  # noqa: BLE001
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if "meta" not in first:  # e.g. "Storage size calculation overflowed"
            raise MemoryError(first[:160]) from None
    finally:
        for h in hooks:
            h.remove()


def build(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """Instantiate model ``name`` with JSON-serialisable ``kwargs``: types checked against the constructor's
    annotations, numbers finite, and the size measured on the meta device before anything is allocated."""
    e = entry(name)
    try:
        json.dumps(kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.kwargs: not JSON-serialisable ({exc})") from None
    try:
        _finite_numbers(kwargs, "kwargs")
        _check_types(e, kwargs)
        _check_size(e, kwargs, memory_bytes())
        return e.cls(**kwargs)
    except UserError:  # the constructor's own one line (e.g. a missing optional extra)
        raise
    except (TypeError, ValueError) as exc:  # e.g. a missing argument, or float("x") of a damaged value
        raise CheckpointError(f"model {name!r}: bad constructor arguments ({exc})") from None
    except (MemoryError, OverflowError, RuntimeError) as exc:  # e.g. width: 2**31 cannot be allocated
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"model {name!r}: cannot be built with {str(kwargs)[:120]} ({first[:160]})"
                              ) from None
