"""GPU times of the forecast surrogates against a GPU finite-difference solver written in torch (issue 14.5).

    .venv/bin/python -m benchmarks.gpu [--device cuda] [--smoke] [--reps 20] [--out benchmarks/out/gpu.json]

What a surrogate replaces: one predicted frame of the forecast task stands for ``frame_stride`` solver steps
(5, as in forecast64). Both are timed on the same device in the same run, from 256² to 2048² and in 3-D
(64³ to 192³), at batch 1 and batched (several independent cases at once):
- the solver: ``physics.fd.torch_kernel.Leapfrog`` (the same 4th-order scheme as the devito and NumPy
  backends, heterogeneous c, a 20-node sponge), ``frame_stride`` steps;
- the surrogates: the demo's dense and CP CNNs (``configs/demo_dense.yaml``, ``demo_cp.yaml``: width 16,
  depth 2, 4 input frames plus velocity and forcing) and a wider dense CNN (width 64, depth 4), one frame,
  under ``torch.inference_mode``; in 3-D, where no registered forecast model is 3-D in space, the same conv
  stack with 3-D convolutions (width 16, depth 2), dense and CP rank 8.
Weights are freshly initialised: this measures time, not accuracy (the accuracy of these models is in the
forecast benchmarks). Times are medians of ``--reps`` calls after warm-up, with the device synchronised
around each call. Absolute times: the ratio column is solver time / surrogate time for the same frame.

Without a GPU (``torch.cuda.is_available()`` false and no ``--device``) the script prints a JSON saying so
and exits 0. ``--device cpu --smoke`` runs the same code on tiny grids (what the test checks). Issue 14 sets
no target on these numbers, so ``goals`` is empty.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from wavesurrogate.eval.bench import machine_info
from wavesurrogate.io import to_json, write_json
from wavesurrogate.nn import registry
from wavesurrogate.nn.layers.blocks import Activation, make_conv
from wavesurrogate.physics.fd.torch_kernel import Leapfrog, ghost

FRAME_STRIDE = 5
SPONGE = 20
MODELS_2D = {
    "demo dense cnn2d": ("cnn2d", {"width": 16, "depth": 2}),
    "demo cp cnn2d": ("cnn2d", {"width": 16, "depth": 2, "conv": {"format": "cp", "layer_params": 1119}}),
    "dense cnn2d w64 d4": ("cnn2d", {"width": 64, "depth": 4}),
}
MODELS_3D = {  # no registered forecast model is 3-D in space (cnn3d is 2-D space x time): the conv stack of
    # cnn2d (lift, ``depth`` conv + GELU blocks, 1x1 head) with 3-D convolutions, from the layer factory
    "dense 3-D conv stack w16 d2": ("stack3d", {"width": 16, "depth": 2}),
    "cp 3-D conv stack w16 d2 r8": ("stack3d", {"width": 16, "depth": 2,
                                                "conv": {"format": "cp", "rank": 8}}),
}


def _timed(fn: Callable[[], Any], device: torch.device, reps: int, warmup: int = 3) -> float:
    """Median seconds of ``fn()``, the device synchronised before and after each call."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    walls = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def _solver(size: int, dim: int, batch: int, device: torch.device, so: int = 4) -> Callable[[], None]:
    """``FRAME_STRIDE`` leapfrog steps of a ``size``^dim physical grid with sponge and ghosts, batched."""
    g = torch.Generator().manual_seed(0)
    n = size + 2 * SPONGE + 2 * ghost(so)
    shape = (batch, *(n,) * dim)
    c = (2000.0 + 300.0 * torch.rand(shape, generator=g)).to(device)
    h, cmax = 10.0, 2300.0
    dt = 0.4 * h / (cmax * dim**0.5)
    damp = torch.zeros(shape, device=device)
    inner = (slice(None), *(slice(ghost(so), n - ghost(so)),) * dim)
    lf = Leapfrog(c, dt, (h,) * dim, so, damp=damp[inner].contiguous())
    lf.u[inner] = torch.randn(lf.u[inner].shape, generator=g).to(device)
    forcing = torch.zeros_like(lf.u[inner])

    def run() -> None:
        with torch.inference_mode():
            for _ in range(FRAME_STRIDE):
                lf.step(forcing)

    return run


def _surrogate(name: str, kwargs: dict, size: int, dim: int, batch: int,
               device: torch.device) -> tuple[Callable[[], None], int]:
    torch.manual_seed(0)
    if name == "stack3d":
        w, conv = kwargs["width"], kwargs.get("conv")
        layers: list[nn.Module] = [make_conv(6, w, 3, conv, dim=3), Activation("gelu")]
        for _ in range(kwargs["depth"]):
            layers += [make_conv(w, w, 3, conv, dim=3), Activation("gelu")]
        model = nn.Sequential(*layers, nn.Conv3d(w, 1, 1))
    else:
        model = registry.build(name, {"n_in": 4, "n_out": 1, "kernel_size": 3, "n_extra": 1, **kwargs})
    model = model.to(device).eval()
    x = torch.randn(batch, 4 + 1 + 1, *(size,) * dim, device=device)  # frames, velocity, forcing

    def run() -> None:
        with torch.inference_mode():
            model(x)

    return run, sum(p.numel() for p in model.parameters())


def measure(device: torch.device, sizes_2d: list[int], sizes_3d: list[int], batches_2d: list[int],
            batches_3d: list[int], reps: int) -> list[dict[str, Any]]:
    """One row per (dim, size, batch): solver and surrogate seconds per frame, and their ratios."""
    rows = []
    plan = ((2, sizes_2d, batches_2d, MODELS_2D), (3, sizes_3d, batches_3d, MODELS_3D))
    for dim, sizes, batches, models in plan:
        for size in sizes:
            for batch in batches:
                solve = _timed(_solver(size, dim, batch, device), device, reps)
                row: dict[str, Any] = {"dim": dim, "size": size, "batch": batch, "solver_s_per_frame": solve}
                row["solver_steps_per_frame"] = FRAME_STRIDE
                row["surrogates"] = {}
                for label, (name, kwargs) in models.items():
                    fn, params = _surrogate(name, kwargs, size, dim, batch, device)
                    s = _timed(fn, device, reps)
                    row["surrogates"][label] = {"s_per_frame": s, "params": params,
                                                "solver_over_surrogate": row["solver_s_per_frame"] / s}
                rows.append(row)
                print(to_json({"dim": dim, "size": size, "batch": batch, "solver_ms": round(solve * 1e3, 3)}),
                      file=sys.stderr, flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run on the GPU (or ``--device``), print the JSON; without a GPU say so and return 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--smoke", action="store_true", help="tiny grids (a check that the script runs)")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    if args.device is None and not torch.cuda.is_available():
        print(to_json({"gpu": False, "reason": "no CUDA device is available (torch.cuda.is_available() is "
                       "false); nothing was measured", "goals": {}}))
        return 0
    device = torch.device(args.device or "cuda")
    if args.smoke:
        sizes_2d, sizes_3d, b2, b3 = [32], [12], [1, 2], [1]
    else:
        sizes_2d, sizes_3d, b2, b3 = [256, 512, 1024, 2048], [64, 128, 192], [1, 16], [1, 4]
    out = {"gpu": device.type == "cuda", "device": str(device),
           "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "machine": machine_info(), "frame_stride": FRAME_STRIDE, "sponge_nodes": SPONGE, "space_order": 4,
           "rows": measure(device, sizes_2d, sizes_3d, b2, b3, 3 if args.smoke else args.reps),
           "goals": {}}
    if args.out:
        write_json(args.out, out)
    print(to_json(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
