"""DeepONet (Lu et al. 2021) with the wave options of Borrel-Jensen et al. 2023, and a CNN-branch DeepONet.

- ``deeponet`` (interface ``POINTS``): branch MLP on the case parameters, trunk MLP on Fourier features of
  (x, y, t) in [-1, 1]; output ``sum_k b_k t_k + bias`` (modified-MLP gating, sine activation, Fourier
  features);
- ``deeponet_cnn`` (interface ``POINTS`` plus ``velocity [B, ny, nx]`` as third argument, flagged by
  ``needs_velocity``): the branch is a small CNN (any kernel format) over the velocity map joined with the
  parameters. See docs/operators.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.blocks import MLP, activation_fn, make_conv, positive_int
from wavesurrogate.nn.models.geometry import Geometry, parse_geometry
from wavesurrogate.nn.registry import POINTS, register

__all__ = ["DeepONet", "TensorizedBranchDeepONet", "fourier_frequencies"]

FOURIER_KINDS = ("gaussian", "axis", "none")  # plus "physical" (needs geometry, see geometry.py)
BRANCH_INPUTS = ("params", "pulse")
COORD_DIM = 3  # (x, y, t), each scaled to [-1, 1]


def fourier_frequencies(kind: str, n_fourier: int, scale: float | Sequence[float], seed: int,
                        dim: int = COORD_DIM) -> Tensor:
    """Frequency matrix B ``[n_fourier, dim]`` in cycles per unit of scaled coordinate; features use 2*pi*B.

    ``gaussian``: B ~ N(0, scale^2) drawn from a generator seeded with ``seed`` (Tancik et al. 2020);
    ``axis``: deterministic, ``n_fourier / dim`` octaves per axis, highest frequency ``scale``;
    ``none``: empty. ``scale`` is one number or one per axis (x, y, t; 3-D data: ``dim`` = 4, x, y, z, t).
    """
    if kind not in FOURIER_KINDS:
        raise ConfigError(f"model.fourier: unknown {kind!r}; known: {', '.join(FOURIER_KINDS)}")
    words = {3: "three", 4: "four"}
    scales = [float(scale)] * dim if isinstance(scale, int | float) else [float(s) for s in scale]
    if len(scales) != dim or not all(s > 0 and math.isfinite(s) for s in scales):
        raise ConfigError(f"model.fourier_scale: expected one positive number or {words.get(dim, dim)}, "
                          f"got {scale!r}")
    if kind == "none":
        return torch.zeros(0, dim)
    if kind == "gaussian":
        g = torch.Generator().manual_seed(int(seed))
        b = torch.randn(n_fourier, dim, generator=g, dtype=torch.float64)
    else:
        if n_fourier % dim:
            raise ConfigError(f"model.n_fourier: 'axis' features need a multiple of {dim}, got {n_fourier}")
        k = n_fourier // dim
        octaves = 2.0 ** torch.arange(-(k - 1), 1, dtype=torch.float64)  # 2^-(k-1) .. 1
        b = torch.zeros(n_fourier, dim, dtype=torch.float64)
        for axis in range(dim):
            b[axis * k : (axis + 1) * k, axis] = octaves
    return (b * torch.tensor(scales, dtype=torch.float64)).to(torch.float32)


def _trunk_input_dim(fourier: str, n_fourier: int, include_coords: bool, dim: int = COORD_DIM) -> int:
    """Width of the trunk's input: raw coordinates (optional) then cos and sin features."""
    n_feat = 0 if fourier == "none" else 2 * n_fourier
    return (dim if include_coords or fourier == "none" else 0) + n_feat


def _shrink_output(branch: MLP, n_basis: int) -> None:
    """Scale the branch's output init by 1/sqrt(n_basis) so the sum over k starts at unit variance."""
    with torch.no_grad():
        branch.out.weight.mul_(n_basis**-0.5)


class _DeepONetBase(nn.Module):
    """Shared trunk (Fourier features + MLP), combination and tensor-product-grid evaluation."""

    needs_velocity = False

    def _build_trunk(
        self, n_basis: int, trunk_width: int, trunk_depth: int, activation: str, modified: bool, fourier: str,
        n_fourier: int, fourier_scale: float | Sequence[float], fourier_seed: int, include_coords: bool,
        init: str, geometry: Geometry | None = None,
    ) -> None:  # fmt: skip
        """Create the Fourier-feature buffer, the trunk MLP and the output bias."""
        self.n_basis = positive_int("n_basis", n_basis)
        positive_int("trunk_width", trunk_width)
        positive_int("trunk_depth", trunk_depth)
        positive_int("n_fourier", n_fourier, minimum=0 if fourier == "none" else 1)
        self.include_coords = bool(include_coords) or fourier == "none"
        # (x, y, t), or (x, y, z, t) when the task's geometry is 3-D
        self.coord_dim = COORD_DIM if geometry is None else geometry.n_dims + 1
        # persistent: a checkpoint carries the exact frequencies, even if torch's RNG stream ever changes
        if fourier == "physical":
            if geometry is None:
                raise ConfigError("model.fourier: 'physical' needs the task's geometry (model.geometry)")
            freqs = geometry.physical_frequencies(n_fourier, fourier_scale)
        else:
            freqs = fourier_frequencies(fourier, n_fourier, fourier_scale, fourier_seed, self.coord_dim)
        self.register_buffer("freqs", freqs)
        d_trunk = _trunk_input_dim(fourier, n_fourier, include_coords, self.coord_dim)
        self.trunk = MLP(d_trunk, trunk_width, trunk_depth, n_basis, activation, modified, init)
        self.bias = nn.Parameter(torch.zeros(()))

    def encode(self, coords: Tensor) -> Tensor:
        """Trunk input ``[..., d]`` from coordinates ``[..., 3]`` (x, y, t in [-1, 1])."""
        parts = [coords] if self.include_coords else []
        if self.freqs.shape[0]:
            z = (2 * math.pi) * (coords @ self.freqs.T)
            parts += [torch.cos(z), torch.sin(z)]
        return torch.cat(parts, dim=-1)

    def trunk_basis(self, coords: Tensor, chunk: int = 1024) -> Tensor:
        """Trunk outputs ``[..., n_basis]`` at coords ``[..., 3]``, ``chunk`` points at a time."""
        if coords.shape[-1] != self.coord_dim:
            raise ValueError(f"deeponet: expected coords [..., {self.coord_dim}] (space, then t), got "
                             f"{list(coords.shape)}")
        flat = coords.reshape(-1, self.coord_dim)
        out = [self.trunk(self.encode(flat[i : i + chunk])) for i in range(0, flat.shape[0], chunk)]
        basis = torch.cat(out) if out else flat.new_zeros(0, self.n_basis)
        return basis.reshape(*coords.shape[:-1], self.n_basis)

    def combine(self, coeffs: Tensor, basis: Tensor) -> Tensor:
        """``sum_k coeffs[b, k] basis[(b,) q, k] + bias`` → ``[B, Q]``; basis ``[Q, p]`` or ``[B, Q, p]``."""
        if basis.ndim == 2:
            return coeffs @ basis.T + self.bias
        return torch.einsum("bk,bqk->bq", coeffs, basis) + self.bias

    def _forward(self, coeffs: Tensor, coords: Tensor) -> Tensor:
        """Field at ``coords`` ``[B, Q, 3]`` (or ``[Q, 3]`` shared by the batch) → ``[B, Q]``."""
        if coords.ndim == 3 and coords.shape[0] != coeffs.shape[0]:
            raise ValueError(
                f"deeponet: batch of coords {coords.shape[0]} != batch of params {coeffs.shape[0]}"
            )
        if coords.ndim not in (2, 3):
            raise ValueError(f"deeponet: expected coords [B, Q, 3] or [Q, 3], got {list(coords.shape)}")
        return self.combine(coeffs, self.trunk_basis(coords))

    def _predict_grid(self, coeffs: Tensor, x: Tensor, y: Tensor, t: Tensor, chunk: int) -> Tensor:
        """Field ``[B, nt, ny, nx]`` on the tensor-product grid of 1-D coordinates (trunk evaluated once)."""
        for name, v in (("x", x), ("y", y), ("t", t)):
            if v.ndim != 1:
                raise ValueError(f"deeponet.predict_grid: {name} must be 1-D, got shape {list(v.shape)}")
        tt, yy, xx = torch.meshgrid(t, y, x, indexing="ij")
        basis = self.trunk_basis(torch.stack([xx, yy, tt], dim=-1).reshape(-1, COORD_DIM), chunk)
        return self.combine(coeffs, basis).reshape(coeffs.shape[0], t.numel(), y.numel(), x.numel())


@register("deeponet", interface=POINTS)
class DeepONet(_DeepONetBase):
    """DeepONet: params ``[B, P]`` and coords ``[B, Q, 3]`` (x, y, t in [-1, 1]) → field ``[B, Q]``.

    Branch MLP on the parameters, trunk MLP on Fourier features of the coordinates; output
    ``sum_k b_k t_k + bias``. Defaults follow Borrel-Jensen et al. (PNAS 2023): sine activation,
    modified MLP, Fourier features; their SIREN initialisation is ``init="siren"`` (default Glorot, see MLP).
    With the task's ``geometry`` (capability): ``branch_input="pulse"`` feeds the branch the initial Gaussian
    pulse on a ``pulse_ppw``-points-per-wavelength grid (then any non-source params), and
    ``fourier="physical"`` uses the paper's physical wavenumbers (geometry.py). Both default off.
    """

    capabilities = {"geometry": True}

    def __init__(
        self, n_params: int, n_basis: int = 100, branch_width: int = 128, branch_depth: int = 4,
        trunk_width: int = 128, trunk_depth: int = 4, activation: str = "sine", modified: bool = True,
        fourier: str = "gaussian", n_fourier: int = 64, fourier_scale: float | list[float] = 1.0,
        fourier_seed: int = 0, include_coords: bool = True, init: str = "glorot",
        branch_input: str = "params", pulse_ppw: float = 2.0, geometry: dict | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.n_params = positive_int("n_params", n_params)
        positive_int("branch_width", branch_width)
        positive_int("branch_depth", branch_depth)
        if branch_input not in BRANCH_INPUTS:
            raise ConfigError(
                f"model.branch_input: unknown {branch_input!r}; known: {', '.join(BRANCH_INPUTS)}"
            )
        needs = branch_input == "pulse" or fourier == "physical"
        self.geometry = parse_geometry(geometry, n_params) if geometry is not None else None
        if needs and self.geometry is None:
            raise ConfigError(
                "model.geometry: branch_input 'pulse' and fourier 'physical' need the task's geometry"
            )
        self._build_trunk(
            n_basis, trunk_width, trunk_depth, activation, modified, fourier, n_fourier, fourier_scale,
            fourier_seed, include_coords, init, self.geometry,
        )  # fmt: skip
        self.branch_input = branch_input
        d_branch = n_params
        if branch_input == "pulse":
            gx, gy = self.geometry.pulse_grid(pulse_ppw)  # type: ignore[union-attr]
            self.register_buffer("pulse_x", gx.float(), persistent=False)  # rebuilt from kwargs
            self.register_buffer("pulse_y", gy.float(), persistent=False)
            src = self.geometry.source_params  # type: ignore[union-attr]
            self.other_params = [i for i in range(n_params) if i not in src]
            d_branch = gx.numel() * gy.numel() + len(self.other_params)
        self.branch = MLP(d_branch, branch_width, branch_depth, n_basis, activation, modified, init)
        _shrink_output(self.branch, n_basis)

    def branch_features(self, params: Tensor) -> Tensor:
        """Branch input ``[B, d]``: the params, or the flattened pulse ``[ny·nx]`` then the non-source
        params."""
        if params.ndim != 2 or params.shape[1] != self.n_params:
            raise ValueError(f"deeponet: expected params [B, {self.n_params}], got {list(params.shape)}")
        if self.branch_input == "params":
            return params
        pulse = self.geometry.pulse(params, self.pulse_x, self.pulse_y)  # type: ignore[union-attr]
        return torch.cat([pulse, params[:, self.other_params]], dim=1)

    def branch_coeffs(self, params: Tensor) -> Tensor:
        """Branch outputs ``[B, n_basis]`` from params ``[B, n_params]``."""
        return self.branch(self.branch_features(params))

    def forward(self, params: Tensor, coords: Tensor) -> Tensor:
        """Field ``[B, Q]`` at ``coords`` ``[B, Q, 3]`` (or ``[Q, 3]`` shared by the batch)."""
        return self._forward(self.branch_coeffs(params), coords)

    def predict_grid(self, params: Tensor, x: Tensor, y: Tensor, t: Tensor, chunk: int = 1024) -> Tensor:
        """Field ``[B, nt, ny, nx]`` on the grid of 1-D coords x ``[nx]``, y ``[ny]``, t ``[nt]``."""
        return self._predict_grid(self.branch_coeffs(params), x, y, t, chunk)


@register("deeponet_cnn", interface=POINTS)
class TensorizedBranchDeepONet(_DeepONetBase):
    """DeepONet whose branch is a CNN over the velocity map, joined with the parameters.

    ``forward(params [B, P], coords [B, Q, 3], velocity [B, ny, nx])`` → ``[B, Q]``. The CNN is
    ``len(channels)`` blocks of conv k×k → activation → 2×2 average pool, then a global average; its
    features and the parameters go through an MLP to the ``n_basis`` coefficients. ``conv`` = "cp",
    "separable" or "tucker" (with ``conv_rank``) uses factorised convs (``make_conv``).
    """

    needs_velocity = True

    def __init__(
        self, n_params: int, channels: list[int] | None = None, kernel_size: int = 3, conv: str = "dense",
        conv_rank: int | list[int] = 4, n_basis: int = 100, branch_width: int = 128, branch_depth: int = 2,
        trunk_width: int = 128, trunk_depth: int = 4, activation: str = "sine", modified: bool = True,
        fourier: str = "gaussian", n_fourier: int = 64, fourier_scale: float | list[float] = 1.0,
        fourier_seed: int = 0, include_coords: bool = True, init: str = "glorot",
    ) -> None:  # fmt: skip
        super().__init__()
        self.n_params = positive_int("n_params", n_params, minimum=0)
        channels = [8, 16, 32] if channels is None else list(channels)
        if not channels or not all(isinstance(c, int) and c >= 1 for c in channels):
            raise ConfigError(
                f"model.channels: expected a non-empty list of positive integers, got {channels!r}"
            )
        positive_int("kernel_size", kernel_size)
        self._build_trunk(
            n_basis, trunk_width, trunk_depth, activation, modified, fourier, n_fourier, fourier_scale,
            fourier_seed, include_coords, init,
        )  # fmt: skip
        spec = {"format": conv} if conv == "dense" else {"format": conv, "rank": conv_rank}
        pairs = zip([1] + channels[:-1], channels, strict=True)
        self.convs = nn.ModuleList(make_conv(c_in, c_out, kernel_size, spec) for c_in, c_out in pairs)
        self.conv_act = activation_fn("gelu")
        self.branch = MLP(
            channels[-1] + n_params, branch_width, branch_depth, n_basis, activation, modified, init
        )
        _shrink_output(self.branch, n_basis)

    def branch_coeffs(self, params: Tensor, velocity: Tensor) -> Tensor:
        """Branch outputs ``[B, n_basis]`` from params ``[B, P]`` and velocity ``[B, ny, nx]``."""
        if params.ndim != 2 or params.shape[1] != self.n_params:
            raise ValueError(f"deeponet_cnn: expected params [B, {self.n_params}], got {list(params.shape)}")
        h = velocity.unsqueeze(1) if velocity.ndim == 3 else velocity
        if h.ndim != 4 or h.shape[1] != 1 or h.shape[0] != params.shape[0]:
            raise ValueError(f"deeponet_cnn: expected velocity [B, ny, nx], got {list(velocity.shape)}")
        for conv in self.convs:
            h = self.conv_act(conv(h))
            if min(h.shape[-2:]) >= 2:
                h = F.avg_pool2d(h, 2)
        return self.branch(torch.cat([h.mean(dim=(-2, -1)), params], dim=1))

    def forward(self, params: Tensor, coords: Tensor, velocity: Tensor) -> Tensor:
        """Field ``[B, Q]`` at ``coords`` ``[B, Q, 3]`` (or ``[Q, 3]``) for these params and velocity maps."""
        return self._forward(self.branch_coeffs(params, velocity), coords)

    def predict_grid(
        self, params: Tensor, velocity: Tensor, x: Tensor, y: Tensor, t: Tensor, chunk: int = 1024
    ) -> Tensor:
        """Field ``[B, nt, ny, nx]`` on the grid of 1-D coords x, y, t in [-1, 1]."""
        return self._predict_grid(self.branch_coeffs(params, velocity), x, y, t, chunk)
