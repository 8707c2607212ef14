"""Cell formatting shared by the docs/results.md sections (results_md and its md_* section modules)."""

from __future__ import annotations

import math
from typing import Any

COMMAND = ".venv/bin/python -m benchmarks.results_md"


def pct(x: Any) -> str:
    """A fraction as a percentage with one decimal."""
    return "n/a" if not isinstance(x, int | float) or not math.isfinite(x) else f"{100 * x:.1f}"


def speed(x: Any) -> str:
    """A speed-up; below 1 says the surrogate is slower than the solver."""
    if not isinstance(x, int | float) or not math.isfinite(x):
        return "n/a"
    return f"{x:.3g}×" if x >= 1 else f"{x:.2g}× (slower)"


def get(r: Any, *path: str) -> Any:
    """``r[path[0]][path[1]]...``, or None where a key is missing or a level is not a mapping."""
    for p in path:
        if not isinstance(r, dict) or p not in r:
            return None
        r = r[p]
    return r
