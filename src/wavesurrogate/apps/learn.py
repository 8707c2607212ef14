"""``wavesurrogate learn CONFIG --out RUN``: multi-fidelity active learning of parameters → field.

Round 0 measures each fidelity's seconds per solve (or takes ``costs_s``), solves the initial design and a
top-fidelity test set (its cost is not counted), fixes the POD basis from the initial design and trains the
model. Each later round draws ``design.candidates`` parameter vectors, picks cases by ``strategy`` within
``budget_s`` measured solver seconds (``apps/learn_acquire.py``), solves them through the campaign code
(local processes or Dask), continues training from the current weights and records nRMSE and the 90 %
interval coverage on the test set against cumulative solver seconds. The state is committed after every
round (``apps/learn_state.py``); the same command resumes a killed run and ends with the same numbers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wavesurrogate.apps.learn_acquire import choose
from wavesurrogate.apps.learn_problem import draw_params, measure_costs, param_bounds, solve
from wavesurrogate.apps.learn_state import LearnState, load_state, model_weights, save_state
from wavesurrogate.config.base import dump_yaml
from wavesurrogate.config.learn import LearnConfig, check_budget, load_learn_config
from wavesurrogate.nn import registry
from wavesurrogate.tasks.multi_fidelity import Basis, field_metrics, fit, fit_basis, predict, to_common

__all__ = ["run_learn", "learn"]

Hook = Callable[[str, int], None]


def _x(cfg: LearnConfig, params: np.ndarray) -> torch.Tensor:
    """Parameters [N, P] (SI) → normalised to [−1, 1] float32."""
    lo, hi = param_bounds(cfg)
    return torch.from_numpy((2.0 * (params - lo) / (hi - lo) - 1.0).astype(np.float32))


def _basis(s: LearnState) -> Basis:
    a = s.arrays
    return Basis(a["basis_mean"], a["basis_modes"], a["basis_scale"])


def _data(cfg: LearnConfig, s: LearnState, basis: Basis) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(_x(cfg, s.cases[n]["params"]), basis.encode(to_common(s.cases[n]["fields"], cfg.top)))
            for n in cfg.fidelities]


def _build(cfg: LearnConfig, p: int, seed: int) -> torch.nn.Module:
    m = cfg.model
    kw: dict[str, Any] = {"n_params": 4, "n_out": p, "n_fidelities": len(cfg.fidelities), "hidden": m.hidden}
    name = "dmfdal" if m.kind == "dmfdal" else "mf_ensemble"
    kw.update({"latent": m.latent} if m.kind == "dmfdal" else {"members": m.members})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return registry.build(name, kw)


def _residual_var(cfg: LearnConfig, s: LearnState, basis: Basis) -> np.ndarray:
    """Per-node variance the basis cannot hold, from the training fields (any fidelity) solved after the
    initial design fixed it (fields it was fitted on have a too small residual); all of them if none yet."""
    later = [s.cases[n]["fields"][cfg.design.initial.get(n, 0):] for n in cfg.fidelities]
    fields = [to_common(f, cfg.top) for f in later if len(f)]
    if not fields:
        fields = [to_common(s.cases[n]["fields"], cfg.top) for n in cfg.fidelities
                  if len(s.cases[n]["fields"])]
    return basis.residual_var(np.concatenate(fields))


def _evaluate(cfg: LearnConfig, s: LearnState, model: torch.nn.Module, seed: int) -> dict[str, float]:
    basis = _basis(s)
    data = _data(cfg, s, basis)
    means, var = predict(model, data, _x(cfg, s.test["params"]), len(cfg.fidelities) - 1, cfg.model.samples,
                         seed)
    resid = _residual_var(cfg, s, basis)
    return field_metrics(basis, means, var, resid, to_common(s.test["fields"], cfg.top))


def _record(cfg: LearnConfig, s: LearnState, model: torch.nn.Module, loss: float, seed: int) -> None:
    counts = {str(n): len(s.cases[n]["params"]) for n in cfg.fidelities}
    cost = sum(len(s.cases[n]["params"]) * s.costs_s[n] for n in cfg.fidelities)
    wall = sum(float(s.cases[n]["solve_s"].sum()) for n in cfg.fidelities)
    s.history.append({"round": s.round, "cost_s": cost, "solve_wall_s": wall, "cases": counts, "loss": loss,
                      **_evaluate(cfg, s, model, seed)})


def _start(cfg: LearnConfig, config_yaml: str, scheduler: str | None) -> tuple[LearnState, torch.nn.Module]:
    """Round 0: costs, initial design, test set, basis, first training."""
    rng = np.random.default_rng(cfg.seed)
    measured = measure_costs(cfg, np.random.default_rng([cfg.seed, 1]))
    costs = dict(cfg.costs_s) if cfg.costs_s is not None else measured
    check_budget(cfg, costs)  # before anything is written
    cases = {}
    for n in cfg.fidelities:
        params = draw_params(cfg, rng, cfg.design.initial.get(n, 0))
        fields, solve_s = solve(cfg, n, params, scheduler=scheduler)
        cases[n] = {"params": params, "fields": fields, "solve_s": solve_s}
    test_params = draw_params(cfg, np.random.default_rng([cfg.design.test_seed, 2]), cfg.design.test_cases)
    test_fields, _ = solve(cfg, cfg.top, test_params, scheduler=scheduler)
    basis = fit_basis(np.concatenate([to_common(c["fields"], cfg.top) for c in cases.values()]),
                      cfg.model.modes)
    model = _build(cfg, basis.modes.shape[1], int(rng.integers(2**31)))
    test = {"params": test_params, "fields": test_fields}
    desc = registry.describe(model)
    s = LearnState(config_yaml, 0, costs, measured, rng, cases, test, basis.arrays(), desc, {})
    loss = fit(model, _data(cfg, s, basis), cfg.model, cfg.model.steps_first, int(rng.integers(2**31)))
    _record(cfg, s, model, loss, int(rng.integers(2**31)))
    return s, model


def _round(cfg: LearnConfig, s: LearnState, model: torch.nn.Module, scheduler: str | None,
           hook: Hook | None) -> None:
    """One acquisition round: choose, solve, train on, evaluate (state updated in place, not saved)."""
    basis = _basis(s)
    cand = draw_params(cfg, s.rng, cfg.design.candidates)
    costs = [s.costs_s[n] for n in cfg.fidelities]
    picks = choose(cfg.strategy, model, _data(cfg, s, basis), _x(cfg, cand), costs, cfg.budget_s, s.rng)
    for lv, n in enumerate(cfg.fidelities):
        idx = [c for level, c in picks if level == lv]
        fields, solve_s = solve(cfg, n, cand[idx], scheduler=scheduler)
        old = s.cases[n]
        s.cases[n] = {"params": np.concatenate([old["params"], cand[idx]]),
                      "fields": np.concatenate([old["fields"], fields]),
                      "solve_s": np.concatenate([old["solve_s"], solve_s])}
    if hook is not None:
        hook("solved", s.round)
    loss = fit(model, _data(cfg, s, basis), cfg.model, cfg.model.steps_round, int(s.rng.integers(2**31)))
    _record(cfg, s, model, loss, int(s.rng.integers(2**31)))


def learn(cfg: LearnConfig, out: Path, *, scheduler: str | None = None, hook: Hook | None = None,
          progress: bool = False) -> Path:
    """Run or resume the loop of ``cfg`` in ``out``; returns ``out`` (``state.json`` holds the history)."""
    config_yaml = dump_yaml(cfg)
    s = load_state(out, config_yaml)
    if s is None:
        s, model = _start(cfg, config_yaml, scheduler)
        s.weights = model_weights(model)
        save_state(out, s)
        if hook is not None:
            hook("committed", 0)
    else:
        model = registry.build(s.model["name"], s.model["kwargs"])
        model.load_state_dict(s.weights)
        model.eval()
    while s.round < cfg.rounds:
        s.round += 1
        _round(cfg, s, model, scheduler, hook)
        s.weights = model_weights(model)
        save_state(out, s)
        if progress:
            h = s.history[-1]
            print(f"round {s.round}: {h['cost_s']:.4g} s, nRMSE {h['nrmse']:.4f}, "
                  f"cov90 {h['coverage90']:.3f}", file=sys.stderr, flush=True)
        if hook is not None:
            hook("committed", s.round)
    return out


def run_learn(config_path: str | Path, out: str | Path, scheduler: str | None = None) -> Path:
    """``wavesurrogate learn``: load and check the config (nothing written if bad), then run or resume."""
    return learn(load_learn_config(config_path), Path(out), scheduler=scheduler, progress=True)
