"""wavestep2d: a full-resolution frames network shaped like the solver's own time step.

Between two stored frames a leapfrog solver applies ``s`` steps of ``u^{n+1} = 2u^n − u^{n−1} − dt²·A u^n``
with ``A u = −c²(x)·Δ_h u``: the frame-to-frame map is a polynomial (degree ``s``) in ``c²(x)·Δ_h`` applied to
the last frame, plus the forcing. It is linear in the field, local (radius ``s`` × the stencil's), and its
coefficients depend on the medium point by point. ``wavestep2d`` has exactly that shape:

    h_0 = lift([frames, forcing])                           (1×1, linear in the fields)
    h_l = h_{l−1} + g_l(c, edges) ⊙ conv_l(h_{l−1})          l = 1 … depth (``kernel_size`` convs)
    out = head(h_depth)                                      (1×1)

``g`` (``[depth, width]`` per pixel) is a small pointwise MLP ``G`` of the velocity and of four edge-distance
features (with ``physics``: ``g = q(x)·G`` where ``q = (dt·c(x)/dx)²`` is the solver's own Courant number
squared), so the network can learn both ``c²``-scaled stencils and the outgoing-wave behaviour at the stored
window's edges; everything acting on the field is linear, as the wave equation is. ``depth`` spatial convs of
width ``width``, built by ``make_conv`` in any kernel format (dense or compressed: sums of one-way filters).
Use with ``data.update: leapfrog`` (the network then gives the correction r of u^{n+1} = 2u^n − u^{n−1} + r;
``residual`` defaults to False) or ``direct`` with ``residual: true``.

``physics`` (the frames task fills it with ``physics: from_data`` from the run's statistics: velocity mean
and std, dt, frame stride, dx, dy, field std, forcing scale) starts training from the solver's frame map
instead of from noise (``init_physics``): the ``s``-step leapfrog map of the homogeneous equation is
``u^{f+1} = 2u^f − u^{f−1} + p(x)u^f`` with ``p(x) = 2T_s(1 − x/2) − 2``, ``x = −dt²c²Δ_h`` (Chebyshev
identity
of the three-term recurrence), and ``p(x) = −s²·x·Π_j (1 − x/x_j)`` over its other roots
``x_j = 2(1 − cos(2πj/s))`` (double for 0 < j < s/2). Channel 0 carries ``u^f`` through the ``s − 1``
factors ``(1 + q·L/x_j)`` (conv = the 4th-order Laplacian stencil L in grid units, gain = q/x_j), the ``s``-th
layer writes ``q·L(·)`` into channel 1 and the head multiplies it by ``s²``; the forcing enters channel 1.
Everything else starts small, so training learns what the map lacks: the window's open edges, the medium's
gradients, the source's spread. Needs depth ≥ s, width ≥ 2, kernel_size ≥ 5 and a dense or CP conv.

Unlike ``cnn2d`` (an encoder–decoder with stride-2 levels and no skips, which loses the fine scales of a
wave of eight points per wavelength), no layer here changes the resolution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.blocks import Activation, make_conv
from wavesurrogate.nn.models.cnn import _Frames2d
from wavesurrogate.nn.registry import FRAMES, register

__all__ = ["WaveStep2d", "edge_features", "leapfrog_roots", "PHYSICS_KEYS"]

PHYSICS_KEYS = ("c_mean", "c_std", "dt_s", "stride", "dx_m", "dy_m", "field_std", "forcing_scale")
LAPLACIAN4 = (-1 / 12, 4 / 3, -5 / 2, 4 / 3, -1 / 12)  # 4th-order second difference, grid units
SMALL = 0.1  # initial scale of the gains and the head without physics
PHYSICS_NOISE = 1e-3  # with physics: the head's weights on the free channels (the convs' start at zero)
EDGE_SCALE = 4.0  # grid points: edge features exp(−d / EDGE_SCALE) of the distance d to each side


def edge_features(ny: int, nx: int, *, dtype: torch.dtype = torch.float32,
                  device: torch.device | None = None) -> Tensor:
    """``[4, ny, nx]``: exp(−d/EDGE_SCALE) of the distance in points to the top, bottom, left, right edge."""
    iy = torch.arange(ny, dtype=dtype, device=device)
    ix = torch.arange(nx, dtype=dtype, device=device)
    top, bottom = iy[:, None].expand(ny, nx), (ny - 1 - iy)[:, None].expand(ny, nx)
    left, right = ix[None, :].expand(ny, nx), (nx - 1 - ix)[None, :].expand(ny, nx)
    return torch.exp(-torch.stack([top, bottom, left, right]) / EDGE_SCALE)


def leapfrog_roots(s: int) -> list[float]:
    """The nonzero roots x_j of p(x) = 2T_s(1 − x/2) − 2, with multiplicity (s − 1 values, ascending)."""
    roots = []
    for j in range(1, s // 2 + 1):
        x = 2.0 * (1.0 - math.cos(2.0 * math.pi * j / s))
        roots += [x] if 2 * j == s else [x, x]
    return roots


@register("wavestep2d", interface=FRAMES)
class WaveStep2d(_Frames2d):
    """Full-resolution, field-linear frames net with medium-dependent pointwise gains (module docstring)."""

    def __init__(
        self, n_in: int = 2, n_out: int = 1, width: int = 8, depth: int = 5, kernel_size: int = 5,
        conv: dict[str, Any] | None = None, padding_mode: str = "zeros", activation: str = "gelu",
        hidden: int = 32, gain_layers: int = 2, residual: bool = False, n_extra: int = 0,
        physics: Mapping[str, float] | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        spec = self._setup(n_in, n_out, width, depth, kernel_size, conv, residual, n_extra)
        if depth < 1 or hidden < 1 or gain_layers < 1:
            raise ConfigError(f"model: wavestep2d needs depth, hidden and gain_layers >= 1, got {depth}, "
                              f"{hidden}, {gain_layers}")
        self.width, self.depth, self.kernel_size = width, depth, kernel_size
        self.lift = nn.Conv2d(n_in + n_extra, width, 1)
        mlp: list[nn.Module] = [nn.Conv2d(5, hidden, 1), Activation(activation)]
        for _ in range(gain_layers - 1):
            mlp += [nn.Conv2d(hidden, hidden, 1), Activation(activation)]
        self.gain = nn.Sequential(*mlp, nn.Conv2d(hidden, depth * width, 1))
        self.convs = nn.ModuleList(
            [make_conv(width, width, kernel_size, spec, padding_mode=padding_mode, bias=False)
             for _ in range(depth)])
        self.head = nn.Conv2d(width, n_out, 1)
        self.physics = None if physics is None else self._check_physics(physics)
        with torch.no_grad():  # start near the identity step: small gains and a small head
            self.gain[-1].weight.mul_(SMALL)
            self.gain[-1].bias.zero_()
            self.head.weight.mul_(SMALL)
            self.head.bias.zero_()
        if self.physics is not None:
            self.init_physics(spec["format"])

    def _check_physics(self, physics: Mapping[str, float]) -> dict[str, float]:
        """The physics dict as floats (ConfigError: a missing key, a non-positive value, too small a net)."""
        missing = [k for k in PHYSICS_KEYS if k not in physics]
        if missing or set(physics) - set(PHYSICS_KEYS):
            raise ConfigError(f"model.physics: needs exactly the keys {', '.join(PHYSICS_KEYS)}")
        out = {k: float(physics[k]) for k in PHYSICS_KEYS}
        if not all(math.isfinite(v) and v > 0 for v in out.values()) or out["stride"] != int(out["stride"]):
            raise ConfigError("model.physics: every value must be finite and > 0, stride an integer")
        s = int(out["stride"])
        if self.depth < s or self.width < 2 or self.kernel_size < 5:
            raise ConfigError(f"model.physics: the leapfrog initialisation of frame stride {s} needs "
                              f"depth >= {s}, width >= 2 and kernel_size >= 5, got {self.depth}, "
                              f"{self.width}, {self.kernel_size}")
        return out

    def courant2(self, vel: Tensor) -> Tensor:
        """q = (dt·c/dx)² from the normalised velocity ``[B, 1, ny, nx]`` (c clamped at 0)."""
        p = self.physics
        assert p is not None
        c = (p["c_mean"] + p["c_std"] * vel).clamp_min(0.0)
        return (p["dt_s"] * c / p["dx_m"]) ** 2

    @torch.no_grad()
    def init_physics(self, fmt: str) -> None:
        """Start from the solver's homogeneous frame map (module docstring); small elsewhere."""
        p = self.physics
        assert p is not None
        s, w, k = int(p["stride"]), self.width, self.kernel_size
        roots = leapfrog_roots(s)
        lap_x = np.zeros(k)
        lap_x[k // 2 - 2 : k // 2 + 3] = LAPLACIAN4
        lap_y = lap_x * (p["dx_m"] / p["dy_m"]) ** 2  # q uses dx: the y stencil in units of dx²
        delta = np.zeros(k)
        delta[k // 2] = 1.0
        for layer, conv in enumerate(self.convs):
            if layer >= s:
                _set_kernel(conv, fmt, None, 0, 0, lap_y, lap_x, delta)
                continue
            dst = 0 if layer < s - 1 else 1
            _set_kernel(conv, fmt, (dst, 0), dst, 0, lap_y, lap_x, delta)
        g = self.gain[-1]
        g.weight.zero_()  # constant gains to start; the MLP learns their dependence on medium and edges
        bias = torch.ones(self.depth, w)
        bias[:, :2] = 0.0
        for layer, x in enumerate(roots):
            bias[layer, 0] = 1.0 / x
        bias[s - 1, 1] = 1.0
        g.bias.copy_(bias.reshape(-1))
        self.lift.weight.zero_()
        self.lift.bias.zero_()
        self.lift.weight[0, self.n_in - 1] = 1.0  # u^f into channel 0
        if self.n_extra:  # the forcing's time integral over the frame, into channel 1 (before the × s² head)
            self.lift.weight[1, self.n_in:] = p["dt_s"] * p["forcing_scale"] / p["field_std"] / s
        self.head.weight.mul_(PHYSICS_NOISE)  # channels 2.. : tiny, so that they receive gradients
        self.head.weight[:, 0] = 0.0
        self.head.weight[:, 1] = float(s * s)
        self.head.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        """[B, n_in + 1 + n_extra, ny, nx] -> [B, n_out, ny, nx] (any ny, nx)."""
        self._check_input(x)
        b, _, ny, nx = x.shape
        fields = torch.cat([x[:, : self.n_in], x[:, self.n_in + 1 :]], dim=1)
        vel = x[:, self.n_in : self.n_in + 1]
        edges = edge_features(ny, nx, dtype=x.dtype, device=x.device).expand(b, 4, ny, nx)
        g = self.gain(torch.cat([vel, edges], dim=1))
        if self.physics is not None:
            g = g * self.courant2(vel)
        g = g.view(b, self.depth, self.width, ny, nx)
        h = self.lift(fields)
        for layer, conv in enumerate(self.convs):
            h = h + g[:, layer] * conv(h)
        return self._finish(x, self.head(h))


def _set_kernel(conv: nn.Module, fmt: str, pair: tuple[int, int] | None, dst: int, src: int,
                lap_y: np.ndarray, lap_x: np.ndarray, delta: np.ndarray) -> None:
    """``conv``'s kernel: for ``pair`` = (out, in) the 2-D Laplacian ``lap_y ⊗ δ + δ ⊗ lap_x`` between those
    channels, zero elsewhere (dense: the weight; CP: the first two rank-one terms exactly, the other terms'
    factors scaled by 0.1 each, so that they start at 1e-4 of their random size yet receive gradients).
    ConfigError for other formats or CP rank < 2."""
    t = dict(dtype=torch.float32)
    if fmt == "dense":
        weight = conv.weight
        weight.zero_()
        if pair is not None:
            kern = np.outer(lap_y, delta) + np.outer(delta, lap_x)
            weight[dst, src] += torch.as_tensor(kern, **t)
        return
    if fmt != "cp" or conv.rank < 2:
        raise ConfigError(f"model.physics: the leapfrog initialisation needs dense or CP (rank >= 2) convs, "
                          f"got {fmt} rank {getattr(conv, 'rank', None)}")
    for q in conv.parameters():
        if q is not conv.bias:
            q.mul_(0.1)
    if pair is None:
        return
    fy, fx = conv.spatial_factors[0], conv.spatial_factors[1]
    for r, (ky, kx) in enumerate(((lap_y, delta), (delta, lap_x))):
        conv.out_factor[:, r] = 0.0
        conv.in_factor[:, r] = 0.0
        conv.out_factor[dst, r] = 1.0
        conv.in_factor[src, r] = 1.0
        fy[:, r] = torch.as_tensor(ky, **t)
        fx[:, r] = torch.as_tensor(kx, **t)
