"""Neural-operator peers: FNO/TFNO adapters around neuraloperator, and our own DeepONet.

- ``fno`` / ``tfno`` (task "forecast"): thin adapters around ``neuralop.models.FNO`` (optional extra
  ``.[operators]``, imported lazily so this module imports without it). TFNO is FNO with a Tucker-factorised
  spectral weight (neuraloperator's default rank 0.1).
- ``deeponet`` (task "source_to_field"): branch MLP on the case parameters, trunk MLP on Fourier features
  of (x, y, t) in [-1, 1]; output ``sum_k b_k t_k + bias`` (Lu et al. 2021; options of Borrel-Jensen et
  al. 2023: modified-MLP gating, sine activation, Fourier features).
- ``deeponet_cnn`` (task "source_to_field", also needs the velocity map): branch is a small CNN over the
  velocity map joined with the parameters.

Parameter counts here count a complex parameter as two real ones (as neuraloperator does).
See docs/operators.md for the design notes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.registry import count_trainable as count_params
from wavesurrogate.nn.registry import register

__all__ = [
    "FNO2d",
    "TFNO2d",
    "DeepONet",
    "TensorizedBranchDeepONet",
    "MLP",
    "count_params",
    "mlp_param_count",
    "deeponet_param_count",
    "fourier_frequencies",
    "params_for_budget",
]

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sine": torch.sin,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
}
ACTIVATIONS_INPLACE: dict[str, Callable[[Tensor], Tensor]] = {
    "sine": torch.sin_,
    "tanh": torch.tanh_,
    "relu": torch.relu_,
}
FOURIER_KINDS = ("gaussian", "axis", "none")
COORD_DIM = 3  # (x, y, t), each scaled to [-1, 1]


# ----------------------------------------------------------------------------------------------- helpers


def _activation(name: str) -> Callable[[Tensor], Tensor]:
    """The activation function called ``name``; ConfigError if unknown."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"model.activation: unknown {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; ConfigError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"model.{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def mlp_param_count(d_in: int, width: int, depth: int, d_out: int, modified: bool = False) -> int:
    """Closed-form parameter count of :class:`MLP` (weights and biases)."""
    n = (d_in + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * d_out
    return n + (2 * (d_in + 1) * width if modified else 0)


def fourier_frequencies(kind: str, n_fourier: int, scale: float | Sequence[float], seed: int) -> Tensor:
    """Frequency matrix B ``[n_fourier, 3]`` in cycles per unit of scaled coordinate; features use 2*pi*B.

    ``gaussian``: B ~ N(0, scale^2) drawn from a generator seeded with ``seed`` (Tancik et al. 2020);
    ``axis``: deterministic, ``n_fourier / 3`` octaves per axis, highest frequency ``scale``;
    ``none``: empty. ``scale`` is one number or one per axis (x, y, t).
    """
    if kind not in FOURIER_KINDS:
        raise ConfigError(f"model.fourier: unknown {kind!r}; known: {', '.join(FOURIER_KINDS)}")
    scales = [float(scale)] * COORD_DIM if isinstance(scale, int | float) else [float(s) for s in scale]
    if len(scales) != COORD_DIM or not all(s > 0 and math.isfinite(s) for s in scales):
        raise ConfigError(f"model.fourier_scale: expected one positive number or three, got {scale!r}")
    if kind == "none":
        return torch.zeros(0, COORD_DIM)
    if kind == "gaussian":
        g = torch.Generator().manual_seed(int(seed))
        b = torch.randn(n_fourier, COORD_DIM, generator=g, dtype=torch.float64)
    else:
        if n_fourier % COORD_DIM:
            raise ConfigError(f"model.n_fourier: 'axis' features need a multiple of 3, got {n_fourier}")
        k = n_fourier // COORD_DIM
        octaves = 2.0 ** torch.arange(-(k - 1), 1, dtype=torch.float64)  # 2^-(k-1) .. 1
        b = torch.zeros(n_fourier, COORD_DIM, dtype=torch.float64)
        for axis in range(COORD_DIM):
            b[axis * k : (axis + 1) * k, axis] = octaves
    return (b * torch.tensor(scales, dtype=torch.float64)).to(torch.float32)


def _trunk_input_dim(fourier: str, n_fourier: int, include_coords: bool) -> int:
    """Width of the trunk's input: raw coordinates (optional) then cos and sin features."""
    n_feat = 0 if fourier == "none" else 2 * n_fourier
    return (COORD_DIM if include_coords or fourier == "none" else 0) + n_feat


def deeponet_param_count(
    n_params: int,
    n_basis: int = 100,
    branch_width: int = 128,
    branch_depth: int = 4,
    trunk_width: int = 128,
    trunk_depth: int = 4,
    modified: bool = True,
    fourier: str = "gaussian",
    n_fourier: int = 64,
    include_coords: bool = True,
    **_: Any,
) -> int:
    """Closed-form trainable parameter count of :class:`DeepONet` with these constructor arguments."""
    d_trunk = _trunk_input_dim(fourier, n_fourier, include_coords)
    return (
        mlp_param_count(n_params, branch_width, branch_depth, n_basis, modified)
        + mlp_param_count(d_trunk, trunk_width, trunk_depth, n_basis, modified)
        + 1
    )


# ----------------------------------------------------------------------------------------------- FNO / TFNO


def _load_neuralop_fno(name: str) -> type[nn.Module]:
    """``neuralop.models.FNO``, or ConfigError telling how to install the optional extra."""
    try:
        from neuralop.models import FNO
    except ImportError:
        raise ConfigError(f"model {name!r} needs the optional extra: pip install .[operators]") from None
    return FNO


class FNO2d(nn.Module):
    """neuraloperator's FNO for the forecast task: ``[B, n_in + 1, ny, nx]`` → ``[B, n_out, ny, nx]``.

    ``n_modes`` = (modes along y, modes along x): neuraloperator keeps frequencies |k| < n/2 on both axes
    (the x axis is stored half-size by the real FFT), so each entry must not exceed the grid size.
    """

    registry_name = "fno"

    def __init__(
        self,
        n_in: int,
        n_out: int,
        n_modes: Sequence[int] = (16, 16),
        hidden_channels: int = 32,
        n_layers: int = 4,
        lifting_channel_ratio: float = 2,
        projection_channel_ratio: float = 2,
        domain_padding: float | None = None,
        positional_embedding: bool = True,
        factorization: str | None = None,
        rank: float = 1.0,
    ) -> None:
        super().__init__()
        fno_cls = _load_neuralop_fno(self.registry_name)
        self.n_in = _positive_int("n_in", n_in)
        self.n_out = _positive_int("n_out", n_out)
        modes = list(n_modes) if isinstance(n_modes, list | tuple) else None
        if modes is None or len(modes) != 2 or not all(isinstance(m, int) and m >= 1 for m in modes):
            raise ConfigError(f"model.n_modes: expected two positive integers [my, mx], got {n_modes!r}")
        _positive_int("hidden_channels", hidden_channels)
        _positive_int("n_layers", n_layers)
        if factorization is not None and factorization.lower() not in {"tucker", "cp", "tt", "dense"}:
            raise ConfigError(f"model.factorization: unknown {factorization!r}; known: tucker, cp, tt, dense")
        if not 0 < float(rank) <= 1.0 and factorization is not None:
            raise ConfigError(f"model.rank: expected a fraction in (0, 1], got {rank!r}")
        self.n_modes = modes
        self.fno = fno_cls(
            n_modes=tuple(modes),
            in_channels=self.n_in + 1,
            out_channels=self.n_out,
            hidden_channels=hidden_channels,
            n_layers=n_layers,
            lifting_channel_ratio=lifting_channel_ratio,
            projection_channel_ratio=projection_channel_ratio,
            domain_padding=domain_padding,
            positional_embedding="grid" if positional_embedding else None,
            factorization=factorization,
            rank=rank,
        )

    def forward(self, x: Tensor) -> Tensor:
        """Next ``n_out`` frames ``[B, n_out, ny, nx]`` from ``x`` ``[B, n_in + 1, ny, nx]``."""
        if x.ndim != 4 or x.shape[1] != self.n_in + 1:
            raise ValueError(
                f"{self.registry_name}: expected x [B, {self.n_in + 1}, ny, nx], got {list(x.shape)}"
            )
        if x.shape[2] < self.n_modes[0] or x.shape[3] < self.n_modes[1]:
            raise ValueError(
                f"{self.registry_name}: grid {list(x.shape[2:])} smaller than n_modes {self.n_modes}"
            )
        return self.fno(x)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Tensors only: drops the pickled ``_metadata`` entry neuraloperator adds (for safetensors)."""
        sd = super().state_dict(*args, **kwargs)
        if not isinstance(sd.get("_metadata", torch.empty(0)), Tensor):
            del sd["_metadata"]
        return sd


register("fno", task="forecast")(FNO2d)


@register("tfno", task="forecast")
class TFNO2d(FNO2d):
    """Tensorised FNO: FNO with Tucker-factorised spectral weights (rank 0.1 keeps ~10 % of them)."""

    registry_name = "tfno"

    def __init__(
        self,
        n_in: int,
        n_out: int,
        n_modes: Sequence[int] = (16, 16),
        hidden_channels: int = 32,
        n_layers: int = 4,
        lifting_channel_ratio: float = 2,
        projection_channel_ratio: float = 2,
        domain_padding: float | None = None,
        positional_embedding: bool = True,
        factorization: str = "tucker",
        rank: float = 0.1,
    ) -> None:
        super().__init__(
            n_in,
            n_out,
            n_modes,
            hidden_channels,
            n_layers,
            lifting_channel_ratio,
            projection_channel_ratio,
            domain_padding,
            positional_embedding,
            factorization,
            rank,
        )


# ----------------------------------------------------------------------------------------------- DeepONet


class MLP(nn.Module):
    """Fully connected net: ``depth`` hidden layers of ``width``, linear output; optional modified-MLP gating.

    Modified MLP (Wang, Teng & Perdikaris 2021): [U, V] = act(W_g x) from the input (one fused layer
    ``gate``); after each hidden layer h ← (1 - h) * U + h * V.
    """

    def __init__(
        self, d_in: int, width: int, depth: int, d_out: int, activation: str = "tanh", modified: bool = False
    ) -> None:
        super().__init__()
        self.act = _activation(activation)
        self.act_inplace = ACTIVATIONS_INPLACE.get(activation)
        self.hidden = nn.ModuleList(
            [nn.Linear(d_in, width)] + [nn.Linear(width, width) for _ in range(depth - 1)]
        )
        self.out = nn.Linear(width, d_out)
        self.gate = nn.Linear(d_in, 2 * width) if modified else None
        for layer in [*self.hidden, self.out]:  # Glorot normal, zero bias (as DeepXDE / Borrel-Jensen et al.)
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
        if self.gate is not None:
            for half in self.gate.weight.data.chunk(2):  # U and V initialised as two width-wide layers
                nn.init.xavier_normal_(half)
            nn.init.zeros_(self.gate.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``[..., d_in]`` → ``[..., d_out]``."""
        # in-place activations when no graph is recorded: fewer allocations, ~20 % faster inference on CPU
        act = self.act_inplace if self.act_inplace is not None and not torch.is_grad_enabled() else self.act
        u = dv = None
        if self.gate is not None:
            u, v = act(self.gate(x)).chunk(2, dim=-1)
            dv = v - u
        h = x
        for layer in self.hidden:
            h = act(layer(h))
            if u is not None:
                h = torch.addcmul(u, h, dv)  # (1 - h) U + h V
        return self.out(h)


def _shrink_output(branch: MLP, n_basis: int) -> None:
    """Scale the branch's output init by 1/sqrt(n_basis) so the sum over k starts at unit variance."""
    with torch.no_grad():
        branch.out.weight.mul_(n_basis**-0.5)


class _DeepONetBase(nn.Module):
    """Shared trunk (Fourier features + MLP), combination and tensor-product-grid evaluation."""

    needs_velocity = False

    def _build_trunk(
        self,
        n_basis: int,
        trunk_width: int,
        trunk_depth: int,
        activation: str,
        modified: bool,
        fourier: str,
        n_fourier: int,
        fourier_scale: float | Sequence[float],
        fourier_seed: int,
        include_coords: bool,
    ) -> None:
        """Create the Fourier-feature buffer, the trunk MLP and the output bias."""
        self.n_basis = _positive_int("n_basis", n_basis)
        _positive_int("trunk_width", trunk_width)
        _positive_int("trunk_depth", trunk_depth)
        _positive_int("n_fourier", n_fourier, minimum=0 if fourier == "none" else 1)
        self.include_coords = bool(include_coords) or fourier == "none"
        # persistent: a checkpoint carries the exact frequencies, even if torch's RNG stream ever changes
        self.register_buffer("freqs", fourier_frequencies(fourier, n_fourier, fourier_scale, fourier_seed))
        d_trunk = _trunk_input_dim(fourier, n_fourier, include_coords)
        self.trunk = MLP(d_trunk, trunk_width, trunk_depth, n_basis, activation, modified)
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
        if coords.shape[-1] != COORD_DIM:
            raise ValueError(f"deeponet: expected coords [..., 3] (x, y, t), got {list(coords.shape)}")
        flat = coords.reshape(-1, COORD_DIM)
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


@register("deeponet", task="source_to_field")
class DeepONet(_DeepONetBase):
    """DeepONet: params ``[B, P]`` and coords ``[B, Q, 3]`` (x, y, t in [-1, 1]) → field ``[B, Q]``.

    Branch MLP on the parameters, trunk MLP on Fourier features of the coordinates; output
    ``sum_k b_k t_k + bias``. Defaults follow Borrel-Jensen et al. (PNAS 2023): sine activation,
    modified MLP, Fourier features.
    """

    def __init__(
        self,
        n_params: int,
        n_basis: int = 100,
        branch_width: int = 128,
        branch_depth: int = 4,
        trunk_width: int = 128,
        trunk_depth: int = 4,
        activation: str = "sine",
        modified: bool = True,
        fourier: str = "gaussian",
        n_fourier: int = 64,
        fourier_scale: float | list[float] = 1.0,
        fourier_seed: int = 0,
        include_coords: bool = True,
    ) -> None:
        super().__init__()
        self.n_params = _positive_int("n_params", n_params)
        _positive_int("branch_width", branch_width)
        _positive_int("branch_depth", branch_depth)
        self._build_trunk(
            n_basis, trunk_width, trunk_depth, activation, modified, fourier, n_fourier, fourier_scale,
            fourier_seed, include_coords,
        )  # fmt: skip
        self.branch = MLP(n_params, branch_width, branch_depth, n_basis, activation, modified)
        _shrink_output(self.branch, n_basis)

    def branch_coeffs(self, params: Tensor) -> Tensor:
        """Branch outputs ``[B, n_basis]`` from params ``[B, n_params]``."""
        if params.ndim != 2 or params.shape[1] != self.n_params:
            raise ValueError(f"deeponet: expected params [B, {self.n_params}], got {list(params.shape)}")
        return self.branch(params)

    def forward(self, params: Tensor, coords: Tensor) -> Tensor:
        """Field ``[B, Q]`` at ``coords`` ``[B, Q, 3]`` (or ``[Q, 3]`` shared by the batch)."""
        return self._forward(self.branch_coeffs(params), coords)

    def predict_grid(self, params: Tensor, x: Tensor, y: Tensor, t: Tensor, chunk: int = 1024) -> Tensor:
        """Field ``[B, nt, ny, nx]`` on the grid of 1-D coords x ``[nx]``, y ``[ny]``, t ``[nt]``."""
        return self._predict_grid(self.branch_coeffs(params), x, y, t, chunk)


# ----------------------------------------------------------------------------------------------- CNN branch


def conv_factory(conv: str, rank: Any) -> Callable[[int, int, int], nn.Module]:
    """A ``make(c_in, c_out, k)`` building 'same'-padded k×k convs: ``nn.Conv2d`` for ``"dense"``, else
    ``wavesurrogate.nn.tensorized.TensorizedConv2d`` in that format (cp, separable, tucker) and ``rank``."""
    if conv == "dense":
        return lambda c_in, c_out, k: nn.Conv2d(c_in, c_out, k, padding=k // 2)
    try:
        from wavesurrogate.nn.tensorized import TensorizedConv2d
    except ImportError:
        raise ConfigError(f"model.conv: {conv!r} needs wavesurrogate.nn.tensorized, not available") from None
    return lambda c_in, c_out, k: TensorizedConv2d(c_in, c_out, k, padding=k // 2, format=conv, rank=rank)


@register("deeponet_cnn", task="source_to_field")
class TensorizedBranchDeepONet(_DeepONetBase):
    """DeepONet whose branch is a CNN over the velocity map, joined with the parameters.

    ``forward(params [B, P], coords [B, Q, 3], velocity [B, ny, nx])`` → ``[B, Q]``. The CNN is
    ``len(channels)`` blocks of conv k×k → activation → 2×2 average pool, then a global average; its
    features and the parameters go through an MLP to the ``n_basis`` coefficients. ``conv`` = "cp",
    "separable" or "tucker" (with ``conv_rank``) uses factorised convs from ``wavesurrogate.nn.tensorized``.
    """

    needs_velocity = True

    def __init__(
        self,
        n_params: int,
        channels: list[int] | None = None,
        kernel_size: int = 3,
        conv: str = "dense",
        conv_rank: int | list[int] = 4,
        n_basis: int = 100,
        branch_width: int = 128,
        branch_depth: int = 2,
        trunk_width: int = 128,
        trunk_depth: int = 4,
        activation: str = "sine",
        modified: bool = True,
        fourier: str = "gaussian",
        n_fourier: int = 64,
        fourier_scale: float | list[float] = 1.0,
        fourier_seed: int = 0,
        include_coords: bool = True,
    ) -> None:
        super().__init__()
        self.n_params = _positive_int("n_params", n_params, minimum=0)
        channels = [8, 16, 32] if channels is None else list(channels)
        if not channels or not all(isinstance(c, int) and c >= 1 for c in channels):
            raise ConfigError(
                f"model.channels: expected a non-empty list of positive integers, got {channels!r}"
            )
        _positive_int("kernel_size", kernel_size)
        self._build_trunk(
            n_basis, trunk_width, trunk_depth, activation, modified, fourier, n_fourier, fourier_scale,
            fourier_seed, include_coords,
        )  # fmt: skip
        make = conv_factory(conv, conv_rank)
        self.convs = nn.ModuleList(
            make(c_in, c_out, kernel_size) for c_in, c_out in zip([1] + channels[:-1], channels, strict=True)
        )
        self.conv_act = _activation("gelu")
        self.branch = MLP(channels[-1] + n_params, branch_width, branch_depth, n_basis, activation, modified)
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


# ----------------------------------------------------------------------------------------------- budgets

_FNO_MODE_CANDIDATES = (4, 6, 8, 10, 12, 16, 20, 24, 32)


def _fno_count(cls: type[FNO2d], kwargs: dict[str, Any]) -> int:
    """Parameter count of ``cls(**kwargs)`` (built on CPU; a few milliseconds for budget-sized models)."""
    return count_params(cls(**kwargs))


def _closest(count: Callable[[int], int], target: int, lo: int, cap: int) -> tuple[int, int]:
    """Integer v in [lo, cap] whose (monotone increasing) ``count(v)`` is nearest ``target`` in log ratio.

    Grows the bracket by doubling first, so no model far above the target is ever built.
    """
    c_lo = count(lo)
    if c_lo >= target:
        return lo, c_lo
    hi = lo
    while hi < cap:  # find hi with count(hi) >= target
        lo, hi = hi, min(2 * hi, cap)
        if count(hi) >= target:
            break
    while hi - lo > 1:  # invariant: count(lo) < target <= count(hi) (or hi is the cap)
        mid = (lo + hi) // 2
        if count(mid) < target:
            lo = mid
        else:
            hi = mid
    c_lo, c_hi = count(lo), count(hi)
    return (lo, c_lo) if abs(math.log(c_lo / target)) <= abs(math.log(c_hi / target)) else (hi, c_hi)


def _fno_budget(name: str, target: int, fixed: dict[str, Any]) -> dict[str, Any]:
    """FNO/TFNO kwargs near ``target``: choose the width, and the modes too unless fixed."""
    cls = FNO2d if name == "fno" else TFNO2d
    max_modes = int(fixed.pop("max_modes", 16))
    if "n_in" not in fixed or "n_out" not in fixed:
        raise ConfigError(f"params_for_budget({name!r}): give n_in and n_out")
    if "hidden_channels" in fixed and "n_modes" in fixed:
        raise ConfigError(
            f"params_for_budget({name!r}): nothing to choose: hidden_channels and n_modes fixed"
        )

    def width_count(modes: list[int]) -> Callable[[int], int]:
        return lambda w: _fno_count(cls, {**fixed, "n_modes": modes, "hidden_channels": w})

    if "n_modes" in fixed:
        w, _ = _closest(width_count(list(fixed["n_modes"])), target, 2, 1024)
        return {**fixed, "n_modes": list(fixed["n_modes"]), "hidden_channels": w}
    if "hidden_channels" in fixed:
        cands = [m for m in _FNO_MODE_CANDIDATES if m <= max_modes]
        counts = [_fno_count(cls, {**fixed, "n_modes": [m, m]}) for m in cands]
        m = min(zip(cands, counts, strict=True), key=lambda mc: abs(math.log(mc[1] / target)))[0]
        return {**fixed, "n_modes": [m, m]}
    # both free: the most modes whose budget width is still >= 2 x modes (neuraloperator's usual ratio is 2-4)
    best: dict[str, Any] | None = None
    for m in [m for m in _FNO_MODE_CANDIDATES if m <= max_modes]:
        w, _ = _closest(width_count([m, m]), target, 2, 1024)
        if best is None or w >= 2 * m:
            best = {**fixed, "n_modes": [m, m], "hidden_channels": w}
    assert best is not None
    return best


def _deeponet_budget(target: int, fixed: dict[str, Any]) -> dict[str, Any]:
    """DeepONet kwargs near ``target``: one width w for branch and trunk, from the closed-form count.

    Unless fixed, the basis size follows the width (n_basis = min(100, w)) and so does the number of
    Fourier frequencies (n_fourier = min(64, max(8, w // 2))), so small budgets stay balanced networks.
    """
    if "n_params" not in fixed:
        raise ConfigError("params_for_budget('deeponet'): give n_params")
    free = [k for k in ("branch_width", "trunk_width") if k not in fixed]
    if not free:
        raise ConfigError("params_for_budget('deeponet'): nothing to choose, both widths fixed")

    def kwargs_for(w: int) -> dict[str, Any]:
        coupled: dict[str, Any] = {"n_basis": min(100, w)}
        if fixed.get("fourier", "gaussian") == "gaussian":  # axis features need a multiple of 3: left alone
            coupled["n_fourier"] = min(64, max(8, w // 2))
        return {**coupled, **fixed, **dict.fromkeys(free, w)}

    w, _ = _closest(lambda w: deeponet_param_count(**kwargs_for(w)), target, 1, 4096)
    return kwargs_for(w)


def params_for_budget(name: str, target_params: int, **fixed: Any) -> dict[str, Any]:
    """Constructor kwargs of ``name`` (fno, tfno, deeponet) with a parameter count near ``target_params``.

    ``fixed`` kwargs are kept; the width (and for FNO/TFNO the modes, at most ``max_modes``, default 16,
    unless ``n_modes`` is fixed) is chosen. Counts use :func:`count_params` (complex counts as two).
    ConfigError if the fixed kwargs leave no choice within 25 % of the target.
    """
    _positive_int("target_params", target_params)
    if name in ("fno", "tfno"):
        kwargs = _fno_budget(name, target_params, dict(fixed))
        n = _fno_count(FNO2d if name == "fno" else TFNO2d, kwargs)
    elif name == "deeponet":
        kwargs = _deeponet_budget(target_params, dict(fixed))
        n = deeponet_param_count(**kwargs)
    else:
        raise ConfigError(f"params_for_budget: no budget rule for model {name!r}; known: fno, tfno, deeponet")
    if not 0.75 * target_params <= n <= 1.25 * target_params:
        raise ConfigError(
            f"params_for_budget({name!r}): cannot reach {target_params} parameters within 25 % with {fixed} "
            f"(nearest: {n})"
        )
    return kwargs
