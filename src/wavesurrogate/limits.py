"""Bounds every input is checked against before anything is simulated, built or written (docs/reliability.md).

Numbers in configs and files are bounded where they are validated (config models, the data-file schema,
the model registry); the bounds themselves live here, so that they are one set.
"""

from __future__ import annotations

import os

__all__ = ["MAX_MAGNITUDE", "MAX_SEED", "MAX_SOLVER_STEPS", "MAX_THREADS", "memory_bytes"]

MAX_MAGNITUDE = 1e15  # |any float| of a campaign config: products of a few stay far from overflow
MAX_SEED = 2**63 - 1  # seeds are stored as int64 attributes
MAX_SOLVER_STEPS = 10**7  # solver steps of one case, (n_frames - 1) · frame_stride: time and source series
MAX_THREADS = 1024  # torch intra-op threads


def memory_bytes() -> int | None:
    """Memory this process may use in bytes: physical memory, or less under ``ulimit -v`` (None: unknown)."""
    try:
        have = int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        return have if soft == resource.RLIM_INFINITY else min(have, int(soft))
    except (ImportError, OSError, ValueError):
        return have
