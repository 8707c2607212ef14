"""The multi-fidelity wave problem of ``wavesurrogate learn``: fidelity → campaign config, parameters → cases,
solves through the campaign code, and each fidelity's measured seconds per solve.

Fidelity n is the same physical problem on an n × n grid over one square domain of side L (dx = L/(n−1)):
the same medium c0·(1 + gradient·(y − L/2)/(L/2)) and point source (bilinear footprint in 1/m², so the
same units at every grid), an absorbing sponge of the same thickness in metres, and the field at the same
times: each grid takes the largest time step below its CFL bound that divides ``frame_dt_s``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from wavesurrogate.config.base import validate
from wavesurrogate.config.campaign import CampaignConfig
from wavesurrogate.config.learn import PARAM_NAMES, LearnConfig
from wavesurrogate.data.campaign import solve_specs
from wavesurrogate.data.cases import CaseSpec, resolve

__all__ = ["fidelity_campaign", "param_bounds", "draw_params", "solve", "measure_costs"]


def _campaign_dict(cfg: LearnConfig, n: int, dt_s: float | None, stride: int) -> dict:
    p = cfg.problem
    dx = p.length_m / (n - 1)
    return {"name": f"{cfg.name}_{n}", "cases": 1, "solver": {"kind": "fd", "space_order": p.space_order,
                                                              "backend": p.backend},
            "grid": {"nx": n, "ny": n, "dx_m": dx, "dy_m": dx},
            "time": {"n_frames": max(p.frames) + 1, "frame_stride": stride, "dt_s": dt_s},
            "boundary": {"kind": "absorbing", "width": max(2, round(p.sponge_m / dx))},
            "medium": {"kind": "gradient", "c0_mps": p.c0_mps, "gradient": list(p.medium_gradient)},
            "source": {"kind": "point", "wavelet": "ricker", "x_m": list(p.source_x_m),
                       "y_m": list(p.source_y_m), "freq_hz": list(p.freq_hz), "amplitude": p.amplitude,
                       "delay_s": p.delay_s}}


@functools.lru_cache(maxsize=16)
def _fidelity_campaign(cfg_json: str, n: int) -> CampaignConfig:
    cfg = LearnConfig.model_validate_json(cfg_json)
    cfl = resolve(validate(CampaignConfig, _campaign_dict(cfg, n, None, 1), source=f"fidelity {n}"))
    stride = math.ceil(cfg.problem.frame_dt_s / float(cfl.time.dt_s) - 1e-9)
    d = _campaign_dict(cfg, n, cfg.problem.frame_dt_s / stride, stride)
    return resolve(validate(CampaignConfig, d, source=f"fidelity {n}"))


def fidelity_campaign(cfg: LearnConfig, n: int) -> CampaignConfig:
    """The resolved campaign config of fidelity ``n`` (grid n × n; time step dividing frame_dt_s)."""
    return _fidelity_campaign(cfg.model_dump_json(), n)


def param_bounds(cfg: LearnConfig) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) [P] of the learnt parameters, in the order of ``PARAM_NAMES`` (SI units)."""
    p = cfg.problem
    lo, hi = zip(p.source_x_m, p.source_y_m, p.freq_hz, p.medium_gradient, strict=True)
    return np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64)


def draw_params(cfg: LearnConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` parameter vectors [n, P] drawn uniformly from the ranges."""
    lo, hi = param_bounds(cfg)
    return lo + (hi - lo) * rng.random((n, lo.size))


def _spec(cfg: LearnConfig, index: int, row: np.ndarray) -> CaseSpec:
    values = dict(zip(PARAM_NAMES, (float(v) for v in row), strict=True))
    return CaseSpec(index, 0, {"source_x_m": values["source_x_m"], "source_y_m": values["source_y_m"],
                               "freq_hz": values["freq_hz"], "amplitude": float(cfg.problem.amplitude),
                               "medium_c0_mps": float(cfg.problem.c0_mps),
                               "medium_gradient": values["medium_gradient"]})


def solve(cfg: LearnConfig, n: int, params: np.ndarray, *, scheduler: str | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``params`` [N, P] at fidelity n: fields float32 [N, len(frames), n, n] and solve seconds [N]."""
    if len(params) == 0:
        return np.zeros((0, len(cfg.problem.frames), n, n), np.float32), np.zeros(0)
    camp = fidelity_campaign(cfg, n)
    specs = [_spec(cfg, i, row) for i, row in enumerate(params)]
    out = solve_specs(camp, specs, scheduler=scheduler, workers=cfg.workers)
    fields = np.stack([f[cfg.problem.frames] for f, _ in out]).astype(np.float32)
    return fields, np.array([s for _, s in out], dtype=np.float64)


def measure_costs(cfg: LearnConfig, rng: np.random.Generator) -> dict[int, float]:
    """Seconds per solve of each fidelity on this machine: median solve wall time of ``measure_repeats``
    warm solves in this process (one unmeasured solve first compiles the kernel)."""
    costs = {}
    params = draw_params(cfg, rng, 1)
    for n in cfg.fidelities:
        camp = fidelity_campaign(cfg, n)
        spec = _spec(cfg, 0, params[0])
        solve_specs(camp, [spec], workers=1)  # compiles
        runs = [solve_specs(camp, [spec], workers=1)[0][1] for _ in range(cfg.measure_repeats)]
        costs[n] = float(np.median(runs))
    return costs
