"""The config of ``wavesurrogate learn``: multi-fidelity active learning (pure schema; builds no solver).

Fidelities are the same physical problem on one square domain at several grid sizes (nodes per axis, the
last is the top fidelity). A parameter range is ``[min, max]`` with min < max (each is learnt over).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from wavesurrogate.config.base import Strict, read_yaml, validate
from wavesurrogate.errors import ConfigError

PosFloat = Annotated[float, Field(strict=True, gt=0)]
PosInt = Annotated[int, Field(strict=True, gt=0)]
NonNegInt = Annotated[int, Field(strict=True, ge=0)]
Pair = tuple[Annotated[float, Field(strict=True)], Annotated[float, Field(strict=True)]]

STRATEGIES = ("active", "random_top", "random_mixed")
PARAM_NAMES = ("source_x_m", "source_y_m", "freq_hz", "medium_gradient")


class LearnProblem(Strict):
    """The wave problem: square domain, vertical-gradient medium c0·(1 + gradient·(y − L/2)/(L/2)), a point
    Ricker source; outputs are the field at ``frames`` × ``frame_dt_s`` seconds."""

    length_m: PosFloat = 630.0
    c0_mps: PosFloat = 2000.0
    medium_gradient: Pair = (-0.3, 0.3)
    source_x_m: Pair = (150.0, 480.0)
    source_y_m: Pair = (150.0, 480.0)
    freq_hz: Pair = (3.0, 6.0)
    delay_s: PosFloat = 0.4
    amplitude: PosFloat = 1.0e6
    frame_dt_s: PosFloat = 0.1
    frames: list[PosInt] = Field(default=[5, 6], min_length=1)
    sponge_m: PosFloat = 200.0
    space_order: Literal[2, 4] = 4
    backend: Literal["devito", "numpy"] = "devito"


class LearnModel(Strict):
    """Surrogate: ``dmfdal`` (disentangled latents) or ``ensemble``; outputs on ``modes`` POD modes."""

    kind: Literal["dmfdal", "ensemble"] = "dmfdal"
    modes: PosInt = 48
    latent: PosInt = 16
    hidden: PosInt = 64
    members: PosInt = 5
    steps_first: PosInt = 600
    steps_round: PosInt = 300
    lr: PosFloat = 2.0e-3
    context_fraction: Annotated[float, Field(strict=True, gt=0, lt=1)] = 0.5
    kl_weight: Annotated[float, Field(strict=True, ge=0)] = 1.0
    js_weight: Annotated[float, Field(strict=True, ge=0)] = 1.0
    delta_l2: Annotated[float, Field(strict=True, ge=0)] = 1.0
    samples: PosInt = 32


class LearnDesign(Strict):
    """Initial design (cases per fidelity, keyed by grid size), candidates per round, top-fidelity tests."""

    initial: dict[int, NonNegInt]
    candidates: PosInt = 256
    test_cases: PosInt = 32
    test_seed: NonNegInt = 1


class LearnConfig(Strict):
    """``wavesurrogate learn``: rounds of ``strategy`` queries, each up to ``budget_s`` measured seconds."""

    name: str = "learn"
    seed: NonNegInt = 0
    fidelities: list[Annotated[int, Field(strict=True, ge=4)]] = Field(default=[16, 32, 64], min_length=1)
    costs_s: dict[int, PosFloat] | None = Field(
        None, description="seconds per solve by fidelity, replaying a measurement (default: measured)")
    measure_repeats: PosInt = 5
    problem: LearnProblem = Field(default_factory=LearnProblem)
    model: LearnModel = Field(default_factory=LearnModel)
    design: LearnDesign
    strategy: Literal["active", "random_top", "random_mixed"] = "active"
    rounds: PosInt = 4
    budget_s: PosFloat
    workers: PosInt = 1

    @property
    def top(self) -> int:
        """The top fidelity (grid nodes per axis)."""
        return self.fidelities[-1]


def _check_pair(name: str, r: tuple[float, float], lo: float | None = None, hi: float | None = None) -> None:
    if not r[0] < r[1]:
        raise ConfigError(f"{name}: empty parameter range [{r[0]:g}, {r[1]:g}] (needs min < max)")
    if (lo is not None and r[0] < lo) or (hi is not None and r[1] > hi):
        raise ConfigError(f"{name}: must lie within [{lo:g}, {hi:g}], got [{r[0]:g}, {r[1]:g}]")


def check_learn(cfg: LearnConfig) -> LearnConfig:
    """Cross-field checks: fidelities, ranges, design and costs keys, the budget against given costs."""
    f = cfg.fidelities
    if any(b <= a for a, b in zip(f, f[1:], strict=False)):
        raise ConfigError(f"fidelities: grid sizes must increase (the last is the top fidelity), got {f}")
    p = cfg.problem
    _check_pair("problem.source_x_m", p.source_x_m, 0.0, p.length_m)
    _check_pair("problem.source_y_m", p.source_y_m, 0.0, p.length_m)
    _check_pair("problem.freq_hz", p.freq_hz, 0.0)
    _check_pair("problem.medium_gradient", p.medium_gradient, -0.99, 0.99)
    if p.freq_hz[0] <= 0:
        raise ConfigError(f"problem.freq_hz: must be > 0, got {p.freq_hz[0]:g}")
    if any(b <= a for a, b in zip(p.frames, p.frames[1:], strict=False)):
        raise ConfigError(f"problem.frames: must increase, got {p.frames}")
    for key, table in (("design.initial", cfg.design.initial), ("costs_s", cfg.costs_s or {})):
        unknown = sorted(set(table) - set(f))
        if unknown:
            raise ConfigError(f"{key}: unknown fidelity {unknown[0]} (fidelities: {f})")
    if cfg.costs_s is not None and set(cfg.costs_s) != set(f):
        raise ConfigError(f"costs_s: needs one cost per fidelity {f}, got {sorted(cfg.costs_s)}")
    if cfg.design.initial.get(cfg.top, 0) < 2:
        raise ConfigError(f"design.initial: needs >= 2 cases of the top fidelity {cfg.top}")
    if cfg.strategy == "active" and cfg.model.kind != "dmfdal":
        raise ConfigError("strategy: 'active' scores the latent of model.kind 'dmfdal'")
    if cfg.costs_s is not None:
        check_budget(cfg, cfg.costs_s)
    return cfg


def check_budget(cfg: LearnConfig, costs_s: dict[int, float]) -> None:
    """ConfigError unless one round's budget buys at least one solve of what the strategy may query."""
    need = costs_s[cfg.top] if cfg.strategy == "random_top" else min(costs_s.values())
    if cfg.budget_s < need:
        raise ConfigError(f"budget_s: {cfg.budget_s:g} s per round is below one solve ({need:.3g} s)")


def load_learn_config(path: str | Path) -> LearnConfig:
    """Read and check a learn config; one-line ConfigError naming the file and the field otherwise."""
    path = Path(path)
    cfg = validate(LearnConfig, read_yaml(path), source=str(path))
    try:
        return check_learn(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
