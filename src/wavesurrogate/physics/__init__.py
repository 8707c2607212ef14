"""wavesurrogate.physics: ground-truth solvers of u_tt = ∇·(c²∇u) + s and what they need."""

from __future__ import annotations

from typing import Any

import numpy as np

from wavesurrogate.errors import ConfigError
from wavesurrogate.physics.problem import Problem

__all__ = ["solve"]


def solve(problem: Problem, solver: str = "fd", **kw: Any) -> np.ndarray:
    """Solve a problem with the FD ("fd") or FE ("fe") solver; frames [n_frames, ny, nx]."""
    if solver == "fd":
        from wavesurrogate.physics.fd import solve_fd

        return solve_fd(problem, **kw)
    if solver == "fe":
        from wavesurrogate.physics.fe import solve_fe

        return solve_fe(problem, **kw)
    raise ConfigError(f"solver: must be 'fd' or 'fe', got {solver!r}")
