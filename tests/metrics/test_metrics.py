"""Each metric against a value computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wavesurrogate import metrics as M


def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    i = torch.arange(n, dtype=torch.float64)
    return torch.meshgrid(i, i, indexing="ij")  # (y, x) integer indices


def test_rel_l2_rmse_max_by_hand():
    true = torch.tensor([[[3.0, 4.0]], [[1.0, 0.0]]])  # two samples, norms 5 and 1
    pred = torch.tensor([[[3.0, 5.0]], [[1.0, 2.0]]])  # errors (0, 1) and (0, 2)
    assert M.rel_l2(pred, true).tolist() == pytest.approx([1 / 5, 2 / 1])
    assert M.rmse(pred, true).tolist() == pytest.approx([math.sqrt(1 / 2), math.sqrt(4 / 2)])
    assert M.max_error(pred, true).tolist() == pytest.approx([1.0, 2.0])
    assert M.pooled_rel_l2(pred, true) == pytest.approx(math.sqrt(5 / 26))


def test_rel_l2_of_zero_truth_is_nan_not_inf():
    r = M.rel_l2(torch.ones(1, 2, 2), torch.zeros(1, 2, 2))
    assert math.isnan(float(r[0]))
    assert M.rel_l2(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)).isnan().all()


def test_radial_wavenumber_by_hand():
    k = M.radial_wavenumber(8, 8)
    assert int(k[0, 0]) == 0
    assert int(k[0, 3]) == 3 and int(k[0, 5]) == 3  # fftfreq index 5 of 8 is -3
    assert int(k[3, 4]) == 5  # sqrt(9 + 16)
    assert int(k[4, 4]) == 5  # floor(sqrt(32)) = 5
    assert int(k[1, 1]) == 1  # floor(sqrt(2))


@pytest.mark.parametrize(
    ("n", "ky", "kx", "band"),
    [(16, 0, 2, 0), (16, 3, 3, 1), (16, 0, 3, 0), (16, 0, 4, 1), (32, 9, 9, 2), (32, 0, 12, 2),
     (32, 0, 11, 1)],
)
def test_frmse_single_mode_lands_in_its_band(n, ky, kx, band):
    """e = A cos(2π(ky y + kx x)/n): all error energy at radius floor(sqrt(ky²+kx²)), RMSE = A/√2."""
    yy, xx = _grid(n)
    a = 0.7
    err = a * torch.cos(2 * math.pi * (ky * yy + kx * xx) / n)
    true = torch.randn(2, 3, n, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pred = true + err  # same error in every frame and sample
    f = M.frmse(pred, true)
    want = [0.0, 0.0, 0.0]
    want[band] = a / math.sqrt(2)
    assert f.shape == (2, 3)
    assert f[0].tolist() == pytest.approx(want, abs=1e-12)


def test_frmse_bands_add_up_to_rmse():
    g = torch.Generator().manual_seed(1)
    pred, true = torch.randn(4, 2, 32, 24, generator=g), torch.randn(4, 2, 32, 24, generator=g)
    f = M.frmse(pred, true)
    assert f.pow(2).sum(dim=1).sqrt().tolist() == pytest.approx(M.rmse(pred, true).tolist(), rel=1e-10)


def test_frmse_constant_error_is_low_band_only():
    pred, true = torch.full((1, 8, 8), 2.5), torch.zeros(1, 8, 8)
    assert M.frmse(pred, true)[0].tolist() == pytest.approx([2.5, 0.0, 0.0])


def test_rollout_errors_by_hand():
    true = torch.ones(2, 3, 2, 2)
    pred = true.clone()
    pred[:, 1] += 0.5  # horizon 2: every point off by 0.5
    pred[0, 2, 0, 0] = 3.0  # horizon 3: one point of one sample off by 2
    e = M.rollout_errors(pred, true)
    assert e["rel_l2"] == pytest.approx([0.0, 0.5, math.sqrt(4 / 8)])
    assert e["rmse"] == pytest.approx([0.0, 0.5, math.sqrt(4 / 8)])
    assert e["max_error"] == pytest.approx([0.0, 0.5, 2.0])
    assert M.diverged_at(e) is None


def test_diverged_at_flags_non_finite_and_huge():
    true = torch.ones(1, 4, 2, 2)
    pred = true.clone()
    pred[0, 2] = 1e4  # rel ≈ 1e4 > 1e3 at horizon 3
    pred[0, 3] = float("nan")
    e = M.rollout_errors(pred, true)
    assert M.diverged_at(e) == 3
    pred[0, 2] = 1.0
    assert M.diverged_at(M.rollout_errors(pred, true)) == 4


def test_diverged_at_ignores_zero_truth_nan():
    e = {"rel_l2": [math.nan, 0.1], "rmse": [0.0, 0.1]}
    assert M.diverged_at(e) is None


def test_metrics_match_numpy_independent_implementation():
    rng = np.random.default_rng(2)
    p, t = rng.normal(size=(3, 5, 6)), rng.normal(size=(3, 5, 6))
    tp, tt = torch.from_numpy(p), torch.from_numpy(t)
    ref_rel = [np.linalg.norm(p[i] - t[i]) / np.linalg.norm(t[i]) for i in range(3)]
    assert M.rel_l2(tp, tt).tolist() == pytest.approx(ref_rel)
    assert M.rmse(tp, tt).tolist() == pytest.approx([np.sqrt(np.mean((p[i] - t[i]) ** 2)) for i in range(3)])
