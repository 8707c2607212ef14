"""A torch time loop of the FD scheme, for GPUs: the solver baseline of ``benchmarks/gpu.py``.

The same equation and discretisation as the devito and NumPy backends (``core``): u_tt = ∇·(c²∇u) + s,
leapfrog in time, D₋(b D₊u) in space with face coefficients b = dt²·c²_face/h² (2nd order) or the
staggered 4th-order pair 27/−1 (b divided by 576), an optional sponge (η·dt/2 per node), and Dirichlet outer
edges (zero ghost nodes). Dimension-generic (2-D and 3-D) and batched: fields are ``[batch, *shape]`` on the
padded grid (``ghost(space_order)`` nodes per side: 1 for 2nd order, 3 for 4th), updated in place on the
inner nodes. It reads
nothing but tensors, so it runs wherever torch has a device; it has no receivers, frames or boundary kinds
of its own: it times what a GPU FD solve costs, next to the surrogates it would be compared with.
"""

from __future__ import annotations

import torch
from torch import Tensor


def ghost(space_order: int) -> int:
    """Ghost nodes per side the stencil reads (as ``core.ghost_width``)."""
    return 1 if space_order == 2 else 3


def _inner(t: Tensor, g: int, m: tuple[int, ...], skip: int) -> Tensor:
    """``t`` restricted to the inner nodes on every spatial axis except ``skip`` (spatial axes from 1)."""
    for a, n in enumerate(m):
        if a != skip:
            t = t.narrow(a + 1, g, n)
    return t


def operator(u: Tensor, b: list[Tensor], space_order: int) -> Tensor:
    """dt²·D₋(b D₊u) on the inner nodes ``[batch, *m]`` of a ghost-padded ``u`` ``[batch, *(m + 2g)]``;
    ``b[a]`` holds axis ``a``'s face coefficients on the padded grid (face k between nodes k and k+1)."""
    g = ghost(space_order)
    m = tuple(n - 2 * g for n in u.shape[1:])
    out = None
    for a, n in enumerate(m):
        ax = a + 1
        v, c = _inner(u, g, m, a), _inner(b[a], g, m, a)

        def s(t: Tensor, lo: int, length: int, ax: int = ax) -> Tensor:
            return t.narrow(ax, lo, length)

        if space_order == 2:  # faces g-1 .. g+n-1
            f = s(c, g - 1, n + 1) * (s(v, g, n + 1) - s(v, g - 1, n + 1))
            term = s(f, 1, n) - s(f, 0, n)
        else:  # faces g-2 .. g+n
            d = 27.0 * (s(v, g - 1, n + 3) - s(v, g - 2, n + 3)) - (s(v, g, n + 3) - s(v, g - 3, n + 3))
            f = s(c, g - 2, n + 3) * d
            term = 27.0 * (s(f, 2, n) - s(f, 1, n)) - (s(f, 3, n) - s(f, 0, n))
        out = term if out is None else out + term
    assert out is not None
    return out


def face_coefficients(c: Tensor, dt: float, h: tuple[float, ...], space_order: int) -> list[Tensor]:
    """Per axis, b = dt²·c²_face/h_a² (/576 for 4th order) on the padded grid from node speeds ``c``
    ``[batch, *padded]`` (face value: the mean of c² at its two nodes; the last face repeats its node)."""
    c2 = c * c
    scale = 1.0 if space_order == 2 else 1.0 / 576.0
    out = []
    for a, ha in enumerate(h):
        ax = a + 1
        n = c2.shape[ax]
        face = torch.cat([0.5 * (c2.narrow(ax, 0, n - 1) + c2.narrow(ax, 1, n - 1)), c2.narrow(ax, n - 1, 1)],
                         dim=ax)
        out.append(face * (scale * dt * dt / (ha * ha)))
    return out


class Leapfrog:
    """The leapfrog loop: ``step(forcing)`` advances ``u`` one dt (forcing: dt²·s on the inner nodes or None).

    ``damp`` (η·dt/2 on the inner nodes, or None) is the sponge: u⁺ = (2u − (1 − d)u⁻ + L + f) / (1 + d).
    """

    def __init__(self, c: Tensor, dt: float, h: tuple[float, ...], space_order: int = 2,
                 damp: Tensor | None = None) -> None:
        if space_order not in (2, 4):
            raise ValueError(f"space_order must be 2 or 4, got {space_order}")
        self.so, self.g = space_order, ghost(space_order)
        self.b = face_coefficients(c, dt, h, space_order)
        self.u = torch.zeros_like(c)
        self.u_prev = torch.zeros_like(c)
        self.inner = (slice(None), *(slice(self.g, n - self.g) for n in c.shape[1:]))
        self.damp = damp
        if damp is not None:
            self.num, self.den = 1.0 - damp, 1.0 + damp

    def step(self, forcing: Tensor | None = None) -> None:
        """One time step, in place (the two time levels swap)."""
        i = self.inner
        rhs = operator(self.u, self.b, self.so)
        if forcing is not None:
            rhs = rhs + forcing
        if self.damp is None:
            self.u_prev[i] = 2.0 * self.u[i] - self.u_prev[i] + rhs
        else:
            self.u_prev[i] = (2.0 * self.u[i] - self.num * self.u_prev[i] + rhs) / self.den
        self.u, self.u_prev = self.u_prev, self.u
