"""Cases of a campaign: resolving the config's time step, sampling each case, and case → solver run.

``resolve`` is where a campaign config meets the solvers: it reads a medium file, takes the CFL bound of
the fastest medium the config can produce (FD: closed form; FE: the largest eigenvalue of the assembled
operator) and fixes one ``time.dt_s`` for the whole campaign, before any case is solved.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wavesurrogate.config.campaign import (
    CampaignConfig,
    ConstantMedium,
    FileMedium,
    GradientMedium,
    GRFMedium,
    InclusionsMedium,
    LayeredMedium,
    bounds,
    load_campaign_config,
)
from wavesurrogate.errors import CFLError, ConfigError
from wavesurrogate.physics import media
from wavesurrogate.physics.fd import FDSolver, choose_dt
from wavesurrogate.physics.problem import Initial, Problem, Source, TimeAxis

SPLIT_TRAIN, SPLIT_TEST = 0, 1


@dataclass(frozen=True)
class CaseSpec:
    """One case: its index in the file, split (0 train, 1 test) and sampled parameters (SI units)."""

    index: int
    split: int
    params: dict[str, float] = field(default_factory=dict)


def _draw(rng: np.random.Generator, r: float | tuple[float, float]) -> float:
    lo, hi = bounds(r)
    return float(rng.uniform(lo, hi))  # always one draw, so fixing a range never shifts the others


def sample_params(cfg: CampaignConfig, rng: np.random.Generator) -> dict[str, float]:
    """The parameters of one case, drawn in a fixed order from ``rng`` (names carry units)."""
    g = cfg.grid_obj()
    p: dict[str, float] = {}
    s = cfg.source
    if s.kind != "none" and s.zoi_band_m is not None:
        p["source_x_m"], p["source_y_m"] = _draw_in_band(cfg, rng)
    elif s.kind != "none":
        p.update(_draw_position(cfg, rng))
    if s.kind != "none":
        p["freq_hz"] = _draw(rng, s.freq_hz)
        p["amplitude"] = _draw(rng, s.amplitude)
    m = cfg.medium
    if isinstance(m, ConstantMedium):
        p["medium_c_mps"] = _draw(rng, m.c_mps)
    elif isinstance(m, LayeredMedium):
        for k, v in enumerate(m.velocities_mps):
            p[f"medium_velocity_{k}_mps"] = _draw(rng, v)
    elif isinstance(m, GRFMedium):
        p["medium_mean_mps"] = _draw(rng, m.mean_mps)
        p["medium_contrast"] = _draw(rng, m.contrast)
        p["medium_correlation_length_m"] = _draw(rng, m.correlation_length_m)
    elif isinstance(m, InclusionsMedium):
        p["medium_background_mps"] = _draw(rng, m.background_mps)
    elif isinstance(m, GradientMedium):
        p["medium_c0_mps"] = _draw(rng, m.c0_mps)
        p["medium_gradient"] = _draw(rng, m.gradient)
    i = cfg.initial
    if i.kind == "gaussian":
        p["initial_x_m"] = _draw(rng, i.x_m if i.x_m is not None else (0.0, g.lx))
        p["initial_y_m"] = _draw(rng, i.y_m if i.y_m is not None else (0.0, g.ly))
        if g.ndim == 3:
            p["initial_z_m"] = _draw(rng, i.z_m if i.z_m is not None else (0.0, g.lz))
        p["initial_width_m"] = _draw(rng, i.width_m)
    if i.kind != "zero":
        p["initial_amplitude"] = _draw(rng, i.amplitude)
    if isinstance(m, GRFMedium | InclusionsMedium):
        p["medium_seed"] = float(rng.integers(0, 2**31))  # exact in float64
    return p


def _draw_position(cfg: CampaignConfig, rng: np.random.Generator) -> dict[str, float]:
    """source_x_m, source_y_m (, source_z_m on a 3-D grid) from the source ranges (default: the whole
    domain), drawn again while the point lies in an obstacle (never without obstacles)."""
    g, s = cfg.grid_obj(), cfg.source
    boxes = cfg.obstacle_objs()
    for _ in range(10_000):
        p = {"source_x_m": _draw(rng, s.x_m if s.x_m is not None else (0.0, g.lx)),
             "source_y_m": _draw(rng, s.y_m if s.y_m is not None else (0.0, g.ly))}
        if g.ndim == 3:
            p["source_z_m"] = _draw(rng, s.z_m if s.z_m is not None else (0.0, g.lz))
        if not any(_in_box(p, b) for b in boxes):
            return p
    raise ConfigError("source: its position ranges lie inside the obstacles")


def _in_box(p: dict[str, float], box) -> bool:
    """Whether a source position lies in an obstacle box (closed intervals, metres)."""
    ranges = (("source_x_m", box.x_m), ("source_y_m", box.y_m), ("source_z_m", box.z_m))
    return all(r is None or r[0] <= p.get(k, 0.0) <= r[1] for k, r in ranges)


def _draw_in_band(cfg: CampaignConfig, rng: np.random.Generator) -> tuple[float, float]:
    """(x, y) in m uniform in the square band source.zoi_band_m (Chebyshev distance outside the ZOI)."""
    z, g = cfg.zoi_obj(), cfg.grid_obj()
    i0, j0, nx, ny = z.i0, z.j0, z.nx, z.ny
    lo, hi = cfg.source.zoi_band_m
    x0, x1, y0, y1 = i0 * g.dx, (i0 + nx - 1) * g.dx, j0 * g.dy, (j0 + ny - 1) * g.dy
    for _ in range(100_000):
        x, y = float(rng.uniform(x0 - hi, x1 + hi)), float(rng.uniform(y0 - hi, y1 + hi))
        if lo <= max(x0 - x, x - x1, y0 - y, y - y1) <= hi:
            return x, y
    raise ConfigError("source.zoi_band_m: the band has no area")


def sample_cases(cfg: CampaignConfig) -> list[CaseSpec]:
    """All cases: training case i from rng (seed, i), then test case j from rng (test_seed, j)."""
    def draw(seed: int, k: int) -> dict[str, float]:
        return sample_params(cfg, np.random.default_rng([seed, k]))

    return ([CaseSpec(i, SPLIT_TRAIN, draw(cfg.seed, i)) for i in range(cfg.cases)]
            + [CaseSpec(cfg.cases + j, SPLIT_TEST, draw(cfg.test_seed, j)) for j in range(cfg.test_cases)])


def velocity_bounds(cfg: CampaignConfig) -> tuple[float, float]:
    """(c_min, c_max) in m/s over every medium the config can produce (loads a medium file)."""
    m = cfg.medium
    if isinstance(m, ConstantMedium):
        return bounds(m.c_mps)
    if isinstance(m, LayeredMedium):
        bs = [bounds(v) for v in m.velocities_mps]
        return min(b[0] for b in bs), max(b[1] for b in bs)
    if isinstance(m, GRFMedium):
        (lo, hi), (_, kmax) = bounds(m.mean_mps), bounds(m.contrast)
        return lo * (1 - 3 * kmax), hi * (1 + 3 * kmax)
    if isinstance(m, GradientMedium):
        (lo, hi), (g0, g1) = bounds(m.c0_mps), bounds(m.gradient)
        gmax = max(abs(g0), abs(g1))
        return lo * (1 - gmax), hi * (1 + gmax)
    if isinstance(m, InclusionsMedium):
        lo, hi = bounds(m.background_mps)
        if m.n > 0:
            lo, hi = min(lo, m.c_mps[0]), max(hi, m.c_mps[1])
        return lo, hi
    c = file_velocity(cfg)
    return float(c.min()), float(c.max())


def file_velocity(cfg: CampaignConfig) -> np.ndarray:
    """The velocity array of a 'file' medium, checked against the grid (ConfigError naming medium.*)."""
    assert isinstance(cfg.medium, FileMedium)
    return media.from_file(cfg.grid_obj(), cfg.medium.path, cfg.medium.dataset)


@functools.lru_cache(maxsize=2)
def _fe_reference(grid, boundary, element: str, c_max: float):
    """One FE solver per process for the uniform c_max medium, its λ_max computed once (Lanczos).

    That bound holds for every medium with c ≤ c_max (K grows with c²): cases reuse it through
    ``with_velocity`` and pay neither a mesh set-up nor a Lanczos run.
    """
    from wavesurrogate.physics.fe import FESolver

    problem = Problem(grid, np.full(grid.shape, c_max), TimeAxis(1.0, 2), boundary=boundary)
    solver = FESolver.from_problem(problem, element)
    solver.lambda_max()
    return solver


def _fe_dt(cfg: CampaignConfig, c_max: float) -> float:
    """FE time step: the bound of the uniform c_max medium holds for every c ≤ c_max (K grows with c²)."""
    solver = _fe_reference(cfg.grid_obj(), cfg.boundary_obj(), cfg.solver.element, float(c_max))
    if cfg.time.dt_s is None:
        return cfg.time.cfl_safety * solver.dt_max()
    solver.check_dt(cfg.time.dt_s, cfg.solver.element)
    return cfg.time.dt_s


def resolve(cfg: CampaignConfig) -> CampaignConfig:
    """The campaign with its one time step ``time.dt_s`` in s fixed (checked against the CFL bound if given).

    Reads a 'file' medium; ConfigError/CFLError with one line naming the field. Idempotent.
    """
    _, c_max = velocity_bounds(cfg)
    try:
        dt = _fe_dt(cfg, c_max) if cfg.solver.kind == "fe" else choose_dt(
            cfg.grid_obj(), c_max, cfg.solver.space_order, dt_s=cfg.time.dt_s, safety=cfg.time.cfl_safety)
    except CFLError as exc:
        msg = str(exc)
        raise CFLError(msg if msg.startswith("time.dt_s") else f"time.dt_s: {msg}") from None
    return cfg.model_copy(update={"time": cfg.time.model_copy(update={"dt_s": float(dt)})})


def load_campaign(path: str | Path) -> CampaignConfig:
    """load_campaign_config, then resolve: the campaign ready to run; errors name the file."""
    cfg = load_campaign_config(path)
    try:
        return resolve(cfg)
    except ConfigError as exc:
        raise type(exc)(f"{path}: {exc}") from None


def case_velocity(cfg: CampaignConfig, spec: CaseSpec) -> np.ndarray:
    """Velocity model of a case in m/s, float32 [ny, nx] (the exact values the solver sees)."""
    g, m, p = cfg.grid_obj(), cfg.medium, spec.params
    if isinstance(m, ConstantMedium):
        c = media.constant(g, p["medium_c_mps"])
    elif isinstance(m, LayeredMedium):
        c = media.layered(g, [p[f"medium_velocity_{k}_mps"] for k in range(len(m.velocities_mps))],
                          m.interfaces_m)
    elif isinstance(m, GRFMedium):
        rng = np.random.default_rng(int(p["medium_seed"]))
        c = media.gaussian_random_field(g, p["medium_mean_mps"], p["medium_contrast"],
                                        p["medium_correlation_length_m"], rng)
    elif isinstance(m, InclusionsMedium):
        rng = np.random.default_rng(int(p["medium_seed"]))
        c = media.random_inclusions(g, p["medium_background_mps"], m.n, m.radius_m, m.c_mps, rng)
    elif isinstance(m, GradientMedium):
        c = media.vertical_gradient(g, p["medium_c0_mps"], p["medium_gradient"])
    else:
        assert isinstance(m, FileMedium)
        c = file_velocity(cfg)
    return np.asarray(c, dtype=np.float32)


def case_source(cfg: CampaignConfig, spec: CaseSpec) -> Source:
    """The physics Source of a case."""
    s, p = cfg.source, spec.params
    if s.kind == "none":
        return Source(kind="none")
    return Source(kind=s.kind, x_m=p["source_x_m"], y_m=p["source_y_m"], freq_hz=p["freq_hz"],
                  wavelet=s.wavelet, amplitude=p["amplitude"], width_m=s.width_m, delay_s=s.delay_s,
                  z_m=p.get("source_z_m", 0.0))


def case_initial(cfg: CampaignConfig, spec: CaseSpec) -> Initial:
    """The physics Initial condition of a case."""
    i, p = cfg.initial, spec.params
    if i.kind == "zero":
        return Initial()
    if i.kind == "mode":
        return Initial(kind="mode", amplitude=p["initial_amplitude"], m=i.m, n=i.n)
    return Initial(kind="gaussian", x_m=p["initial_x_m"], y_m=p["initial_y_m"], width_m=p["initial_width_m"],
                   amplitude=p["initial_amplitude"], z_m=p.get("initial_z_m", 0.0))


@functools.lru_cache(maxsize=4)
def _fd_solver(grid, boundary, time_axis, space_order: int, backend: str, thread: int, obstacles=()):
    """One compiled FD solver per (settings, process, thread): devito compiles once, not once per case."""
    del thread  # part of the cache key only: a solver's buffers are not shared between threads
    return FDSolver(grid, boundary, time_axis, space_order, backend=backend, dtype=np.float32,
                    obstacles=obstacles)


def case_problem(cfg: CampaignConfig, spec: CaseSpec, velocity: np.ndarray | None = None) -> Problem:
    """The full-domain physics Problem of a case (velocity: case_velocity's float32 values, as float64)."""
    velocity = case_velocity(cfg, spec) if velocity is None else velocity
    return Problem(cfg.grid_obj(), velocity.astype(np.float64), cfg.time_obj(), case_source(cfg, spec),
                   case_initial(cfg, spec), cfg.boundary_obj(), cfg.solver.space_order, cfg.obstacle_objs())


RECEIVERS = "receivers"  # the trace group of record.receivers (FD); FE boundary traces are "boundary"


def trace_layout(cfg: CampaignConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Receiver traces a case records: name → (times in s [n_times], grid indices (j, i) [n_receivers, 2])."""
    n_steps, out = (cfg.time.n_frames - 1) * cfg.time.frame_stride, {}

    def times(stride: int) -> np.ndarray:
        return np.arange(n_steps // stride + 1) * stride * float(cfg.time.dt_s)

    if cfg.record.boundary_trace_stride is not None:
        from wavesurrogate.physics.zoi import boundary_indices

        out["boundary"] = (times(cfg.record.boundary_trace_stride),
                           np.stack(boundary_indices(cfg.zoi_obj()), axis=1).astype(np.int32))
    if cfg.record.receivers is not None:
        out[RECEIVERS] = (times(cfg.record.receivers.stride), cfg.receiver_index())
    return out


@dataclass(frozen=True)
class CaseResult:
    """A solved case: frames float32 [n_frames, *window], velocity float32 [*window] in m/s, receiver
    traces name → float32 [n_times, n_receivers], and the solve's wall time in s."""

    frames: np.ndarray
    velocity: np.ndarray
    traces: dict[str, np.ndarray]
    solve_s: float


def solve_case(cfg: CampaignConfig, spec: CaseSpec) -> CaseResult:
    """Simulate one case and record what ``cfg.record`` asks for (window, receiver traces, solve time)."""
    velocity = case_velocity(cfg, spec)
    problem = case_problem(cfg, spec, velocity)
    layout, traces = trace_layout(cfg), {}
    if cfg.solver.kind == "fe":  # set-up shared by the process's cases (mesh, λ_max) stays out of solve_s
        ref = _fe_reference(problem.grid, problem.boundary, cfg.solver.element, velocity_bounds(cfg)[1])
        ref.lambda_max()
    t0 = time.perf_counter()
    if cfg.solver.kind == "fd":
        rec = cfg.record.receivers  # receivers: recorded every step by the solver, kept every rec.stride
        solver = _fd_solver(problem.grid, problem.boundary, problem.time, cfg.solver.space_order,
                            cfg.solver.backend, threading.get_ident(), problem.obstacles)
        if rec is None:
            frames = solver.run(problem.velocity, problem.source, problem.initial)
        else:
            frames, record = solver.run_recording(problem.velocity, layout[RECEIVERS][1], problem.source,
                                                  problem.initial)
            traces[RECEIVERS] = np.ascontiguousarray(record[::rec.stride], dtype=np.float32)
    else:
        solver = ref.with_velocity(problem.velocity, lambda_max=ref.lambda_max())
        jj, ii = layout["boundary"][1].T if layout else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        frames, record = solver.solve_problem_recording(problem, jj, ii)
        if layout:
            traces["boundary"] = record[:: cfg.record.boundary_trace_stride].astype(np.float32)
    solve_s = time.perf_counter() - t0
    frames = np.asarray(frames, dtype=np.float32)
    if frames.shape != (cfg.time.n_frames, *problem.grid.shape):
        raise RuntimeError(f"case {spec.index}: solver returned frames of shape {frames.shape}")
    if not (np.all(np.isfinite(frames)) and all(np.all(np.isfinite(a)) for a in traces.values())):
        raise ConfigError(f"case {spec.index}: the solver produced non-finite values (unstable settings?)")
    if cfg.record.frames == "zoi":
        window = cfg.zoi_obj().slices
        frames, velocity = np.ascontiguousarray(frames[(slice(None), *window)]), velocity[window].copy()
    return CaseResult(frames, velocity, traces, solve_s)


def run_case(cfg: CampaignConfig, spec: CaseSpec) -> tuple[np.ndarray, np.ndarray]:
    """Simulate one case → (frames float32 [n_frames, *window], velocity float32 [*window] in m/s)."""
    r = solve_case(cfg, spec)
    return r.frames, r.velocity
