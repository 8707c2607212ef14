"""Field decoder: case parameters -> the whole field by a (CP-compressed) CNN, sampled at query points.

``field_decoder`` (interface ``POINTS``): the parameters go through one linear layer to a small ``latent x
latent`` feature map, ``n_up`` stages each upsample by 2 (bilinear) and apply two k×k convolutions built by
``make_conv`` (so ``conv={"format": "cp", "rank": R}`` gives CP-factorised kernels), with the two normalised
coordinate maps (x, y) appended to each stage's input (CoordConv), then a dense 1×1 head writes one channel
per stored frame: ``field(params)`` is the whole field ``[B, n_frames, ny, nx]`` in one pass.
``forward(params, coords)`` samples it at (x, y, t) in [-1, 1] by trilinear interpolation, which returns the
grid values exactly at grid nodes.

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
from wavesurrogate.nn.layers.blocks import conv_spec, make_conv
from wavesurrogate.nn.registry import POINTS, register

__all__ = ["FieldDecoder"]


def _coord_maps(n: int, ny: int, nx: int, like: Tensor) -> Tensor:
    """``[n, 2, ny, nx]`` maps of x and y in [-1, 1]."""
    y = torch.linspace(-1.0, 1.0, ny, dtype=like.dtype, device=like.device)
    x = torch.linspace(-1.0, 1.0, nx, dtype=like.dtype, device=like.device)
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    return torch.stack([xx, yy])[None].expand(n, -1, -1, -1)


@register("field_decoder", interface=POINTS)
class FieldDecoder(nn.Module):
    """Parameters ``[B, P]`` → field ``[B, n_frames, ny, nx]`` by a CNN decoder; ``forward`` samples it."""

    capabilities = {"onnx": False}  # torch's ONNX exporter has no 5-D (volumetric) GridSample

    def __init__(self, n_params: int, n_frames: int, ny: int, nx: int, width: int = 32, latent: int = 4,
                 n_up: int = 4, kernel_size: int = 3, conv: dict[str, Any] | None = None) -> None:
        super().__init__()
        if min(n_params, n_frames, ny, nx, width, latent) < 1 or n_up < 0:
            raise ConfigError("field_decoder: sizes must be >= 1 (n_up >= 0)")
        spec = conv_spec(conv)
        self.n_params, self.n_frames, self.ny, self.nx = n_params, n_frames, ny, nx
        self.width, self.latent = width, latent
        self.embed = nn.Linear(n_params, width * latent * latent)
        self.stages = nn.ModuleList(
            nn.ModuleList([make_conv(width + 2, width, kernel_size, spec),
                           make_conv(width, width, kernel_size, spec)])
            for _ in range(n_up))
        self.head = nn.Conv2d(width, n_frames, 1)
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
        """The whole field ``[B, n_frames, ny, nx]`` (normalised units) for parameters ``[B, n_params]``."""
        if params.ndim != 2 or params.shape[1] != self.n_params:
            raise ValueError(f"field_decoder: expected params [B, {self.n_params}], got {list(params.shape)}")
        h = self.embed(params).reshape(params.shape[0], self.width, self.latent, self.latent)
        h = F.gelu(h)
        n = len(self.stages) if self.active_blocks is None else self.active_blocks
        for i in range(n):
            conv1, conv2 = self.stages[i]
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            h = torch.cat([h, _coord_maps(h.shape[0], *h.shape[-2:], h)], dim=1)
            h = F.gelu(conv2(F.gelu(conv1(h))))
        if tuple(h.shape[-2:]) != (self.ny, self.nx):
            h = F.interpolate(h, size=(self.ny, self.nx), mode="bilinear", align_corners=True)
        return self.head(h)

    def forward(self, params: Tensor, coords: Tensor) -> Tensor:
        """Field ``[B, Q]`` at ``coords`` ``[B, Q, 3]`` or ``[Q, 3]`` ((x, y, t) in [-1, 1], trilinear)."""
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
