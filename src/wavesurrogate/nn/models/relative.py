"""``relative_operator``: a translation-aware source → field operator (interface ``POINTS``, needs geometry).

A point source in a homogeneous medium gives a field that depends on ``x - x_s`` and ``t`` only, so the
network sees the query point relative to the source: features ``(x - x_s, y - y_s, t)`` in the scaled frame
(3-D data, whose geometry has ``[x, y, z, t]`` coordinates: ``(x - x_s, y - y_s, z - z_s, t)``),
or the distance ``r = |x - x_s|`` and t (``inputs="radial"``: an isotropic medium in free space makes the
field a function of (r, t) alone), or both (the source position comes from the normalised params through the
task's geometry), optionally the absolute ``(x, y)`` (``absolute=True``: walls and media break the invariance)
and Fourier features of the relative coordinates. As a DeepONet, a trunk MLP maps the features to ``n_basis``
values τ_k, a branch MLP maps the remaining (non-source) params to coefficients b_k, and the output is
``Σ_k b_k τ_k + bias``; with no other params the coefficients are learned constants (``n_basis=1``: a plain
MLP of the relative coordinates). See docs/operators.md.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.blocks import MLP, positive_int
from wavesurrogate.nn.models.deeponet import fourier_frequencies
from wavesurrogate.nn.models.geometry import parse_geometry
from wavesurrogate.nn.registry import POINTS, register

__all__ = ["RelativeOperator", "RadialTable"]

RELATIVE_FOURIER = ("none", "physical", "gaussian", "axis")
RELATIVE_INPUTS = ("relative", "radial", "both")


@register("relative_operator", interface=POINTS)
class RelativeOperator(nn.Module):
    """``forward(params [B, P], coords [B, Q, n + 1] or [Q, n + 1])`` → ``[B, Q]`` from source-relative
    coordinates (n = 2 or 3 spatial axes, then t; n comes from the geometry).

    Defaults (trunk width 48, depth 3, 16 basis functions, GELU, no Fourier features; 5,697 parameters with
    two params) answer a new source at 4,096 arbitrary points in ~2 ms on one CPU thread (docs/operators.md);
    sine and tanh cost 2-4× GELU per element on CPU, so they are options, not the default.
    """

    capabilities = {"geometry": True}

    def __init__(
        self, n_params: int, geometry: dict | None = None, n_basis: int = 16, width: int = 48, depth: int = 3,
        branch_width: int = 32, branch_depth: int = 2, activation: str = "gelu", modified: bool = False,
        absolute: bool = False, inputs: str = "relative", fourier: str = "none", n_fourier: int = 9,
        fourier_scale: float | list[float] = 1.0, fourier_seed: int = 0, init: str = "glorot",
    ) -> None:  # fmt: skip
        super().__init__()
        self.n_params = positive_int("n_params", n_params)
        if geometry is None:
            raise ConfigError("model.geometry: relative_operator needs the task's geometry (source position)")
        g = parse_geometry(geometry, n_params)
        for name, v in (("n_basis", n_basis), ("width", width), ("depth", depth),
                        ("branch_width", branch_width), ("branch_depth", branch_depth)):
            positive_int(name, v)
        if not isinstance(absolute, bool):
            raise ConfigError(f"model.absolute: expected true or false, got {absolute!r}")
        if inputs not in RELATIVE_INPUTS:
            raise ConfigError(f"model.inputs: unknown {inputs!r}; known: {', '.join(RELATIVE_INPUTS)}")
        if fourier not in RELATIVE_FOURIER:
            raise ConfigError(f"model.fourier: unknown {fourier!r}; known: {', '.join(RELATIVE_FOURIER)}")
        n = self.n_dims = g.n_dims
        if fourier == "physical":
            freqs = g.physical_frequencies(positive_int("n_fourier", n_fourier), fourier_scale)
        else:
            freqs = fourier_frequencies(fourier, n_fourier, fourier_scale, fourier_seed, n + 1)
        self.register_buffer("freqs", freqs)
        scale, offset = g.source_affine()
        self.register_buffer("src_scale", scale.float(), persistent=False)  # rebuilt from the geometry kwarg
        self.register_buffer("src_offset", offset.float(), persistent=False)
        self.source_params = list(g.source_params)
        self.other_params = [i for i in range(n_params) if i not in g.source_params]
        self.absolute, self.n_basis, self.inputs = absolute, n_basis, inputs
        hs = g.half_extent[:n]
        # metres per scaled unit along each spatial axis over the largest half-extent: r isotropic in metres
        self.register_buffer("r_scale", torch.tensor(hs) / max(hs), persistent=False)
        d_in = {"relative": n + 1, "radial": 2, "both": n + 2}[inputs] + n * absolute + 2 * freqs.shape[0]
        self.trunk = MLP(d_in, width, depth, n_basis, activation, modified, init)
        if self.other_params:
            self.branch: MLP | None = MLP(
                len(self.other_params), branch_width, branch_depth, n_basis, activation, modified, init
            )
            with torch.no_grad():
                self.branch.out.weight.mul_(n_basis**-0.5)
            self.coeffs = None
        else:
            self.branch = None
            self.coeffs = nn.Parameter(torch.full((n_basis,), n_basis**-0.5))
        self.bias = nn.Parameter(torch.zeros(()))

    def source(self, params: Tensor) -> Tensor:
        """Source position in the scaled frame ``[B, n]`` from normalised params ``[B, P]``."""
        if params.ndim != 2 or params.shape[1] != self.n_params:
            raise ValueError(
                f"relative_operator: expected params [B, {self.n_params}], got {list(params.shape)}"
            )
        return params[:, self.source_params] * self.src_scale + self.src_offset

    def branch_coeffs(self, params: Tensor) -> Tensor:
        """Coefficients ``[B, n_basis]`` from the non-source params (learned constants if there are none)."""
        if self.branch is None:
            return self.coeffs.expand(params.shape[0], -1)  # type: ignore[union-attr]
        return self.branch(params[:, self.other_params])

    def features(self, coords: Tensor, source: Tensor) -> Tensor:
        """Trunk input ``[B, Q, d]``: ``(x - x_s, y - y_s(, z - z_s))`` and/or the distance r (``inputs``:
        relative, radial, both; r in metres over the largest half-extent, minus 1), then t, then the absolute
        position if ``absolute``, then cos/sin features of the relative coordinates."""
        n = self.n_dims
        d = coords[..., :n] - source.unsqueeze(1)
        parts = [] if self.inputs == "radial" else [d]
        if self.inputs != "relative":
            parts.append((d * self.r_scale).norm(dim=-1, keepdim=True) - 1.0)
        parts.append(coords[..., n:])
        if self.absolute:
            parts.append(coords[..., :n])
        if self.freqs.shape[0]:
            z = (2 * math.pi) * (torch.cat([d, coords[..., n:]], dim=-1) @ self.freqs.T)
            parts += [torch.cos(z), torch.sin(z)]
        return torch.cat(parts, dim=-1)

    def forward(self, params: Tensor, coords: Tensor) -> Tensor:
        """Field ``[B, Q]`` at ``coords`` ``[B, Q, n + 1]`` (or ``[Q, n + 1]`` shared by the batch)."""
        src = self.source(params)
        if coords.ndim == 2:
            coords = coords.unsqueeze(0).expand(params.shape[0], -1, -1)
        c = self.n_dims + 1
        if coords.ndim != 3 or coords.shape[-1] != c or coords.shape[0] != params.shape[0]:
            raise ValueError(f"relative_operator: expected coords [{params.shape[0]}, Q, {c}] or [Q, {c}], "
                             f"got {list(coords.shape)}")
        basis = self.trunk(self.features(coords, src))  # [B, Q, p]
        return (basis @ self.branch_coeffs(params).unsqueeze(-1)).squeeze(-1) + self.bias

    def predict_grid(self, params: Tensor, x: Tensor, y: Tensor, t: Tensor, chunk: int = 4096) -> Tensor:
        """Field ``[B, nt, ny, nx]`` on the grid of 1-D scaled coords x ``[nx]``, y ``[ny]``, t ``[nt]``
        (2-D geometries)."""
        if self.n_dims != 2:
            raise ValueError("relative_operator.predict_grid: 2-D geometries only")
        for name, v in (("x", x), ("y", y), ("t", t)):
            if v.ndim != 1:
                raise ValueError(f"relative_operator.predict_grid: {name} must be 1-D, got {list(v.shape)}")
        tt, yy, xx = torch.meshgrid(t, y, x, indexing="ij")
        pts = torch.stack([xx, yy, tt], dim=-1).reshape(-1, 3)
        out = torch.cat([self(params, pts[i : i + chunk]) for i in range(0, pts.shape[0], chunk)], dim=1)
        return out.reshape(params.shape[0], t.numel(), y.numel(), x.numel())


class RadialTable(nn.Module):
    """A radial ``relative_operator`` tabulated on an (r, t) lattice: the fast path for arbitrary points.

    With ``inputs="radial"``, no absolute coordinates, no Fourier features and no params besides the source
    position, the operator is a function of (r, t) alone, so it can be evaluated once on an ``n_r × n_t``
    lattice (r over [0, the domain's diagonal], t over [-1, 1]) and answered at any point by bilinear
    interpolation: ``forward(params, coords)`` has the operator's interface and costs one gather per point.
    Exact at lattice nodes; between them the error is the interpolation's (benchmarks measure it).
    """

    def __init__(self, op: RelativeOperator, n_r: int = 2048, n_t: int = 1024) -> None:
        super().__init__()
        if op.inputs != "radial" or op.absolute or op.freqs.shape[0] or op.branch is not None:
            raise ValueError(
                "radial_table: needs inputs='radial', absolute=False, no Fourier features and no "
                "params besides the source position"
            )
        self.op = op
        r_max = float(2.0 * op.r_scale.norm())  # farthest two points of the [-1, 1]^n frame, in r units
        self.r_max = r_max
        r = torch.linspace(0.0, r_max, positive_int("n_r", n_r, minimum=2))
        t = torch.linspace(-1.0, 1.0, positive_int("n_t", n_t, minimum=2))
        tt, rr = torch.meshgrid(t, r, indexing="ij")
        feats = torch.stack([rr - 1.0, tt], dim=-1).reshape(-1, 2)
        with torch.no_grad():
            vals = op.trunk(feats) @ op.coeffs + op.bias  # type: ignore[operator]
        self.register_buffer("table", vals.reshape(1, 1, n_t, n_r))

    def forward(self, params: Tensor, coords: Tensor) -> Tensor:
        """Field ``[B, Q]`` at ``coords`` ``[B, Q, 3]`` or ``[Q, 3]`` (bilinear in the (r, t) table)."""
        src = self.op.source(params)
        if coords.ndim == 2:
            coords = coords.unsqueeze(0).expand(params.shape[0], -1, -1)
        n = self.op.n_dims
        r = ((coords[..., :n] - src.unsqueeze(1)) * self.op.r_scale).norm(dim=-1)
        grid = torch.stack(
            [r * (2.0 / self.r_max) - 1.0, coords[..., n]], dim=-1
        ).unsqueeze(1)  # [B, 1, Q, 2]
        table = self.table.expand(params.shape[0], -1, -1, -1)
        return F.grid_sample(table, grid, mode="bilinear", padding_mode="border", align_corners=True)[:, 0, 0]
