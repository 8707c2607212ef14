"""DeepONet inference latency on CPU for one new source position at a set of query points; prints JSON.

Two paths are timed (median of many runs after a warm-up):
- ``full``: branch on the new parameters + trunk at every query point (arbitrary, never-seen points);
- ``cached_trunk``: the trunk basis at a fixed query set is computed once (it does not depend on the source),
  so a new source costs one branch pass and one [1, p] x [p, Q] product.

Usage: .venv/bin/python -m benchmarks.deeponet_latency [--width 128] [--threads 1] ...
"""

from __future__ import annotations

import argparse
import statistics

import torch

from wavesurrogate.eval.bench import machine_info
from wavesurrogate.eval.timing import time_calls
from wavesurrogate.io import to_json
from wavesurrogate.nn.models.deeponet import DeepONet
from wavesurrogate.nn.registry import count_trainable as count_params


def timed_ms(fn, runs: int, warmup: int) -> dict[str, float]:
    """Median and 10th/90th percentiles (ms) of ``fn()`` over ``runs`` calls after ``warmup`` calls."""
    ms = sorted(s * 1e3 for s in time_calls(fn, warmup=warmup, repeats=runs))
    return {"median_ms": round(statistics.median(ms), 4), "p10_ms": round(ms[len(ms) // 10], 4),
            "p90_ms": round(ms[(9 * len(ms)) // 10], 4)}


def main() -> None:
    """Parse arguments, build one DeepONet, time both inference paths, print JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=128, help="branch and trunk width")
    ap.add_argument("--depth", type=int, default=4, help="hidden layers in branch and trunk")
    ap.add_argument("--n-basis", type=int, default=100)
    ap.add_argument("--n-fourier", type=int, default=64)
    ap.add_argument("--n-params", type=int, default=4, help="source x, y, frequency, one medium parameter")
    ap.add_argument("--activation", default="sine")
    ap.add_argument("--no-modified", action="store_true", help="plain MLPs instead of modified-MLP gating")
    ap.add_argument("--points", type=int, default=4096, help="query points (64 x 64 frame by default)")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    kwargs = {"n_params": args.n_params, "n_basis": args.n_basis, "branch_width": args.width,
              "branch_depth": args.depth, "trunk_width": args.width, "trunk_depth": args.depth,
              "activation": args.activation, "modified": not args.no_modified, "n_fourier": args.n_fourier}
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = DeepONet(**kwargs).eval()
    params = torch.rand(1, args.n_params, generator=gen) * 2 - 1
    coords = torch.rand(1, args.points, 3, generator=gen) * 2 - 1

    with torch.inference_mode():
        basis = model.trunk_basis(coords[0])  # computed once for the fixed query set
        full = timed_ms(lambda: model(params, coords), args.runs, args.warmup)
        cached = timed_ms(lambda: model.combine(model.branch_coeffs(params), basis), args.runs, args.warmup)
        trunk_once = timed_ms(lambda: model.trunk_basis(coords[0]), max(args.runs // 4, 5), args.warmup // 4)
        same = torch.allclose(model(params, coords), model.combine(model.branch_coeffs(params), basis),
                              atol=1e-5)

    print(to_json({
        "benchmark": "deeponet_latency", "model": kwargs, "n_trainable_params": count_params(model),
        "query_points": args.points, "threads": torch.get_num_threads(), "runs": args.runs,
        "warmup": args.warmup, "full": full, "cached_trunk": cached, "trunk_basis_once": trunk_once,
        "cached_equals_full": bool(same), "target_ms": 5.0, "machine": machine_info(),
    }))


if __name__ == "__main__":
    main()
