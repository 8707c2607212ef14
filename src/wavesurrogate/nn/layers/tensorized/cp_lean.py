"""The cp convolution's memory-lean training path: an autograd Function that keeps only the layer's input.

``1x1 (in -> R) -> depthwise one-way filters -> 1x1 (R -> out)`` is run chunk by chunk of the batch, in
forward (without autograd) and again in backward, where the gradients are written by hand: per chunk, the
R-channel intermediates are recomputed (one GEMM, the depthwise convs), the upstream gradient of the chunk is
laid out channels-last, and the chunk's input gradient is written straight into its slice of the result.
Nothing R-channel-sized outlives a chunk, so the transient memory of forward and backward scales with the
chunk (sized to about half the layer's input, ``lean_chunk``), not with the batch, and nothing but the input
is kept between forward and backward. An expanded upstream gradient (``y.sum().backward()``) is materialised
one chunk at a time. Against autograd of the plain composition and against a dense conv of the reconstructed
kernel, values and all gradients agree to float64 round-off (tests/nn/test_cp_lean.py).

Zero padding with equal margins only (``lean_supported``); other padding modes use the generic recomputing
Function of ``recompute.py``. No double backward.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from wavesurrogate.nn.layers.tensorized.recompute import _depthwise_kernel

_CONV = {2: F.conv2d, 3: F.conv3d}
_CL = {2: torch.channels_last, 3: torch.channels_last_3d}


def _is_cl(t: Tensor) -> bool:
    return t.is_contiguous(memory_format=_CL[t.dim() - 2])


def _w1x1(w: Tensor, dim: int) -> Tensor:
    """A ``[out, in]`` matrix as a 1x1 conv kernel."""
    return w.reshape(*w.shape, *(1,) * dim)


def _rows(t: Tensor) -> Tensor:
    """A channels-last ``[n, C, *s]`` tensor viewed as ``[n * (all but the last size), C, 1.., s_last]``
    (same memory, channels-last). For a 1x1 conv the pixels are independent, and with a batch of at least
    16 PyTorch runs it through oneDNN (its own rule: a 1x1 conv on a smaller batch with one thread goes to
    the slow reference convolution, measured 2-3x slower on a chunk of the batch)."""
    n, c, *s = t.shape
    m = t.movedim(1, -1).reshape(-1, *(1,) * (len(s) - 1), s[-1], c)
    return m.movedim(-1, 1)


def _conv1x1(x: Tensor, w: Tensor, bias: Tensor | None = None) -> Tensor:
    """1x1 conv of a channels-last ``x`` with ``w`` ``[out, in]`` through oneDNN (see ``_rows``)."""
    dim = x.dim() - 2
    y = _CONV[dim](_rows(x), _w1x1(w, dim), bias)
    return y.movedim(1, -1).reshape(*x.shape[:1], *x.shape[2:], w.shape[0]).movedim(-1, 1)


def _pix(t: Tensor) -> Tensor:
    """``[n * pixels, C]`` view of a channels-last ``[n, C, *s]`` tensor."""
    return t.movedim(1, -1).reshape(-1, t.shape[1])


def _conv1x1_backward(g: Tensor, x: Tensor, w: Tensor, mask: list[bool]) -> tuple:
    """(grad of x, grad of ``w`` ``[out, in]``, grad of the bias) of ``_conv1x1``, channels-last ``g`` and
    ``x``; ``mask`` picks them. The input gradient is the 1x1 conv with ``w.t()``; the weight gradient one
    GEMM over the pixels, ordered ``[in, pixels] @ [pixels, out]`` (MKL runs the other order, with the narrow
    R-column result, several times slower; measured)."""
    gx = _conv1x1(g, w.t()) if mask[0] else None
    gw = (_pix(x).t() @ _pix(g)).t() if mask[1] else None
    gb = _pix(g).sum(0) if mask[2] else None
    return gx, gw, gb


def _proj_in(x: Tensor, w: Tensor) -> Tensor:
    """The first 1x1 (``w`` ``[in, R]``) of a channels-last or contiguous ``x``, as the layer's fast path runs
    it (contiguous: one batched GEMM, then the R-channel result re-laid; channels-last: oneDNN's 1x1 conv,
    already a GEMM over the pixels): channels-last ``[n, R, *s]``."""
    n, c, *s = x.shape
    if _is_cl(x):
        return _conv1x1(x, w.t())
    z = torch.bmm(w.t().expand(n, -1, -1), x.reshape(n, c, -1)).reshape(n, w.shape[1], *s)
    return z.contiguous(memory_format=_CL[x.dim() - 2])


def lean_supported(layer: Any) -> bool:
    """The lean path handles cp layers with zero padding of equal margins on each axis."""
    return layer.format == "cp" and layer.padding_mode == "zeros" and all(a == b for a, b in layer._pads)


def lean_chunk(batch: int, cin: int, cout: int, rank: int) -> int:
    """Samples per chunk: what a chunk holds at once in backward (its upstream gradient and three R-channel
    tensors, or the input gradient and one R-channel tensor) is at most half of what the layer's input
    holds."""
    return max(1, min(batch, math.floor(batch * cin / (2 * max(cout + 3 * rank, cin + rank)))))


def lean_forward(layer: Any, x: Tensor, ts: list[Tensor]) -> Tensor:
    """``layer``'s cp convolution of ``x`` through ``CPLean`` (``ts``: ``layer._factor_tensors()``)."""
    cfg = {"dim": layer.dim, "impl": layer.cp_impl, "stride": layer.stride, "dilation": layer.dilation,
           "pad": tuple(a for a, _ in layer._pads), "has_bias": layer.bias is not None}
    chunk = lean_chunk(x.shape[0], layer.in_channels, layer.out_channels, ts[0].shape[1])
    return CPLean.apply(cfg, chunk, x, *ts)


def _stages(cfg: dict, spatial: list[Tensor]) -> list[tuple[Tensor, tuple, tuple, tuple]]:
    """The depthwise convs as (weight ``[R, 1, *k]``, stride, padding, dilation): one (fused) or one per
    axis."""
    dim, r = cfg["dim"], spatial[0].shape[1]
    if cfg["impl"] == "fused":
        return [(_depthwise_kernel(spatial), cfg["stride"], cfg["pad"], cfg["dilation"])]

    def axis(a: int, v: tuple, other: int) -> tuple:
        return tuple(v[a] if b == a else other for b in range(dim))

    return [(f.t().reshape(r, 1, *axis(a, (f.shape[0],) * dim, 1)), axis(a, cfg["stride"], 1),
             axis(a, cfg["pad"], 0), axis(a, cfg["dilation"], 1)) for a, f in enumerate(spatial)]


def _depthwise(z: Tensor, stages: list) -> list[Tensor]:
    """``[z, stage 1 output, ..., last stage output]``, each channels-last."""
    zs = [z]
    for w, stride, pad, dil in stages:
        zs.append(_CONV[z.dim() - 2](zs[-1], w, None, stride, pad, dil, w.shape[0]))
    return zs


class CPLean(torch.autograd.Function):
    """``y = cp_conv(x)`` keeping only ``x`` (and the factors) for backward; see the module docstring.

    ``apply(cfg, chunk, x, in_factor, *spatial, out_factor[, bias])``; ``cfg``: dim, impl ("fused" or
    "axes"), stride, pad (one zero-padding margin per axis), dilation, has_bias.
    """

    @staticmethod
    def forward(ctx: Any, cfg: dict, chunk: int, x: Tensor, *ts: Tensor) -> Tensor:
        if not (_is_cl(x) or x.is_contiguous()):
            x = x.contiguous(memory_format=_CL[cfg["dim"]])
        ctx.cfg, ctx.chunk = cfg, chunk
        ctx.save_for_backward(x, *ts)
        in_f, spatial, out_f, bias = _unpack(cfg, ts)
        stages = _stages(cfg, spatial)
        dim, n_all = cfg["dim"], x.shape[0]
        y = None
        for s in range(0, n_all, chunk):
            z = _depthwise(_proj_in(x[s:s + chunk], in_f), stages)[-1]
            yc = _conv1x1(z, out_f, bias)
            if chunk >= n_all:
                return yc
            if y is None:
                y = torch.empty((n_all, *yc.shape[1:]), dtype=yc.dtype, device=yc.device,
                                memory_format=_CL[dim])
            y[s:s + chunk] = yc
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor | None, ...]:
        cfg, chunk = ctx.cfg, ctx.chunk
        x, *ts = ctx.saved_tensors
        in_f, spatial, out_f, bias = _unpack(cfg, ts)
        need = ctx.needs_input_grad[2:]
        want_x, want_in, want_out = need[0], need[1], need[2 + len(spatial)]
        want_sp = any(need[2:2 + len(spatial)])
        want_b = bias is not None and need[-1]
        with torch.no_grad():
            stages = _stages(cfg, [f.detach() for f in spatial])
        r, dim, n_all = in_f.shape[1], cfg["dim"], x.shape[0]
        gx = torch.empty_like(x) if want_x else None
        g_in = torch.zeros_like(in_f) if want_in else None
        g_out = torch.zeros_like(out_f) if want_out else None
        g_b = torch.zeros_like(bias) if want_b else None
        g_w = [torch.zeros_like(w) for w, *_ in stages] if want_sp else None
        zeros = [0] * dim
        for s in range(0, n_all, chunk):
            xc = x[s:s + chunk]
            n = xc.shape[0]
            g = grad_y[s:s + chunk].contiguous(memory_format=_CL[dim])
            zs = _depthwise(_proj_in(xc, in_f), stages)
            gz, gwo, gb = _conv1x1_backward(g, zs.pop(), out_f, [True, want_out, want_b])
            del g
            if want_out:
                g_out += gwo
            if want_b:
                g_b += gb
            for i in range(len(stages) - 1, -1, -1):
                w, stride, pad, dil = stages[i]
                gz, gw, _ = torch.ops.aten.convolution_backward(
                    gz, zs.pop(), w, None, stride, pad, dil, False, zeros, r, [True, want_sp, False])
                if want_sp:
                    g_w[i] += gw
            if _is_cl(xc):
                if not _is_cl(gz):
                    gz = gz.contiguous(memory_format=_CL[dim])
                gxc, gwi, _ = _conv1x1_backward(gz, xc, in_f.t(), [want_x, want_in, False])
                if want_x:
                    gx[s:s + chunk] = gxc
                if want_in:
                    g_in += gwi.t()
            else:  # contiguous (NCHW) input: the batched GEMM's two products, per sample
                x3, gz3 = xc.reshape(n, xc.shape[1], -1), gz.contiguous().reshape(n, r, -1)
                if want_in:
                    g_in += torch.bmm(gz3, x3.transpose(1, 2)).sum(0).t()
                if want_x:
                    torch.bmm(in_f.expand(n, *in_f.shape), gz3, out=gx[s:s + chunk].view(n, xc.shape[1], -1))
        g_sp: list[Tensor | None] = [None] * len(spatial)
        if want_sp:
            if cfg["impl"] == "fused":
                with torch.enable_grad():
                    leaves = [f.detach().requires_grad_() for f in spatial]
                    g_sp = list(torch.autograd.grad(_depthwise_kernel(leaves), leaves, g_w[0]))
            else:
                g_sp = [gw.reshape(r, -1).t() for gw in g_w]
        out = [gx, g_in, *g_sp, g_out] + ([g_b] if bias is not None else [])
        return (None, None, *out)


def _unpack(cfg: dict, ts: tuple[Tensor, ...]) -> tuple[Tensor, list[Tensor], Tensor, Tensor | None]:
    """(in_factor, spatial factors, out_factor, bias) from the Function's tensor arguments."""
    n = len(ts) - cfg["has_bias"]
    return ts[0], list(ts[1:n - 1]), ts[n - 1], (ts[n] if cfg["has_bias"] else None)
