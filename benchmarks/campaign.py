"""Campaign throughput: 200 cases, 64 × 64, 200 frames, 2 worker processes → JSON on stdout.

    .venv/bin/python -m benchmarks.campaign [--cases 200] [--frames 200] [--workers 2] [--backend devito]

The physics is that of configs/forecast64.yaml (GRF media, Ricker point sources, absorbing sponge,
4th-order FD, dt = 1.5 ms, one frame every 5 steps). Wall time covers everything `wavesurrogate
simulate` does: config checks, worker start-up (and devito compilation per worker), simulation, shards,
assembly of the compressed HDF5 file; ``simulate_s`` ends when the last shard is written. ``cpu_s`` is
the CPU time of this process and its workers (includes devito compilation); on a shared machine
(``loadavg_1min_before`` > cores) wall time overstates what an idle machine needs.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import yaml

from wavesurrogate.config.base import read_yaml
from wavesurrogate.data.campaign import simulate
from wavesurrogate.data.cases import load_campaign
from wavesurrogate.eval.bench import machine_info
from wavesurrogate.io import to_json

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backend", choices=["devito", "numpy"], default="devito")
    a = ap.parse_args()

    cfg = read_yaml(ROOT / "configs" / "forecast64.yaml")
    cfg.update(name="bench", cases=a.cases, test_cases=0)
    cfg["time"]["n_frames"] = a.frames
    cfg["solver"]["backend"] = a.backend
    with tempfile.TemporaryDirectory(prefix="ws-bench-") as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(cfg))
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        c = load_campaign(path)
        last = [t0]
        out = simulate(c, Path(tmp) / "bench.h5", workers=a.workers, progress=False,
                       on_shard=lambda i: last.__setitem__(0, time.perf_counter()))
        wall = time.perf_counter() - t0
        size = out.stat().st_size
    ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(r.ru_utime + r.ru_stime for r in ru)
    raw = a.cases * a.frames * 64 * 64 * 4
    print(to_json({
        "benchmark": "campaign", "cases": a.cases, "grid": [64, 64], "n_frames": a.frames,
        "frame_stride": c.time.frame_stride, "solver_steps_per_case": c.time_obj().n_steps,
        "backend": a.backend, "workers": a.workers,
        "wall_s": round(wall, 2), "cases_per_s": round(a.cases / wall, 2),
        "simulate_s": round(last[0] - t0, 2), "assemble_s": round(wall - (last[0] - t0), 2),
        "cpu_s": round(cpu, 1), "loadavg_1min_before": round(load_before, 2),
        "file_mb": round(size / 1e6, 1), "raw_mb": round(raw / 1e6, 1),
        "under_2_min": wall < 120.0, "machine": machine_info(),
    }, indent=None))


if __name__ == "__main__":
    main()
