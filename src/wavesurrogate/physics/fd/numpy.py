"""NumPy backend of the FD solver: the independent reference time loop over prepared core.Arrays."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from wavesurrogate.physics.fd.core import Arrays, absorb_edges, apply_operator, fill_ghosts


def run_numpy(a: Arrays, report: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Reference NumPy time loop: (frames on the computational grid [n_frames, *shape], receiver traces
    [n_steps + 1, n_receivers] at every step 0 … n_steps, or None without receivers)."""
    lay, so = a.layout, a.space_order
    inner = lay.inner
    dtype = a.u0.dtype
    src = np.zeros(lay.shape, dtype=dtype)
    src[lay.physical] = a.source
    src = src[inner]
    wave = a.wave.astype(dtype)
    frames = np.empty((a.n_frames, *lay.shape), dtype=dtype)
    frames[0] = a.u0
    rec = None
    if a.receivers is not None:
        at = tuple((a.receivers + np.array([s.start for s in lay.physical])).T)
        rec = np.empty((a.n_steps + 1, len(a.receivers)), dtype=dtype)
        rec[0] = a.u0[at]
    u_prev, u = a.um1.copy(), a.u0.copy()
    if a.damp is not None:
        d = a.damp[inner]
        num_prev, denom = (1.0 - d).astype(dtype), (1.0 + d).astype(dtype)
    every = max(1, a.n_steps // 100)
    for n in range(a.n_steps):
        lap = apply_operator(u, a.b, lay, so) + src * wave[n]
        if a.damp is None:
            u_prev[inner] = 2 * u[inner] - u_prev[inner] + lap
        else:
            u_prev[inner] = (2 * u[inner] - num_prev * u_prev[inner] + lap) / denom
        absorb_edges(u_prev, u, a.abc, lay)
        fill_ghosts(u_prev, lay)
        u_prev, u = u, u_prev
        if rec is not None:
            rec[n + 1] = u[at]
        if (n + 1) % a.stride == 0:
            frames[(n + 1) // a.stride] = u
        if report is not None and ((n + 1) % every == 0 or n + 1 == a.n_steps):
            report(n + 1)
    return frames, rec
