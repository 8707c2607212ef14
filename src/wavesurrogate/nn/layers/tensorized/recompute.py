"""Kernel helpers of the factorised layers and the chunk-wise recomputing autograd Function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor


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
