"""CNN surrogates of the wave equation: cnn2d, unet2d, cnn3d.

Every spatial conv is built by ``nn.layers.blocks.make_conv`` in any kernel format, so a dense and a
compressed network of the same family differ only in those layers (the 1x1 output head stays dense: it has
no one-way filters to compress). Interface ``FRAMES``: ``forward(x)`` with ``x`` ``[B, n_in + 1, ny, nx]``
(the last n_in frames, then the velocity map, then ``n_extra`` more channels such as the forcing; default
0) returns the next ``n_out`` frames ``[B, n_out, ny, nx]``.

With ``residual=True`` (default) each network predicts the increment over the last input frame: wave fields
change little between frames, so the network learns the small update instead of copying the field through.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.blocks import Activation, conv_spec, is_graph_norm, make_conv, make_norm
from wavesurrogate.nn.registry import FRAMES, register

__all__ = ["CNN2d", "CNN3d", "UNet2d"]


class ConvBlock(nn.Module):
    """Two ``k``-convs with norm and activation; a residual connection when in == out.

    ``norm`` a name of ``NORMS``: conv, norm, act, conv, norm, (+ x), act. A graph norm (``normact``: one
    layer for norm and activation): conv, normact, conv, normact, (+ x), so that every norm–activation pair
    of the block is the graph layer and the skip path stays an identity.
    """

    def __init__(
        self, cin: int, cout: int, k: int, conv: dict[str, Any], dim: int, padding_mode: str,
        activation: str, norm: str | dict[str, Any],
    ) -> None:  # fmt: skip
        super().__init__()
        self.skip = cin == cout
        if is_graph_norm(norm):
            pm = padding_mode
            self.body = nn.Sequential(
                make_conv(cin, cout, k, conv, dim=dim, padding_mode=pm), make_norm(norm, cout, dim),
                make_conv(cout, cout, k, conv, dim=dim, padding_mode=pm), make_norm(norm, cout, dim),
            )
            self.act = nn.Identity()
            return
        self.body = nn.Sequential(
            make_conv(cin, cout, k, conv, dim=dim, padding_mode=padding_mode),
            make_norm(norm, cout, dim),
            Activation(activation),
            make_conv(cout, cout, k, conv, dim=dim, padding_mode=padding_mode),
            make_norm(norm, cout, dim),
        )
        self.act = Activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        """[B, cin, *s] -> [B, cout, *s]."""
        y = self.body(x)
        return self.act(x + y if self.skip else y)


class _Frames2d(nn.Module):
    """Shared input checks, residual on the last frame and the dense 1x1 head of the CNNs."""

    def _setup(self, n_in: int, n_out: int, width: int, depth: int, kernel_size: int,
               conv: dict[str, Any] | None, residual: bool, n_extra: int = 0) -> dict[str, Any]:
        """Check and store the shared hyper-parameters (ConfigError: positive, kernel odd); the conv spec."""
        if min(n_in, n_out, width) < 1 or depth < 0 or n_extra < 0:
            raise ConfigError(f"model: need n_in, n_out, width >= 1 and depth >= 0, got {n_in}, {n_out}, "
                              f"{width}, {depth}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"model.kernel_size: must be odd and >= 1, got {kernel_size}")
        self.n_in, self.n_out, self.residual, self.n_extra = n_in, n_out, residual, n_extra
        return conv_spec(conv)

    def _check_input(self, x: Tensor) -> None:
        """ConfigError unless ``x`` is ``[B, n_in + 1 + n_extra, ny, nx]``."""
        c = self.n_in + 1 + self.n_extra
        if x.ndim != 4 or x.shape[1] != c:
            raise ConfigError(f"model input: expected [batch, {c}, ny, nx], got {tuple(x.shape)}")

    def _finish(self, x: Tensor, y: Tensor) -> Tensor:
        """Head output ``y`` plus (if residual) the last input frame, contiguous ``[B, n_out, ny, nx]``."""
        if self.residual:
            y = y + x[:, self.n_in - 1 : self.n_in]
        return y.contiguous()


@register("cnn2d", interface=FRAMES)
class CNN2d(_Frames2d):
    """2-D encoder-decoder CNN (no skips): lift, ``depth`` stride-2 levels (width doubling), back up, head."""

    def __init__(
        self, n_in: int = 4, n_out: int = 1, width: int = 32, depth: int = 2, kernel_size: int = 3,
        conv: dict[str, Any] | None = None, padding_mode: str = "zeros", activation: str = "gelu",
        norm: str | dict[str, Any] = "none", residual: bool = True, n_extra: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        spec, k, pm = self._setup(n_in, n_out, width, depth, kernel_size, conv, residual, n_extra), \
            kernel_size, padding_mode
        widths = [width * 2**level for level in range(depth + 1)]
        self.lift = nn.Sequential(
            make_conv(n_in + 1 + n_extra, width, k, spec, padding_mode=pm), Activation(activation)
        )
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        self.enc = nn.ModuleList([ConvBlock(widths[0], widths[0], k, spec, 2, pm, activation, norm)])
        for level in range(depth):
            a, b = widths[level], widths[level + 1]
            self.down.append(
                nn.Sequential(make_conv(a, b, k, spec, stride=2, padding_mode=pm), Activation(activation))
            )
            self.enc.append(ConvBlock(b, b, k, spec, 2, pm, activation, norm))
        self.dec = nn.ModuleList()
        for level in reversed(range(depth)):
            a, b = widths[level + 1], widths[level]
            self.up.append(nn.Sequential(make_conv(a, b, k, spec, padding_mode=pm), Activation(activation)))
            self.dec.append(ConvBlock(b, b, k, spec, 2, pm, activation, norm))
        self.head = nn.Conv2d(width, n_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        """[B, n_in + 1, ny, nx] -> [B, n_out, ny, nx] (any ny, nx)."""
        self._check_input(x)
        h = self.enc[0](self.lift(x))
        sizes = []
        for down, block in zip(self.down, self.enc[1:], strict=True):
            sizes.append(h.shape[-2:])
            h = block(down(h))
        for up, block, size in zip(self.up, self.dec, reversed(sizes), strict=True):
            h = block(up(F.interpolate(h, size=tuple(size), mode="nearest")))
        return self._finish(x, self.head(h))


@register("unet2d", interface=FRAMES)
class UNet2d(_Frames2d):
    """2-D U-Net, frames as channels: ``depth`` levels, width doubling, skip connections by concatenation."""

    def __init__(
        self, n_in: int = 4, n_out: int = 1, width: int = 32, depth: int = 2, kernel_size: int = 3,
        conv: dict[str, Any] | None = None, padding_mode: str = "zeros", activation: str = "gelu",
        norm: str | dict[str, Any] = "none", residual: bool = True, n_extra: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        spec, k, pm = self._setup(n_in, n_out, width, depth, kernel_size, conv, residual, n_extra), \
            kernel_size, padding_mode
        widths = [width * 2**level for level in range(depth + 1)]
        self.enc = nn.ModuleList([ConvBlock(n_in + 1 + n_extra, widths[0], k, spec, 2, pm, activation, norm)])
        for level in range(depth):
            self.enc.append(ConvBlock(widths[level], widths[level + 1], k, spec, 2, pm, activation, norm))
        self.dec = nn.ModuleList()
        for level in reversed(range(depth)):
            self.dec.append(
                ConvBlock(widths[level + 1] + widths[level], widths[level], k, spec, 2, pm, activation, norm)
            )
        self.head = nn.Conv2d(width, n_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        """[B, n_in + 1, ny, nx] -> [B, n_out, ny, nx] (any ny, nx; pooling by 2x2 max, ceil mode)."""
        self._check_input(x)
        skips = []
        h = self.enc[0](x)
        for block in self.enc[1:]:
            skips.append(h)
            h = block(F.max_pool2d(h, 2, ceil_mode=True))
        for block, skip in zip(self.dec, reversed(skips), strict=True):
            h = F.interpolate(h, size=tuple(skip.shape[-2:]), mode="nearest")
            h = block(torch.cat([h, skip], dim=1))
        return self._finish(x, self.head(h))


@register("cnn3d", interface=FRAMES)
class CNN3d(_Frames2d):
    """Space-time CNN: the n_in frames form a time axis (channels: field, velocity), ``depth`` 3-D blocks,
    then a dense 1x1 head mapping (width x n_in) to the n_out next frames."""

    def __init__(
        self, n_in: int = 4, n_out: int = 1, width: int = 16, depth: int = 2, kernel_size: int = 3,
        conv: dict[str, Any] | None = None, padding_mode: str = "zeros", activation: str = "gelu",
        norm: str | dict[str, Any] = "none", residual: bool = True, n_extra: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        spec, k, pm = self._setup(n_in, n_out, width, depth, kernel_size, conv, residual, n_extra), \
            kernel_size, padding_mode
        self.lift = nn.Sequential(
            make_conv(2 + n_extra, width, k, spec, dim=3, padding_mode=pm), Activation(activation)
        )
        self.blocks = nn.Sequential(
            *[ConvBlock(width, width, k, spec, 3, pm, activation, norm) for _ in range(depth)]
        )
        self.head = nn.Conv2d(width * n_in, n_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        """[B, n_in + 1, ny, nx] -> [B, n_out, ny, nx] via a [B, width, n_in, ny, nx] space-time volume."""
        self._check_input(x)
        frames = x[:, : self.n_in].unsqueeze(1)  # [B, 1, T, ny, nx]
        vel = x[:, self.n_in :].unsqueeze(2).expand(-1, -1, self.n_in, -1, -1)  # velocity (+ extra) per frame
        h = self.blocks(self.lift(torch.cat([frames, vel], dim=1)))
        h = h.reshape(h.shape[0], -1, *h.shape[-2:])  # [B, width * T, ny, nx]
        return self._finish(x, self.head(h))
