"""Baselines (coarse solver): the campaign's FD solver re-run on coarser grids, its error and its wall time.

A surrogate is worth its training only if it beats the cheapest solver that is as accurate, not just the
fine solver that made the data (issues 12, 13). ``coarse_solves`` re-solves cases of a data file on grids
coarsened per axis by ``factor`` over the same physical rectangle:

- nodes n' = round((n − 1)·factor) + 1 per axis, spacing h' = (n − 1)·h / (n' − 1);
- velocity: the case's velocity (``DataFile.problem``) interpolated bilinearly at the coarse nodes;
- source and initial state: the same physical ones (positions, widths in metres; a Gaussian source without
  a width keeps the fine grid's default 2·max(dx, dy));
- absorbing layer: round(width·h/h') cells (≥ 1), so its physical thickness is kept;
- time step dt' = frame_dt / k' with the smallest integer k' for which dt' ≤ cfl_safety · the CFL bound of
  ``physics.fd.core.cfl_dt_max`` on the coarse grid for the campaign's largest velocity, so every stored
  frame time is hit exactly; factor 1 keeps the stored dt (it is the fine solve, re-timed).

The coarse frames are interpolated bilinearly back onto the data file's nodes (its ZOI window if it stores
one) and compared with the stored fields: relative L2 ‖coarse − stored‖ / ‖stored‖ (``metrics.spatial``),
per case over the whole field and pooled over cases and frames ≥ ``start``. Wall time: one untimed run
(devito builds and compiles the Operator, JIT excluded), then the median of ``repeats`` timed runs through
``eval.timing`` in this process, single-threaded (devito C, as the campaigns run).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from wavesurrogate.errors import ConfigError
from wavesurrogate.eval.timing import time_calls, with_threads
from wavesurrogate.metrics.spatial import rel_l2, squared_norms
from wavesurrogate.physics.fd.core import cfl_dt_max
from wavesurrogate.physics.problem import Boundary, Grid, Problem, TimeAxis
from wavesurrogate.physics.sources import source_width

__all__ = ["Coarsening", "coarse_grid", "coarsening", "coarse_problem", "linear_weights", "resample",
           "coarse_solves", "row_error", "coarsest_no_worse", "beaten", "beating_rows", "verdict",
           "solver_label", "DEFAULT_FACTORS"]

DEFAULT_FACTORS = (1.0, 0.75, 0.5)


@dataclass(frozen=True)
class Coarsening:
    """A coarse solve's geometry: factor, grid, absorbing cells per axis (y, x), dt and steps per frame."""

    factor: float
    grid: Grid
    width: tuple[int, int]
    dt_s: float
    steps_per_frame: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {**asdict(self), "grid": [self.grid.ny, self.grid.nx],
                "spacing_m": [self.grid.dy, self.grid.dx], "width": list(self.width)}


def coarse_grid(grid: Grid, factor: float) -> Grid:
    """The grid coarsened per axis by ``factor`` over the same rectangle: n' = round((n−1)·factor) + 1."""
    if not (isinstance(factor, int | float) and 0 < factor <= 1):
        raise ConfigError(f"factor: must be in (0, 1], got {factor!r}")
    nx, ny = round((grid.nx - 1) * factor) + 1, round((grid.ny - 1) * factor) + 1
    if min(nx, ny) < 3:
        raise ConfigError(f"factor {factor:g}: a {grid.ny} × {grid.nx} grid would keep {ny} × {nx} nodes "
                          "(need ≥ 3)")
    if (nx, ny) == (grid.nx, grid.ny):
        return grid
    return Grid(nx, ny, grid.lx / (nx - 1), grid.ly / (ny - 1))


def coarsening(grid: Grid, boundary: Boundary, space_order: int, factor: float, dt_s: float,
               stride: int, c_max_mps: float, cfl_safety: float = 0.9) -> Coarsening:
    """Geometry and time step of the solve at ``factor`` (see the module docstring); ``dt_s`` and
    ``stride``: the stored step and steps per frame (kept as they are when the grid is unchanged)."""
    g = coarse_grid(grid, factor)
    if g is grid:
        w = (boundary.width, boundary.width)
        return Coarsening(float(factor), g, w, float(dt_s), int(stride))
    frame_dt_s = dt_s * stride
    w = tuple(max(1, round(boundary.width * h / h2)) for h, h2 in ((grid.dy, g.dy), (grid.dx, g.dx)))
    bound = cfl_safety * cfl_dt_max(g, c_max_mps, space_order)
    k = max(1, math.ceil(frame_dt_s / bound * (1 - 1e-12)))
    while frame_dt_s / k > bound:  # guard the rounding of the ceiling
        k += 1
    return Coarsening(float(factor), g, w, frame_dt_s / k, k)


def linear_weights(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Matrix W [len(dst), len(src)] of 1-D linear interpolation from increasing nodes ``src`` to ``dst``.

    Points outside [src[0], src[-1]] (rounding of the same rectangle) take the nearest end value.
    """
    src, dst = np.asarray(src, dtype=np.float64), np.clip(np.asarray(dst, dtype=np.float64), src[0], src[-1])
    i = np.clip(np.searchsorted(src, dst, side="right") - 1, 0, len(src) - 2)
    t = (dst - src[i]) / (src[i + 1] - src[i])
    w = np.zeros((len(dst), len(src)))
    rows = np.arange(len(dst))
    w[rows, i] += 1.0 - t
    w[rows, i + 1] += t
    return w


def resample(a: np.ndarray, src_yx: tuple[np.ndarray, np.ndarray],
             dst_yx: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Bilinear interpolation of ``a`` [..., ny, nx] on nodes ``src_yx`` (y, x) at the nodes ``dst_yx``."""
    wy, wx = linear_weights(src_yx[0], dst_yx[0]), linear_weights(src_yx[1], dst_yx[1])
    return np.einsum("ij,...jk,lk->...il", wy, np.asarray(a, dtype=np.float64), wx)


def coarse_problem(p: Problem, c: Coarsening) -> Problem:
    """``p`` on the coarse grid of ``c``: resampled velocity, same physical source and initial state."""
    if c.grid is p.grid or c.grid == p.grid:
        return replace(p, time=TimeAxis(c.dt_s, p.time.n_frames, c.steps_per_frame))
    vel = resample(p.velocity, (p.grid.y, p.grid.x), (c.grid.y, c.grid.x))
    src = p.source
    if src.kind == "gaussian" and src.width_m is None:
        src = replace(src, width_m=source_width(src, p.grid))
    return replace(p, grid=c.grid, velocity=vel, source=src,
                   boundary=_boundary(p.boundary, c.width),
                   time=TimeAxis(c.dt_s, p.time.n_frames, c.steps_per_frame))


def _boundary(b: Boundary, width: tuple[int, int]) -> Boundary | tuple[Boundary, Boundary]:
    if b.kind != "absorbing":
        return b
    wy, wx = width
    return Boundary(b.kind, wx) if wy == wx else (Boundary(b.kind, wy), Boundary(b.kind, wx))


def solver_label(factor: float) -> str:
    """'full-resolution', '½-resolution', '¾-resolution' or '0.6×-resolution'."""
    names = {1.0: "full-resolution", 0.75: "¾-resolution", 0.5: "½-resolution", 0.25: "¼-resolution"}
    return names.get(float(factor), f"{factor:g}×-resolution")


def coarse_solves(f: Any, cases: Sequence[int], factors: Sequence[float] = DEFAULT_FACTORS, *,
                  threads: int = 1, repeats: int = 3, start: int = 0,
                  backend: str = "devito") -> list[dict[str, Any]]:
    """One row per factor: geometry, errors against the stored fields of ``cases`` and wall times.

    ``f``: an open data file (``data.store.open_data``) of an FD campaign. Row fields: ``factor``, ``label``,
    ``geometry`` (Coarsening.to_dict), ``n_steps``, ``start``, ``error`` (pooled rel L2 over cases, frames
    ≥ ``start``), ``error_all_frames``, ``seconds`` (median over cases of each case's median solve time),
    ``err2_frame`` / ``true2_frame`` (Σ over cases of ‖coarse − stored‖², ‖stored‖² per frame, so
    ``row_error(row, s)`` gives any other start) and ``cases`` (per case: error, error from start, seconds).
    """
    from wavesurrogate.physics.fd import FDSolver

    cfg = f.config
    if cfg.solver.kind != "fd":
        raise ConfigError(f"coarse_solves: {f.path} was made by the {cfg.solver.kind.upper()} solver; "
                          "coarse baselines re-run FD campaigns only")
    if threads != 1:
        raise ConfigError(f"threads: the FD solver runs single-threaded C (devito language C), got {threads}")
    if repeats < 1:
        raise ConfigError(f"repeats: must be ≥ 1, got {repeats}")
    cases = [int(c) for c in cases]
    if not cases:
        raise ConfigError("coarse_solves: no cases given")
    if not 0 <= start < f.n_frames:
        raise ConfigError(f"start: frame {start} is outside the file's {f.n_frames} frames")
    factors = [float(x) for x in factors]
    for x in factors:
        coarse_grid(cfg.grid_obj(), x)  # one-line error for a bad factor before any solve
    from wavesurrogate.data.cases import velocity_bounds

    c_max = velocity_bounds(cfg)[1]
    problems = {c: f.problem(c) for c in cases}
    dst = (np.asarray(f.y, dtype=np.float64), np.asarray(f.x, dtype=np.float64))
    rows = []
    for factor in factors:
        p0 = problems[cases[0]]
        geo = coarsening(p0.grid, p0.boundary, p0.space_order, factor, f.dt, f.frame_stride, c_max,
                         cfg.time.cfl_safety)
        solver = None
        per_case, e2, t2 = [], np.zeros(f.n_frames), np.zeros(f.n_frames)
        for c in cases:
            p = coarse_problem(problems[c], geo)
            if solver is None:
                solver = FDSolver(p.grid, p.boundary, p.time, p.space_order, backend, np.float32,
                                  obstacles=p.obstacles)

            def run(p: Problem = p, solver: FDSolver = solver) -> np.ndarray:
                return solver.run(p.velocity, p.source, p.initial)

            frames = with_threads(threads, run)  # untimed: builds, compiles and warms the solver
            secs = with_threads(threads, lambda run=run: time_calls(run, warmup=0, repeats=repeats))
            on_data = _on_data_grid(frames, p.grid, problems[c].grid, dst)
            true = torch.from_numpy(np.asarray(f.fields(c), dtype=np.float64))
            pred = torch.from_numpy(on_data)
            sq = squared_norms(pred, true).numpy()  # per frame [F, 2]
            e2 += sq[:, 0]
            t2 += sq[:, 1]
            per_case.append({"case": c, "error": float(rel_l2(pred[None], true[None])[0]),
                             "error_from_start": _ratio(sq[start:, 0].sum(), sq[start:, 1].sum()),
                             "seconds": statistics.median(secs), "seconds_min": min(secs)})
        rows.append({"factor": factor, "label": solver_label(factor), "geometry": geo.to_dict(),
                     "n_steps": (f.n_frames - 1) * geo.steps_per_frame, "start": start,
                     "error": _ratio(e2[start:].sum(), t2[start:].sum()),
                     "error_all_frames": _ratio(e2.sum(), t2.sum()),
                     "seconds": statistics.median(r["seconds"] for r in per_case),
                     "err2_frame": e2.tolist(), "true2_frame": t2.tolist(), "cases": per_case,
                     "backend": backend, "threads": threads, "repeats": repeats})
    return rows


def _ratio(e2: float, t2: float) -> float:
    return math.sqrt(e2 / t2) if t2 > 0 else math.nan


def _on_data_grid(frames: np.ndarray, coarse: Grid, full: Grid,
                  dst: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Coarse frames [F, ny', nx'] at the data file's nodes ``dst`` (y, x), float64."""
    if coarse == full and len(dst[0]) == full.ny and len(dst[1]) == full.nx:
        return np.asarray(frames, dtype=np.float64)  # the fine solve: no interpolation at all
    return resample(frames, (coarse.y, coarse.x), dst)


def row_error(row: Mapping[str, Any], start: int) -> float:
    """A row's pooled relative L2 over frames ≥ ``start`` (from its per-frame squared norms)."""
    e2, t2 = row["err2_frame"], row["true2_frame"]
    if not 0 <= start < len(e2):
        raise ConfigError(f"start: frame {start} is outside the row's {len(e2)} frames")
    return _ratio(float(sum(e2[start:])), float(sum(t2[start:])))


# ------------------------------------------------------------------------------------------- verdicts

def _ok(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def coarsest_no_worse(rows: Sequence[Mapping[str, Any]], error: float) -> Mapping[str, Any] | None:
    """The cheapest (least ``seconds``) row whose ``error`` ≤ ``error``; None if no row is as accurate."""
    ok = [r for r in rows if _ok(r.get("error")) and _ok(r.get("seconds")) and r["error"] <= error]
    return min(ok, key=lambda r: (r["seconds"], r["error"])) if ok else None


def beating_rows(model_err: float, model_s: float,
                 rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows strictly better than the model on both error and time, cheapest first."""
    if not (_ok(model_err) and _ok(model_s)):
        return []
    out = [r for r in rows if _ok(r.get("error")) and _ok(r.get("seconds"))
           and r["error"] < model_err and r["seconds"] < model_s]
    return sorted(out, key=lambda r: (r["seconds"], r["error"]))


def beaten(model_err: float, model_s: float, rows: Sequence[Mapping[str, Any]]) -> bool:
    """Whether some solver row has both a smaller error and a shorter time than the model."""
    return bool(beating_rows(model_err, model_s, rows))


def _pct(x: float) -> str:
    return f"{100 * x:.2g} %" if x < 0.01 else f"{100 * x:.1f} %"


def _ms(s: float) -> str:
    return f"{1e3 * s:.3g} ms"


def verdict(models: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]) -> str:
    """One or more sentences, from the numbers, on the surrogates against the solver rows.

    ``models``: ``{"name", "error", "seconds"}`` with error and seconds measured like the rows'.
    """
    models = [m for m in models if _ok(m.get("error")) and _ok(m.get("seconds"))]
    rows = [r for r in rows if _ok(r.get("error")) and _ok(r.get("seconds"))]
    if not models or not rows:
        return "No coarse-solver comparison (no surrogate or no solver row with an error and a time)."
    beat = {m["name"]: beating_rows(m["error"], m["seconds"], rows) for m in models}
    if all(beat.values()):  # one row beating every model, the cheapest such
        common = [r for r in beat[models[0]["name"]] if all(r in b for b in beat.values())]
        if common:
            r = common[0]
            who = "; ".join(f"{m['name']} {_pct(m['error'])}, {_ms(m['seconds'])}" for m in models)
            return (f"No surrogate beats the {r['label']} solve ({_pct(r['error'])}, {_ms(r['seconds'])}) "
                    f"on both error and time ({who}).")
    out = []
    for m in models:
        name, b = m["name"], beat[m["name"]]
        if b:
            r = b[0]
            out.append(f"{name} ({_pct(m['error'])}, {_ms(m['seconds'])}) is beaten on both error and time "
                       f"by the {r['label']} solve ({_pct(r['error'])}, {_ms(r['seconds'])}).")
            continue
        r = coarsest_no_worse(rows, m["error"])
        if r is None:
            best = min(rows, key=lambda r: r["error"])
            out.append(f"{name} ({_pct(m['error'])}) is more accurate than every coarse solve (best: the "
                       f"{best['label']} solve, {_pct(best['error'])}).")
        else:
            ratio = r["seconds"] / m["seconds"]
            out.append(f"{name} beats every coarse solve of equal error: the cheapest solve at least as "
                       f"accurate, the {r['label']} one ({_pct(r['error'])} against {_pct(m['error'])}), "
                       f"takes {_ms(r['seconds'])} against {_ms(m['seconds'])} ({ratio:.3g}×).")
    return " ".join(out)
