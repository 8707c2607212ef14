"""``separable_operator``: a DeepONet split between positions and time, for impulse responses at receivers.

``u(x_s, x, t) = Σ_k b_k(x_s, x) τ_k(t) + bias``: a branch MLP on the source and receiver positions (the
source-relative offset ``x − x_s``, its length r, the absolute receiver and source positions, and optional
cos/sin features of them at physical wavenumbers ``f_max / (c · 2^j)``), a trunk MLP on cos/sin features of
t alone (frequencies spread evenly over (0, f_max], so the basis spans the source's band). Interface
``POINTS`` with the task's ``geometry`` (2-D or 3-D), so it trains like any points model; its point is the
query: :meth:`SeparableOperator.forward_product` answers R receivers × n_t times with R branch and n_t trunk
evaluations and one product (the receiver task's queries use it), instead of R · n_t of each.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.blocks import MLP, positive_int
from wavesurrogate.nn.models.geometry import parse_geometry
from wavesurrogate.nn.registry import POINTS, register

__all__ = ["SeparableOperator"]


@register("separable_operator", interface=POINTS)
class SeparableOperator(nn.Module):
    """``forward(params [B, P], coords [B, Q, n + 1] or [Q, n + 1])`` → ``[B, Q]``; see the module."""

    capabilities = {"geometry": True}

    def __init__(
        self, n_params: int, geometry: dict | None = None, n_basis: int = 64, width: int = 128,
        depth: int = 4, trunk_width: int = 128, trunk_depth: int = 3, activation: str = "gelu",
        n_fourier_t: int = 64, n_fourier_x: int = 4, modified: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.n_params = positive_int("n_params", n_params)
        if geometry is None:
            raise ConfigError("model.geometry: separable_operator needs the task's geometry (source "
                              "position)")
        g = parse_geometry(geometry, n_params)
        for name, v in (("n_basis", n_basis), ("width", width), ("depth", depth),
                        ("trunk_width", trunk_width), ("trunk_depth", trunk_depth),
                        ("n_fourier_t", n_fourier_t)):
            positive_int(name, v)
        positive_int("n_fourier_x", n_fourier_x, minimum=0)
        if n_params != len(g.source_params):
            raise ConfigError(f"model.n_params: separable_operator takes the source position only "
                              f"({len(g.source_params)} params), got {n_params}")
        self.n_dims = n = g.n_dims
        scale, offset = g.source_affine()
        self.register_buffer("src_scale", scale.float(), persistent=False)
        self.register_buffer("src_offset", offset.float(), persistent=False)
        self.source_params = list(g.source_params)
        hs = g.half_extent[:n]
        self.register_buffer("r_scale", torch.tensor(hs) / max(hs), persistent=False)
        # time: n_fourier_t frequencies k f_max / n_fourier_t (Hz), in cycles per scaled unit of t
        ft = torch.arange(1, n_fourier_t + 1, dtype=torch.float64) * (g.f_max_hz / n_fourier_t)
        self.register_buffer("freq_t", (ft * g.half_extent[n]).float(), persistent=False)
        # space: wavenumbers f_max / (c 2^j), j = 0 … n_fourier_x - 1, on each position coordinate
        k = torch.tensor([g.f_max_hz / (g.c_ref_mps * 2.0**j) for j in range(n_fourier_x)],
                         dtype=torch.float64)
        per = (k[None, :] * torch.tensor(hs, dtype=torch.float64)[:, None]).float()  # [n, n_fourier_x]
        self.register_buffer("freq_x", per.repeat(3, 1), persistent=False)  # offset, receiver, source
        d_branch = 3 * n + 1 + 2 * self.freq_x.numel()
        self.branch = MLP(d_branch, width, depth, n_basis, activation, modified)
        self.trunk = MLP(2 * n_fourier_t, trunk_width, trunk_depth, n_basis, activation, modified)
        with torch.no_grad():
            self.branch.out.weight.mul_(n_basis**-0.5)
        self.bias = nn.Parameter(torch.zeros(()))
        self._trunk_cache: tuple[tuple, Tensor, Tensor] | None = None

    def source(self, params: Tensor) -> Tensor:
        """Source position in the scaled frame ``[B, n]`` from normalised params ``[B, P]``."""
        if params.ndim != 2 or params.shape[1] != self.n_params:
            raise ValueError(f"separable_operator: expected params [B, {self.n_params}], got "
                             f"{list(params.shape)}")
        return params[:, self.source_params] * self.src_scale + self.src_offset

    def branch_coeffs(self, src: Tensor, pos: Tensor) -> Tensor:
        """Coefficients ``[B, R, n_basis]`` for scaled source ``[B, n]`` and receivers ``[B, R, n]``."""
        s = src.unsqueeze(1).expand_as(pos)
        d = pos - s
        r = (d * self.r_scale).norm(dim=-1, keepdim=True) - 1.0
        x = torch.cat([d, pos, s], dim=-1)  # [B, R, 3n]
        parts = [x, r]
        if self.freq_x.numel():
            z = (2 * math.pi) * (x.unsqueeze(-1) * self.freq_x).flatten(-2)
            parts += [torch.cos(z), torch.sin(z)]
        return self.branch(torch.cat(parts, dim=-1))

    def trunk_basis(self, t: Tensor) -> Tensor:
        """Basis ``[..., n_basis]`` at scaled times ``t [...]``."""
        z = (2 * math.pi) * t.unsqueeze(-1) * self.freq_t
        return self.trunk(torch.cat([torch.cos(z), torch.sin(z)], dim=-1))

    def forward(self, params: Tensor, coords: Tensor) -> Tensor:
        """Field ``[B, Q]`` at ``coords`` ``[B, Q, n + 1]`` (or ``[Q, n + 1]`` shared by the batch)."""
        src = self.source(params)
        if coords.ndim == 2:
            coords = coords.unsqueeze(0).expand(params.shape[0], -1, -1)
        c = self.n_dims + 1
        if coords.ndim != 3 or coords.shape[-1] != c or coords.shape[0] != params.shape[0]:
            raise ValueError(f"separable_operator: expected coords [{params.shape[0]}, Q, {c}] or [Q, {c}], "
                             f"got {list(coords.shape)}")
        b = self.branch_coeffs(src, coords[..., : self.n_dims])
        return (b * self.trunk_basis(coords[..., self.n_dims])).sum(-1) + self.bias

    def forward_product(self, params: Tensor, receivers: Tensor, times: Tensor) -> Tensor:
        """``[B, R, n_t]`` at every pair of scaled receiver positions ``[R, n]`` and scaled times ``[n_t]``:
        what ``forward`` gives on their product, at R branch and n_t trunk evaluations."""
        src = self.source(params)
        b = self.branch_coeffs(src, receivers.unsqueeze(0).expand(src.shape[0], -1, -1))  # [B, R, K]
        return torch.einsum("brk,tk->brt", b, self._cached_trunk(times)) + self.bias

    def _cached_trunk(self, times: Tensor) -> Tensor:
        """``trunk_basis(times)``, reused across inference calls with equal times until a trunk weight
        changes (queries at a run's fixed output times evaluate the trunk once); never cached in training
        or with autograd on."""
        if torch.is_grad_enabled() or self.training:
            self._trunk_cache = None
            return self.trunk_basis(times)
        key = tuple((p.data_ptr(), p._version) for p in self.trunk.parameters())
        c = self._trunk_cache
        if c is None or c[0] != key or c[1].shape != times.shape or not torch.equal(c[1], times):
            self._trunk_cache = c = (key, times.detach().clone(), self.trunk_basis(times))
        return c[2]
