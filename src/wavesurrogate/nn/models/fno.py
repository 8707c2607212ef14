"""FNO / TFNO adapters around ``neuralop.models.FNO`` (optional extra ``.[operators]``, imported lazily).

Interface ``FRAMES``: ``[B, n_in + 1, ny, nx]`` (the last n_in frames, then the velocity map) ->
``[B, n_out, ny, nx]``. TFNO is FNO with a Tucker-factorised spectral weight (neuraloperator's default rank
0.1). This module imports without neuralop; building a model without it raises a one-line ConfigError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.blocks import positive_int
from wavesurrogate.nn.registry import FRAMES, register

__all__ = ["FNO2d", "TFNO2d"]


def _load_neuralop_fno(name: str) -> type[nn.Module]:
    """``neuralop.models.FNO``, or ConfigError telling how to install the optional extra."""
    try:
        from neuralop.models import FNO
    except ImportError:
        raise ConfigError(f"model {name!r} needs the optional extra: pip install .[operators]") from None
    return FNO


@register("fno", interface=FRAMES)
class FNO2d(nn.Module):
    """neuraloperator's FNO : ``[B, n_in + 1, ny, nx]`` → ``[B, n_out, ny, nx]``.

    ``n_modes`` = (modes along y, modes along x): neuraloperator keeps frequencies |k| < n/2 on both axes
    (the x axis is stored half-size by the real FFT), so each entry must not exceed the grid size.
    """

    capabilities = {"onnx": False}  # FFTs and complex spectral weights
    # why, as `wavesurrogate export` says it
    onnx_note = "FFTs and complex spectral weights, which the ONNX exporters do not translate reliably"

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
        n_extra: int = 0,
    ) -> None:
        super().__init__()
        fno_cls = _load_neuralop_fno(self.registry_name)
        self.n_in = positive_int("n_in", n_in)
        self.n_out = positive_int("n_out", n_out)
        if not isinstance(n_extra, int) or n_extra < 0:
            raise ConfigError(f"model.n_extra: expected an integer >= 0, got {n_extra!r}")
        self.n_extra = n_extra
        modes = list(n_modes) if isinstance(n_modes, list | tuple) else None
        if modes is None or len(modes) != 2 or not all(isinstance(m, int) and m >= 1 for m in modes):
            raise ConfigError(f"model.n_modes: expected two positive integers [my, mx], got {n_modes!r}")
        positive_int("hidden_channels", hidden_channels)
        positive_int("n_layers", n_layers)
        if factorization is not None and factorization.lower() not in {"tucker", "cp", "tt", "dense"}:
            raise ConfigError(f"model.factorization: unknown {factorization!r}; known: tucker, cp, tt, dense")
        if not 0 < float(rank) <= 1.0 and factorization is not None:
            raise ConfigError(f"model.rank: expected a fraction in (0, 1], got {rank!r}")
        self.n_modes = modes
        self.fno = fno_cls(
            n_modes=tuple(modes), in_channels=self.n_in + 1 + n_extra, out_channels=self.n_out,
            hidden_channels=hidden_channels, n_layers=n_layers, lifting_channel_ratio=lifting_channel_ratio,
            projection_channel_ratio=projection_channel_ratio, domain_padding=domain_padding,
            positional_embedding="grid" if positional_embedding else None, factorization=factorization,
            rank=rank,
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        """Next ``n_out`` frames ``[B, n_out, ny, nx]`` from ``x`` ``[B, n_in + 1, ny, nx]``."""
        if x.ndim != 4 or x.shape[1] != self.n_in + 1 + self.n_extra:
            raise ValueError(
                f"{self.registry_name}: expected x [B, {self.n_in + 1 + self.n_extra}, ny, nx], "
                f"got {list(x.shape)}"
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


@register("tfno", interface=FRAMES)
class TFNO2d(FNO2d):
    """Tensorised FNO: FNO with Tucker-factorised spectral weights (rank 0.1 keeps ~10 % of them)."""

    def __init__(self, n_in: int, n_out: int, factorization: str = "tucker", rank: float = 0.1, **fno: Any
                 ) -> None:  # fno: the other FNO2d arguments
        super().__init__(n_in, n_out, factorization=factorization, rank=rank, **fno)
