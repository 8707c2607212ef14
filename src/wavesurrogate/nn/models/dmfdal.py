"""Multi-fidelity surrogates with uncertainty: the disentangled latent model (after D-MFDAL), a deep ensemble.

Both take normalised parameters ``x [N, P]`` and work on a common normalised output ``y [N, D]`` (every
fidelity's field in one representation; the task fixes which) with a fidelity index ``l`` (0 = coarsest).

``DMFDAL`` (registry name ``dmfdal``; our implementation of the method of Wu et al., ICML 2023):
- per fidelity a *local* and a *global* encoder ``MLP(x, y_l) → (r_μ, r_σ² = 0.1 + 0.9·sigmoid(·))``;
- Bayesian aggregation with the prior N(0, 1): ``σ_z² = 1/(1 + Σ 1/r_σ²)``, ``μ_z = σ_z² Σ r_μ/r_σ²``
  (``aggregate``); the local latent ``u_l`` from fidelity l's points, the global latent ``g`` from every
  fidelity's global representations, and per fidelity a view ``g_l`` of it from its own points only (the
  Jensen–Shannon term pulls these views together);
- per fidelity a decoder of ``[x, z_l]``, ``z_l = [u_l, g]``, → mean and softplus variance. Our choice,
  so that cheap data teach the top fidelity: the decoders share an MLP of x (features h); fidelity l's
  mean is a shared linear head of h + its own correction (initialised at zero, penalised by the task) +
  a linear map of z_l, its variance a softplus of a shared linear map of h + its own offset per
  output (corrections and offsets start at zero and are penalised: a per-point variance head of the top
  fidelity, fitted on its few cases, shrank to cover ~20 % of held-out values). Low-fidelity data train
  the shared features and heads; the top fidelity's latent and corrections are its own (the latents
  stay disentangled).

``MFEnsemble`` (``mf_ensemble``): ``members`` independent MLPs of ``[x, one-hot(l)]`` → mean and softplus
variance; the predictive distribution is their equal mixture.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavesurrogate.nn.layers.blocks import MLP
from wavesurrogate.nn.registry import MULTI_FIDELITY, register

__all__ = ["DMFDAL", "MFEnsemble", "aggregate", "kl_normal", "js_normal", "VAR_FLOOR"]

VAR_FLOOR = 1e-4  # smallest predictive variance of a decoder (normalised units)


def aggregate(r_mu: Tensor, r_var: Tensor, prior_prec: Tensor | float = 1.0, prior_num: Tensor | float = 0.0
              ) -> tuple[Tensor, Tensor]:
    """Posterior (μ_z, σ_z²) [..., d] of N(0, 1) updated by representations r [..., N, d]:
    σ_z² = 1/(prior_prec + Σ 1/r_σ²), μ_z = σ_z² (prior_num + Σ r_μ/r_σ²). ``prior_*`` continue a sum."""
    prec = prior_prec + (1.0 / r_var).sum(-2)
    var = 1.0 / prec
    return var * (prior_num + (r_mu / r_var).sum(-2)), var


def kl_normal(mu_p: Tensor, var_p: Tensor, mu_q: Tensor, var_q: Tensor) -> Tensor:
    """KL(N(μ_p, σ_p²) ‖ N(μ_q, σ_q²)) of diagonal Gaussians, summed over the last axis (nats)."""
    return 0.5 * (torch.log(var_q / var_p) + (var_p + (mu_p - mu_q) ** 2) / var_q - 1.0).sum(-1)


def js_normal(mu_p: Tensor, var_p: Tensor, mu_q: Tensor, var_q: Tensor) -> Tensor:
    """Jensen–Shannon divergence of two diagonal Gaussians with the mixture replaced by its moment-matched
    Gaussian m (½ KL(p‖m) + ½ KL(q‖m); the exact mixture has no closed form)."""
    mu_m = 0.5 * (mu_p + mu_q)
    var_m = 0.5 * (var_p + var_q) + 0.25 * (mu_p - mu_q) ** 2
    return 0.5 * (kl_normal(mu_p, var_p, mu_m, var_m) + kl_normal(mu_q, var_q, mu_m, var_m))


def _rep(net: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    h = net(torch.cat([x, y], dim=-1))
    mu, s = h.chunk(2, dim=-1)
    return mu, 0.1 + 0.9 * torch.sigmoid(s)


@register("dmfdal", MULTI_FIDELITY, capabilities={"onnx": False})
class DMFDAL(nn.Module):
    """Disentangled multi-fidelity latent model: per-fidelity local/global encoders, decoders (see module)."""

    def __init__(self, n_params: int, n_out: int, n_fidelities: int, latent: int = 16, hidden: int = 128,
                 depth: int = 2) -> None:
        super().__init__()
        self.n_fidelities, self.latent = n_fidelities, latent

        def enc() -> nn.ModuleList:
            return nn.ModuleList(MLP(n_params + n_out, hidden, depth, 2 * latent, activation="silu")
                                 for _ in range(n_fidelities))

        self.local_enc, self.global_enc = enc(), enc()
        self.body = MLP(n_params, hidden, depth, hidden, activation="silu")
        self.mean_shared = nn.Linear(hidden, n_out)
        self.mean_delta = nn.ModuleList(nn.Linear(hidden, n_out) for _ in range(n_fidelities))
        self.latent_mean = nn.ModuleList(nn.Linear(2 * latent, n_out, bias=False)
                                         for _ in range(n_fidelities))
        self.var_shared = nn.Linear(hidden, n_out)
        self.var_offset = nn.Parameter(torch.zeros(n_fidelities, n_out))
        for lin in self.mean_delta:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        for lin in self.latent_mean:
            nn.init.zeros_(lin.weight)

    def local_rep(self, level: int, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Local representations (r_μ, r_σ²) [N, latent] of fidelity ``level``'s points."""
        return _rep(self.local_enc[level], x, y)

    def global_rep(self, level: int, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Global representations (r_μ, r_σ²) [N, latent] of fidelity ``level``'s points."""
        return _rep(self.global_enc[level], x, y)

    def posteriors(self, data: list[tuple[Tensor, Tensor]], masks: list[Tensor] | None = None
                   ) -> dict[str, list[tuple[Tensor, Tensor]]]:
        """Latent posteriors from per-fidelity data [(x_l, y_l)]: ``local`` [(μ, σ²)] per fidelity, ``views``
        (global latent from fidelity l alone) per fidelity, ``global`` [(μ, σ²)] (one entry, all data).
        With ``masks`` (bool [N_l] per fidelity), the same from the masked points (the context) as ``ctx_*``
        entries too: the representations are computed once."""
        out: dict[str, list] = {k: [] for k in ("local", "views", "ctx_local", "ctx_views")}
        g_all, g_ctx = [], []
        for level, (x, y) in enumerate(data):
            lm, lv = self.local_rep(level, x, y)
            gm, gv = self.global_rep(level, x, y)
            out["local"].append(aggregate(lm, lv))
            out["views"].append(aggregate(gm, gv))
            g_all.append((gm, gv))
            if masks is not None:
                m = masks[level]
                out["ctx_local"].append(aggregate(lm[m], lv[m]))
                out["ctx_views"].append(aggregate(gm[m], gv[m]))
                g_ctx.append((gm[m], gv[m]))
        out["global"] = [aggregate(torch.cat([a for a, _ in g_all]), torch.cat([b for _, b in g_all]))]
        if masks is not None:
            out["ctx_global"] = [aggregate(torch.cat([a for a, _ in g_ctx]),
                                           torch.cat([b for _, b in g_ctx]))]
        return out

    def decode(self, level: int, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance [N, D] of fidelity ``level`` at x [N, P], z_l [2·latent] or [N, 2·latent]."""
        z = z.expand(x.shape[0], -1) if z.ndim == 1 else z
        h = F.silu(self.body(x))
        mean = self.mean_shared(h) + self.mean_delta[level](h) + self.latent_mean[level](z)
        return mean, F.softplus(self.var_shared(h) + self.var_offset[level]) + VAR_FLOOR

    def forward(self, x: Tensor, level: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance [N, D] at x [N, P], fidelities ``level`` [N] (long), latents z [N, 2·latent]."""
        mean = x.new_zeros(x.shape[0], self.mean_shared.out_features)
        var = torch.ones_like(mean)
        for lv in range(self.n_fidelities):
            m = level == lv
            if bool(m.any()):
                mean[m], var[m] = self.decode(lv, x[m], z[m])
        return mean, var


@register("mf_ensemble", MULTI_FIDELITY, capabilities={"onnx": False})
class MFEnsemble(nn.Module):
    """Deep ensemble: ``members`` MLPs of [x, one-hot(fidelity)] → (mean, softplus variance)."""

    def __init__(self, n_params: int, n_out: int, n_fidelities: int, members: int = 5, hidden: int = 128,
                 depth: int = 2) -> None:
        super().__init__()
        self.n_fidelities = n_fidelities
        self.nets = nn.ModuleList(MLP(n_params + n_fidelities, hidden, depth, 2 * n_out, activation="silu")
                                  for _ in range(members))

    def forward(self, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor]:
        """Per-member mean and variance [M, N, D] at x [N, P], fidelities ``level`` [N] (long)."""
        h = torch.cat([x, F.one_hot(level, self.n_fidelities).to(x.dtype)], dim=-1)
        out = torch.stack([net(h) for net in self.nets])
        mean, s = out.chunk(2, dim=-1)
        return mean, F.softplus(s) + VAR_FLOOR
