"""Tasks: the only place that knows what a model's inputs and outputs mean. One module per task.

Each module of this package (``base`` and private ``_helpers`` aside) defines ``TASK``, an instance of a
``tasks.base.Task`` subclass; ``get(name)`` finds it. A new task is one new file here plus its tests.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from wavesurrogate.errors import ConfigError
from wavesurrogate.tasks.base import Task

__all__ = ["Task", "get", "names", "solving", "check_model"]


@functools.cache
def _tasks() -> dict[str, Task]:
    found: dict[str, Task] = {}
    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if m.name == "base" or m.name.startswith("_"):
            continue
        task = getattr(importlib.import_module(f"{__name__}.{m.name}"), "TASK", None)
        if not isinstance(task, Task):
            raise RuntimeError(f"{__name__}.{m.name}: defines no TASK (a tasks.base.Task instance)")
        found[task.name] = task
    return found


def get(name: str) -> Task:
    """The task called ``name``; ConfigError (one line) naming the known tasks otherwise."""
    t = _tasks().get(name)
    if t is None:
        raise ConfigError(f"data.task: unknown task {name!r}; known: {', '.join(sorted(_tasks()))}")
    return t


def names() -> list[str]:
    """Every task name."""
    return sorted(_tasks())


def solving(interface: str) -> list[str]:
    """Names of the tasks that accept models of ``interface``."""
    return [n for n, t in sorted(_tasks().items()) if interface in t.interfaces]


def check_model(task: Task, entry: object, source: str = "model:") -> None:
    """ConfigError unless the registry ``entry`` has an interface ``task`` accepts (naming what it solves)."""
    interface = getattr(entry, "interface", None)
    if interface not in task.interfaces:
        solves = ", ".join(solving(str(interface))) or "no known task"
        raise ConfigError(f"{source} {getattr(entry, 'name', '?')!r} solves {solves}, not {task.name!r}")
