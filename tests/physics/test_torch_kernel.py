"""The torch FD loop (physics/fd/torch_kernel.py, the GPU baseline of benchmarks/gpu.py): its operator equals
the NumPy backend's ``apply_operator`` for the same coefficients, in both orders, and its leapfrog loop
converges at second order to a standing mode of a Dirichlet box, in 2-D and 3-D."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wavesurrogate.physics.fd.core import Layout, apply_operator
from wavesurrogate.physics.fd.torch_kernel import Leapfrog, face_coefficients, ghost, operator


@pytest.mark.parametrize("so", [2, 4])
def test_operator_equals_the_numpy_backend(so):
    g = ghost(so)
    rng = np.random.default_rng(so)
    lay = Layout(g, (0, 0), ("dirichlet", "dirichlet"), (13, 17))
    u = rng.standard_normal(lay.shape)
    by, bx = rng.uniform(0.1, 1.0, lay.shape), rng.uniform(0.1, 1.0, lay.shape)
    want = apply_operator(u, by, bx, lay, so)
    t = torch.from_numpy
    got = operator(t(u)[None], [t(by)[None], t(bx)[None]], so)[0].numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def _mode_error(n: int, dim: int) -> float:
    """Relative L2 error after T of a 2nd-order leapfrog run of the (1, .., 1) mode in a unit Dirichlet box
    (the box's edge nodes are the ghost layer, held at zero), float64."""
    c, h = 1.0, 1.0 / n
    dt = 0.4 * h / (c * math.sqrt(dim))
    steps = round(0.5 / dt)
    x = torch.linspace(0.0, 1.0, n + 1, dtype=torch.float64)
    grids = torch.meshgrid(*([x] * dim), indexing="ij")
    mode = torch.ones_like(grids[0])
    for gr in grids:
        mode = mode * torch.sin(math.pi * gr)
    w = c * math.pi * math.sqrt(dim)
    lf = Leapfrog(torch.full((1, *mode.shape), c, dtype=torch.float64), dt, (h,) * dim, space_order=2)
    lf.u = mode[None].clone()
    lf.u_prev = (mode * math.cos(w * dt))[None].clone()  # the exact solution at t = -dt
    for _ in range(steps):
        lf.step()
    exact = mode * math.cos(w * steps * dt)
    return float(torch.linalg.vector_norm(lf.u[0] - exact) / torch.linalg.vector_norm(exact))


@pytest.mark.parametrize("dim, sizes", [(2, (16, 32)), (3, (12, 24))])
def test_leapfrog_converges_at_second_order_to_a_standing_mode(dim, sizes):
    coarse, fine = (_mode_error(n, dim) for n in sizes)
    order = math.log2(coarse / fine)
    assert 1.8 < order < 2.2, (coarse, fine, order)
    assert fine < 5e-3


def test_face_coefficients_of_a_constant_medium():
    c = torch.full((1, 6, 7), 2.0, dtype=torch.float64)
    by, bx = face_coefficients(c, 0.1, (0.5, 0.25), 2)
    assert torch.allclose(by, torch.full_like(by, 4.0 * 0.01 / 0.25))
    assert torch.allclose(bx, torch.full_like(bx, 4.0 * 0.01 / 0.0625))
    (b4,) = face_coefficients(torch.full((1, 5), 3.0, dtype=torch.float64), 0.1, (1.0,), 4)
    assert torch.allclose(b4, torch.full_like(b4, 9.0 * 0.01 / 576.0))
