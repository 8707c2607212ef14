"""FNO / TFNO adapters around ``neuralop.models.FNO`` (optional extra ``.[operators]``, imported lazily).

Interface ``FRAMES``: ``[B, n_in + 1, ny, nx]`` (the last n_in frames, then the velocity map) ->
``[B, n_out, ny, nx]``. TFNO is FNO with a Tucker-factorised spectral weight (neuraloperator's default rank
0.1). This module imports without neuralop; building a model without it raises a one-line ConfigError.

Elastic (``nn.elastic``, axes (modes, rank)): a network built at ``n_modes`` = [My, Mx] runs at any smaller
m (``[min(m, My), min(m, Mx)]`` modes) through neuraloperator's own ``n_modes`` < ``max_n_modes`` path: each
spectral weight is read as its low-frequency block (the centred m rows of the fft-shifted y axis, the first
m // 2 + 1 columns of the real-FFT x axis), a view. With ``factorization: cp`` and an integer ``rank`` R the
spectral weights are CP tensors whose first r rank-1 terms are the rank-r weight (``_NestedCP``); a dense FNO
has the one rank 1. ``My - m`` must be even (neuraloperator centres a block of m rows by ``(My - m) // 2``:
for an odd difference its frequencies would shift by one). Tucker weights do not nest (their core ranks are
fractions of each shape) and are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
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


@cache
def _nested_cp() -> type:
    """tltorch's CPTensor whose ``active_rank`` (None: all) first rank-1 terms are the tensor indexed: the
    spectral convolution indexes its weight once per call, so the rank-r weight is a view of the factors."""
    from tltorch import CPTensor

    class NestedCP(CPTensor, name="NestedCP"):  # registered in tltorch under this name ("...cp": CP maths)
        active_rank: int | None = None

        def __getitem__(self, indices: Any) -> Any:
            r = self.active_rank
            if r is None:
                return super().__getitem__(indices)
            return CPTensor(self.weights[:r], [f[:, :r] for f in self.factors])[indices]

    return NestedCP


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
        cp_int = str(factorization).lower() == "cp" and isinstance(rank, int) and not isinstance(rank, bool)
        if cp_int and rank < 1:
            raise ConfigError(f"model.rank: expected a CP rank >= 1 or a fraction in (0, 1], got {rank!r}")
        if not cp_int and not 0 < float(rank) <= 1.0 and factorization is not None:
            raise ConfigError(f"model.rank: expected a fraction in (0, 1], got {rank!r}")
        self.n_modes = modes
        self.fno = fno_cls(
            n_modes=tuple(modes), in_channels=self.n_in + 1 + n_extra, out_channels=self.n_out,
            hidden_channels=hidden_channels, n_layers=n_layers, lifting_channel_ratio=lifting_channel_ratio,
            projection_channel_ratio=projection_channel_ratio, domain_padding=domain_padding,
            positional_embedding="grid" if positional_embedding else None, factorization=factorization,
            rank=rank,
        )  # fmt: skip
        self.factorization, self.rank = factorization, rank
        self.cp_rank = int(rank) if cp_int else None  # an integer CP rank: nested (elastic) ranks
        if self.cp_rank is not None:
            nested = _nested_cp()
            for conv in self.fno.fno_blocks.convs:  # the same parameters, read through the nesting class
                conv.weight = nested(conv.weight.weights, list(conv.weight.factors))
        self._active: tuple[int | None, int | None] = (None, None)

    # elastic (nn.elastic): axes (modes, rank)
    elastic_axes = ("modes", "rank")

    def elastic_size(self) -> tuple[int, int]:
        """(modes, rank) of the whole network; ConfigError when its spectral weights do not nest."""
        if self.factorization is not None and str(self.factorization).lower() != "dense" \
                and self.cp_rank is None:
            raise ConfigError(f"{self.registry_name}: elastic ranks need factorization cp with an integer "
                              f"rank (got factorization {self.factorization!r}, rank {self.rank!r})")
        return max(self.n_modes), self.cp_rank or 1

    def elastic_check(self, modes: int, rank: int) -> None:
        """ConfigError unless (``modes``, ``rank``) is a sub-network of this one."""
        full = self.elastic_size()
        if not (1 <= modes <= full[0] and 1 <= rank <= full[1]):
            raise ConfigError(f"elastic: ({modes}, {rank}) does not fit the model's {full[0]} modes and rank "
                              f"{full[1]}")
        if (self.n_modes[0] - min(modes, self.n_modes[0])) % 2:
            raise ConfigError(f"elastic: modes {modes} is not nested in {self.n_modes[0]} y modes (their "
                              "difference must be even: the low-frequency block is centred)")

    def elastic_now(self) -> tuple[int | None, int | None]:
        """The active (modes, rank); None: the full one."""
        return self._active

    def elastic_set(self, modes: int | None, rank: int | None) -> None:
        """Run as the (``modes``, ``rank``) sub-network (None: full); attributes only, weights shared."""
        full = self.elastic_size()
        if modes is not None or rank is not None:
            self.elastic_check(modes or full[0], rank or full[1])
        m = full[0] if modes is None else modes
        self.fno.n_modes = (min(m, self.n_modes[0]), min(m, self.n_modes[1]))
        if self.cp_rank is not None:
            for conv in self.fno.fno_blocks.convs:
                conv.weight.active_rank = None if rank is None or rank >= self.cp_rank else rank
        self._active = (modes, rank)

    def elastic_kwargs(self, modes: int, rank: int) -> dict[str, Any]:
        """Constructor arguments of the standalone (``modes``, ``rank``) network."""
        kw: dict[str, Any] = {**self.init_kwargs, "n_modes": [min(modes, m) for m in self.n_modes]}
        if self.cp_rank is not None:
            kw["rank"] = int(rank)
        return kw

    @staticmethod
    def elastic_centred(key: str) -> tuple[int, ...]:
        """Dimensions of tensor ``key`` whose standalone block is centred (the fft-shifted y modes)."""
        if key.endswith(".weight.tensor"):  # dense [in, out, my, mx]
            return (2,)
        if key.endswith(".weight.factors.factor_2"):  # CP factor of the y modes [my, R]
            return (0,)
        return ()

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
