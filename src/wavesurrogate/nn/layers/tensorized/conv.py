"""``TensorizedConvNd``: a drop-in ``nn.Conv2d``/``nn.Conv3d`` whose kernel is factorised (see package)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.tensorized.cp_lean import lean_forward, lean_supported
from wavesurrogate.nn.layers.tensorized.ranks import (
    FORMATS,
    _tuple,
    cp_rank_for_params,
    factor_variances,
    resolve_rank,
)
from wavesurrogate.nn.layers.tensorized.recompute import (
    _depthwise_kernel,
    _khatri_rao,
    _mode_products,
    _Recompute,
)

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}

__all__ = ["FORMATS", "TensorizedConv2d", "TensorizedConv3d", "TensorizedConvNd"]


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


# ----------------------------------------------------------------------------------------------- the layer
class TensorizedConvNd(nn.Module):
    """A 2-D or 3-D convolution whose kernel is stored as ``format`` (dense/cp/separable/tucker) of ``rank``.

    Same arguments and output as ``nn.Conv{dim}d`` (groups fixed to 1); ``format``/``rank`` choose the kernel
    format; ``channels_last`` runs the cp/tucker pipeline in channels-last memory (several times faster on
    CPU; the output keeps that layout, same values); ``separable_impl`` picks the separable evaluation
    (``"reconstruct"``: build the kernel then one conv, measured fastest on CPU; ``"grouped"``: 1-D grouped
    convs). ``cp_impl`` picks the cp evaluation between the two 1x1 convs (``"auto"``, default: fused when
    every k <= 3, i.e. 3x3 and 3x3x3, measured faster there; per axis for 5x5 and larger): ``"fused"`` applies
    the one-way filters of each rank term as one depthwise conv whose ``R x k x k`` kernel is their outer
    product (one call instead of one per axis, and one fewer R-channel activation kept for backward; the
    dense ``out x in x k x k`` kernel is never formed); ``"axes"``: one depthwise 1-D conv per axis.
    ``layer_params`` (cp only, instead of ``rank``): the rank is the largest whose factors hold at most that
    many numbers (``cp_rank_for_params``). ``rank`` may also be a float in (0, 1]: the largest rank holding at
    most that share of the dense kernel's weights (``cp_rank_for_fraction``; an int is always a rank).
    ``recompute`` (cp and tucker; True, False or ``"auto"``, the default): True keeps only the layer's input
    for backward and recomputes the R-channel intermediates there (cp with zero padding: ``cp_lean``, chunk
    by chunk of the batch with hand-written gradients; otherwise chunked activation checkpointing).
    ``"auto"`` recomputes where keeping them would lift the training-step tensor peak above a dense conv's:
    when 2R > in, and for a channels-last input also when (stages + 2) R >= in (the R-channel tensors the
    plain backward holds at its peak; on a contiguous input oneDNN's reordered copies double the dense
    conv's peak, measured in ``benchmarks/layers.py``). The first 1x1 runs in the input's own layout.

    ``active_rank`` (cp only; a plain attribute, not a weight; None = all ``rank`` terms): the layer applies
    only its first ``active_rank`` rank-1 terms, read as views of the factors (nothing copied), which is
    exactly the rank-``active_rank`` layer holding those columns (nested, "elastic" ranks: ``nn.elastic``).
    """

    dim: int = 2

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1, padding: str | int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
        *, format: str = "cp", rank: Any = 8, layer_params: int | None = None, channels_last: bool = True,
        separable_impl: str = "reconstruct", cp_impl: str = "auto", recompute: bool | str = "auto",
        device: torch.device | str | None = None, dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> None:  # fmt: skip
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
        if cp_impl == "auto":  # fused costs R*prod(k) multiply-adds a pixel, per axis R*sum(k) in d calls;
            # measured (benchmarks/layers.py): fused wins at 3x3 and 3x3x3 (one call, not three), axes at 5x5
            cp_impl = "fused" if max(self.kernel_size) <= 3 else "axes"
        self.cp_impl = cp_impl
        if recompute not in (True, False, "auto"):
            raise ConfigError(f"conv.recompute: must be true, false or 'auto', got {recompute!r}")
        self._auto_lean = False  # "auto": recompute channels-last inputs too (see the class docstring)
        if recompute == "auto":  # the two R-channel intermediates kept for backward vs the input
            self._auto_lean = format == "cp" and lean_supported(self) and (
                (len(self.kernel_size) if self.cp_impl == "axes" else 1) + 2) * self.rank >= self.in_channels
            recompute = format in ("cp", "tucker") and 2 * self._inner_rank() > self.in_channels
        self.recompute = bool(recompute)
        self._kernel_cache: tuple[tuple, Tensor] | None = None
        self.active_rank: int | None = None

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
            in_f, *spatial, out_f = self._factor_tensors()[: 2 + self.dim]
            return (out_f @ _khatri_rao([in_f, *spatial]).t()).reshape(shape)
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
            if self._recomputes(x):
                if lean_supported(self):
                    return lean_forward(self, x, ts)
                return _Recompute.apply(fn, self._recompute_chunk(x), x, *ts)
            return fn(x, *ts)
        if self.format == "separable" and self.separable_impl == "grouped":
            return self._forward_separable_grouped(x)
        return self._conv_full(x, self._cached(self.reconstruct), self.bias)

    def _recomputes(self, x: Tensor) -> bool:
        """Whether this call (training, autograd on) keeps only ``x`` for backward (see ``recompute``)."""
        if not (self.training and torch.is_grad_enabled()):
            return False
        cl = x.dim() == self.dim + 2 and x.is_contiguous(memory_format=_CHANNELS_LAST[self.dim])
        return self.recompute or (self._auto_lean and cl and not x.is_contiguous())

    def _recompute_chunk(self, x: Tensor) -> int:
        """Samples per backward chunk: the recomputed intermediates (about 2R channels, R the largest inner
        rank) of a chunk take no more memory than the layer's whole input (``in`` channels), so the
        recomputation never raises the peak above what a dense conv's backward (grad of its input) holds."""
        return max(1, math.floor(x.shape[0] * self.in_channels / (2 * self._inner_rank())))

    def _inner_rank(self) -> int:
        """Channels of the widest intermediate between the two 1x1 stages (cp: R; tucker: max(R_o, R_i))."""
        return self.rank if isinstance(self.rank, int) else max(self.rank[:2])

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
        return _CONV[self.dim](z, w, None, stride=self._axis(axis, self.stride[axis], 1), padding=pad,
                               dilation=self._axis(axis, self.dilation[axis], 1), groups=groups)

    def _pointwise(self, x: Tensor, w: Tensor, bias: Tensor | None = None) -> Tensor:
        """1x1 convolution with ``w`` ``[out, in]``. A contiguous (NCHW) input goes through one batched matrix
        product ``w @ x_b`` (forward and backward are plain GEMMs over the pixels; the mkldnn 1x1 conv on a
        contiguous input, and its backward, measured several times slower); a channels-last input through
        the conv (mkldnn's channels-last 1x1 is already a GEMM)."""
        if bias is None and x.is_contiguous() and not torch.jit.is_scripting():
            b, c = x.shape[:2]
            z = torch.bmm(w.unsqueeze(0).expand(b, -1, -1), x.reshape(b, c, -1))
            return z.reshape(b, w.shape[0], *x.shape[2:])
        return _CONV[self.dim](x, w.reshape(*w.shape, *(1,) * self.dim), bias)

    def _layout(self, x: Tensor) -> Tensor:
        """``x`` in channels-last memory if this layer uses it (a no-op when it already is)."""
        return x.contiguous(memory_format=_CHANNELS_LAST[self.dim]) if self.channels_last else x

    def _factor_tensors(self) -> list[Tensor]:
        """The tensors the cp/tucker pipeline reads, as currently bound (so ``functional_call`` works):
        in_factor, (tucker: core,) the spatial factors, out_factor, then the bias if any; cp with an
        ``active_rank`` below ``rank``: views of the factors' first ``active_rank`` columns."""
        ts = [self.in_factor] + ([self.core] if self.format == "tucker" else [])
        ts += [*self.spatial_factors, self.out_factor]
        r = self.active_rank
        if self.format == "cp" and r is not None and r < self.rank:
            ts = [t[:, :r] for t in ts]
        return ts + ([self.bias] if self.bias is not None else [])

    def _split(self, ts: Sequence[Tensor]) -> tuple[Tensor, list[Tensor], Tensor, Tensor | None]:
        """(in_factor, middle tensors, out_factor, bias) from ``_factor_tensors`` order."""
        n = len(ts) - (self.bias is not None)
        return ts[0], list(ts[1 : n - 1]), ts[n - 1], (ts[n] if self.bias is not None else None)

    def _forward_cp(self, x: Tensor, *ts: Tensor) -> Tensor:
        """1x1 (in -> R), the one-way filters (fused: one depthwise conv; axes: one per axis), 1x1 (R -> out).
        """
        in_factor, spatial, out_factor, bias = self._split(ts)
        r = in_factor.shape[1]  # the active rank
        z = self._layout(self._pointwise(x, in_factor.t()))  # R channels: cheaper to re-lay than ``x``
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
        z = self._layout(self._pointwise(x, in_factor.t()))
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
        if self.active_rank is not None:
            s += f", active_rank={self.active_rank}"
        if self.dilation != (1,) * self.dim:
            s += f", dilation={self.dilation}"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        if self.bias is None:
            s += ", bias=False"
        return s


def _pad_mode(padding_mode: str) -> str:
    """F.pad's mode name for an nn.Conv padding_mode."""
    return "constant" if padding_mode == "zeros" else padding_mode


class TensorizedConv2d(TensorizedConvNd):
    """Drop-in ``nn.Conv2d`` with a compressed kernel (see ``TensorizedConvNd``)."""

    dim = 2


class TensorizedConv3d(TensorizedConvNd):
    """Drop-in ``nn.Conv3d`` with a compressed kernel (see ``TensorizedConvNd``)."""

    dim = 3
