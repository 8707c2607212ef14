"""Field decoder: case parameters -> the whole field by a (CP-compressed) CNN, sampled at query points.

``field_decoder`` (interface ``POINTS``): the parameters go through one linear layer to a small ``latent x
latent`` feature map, ``n_up`` stages each upsample by 2 (bilinear) and apply two k×k convolutions built by
``make_conv`` (so ``conv={"format": "cp", "rank": R}`` gives CP-factorised kernels), with the two normalised
coordinate maps (x, y) appended to each stage's input (CoordConv), then a dense 1×1 head writes one channel
per stored frame: ``field(params)`` is the whole field ``[B, n_frames, ny, nx]`` in one pass.
``forward(params, coords)`` samples it at (x, y, t) in [-1, 1] by trilinear interpolation, which returns the
grid values exactly at grid nodes. ``norm`` (default None: GELU after every conv, as before): a graph
norm–activation layer (``nn.layers.normact``, e.g. ``"evonorm_s0"`` or ``{graph: ...}``) in place of the
GELU after each stage conv (2-D only).

With ``nz`` (3-D data, coordinates (x, y, z, t)) the decoder is volumetric: a ``latent³`` map, trilinear
upsampling, 3-D convolutions (``make_conv(dim=3)``: ``{"format": "cp"}`` gives ``TensorizedConv3d``, whose CP
kernels are ``3k`` one-way filters per rank term instead of ``k³`` weights), three coordinate maps, and a
1×1×1 head with one channel per time sample: ``field(params)`` is ``[B, n_frames, nz, ny, nx]``; ``forward``
samples it linearly in x, y, z and t (16 neighbours per point).

Elastic (``nn.elastic``) with CP convolutions: the first b stages (a coarser field, interpolated bilinearly
to the grid as any stage count is) at the first r CP terms are the standalone ``n_up = b``, ``rank = r``
decoder; ``active_blocks`` (None: all) selects the stages.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.blocks import conv_spec, make_conv, make_normact
from wavesurrogate.nn.registry import POINTS, register

__all__ = ["FieldDecoder"]


def _coord_maps3(n: int, nz: int, ny: int, nx: int, like: Tensor) -> Tensor:
    """``[n, 3, nz, ny, nx]`` maps of x, y and z in [-1, 1]."""
    z, y, x = (torch.linspace(-1.0, 1.0, m, dtype=like.dtype, device=like.device) for m in (nz, ny, nx))
    zz, yy, xx = torch.meshgrid(z, y, x, indexing="ij")
    return torch.stack([xx, yy, zz])[None].expand(n, -1, -1, -1, -1)


def _coord_maps(n: int, ny: int, nx: int, like: Tensor) -> Tensor:
    """``[n, 2, ny, nx]`` maps of x and y in [-1, 1]."""
    y = torch.linspace(-1.0, 1.0, ny, dtype=like.dtype, device=like.device)
    x = torch.linspace(-1.0, 1.0, nx, dtype=like.dtype, device=like.device)
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    return torch.stack([xx, yy])[None].expand(n, -1, -1, -1)


@register("field_decoder", interface=POINTS)
class FieldDecoder(nn.Module):
    """Parameters ``[B, P]`` → field ``[B, n_frames, (nz,) ny, nx]`` by a CNN decoder; ``forward`` samples
    it."""

    capabilities = {"onnx": False}  # torch's ONNX exporter has no 5-D (volumetric) GridSample
    onnx_note = "a 5-D (volumetric) GridSample, which ONNX export lacks"

    def __init__(self, n_params: int, n_frames: int, ny: int, nx: int, width: int = 32, latent: int = 4,
                 n_up: int = 4, kernel_size: int = 3, conv: dict[str, Any] | None = None,
                 norm: str | dict[str, Any] | None = None, nz: int | None = None) -> None:
        super().__init__()
        if min(n_params, n_frames, ny, nx, width, latent, nz or 1) < 1 or n_up < 0:
            raise ConfigError("field_decoder: sizes must be >= 1 (n_up >= 0)")
        if nz is not None and norm is not None:
            raise ConfigError("model.norm: the volumetric field_decoder (nz) has GELU only")
        spec = conv_spec(conv)
        self.n_params, self.n_frames, self.ny, self.nx, self.nz = n_params, n_frames, ny, nx, nz
        self.width, self.latent = width, latent
        dim = 2 if nz is None else 3
        self.embed = nn.Linear(n_params, width * latent**dim)
        self.stages = nn.ModuleList(
            nn.ModuleList([make_conv(width + dim, width, kernel_size, spec, dim=dim),
                           make_conv(width, width, kernel_size, spec, dim=dim)])
            for _ in range(n_up))
        self.norms = None if norm is None else nn.ModuleList(
            nn.ModuleList([make_normact(norm, width), make_normact(norm, width)]) for _ in range(n_up))
        self.head = nn.Conv2d(width, n_frames, 1) if nz is None else nn.Conv3d(width, n_frames, 1)
        self.elastic_blocks, self.active_blocks = n_up, None
        self._spec = spec

    def elastic_kwargs(self, blocks: int, rank: int) -> dict[str, Any]:
        """Constructor arguments of the standalone decoder of the first ``blocks`` stages at CP ``rank``."""
        if self._spec["format"] != "cp" or isinstance(self._spec.get("rank"), bool) \
                or not isinstance(self._spec.get("rank"), int):
            raise ConfigError("field_decoder: elastic slicing needs conv format cp with an integer rank")
        conv = {**self.init_kwargs["conv"], "rank": int(rank)}
        return {**self.init_kwargs, "n_up": int(blocks), "conv": conv}

    def field(self, params: Tensor) -> Tensor:
        """The whole field ``[B, n_frames, (nz,) ny, nx]`` (normalised units) for params ``[B, n_params]``."""
        if params.ndim != 2 or params.shape[1] != self.n_params:
            raise ValueError(f"field_decoder: expected params [B, {self.n_params}], got {list(params.shape)}")
        if self.nz is not None:
            return self._field3(params)
        h = self.embed(params).reshape(params.shape[0], self.width, self.latent, self.latent)
        h = F.gelu(h)
        n = len(self.stages) if self.active_blocks is None else self.active_blocks
        for i in range(n):
            conv1, conv2 = self.stages[i]
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            h = torch.cat([h, _coord_maps(h.shape[0], *h.shape[-2:], h)], dim=1)
            if self.norms is None:
                h = F.gelu(conv2(F.gelu(conv1(h))))
            else:
                na1, na2 = self.norms[i]
                h = na2(conv2(na1(conv1(h))))
        if tuple(h.shape[-2:]) != (self.ny, self.nx):
            h = F.interpolate(h, size=(self.ny, self.nx), mode="bilinear", align_corners=True)
        return self.head(h)

    def _field3(self, params: Tensor) -> Tensor:
        n = self.latent
        h = F.gelu(self.embed(params).reshape(params.shape[0], self.width, n, n, n))
        for conv1, conv2 in self.stages[:self.active_blocks]:  # None: all (elastic, as in 2-D)
            h = F.interpolate(h, scale_factor=2, mode="trilinear", align_corners=False)
            h = torch.cat([h, _coord_maps3(h.shape[0], *h.shape[-3:], h)], dim=1)
            h = F.gelu(conv2(F.gelu(conv1(h))))
        if tuple(h.shape[-3:]) != (self.nz, self.ny, self.nx):
            h = F.interpolate(h, size=(self.nz, self.ny, self.nx), mode="trilinear", align_corners=True)
        return self.head(h)

    def _forward3(self, params: Tensor, coords: Tensor) -> Tensor:
        """``[B, Q]`` at ``coords`` ``[B, Q, 4]``: linear in each of x, y, z and t (align-corners grid: -1 and
        +1 are the first and last node), gathering the 16 neighbouring values of each point only (sampling
        every time channel, as ``grid_sample`` would, costs n_t times more)."""
        f = self.field(params)  # [B, n_t, nz, ny, nx]
        if coords.ndim == 2:
            coords = coords[None].expand(f.shape[0], -1, -1)
        b, q = coords.shape[:2]
        sizes = (self.nx, self.ny, self.nz, self.n_frames)  # coordinate columns x, y, z, t
        strides = (1, self.nx, self.nx * self.ny, self.nx * self.ny * self.nz)
        flat_f = f.reshape(b, -1)
        index = torch.zeros(b, q, dtype=torch.long, device=f.device)[..., None]  # [B, Q, 1] corner offsets
        weight = torch.ones(b, q, 1, dtype=f.dtype, device=f.device)
        for k, (n, st) in enumerate(zip(sizes, strides, strict=True)):
            pos = ((coords[..., k].to(f.dtype) + 1.0) * 0.5 * (n - 1)).clamp(0, n - 1)
            i0 = pos.floor().long().clamp(max=max(n - 2, 0))
            w1 = (pos - i0.to(pos.dtype)).unsqueeze(-1)
            i1 = (i0 + 1).clamp(max=n - 1)
            index = torch.cat([index + (i0 * st)[..., None], index + (i1 * st)[..., None]], dim=-1)
            weight = torch.cat([weight * (1 - w1), weight * w1], dim=-1)
        vals = flat_f.gather(1, index.reshape(b, -1)).reshape(b, q, -1)
        return (vals * weight).sum(-1)

    def forward(self, params: Tensor, coords: Tensor) -> Tensor:
        """Field ``[B, Q]`` at ``coords`` ``[B, Q, 3]`` or ``[Q, 3]`` ((x, y, t) in [-1, 1], trilinear; 3-D:
        ``[B, Q, 4]``, (x, y, z, t))."""
        if self.nz is not None:
            return self._forward3(params, coords)
        f = self.field(params)[:, None]  # [B, 1, nt, ny, nx]: grid_sample's (x, y, z) = (x, y, t)
        if coords.ndim == 2:
            coords = coords[None].expand(f.shape[0], -1, -1)
        grid = coords[:, :, None, None, :].to(f.dtype)
        return F.grid_sample(f, grid, mode="bilinear", align_corners=True)[:, 0, :, 0, 0]

    def predict_grid(self, params: Tensor, x: Tensor, y: Tensor, t: Tensor) -> Tensor:
        """Field ``[B, nt, ny, nx]`` on the grid of 1-D coords in [-1, 1] (trilinear samples of ``field``)."""
        tt, yy, xx = torch.meshgrid(t, y, x, indexing="ij")
        pts = torch.stack([xx, yy, tt], dim=-1).reshape(-1, 3)
        return self(params, pts).reshape(params.shape[0], t.numel(), y.numel(), x.numel())
