"""``elastic_cnn2d``: a flat residual CP CNN whose first b blocks at the first r CP terms are a model too.

Interface ``FRAMES`` (as ``cnn2d``): ``[B, n_in + 1 + n_extra, ny, nx]`` → ``[B, n_out, ny, nx]``. A dense 1×1
lift to ``width`` channels, ``blocks`` residual blocks of two k×k CP convolutions of rank ``rank`` (1×1 →
depthwise one-way filters → 1×1, ``nn.layers.tensorized``) at full resolution, a dense 1×1 head; with
``residual`` the increment over the last input frame. No normalisation layer: a sub-network's statistics
would differ from the full one's.

Nested by construction (``nn.elastic``): the blocks are residual (width in = width out), so running the
first b of them is a b-block network; each CP layer's first r terms are a rank-r layer. ``active_blocks``
(None: all) selects the blocks; ``elastic_kwargs(b, r)`` are the arguments of the standalone (b, r) model.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.blocks import Activation, positive_int
from wavesurrogate.nn.models.cnn import ConvBlock, _Frames2d
from wavesurrogate.nn.registry import FRAMES, register

__all__ = ["ElasticCNN2d"]


@register("elastic_cnn2d", interface=FRAMES)
class ElasticCNN2d(_Frames2d):
    """Residual CP CNN at full resolution whose (first b blocks, first r CP terms) sub-networks also work."""

    def __init__(
        self, n_in: int = 4, n_out: int = 1, width: int = 32, blocks: int = 4, rank: int = 16,
        kernel_size: int = 3, padding_mode: str = "zeros", activation: str = "gelu", residual: bool = True,
        n_extra: int = 0, channels_last: bool = True, recompute: bool | str = "auto",
    ) -> None:  # fmt: skip
        super().__init__()
        positive_int("blocks", blocks)
        positive_int("rank", rank)
        if not isinstance(channels_last, bool):
            raise ConfigError(f"model.channels_last: must be true or false, got {channels_last!r}")
        spec: dict[str, Any] = {"format": "cp", "rank": rank, "channels_last": channels_last,
                                "recompute": recompute}
        spec = self._setup(n_in, n_out, width, blocks, kernel_size, spec, residual, n_extra)
        self.lift = nn.Sequential(nn.Conv2d(n_in + 1 + n_extra, width, 1), Activation(activation))
        self.blocks = nn.ModuleList(
            [ConvBlock(width, width, kernel_size, spec, 2, padding_mode, activation, "none")
             for _ in range(blocks)])
        self.head = nn.Conv2d(width, n_out, 1)
        self.elastic_blocks = blocks
        self.active_blocks: int | None = None

    def elastic_kwargs(self, blocks: int, rank: int) -> dict[str, Any]:
        """Constructor arguments of the standalone sub-model of the first ``blocks`` blocks at ``rank``."""
        return {**self.init_kwargs, "blocks": int(blocks), "rank": int(rank)}

    def forward(self, x: Tensor) -> Tensor:
        """[B, n_in + 1 + n_extra, ny, nx] -> [B, n_out, ny, nx] through the active blocks."""
        self._check_input(x)
        h = self.lift(x)
        n = len(self.blocks) if self.active_blocks is None else self.active_blocks
        for i in range(n):
            h = self.blocks[i](h)
        return self._finish(x, self.head(h))
