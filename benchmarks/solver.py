"""FD solver throughput against a textbook devito acoustic operator, the NumPy backend and the FE solver.

    .venv/bin/python -m benchmarks.solver [--sizes 128 256 512] [--orders 2 4] [--repeat 3]

Prints JSON. Throughput counts the points updated per step, absorbing layer included (ghosts excluded),
times steps over warm wall (and CPU) time; the first run's extra time (Operator build, cached JIT) is
reported apart; ours and the textbook run interleaved, best of --repeat.
Ours = FDSolver(backend="devito") end to end (coefficients, source, sponge, frame capture); textbook = a
plain devito operator m·u_tt − Δu + damp·u_t = 0 with solve() and a Ricker injected at one point, same
padded grid, dtype and number of steps. Single thread (devito language C).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

from wavesurrogate.eval.bench import machine_info
from wavesurrogate.eval.timing import round_robin
from wavesurrogate.io import to_json
from wavesurrogate.physics import media
from wavesurrogate.physics.fd import FDSolver, choose_dt
from wavesurrogate.physics.problem import Boundary, Grid, Problem, Source, TimeAxis
from wavesurrogate.physics.sources import wavelet

WIDTH = 20
H_M = 5.0


def make_problem(n: int, space_order: int, n_steps: int, stride: int = 10) -> Problem:
    """n × n GRF medium (2000 m/s ± 20 %), 5 m cells, Ricker point source in the middle, sponge of 20."""
    grid = Grid(nx=n, ny=n, dx=H_M, dy=H_M)
    vel = media.gaussian_random_field(grid, 2000.0, 0.2, 20 * H_M, np.random.default_rng(0))
    dt = choose_dt(grid, float(vel.max()), space_order)
    stride = max(1, min(stride, n_steps))
    time_axis = TimeAxis(dt_s=dt, n_frames=n_steps // stride + 1, frame_stride=stride)
    src = Source(kind="point", x_m=grid.lx / 2 + 0.3 * H_M, y_m=grid.ly / 2, freq_hz=20.0)
    return Problem(grid, vel, time_axis, source=src, boundary=Boundary("absorbing", WIDTH),
                   space_order=space_order)


def interleaved(fns: dict[str, Any], repeat: int) -> dict[str, tuple[float, float]]:
    """Best (wall, CPU) seconds of each function, calls interleaved so that all see the same load."""
    return {k: (min(w), min(c)) for k, (w, c) in round_robin(fns, repeat).items()}


def prepare_ours(p: Problem, backend: str) -> tuple[dict[str, Any], float]:
    """Run functions of our solver (end to end; devito: also its Operator alone) and the first-run seconds."""
    solver = FDSolver(p.grid, p.boundary, p.time, p.space_order, backend=backend, dtype=np.float32)
    t0 = time.perf_counter()
    frames = solver.run(p.velocity, p.source, p.initial)
    first = time.perf_counter() - t0
    assert np.all(np.isfinite(frames)) and np.abs(frames[-1]).max() > 0
    fns: dict[str, Any] = {"ours": lambda: solver.run(p.velocity, p.source, p.initial)}
    if backend == "devito":  # the compiled stencil alone, same steps (diagnostic)
        stepper = solver._devito
        fns["ours_operator_only"] = lambda: stepper._op.apply(
            time_m=0, time_M=p.time.n_steps, **{stepper._factor_name: p.time.frame_stride})
    return fns, first


def prepare_textbook(p: Problem) -> tuple[Any, float]:
    """A plain devito acoustic operator (as in devito's examples) on the padded grid; (run, build seconds)."""
    from devito import Eq, Function, Operator, SparseTimeFunction, TimeFunction, configuration, solve
    from devito import Grid as DGrid

    configuration["log-level"] = "WARNING"
    configuration["language"] = "C"
    shape = tuple(s + 2 * WIDTH for s in p.grid.shape)
    extent = tuple((s - 1) * H_M for s in shape)
    grid = DGrid(shape=shape, extent=extent, dtype=np.float32)
    u = TimeFunction(name="u", grid=grid, time_order=2, space_order=p.space_order)
    m = Function(name="m", grid=grid)
    damp = Function(name="damp", grid=grid)
    vel = np.pad(p.velocity, WIDTH, mode="edge")
    m.data[:] = 1.0 / vel**2
    d = np.zeros(shape)
    ramp = (np.arange(WIDTH, 0, -1) / WIDTH) ** 2
    d[:WIDTH] += ramp[:, None]
    d[-WIDTH:] += ramp[::-1, None]
    d[:, :WIDTH] += ramp[None, :]
    d[:, -WIDTH:] += ramp[None, ::-1]
    damp.data[:] = 10.0 * 2000.0 / (WIDTH * H_M) * d
    nt = p.time.n_steps + 1
    src = SparseTimeFunction(name="src", grid=grid, npoint=1, nt=nt)
    src.coordinates.data[:] = [[(WIDTH * H_M + p.source.y_m), (WIDTH * H_M + p.source.x_m)]]
    src.data[:, 0] = wavelet(p.source, np.arange(nt) * p.time.dt_s)
    dt = p.time.dt_s
    pde = m * u.dt2 - u.laplace + damp * u.dt
    eqs = [Eq(u.forward, solve(pde, u.forward))] + src.inject(field=u.forward, expr=src * dt**2 / m)
    t0 = time.perf_counter()
    op = Operator(eqs)
    _ = op.cfunction
    build_s = time.perf_counter() - t0

    def run() -> None:
        u.data[:] = 0.0
        op.apply(time_m=0, time_M=p.time.n_steps - 1, dt=dt)

    run()
    return run, build_s


def bench_fe(p: Problem, element: str) -> dict[str, Any]:
    """FE time per step (setup excluded when the solver exposes it); None fields if FE is unavailable."""
    try:
        from wavesurrogate.physics import fe
    except ImportError as exc:
        return {"available": False, "reason": f"wavesurrogate.physics.fe not importable: {exc}"}
    from wavesurrogate.errors import CFLError

    try:
        fe.solve_fe  # noqa: B018
    except AttributeError:
        return {"available": False, "reason": "wavesurrogate.physics.fe has no solve_fe"}
    problem = p
    note = "same dt as FD"
    t0 = time.perf_counter()
    try:
        solver = fe.FESolver.from_problem(problem, element, np.float64)
        setup = time.perf_counter() - t0
        try:
            solver.check_dt(problem.time.dt_s)
        except CFLError:
            dt = 0.9 * solver.dt_max
            problem = Problem(p.grid, p.velocity, TimeAxis(dt, p.time.n_frames, p.time.frame_stride),
                              p.source, p.initial, p.boundary, p.space_order)
            note = "FD's dt breaks the FE bound: 0.9 × FE bound"
        t0 = time.perf_counter()
        solver.solve_problem(problem)
        run = time.perf_counter() - t0
    except AttributeError:  # only the public solve_fe: setup included
        t0 = time.perf_counter()
        fe.solve_fe(problem, element=element)
        run, setup = time.perf_counter() - t0, float("nan")
        note = "setup included (solve_fe only)"
    return {"available": True, "element": element, "s_per_step": run / problem.time.n_steps,
            "setup_s": setup, "dt_s": problem.time.dt_s, "note": note}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--orders", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fe-steps", type=int, default=100)
    ap.add_argument("--numpy-steps", type=int, default=100)
    args = ap.parse_args()
    steps_for = {128: 2000, 256: 1000, 512: 400}
    rows = []
    for n in args.sizes:
        for so in args.orders:
            n_steps = steps_for.get(n, max(100, int(4e8 / (n + 2 * WIDTH) ** 2) // 10 * 10))
            p = make_problem(n, so, n_steps)
            points = (n + 2 * WIDTH) ** 2
            fns, first = prepare_ours(p, "devito")
            fns["textbook"], book_build = prepare_textbook(p)
            best = interleaved(fns, args.repeat)
            p_np = make_problem(n, so, args.numpy_steps)
            np_fns, _ = prepare_ours(p_np, "numpy")
            ref = interleaved(np_fns, 1)["ours"]

            def mpts(sec: float, steps: int = n_steps, points: int = points) -> float:
                return points * steps / sec / 1e6

            row: dict[str, Any] = {
                "n": n, "space_order": so, "points_per_step": points, "steps": n_steps,
                "ours_mpts_s": mpts(best["ours"][0]),
                "devito_textbook_mpts_s": mpts(best["textbook"][0]),
                "ratio_ours_to_devito": best["textbook"][0] / best["ours"][0],
                "ours_mpts_cpu_s": mpts(best["ours"][1]),
                "devito_textbook_mpts_cpu_s": mpts(best["textbook"][1]),
                "ratio_ours_to_devito_cpu": best["textbook"][1] / best["ours"][1],
                "ours_operator_only_mpts_cpu_s": mpts(best["ours_operator_only"][1]),
                "ratio_operator_only_to_devito_cpu": best["textbook"][1] / best["ours_operator_only"][1],
                "numpy_mpts_s": mpts(ref[0], args.numpy_steps),
                "ours_first_run_extra_s": max(0.0, first - best["ours"][0]),
                "textbook_build_s": book_build,
            }
            row["ratio_ours_to_numpy"] = row["ours_mpts_s"] / row["numpy_mpts_s"]
            ours = {"seconds": best["ours"][0]}
            fd_s_per_step = ours["seconds"] / n_steps
            row["fd_s_per_step"] = fd_s_per_step
            if so == 2:
                fe = bench_fe(make_problem(n, so, args.fe_steps), "p1")
                row["fe"] = fe
                row["fe_s_per_step"] = fe.get("s_per_step")
                row["ratio_fe_to_fd_time_per_step"] = (fe["s_per_step"] / fd_s_per_step
                                                       if fe.get("available") else None)
            rows.append(row)
            print(json.dumps({"progress": f"n={n} order={so}", "ratio": row["ratio_ours_to_devito"],
                              "ratio_cpu": row["ratio_ours_to_devito_cpu"]}), file=sys.stderr)
    import devito

    out = {
        "benchmark": "solver",
        "command": "python -m benchmarks.solver " + " ".join(
            f"--{k.replace('_', '-')} " + (" ".join(map(str, v)) if isinstance(v, list) else str(v))
            for k, v in vars(args).items()),
        "machine": {**machine_info(), "threads_used": 1, "devito": devito.__version__,
                    "numpy": np.__version__, "load_average_1_5_15_min": os.getloadavg()},
        "notes": ("throughput = (n + 2·20)² points × steps / warm seconds (wall, and CPU time of this "
                  "process); float32; best of repeat; a loaded machine lowers and scatters all numbers"),
        "results": rows,
    }
    print(to_json(out))


if __name__ == "__main__":
    main()
