"""Receiver-signal metrics: hand-computed examples and an independent NumPy loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wavesurrogate.metrics import mean_relative_error_above, peak_normalised_rmse, relative_rmse

TRUE = torch.tensor([[0.0, 2.0, -4.0, 1e-4], [1.0, 1.0, 1.0, 1.0]])
PRED = torch.tensor([[1.0, 2.0, -2.0, 0.0], [1.0, 1.0, 1.0, 2.0]])


def test_hand_computed_values():
    # pair 0: errors (1, 0, 2, -1e-4), peak 4; pair 1: errors (0, 0, 0, 1), peak 1
    want = [math.sqrt((1 + 4 + 1e-8) / 4) / 4, math.sqrt(1 / 4)]
    torch.testing.assert_close(peak_normalised_rmse(PRED, TRUE), torch.tensor(want, dtype=torch.float64))
    want = [math.sqrt((1 + 4 + 1e-8) / (4 + 16 + 1e-8)), 1 / 2]
    torch.testing.assert_close(relative_rmse(PRED, TRUE), torch.tensor(want, dtype=torch.float64))
    # -60 dB of peak 4 is 4e-3: pair 0 keeps t = 2 and -4 (errors 0 and 1/2); 1e-4 and 0 drop out
    torch.testing.assert_close(
        mean_relative_error_above(PRED, TRUE), torch.tensor([0.25, 0.25], dtype=torch.float64)
    )
    # at -100 dB the 1e-4 sample counts too (relative error 1), the zero sample never
    assert float(mean_relative_error_above(PRED, TRUE, db=-100)[0]) == pytest.approx((0 + 0.5 + 1) / 3)


def _numpy_loop(p: np.ndarray, t: np.ndarray, db: float) -> tuple[list[float], list[float], list[float]]:
    """The three metrics pair by pair, sample by sample."""
    pn, rr, mre = [], [], []
    for pi, ti in zip(p.astype(np.float64), t.astype(np.float64), strict=True):
        peak = max(abs(v) for v in ti)
        pn.append(math.sqrt(sum((a / peak - b / peak) ** 2 for a, b in zip(pi, ti, strict=True)) / len(ti)))
        rr.append(math.sqrt(sum((a - b) ** 2 for a, b in zip(pi, ti, strict=True)) / sum(b * b for b in ti)))
        kept = [abs(a - b) / abs(b) for a, b in zip(pi, ti, strict=True) if abs(b) >= 10 ** (db / 20) * peak]
        mre.append(sum(kept) / len(kept))
    return pn, rr, mre


@pytest.mark.parametrize("db", [-60.0, -20.0, 0.0])
def test_against_an_independent_numpy_loop(db: float):
    g = np.random.default_rng(0)
    t = g.normal(size=(5, 64)) * np.exp(-np.arange(64) / 8.0)  # decaying impulse responses
    p = t + 0.01 * g.normal(size=t.shape)
    got = [f(torch.from_numpy(p), torch.from_numpy(t)).numpy() for f in (peak_normalised_rmse, relative_rmse)]
    got.append(mean_relative_error_above(torch.from_numpy(p), torch.from_numpy(t), db=db).numpy())
    for g_, w in zip(got, _numpy_loop(p, t, db), strict=True):
        np.testing.assert_allclose(g_, w, rtol=1e-12)


def test_silent_pair_is_nan_and_bad_input_refused():
    p, t = torch.ones(2, 3), torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    for f in (peak_normalised_rmse, relative_rmse, mean_relative_error_above):
        v = f(p, t)
        assert math.isnan(float(v[0])) and math.isfinite(float(v[1]))
    with pytest.raises(ValueError, match="n_times"):
        peak_normalised_rmse(torch.ones(2, 3, 4), torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="db"):
        mean_relative_error_above(p, t, db=6.0)
