"""3-D room solver cost (issue 15): the furnished room's solve at f_max = 500 Hz measured, and the 2 kHz solve
extrapolated from a per-step cost measured on the 2 kHz grid (the extrapolation checked there) → JSON.

    .venv/bin/python -m benchmarks.room_solver [--repeats 3] [--steps-2k 40 80]

One thread (devito, language C, float32), the solver as a campaign runs it (`FDSolver.run_recording`:
impedance walls Z = 7400, table and cabinet, the 90-receiver lattice). Times are CPU seconds of this
process (the solve is one thread; on a shared, loaded machine wall time counts other users' work), medians
over ``repeats`` alternating rounds after a warm one; wall medians are reported beside them. The 500 Hz
solve is timed end to end. The 2 kHz grid (h = 343/(2000·6) m, same room and furniture) runs steps_2k[0]
and steps_2k[1] steps for its per-step cost (``eval.solve_cost``), and 4·steps_2k[0] steps to check the
extrapolation on that grid; its 0.40 s and 1 s solves are extrapolated, not timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import numpy as np

from wavesurrogate.data.cases import CaseSpec, case_problem, load_campaign, sample_cases
from wavesurrogate.eval.bench import machine_info
from wavesurrogate.eval.solve_cost import fd_step_cost, room_grid
from wavesurrogate.eval.timing import round_robin
from wavesurrogate.io import to_json, write_json
from wavesurrogate.physics.fd import FDSolver

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "rooms" / "furnished.yaml"
OUT = ROOT / "benchmarks" / "out" / "room_solver.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps-2k", type=int, nargs=2, default=[40, 80])
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    cfg = load_campaign(CONFIG)
    spec: CaseSpec = sample_cases(cfg)[0]
    p = case_problem(cfg, spec)
    rec = cfg.receiver_index()
    solver = FDSolver(p.grid, p.boundary, p.time, p.space_order, "devito", np.float32, obstacles=p.obstacles)
    full = round_robin({"solve": lambda: solver.run_recording(p.velocity, rec, p.source)}, a.repeats, 1)
    solve_500, solve_500_wall = (statistics.median(full["solve"][k]) for k in (1, 0))
    n_500 = p.time.n_steps
    g2k = room_grid((p.grid.lx, p.grid.ly, p.grid.lz), 2000.0)
    n_check = 4 * a.steps_2k[0]
    cost_2k = fd_step_cost(g2k, p.boundary, obstacles=p.obstacles, steps=(*a.steps_2k, n_check),
                           repeats=a.repeats)
    measured_check, predicted_check = cost_2k.seconds[2], cost_2k.solve_s(n_check)
    ir_s = n_500 * p.time.dt_s
    n_2k = {f"{t:.2f} s": int(np.ceil(t / cost_2k.dt_s)) for t in (ir_s, 1.0)}
    extrap_err = abs(predicted_check / measured_check - 1)
    result = {
        "benchmark": "room_solver", "config": str(CONFIG.relative_to(ROOT)), "machine": machine_info(),
        "f500": {"grid": list(p.grid.shape), "nodes": int(np.prod(p.grid.shape)), "steps": n_500,
                 "dt_s": p.time.dt_s, "ir_s": ir_s, "solve_cpu_s": solve_500, "solve_wall_s": solve_500_wall,
                 "receivers": len(rec), "loadavg_1min": os.getloadavg()[0]},
        "f2000": {"grid": list(g2k.shape), "spacing_m": list(g2k.spacing), "per_step": cost_2k.as_dict(),
                  "solve_cpu_s_extrapolated": {k: cost_2k.solve_s(n) for k, n in n_2k.items()},
                  "steps": n_2k, "timed": False,
                  "check": {"steps": n_check, "measured_cpu_s": measured_check,
                            "extrapolated_cpu_s": predicted_check}},
        "goals": {
            "furnished_solve_500hz_cpu_s": {"measured": solve_500, "target": 2.0, "op": "<=",
                                        "met": bool(solve_500 <= 2.0), "unit": "s"},
            "per_step_extrapolation_error_2khz": {"measured": extrap_err, "target": 0.10, "op": "<=",
                                                   "met": bool(extrap_err <= 0.10), "unit": "fraction"},
        },
    }
    write_json(a.out, result)
    print(to_json(result))


if __name__ == "__main__":
    main()
