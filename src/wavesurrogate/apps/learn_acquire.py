"""Which cases a round of ``wavesurrogate learn`` solves: information gain per measured cost, or a baseline.

Active (after D-MFDAL): for a candidate x at fidelity l the model predicts its own output ŷ_l(x) (posterior
mean latents), encodes (x, ŷ_l) and updates the top fidelity's latent z_L = [u_L, g]: the global part g at
any fidelity, the local part u_L only at the top. The gain is KL(updated ‖ current) in nats; the score is
gain / cost_l. The batch is greedy: take the best affordable (candidate, fidelity), add its representation
to the current posterior, rescore, until nothing fits the remaining budget. Each candidate is taken once.

Baselines: ``random_top`` (candidates in random order, top fidelity, until the budget is spent) and
``random_mixed`` (random order, each a fidelity drawn uniformly among those still affordable).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from wavesurrogate.nn.models.dmfdal import kl_normal

__all__ = ["choose", "info_gain_batch"]

_EPS = 1e-12  # budget tolerance in s (costs are sums of floats)


def _prec_num(mu: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
    """(precision, precision·mean) of a posterior: the running sums of Bayesian aggregation."""
    return 1.0 / var, mu / var


@torch.no_grad()
def info_gain_batch(model: nn.Module, data: list[tuple[Tensor, Tensor]], cand: Tensor, costs: list[float],
                    budget: float) -> list[tuple[int, int]]:
    """Greedy batch [(fidelity index, candidate index)] maximising information gain about z_L per cost."""
    model.eval()
    n_lv, top = len(costs), len(costs) - 1
    post = model.posteriors(data)
    (u_mu, u_var), (g_mu, g_var) = post["local"][top], post["global"][0]
    pu, nu = _prec_num(u_mu, u_var)
    pg, ng = _prec_num(g_mu, g_var)
    # each (fidelity, candidate)'s contribution to the precision sums: global [L, C, d], local (top) [C, d]
    add_pg, add_ng = [], []
    add_pu = add_nu = None
    for lv in range(n_lv):
        z = torch.cat([post["local"][lv][0], g_mu])
        y_hat, _ = model.decode(lv, cand, z)
        rm, rv = model.global_rep(lv, cand, y_hat)
        add_pg.append(1.0 / rv)
        add_ng.append(rm / rv)
        if lv == top:
            rm, rv = model.local_rep(lv, cand, y_hat)
            add_pu, add_nu = 1.0 / rv, rm / rv
    add_pg, add_ng = torch.stack(add_pg), torch.stack(add_ng)
    cost_t = torch.tensor(costs, dtype=torch.float64)
    free = torch.ones(len(cand), dtype=torch.bool)
    picks: list[tuple[int, int]] = []
    left = float(budget)
    while True:
        afford = cost_t <= left + _EPS
        if not bool(afford.any()) or not bool(free.any()):
            return picks
        cur_g, cur_u = (ng / pg, 1.0 / pg), (nu / pu, 1.0 / pu)
        new_pg = pg + add_pg
        gain = kl_normal((ng + add_ng) / new_pg, 1.0 / new_pg, *cur_g).double()  # [L, C]
        new_pu = pu + add_pu
        gain[top] += kl_normal((nu + add_nu) / new_pu, 1.0 / new_pu, *cur_u).double()
        score = gain / cost_t[:, None]
        score[~afford] = -torch.inf
        score[:, ~free] = -torch.inf
        lv, c = divmod(int(torch.argmax(score)), len(cand))
        if not torch.isfinite(score[lv, c]):
            return picks
        picks.append((lv, c))
        free[c] = False
        left -= costs[lv]
        pg, ng = pg + add_pg[lv, c], ng + add_ng[lv, c]
        if lv == top:
            pu, nu = pu + add_pu[c], nu + add_nu[c]


def _random(n_cand: int, costs: list[float], budget: float, rng: np.random.Generator, top_only: bool
            ) -> list[tuple[int, int]]:
    picks, left = [], float(budget)
    for c in rng.permutation(n_cand):
        ok = [lv for lv, cost in enumerate(costs)
              if cost <= left + _EPS and (not top_only or lv == len(costs) - 1)]
        if not ok:
            break
        lv = ok[-1] if top_only else int(ok[int(rng.integers(len(ok)))])
        picks.append((lv, int(c)))
        left -= costs[lv]
    return picks


def choose(strategy: str, model: nn.Module, data: list[tuple[Tensor, Tensor]], cand: Tensor,
           costs: list[float], budget: float, rng: np.random.Generator) -> list[tuple[int, int]]:
    """One round's queries [(fidelity index, candidate index)] of ``strategy`` within ``budget`` seconds."""
    if strategy == "active":
        return info_gain_batch(model, data, cand, costs, budget)
    return _random(len(cand), costs, budget, rng, top_only=strategy == "random_top")
