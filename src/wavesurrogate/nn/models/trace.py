"""Boundary-trace networks: source and medium parameters → the field on the ZOI boundary over time.

``TraceCNN`` (registry name ``trace_cnn``, interface ``TRACE``): an MLP maps the normalised parameters
to a small latent map over (boundary position × time); a 2-D CNN decoder upsamples it, each conv built by
``make_conv`` in any kernel format (dense, cp, tucker, separable), with circular padding along the closed
boundary; optionally decoded every ``boundary_stride`` nodes and interpolated linearly along the boundary;
a learnt mean map (``template``) is added; with ``shift_knots`` an MLP head also corrects the arrival
time (in periods, linear between that many knots around the boundary). ``forward(params)`` takes the
parameters in SI units ``[B, P]`` and returns the trace in field units ``[B, n_boundary, n_times]``
(normalisation constants are constructor arguments, so a checkpoint is self-contained).

With ``warp`` (filled in by the trainer from the parameter names), the decoder's time axis is not t but
the phase after the straight-ray arrival, τ = f·(t − t0 − r(s)/c0), with t0 the Ricker delay 1.2/f and
r(s) the distance from the source to boundary node s; the decoded map v(s, τ) on a fixed τ window is
sampled at each node's τ(t) by Catmull–Rom cubic interpolation (third order; torch's bicubic grid_sample
uses a = −0.75 and is only first order), multiplied by the 2-D spreading factor sqrt(r_ref / r(s)).
The network then only learns the shape of the pulse and the residual of the arrival times, which vary
slowly with the parameters; without the warp it has to move a sharp pulse across the (s, t) map itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.blocks import Activation, make_conv
from wavesurrogate.nn.registry import TRACE, register

__all__ = ["TraceCNN", "catmull_rom", "perimeter_xy", "periodic_upsample"]

WARP_KEYS = ("source_x", "source_y", "freq", "velocity")


def catmull_rom(v: Tensor, pix: Tensor) -> Tensor:
    """Catmull–Rom interpolation of v [..., n] at fractional indices pix [..., m]; zero outside [0, n−1]."""
    n = v.shape[-1]
    i = torch.floor(pix)
    w = pix - i
    i = i.long()

    def tap(k: Tensor) -> Tensor:
        inside = (k >= 0) & (k < n)
        return torch.gather(v, -1, k.clamp(0, n - 1)) * inside

    p0, p1, p2, p3 = tap(i - 1), tap(i), tap(i + 1), tap(i + 2)
    cubic = 2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3 + w * (3.0 * (p1 - p2) + p3 - p0)
    return p1 + 0.5 * w * (p2 - p0 + w * cubic)


def perimeter_xy(zoi_m: Sequence[float]) -> Tensor:
    """Boundary node coordinates [n_b, 2] in m, counter-clockwise from the lower-left (zoi.boundary order).

    zoi_m = (x0_m, y0_m, dx_m, dy_m, nx, ny): lower-left node, spacings and node counts of the ZOI.
    """
    x0, y0, dx, dy, nx, ny = zoi_m
    nx, ny = int(nx), int(ny)
    i = torch.cat([torch.arange(nx), torch.full((ny - 1,), nx - 1), torch.arange(nx - 2, -1, -1),
                   torch.zeros(ny - 2, dtype=torch.long)])
    j = torch.cat([torch.zeros(nx, dtype=torch.long), torch.arange(1, ny), torch.full((nx - 1,), ny - 1),
                   torch.arange(ny - 2, 0, -1)])
    return torch.stack([x0 + i * dx, y0 + j * dy], dim=1).to(torch.float64)


def periodic_upsample(v: Tensor, n: int) -> Tensor:
    """Linear interpolation of v [B, m, w] (m samples around a closed loop) to n samples, [B, n, w]."""
    m = v.shape[1]
    pos = torch.arange(n, dtype=v.dtype, device=v.device) * (m / n)
    k = torch.floor(pos).long()
    w = (pos - k)[None, :, None]
    return (1.0 - w) * v[:, k % m] + w * v[:, (k + 1) % m]


def _stage_sizes(h: int, w: int, n_stages: int) -> list[tuple[int, int]]:
    return [(max(1, round(h / 2 ** (n_stages - 1 - k))), max(1, round(w / 2 ** (n_stages - 1 - k))))
            for k in range(n_stages)]


@register("trace_cnn", interface=TRACE)
class TraceCNN(nn.Module):
    """MLP → latent (boundary × time) map → (tensorized) CNN decoder → optional arrival-time warp."""

    def __init__(
        self,
        n_params: int,
        n_boundary: int,
        n_times: int,
        trace_dt_s: float,
        param_mean: Sequence[float] | None = None,
        param_std: Sequence[float] | None = None,
        trace_scale: float = 1.0,
        zoi_m: Sequence[float] | None = None,
        warp: dict[str, int] | None = None,
        tau_window: Sequence[float] = (-2.0, 6.0),
        n_tau: int = 128,
        delay_periods: float = 1.2,
        hidden: int = 128,
        depth: int = 2,
        latent_channels: int = 16,
        latent_shape: Sequence[int] = (16, 8),
        channels: Sequence[int] = (32, 32, 16, 8),
        conv: dict[str, Any] | None = None,
        activation: str = "gelu",
        template: bool = True,
        boundary_stride: int = 1,
        shift_knots: int = 0,
    ) -> None:
        super().__init__()
        if n_params < 1 or n_boundary < 3 or n_times < 2 or not trace_dt_s > 0:
            raise ConfigError("trace_cnn: needs n_params ≥ 1, n_boundary ≥ 3, n_times ≥ 2, trace_dt_s > 0")
        if warp is not None:
            if sorted(warp) != sorted(WARP_KEYS) or zoi_m is None:
                raise ConfigError(f"trace_cnn.warp: needs indices of {WARP_KEYS} and zoi_m")
            if not all(0 <= int(v) < n_params for v in warp.values()):
                raise ConfigError(f"trace_cnn.warp: parameter indices must lie in [0, {n_params})")
            if not tau_window[0] < tau_window[1] or n_tau < 4:
                raise ConfigError("trace_cnn: tau_window must increase and n_tau be ≥ 4")
        if not channels:
            raise ConfigError("trace_cnn.channels: need at least one decoder stage")
        if boundary_stride < 1:
            raise ConfigError(f"trace_cnn.boundary_stride: must be ≥ 1, got {boundary_stride}")
        mean = torch.zeros(n_params) if param_mean is None else torch.tensor(param_mean, dtype=torch.float32)
        std = torch.ones(n_params) if param_std is None else torch.tensor(param_std, dtype=torch.float32)
        if mean.shape != (n_params,) or std.shape != (n_params,) or bool((std <= 0).any()):
            raise ConfigError(f"trace_cnn: param_mean/param_std need {n_params} values, std > 0")
        self.register_buffer("param_mean", mean, persistent=False)
        self.register_buffer("param_std", std, persistent=False)
        self.n_boundary, self.n_times, self.trace_dt_s = int(n_boundary), int(n_times), float(trace_dt_s)
        self.trace_scale = float(trace_scale)
        self.warp = None if warp is None else {k: int(v) for k, v in warp.items()}
        self.tau_window = (float(tau_window[0]), float(tau_window[1]))
        self.n_tau, self.delay_periods = int(n_tau), float(delay_periods)
        width = self.n_tau if self.warp is not None else self.n_times
        self.latent_channels = int(latent_channels)
        self.latent_shape = (int(latent_shape[0]), int(latent_shape[1]))

        layers: list[nn.Module] = []
        d_in = n_params
        for _ in range(depth):
            layers += [nn.Linear(d_in, hidden), Activation(activation)]
            d_in = hidden
        layers.append(nn.Linear(d_in, self.latent_channels * self.latent_shape[0] * self.latent_shape[1]))
        self.mlp = nn.Sequential(*layers)
        self.boundary_stride = int(boundary_stride)
        self.sizes = _stage_sizes(-(-self.n_boundary // self.boundary_stride), width, len(channels))
        convs, c_in = [], self.latent_channels
        for c_out in channels:
            convs.append(make_conv(c_in, int(c_out), 3, conv, padding=0))
            c_in = int(c_out)
        self.convs = nn.ModuleList(convs)
        self.act = Activation(activation)
        self.head = nn.Conv2d(c_in, 1, 1)
        # learnt arrival correction (in periods) at shift_knots points around the boundary, zero at the start
        self.shift = None
        if shift_knots > 0 and self.warp is not None:
            self.shift = nn.Linear(hidden if depth > 0 else n_params, int(shift_knots))
            nn.init.zeros_(self.shift.weight)
            nn.init.zeros_(self.shift.bias)
        # the mean map, learnt directly: the decoder then only learns each case's departure from it
        self.template = nn.Parameter(torch.zeros(self.n_boundary, width)) if template else None
        if self.warp is not None:
            xy = perimeter_xy(zoi_m)
            if xy.shape[0] != self.n_boundary:
                raise ConfigError(f"trace_cnn.zoi_m: gives {xy.shape[0]} boundary nodes, not {n_boundary}")
            self.register_buffer("boundary_xy", xy, persistent=False)
            centre = xy.mean(0)
            self.r_ref = float(torch.linalg.norm(xy - centre, dim=1).mean())  # m, keeps the factor O(1)
            self.register_buffer("times", torch.arange(self.n_times, dtype=torch.float64) * self.trace_dt_s,
                                 persistent=False)

    def decode(self, params: Tensor) -> Tensor:
        """Decoded map [B, n_boundary, width] (width n_tau with warp, else n_times), dimensionless."""
        return self._decode(params)[0]

    def _decode(self, params: Tensor) -> tuple[Tensor, Tensor | None]:
        z = (params.float() - self.param_mean) / self.param_std
        h = self.mlp[:-1](z)
        x = self.mlp[-1](h).view(-1, self.latent_channels, *self.latent_shape)
        shift = None if self.shift is None else periodic_upsample(self.shift(h)[:, :, None], self.n_boundary)
        for conv, size in zip(self.convs, self.sizes, strict=True):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            x = F.pad(x, (0, 0, 1, 1), mode="circular")  # the boundary is a closed loop
            x = self.act(conv(F.pad(x, (1, 1, 0, 0))))  # zeros beyond the ends of the time axis
        v = self.head(x)[:, 0]
        if self.boundary_stride > 1:  # linear along the closed boundary, decoded every boundary_stride nodes
            v = periodic_upsample(v, self.n_boundary)
        return (v if self.template is None else v + self.template), shift

    def forward(self, params: Tensor) -> Tensor:
        """Trace [B, n_boundary, n_times] in field units for parameters [B, n_params] in SI units."""
        if params.ndim != 2 or params.shape[1] != self.param_mean.shape[0]:
            raise ConfigError(f"trace_cnn: expected params [batch, {self.param_mean.shape[0]}], got "
                              f"{tuple(params.shape)}")
        v, shift = self._decode(params)
        if self.warp is None:
            return v * self.trace_scale
        tau, amp = self.arrival_frame(params)
        t0, t1 = self.tau_window
        pix = (tau - t0).to(v.dtype)
        if shift is not None:  # [B, n_b, 1] periods later than the straight ray
            pix = pix - shift
        pix = pix * ((self.n_tau - 1) / (t1 - t0))
        return catmull_rom(v, pix) * (amp.to(v.dtype) * self.trace_scale)

    def arrival_frame(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """Phase τ [B, n_b, n_times] of every trace sample and the spreading factor [B, n_b, 1]."""
        w, p = self.warp, params.to(torch.float64)
        assert w is not None
        xs, ys, f, c = (p[:, w[k]][:, None] for k in WARP_KEYS)
        r = torch.hypot(self.boundary_xy[None, :, 0] - xs, self.boundary_xy[None, :, 1] - ys)  # [B, n_b]
        arrival = self.delay_periods / f + r / c
        tau = f[:, :, None] * (self.times[None, None, :] - arrival[:, :, None])
        amp = torch.sqrt(self.r_ref / torch.clamp(r, min=1e-3 * self.r_ref))[:, :, None]
        return tau, amp

    def extra_repr(self) -> str:
        return (f"n_boundary={self.n_boundary}, n_times={self.n_times}, warp={self.warp is not None}, "
                f"sizes={self.sizes}")
