"""CPU speed of tensorized conv layers and CNN surrogates; prints JSON.

Layers: forward+backward time (ms, median) of TensorizedConv2d(cp, R) vs tensorly-torch's FactorizedConv (cp,
same rank, 'factorized' implementation) vs dense nn.Conv2d, input in both memory layouts, 64² and 128² (and
3-D rows at 24³); ours in its default configuration (``recompute="auto"``) and with ``recompute=True``; the
training-step tensor peak of ours and of the dense layer (same input layout): ``layer(x).sum().backward()``
(the goal's measure) and, for information, with a stored upstream gradient. ``goals``: issue 14's layer
targets over the 2-D cases. Networks: inference
time of dense vs compressed CNN surrogates at batch 1 and 32. Variants are timed round-robin (one call of each
per repetition) so load changes on a shared machine hit all of them alike; ratios come from the same run:
tltorch/ours is the median over rounds of the round's CPU-time ratio (one thread; wall-time medians and their
ratio are kept beside it).

    .venv/bin/python -m benchmarks.layers [--threads 1] [--reps 7] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from wavesurrogate.eval.bench import machine_info
from wavesurrogate.eval.memory import tensor_peak_bytes
from wavesurrogate.eval.timing import round_robin
from wavesurrogate.io import to_json, write_json
from wavesurrogate.nn import registry
from wavesurrogate.nn.layers.tensorized import TensorizedConv2d, TensorizedConv3d


def _round_robin(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 2) -> dict[str, float]:
    """Median wall time (ms) of each callable, timed one call of each per repetition."""
    walls = round_robin(fns, reps, warmup)
    return {k: round(statistics.median(w) * 1e3, 3) for k, (w, _) in walls.items()}


def _paired(fns: dict[str, Callable[[], object]], reps: int, pairs: dict[str, tuple[str, str]],
            warmup: int = 2) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(wall ms medians, CPU ms medians, ratio per pair name): each ratio is the median over rounds of
    that round's CPU-time ratio ``pairs[name][0] / pairs[name][1]``. One thread: the process's CPU time is
    the work done, without the slices other jobs on a shared machine take from its wall time."""
    walls = round_robin(fns, reps, warmup)
    wall = {k: round(statistics.median(w) * 1e3, 3) for k, (w, _) in walls.items()}
    cpu = {k: round(statistics.median(c) * 1e3, 3) for k, (_, c) in walls.items()}
    ratio = {name: round(statistics.median(a / b for a, b in zip(walls[num][1], walls[den][1], strict=True)),
                         2) for name, (num, den) in pairs.items()}
    return wall, cpu, ratio


def _fwd_bwd(layer: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """One forward + backward of ``layer`` on ``x`` (input and parameter gradients)."""

    def run() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).sum().backward()

    return run


def _train_peak(layer: nn.Module, x: torch.Tensor) -> int:
    """Tensor peak (bytes) of one forward + backward, gradients cleared beforehand (outside the profiled
    region, so frees of an earlier call's gradients do not offset the count)."""
    layer.zero_grad(set_to_none=True)
    x.grad = None
    peak = tensor_peak_bytes(lambda: layer(x).sum().backward())
    layer.zero_grad(set_to_none=True)
    x.grad = None
    return peak


def _train_peak_stored_grad(layer: nn.Module, x: torch.Tensor) -> int:
    """As ``_train_peak``, with a stored upstream gradient (made before the profiled region, as the next
    layer's backward would hand it over) instead of the expanded one of ``.sum()``, which the dense conv
    materialises and the lean cp path reads chunk by chunk; the output stays alive during backward."""
    layer.zero_grad(set_to_none=True)
    x.grad = None
    with torch.no_grad():
        g = torch.ones_like(layer(x))
    peak = tensor_peak_bytes(lambda: layer(x).backward(g))
    layer.zero_grad(set_to_none=True)
    x.grad = None
    return peak


def _tltorch() -> tuple[Any, str | None]:
    try:
        import tltorch
    except Exception as exc:  # noqa: BLE001 - any import failure means: no tltorch column
        return None, repr(exc)
    return tltorch, None


def bench_layers(batch: int, channels: int, sizes: list[int], kernels: list[int], ranks: list[int],
                 reps: int, dim: int = 2) -> list:
    """Forward+backward ms and training-step tensor peak of dense, tltorch CP and our CP conv for each (size,
    k, R), with a contiguous (NCHW) and a channels-last input; ours in its default configuration, plus
    ``recompute=True`` for comparison."""
    tltorch, tl_error = _tltorch()
    conv_cls, cl = (nn.Conv2d, torch.channels_last) if dim == 2 else (nn.Conv3d, torch.channels_last_3d)
    ours_cls = TensorizedConv2d if dim == 2 else TensorizedConv3d
    rows = []
    for size in sizes:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, channels, *(size,) * dim, generator=g, requires_grad=True)
        x_cl = x.detach().contiguous(memory_format=cl).requires_grad_()
        for k in kernels:
            dense = conv_cls(channels, channels, k, padding=k // 2)
            for r in ranks:
                ours = ours_cls(channels, channels, k, padding=k // 2, format="cp", rank=r, generator=g)
                rec = ours_cls(channels, channels, k, padding=k // 2, format="cp", rank=r, recompute=True)
                rec.load_state_dict(ours.state_dict())
                fns = {"dense": _fwd_bwd(dense, x), "dense_channels_last_input": _fwd_bwd(dense, x_cl),
                       "ours_cp": _fwd_bwd(ours, x), "ours_cp_channels_last_input": _fwd_bwd(ours, x_cl),
                       "ours_cp_recompute": _fwd_bwd(rec, x)}
                if tltorch is not None:
                    theirs = tltorch.FactorizedConv(channels, channels, k, order=dim, rank=r,
                                                    factorization="cp", implementation="factorized",
                                                    padding=k // 2, bias=True)
                    fns["tltorch_cp"] = _fwd_bwd(theirs, x)
                    fns["tltorch_cp_channels_last_input"] = _fwd_bwd(theirs, x_cl)
                pairs = {"nchw": ("tltorch_cp", "ours_cp"),
                         "channels_last": ("tltorch_cp_channels_last_input", "ours_cp_channels_last_input")}
                ms, cpu_ms, ratio = _paired(fns, reps, pairs if tltorch is not None else {})
                row: dict[str, Any] = {"dim": dim, "size": size, "kernel": k, "rank": r, "ms_fwd_bwd": ms,
                                       "cpu_ms_fwd_bwd": cpu_ms,
                                       "default_recompute": {"nchw": ours._recomputes(x),
                                                             "channels_last": ours._recomputes(x_cl)}}
                if tltorch is not None:
                    row["tltorch_over_ours"] = ratio
                    row["tltorch_over_ours_wall_medians"] = {
                        "nchw": round(ms["tltorch_cp"] / ms["ours_cp"], 2),
                        "channels_last": round(ms["tltorch_cp_channels_last_input"]
                                               / ms["ours_cp_channels_last_input"], 2)}
                peak = {name: _train_peak(layer, inp) for name, layer, inp in
                        (("dense", dense, x), ("dense_channels_last_input", dense, x_cl),
                         ("ours_cp", ours, x), ("ours_cp_channels_last_input", ours, x_cl))}
                row["tensor_peak_train_bytes"] = peak
                stored = {name: _train_peak_stored_grad(layer, inp) for name, layer, inp in
                          (("dense", dense, x), ("dense_channels_last_input", dense, x_cl),
                           ("ours_cp", ours, x), ("ours_cp_channels_last_input", ours, x_cl))}
                row["tensor_peak_train_stored_grad_bytes"] = stored
                row["peak_ours_over_dense_stored_grad"] = {
                    "nchw": round(stored["ours_cp"] / stored["dense"], 3),
                    "channels_last": round(stored["ours_cp_channels_last_input"]
                                           / stored["dense_channels_last_input"], 3)}
                row["peak_ours_over_dense"] = {
                    "nchw": round(peak["ours_cp"] / peak["dense"], 3),
                    "channels_last": round(peak["ours_cp_channels_last_input"]
                                           / peak["dense_channels_last_input"], 3)}
                row["params"] = {"dense": sum(p.numel() for p in dense.parameters()),
                                 "cp": ours.count_parameters()}
                rows.append(row)
                shown = ("dim", "size", "kernel", "rank", "tltorch_over_ours", "peak_ours_over_dense",
                         "peak_ours_over_dense_stored_grad")
                print(to_json({k2: row[k2] for k2 in shown if k2 in row}),
                      file=sys.stderr, flush=True)
    return rows if tl_error is None else [*rows, {"tltorch_import_error": tl_error}]


def layer_goals(rows: list[dict]) -> dict:
    """Issue 14's layer targets over the 2-D rows: the slowest case's tltorch/ours ratio and the largest
    training-step tensor peak of ours over the dense layer's (same input layout)."""
    two_d = [r for r in rows if r.get("dim") == 2 and "tltorch_over_ours" in r]
    if not two_d:
        return {}
    speed = min(min(r["tltorch_over_ours"].values()) for r in two_d)
    mem = max(max(r["peak_ours_over_dense"].values()) for r in two_d)
    cases = f"{len(two_d)} cases x 2 layouts"
    return {
        f"cp fwd+bwd speed-up over tltorch, default config, slowest of {cases}": {
            "measured": speed, "target": 1.5, "op": ">=", "met": speed >= 1.5, "unit": "x"},
        f"training-step tensor peak, ours / dense layer, largest of {cases}": {
            "measured": mem, "target": 1.0, "op": "<=", "met": mem <= 1.0, "unit": "x"},
    }


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
    sizes, sizes_3d = ([32], [12]) if args.quick else ([64, 128], [24])
    rows = bench_layers(16, 32, sizes, [3] if args.quick else [3, 5], [8] if args.quick else [4, 8, 16],
                        args.reps)
    out = {
        "machine": machine_info(),
        "layers": {
            "setup": {"batch": 16, "channels": 32, "sizes": sizes, "padding": "same (zeros)"},
            "rows": rows,
        },
        "layers_3d": {
            "setup": {"batch": 2, "channels": 16, "sizes": sizes_3d, "padding": "same (zeros)"},
            "rows": bench_layers(2, 16, sizes_3d, [3], [4, 8], args.reps, dim=3),
        },
        "goals": layer_goals(rows),
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
