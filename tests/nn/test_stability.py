"""Stability diagnostics against closed forms: spectral radius of linear step maps with known eigenvalues,
energy growth of a geometric rollout; rollout with a leapfrog update and extra (forcing) channels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from wavesurrogate.nn.rollout import rollout, step
from wavesurrogate.nn.stability import discrete_energy, energy_growth, spectral_radius


def pointwise(weights: list[float], dtype: torch.dtype = torch.float32) -> nn.Module:
    """A 1×1 conv with fixed weights over [frames..., velocity]: u^{n+1} = Σ w_i · channel_i."""
    conv = nn.Conv2d(len(weights), 1, 1, bias=False, dtype=dtype)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weights, dtype=dtype).view(1, -1, 1, 1))
    return conv


def one_call(model: nn.Module, vel: torch.Tensor, update: str = "direct"):
    def fn(s: torch.Tensor) -> torch.Tensor:
        n_in = s.shape[1]
        return torch.cat([s, step(model, s, vel, None, update)], dim=1)[:, -n_in:]
    return fn


@pytest.mark.parametrize("r, theta", [(0.97, 0.3), (1.02, 1.1), (0.5, 2.5)])
def test_complex_pair_of_a_two_level_recurrence(r, theta):
    # u^{n+1} = a u^n + b u^{n-1}: per node the companion matrix of λ² − aλ − b, roots r·e^{±iθ}
    a, b = 2 * r * math.cos(theta), -r * r
    model = pointwise([b, a, 0.0])
    x = torch.randn(3, 2, 5, 4, generator=torch.Generator().manual_seed(1))
    vel = torch.zeros(3, 1, 5, 4)
    got = spectral_radius(one_call(model, vel), x)
    assert got.shape == (3,)
    torch.testing.assert_close(got, torch.full((3,), r, dtype=torch.float64), atol=1e-3, rtol=0)


def test_real_dominant_eigenvalue():
    model = pointwise([-0.56, 1.5, 0.3])  # λ² − 1.5λ + 0.56 = 0 → 0.8, 0.7 (velocity only shifts)
    x = torch.randn(2, 2, 6, 6)
    got = spectral_radius(one_call(model, torch.ones(2, 1, 6, 6)), x)
    assert torch.allclose(got, torch.tensor([0.8, 0.8], dtype=torch.float64), atol=1e-3)


def test_a_3x3_conv_map_against_the_dense_jacobian():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 1, 3, padding=1)
    x, vel = torch.randn(1, 2, 4, 4), torch.randn(1, 1, 4, 4)
    fn = one_call(model, vel)
    jac = torch.autograd.functional.jacobian(fn, x).reshape(32, 32).double().numpy()
    want = np.abs(np.linalg.eigvals(jac)).max()
    got = float(spectral_radius(fn, x, krylov=40)[0])
    assert abs(got - want) < 1e-3


def test_leapfrog_with_a_zero_network_has_eigenvalue_one():
    zero = pointwise([0.0, 0.0, 0.0])  # u^{n+1} = 2u^n − u^{n−1}: [[0, 1], [−1, 2]], λ = 1 (double)
    x = torch.randn(2, 2, 3, 3)
    got = spectral_radius(one_call(zero, torch.zeros(2, 1, 3, 3), "leapfrog"), x)
    assert torch.allclose(got, torch.ones(2, dtype=torch.float64), atol=1e-3)


def test_a_pure_rotation_pair_of_modulus_one():
    model = pointwise([-1.0, 2 * math.cos(0.7), 0.0])  # |λ| = 1, a rotation by 0.7 rad per step
    x = torch.randn(1, 2, 2, 2)
    got = spectral_radius(one_call(model, torch.zeros(1, 1, 2, 2)), x, n_power=7, krylov=4)
    assert abs(float(got[0]) - 1.0) < 1e-3


@pytest.mark.parametrize("g", [0.9, 1.1])
def test_energy_growth_of_a_geometric_rollout(g):
    model = pointwise([g, 0.0], torch.float64)  # u^{n+1} = g u^n
    x0 = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    frames = rollout(model, x0, torch.zeros(2, 4, 4, dtype=torch.float64), 12)
    e = discrete_energy(frames)  # E^n = g^{2n}|u|²(1 + (1 − 1/g)²) relative to frame 0 of frames
    norm = x0.flatten(1).pow(2).sum(1)
    want = norm[:, None] * torch.tensor([g ** (2 * (n + 1)) * (1 + (1 - 1 / g) ** 2)
                                         for n in range(1, 12)], dtype=torch.float64)
    torch.testing.assert_close(e, want)
    want_growth = torch.full((2,), max(1.0, g**20), dtype=torch.float64)
    torch.testing.assert_close(energy_growth(frames), want_growth)


def test_leapfrog_rollout_with_extra_channels_by_hand():
    # network output = the extra channel: u^{n+1} = 2u^n − u^{n−1} + f^{n+1}, two outputs per call
    class Take(nn.Module):
        n_in, n_out = 2, 2

        def forward(self, x):
            return x[:, 3:5]

    u = torch.randn(1, 2, 3, 3)
    f = torch.randn(1, 5, 3, 3)
    got = rollout(Take(), u, torch.zeros(1, 3, 3), 5, extra=f, update="leapfrog")
    seq = [u[:, 0], u[:, 1]]
    for n in range(5):
        seq.append(2 * seq[-1] - seq[-2] + f[:, n])
    torch.testing.assert_close(got, torch.stack(seq[2:], dim=1))  # 6th call's frame dropped
