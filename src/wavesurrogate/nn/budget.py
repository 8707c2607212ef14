"""Parameter budgets: closed-form MLP / DeepONet counts; kwargs of fno, tfno, deeponet near a target size."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.blocks import positive_int
from wavesurrogate.nn.models.deeponet import _trunk_input_dim
from wavesurrogate.nn.models.fno import FNO2d, TFNO2d
from wavesurrogate.nn.registry import count_trainable

__all__ = ["deeponet_param_count", "mlp_param_count", "params_for_budget", "width_for_budget"]


def mlp_param_count(d_in: int, width: int, depth: int, d_out: int, modified: bool = False) -> int:
    """Closed-form parameter count of :class:`MLP` (weights and biases)."""
    n = (d_in + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * d_out
    return n + (2 * (d_in + 1) * width if modified else 0)


def deeponet_param_count(
    n_params: int, n_basis: int = 100, branch_width: int = 128, branch_depth: int = 4, trunk_width: int = 128,
    trunk_depth: int = 4, modified: bool = True, fourier: str = "gaussian", n_fourier: int = 64,
    include_coords: bool = True, **_: Any,
) -> int:  # fmt: skip
    """Closed-form trainable parameter count of :class:`DeepONet` with these constructor arguments."""
    d_trunk = _trunk_input_dim(fourier, n_fourier, include_coords)
    return (
        mlp_param_count(n_params, branch_width, branch_depth, n_basis, modified)
        + mlp_param_count(d_trunk, trunk_width, trunk_depth, n_basis, modified)
        + 1
    )

_FNO_MODE_CANDIDATES = (4, 6, 8, 10, 12, 16, 20, 24, 32)


def _fno_count(cls: type[FNO2d], kwargs: dict[str, Any]) -> int:
    """Parameter count of ``cls(**kwargs)`` (built on CPU; a few milliseconds for budget-sized models)."""
    return count_trainable(cls(**kwargs))


def _closest(count: Callable[[int], int], target: int, lo: int, cap: int) -> tuple[int, int]:
    """Integer v in [lo, cap] whose (monotone increasing) ``count(v)`` is nearest ``target`` in log ratio.

    Grows the bracket by doubling first, so no model far above the target is ever built.
    """
    c_lo = count(lo)
    if c_lo >= target:
        return lo, c_lo
    hi = lo
    while hi < cap:  # find hi with count(hi) >= target
        lo, hi = hi, min(2 * hi, cap)
        if count(hi) >= target:
            break
    while hi - lo > 1:  # invariant: count(lo) < target <= count(hi) (or hi is the cap)
        mid = (lo + hi) // 2
        if count(mid) < target:
            lo = mid
        else:
            hi = mid
    c_lo, c_hi = count(lo), count(hi)
    return (lo, c_lo) if abs(math.log(c_lo / target)) <= abs(math.log(c_hi / target)) else (hi, c_hi)


def width_for_budget(name: str, kwargs_of: Callable[[int], dict[str, Any]], target: int, lo: int = 1,
                     cap: int = 1024) -> dict[str, Any]:
    """``kwargs_of(w)`` for the width w in [lo, cap] whose model ``name`` has the count nearest ``target``."""
    from wavesurrogate.nn import registry

    w, _ = _closest(lambda w: count_trainable(registry.build(name, kwargs_of(w))), target, lo, cap)
    return kwargs_of(w)


def _fno_budget(name: str, target: int, fixed: dict[str, Any]) -> dict[str, Any]:
    """FNO/TFNO kwargs near ``target``: choose the width, and the modes too unless fixed."""
    cls = FNO2d if name == "fno" else TFNO2d
    max_modes = int(fixed.pop("max_modes", 16))
    if "n_in" not in fixed or "n_out" not in fixed:
        raise ConfigError(f"params_for_budget({name!r}): give n_in and n_out")
    if "hidden_channels" in fixed and "n_modes" in fixed:
        raise ConfigError(
            f"params_for_budget({name!r}): nothing to choose: hidden_channels and n_modes fixed"
        )

    def width_count(modes: list[int]) -> Callable[[int], int]:
        return lambda w: _fno_count(cls, {**fixed, "n_modes": modes, "hidden_channels": w})

    if "n_modes" in fixed:
        w, _ = _closest(width_count(list(fixed["n_modes"])), target, 2, 1024)
        return {**fixed, "n_modes": list(fixed["n_modes"]), "hidden_channels": w}
    if "hidden_channels" in fixed:
        cands = [m for m in _FNO_MODE_CANDIDATES if m <= max_modes]
        counts = [_fno_count(cls, {**fixed, "n_modes": [m, m]}) for m in cands]
        m = min(zip(cands, counts, strict=True), key=lambda mc: abs(math.log(mc[1] / target)))[0]
        return {**fixed, "n_modes": [m, m]}
    # both free: the most modes whose budget width is still >= 2 x modes (neuraloperator's usual ratio is 2-4)
    best: dict[str, Any] | None = None
    for m in [m for m in _FNO_MODE_CANDIDATES if m <= max_modes]:
        w, _ = _closest(width_count([m, m]), target, 2, 1024)
        if best is None or w >= 2 * m:
            best = {**fixed, "n_modes": [m, m], "hidden_channels": w}
    assert best is not None
    return best


def _deeponet_budget(target: int, fixed: dict[str, Any]) -> dict[str, Any]:
    """DeepONet kwargs near ``target``: one width w for branch and trunk, from the closed-form count.

    Unless fixed, the basis size follows the width (n_basis = min(100, w)) and so does the number of
    Fourier frequencies (n_fourier = min(64, max(8, w // 2))), so small budgets stay balanced networks.
    """
    if "n_params" not in fixed:
        raise ConfigError("params_for_budget('deeponet'): give n_params")
    free = [k for k in ("branch_width", "trunk_width") if k not in fixed]
    if not free:
        raise ConfigError("params_for_budget('deeponet'): nothing to choose, both widths fixed")

    def kwargs_for(w: int) -> dict[str, Any]:
        coupled: dict[str, Any] = {"n_basis": min(100, w)}
        if fixed.get("fourier", "gaussian") == "gaussian":  # axis features need a multiple of 3: left alone
            coupled["n_fourier"] = min(64, max(8, w // 2))
        return {**coupled, **fixed, **dict.fromkeys(free, w)}

    w, _ = _closest(lambda w: deeponet_param_count(**kwargs_for(w)), target, 1, 4096)
    return kwargs_for(w)


def params_for_budget(name: str, target_params: int, **fixed: Any) -> dict[str, Any]:
    """Constructor kwargs of ``name`` (fno, tfno, deeponet) with a parameter count near ``target_params``.

    ``fixed`` kwargs are kept; the width (and for FNO/TFNO the modes, at most ``max_modes``, default 16,
    unless ``n_modes`` is fixed) is chosen. Counts use :func:`count_trainable` (complex counts as two).
    ConfigError if the fixed kwargs leave no choice within 25 % of the target.
    """
    positive_int("target_params", target_params)
    if name in ("fno", "tfno"):
        kwargs = _fno_budget(name, target_params, dict(fixed))
        n = _fno_count(FNO2d if name == "fno" else TFNO2d, kwargs)
    elif name == "deeponet":
        kwargs = _deeponet_budget(target_params, dict(fixed))
        n = deeponet_param_count(**kwargs)
    else:
        raise ConfigError(f"params_for_budget: no budget rule for model {name!r}; known: fno, tfno, deeponet")
    if not 0.75 * target_params <= n <= 1.25 * target_params:
        raise ConfigError(
            f"params_for_budget({name!r}): cannot reach {target_params} parameters within 25 % with {fixed} "
            f"(nearest: {n})"
        )
    return kwargs
