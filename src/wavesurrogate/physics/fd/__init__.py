"""Finite-difference solver of u_tt = ∇·(c²∇u) + s (docs/solvers.md): core, numpy and devito backends.

Import graph: boundaries ← core ← numpy, devito ← solver; the backends never import each other.
"""

from wavesurrogate.physics.fd.core import cfl_dt_max, choose_dt, ghost_width
from wavesurrogate.physics.fd.solver import BACKENDS, FDSolver, solve_fd

__all__ = ["BACKENDS", "FDSolver", "cfl_dt_max", "choose_dt", "ghost_width", "solve_fd"]
