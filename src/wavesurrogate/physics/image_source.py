"""Analytic impulse responses of a box room by the image-source method (Allen & Berkley 1979).

A point source ``s(x, t) = δ(x − x_s) g(t)`` in free space radiates ``u(r, t) = g(t − r/c) / (4π r)``. In a
box ``[0, Lx] × [0, Ly] × [0, Lz]`` whose walls reflect plane waves with a frequency-independent pressure
reflection coefficient R (R = 1: rigid), the response is the sum over image sources; along each axis the
images are ``(1 − 2q) x_s + 2 n L`` (q ∈ {0, 1}, n ∈ ℤ) and meet ``|n − q|`` reflections on the low wall and
``|n|`` on the high wall. For rigid walls the sum is exact; for R < 1 it is the usual (locally reacting,
angle-independent) approximation. Independent of the FD solvers: tests and synthetic 3-D campaigns use it.

``g`` is a Gaussian pulse ``exp(−((t − t0)/σ)²)`` with σ chosen so its spectrum is 60 dB down at ``f_max``
(:func:`gaussian_sigma_s`). Units SI; positions ``[..., 3]`` as (x, y, z).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["gaussian_sigma_s", "gaussian_pulse", "image_sources", "box_response"]


def gaussian_sigma_s(f_max_hz: float, db: float = 60.0) -> float:
    """σ (s) of ``exp(−(t/σ)²)`` whose spectrum ``exp(−(π f σ)²)`` is ``db`` dB down at ``f_max_hz``."""
    return math.sqrt(db / 20.0 * math.log(10.0)) / (math.pi * f_max_hz)


def gaussian_pulse(t: np.ndarray, f_max_hz: float, delay_s: float | None = None) -> np.ndarray:
    """``exp(−((t − t0)/σ)²)`` with σ = :func:`gaussian_sigma_s` and t0 = ``delay_s`` (default 4σ)."""
    s = gaussian_sigma_s(f_max_hz)
    t0 = 4.0 * s if delay_s is None else delay_s
    return np.exp(-(((np.asarray(t, np.float64) - t0) / s) ** 2))


def image_sources(source: np.ndarray, room: tuple[float, float, float], reflection: float | tuple,
                  max_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Image positions ``[M, 3]`` and amplitudes ``[M]`` (product of the reflection coefficients met) of every
    image within ``max_distance`` of the room's centre plus its diagonal (those that can arrive in time).

    ``reflection``: one R for every wall or six, ordered (x0, x1, y0, y1, z0, z1)."""
    r = (float(reflection),) * 6 if np.isscalar(reflection) else tuple(float(v) for v in reflection)
    if len(r) != 6:
        raise ValueError(f"image_sources: reflection must be one number or six, got {reflection!r}")
    src = np.asarray(source, np.float64)
    per_axis = []
    for a, length in enumerate(room):
        n_max = int(math.ceil(max_distance / (2.0 * length))) + 1
        pos, amp = [], []
        for n in range(-n_max, n_max + 1):
            for q in (0, 1):
                pos.append((1 - 2 * q) * src[a] + 2 * n * length)
                amp.append(r[2 * a] ** abs(n - q) * r[2 * a + 1] ** abs(n))
        per_axis.append((np.asarray(pos), np.asarray(amp)))
    px, py, pz = (np.asarray(p) for p, _ in per_axis)
    pos = np.stack(np.meshgrid(px, py, pz, indexing="ij"), axis=-1).reshape(-1, 3)
    amp = np.einsum("i,j,k->ijk", *(a for _, a in per_axis)).reshape(-1)
    centre = np.asarray(room) / 2.0
    keep = (np.linalg.norm(pos - centre, axis=1) <= max_distance + np.linalg.norm(centre)) & (amp != 0)
    return pos[keep], amp[keep]


def box_response(source: np.ndarray, receivers: np.ndarray, room: tuple[float, float, float],
                 t: np.ndarray, c_mps: float, f_max_hz: float, reflection: float | tuple = 1.0,
                 delay_s: float | None = None) -> np.ndarray:
    """Pressure ``[n_t, n_receivers]`` at ``receivers`` ``[R, 3]`` for the Gaussian-pulse point source at
    ``source`` ``[3]`` in the box ``room`` (Lx, Ly, Lz), times ``t`` (s): the sum of ``A g(t − d/c) / (4π d)``
    over the images within reach of the last time."""
    t = np.asarray(t, np.float64)
    rec = np.atleast_2d(np.asarray(receivers, np.float64))
    s = gaussian_sigma_s(f_max_hz)
    t0 = 4.0 * s if delay_s is None else delay_s
    pos, amp = image_sources(source, room, reflection, c_mps * (float(t[-1]) + 5 * s))
    dt = float(t[1] - t[0]) if t.size > 1 else 1.0
    if t.size > 1 and not np.allclose(np.diff(t), dt, rtol=1e-9, atol=0):
        raise ValueError("box_response: t must be uniformly spaced")
    half = int(math.ceil(5 * s / dt))
    offs = np.arange(-half, half + 1)
    out = np.zeros((t.size, rec.shape[0]))
    for j, x in enumerate(rec):
        d = np.maximum(np.linalg.norm(pos - x, axis=1), 1e-9)
        delay = d / c_mps + t0
        live = delay - 5 * s <= t[-1]
        delay, a = delay[live], amp[live] / (4.0 * np.pi * d[live])
        k = np.rint((delay - t[0]) / dt).astype(np.int64)[:, None] + offs  # [M, window] sample indices
        ok = (k >= 0) & (k < t.size)
        v = a[:, None] * np.exp(-(((t[0] + np.clip(k, 0, t.size - 1) * dt - delay[:, None]) / s) ** 2))
        out[:, j] = np.bincount(k[ok], weights=v[ok], minlength=t.size)
    return out
