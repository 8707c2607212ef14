"""``modal_operator``: a DeepONet whose branch and trunk bases are a room's eigenmodes (3-D, POINTS).

A linear, time-invariant room answers a point source at s with ``g(s, r, t) = Σ_n a_n(s) ψ_n(r) h_n(t)``:
ψ_n the eigenmodes of the solver's discrete operator (``physics.fd.modes``), a_n(s) = Σ_k w_k W_k ψ_n(k) how
the solver's trilinear injection at s excites mode n (W the wall weights), ψ_n(r) the trilinear reading at r,
and h_n(t) each mode's response (the wavelet through its damped oscillator, the time stepping's dispersion
and the wall damping as far as it acts mode by mode). The buffers ``psi [nz, ny, nx, n_modes]`` (0 on
obstacle nodes) and ``freq_hz [n_modes]`` hold the modes (:meth:`ModalOperator.set_modes`); the parameter
``response [n_modes, n_times]`` holds h at the trace times ``t0_s + k dt_s`` (normalised field units), fitted
in closed form by the task (:meth:`ModalOperator.coefficients` gives its design rows) and trainable further.
A query of R receivers is one gather of 8 nodes per position and ``(φ(r) ⊙ a(s)) @ response``
(:meth:`ModalOperator.forward_product`); :meth:`ModalOperator.truncated` keeps the lowest modes only.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.blocks import positive_int
from wavesurrogate.nn.models.geometry import parse_geometry
from wavesurrogate.nn.registry import POINTS, register

__all__ = ["ModalOperator"]


def _positive_list(name: str, v: Any, n: int, kind: type) -> list:
    ok = isinstance(v, list | tuple) and len(v) == n and all(
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0 for x in v)
    if not ok or (kind is int and not all(isinstance(x, int) for x in v)):
        raise ConfigError(f"model.{name}: expected {n} positive {kind.__name__}s, got {v!r}")
    return [kind(x) for x in v]


@register("modal_operator", interface=POINTS, capabilities={"onnx": False, "geometry": True, "modal": True})
class ModalOperator(nn.Module):
    """``forward(params [B, P], coords [B, Q, 4] or [Q, 4])`` → ``[B, Q]``; see the module."""

    onnx_note = "its query is a gather of grid nodes and one product; export the modes and response instead"

    def __init__(
        self, n_params: int, grid_shape: list[int], spacing_m: list[float], n_modes: int, n_times: int,
        t0_s: float, dt_s: float, geometry: dict | None = None, cutoff_hz: float = 700.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.n_params = positive_int("n_params", n_params)
        if geometry is None:
            raise ConfigError("model.geometry: modal_operator needs the task's geometry (source position)")
        self.geometry = g = parse_geometry(geometry, n_params)
        if g.n_dims != 3:
            raise ConfigError(f"model.geometry: modal_operator is 3-D (a room), the data is {g.n_dims}-D")
        self.grid_shape = _positive_list("grid_shape", grid_shape, 3, int)
        if min(self.grid_shape) < 2:
            raise ConfigError(f"model.grid_shape: needs two nodes per axis, got {grid_shape}")
        self.spacing = _positive_list("spacing_m", spacing_m, 3, float)
        positive_int("n_modes", n_modes)
        positive_int("n_times", n_times)
        if not (math.isfinite(t0_s) and math.isfinite(dt_s) and dt_s > 0):
            raise ConfigError(f"model.dt_s: expected a positive time step, got {dt_s!r}")
        if not (math.isfinite(cutoff_hz) and cutoff_hz > 0):
            raise ConfigError(f"model.cutoff_hz: expected a positive frequency, got {cutoff_hz!r}")
        self.t0_s, self.dt_s = float(t0_s), float(dt_s)
        self.register_buffer("psi", torch.zeros(*self.grid_shape, n_modes))
        self.register_buffer("freq_hz", torch.zeros(n_modes))
        self.response = nn.Parameter(torch.zeros(n_modes, n_times))
        w = torch.ones(self.grid_shape, dtype=torch.float64)
        for axis, n in enumerate(self.grid_shape):  # wall weights W (½ per wall a node lies on)
            line = torch.ones(n, dtype=torch.float64)
            line[[0, -1]] = 0.5
            w = w * line.reshape([-1 if k == axis else 1 for k in range(3)])
        self.register_buffer("wall_w", w.reshape(-1).float(), persistent=False)
        self.register_buffer("_h", torch.tensor(self.spacing[::-1], dtype=torch.float64),  # (dx, dy, dz)
                             persistent=False)
        top = torch.tensor([n - 2 for n in self.grid_shape[::-1]], dtype=torch.float64)  # last corner
        self.register_buffer("_top", top, persistent=False)
        self.register_buffer("_offsets", torch.tensor([[ox, oy, oz] for oz in (0, 1) for oy in (0, 1)
                                                       for ox in (0, 1)]), persistent=False)
        self._times_cache: tuple[Tensor, Tensor] | None = None

    @property
    def n_modes(self) -> int:
        """Number of modes."""
        return int(self.freq_hz.numel())

    @torch.no_grad()
    def set_modes(self, psi: Tensor, freq_hz: Tensor) -> None:
        """Store the modes ``psi [n_nodes, n_modes]`` (nodes in C order of (z, y, x)) and ``freq_hz``."""
        psi, freq_hz = torch.as_tensor(psi), torch.as_tensor(freq_hz)
        n = math.prod(self.grid_shape)
        if tuple(psi.shape) != (n, self.n_modes) or tuple(freq_hz.shape) != (self.n_modes,):
            raise ValueError(f"modal_operator.set_modes: expected psi [{n}, {self.n_modes}] and freq_hz "
                             f"[{self.n_modes}], got {list(psi.shape)} and {list(freq_hz.shape)}")
        if not (torch.isfinite(psi).all() and torch.isfinite(freq_hz).all()):
            raise ValueError("modal_operator.set_modes: modes must be finite")
        self.psi.copy_(psi.reshape(self.psi.shape))
        self.freq_hz.copy_(freq_hz)

    def _corners(self, pos_m: Tensor) -> tuple[Tensor, Tensor]:
        """Flat node indices ``[M, 8]`` and trilinear weights ``[M, 8]`` of positions ``[M, 3]`` (x, y, z; m),
        as the solver spreads a point source (corner clamped into the grid)."""
        nz, ny, nx = self.grid_shape
        f = pos_m.double() / self._h.double()  # [M, 3] in cells, (x, y, z)
        i0 = torch.minimum(torch.clamp(torch.floor(f), min=0.0), self._top.double())
        a = (f - i0).unsqueeze(1)  # [M, 1, 3]
        idx = i0.long().unsqueeze(1) + self._offsets  # [M, 8, 3]
        flat = (idx[..., 2] * ny + idx[..., 1]) * nx + idx[..., 0]
        w = torch.where(self._offsets.bool(), a, 1.0 - a).prod(-1)
        return flat, w.to(self.psi.dtype)

    def at_receivers(self, pos_m: Tensor) -> Tensor:
        """ψ read at positions ``[M, 3]`` (m) → ``[M, n_modes]``."""
        flat, w = self._corners(pos_m)
        return torch.einsum("mc,mcn->mn", w, self.psi.reshape(-1, self.n_modes)[flat])

    def at_sources(self, pos_m: Tensor) -> Tensor:
        """a(s) = Σ_k w_k W_k ψ(k) at source positions ``[M, 3]`` (m) → ``[M, n_modes]``."""
        flat, w = self._corners(pos_m)
        return torch.einsum("mc,mcn->mn", w * self.wall_w[flat], self.psi.reshape(-1, self.n_modes)[flat])

    def coefficients(self, sources_m: Tensor, receivers_m: Tensor) -> Tensor:
        """Design rows ``[S, R, n_modes]``: ``a(s) ⊙ ψ(r)``, sources ``[S, 3]``, receivers ``[R, 3]``."""
        return self.at_sources(sources_m).unsqueeze(1) * self.at_receivers(receivers_m).unsqueeze(0)

    def _metres(self, scaled: Tensor) -> Tensor:
        lo = torch.tensor(self.geometry.coord_min[:3], dtype=torch.float64)
        hi = torch.tensor(self.geometry.coord_max[:3], dtype=torch.float64)
        return lo + (scaled.double() + 1.0) * (0.5 * (hi - lo))

    def source_m(self, params: Tensor) -> Tensor:
        """Source position ``[B, 3]`` (m) from normalised params ``[B, P]``."""
        if params.ndim != 2 or params.shape[1] != self.n_params:
            raise ValueError(f"modal_operator: expected params [B, {self.n_params}], got "
                             f"{list(params.shape)}")
        return self.geometry.source_m(params.double())

    def _response_at(self, t_scaled: Tensor) -> Tensor:
        """``response`` linearly interpolated at scaled times ``[T]`` → ``[n_modes, T]``."""
        lo, hi = self.geometry.coord_min[3], self.geometry.coord_max[3]
        t = lo + (t_scaled.double() + 1.0) * (0.5 * (hi - lo))
        u = ((t - self.t0_s) / self.dt_s).clamp(0, self.response.shape[1] - 1)
        i0 = torch.clamp(torch.floor(u), max=self.response.shape[1] - 2).long()
        a = (u - i0).to(self.response.dtype)
        return self.response[:, i0] * (1 - a) + self.response[:, i0 + 1] * a

    def forward(self, params: Tensor, coords: Tensor) -> Tensor:
        """Field ``[B, Q]`` at ``coords`` ``[B, Q, 4]`` (or ``[Q, 4]`` shared by the batch): the full
        responses of the distinct receiver positions, then each point's time read from them."""
        src = self.source_m(params)
        if coords.ndim == 2:
            coords = coords.unsqueeze(0).expand(params.shape[0], -1, -1)
        if coords.ndim != 3 or coords.shape[-1] != 4 or coords.shape[0] != params.shape[0]:
            raise ValueError(f"modal_operator: expected coords [{params.shape[0]}, Q, 4] or [Q, 4], got "
                             f"{list(coords.shape)}")
        pos, inv = torch.unique(coords[..., :3].reshape(-1, 3), dim=0, return_inverse=True)
        inv = inv.reshape(coords.shape[:2])
        c = self.at_sources(src).unsqueeze(1) * self.at_receivers(self._metres(pos))
        full = c @ self.response  # [B, U, n_times]
        lo, hi = self.geometry.coord_min[3], self.geometry.coord_max[3]
        t = lo + (coords[..., 3].double() + 1.0) * (0.5 * (hi - lo))
        u = ((t - self.t0_s) / self.dt_s).clamp(0, full.shape[-1] - 1)
        i0 = torch.clamp(torch.floor(u), max=full.shape[-1] - 2).long()
        a = (u - i0).to(full.dtype)
        b = torch.arange(full.shape[0]).unsqueeze(1).expand_as(inv)
        return full[b, inv, i0] * (1 - a) + full[b, inv, i0 + 1] * a

    def forward_product(self, params: Tensor, receivers: Tensor, times: Tensor) -> Tensor:
        """``[B, R, n_t]`` at every pair of scaled receiver positions ``[R, 3]`` and scaled times ``[n_t]``;
        at the trace times themselves (checked against the last call's) ``response`` is used as it is."""
        src = self.source_m(params)
        flat, w = self._corners(torch.cat([src, self._metres(receivers)]))  # one gather for all positions
        w = torch.cat([w[: len(src)] * self.wall_w[flat[: len(src)]], w[len(src):]])
        phi = torch.einsum("mc,mcn->mn", w, self.psi.reshape(-1, self.n_modes)[flat])
        return (phi[: len(src)].unsqueeze(1) * phi[len(src):]) @ self._cached_response(times)

    def _cached_response(self, times: Tensor) -> Tensor:
        if torch.is_grad_enabled() or self.training:
            return self._response_at(times)
        key = self._times_cache
        if key is None or key[0].shape != times.shape or not torch.equal(key[0], times):
            lo, hi = self.geometry.coord_min[3], self.geometry.coord_max[3]
            t = lo + (times.double() + 1.0) * (0.5 * (hi - lo))
            k = torch.arange(self.response.shape[1], dtype=torch.float64) * self.dt_s + self.t0_s
            exact = t.shape == k.shape and bool(torch.allclose(t, k, rtol=0, atol=1e-3 * self.dt_s))
            key = self._times_cache = (times.detach().clone(), torch.tensor(exact))
        return self.response if bool(key[1]) else self._response_at(times)

    @torch.no_grad()
    def truncated(self, n: int) -> ModalOperator:
        """A copy with the ``n`` lowest modes (psi, freq_hz and response sliced)."""
        kw = dict(self.init_kwargs)  # type: ignore[attr-defined]
        kw["n_modes"] = int(n)
        out = type(self)(**kw)
        out.psi.copy_(self.psi[..., :n])
        out.freq_hz.copy_(self.freq_hz[:n])
        out.response.copy_(self.response[:n])
        return out.eval()
