"""The "layers" section of docs/results.md from benchmarks/out/layers.json (benchmarks/layers.py)."""

from __future__ import annotations

from typing import Any

from wavesurrogate.eval.table import markdown as table


def _goal_rows(goals: dict[str, Any]) -> list[list[str]]:
    return [[name, f"{g['measured']:.3g}", f"{g['op']} {g['target']:g}", "✓" if g["met"] else "✗"]
            for name, g in goals.items()]


def _stored(r: dict[str, Any], layout: str) -> str:
    v = (r.get("peak_ours_over_dense_stored_grad") or {}).get(layout)
    return "–" if v is None else f"{v:.2f}"


def layers_section(res: dict[str, Any]) -> list[str]:
    """Goals, then one row per (dim, size, k, R): tltorch/ours fwd+bwd time and ours/dense tensor peak, both
    input layouts, from the same run."""
    m = res.get("machine", {})
    threads, load = m.get("torch_threads", 1), m.get("load_1min", float("nan"))
    cmd = "`.venv/bin/python -m benchmarks.layers --threads 1 --reps 9 --out benchmarks/out/layers.json`"
    lines = ["## Compressed convolution layers: ours against tensorly-torch and dense (benchmarks/layers.py)",
             "", "Forward + backward of one layer, ours in its default configuration, round-robin in one "
             f"process ({threads} thread, load average {load:.1f}; tltorch / ours: median of the rounds' "
             "CPU-time ratios); training-step tensor peak of one forward + backward (`.sum().backward()`), "
             "gradients cleared beforehand, and with a stored upstream gradient (information). "
             f"Command: {cmd}.", ""]
    if res.get("goals"):
        lines += table(["goal (issue 14)", "measured", "target", "met"], _goal_rows(res["goals"])) + [""]
    rows = [r for part in ("layers", "layers_3d") for r in (res.get(part) or {}).get("rows", [])
            if "tltorch_over_ours" in r]
    body = [[f"{r['dim']}-D {r['size']}", str(r["kernel"]), str(r["rank"]),
             f"{r['tltorch_over_ours']['nchw']:.2f}", f"{r['tltorch_over_ours']['channels_last']:.2f}",
             f"{r['peak_ours_over_dense']['nchw']:.2f}", f"{r['peak_ours_over_dense']['channels_last']:.2f}",
             _stored(r, "nchw"), _stored(r, "channels_last")]
            for r in rows]
    if body:
        lines += table(["grid", "k", "R", "tltorch / ours, NCHW", "tltorch / ours, channels-last",
                        "peak ours / dense, NCHW", "peak ours / dense, channels-last",
                        "stored-gradient peak, NCHW", "stored-gradient peak, channels-last"], body) + [""]
    return lines
