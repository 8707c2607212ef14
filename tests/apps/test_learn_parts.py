"""Parts of wavesurrogate learn against closed forms: Bayesian aggregation, KL/JS of Gaussians, interpolation
to the common grid, fidelity campaigns in one set of units, greedy batches within the budget, coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wavesurrogate.apps.learn_acquire import choose
from wavesurrogate.apps.learn_problem import fidelity_campaign
from wavesurrogate.config.base import validate
from wavesurrogate.config.learn import LearnConfig, check_learn
from wavesurrogate.errors import ConfigError
from wavesurrogate.nn import registry
from wavesurrogate.nn.models.dmfdal import aggregate, js_normal, kl_normal
from wavesurrogate.tasks.multi_fidelity import Basis, field_metrics, interp_matrix, to_common


def _cfg(**kw) -> LearnConfig:
    return validate(LearnConfig, {"design": {"initial": {16: 4, 64: 2}}, "budget_s": 1.0, **kw})


def test_aggregation_is_the_gaussian_posterior_of_independent_observations() -> None:
    g = torch.Generator().manual_seed(0)
    r_mu = torch.randn(5, 3, generator=g, dtype=torch.float64)
    r_var = 0.1 + torch.rand(5, 3, generator=g, dtype=torch.float64)
    mu, var = aggregate(r_mu, r_var)
    prec = 1.0 + (1.0 / r_var.numpy()).sum(0)  # prior N(0, 1) times 5 Gaussian likelihoods, in closed form
    np.testing.assert_allclose(var.numpy(), 1.0 / prec)
    np.testing.assert_allclose(mu.numpy(), (r_mu.numpy() / r_var.numpy()).sum(0) / prec)
    mu0, var0 = aggregate(r_mu[:0], r_var[:0])  # no observation: the prior
    assert torch.equal(mu0, torch.zeros_like(mu0)) and torch.equal(var0, torch.ones_like(var0))
    # adding observations one at a time (the greedy batch's running sums) equals aggregating them together
    prec3, num3 = 1.0 / var0 + (1 / r_var[:3]).sum(0), (r_mu[:3] / r_var[:3]).sum(0)
    mu2, var2 = aggregate(r_mu[3:], r_var[3:], prec3, num3)
    torch.testing.assert_close((mu2, var2), (mu, var))


def test_kl_and_js_of_gaussians() -> None:
    t = torch.tensor
    # KL(N(1, 2) ‖ N(0, 1)) = ½ (log(1/2) + 2 + 1 − 1)
    kl = float(kl_normal(t([1.0]), t([2.0]), t([0.0]), t([1.0])))
    assert kl == pytest.approx(0.5 * (math.log(0.5) + 2))
    a, b = (t([0.3, -1.0]), t([0.5, 2.0])), (t([1.0, 0.0]), t([1.5, 0.2]))
    assert float(js_normal(*a, *a)) == pytest.approx(0.0, abs=1e-7)
    js_ab = float(js_normal(*a, *b))
    assert js_ab == pytest.approx(float(js_normal(*b, *a))) and js_ab > 0
    # equal variances: m = N(μ̄, σ² + Δ²/4), KL by the formula
    d = 2.0
    kl = 0.5 * (math.log(1 + d**2 / 4) + (1 + d**2 / 4) ** -1 * (1 + d**2 / 4) - 1)
    assert float(js_normal(t([0.0]), t([1.0]), t([d]), t([1.0]))) == pytest.approx(kl)


def test_interpolation_to_the_common_grid_is_exact_for_bilinear_fields() -> None:
    m = interp_matrix(16, 64)
    assert m.shape == (64, 16) and np.allclose(m.sum(1), 1.0)
    x16, x64 = np.linspace(0, 1, 16), np.linspace(0, 1, 64)
    f = (2 + 3 * x16[None, :]) * (1 - x16[:, None])  # bilinear in (x, y): reproduced exactly
    g = to_common(f[None, None], 64).reshape(64, 64)
    np.testing.assert_allclose(g, (2 + 3 * x64[None, :]) * (1 - x64[:, None]), atol=1e-12)
    same = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    assert np.array_equal(to_common(same, 8), same.reshape(2, -1))


def test_fidelities_are_one_problem_in_one_set_of_units() -> None:
    cfg = _cfg()
    camps = [fidelity_campaign(cfg, n) for n in cfg.fidelities]
    for c in camps:
        g, t = c.grid_obj(), c.time
        assert g.lx == pytest.approx(630.0) and g.ly == pytest.approx(630.0)
        assert t.dt_s * t.frame_stride == pytest.approx(0.1)  # the same output times at every grid
        assert c.boundary.width * c.grid.dx_m == pytest.approx(200.0, rel=0.1)  # the same sponge in metres
    assert [c.time.frame_stride for c in camps] == sorted({c.time.frame_stride for c in camps})


def test_config_checks() -> None:
    with pytest.raises(ConfigError, match="unknown fidelity 48"):
        check_learn(_cfg(design={"initial": {48: 2, 64: 2}}))
    with pytest.raises(ConfigError, match="empty parameter range"):
        check_learn(_cfg(problem={"source_x_m": [200.0, 200.0]}))
    with pytest.raises(ConfigError, match="below one solve"):
        check_learn(_cfg(costs_s={16: 0.5, 32: 1.0, 64: 2.0}, budget_s=0.4))
    with pytest.raises(ConfigError, match="below one solve"):  # random top-fidelity needs one top solve
        check_learn(_cfg(costs_s={16: 0.5, 32: 1.0, 64: 2.0}, budget_s=1.5, strategy="random_top"))


def _model() -> tuple[torch.nn.Module, list, torch.Tensor]:
    torch.manual_seed(0)
    kw = {"n_params": 4, "n_out": 3, "n_fidelities": 3, "latent": 2, "hidden": 8}
    model = registry.build("dmfdal", kw)
    g = torch.Generator().manual_seed(1)
    data = [(torch.rand(n, 4, generator=g) * 2 - 1, torch.randn(n, 3, generator=g)) for n in (6, 3, 2)]
    return model, data, torch.rand(40, 4, generator=g) * 2 - 1


@pytest.mark.parametrize("strategy", ["active", "random_top", "random_mixed"])
def test_batches_stay_within_the_budget_and_take_each_candidate_once(strategy: str) -> None:
    model, data, cand = _model()
    costs = [0.1, 0.3, 1.0]
    picks = choose(strategy, model, data, cand, costs, 2.05, np.random.default_rng(0))
    spent = sum(costs[lv] for lv, _ in picks)
    assert spent <= 2.05 + 1e-12 and len({c for _, c in picks}) == len(picks)
    assert 2.05 - spent < 0.1  # stops only when the cheapest affordable fidelity no longer fits
    if strategy == "random_top":
        assert [lv for lv, _ in picks] == [2, 2]


def test_active_prefers_the_top_fidelity_when_it_costs_the_same() -> None:
    """At equal cost a top-fidelity case informs both parts of z_L, a lower one only the global part."""
    model, data, cand = _model()
    picks = choose("active", model, data, cand, [1.0, 1.0, 1.0], 1.0, np.random.default_rng(0))
    assert len(picks) == 1 and picks[0][0] == 2


def test_coverage_and_nrmse_of_a_calibrated_gaussian() -> None:
    rng = np.random.default_rng(0)
    n, p, d = 400, 3, 5
    modes = np.linalg.qr(rng.standard_normal((d, p)))[0]
    basis = Basis(np.zeros(d), modes, np.ones(p))
    mean = rng.standard_normal((n, p))
    truth = (mean + 0.5 * rng.standard_normal((n, p))) @ modes.T  # in the span: residual variance 0
    means, var = torch.from_numpy(mean)[None], torch.full((n, p), 0.25, dtype=torch.float64)
    m = field_metrics(basis, means, var, np.zeros(d), truth)
    assert m["coverage90"] == pytest.approx(0.90, abs=0.02)
    assert m["nrmse"] == pytest.approx(np.linalg.norm(mean @ modes.T - truth) / np.linalg.norm(truth))


def test_cases_are_solved_by_the_campaign_code_in_process_and_on_dask() -> None:
    """learn's solves (campaign.solve_specs) equal the campaign's own case solver, in process and via Dask."""
    from wavesurrogate.apps.learn_problem import _spec, solve
    from wavesurrogate.data.cases import solve_case

    cfg = _cfg(fidelities=[10, 20], design={"initial": {10: 2, 20: 2}},
               problem={"backend": "numpy", "frames": [3, 5], "space_order": 2})
    params = np.array([[200.0, 300.0, 4.0, 0.1], [400.0, 250.0, 5.5, -0.2]])
    fields, solve_s = solve(cfg, 20, params)
    assert fields.shape == (2, 2, 20, 20) and np.all(solve_s > 0) and np.abs(fields).max() > 0
    direct = solve_case(fidelity_campaign(cfg, 20), _spec(cfg, 1, params[1])).frames[[3, 5]]
    assert np.array_equal(fields[1], direct)
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                                  silence_logs=40) as cluster:
        viadask, _ = solve(cfg, 20, params, scheduler=cluster.scheduler_address)
    assert np.array_equal(viadask, fields)
