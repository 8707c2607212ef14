"""Convolutions whose kernels carry a compressed format chosen before training (Boukraichi et al. 2023).

``TensorizedConv2d`` / ``TensorizedConv3d`` are drop-in replacements of ``nn.Conv2d`` / ``nn.Conv3d``
(groups 1)
whose kernel ``W[o, i, *s]`` (``s`` = the spatial axes, 2 or 3 of them) is stored in one of four formats:

- ``dense``: ``W`` itself (a passthrough, so one factory builds every format);
- ``cp``: ``W[o,i,y,x] = sum_r A[o,r] B[i,r] Y[y,r] X[x,r]``: one-way filters shared by all channels,
  evaluated
  as a 1x1 conv (in -> R), one depthwise 1-D conv per spatial axis, and a 1x1 conv (R -> out);
- ``separable``: each (o, i) kernel is its own rank-R sum of outer products of 1-D filters,
  ``W[o,i,y,x] = sum_r Y[o,i,r,y] X[o,i,r,x]`` (the paper's SVD route; 3-D analogously);
- ``tucker``: ``W = G x_o U_o x_i U_i x_y U_y x_x U_x`` (core plus one factor matrix per mode).

Closed-form parameter counts (``k_d`` the kernel size along spatial axis d, ``+ out`` if bias):
dense ``out*in*prod(k_d)``; cp ``R*(out + in + sum(k_d))``; separable ``out*in*R*sum(k_d)``;
tucker ``R_o*R_i*prod(R_d) + out*R_o + in*R_i + sum(k_d*R_d)``.

Initialisation gives the reconstructed kernel the variance of PyTorch's default conv init,
kaiming_uniform(a=sqrt(5)): ``Var W = 1 / (3 fan_in)``, ``fan_in = in*prod(k_d)`` (docs/tensorized.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError

FORMATS = ("dense", "cp", "separable", "tucker")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}

__all__ = [
    "FORMATS",
    "TensorizedConv2d",
    "TensorizedConv3d",
    "TensorizedConvNd",
    "count_parameters",
    "default_kernel_variance",
    "factor_variances",
    "from_dense",
    "cp_rank_for_fraction",
    "cp_rank_for_params",
    "resolve_rank",
]


# ----------------------------------------------------------------------------------------------- closed forms
def _tuple(value: int | Sequence[int], dim: int, name: str) -> tuple[int, ...]:
    """``value`` as a ``dim``-tuple of ints (ConfigError if the length is wrong)."""
    if isinstance(value, int):
        return (value,) * dim
    out = tuple(int(v) for v in value)
    if len(out) != dim:
        raise ConfigError(f"conv.{name}: expected {dim} values, got {len(out)}")
    return out


def default_kernel_variance(fan_in: int) -> float:
    """Variance of PyTorch's default conv weight, kaiming_uniform(a=sqrt(5)): 1/(3 fan_in)."""
    return 1.0 / (3.0 * fan_in)


def resolve_rank(
    format: str, rank: Any, in_channels: int, out_channels: int, kernel_size: Sequence[int]
) -> int | tuple[int, ...] | None:
    """Validated rank: None (dense), int R (cp, separable) or tuple (R_o, R_i, *R_d) (tucker)."""
    if format not in FORMATS:
        raise ConfigError(f"conv.format: unknown format {format!r}; known: {', '.join(FORMATS)}")
    if format == "dense":
        return None
    if format == "tucker":
        if isinstance(rank, int | float) and not isinstance(rank, bool):
            r = int(rank)
            ranks: tuple[int, ...] = (min(r, out_channels), min(r, in_channels), *kernel_size)
        else:
            ranks = tuple(int(v) for v in rank)
            if len(ranks) != 2 + len(kernel_size):
                raise ConfigError(
                    f"conv.rank: tucker needs an int or {2 + len(kernel_size)} ranks, got {rank!r}"
                )
        if min(ranks) < 1:
            raise ConfigError(f"conv.rank: tucker ranks must be >= 1, got {ranks}")
        return ranks
    if format == "cp" and isinstance(rank, float) and not isinstance(rank, bool):
        if not 0.0 < rank < 1.0:  # 1.0 would read as "rank 1" to a human: ints are ranks, floats shares
            raise ConfigError(f"conv.rank: a cp rank fraction must lie in (0, 1), got {rank!r}")
        return cp_rank_for_fraction(rank, in_channels, out_channels, kernel_size)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"conv.rank: {format} needs a positive int rank, got {rank!r}")
    return rank


def cp_rank_for_params(
    layer_params: int, in_channels: int, out_channels: int, kernel_size: Sequence[int]
) -> int:
    """The largest CP rank whose factors hold at most ``layer_params`` numbers (at least 1).

    With one ``layer_params`` for every layer of a network, each layer gets the same factor budget: a narrow
    full-resolution layer gets a large rank (possibly above its channel counts: more distinct one-way filter
    pairs), a wide coarse one a small rank. On the forecast data this allocation beat one rank for all
    layers at the same total parameters (docs/tensorized.md).
    """
    return max(1, layer_params // (in_channels + out_channels + sum(kernel_size)))


def cp_rank_for_fraction(
    fraction: float, in_channels: int, out_channels: int, kernel_size: Sequence[int]
) -> int:
    """The largest CP rank whose factors hold at most ``fraction`` (in (0, 1)) of the dense kernel's weights
    (at least 1).

    ``rank: 0.1`` thus compresses every layer by about 10x: wide layers get large ranks, narrow ones small,
    where one int rank for all layers would starve the widest layers and over-serve the narrowest.
    """
    dense = in_channels * out_channels * math.prod(kernel_size)
    per_rank = in_channels + out_channels + sum(kernel_size)
    return max(1, math.floor(fraction * dense / per_rank + 1e-9))


def count_parameters(
    format: str,
    in_channels: int,
    out_channels: int,
    kernel_size: Sequence[int],
    rank: Any = None,
    bias: bool = True,
) -> int:
    """Closed-form number of trainable parameters of a conv layer in ``format`` (see the module docstring)."""
    k = tuple(kernel_size)
    r = resolve_rank(format, rank, in_channels, out_channels, k)
    if format == "dense":
        n = out_channels * in_channels * math.prod(k)
    elif format == "cp":
        assert isinstance(r, int)
        n = r * (out_channels + in_channels + sum(k))
    elif format == "separable":
        assert isinstance(r, int)
        n = out_channels * in_channels * r * sum(k)
    else:
        assert isinstance(r, tuple)
        spatial = sum(kd * rd for kd, rd in zip(k, r[2:], strict=True))
        n = math.prod(r) + out_channels * r[0] + in_channels * r[1] + spatial
    return n + (out_channels if bias else 0)


def factor_variances(
    format: str, in_channels: int, out_channels: int, kernel_size: Sequence[int], rank: Any = None
) -> dict[str, float]:
    """Per-factor init variances making ``Var W = 1/(3 fan_in)`` exactly (independent zero-mean factors).

    cp: ``Var B = 1/in``, ``Var Y_d = 1/k_d``, ``Var A = 1/(3R)``; then
    ``Var W = R * prod = 1/(3 in prod k_d)``,
    and every stage (1x1 in->R, 1-D filters, 1x1 R->out) keeps the signal variance like a default-init conv.
    separable: all ``n = dim`` factors share ``s^2 = (v/R)^(1/n)``; ``Var W = R s^(2n) = v``.
    tucker: ``Var U_i = 1/in``, ``Var U_d = 1/k_d``, ``Var U_o = 1/R_o``, ``Var G = 1/(3 R_i prod R_d)``; then
    ``Var W = R_o R_i prod(R_d) * prod(variances) = v``.
    """
    k = tuple(kernel_size)
    r = resolve_rank(format, rank, in_channels, out_channels, k)
    v = default_kernel_variance(in_channels * math.prod(k))
    if format == "dense":
        return {"weight": v}
    if format == "cp":
        assert isinstance(r, int)
        out = {"out_factor": 1.0 / (3.0 * r), "in_factor": 1.0 / in_channels}
        out.update({f"spatial_factors.{d}": 1.0 / kd for d, kd in enumerate(k)})
        return out
    if format == "separable":
        assert isinstance(r, int)
        return {f"factors.{d}": (v / r) ** (1.0 / len(k)) for d in range(len(k))}
    assert isinstance(r, tuple)
    out = {
        "core": 1.0 / (3.0 * r[1] * math.prod(r[2:])),
        "out_factor": 1.0 / r[0],
        "in_factor": 1.0 / in_channels,
    }
    out.update({f"spatial_factors.{d}": 1.0 / kd for d, kd in enumerate(k)})
    return out


# ----------------------------------------------------------------------------------------------- padding
def _resolve_padding(
    padding: str | int | Sequence[int],
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[tuple[int, int], ...]:
    """(left, right) padding per spatial axis, following nn.ConvNd's rules (``same`` as in PyTorch)."""
    dim = len(kernel_size)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * dim
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ConfigError("conv.padding: 'same' is not supported with stride > 1")
            pads = []
            for k, d in zip(kernel_size, dilation, strict=True):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ConfigError(
            f"conv.padding: unknown padding {padding!r}; use an int, a tuple, 'same' or 'valid'"
        )
    p = _tuple(padding, dim, "padding")
    if min(p) < 0:
        raise ConfigError(f"conv.padding: must be >= 0, got {p}")
    return tuple((q, q) for q in p)


def _flat_pad(pads: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """F.pad's argument (last axis first) from per-axis (left, right) pairs."""
    out: list[int] = []
    for left, right in reversed(pads):
        out += [left, right]
    return tuple(out)


def _khatri_rao(mats: Sequence[Tensor]) -> Tensor:
    """Column-wise Kronecker product ``[prod n_m, R]`` of ``[n_m, R]`` matrices (C order)."""
    out = mats[0]
    for m in mats[1:]:
        out = (out[:, None, :] * m[None, :, :]).reshape(-1, m.shape[1])
    return out


def _mode_products(core: Tensor, factors: Sequence[Tensor | None]) -> Tensor:
    """``core x_0 U_0 x_1 U_1 ...`` with ``U_m`` ``[n_m, R_m]`` (None skips a mode)."""
    out = core
    for m, f in enumerate(factors):
        if f is not None:
            out = torch.movedim(torch.tensordot(out, f, dims=([m], [1])), -1, m)
    return out


# ----------------------------------------------------------------------------------------------- the layer
class TensorizedConvNd(nn.Module):
    """A 2-D or 3-D convolution whose kernel is stored as ``format`` (dense/cp/separable/tucker) of ``rank``.

    Same arguments and output as ``nn.Conv{dim}d`` (groups fixed to 1); ``format``/``rank`` choose the kernel
    format; ``channels_last`` runs the cp/tucker pipeline in channels-last memory (several times faster on
    CPU,
    the output keeps that layout, values are identical); ``separable_impl`` picks the separable evaluation
    (``"reconstruct"``: build the kernel then one conv, measured fastest on CPU; ``"grouped"``: 1-D grouped
    convs). ``cp_impl`` picks the cp evaluation between the two 1x1 convs (``"auto"``, default: fused when
    ``prod(k) <= 2 sum(k)``, i.e. 3x3 and smaller; per axis for 5x5 or 3x3x3): ``"fused"`` applies the
    one-way filters of each rank term as one depthwise conv whose ``R x k x k`` kernel is their outer product
    (one call instead of one per axis, and one fewer R-channel activation to keep for backward; the dense
    ``out x in x k x k`` kernel is never formed); ``"axes"``: one depthwise 1-D conv per axis.
    ``layer_params`` (cp only, instead of ``rank``): the rank is the largest whose factors hold at most that
    many numbers (``cp_rank_for_params``). ``rank`` may also be a float in (0, 1]: the largest rank holding at
    most that share of the dense kernel's weights (``cp_rank_for_fraction``; an int is always a rank).
    ``recompute`` (cp and tucker, default True): in training, keep only the layer's input for backward and
    recompute the R-channel intermediates there (activation checkpointing), in chunks of the batch small
    enough that the recomputation holds no more than the input's size; so the compressed layer holds no
    more activation memory than a dense conv. False keeps them (a little faster, more memory).
    """

    dim: int = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: str | int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        format: str = "cp",
        rank: Any = 8,
        layer_params: int | None = None,
        channels_last: bool = True,
        separable_impl: str = "reconstruct",
        cp_impl: str = "auto",
        recompute: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        d = self.dim
        if groups != 1:
            raise ConfigError(f"conv.groups: tensorized convolutions support groups=1 only, got {groups}")
        if padding_mode not in PADDING_MODES:
            raise ConfigError(
                f"conv.padding_mode: unknown mode {padding_mode!r}; known: {', '.join(PADDING_MODES)}"
            )
        if separable_impl not in ("reconstruct", "grouped"):
            raise ConfigError(
                f"conv.separable_impl: unknown {separable_impl!r}; use 'reconstruct' or 'grouped'"
            )
        if cp_impl not in ("auto", "fused", "axes"):
            raise ConfigError(f"conv.cp_impl: unknown {cp_impl!r}; use 'auto', 'fused' or 'axes'")
        if in_channels < 1 or out_channels < 1:
            raise ConfigError(f"conv: channels must be >= 1, got in={in_channels}, out={out_channels}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = _tuple(kernel_size, d, "kernel_size")
        self.stride = _tuple(stride, d, "stride")
        self.dilation = _tuple(dilation, d, "dilation")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.dilation) < 1:
            raise ConfigError("conv: kernel_size, stride and dilation must be >= 1")
        self.padding = padding if isinstance(padding, str) else _tuple(padding, d, "padding")
        self.padding_mode = padding_mode
        self._pads = _resolve_padding(padding, self.kernel_size, self.stride, self.dilation)
        self.format = format
        if layer_params is not None:
            if format != "cp":
                raise ConfigError(f"conv.layer_params: only the cp format takes it, not {format!r}")
            if isinstance(layer_params, bool) or not isinstance(layer_params, int) or layer_params < 1:
                raise ConfigError(f"conv.layer_params: must be a positive int, got {layer_params!r}")
            rank = cp_rank_for_params(layer_params, self.in_channels, self.out_channels, self.kernel_size)
        self.layer_params = layer_params
        self.rank = resolve_rank(format, rank, self.in_channels, self.out_channels, self.kernel_size)
        self.channels_last = bool(channels_last)
        self.separable_impl = separable_impl
        if cp_impl == "auto":  # fused costs R*prod(k) multiply-adds a pixel, per axis R*sum(k) in d calls
            cp_impl = "fused" if math.prod(self.kernel_size) <= 2 * sum(self.kernel_size) else "axes"
        self.cp_impl = cp_impl
        self.recompute = bool(recompute)
        self._kernel_cache: tuple[tuple, Tensor] | None = None

        fk: dict[str, Any] = {"device": device, "dtype": dtype}
        o, i, k = self.out_channels, self.in_channels, self.kernel_size
        if format == "dense":
            self.weight = nn.Parameter(torch.empty(o, i, *k, **fk))
        elif format == "cp":
            r = self.rank
            self.out_factor = nn.Parameter(torch.empty(o, r, **fk))
            self.in_factor = nn.Parameter(torch.empty(i, r, **fk))
            self.spatial_factors = nn.ParameterList([nn.Parameter(torch.empty(kd, r, **fk)) for kd in k])
        elif format == "separable":
            r = self.rank
            self.factors = nn.ParameterList([nn.Parameter(torch.empty(o, i, r, kd, **fk)) for kd in k])
        else:
            ro, ri, *rs = self.rank
            self.core = nn.Parameter(torch.empty(ro, ri, *rs, **fk))
            self.out_factor = nn.Parameter(torch.empty(o, ro, **fk))
            self.in_factor = nn.Parameter(torch.empty(i, ri, **fk))
            self.spatial_factors = nn.ParameterList(
                [nn.Parameter(torch.empty(kd, rd, **fk)) for kd, rd in zip(k, rs, strict=True)]
            )
        self.bias = nn.Parameter(torch.empty(o, **fk)) if bias else None
        self.reset_parameters(generator)

    # ------------------------------------------------------------------------------------------- init
    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Uniform factors with the variances of ``factor_variances``; bias U(+-1/sqrt(fan_in))."""
        variances = factor_variances(
            self.format, self.in_channels, self.out_channels, self.kernel_size, self.rank
        )
        params = dict(self.named_parameters())
        for name, var in variances.items():
            bound = math.sqrt(3.0 * var)
            params[name].uniform_(-bound, bound, generator=generator)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.fan_in)
            self.bias.uniform_(-bound, bound, generator=generator)

    @property
    def fan_in(self) -> int:
        """in_channels * prod(kernel_size), as PyTorch's init uses."""
        return self.in_channels * math.prod(self.kernel_size)

    def count_parameters(self) -> int:
        """Trainable parameters, equal to the closed form ``count_parameters(format, ...)``."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # ------------------------------------------------------------------------------------------- kernel
    def reconstruct(self) -> Tensor:
        """The dense kernel ``[out, in, *kernel_size]`` this layer applies (exact; for tests and export)."""
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        if self.format == "dense":
            return self.weight
        if self.format == "cp":
            return (self.out_factor @ _khatri_rao([self.in_factor, *self.spatial_factors]).t()).reshape(shape)
        if self.format == "separable":
            fs = list(self.factors)  # (slicing a ParameterList would re-wrap its tensors as new Parameters)
            terms = fs[0]  # [o, i, R, k0] -> outer products with the next axes, summed over R last
            for f in fs[1:-1]:
                terms = (terms[..., :, None] * f[..., None, :]).flatten(-2)
            return (terms.transpose(-1, -2) @ fs[-1]).reshape(shape)
        w = _mode_products(self.core, [self.out_factor, self.in_factor, *self.spatial_factors])
        return w

    # ------------------------------------------------------------------------------------------- forward
    def forward(self, x: Tensor) -> Tensor:
        """Convolve ``x`` ``[batch, in, *spatial]`` -> ``[batch, out, *spatial_out]``."""
        if self.format in ("cp", "tucker"):
            fn = self._forward_cp if self.format == "cp" else self._forward_tucker
            ts = self._factor_tensors()
            if self.recompute and self.training and torch.is_grad_enabled():
                return _Recompute.apply(fn, self._recompute_chunk(x), x, *ts)
            return fn(x, *ts)
        if self.format == "separable" and self.separable_impl == "grouped":
            return self._forward_separable_grouped(x)
        return self._conv_full(x, self._cached(self.reconstruct), self.bias)

    def _recompute_chunk(self, x: Tensor) -> int:
        """Samples per backward chunk: the recomputed intermediates (about 2R channels, R the largest inner
        rank) of a chunk take no more memory than the layer's whole input (``in`` channels), so the
        recomputation never raises the peak above what a dense conv's backward (grad of its input) holds."""
        inner = self.rank if isinstance(self.rank, int) else max(self.rank[:2])
        return max(1, math.floor(x.shape[0] * self.in_channels / (2 * inner)))

    def _cached(self, build: Callable[[], Tensor], inputs: Sequence[Tensor] | None = None) -> Tensor:
        """``build()``, reused across inference calls until one of ``inputs`` (default: the layer's factors)
        changes, in place or replaced. Never cached with autograd on or in training mode.

        Inference rebuilt a kernel per call otherwise, which at batch 1 costs as much as the convolution.
        """
        if torch.is_grad_enabled() or self.training:
            self._kernel_cache = None
            return build()
        if inputs is None:
            inputs = [p for p in self.parameters() if p is not self.bias]
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in inputs)
        if self._kernel_cache is None or self._kernel_cache[0] != key:
            self._kernel_cache = (key, build())
        return self._kernel_cache[1]

    def _axis(self, axis: int, value: int, other: int) -> tuple[int, ...]:
        """A dim-tuple with ``value`` on ``axis`` and ``other`` elsewhere."""
        return tuple(value if a == axis else other for a in range(self.dim))

    def _conv_full(self, x: Tensor, w: Tensor, bias: Tensor | None, groups: int = 1) -> Tensor:
        """Convolution with a full (all spatial axes) kernel, this layer's stride/dilation/padding."""
        conv = _CONV[self.dim]
        if self.padding_mode == "zeros" and all(a == b for a, b in self._pads):
            pad = tuple(a for a, _ in self._pads)
        else:
            x = F.pad(x, _flat_pad(self._pads), mode=_pad_mode(self.padding_mode))
            pad = (0,) * self.dim
        return conv(x, w, bias, stride=self.stride, padding=pad, dilation=self.dilation, groups=groups)

    def _conv_axis(self, z: Tensor, w: Tensor, axis: int, groups: int) -> Tensor:
        """A 1-D (grouped) convolution along spatial ``axis`` with this layer's stride/dilation/padding."""
        left, right = self._pads[axis]
        if self.padding_mode == "zeros" and left == right:
            pad = self._axis(axis, left, 0)
        else:
            pads = [(left, right) if a == axis else (0, 0) for a in range(self.dim)]
            z = F.pad(z, _flat_pad(pads), mode=_pad_mode(self.padding_mode))
            pad = (0,) * self.dim
        return _CONV[self.dim](
            z,
            w,
            None,
            stride=self._axis(axis, self.stride[axis], 1),
            padding=pad,
            dilation=self._axis(axis, self.dilation[axis], 1),
            groups=groups,
        )

    def _pointwise(self, x: Tensor, w: Tensor, bias: Tensor | None = None) -> Tensor:
        """1x1 convolution with ``w`` ``[out, in]``."""
        return _CONV[self.dim](x, w.reshape(*w.shape, *(1,) * self.dim), bias)

    def _layout(self, x: Tensor) -> Tensor:
        """``x`` in channels-last memory if this layer uses it (a no-op when it already is)."""
        return x.contiguous(memory_format=_CHANNELS_LAST[self.dim]) if self.channels_last else x

    def _factor_tensors(self) -> list[Tensor]:
        """The tensors the cp/tucker pipeline reads, as currently bound (so ``functional_call`` works):
        in_factor, (tucker: core,) the spatial factors, out_factor, then the bias if any."""
        ts = [self.in_factor] + ([self.core] if self.format == "tucker" else [])
        ts += [*self.spatial_factors, self.out_factor]
        return ts + ([self.bias] if self.bias is not None else [])

    def _split(self, ts: Sequence[Tensor]) -> tuple[Tensor, list[Tensor], Tensor, Tensor | None]:
        """(in_factor, middle tensors, out_factor, bias) from ``_factor_tensors`` order."""
        n = len(ts) - (self.bias is not None)
        return ts[0], list(ts[1 : n - 1]), ts[n - 1], (ts[n] if self.bias is not None else None)

    def _forward_cp(self, x: Tensor, *ts: Tensor) -> Tensor:
        """1x1 (in -> R), the one-way filters (fused: one depthwise conv; axes: one per axis), 1x1 (R -> out).
        """
        r = self.rank
        in_factor, spatial, out_factor, bias = self._split(ts)
        z = self._pointwise(self._layout(x), in_factor.t())
        if self.cp_impl == "fused":
            z = self._conv_full(z, _depthwise_kernel(spatial), None, groups=r)
        else:
            for axis, f in enumerate(spatial):
                w = f.t().reshape(r, 1, *self._axis(axis, f.shape[0], 1))
                z = self._conv_axis(z, w, axis, groups=r)
        return self._pointwise(z, out_factor, bias)

    def _forward_tucker(self, x: Tensor, *ts: Tensor) -> Tensor:
        """1x1 (in -> R_i), conv with the small core kernel ``[R_o, R_i, *k]``, 1x1 (R_o -> out) + bias."""
        in_factor, (core, *spatial), out_factor, bias = self._split(ts)
        z = self._pointwise(self._layout(x), in_factor.t())
        kernel = self._cached(lambda: _mode_products(core, [None, None, *spatial]), [core, *spatial])
        z = self._conv_full(z, kernel, None)
        return self._pointwise(z, out_factor, bias)

    def _forward_separable_grouped(self, x: Tensor) -> Tensor:
        """Per-(o, i) 1-D filters as grouped convs: in -> (i, o, r) channels, axis by axis, sum over i, r."""
        o, i, r = self.out_channels, self.in_channels, self.rank
        c = i * o * r
        z = x
        for axis, f in enumerate(self.factors):
            w = f.permute(1, 0, 2, 3).reshape(c, 1, *self._axis(axis, f.shape[-1], 1))
            z = self._conv_axis(z, w, axis, groups=i if axis == 0 else c)
        y = z.reshape(z.shape[0], i, o, r, *z.shape[2:]).sum(dim=(1, 3))
        if self.bias is not None:
            y = y + self.bias.reshape(o, *(1,) * self.dim)
        return y

    def extra_repr(self) -> str:
        """nn.Conv-like summary plus format and rank."""
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, format={self.format!r}, rank={self.rank}"
        )
        if self.dilation != (1,) * self.dim:
            s += f", dilation={self.dilation}"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        if self.bias is None:
            s += ", bias=False"
        return s


def _depthwise_kernel(spatial: Sequence[Tensor]) -> Tensor:
    """``[R, 1, *k]`` from the ``[k_d, R]`` one-way filters: per rank term their outer product."""
    kernel = spatial[0].t()  # [R, k0]
    for f in spatial[1:]:
        kernel = kernel[..., None] * f.t().reshape(f.shape[1], *(1,) * (kernel.ndim - 1), f.shape[0])
    return kernel.unsqueeze(1)


class _Recompute(torch.autograd.Function):
    """``fn(x, *params)`` keeping only its inputs for backward; backward recomputes ``fn`` chunk by chunk of
    the batch.

    Like ``torch.utils.checkpoint``, but the recomputation and its gradients run on ``chunk`` samples at a
    time, so the transient memory of backward scales with the chunk, not the batch. ``fn`` must read its
    weights from ``params`` only (their gradients are summed over the chunks). No double backward.
    """

    @staticmethod
    def forward(ctx: Any, fn: Callable[..., Tensor], chunk: int, x: Tensor, *params: Tensor) -> Tensor:
        ctx.fn, ctx.chunk = fn, chunk
        ctx.save_for_backward(x, *params)
        with torch.no_grad():
            return fn(x, *params)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, *params = ctx.saved_tensors
        want_x = ctx.needs_input_grad[2]
        grad_x = torch.empty_like(x) if want_x else None
        grad_p: list[Tensor | None] = [None] * len(params)
        want_p = ctx.needs_input_grad[3:]
        ps = [p.detach().requires_grad_(w) for p, w in zip(params, want_p, strict=True)]
        for s in range(0, x.shape[0], ctx.chunk):
            part = slice(s, s + ctx.chunk)
            with torch.enable_grad():
                xc = x[part].detach().requires_grad_(want_x)
                yc = ctx.fn(xc, *ps)
                inputs = ([xc] if want_x else []) + [p for p, w in zip(ps, want_p, strict=True) if w]
                grads = list(torch.autograd.grad(yc, inputs, grad_out[part], allow_unused=True))
            if want_x:
                grad_x[part] = grads.pop(0)
            for i in (i for i, w in enumerate(want_p) if w):
                g = grads.pop(0)
                if g is not None:
                    grad_p[i] = g if grad_p[i] is None else grad_p[i] + g
        return (None, None, grad_x, *grad_p)


def _pad_mode(padding_mode: str) -> str:
    """F.pad's mode name for an nn.Conv padding_mode."""
    return "constant" if padding_mode == "zeros" else padding_mode


class TensorizedConv2d(TensorizedConvNd):
    """Drop-in ``nn.Conv2d`` with a compressed kernel (see ``TensorizedConvNd``)."""

    dim = 2


class TensorizedConv3d(TensorizedConvNd):
    """Drop-in ``nn.Conv3d`` with a compressed kernel (see ``TensorizedConvNd``)."""

    dim = 3


# ----------------------------------------------------------------------------------------------- a posteriori
def _unfold(t: Tensor, mode: int) -> Tensor:
    """Mode-``mode`` unfolding ``[n_mode, prod(others)]`` of ``t`` (batch axes none)."""
    return t.movedim(mode, 0).reshape(t.shape[mode], -1)


def _cp_exact(t: Tensor, rank: int) -> list[Tensor]:
    """Exact CP of ``t`` with ``rank >= prod(shape)/max(shape)`` terms: one per index of the other modes."""
    n = t.ndim
    big = max(range(n), key=lambda m: t.shape[m])
    others = [m for m in range(n) if m != big]
    grid = torch.cartesian_prod(*[torch.arange(t.shape[m]) for m in others]).reshape(-1, len(others))
    terms = grid.shape[0]
    factors = [torch.zeros(t.shape[m], rank, dtype=t.dtype) for m in range(n)]
    for j, m in enumerate(others):
        factors[m][grid[:, j], torch.arange(terms)] = 1.0
    factors[big][:, :terms] = t.movedim(big, -1).reshape(terms, t.shape[big]).t()
    return factors


def cp_als(
    t: Tensor, rank: int, n_iter: int = 300, tol: float = 1e-9, generator: torch.Generator | None = None
) -> list[Tensor]:
    """CP factors ``[n_m, rank]`` of ``t`` by alternating least squares (SVD init, float64), norms balanced.

    Exact without iterating when ``rank >= prod(shape)/max(shape)`` (an upper bound of any tensor's CP rank);
    otherwise stops when the relative error changes by less than ``tol`` between sweeps.
    """
    t = t.detach().to(torch.float64)
    n = t.ndim
    if rank * max(t.shape) >= math.prod(t.shape):
        return _balance(_cp_exact(t, rank))
    factors = []
    for m in range(n):
        u, _, _ = torch.linalg.svd(_unfold(t, m), full_matrices=False)
        f = u[:, :rank]
        if f.shape[1] < rank:
            extra = torch.randn(t.shape[m], rank - f.shape[1], dtype=torch.float64, generator=generator)
            f = torch.cat([f, extra / math.sqrt(t.shape[m])], dim=1)
        factors.append(f)
    unfolded = [_unfold(t, m) for m in range(n)]  # others in increasing order, C order = _khatri_rao's
    norm = torch.linalg.vector_norm(t)
    prev = math.inf
    for _ in range(n_iter):
        for m in range(n):
            others = [factors[j] for j in range(n) if j != m]
            gram = torch.ones(rank, rank, dtype=torch.float64)
            for f in others:
                gram = gram * (f.t() @ f)
            mttkrp = unfolded[m] @ _khatri_rao(others)
            factors[m] = torch.linalg.lstsq(gram, mttkrp.t(), rcond=None).solution.t()
        approx = factors[0] @ _khatri_rao(factors[1:]).t()
        err = float(torch.linalg.vector_norm(unfolded[0] - approx) / norm)
        if abs(prev - err) < tol or err < tol:
            break
        prev = err
    return _balance(factors)


def _balance(factors: list[Tensor]) -> list[Tensor]:
    """Rescale each rank-one term so all its factor columns have the same norm (same product)."""
    norms = torch.stack([torch.linalg.vector_norm(f, dim=0) for f in factors])  # [n, R]
    norms = norms.clamp_min(1e-300)
    target = norms.prod(dim=0) ** (1.0 / len(factors))
    return [f / norms[m] * target for m, f in enumerate(factors)]


def _separable_factors(w: Tensor, rank: int, n_iter: int = 200) -> list[Tensor]:
    """Per-kernel rank-R one-way factors ``[o, i, R, k_d]`` of ``w`` ``[o, i, *k]`` (SVD; 3-D: SVDs + ALS)."""
    w = w.detach().to(torch.float64)
    o, i, *k = w.shape
    if len(k) == 2:
        u, s, vh = torch.linalg.svd(w, full_matrices=False)  # [o,i,k0,m], [o,i,m], [o,i,m,k1]
        m = s.shape[-1]
        sq = s.sqrt()
        y = (u * sq[..., None, :]).transpose(-1, -2)  # [o,i,m,k0]
        x = vh * sq[..., None]  # [o,i,m,k1]
        if rank <= m:
            return [y[:, :, :rank], x[:, :, :rank]]
        zeros = [torch.zeros(o, i, rank - m, kd, dtype=w.dtype) for kd in k]
        return [torch.cat([y, zeros[0]], 2), torch.cat([x, zeros[1]], 2)]
    # 3-D: exact nested SVD (k0 * min(k1, k2) terms), keep the largest, then batched ALS refinement
    u, s, vh = torch.linalg.svd(w.reshape(o, i, k[0], k[1] * k[2]), full_matrices=False)
    mats = (s[..., None] * vh).reshape(o, i, -1, k[1], k[2])  # [o,i,m1,k1,k2]
    u2, s2, vh2 = torch.linalg.svd(mats, full_matrices=False)  # [o,i,m1,k1,m2], [o,i,m1,m2], [o,i,m1,m2,k2]
    m1, m2 = s2.shape[-2], s2.shape[-1]
    f0 = u[..., :, :m1].transpose(-1, -2)[:, :, :, None, :].expand(o, i, m1, m2, k[0])  # [o,i,m1,m2,k0]
    f1 = u2.transpose(-1, -2)  # [o,i,m1,m2,k1]
    f2 = vh2 * s2[..., None]  # [o,i,m1,m2,k2]
    weight = s2.reshape(o, i, m1 * m2)
    fs = [f.reshape(o, i, m1 * m2, -1) for f in (f0, f1, f2)]
    order = torch.argsort(weight, dim=-1, descending=True)[..., :rank]
    fs = [torch.take_along_dim(f, order[..., None], dim=2) for f in fs]
    if fs[0].shape[2] < rank:
        fs = [torch.cat([f, torch.zeros(o, i, rank - f.shape[2], f.shape[3], dtype=w.dtype)], 2) for f in fs]
    if rank < m1 * m2:
        fs = _batched_als3(w, fs, n_iter)
    return _balance_batched(fs)


def _batched_als3(w: Tensor, fs: list[Tensor], n_iter: int) -> list[Tensor]:
    """ALS sweeps of a per-kernel CP of ``w`` ``[o,i,a,b,c]``, factors ``[o,i,R,k]`` (error never grows)."""
    eye = 1e-12 * torch.eye(fs[0].shape[2], dtype=w.dtype)
    unfolded = [w.movedim(2 + m, 2).flatten(3) for m in range(3)]  # [o, i, k_m, prod(other k)]
    for _ in range(n_iter):
        for m in range(3):
            others = [j for j in range(3) if j != m]
            a, b = fs[others[0]], fs[others[1]]
            kr = (a[..., :, None] * b[..., None, :]).flatten(-2)  # [o, i, R, k_a * k_b]
            rhs = kr @ unfolded[m].transpose(-1, -2)  # [o, i, R, k_m]
            gram = (a @ a.transpose(-1, -2)) * (b @ b.transpose(-1, -2))
            fs[m] = torch.linalg.solve(gram + eye, rhs)
    return fs


def _balance_batched(fs: list[Tensor]) -> list[Tensor]:
    """Balance the factor norms of every rank-one term of per-kernel factors ``[o,i,R,k]``."""
    norms = torch.stack([torch.linalg.vector_norm(f, dim=-1) for f in fs]).clamp_min(1e-300)
    target = norms.prod(dim=0) ** (1.0 / len(fs))
    return [f / norms[m][..., None] * target[..., None] for m, f in enumerate(fs)]


def _hosvd(w: Tensor, ranks: Sequence[int]) -> tuple[Tensor, list[Tensor]]:
    """Truncated higher-order SVD: factors ``[n_m, R_m]`` (leading left singular vectors) and the core."""
    w = w.detach().to(torch.float64)
    factors = []
    for m, r in enumerate(ranks):
        u, _, _ = torch.linalg.svd(_unfold(w, m), full_matrices=False)
        f = u[:, :r]
        if f.shape[1] < r:
            f = torch.cat([f, torch.zeros(w.shape[m], r - f.shape[1], dtype=w.dtype)], dim=1)
        factors.append(f)
    core = w
    for f in factors:
        core = torch.tensordot(core, f, dims=([0], [0]))  # contracts mode m; rank axis moves last
    return core, factors


@torch.no_grad()
def from_dense(
    conv: nn.Module,
    rank: Any,
    format: str = "cp",
    *,
    n_iter: int = 300,
    generator: torch.Generator | None = None,
    **kwargs: Any,
) -> TensorizedConvNd:
    """Compress a trained ``nn.Conv2d``/``nn.Conv3d`` (or dense TensorizedConv) a posteriori into ``format``.

    cp: ALS (SVD init; exact construction at rank >= prod(shape)/max(shape)); separable: per-kernel SVD
    (3-D: nested SVD then per-kernel ALS); tucker: HOSVD.
    Exact at full rank (separable ``R = k`` in 2-D, ``R = k0*min(k1,k2)`` in 3-D; tucker ``(out, in, *k)``).
    ``kwargs`` go to the new layer's constructor (e.g. ``channels_last``).
    """
    if isinstance(conv, TensorizedConvNd):
        w, dim, groups = conv.reconstruct(), conv.dim, 1
        padding, padding_mode = conv.padding, conv.padding_mode
    elif isinstance(conv, nn.Conv2d | nn.Conv3d):
        w, dim, groups = conv.weight, conv.weight.ndim - 2, conv.groups
        padding, padding_mode = conv.padding, conv.padding_mode
    else:
        raise ConfigError(f"from_dense: expected nn.Conv2d/nn.Conv3d, got {type(conv).__name__}")
    if groups != 1:
        raise ConfigError(f"from_dense: groups={groups} is not supported")
    cls = TensorizedConv2d if dim == 2 else TensorizedConv3d
    out_ch, in_ch, *k = w.shape
    layer = cls(
        in_ch,
        out_ch,
        tuple(k),
        stride=conv.stride,
        padding=padding,
        dilation=conv.dilation,
        bias=conv.bias is not None,
        padding_mode=padding_mode,
        format=format,
        rank=rank,
        device=w.device,
        dtype=w.dtype,
        **kwargs,
    )
    if conv.bias is not None:
        layer.bias.copy_(conv.bias)
    if format == "dense":
        layer.weight.copy_(w)
    elif format == "cp":
        fs = cp_als(w, layer.rank, n_iter=n_iter, generator=generator)
        layer.out_factor.copy_(fs[0])
        layer.in_factor.copy_(fs[1])
        for p, f in zip(layer.spatial_factors, fs[2:], strict=True):
            p.copy_(f)
    elif format == "separable":
        fs = _separable_factors(w, layer.rank, n_iter=min(n_iter, 200))
        for p, f in zip(layer.factors, fs, strict=True):
            p.copy_(f)
    else:
        core, fs = _hosvd(w, layer.rank)
        layer.core.copy_(core)
        layer.out_factor.copy_(fs[0])
        layer.in_factor.copy_(fs[1])
        for p, f in zip(layer.spatial_factors, fs[2:], strict=True):
            p.copy_(f)
    return layer
