"""ZOI submodel core: full FE solve vs ZOI-only FE solve driven by the exact trace → JSON on stdout.

    .venv/bin/python -m benchmarks.submodel_core [--elements p1 q1] [--n 256] [--zoi 64] [--steps 600]

256 × 256 nodes (dx = 5 m) with a 20-cell absorbing layer, Gaussian-random-field medium (mean 2000 m/s,
contrast 0.1, correlation 50 m, seed 0), 15 Hz Ricker point source at (300, 300) m, outside the central
64 × 64 ZOI; dt = 1 ms, one frame every 10 steps. Reported per element:
* ``full_s``: assembly + CFL bound + time stepping of the full solve (``full_*_s`` the parts);
* ``zoi_s``: everything solve_zoi does (restriction, mesh, assembly, CFL bound, trace interpolation,
  stepping), best of 3, driven by the exact trace recorded at every step of the full solve;
* ``speedup``: full_s / zoi_s; ``zoi_error_exact_trace``: relative L2 error over the ZOI and all frames of
  that submodel against the full solve (the floor, round-off);
* ``speedup_vs_full_stepping_only``: the full solve's time stepping alone (its assembly and CFL bound
  amortised over many sources) / zoi_s;
* ``zoi_error_sampled_trace_{cubic,linear}``: the same error with the trace sampled every k steps
  (k = frame_stride: only at the stored frames) and interpolated in time.
On a shared machine (``machine.load_1min`` > cores) wall times overstate what an idle machine needs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from wavesurrogate.eval.bench import machine_info
from wavesurrogate.io import to_json
from wavesurrogate.physics import media
from wavesurrogate.physics.fe import FESolver
from wavesurrogate.physics.problem import Boundary, Grid, Problem, Source, TimeAxis
from wavesurrogate.physics.zoi import Zoi, boundary_trace, exact_trace, solve_zoi


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def bench(problem: Problem, zoi: Zoi, element: str) -> dict:
    """Timings and errors of one element."""
    t0 = time.perf_counter()
    solver = FESolver.from_problem(problem, element)
    t1 = time.perf_counter()
    dt_max = solver.dt_max()
    t2 = time.perf_counter()
    frames = solver.solve_problem(problem)
    t3 = time.perf_counter()
    _, trace, step_times = exact_trace(problem, zoi, element=element)
    t4 = time.perf_counter()
    zoi_times = []
    for _ in range(3):
        s = time.perf_counter()
        sub = solve_zoi(problem, zoi, trace, step_times, element=element)
        zoi_times.append(time.perf_counter() - s)
    ref = frames[(slice(None), *zoi.slices)]
    if not np.array_equal(boundary_trace(frames, zoi), trace[:: problem.time.frame_stride]):
        raise AssertionError("the recorded trace does not match the stored frames")
    errors = {}
    for kind in ("cubic", "linear"):
        errors[f"zoi_error_sampled_trace_{kind}"] = {
            f"every_{k}_steps": _rel(solve_zoi(problem, zoi, trace[::k], step_times[::k], element=element,
                                               time_interp=kind), ref)
            for k in (2, 5, problem.time.frame_stride)}
    full_s = t3 - t0
    return {
        "dt_max_s": dt_max,
        "full_nodes": solver.n_nodes,
        "full_s": full_s,
        "full_assembly_s": t1 - t0,
        "full_cfl_s": t2 - t1,
        "full_stepping_s": t3 - t2,
        "full_ms_per_step": 1e3 * (t3 - t2) / problem.time.n_steps,
        "exact_trace_solve_s": t4 - t3,
        "zoi_nodes": zoi.nx * zoi.ny,
        "zoi_s": min(zoi_times),
        "speedup": full_s / min(zoi_times),
        "speedup_vs_full_stepping_only": (t3 - t2) / min(zoi_times),
        "zoi_error_exact_trace": _rel(sub, ref),
        **errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--elements", nargs="+", default=["p1", "q1"], choices=["p1", "q1"])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--zoi", type=int, default=64)
    ap.add_argument("--steps", type=int, default=600)
    a = ap.parse_args()

    grid = Grid(a.n, a.n, 5.0, 5.0)
    c = media.gaussian_random_field(grid, 2000.0, 0.1, 50.0, np.random.default_rng(0))
    stride = 10
    problem = Problem(grid, c, TimeAxis(1e-3, a.steps // stride + 1, stride),
                      source=Source("point", 300.0, 300.0, freq_hz=15.0), boundary=Boundary("absorbing", 20))
    i0 = (a.n - a.zoi) // 2
    zoi = Zoi(i0, i0, a.zoi, a.zoi)
    out = {
        "benchmark": "submodel_core",
        "grid": [a.n, a.n], "dx_m": 5.0, "zoi": [zoi.i0, zoi.j0, zoi.nx, zoi.ny],
        "dt_s": problem.time.dt_s, "n_steps": problem.time.n_steps, "frame_stride": stride,
        "velocity_mps": [float(c.min()), float(c.max())], "source_m": [300.0, 300.0], "freq_hz": 15.0,
        "boundary": "absorbing, 20 cells", "machine": machine_info(),
        "elements": {el: bench(problem, zoi, el) for el in a.elements},
    }
    print(to_json(out))


if __name__ == "__main__":
    main()
