"""Nested ("elastic") sub-networks: one network built at its largest runs at any smaller (blocks, rank).

After Starbucks (arXiv 2410.13230; 2-D Matryoshka training). A rank-R CP convolution is a sum of R rank-1
terms, so its first r terms are a rank-r layer; a network of residual blocks run through its first b
blocks is a b-block network. An *elastic* model exposes:

- ``elastic_blocks`` (int): its block count B; ``active_blocks`` (int or None): how many it runs;
- ``elastic_kwargs(blocks, rank)``: the constructor arguments of the standalone (blocks, rank) model.

``active(model, b, r)`` runs the model as its (b, r) sub-network inside a ``with`` block: only attributes
change (the first b blocks, each CP layer's ``active_rank = min(r, its rank)``); the weights are shared and
nothing is copied. ``sliced_state`` cuts a full state dict down to the standalone model's tensors (leading
slices: the first r CP columns, the first b blocks), so ``build(name, elastic_kwargs(b, r))`` loaded with it
computes what ``active(model, b, r)`` computes.

A model may instead nest along axes of its own (the FNO: (modes, rank)) by the *own protocol*:
``elastic_axes`` (the two axis names), ``elastic_size()`` (its full pair; ConfigError when it does not nest),
``elastic_check(a, r)``, ``elastic_now()`` / ``elastic_set(a, r)`` (the active pair, None: full) and
``elastic_kwargs(a, r)``; optionally ``elastic_centred(key)``, the dimensions of a tensor whose standalone
block is its centre rather than its leading slice (``sliced_state(..., centred=)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from torch import Tensor, nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.tensorized.conv import TensorizedConvNd

__all__ = ["cp_layers", "is_elastic", "full_size", "check_pairs", "active", "sliced_state",
           "params_at", "axes"]


def cp_layers(model: nn.Module) -> list[TensorizedConvNd]:
    """The CP-format convolutions of ``model`` (those an active rank applies to)."""
    return [m for m in model.modules() if isinstance(m, TensorizedConvNd) and m.format == "cp"]


def _own(model: nn.Module) -> bool:
    """Whether ``model`` nests by the own protocol (``elastic_size``, ``elastic_set``...)."""
    return callable(getattr(model, "elastic_size", None))


def axes(model: nn.Module) -> tuple[str, str]:
    """The names of the model's two elastic axes: ("blocks", "rank") unless it names its own."""
    model = getattr(model, "module", model)
    return tuple(getattr(model, "elastic_axes", ("blocks", "rank")))  # type: ignore[return-value]


def is_elastic(model: nn.Module) -> bool:
    """Whether ``model`` can run as its nested sub-networks (elastic blocks and CP layers, or its own
    protocol with weights that nest)."""
    if _own(model):
        try:
            model.elastic_size()
        except ConfigError:
            return False
        return True
    return hasattr(model, "elastic_kwargs") and hasattr(model, "elastic_blocks") and bool(cp_layers(model))


def full_size(model: nn.Module) -> tuple[int, int]:
    """(blocks, rank) of the whole model: its block count and its largest CP rank; ConfigError if the
    model is not elastic."""
    model = getattr(model, "module", model)  # DDP
    if _own(model):
        return tuple(int(v) for v in model.elastic_size())  # type: ignore[return-value]
    if not is_elastic(model):
        raise ConfigError(f"elastic: model {type(model).__name__} has no nested blocks and CP ranks "
                          "(use elastic_cnn2d, or field_decoder with conv format cp)")
    return int(model.elastic_blocks), max(int(m.rank) for m in cp_layers(model))


def check_pairs(model: nn.Module, pairs: Sequence[Sequence[int]]) -> tuple[int, int]:
    """The model's full (blocks, rank); ConfigError unless every pair fits in it and the full size is one
    of them (the full model is the distillation target, so it is trained too)."""
    full = full_size(model)
    own = getattr(model, "module", model)
    for b, r in pairs:
        if _own(own):
            try:
                own.elastic_check(int(b), int(r))
            except ConfigError as exc:
                raise ConfigError(f"elastic.pairs: {str(exc).removeprefix('elastic: ')}") from None
        elif not (1 <= b <= full[0] and 1 <= r <= full[1]):
            raise ConfigError(f"elastic.pairs: ({b}, {r}) does not fit the model's {full[0]} blocks and "
                              f"rank {full[1]}")
    if full not in [tuple(p) for p in pairs]:
        raise ConfigError(f"elastic.pairs: must include the full model ({full[0]}, {full[1]})")
    return full


@contextmanager
def active(model: nn.Module, blocks: int, rank: int) -> Iterator[nn.Module]:
    """Run ``model`` as its (``blocks``, ``rank``) sub-network inside the ``with`` block (restored after)."""
    model = getattr(model, "module", model)
    full = full_size(model)
    if _own(model):
        model.elastic_check(blocks, rank)
        before = model.elastic_now()
        model.elastic_set(None if blocks == full[0] else blocks, None if rank == full[1] else rank)
        try:
            yield model
        finally:
            model.elastic_set(*before)
        return
    if not (1 <= blocks <= full[0] and 1 <= rank <= full[1]):
        raise ConfigError(f"elastic: ({blocks}, {rank}) does not fit the model's {full[0]} blocks and rank "
                          f"{full[1]}")
    layers = cp_layers(model)
    saved = (model.active_blocks, [m.active_rank for m in layers])
    model.active_blocks = None if blocks == full[0] else blocks
    for m in layers:
        m.active_rank = None if rank >= m.rank else rank
    try:
        yield model
    finally:
        model.active_blocks = saved[0]
        for m, r in zip(layers, saved[1], strict=True):
            m.active_rank = r


def sliced_state(full: Mapping[str, Tensor], target: Mapping[str, Tensor],
                 centred: Callable[[str], Sequence[int]] | None = None) -> dict[str, Tensor]:
    """The tensors of ``target`` (a state dict of the standalone sub-model, for names and shapes) cut from
    ``full``: each the leading slice of the full tensor of the same name (along the dimensions
    ``centred(name)`` lists, its centre: from ``(N - n) // 2``), copied contiguous. ConfigError if a name is
    missing or a shape does not fit."""
    out = {}
    for k, t in target.items():
        src = full.get(k)
        if src is None or src.ndim != t.ndim or any(a > b for a, b in zip(t.shape, src.shape, strict=True)):
            got = None if src is None else tuple(src.shape)
            raise ConfigError(f"elastic: tensor {k!r} {tuple(t.shape)} cannot be cut from {got}")
        mid = set(centred(k)) if centred is not None else set()
        cut = tuple(slice((m - n) // 2 if d in mid else 0, ((m - n) // 2 if d in mid else 0) + n)
                    for d, (n, m) in enumerate(zip(t.shape, src.shape, strict=True)))
        out[k] = src[cut].contiguous().clone()
    return out


def params_at(model: nn.Module, blocks: int, rank: int) -> int:
    """Trainable parameters of the standalone (blocks, rank) sub-model (built, never run; a complex one
    counts twice, as ``registry.count_trainable``)."""
    from wavesurrogate.nn.registry import build, count_trainable

    name = type(getattr(model, "module", model)).registry_name  # type: ignore[attr-defined]
    sub = build(name, getattr(model, "module", model).elastic_kwargs(blocks, rank))
    return count_trainable(sub)
