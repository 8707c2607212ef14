"""Multi-fidelity task: parameters → the field at chosen times, from solves at several grid sizes.

What the outputs mean: every fidelity's field (n × n nodes on one domain, frames [T, n, n]) is interpolated
bilinearly onto the top fidelity's N × N nodes (the common representation: same coordinates, same units)
and compressed by a fixed POD basis of the initial design (``Basis``: p modes, coefficients scaled to unit
variance), so one normalised vector ``y [p]`` per case at any fidelity. Errors are measured in field units on
the top grid: ``nrmse`` (pooled relative L2 over cases, frames and nodes) and the coverage of the 90 %
predictive interval. Losses and the fitting of ``dmfdal`` / ``mf_ensemble`` models live here; the models
are trained on a few hundred in-memory cases per round by ``fit`` (full batch, a fixed number of Adam
steps, seeded), called by ``apps/learn.py``, not by ``train/loop.py`` (which trains from a data file).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.metrics.pod import pod_modes
from wavesurrogate.nn.models.dmfdal import js_normal, kl_normal
from wavesurrogate.nn.registry import MULTI_FIDELITY
from wavesurrogate.tasks.base import Task

__all__ = ["MultiFidelity", "TASK", "Basis", "fit_basis", "interp_matrix", "to_common", "fit", "predict",
           "top_latent", "field_metrics", "Z90"]

Z90 = 1.6448536269514722  # standard normal quantile 0.95: the central 90 % interval is mean ± Z90·sd
Data = list[tuple[Tensor, Tensor]]  # per fidelity (x [N_l, P], y [N_l, p]), normalised


def interp_matrix(n: int, n_top: int) -> np.ndarray:
    """Linear interpolation [n_top, n] from n equispaced nodes to n_top equispaced nodes of one interval."""
    xc, xf = np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, n_top)
    return np.stack([np.interp(xf, xc, col) for col in np.eye(n)], axis=1)


def to_common(fields: np.ndarray, n_top: int) -> np.ndarray:
    """Fields [N, T, n, n] → float64 [N, T·n_top²] on the top grid (bilinear; the identity at n = n_top)."""
    n = fields.shape[-1]
    f = fields.astype(np.float64)
    if n != n_top:
        m = interp_matrix(n, n_top)
        f = np.einsum("ia,ntab,jb->ntij", m, f, m)
    return f.reshape(len(f), -1)


@dataclass(frozen=True)
class Basis:
    """Fixed linear compression: mean [D], orthonormal modes [D, p], coefficient scales [p] (field units)."""

    mean: np.ndarray
    modes: np.ndarray
    scale: np.ndarray

    def encode(self, f: np.ndarray) -> Tensor:
        """Common-grid fields [N, D] → normalised coefficients float32 [N, p]."""
        return torch.from_numpy(((f - self.mean) @ self.modes / self.scale).astype(np.float32))

    def decode(self, y: np.ndarray) -> np.ndarray:
        """Normalised coefficients [..., p] → fields [..., D] (float64)."""
        return self.mean + (np.asarray(y, np.float64) * self.scale) @ self.modes.T

    def residual_var(self, f: np.ndarray) -> np.ndarray:
        """Per-node mean squared residual [D] of fields [N, D] outside the basis (what it cannot hold)."""
        c = (f - self.mean) @ self.modes
        return ((f - self.mean - c @ self.modes.T) ** 2).mean(0)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays to persist."""
        return {"basis_mean": self.mean, "basis_modes": self.modes, "basis_scale": self.scale}


def fit_basis(fields: np.ndarray, p: int) -> Basis:
    """POD basis of common-grid fields [N, D]: their mean and top-p centred modes (fewer if of lower rank)."""
    mean = fields.mean(0)
    _, v = pod_modes(torch.from_numpy(fields - mean))
    modes = v[:, :p].numpy()
    scale = ((fields - mean) @ modes).std(0)
    return Basis(mean, modes, np.maximum(scale, 1e-12 * max(float(scale.max(initial=0.0)), 1e-300)))


# ------------------------------------------------------------------------------------------------ losses
BETA = 0.5  # β-NLL (Seitzer et al., ICLR 2022): the Gaussian NLL weighted by stop-grad(σ^2β) per value


def _nll(y: Tensor, mean: Tensor, var: Tensor, dims: tuple[int, ...] | None = None) -> Tensor:
    """β-NLL: without the weight, points given a large variance stop teaching the mean (it underfits)."""
    nll = 0.5 * (torch.log(2 * torch.pi * var) + (y - mean) ** 2 / var) * var.detach() ** BETA
    return nll.mean() if dims is None else nll.mean(dim=dims)


def _sample(mu: Tensor, var: Tensor, gen: torch.Generator) -> Tensor:
    return mu + var.sqrt() * torch.randn(mu.shape, generator=gen)


def dmfdal_loss(model: nn.Module, data: Data, mcfg: Any, gen: torch.Generator) -> Tensor:
    """Σ_l NLL_l (z_l from the posterior of all data) + KL(full ‖ context) / N + Σ JS(g_l, g_l+1) + L2 of the
    fidelity corrections of the mean head."""
    masks = [torch.rand(len(x), generator=gen) < mcfg.context_fraction for x, _ in data]
    full = model.posteriors(data, masks)
    ctx = {"global": full["ctx_global"], "local": full["ctx_local"]}
    g = _sample(*full["global"][0], gen)
    nll = torch.zeros(())
    for level, (x, y) in enumerate(data):
        if len(x):
            z = torch.cat([_sample(*full["local"][level], gen), g])
            nll = nll + _nll(y, *model.decode(level, x, z))
    kl = kl_normal(*full["global"][0], *ctx["global"][0])
    kl = kl + sum(kl_normal(*f, *c) for f, c in zip(full["local"], ctx["local"], strict=True))
    have = [lv for lv, (x, _) in enumerate(data) if len(x)]
    js = sum((js_normal(*full["views"][a], *full["views"][b]) for a, b in zip(have, have[1:], strict=False)),
             torch.zeros(()))
    delta = sum(lin.weight.pow(2).sum() + lin.bias.pow(2).sum() for lin in model.mean_delta)
    delta = delta + sum(lin.weight.pow(2).sum() for lin in model.latent_mean)
    delta = delta + model.var_offset.pow(2).sum()
    n = sum(len(x) for x, _ in data)
    return nll + mcfg.kl_weight * kl / max(n, 1) + mcfg.js_weight * js + mcfg.delta_l2 * delta


def ensemble_loss(model: nn.Module, data: Data, mcfg: Any, gen: torch.Generator) -> Tensor:
    """Σ_l over fidelities of every member's mean NLL (members are trained independently, summed)."""
    del mcfg, gen
    loss = torch.zeros(())
    for level, (x, y) in enumerate(data):
        if len(x):
            mean, var = model(x, torch.full((len(x),), level, dtype=torch.long))
            loss = loss + _nll(y, mean, var, dims=(1, 2)).sum()
    return loss


def fit(model: nn.Module, data: Data, mcfg: Any, steps: int, seed: int) -> float:
    """``steps`` full-batch Adam steps (lr ``mcfg.lr``) on ``data``, randomness from ``seed``; last loss."""
    loss_fn = dmfdal_loss if mcfg.kind == "dmfdal" else ensemble_loss
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(model.parameters(), lr=mcfg.lr)
    model.train()
    loss = torch.zeros(())
    for _ in range(steps):
        loss = loss_fn(model, data, mcfg, gen)
        if not torch.isfinite(loss):
            raise ConfigError(f"model: the training loss became {float(loss)} (lower model.lr?)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


# ------------------------------------------------------------------------------------------- prediction
@torch.no_grad()
def top_latent(model: nn.Module, data: Data) -> dict[str, tuple[Tensor, Tensor]]:
    """Posteriors of the top fidelity's latent z_L = [u_L, g] given all data: ``local`` and ``global``."""
    post = model.posteriors(data)
    return {"local": post["local"][-1], "global": post["global"][0]}


@torch.no_grad()
def predict(model: nn.Module, data: Data, x: Tensor, level: int, samples: int, seed: int
            ) -> tuple[Tensor, Tensor]:
    """Predictive means per latent sample / member [S, N, p] and the mean predictive variance [N, p] of
    fidelity ``level`` at x [N, P] (normalised), given the training data (used by the latent model)."""
    model.eval()
    if hasattr(model, "nets"):  # ensemble: members are the samples
        means, var = model(x, torch.full((len(x),), level, dtype=torch.long))
        return means, var.mean(0)
    post = model.posteriors(data)
    gen = torch.Generator().manual_seed(int(seed))
    means, vars_ = [], []
    for _ in range(samples):
        z = torch.cat([_sample(*post["local"][level], gen), _sample(*post["global"][0], gen)])
        m, v = model.decode(level, x, z)
        means.append(m)
        vars_.append(v)
    return torch.stack(means), torch.stack(vars_).mean(0)


def field_metrics(basis: Basis, means: Tensor, var: Tensor, resid_var: np.ndarray, truth: np.ndarray
                  ) -> dict[str, float]:
    """nRMSE (pooled relative L2) of the predictive mean and coverage of its 90 % interval on the top grid.

    means [S, N, p], var [N, p] normalised; truth [N, D] common-grid fields. The predictive variance per
    node is the spread of the decoded sample means + the decoded variance Σ_k φ_k² s_k² σ_k² + the basis'
    residual variance ``resid_var`` [D] (Gaussian, so the interval is mean ± 1.645 sd)."""
    fields = basis.decode(means.double().numpy())  # [S, N, D]
    mean = fields.mean(0)
    spread = fields.var(0)
    decoded = (var.double().numpy() * basis.scale**2) @ (basis.modes**2).T
    sd = np.sqrt(spread + decoded + resid_var)
    err = mean - truth
    return {"nrmse": float(np.linalg.norm(err) / np.linalg.norm(truth)),
            "coverage90": float(np.mean(np.abs(err) <= Z90 * sd))}


class MultiFidelity(Task):
    """Parameters → field at chosen times from solves at several fidelities (``wavesurrogate learn``)."""

    name = "multi_fidelity"
    interfaces = (MULTI_FIDELITY,)

    def prepare(self, cfg: Any, stats: dict[str, Any] | None = None) -> Any:
        """Not trained from a data file: ConfigError pointing to ``wavesurrogate learn``."""
        raise ConfigError("data.task: 'multi_fidelity' is trained by `wavesurrogate learn`, not `train`")

    def evaluate(self, model: nn.Module, info: Any, f: Any, cases: np.ndarray, **kw: Any) -> dict[str, Any]:
        """Not evaluated from a data file (``wavesurrogate learn`` records nRMSE and coverage per round)."""
        raise ConfigError("data.task: 'multi_fidelity' runs are evaluated by `wavesurrogate learn`")


TASK = MultiFidelity()

__all__ += ["dmfdal_loss", "ensemble_loss"]
