"""fRMSE in 3-D against independent computations, and the 2-D numbers identical to the original fft2 form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wavesurrogate import metrics as M


def _frmse_2d_original(pred: torch.Tensor, true: torch.Tensor,
                       edges: tuple[int, int] = (4, 12)) -> torch.Tensor:
    """The 2-D fRMSE as eval/metrics.py computed it before the split (fft2, 2-D radial wavenumber)."""
    ny, nx = pred.shape[-2:]
    e = (pred.double() - true.double()).reshape(pred.shape[0], -1, ny, nx)
    power = torch.fft.fft2(e).abs().pow(2) / float(ny * nx) ** 2
    ky = torch.fft.fftfreq(ny, d=1.0 / ny, dtype=torch.float64)
    kx = torch.fft.fftfreq(nx, d=1.0 / nx, dtype=torch.float64)
    k = torch.floor(torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2) + 1e-9).to(torch.int64)
    lo, hi = edges
    masks = (k < lo, (k >= lo) & (k < hi), k >= hi)
    return torch.stack([power[..., m].sum(dim=-1).mean(dim=1) for m in masks], dim=1).sqrt()


def test_2d_frmse_is_bit_identical_to_the_original() -> None:
    g = torch.Generator().manual_seed(3)
    pred, true = torch.randn(3, 4, 20, 28, generator=g), torch.randn(3, 4, 20, 28, generator=g)
    assert torch.equal(M.frmse(pred, true), _frmse_2d_original(pred, true))
    assert torch.equal(M.frmse(pred, true, n_spatial_dims=2), _frmse_2d_original(pred, true))


def test_radial_wavenumber_3d_by_hand() -> None:
    k = M.radial_wavenumber(8, 8, 8)
    assert k.shape == (8, 8, 8)
    assert int(k[0, 0, 0]) == 0
    assert int(k[1, 2, 2]) == 3  # sqrt(1 + 4 + 4)
    assert int(k[7, 6, 5]) == 3  # fftfreq indices 7, 6, 5 of 8 are -1, -2, -3: floor(sqrt(14)) = 3
    assert int(k[4, 4, 4]) == 6  # floor(sqrt(48))


@pytest.mark.parametrize(("kz", "ky", "kx", "band"), [(0, 0, 0, 0), (1, 2, 2, 0), (2, 2, 3, 1), (0, 0, 11, 1),
                                                       (3, 4, 12, 2), (7, 7, 7, 2)])
def test_3d_plane_wave_error_lands_in_its_band(kz: int, ky: int, kx: int, band: int) -> None:
    """e = A cos(2π(kz z + ky y + kx x)/n) on an n³ grid: all error in the band of floor(|k|), RMSE A/√2."""
    n, a = 24, 0.3
    i = torch.arange(n, dtype=torch.float64)
    zz, yy, xx = torch.meshgrid(i, i, i, indexing="ij")
    err = a * torch.cos(2 * math.pi * (kz * zz + ky * yy + kx * xx) / n)
    true = torch.randn(2, 2, n, n, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f = M.frmse(true + err, true, n_spatial_dims=3)
    want = [0.0, 0.0, 0.0]
    want[band] = a if (kz, ky, kx) == (0, 0, 0) else a / math.sqrt(2)
    assert f.shape == (2, 3)
    assert f[1].tolist() == pytest.approx(want, abs=1e-12)
    r = int(math.floor(math.sqrt(kz * kz + ky * ky + kx * kx)))
    assert band == (0 if r < 4 else 1 if r < 12 else 2)  # the table above agrees with the band edges


def test_3d_parseval_bands_add_up_to_rmse() -> None:
    g = torch.Generator().manual_seed(4)
    pred, true = torch.randn(3, 2, 10, 12, 14, generator=g), torch.randn(3, 2, 10, 12, 14, generator=g)
    f = M.frmse(pred, true, n_spatial_dims=3)
    # frames are averaged inside the square root, so Σ band² = mean over frames of the frame MSE = RMSE²
    assert f.pow(2).sum(dim=1).sqrt().tolist() == pytest.approx(M.rmse(pred, true).tolist(), rel=1e-10)


def test_3d_frmse_matches_numpy_brute_force() -> None:
    """Independent: numpy fftn, wavenumber from explicit loops over the modes."""
    rng = np.random.default_rng(5)
    shape = (6, 9, 16)
    e = rng.normal(size=(1, 1, *shape))
    power = np.abs(np.fft.fftn(e[0, 0])) ** 2 / np.prod(shape) ** 2
    want = np.zeros(3)
    for idx in np.ndindex(*shape):
        k = math.sqrt(sum((j if j <= n // 2 else j - n) ** 2 for j, n in zip(idx, shape, strict=True)))
        want[0 if k < 4 else 1 if k < 12 else 2] += power[idx]
    got = M.frmse(torch.from_numpy(e), torch.zeros(1, 1, *shape, dtype=torch.float64), n_spatial_dims=3)
    assert got[0].tolist() == pytest.approx(np.sqrt(want).tolist(), rel=1e-12)


def test_frmse_rejects_too_few_axes() -> None:
    with pytest.raises(ValueError, match="3 spatial axes"):
        M.frmse(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4), n_spatial_dims=3)
