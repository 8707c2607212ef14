"""Shared building blocks: activations, normalisations, the conv factory (any kernel format) and the MLP.

``make_conv(in, out, k, conv={"format": ..., "rank": ...})`` builds every spatial convolution, so a dense
and a compressed network of the same family differ only in those layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.tensorized.ranks import FORMATS

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sine": torch.sin, "tanh": torch.tanh, "gelu": F.gelu, "relu": F.relu, "silu": F.silu,
}  # fmt: skip
ACTIVATIONS_INPLACE: dict[str, Callable[[Tensor], Tensor]] = {
    "sine": torch.sin_, "tanh": torch.tanh_, "relu": torch.relu_,
}  # fmt: skip
NORMS = ("none", "group", "batch")
INITS = ("glorot", "siren")
SIREN_OMEGA0 = 30.0  # Sitzmann et al. 2020: sin(ω0 · (W h + b)) in every sine layer
_CONV_KEYS = {"format", "rank", "layer_params", "channels_last", "separable_impl", "cp_impl", "recompute"}

__all__ = ["ACTIVATIONS", "INITS", "NORMS", "SIREN_OMEGA0", "MLP", "Activation", "activation_fn", "conv_spec",
           "make_conv", "make_norm", "positive_int"]


def activation_fn(name: str) -> Callable[[Tensor], Tensor]:
    """The activation function called ``name``; ConfigError if unknown."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"model.activation: unknown {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class Activation(nn.Module):
    """The activation called ``name`` as a module (for ``nn.Sequential``)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name, self.fn = name, activation_fn(name)

    def forward(self, x: Tensor) -> Tensor:
        """Elementwise activation of ``x``."""
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; ConfigError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"model.{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def make_norm(kind: str, channels: int, dim: int) -> nn.Module:
    """Normalisation after a conv: none, GroupNorm (up to 8 groups dividing channels) or BatchNorm."""
    if kind == "none":
        return nn.Identity()
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels) if dim == 2 else nn.BatchNorm3d(channels)
    raise ConfigError(f"model.norm: unknown {kind!r}; known: {', '.join(NORMS)}")


def conv_spec(conv: dict[str, Any] | None) -> dict[str, Any]:
    """Validated conv-format dict (default dense): format, rank or (cp) layer_params, and layer options."""
    spec = {"format": "dense"} if conv is None else dict(conv)
    unknown = set(spec) - _CONV_KEYS
    if unknown:
        raise ConfigError(f"conv: unknown keys {sorted(unknown)}; known: {sorted(_CONV_KEYS)}")
    if spec.get("format", "dense") not in FORMATS:
        raise ConfigError(f"conv.format: unknown format {spec.get('format')!r}; known: {', '.join(FORMATS)}")
    spec.setdefault("format", "dense")
    if spec["format"] == "dense" and set(spec) - {"format"}:
        raise ConfigError(f"conv: {sorted(set(spec) - {'format'})} apply to compressed formats, not dense")
    if "channels_last" in spec and not isinstance(spec["channels_last"], bool):
        raise ConfigError(f"conv.channels_last: must be true or false, got {spec['channels_last']!r}")
    if "recompute" in spec and not (isinstance(spec["recompute"], bool) or spec["recompute"] == "auto"):
        raise ConfigError(f"conv.recompute: must be true, false or 'auto', got {spec['recompute']!r}")
    if spec["format"] != "dense" and "rank" not in spec and "layer_params" not in spec:
        raise ConfigError(f"conv.rank: format {spec['format']!r} needs a rank (or, cp, layer_params)")
    if "rank" in spec and "layer_params" in spec:
        raise ConfigError("conv: give either rank or layer_params, not both")
    return spec


def make_conv(
    in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
    conv: dict[str, Any] | None = None, *, dim: int = 2, stride: int = 1,
    padding: int | Sequence[int] | None = None, padding_mode: str = "zeros", bias: bool = True,
) -> nn.Module:  # fmt: skip
    """A ``dim``-D conv in format ``conv`` (dense -> nn.ConvNd); padding None keeps the size (odd k)."""
    spec = conv_spec(conv)
    if dim not in (2, 3):
        raise ConfigError(f"conv: dim must be 2 or 3, got {dim}")
    k = (kernel_size,) * dim if isinstance(kernel_size, int) else tuple(kernel_size)
    if padding is None:
        padding = tuple(kd // 2 for kd in k)
    if spec["format"] == "dense":
        cls_dense = nn.Conv2d if dim == 2 else nn.Conv3d
        return cls_dense(
            in_channels, out_channels, k, stride=stride, padding=padding, bias=bias, padding_mode=padding_mode
        )
    try:
        from wavesurrogate.nn.layers.tensorized.conv import TensorizedConv2d, TensorizedConv3d
    except ImportError:
        raise ConfigError(f"conv.format: {spec['format']!r} needs nn.layers.tensorized (missing)") from None
    cls = TensorizedConv2d if dim == 2 else TensorizedConv3d
    return cls(in_channels, out_channels, k, stride=stride, padding=padding, bias=bias,
               padding_mode=padding_mode, **spec)


class MLP(nn.Module):
    """Fully connected net: ``depth`` hidden layers of ``width``, linear output; optional modified-MLP gating.

    Modified MLP (Wang, Teng & Perdikaris 2021): [U, V] = act(W_g x) from the input (one fused layer
    ``gate``); after each hidden layer h ← (1 - h) * U + h * V.

    ``init``: ``"glorot"`` (normal, zero biases) or ``"siren"`` (Sitzmann et al. 2020; sine activation only):
    every sine layer computes sin(ω0 · (W h + b)) with ω0 = 30, W ~ U(±1/d_in) on the first layer and the
    gate, U(±√(6/d)/ω0) on the others (the output layer too, without ω0), zero biases; the pre-activations
    then stay about N(0, 1) with depth. Borrel-Jensen et al.'s code applies ω0 to the first layer only, which
    shrinks the hidden pre-activations ~20× per layer (std 0.03, 0.002, ...); we follow Sitzmann.
    """

    def __init__(
        self, d_in: int, width: int, depth: int, d_out: int, activation: str = "tanh", modified: bool = False,
        init: str = "glorot",
    ) -> None:  # fmt: skip
        super().__init__()
        if init not in INITS or (init == "siren" and activation != "sine"):
            raise ConfigError(f"model.init: {init!r} with activation {activation!r}; known: "
                              f"{', '.join(INITS)} (siren needs activation 'sine')")
        self.omega0 = SIREN_OMEGA0 if init == "siren" else 1.0
        self.act = activation_fn(activation)
        self.act_inplace = ACTIVATIONS_INPLACE.get(activation)
        self.hidden = nn.ModuleList(
            [nn.Linear(d_in, width)] + [nn.Linear(width, width) for _ in range(depth - 1)]
        )
        self.out = nn.Linear(width, d_out)
        self.gate = nn.Linear(d_in, 2 * width) if modified else None
        if init == "siren":
            self._siren_init()
            return
        for layer in [*self.hidden, self.out]:  # Glorot normal, zero bias (as DeepXDE)
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
        if self.gate is not None:
            for half in self.gate.weight.data.chunk(2):  # U and V initialised as two width-wide layers
                nn.init.xavier_normal_(half)
            nn.init.zeros_(self.gate.bias)

    def _siren_init(self) -> None:
        """SIREN: U(±1/d_in) on the layers that see the input, U(±√(6/d)/ω0) on the others; zero biases."""
        firsts = [self.hidden[0]] + ([self.gate] if self.gate is not None else [])
        for layer in [*firsts, *self.hidden[1:], self.out]:
            d = layer.in_features
            bound = 1.0 / d if any(layer is f for f in firsts) else math.sqrt(6.0 / d) / self.omega0
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.zeros_(layer.bias)

    def _pre(self, layer: nn.Module, h: Tensor) -> Tensor:
        """Pre-activation ω0 · layer(h) of a hidden layer or the gate (ω0 = 1 unless SIREN)."""
        z = layer(h)
        return z if self.omega0 == 1.0 else z * self.omega0

    def forward(self, x: Tensor) -> Tensor:
        """``[..., d_in]`` → ``[..., d_out]``."""
        # in-place activations when no graph is recorded: fewer allocations, ~20 % faster inference on CPU
        act = self.act_inplace if self.act_inplace is not None and not torch.is_grad_enabled() else self.act
        u = dv = None
        if self.gate is not None:
            u, v = act(self._pre(self.gate, x)).chunk(2, dim=-1)
            dv = v - u
        h = x
        for layer in self.hidden:
            h = act(self._pre(layer, h))
            if u is not None:
                h = torch.addcmul(u, h, dv)  # (1 - h) U + h V
        return self.out(h)
