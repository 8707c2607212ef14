"""The metric suite: summarise pools batches like the formulas written out by hand, in 2-D and 3-D."""

from __future__ import annotations

import math

import pytest
import torch

from wavesurrogate import metrics as M


def _by_hand(pred: list[torch.Tensor], true: list[torch.Tensor], d: int) -> dict:
    p, t = torch.cat(pred).double(), torch.cat(true).double()
    rel = M.rel_l2(p, t)
    fin = rel[~rel.isnan()]
    e = p - t
    band = M.frmse(p, t, n_spatial_dims=d).pow(2).mean(dim=0).sqrt()
    return {"n_samples": p.shape[0], "rel_l2": float(fin.mean()),
            "rel_l2_pooled": math.sqrt(float(e.pow(2).sum()) / float(t.pow(2).sum())),
            "rmse": math.sqrt(float(e.pow(2).reshape(p.shape[0], -1).mean(dim=1).mean())),
            "max_error": float(e.abs().max()), "frmse": dict(zip(M.BANDS, band.tolist(), strict=True)),
            "n_zero_truth": int(rel.isnan().sum())}


@pytest.mark.parametrize("d", [2, 3])
def test_summarise_equals_the_pooled_formulas(d: int) -> None:
    g = torch.Generator().manual_seed(7)
    shape = (3, 8, 10) if d == 2 else (2, 6, 8, 10)
    preds = [torch.randn(n, *shape, generator=g) for n in (2, 3)]
    trues = [torch.randn(n, *shape, generator=g) for n in (2, 3)]
    trues[1][0] = 0.0  # one all-zero true sample: counted, left out of the mean relative error
    got = M.summarise(preds, trues, n_spatial_dims=d)
    want = _by_hand(preds, trues, d)
    assert list(got) == ["n_samples", "rel_l2", "rel_l2_pooled", "rmse", "max_error", "frmse", "n_zero_truth"]
    assert got["n_samples"] == 5 and got["n_zero_truth"] == 1
    for k in ("rel_l2", "rel_l2_pooled", "rmse", "max_error"):
        assert got[k] == pytest.approx(want[k], rel=1e-12), k
    assert got["frmse"] == pytest.approx(want["frmse"], rel=1e-12)


def test_summarise_all_zero_truth_gives_none() -> None:
    got = M.summarise([torch.ones(2, 4, 4)], [torch.zeros(2, 4, 4)])
    assert got["rel_l2"] is None and got["rel_l2_pooled"] is None and got["n_zero_truth"] == 2
    assert got["rmse"] == pytest.approx(1.0) and got["frmse"]["low"] == pytest.approx(1.0)


def test_a_new_metric_is_one_line_in_the_suite() -> None:
    def mean_error(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        return (pred.double() - true.double()).reshape(pred.shape[0], -1).mean(dim=1)

    suite = (*M.METRICS, M.Metric("bias", "spatial", mean_error, lambda v: float(v.mean())))
    got = M.summarise([torch.full((2, 3, 3), 2.0)], [torch.ones(2, 3, 3)], metrics=suite)
    assert got["bias"] == pytest.approx(1.0)
    assert {m.kind for m in M.METRICS} == {"spatial", "spectral"}
    assert {m.kind for m in M.TEMPORAL} == {"temporal"}


def test_summarise_rejects_no_samples() -> None:
    with pytest.raises(ValueError):
        M.summarise([], [])
