"""CPU speed of tensorized conv layers and CNN surrogates; prints JSON.

Layers: forward+backward time (ms, median) of TensorizedConv2d(cp, R) vs tensorly-torch's FactorizedConv (cp,
same rank, 'factorized' implementation) vs dense nn.Conv2d, input in both memory layouts; ours both with its
default activation recomputation (memory as low as a dense conv's) and without it. Networks: inference
time of dense vs compressed CNN surrogates at batch 1 and 32. Variants are timed round-robin (one call of each
per repetition) so load changes on a shared machine hit all of them alike; ratios come from the same run.

    .venv/bin/python -m benchmarks.layers [--threads 1] [--reps 7] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable

import torch
from torch import nn

from wavesurrogate.eval.bench import machine_info
from wavesurrogate.eval.timing import round_robin
from wavesurrogate.io import to_json, write_json
from wavesurrogate.nn import registry
from wavesurrogate.nn.layers.tensorized import TensorizedConv2d


def _round_robin(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 2) -> dict[str, float]:
    """Median wall time (ms) of each callable, timed one call of each per repetition."""
    walls = round_robin(fns, reps, warmup)
    return {k: round(statistics.median(w) * 1e3, 3) for k, (w, _) in walls.items()}


def _fwd_bwd(layer: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """One forward + backward of ``layer`` on ``x`` (input and parameter gradients)."""

    def run() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).sum().backward()

    return run


def bench_layers(batch: int, channels: int, size: int, kernels: list[int], ranks: list[int],
                 reps: int) -> list:
    """Forward+backward ms of dense, tltorch CP and our CP conv for each (k, R)."""
    try:
        import tltorch
    except Exception as exc:  # noqa: BLE001 - any import failure means: no tltorch column
        tltorch, tl_error = None, repr(exc)
    else:
        tl_error = None
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, size, size, generator=g, requires_grad=True)
    x_cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    rows = []
    for k in kernels:
        dense = nn.Conv2d(channels, channels, k, padding=k // 2)
        for r in ranks:
            ours = TensorizedConv2d(channels, channels, k, padding=k // 2, format="cp", rank=r, generator=g)
            keep = TensorizedConv2d(channels, channels, k, padding=k // 2, format="cp", rank=r,
                                    recompute=False)
            keep.load_state_dict(ours.state_dict())
            fns = {
                "dense": _fwd_bwd(dense, x),
                "ours_cp": _fwd_bwd(ours, x),
                "ours_cp_channels_last_input": _fwd_bwd(ours, x_cl),
                "ours_cp_no_recompute": _fwd_bwd(keep, x),
                "ours_cp_no_recompute_channels_last_input": _fwd_bwd(keep, x_cl),
            }
            if tltorch is not None:
                theirs = tltorch.FactorizedConv(channels, channels, k, order=2, rank=r, factorization="cp",
                                                implementation="factorized", padding=k // 2, bias=True)
                fns["tltorch_cp"] = _fwd_bwd(theirs, x)
            ms = _round_robin(fns, reps)
            row = {"kernel": k, "rank": r, "ms_fwd_bwd": ms}
            ratios = {"dense_over_ours": round(ms["dense"] / ms["ours_cp"], 2)}
            if "tltorch_cp" in ms:
                for tail in ("", "_channels_last", "_no_recompute", "_no_recompute_channels_last"):
                    ours_ms = ms["ours_cp" + tail + ("_input" if tail.endswith("last") else "")]
                    ratios[f"tltorch_over_ours{tail}"] = round(ms["tltorch_cp"] / ours_ms, 2)
            row["speedup"] = ratios
            row["params"] = {"dense": sum(p.numel() for p in dense.parameters()),
                             "cp": ours.count_parameters()}
            rows.append(row)
    return rows if tl_error is None else [*rows, {"tltorch_import_error": tl_error}]


def bench_networks(size: int, batches: list[int], reps: int, formats: list[dict]) -> list:
    """Inference ms (no_grad) of dense vs compressed CNN surrogates, n_in=4, n_out=1, depth 2."""
    rows = []
    for name, width in (("cnn2d", 32), ("unet2d", 32), ("cnn3d", 16)):
        models = {}
        for conv in formats:
            label = conv["format"] + (f"_r{conv['rank']}" if "rank" in conv else "")
            torch.manual_seed(0)
            kwargs = {"n_in": 4, "n_out": 1, "width": width, "depth": 2, "kernel_size": 3, "conv": conv}
            models[label] = registry.build(name, kwargs).eval()
        for batch in batches:
            x = torch.randn(batch, 5, size, size)

            def infer(m: nn.Module, x: torch.Tensor = x) -> Callable[[], object]:
                def run() -> None:
                    with torch.no_grad():
                        m(x)

                return run

            ms = _round_robin({k: infer(m) for k, m in models.items()},
                              reps if batch == 1 else max(3, reps // 2))
            rows.append({"model": name, "width": width, "batch": batch, "ms_inference": ms,
                         "dense_over_format": {k: round(ms["dense"] / v, 2) for k, v in ms.items()
                                               if k != "dense"},
                         "params": {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}})
    return rows


def main() -> None:
    """Run the layer and network benchmarks and print one JSON document."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="smaller grid and fewer cases (smoke run)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    size = 32 if args.quick else 64
    out = {
        "machine": machine_info(),
        "layers": {
            "setup": {"batch": 16, "channels": 32, "size": size, "padding": "same (zeros)"},
            "rows": bench_layers(16, 32, size, [3] if args.quick else [3, 5],
                                 [8] if args.quick else [4, 8, 16], args.reps),
        },
        "networks": {
            "setup": {"size": size, "n_in": 4, "n_out": 1, "depth": 2, "kernel_size": 3},
            "rows": bench_networks(size, [1] if args.quick else [1, 32], args.reps,
                                   [{"format": "dense"}, {"format": "cp", "rank": 8},
                                    {"format": "tucker", "rank": 8}, {"format": "separable", "rank": 1}]),
        },
        "loadavg_after": os.getloadavg(),
    }
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        write_json(args.out, out)
    print(to_json(out))


if __name__ == "__main__":
    main()
