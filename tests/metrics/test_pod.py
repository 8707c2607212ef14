"""POD floor against closed forms: fields built from known orthonormal modes with a known spectrum."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wavesurrogate.metrics import pod_floor, pod_floor_curve, pod_modes

D, K = 60, 6
SPECTRUM = torch.tensor([10.0, 7.0, 5.0, 3.0, 2.0, 1.0], dtype=torch.float64)  # orders the modes


def _orthonormal(rows: int, cols: int, seed: int, skip_ones: bool = False) -> torch.Tensor:
    """``[rows, cols]`` with orthonormal columns (orthogonal to the ones vector if ``skip_ones``)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(rows, cols + skip_ones, generator=g, dtype=torch.float64)
    if skip_ones:
        a[:, 0] = 1.0
    return torch.linalg.qr(a)[0][:, int(skip_ones) :]


def _fields(n_train: int, skip_ones: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train [n, 6, 10], test [9, 6, 10], test coefficients [9, K]) on the same K modes of R^60."""
    modes = _orthonormal(D, K, 0)
    train = _orthonormal(n_train, K, 1, skip_ones) * SPECTRUM @ modes.T  # singular values = SPECTRUM
    c = torch.randn(9, K, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return train.reshape(n_train, 6, 10), (c @ modes.T).reshape(9, 6, 10), c


@pytest.mark.parametrize("n_train", [20, 90], ids=["gram_N<D", "svd_N>=D"])
def test_floor_is_zero_from_k_modes_and_the_dropped_energy_below(n_train: int):
    train, test, c = _fields(n_train)
    s, v = pod_modes(train.reshape(n_train, -1))
    torch.testing.assert_close(s, SPECTRUM, rtol=1e-12, atol=0)  # rank clamped to K, noise modes dropped
    torch.testing.assert_close(v.T @ v, torch.eye(K, dtype=torch.float64), rtol=0, atol=1e-12)
    floor = pod_floor(train, test, range(0, K + 4))
    energy = c.pow(2).sum(dim=0)
    for p, value in floor.items():
        if p >= K:
            assert value < 1e-10
        else:
            assert value == pytest.approx(math.sqrt(float(energy[p:].sum() / energy.sum())), rel=1e-10)
    assert floor[0] == pytest.approx(1.0)


def test_numpy_inputs_give_the_same_floor():
    train, test, _ = _fields(20)
    assert pod_floor(train.numpy(), test.numpy(), [3]) == pod_floor(train, test, [3])


def test_centring_adds_the_mean_back():
    mean = torch.linspace(-2.0, 3.0, D, dtype=torch.float64)
    train, test, c = _fields(30, skip_ones=True)  # coefficients ⟂ ones: training mean = `mean`
    train, test = train + mean.reshape(6, 10), test + mean.reshape(6, 10)
    centred = pod_floor(train, test, [2, K], center=True)
    total = float(test.pow(2).sum())
    assert centred[2] == pytest.approx(math.sqrt(float(c[:, 2:].pow(2).sum()) / total), rel=1e-10)
    assert centred[K] < 1e-10
    assert pod_floor(train, test, [K])[K] > 1e-3  # uncentred, K modes cannot also hold the mean


def test_floor_is_non_increasing_in_p_and_clamped_beyond_the_rank():
    g = torch.Generator().manual_seed(3)
    train, test = torch.randn(12, 40, generator=g), torch.randn(7, 40, generator=g)
    floor = pod_floor(train, test, range(0, 20))
    values = list(floor.values())
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:], strict=False))
    assert floor[12] < floor[11] and floor[19] == floor[12] > 0.1  # rank 12: more modes change nothing


def test_floor_matches_a_numpy_svd_projection():
    g = np.random.default_rng(4)
    train, test = g.normal(size=(15, 50)), g.normal(size=(6, 50))
    vt = np.linalg.svd(train, full_matrices=False)[2][:5]
    want = np.linalg.norm(test - test @ vt.T @ vt) / np.linalg.norm(test)
    got = pod_floor(torch.from_numpy(train), torch.from_numpy(test), [5])[5]
    assert got == pytest.approx(want, rel=1e-10)


def test_curve_over_training_set_size():
    train, test, _ = _fields(20)
    curve = pod_floor_curve(train, test, [K], n_sources=[3, K, 20])
    assert curve[3][K] > 0.1 and curve[K][K] < 1e-10 and curve[20] == pod_floor(train, test, [K])
    with pytest.raises(ValueError, match="n_sources"):
        pod_floor_curve(train, test, [K], n_sources=[21])


def test_mismatched_samples_are_refused():
    with pytest.raises(ValueError, match="values"):
        pod_floor(torch.zeros(3, 4), torch.zeros(2, 5), [1])
