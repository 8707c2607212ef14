"""The deploy.json section of docs/results.md (benchmarks/deploy.py, issue 20).

The demo's models as torch, ONNX Runtime fp32 and ONNX Runtime int8: file bytes, peak RSS of a fresh runtime
process, latency at batch 1 and 32, one-step and rollout errors, the int8 rows' accuracy loss and whether int8
is recommended (rollout error ≤ 1.5× fp32's). Every number comes from the JSON; a missing key reads "n/a".
"""

from __future__ import annotations

from typing import Any

from benchmarks.md_format import COMMAND, get
from wavesurrogate.eval.table import markdown as table
from wavesurrogate.eval.table import num

OPS = {"<=": "≤", ">=": "≥"}
LABELS = {"torch": "torch", "ort_fp32": "ORT fp32", "ort_int8": "ORT int8"}


def _pct(x: Any) -> str:
    p = num(None if not isinstance(x, int | float) else 100 * x, ".3g")
    return p if p == "n/a" else f"{p} %"


def _int8_cell(r: dict[str, Any]) -> str:
    if r.get("runtime") != "ort_int8":
        return "–"
    loss = r.get("accuracy_loss") or {}
    ratio = loss.get("rollout_error_ratio") or loss.get("one_step_error_ratio")
    verdict = "recommended" if r.get("recommended") is True else "not recommended"
    cell = f"{num(ratio)}× fp32's error, {num(r.get('time_ratio_b1'))}× its batch-1 time: {verdict}"
    return cell + (f" ({r['caveat']})" if r.get("caveat") else "")


def deploy_section(res: dict[str, Any]) -> list[str]:
    """Markdown lines of the section."""
    rows = [r for r in res.get("rows") or [] if isinstance(r, dict)]
    lines = ["## Deploying the demo's models: torch against ONNX Runtime fp32 and int8 (issue 20)", "",
             "Made by `.venv/bin/python -m benchmarks.deploy"
             + (f" --scale {res['scale']}" if res.get("scale") not in (None, "full") else "")
             + f"` (then `{COMMAND}`); every row measured in the same run, one thread, "
             f"onnxruntime {res.get('onnxruntime', 'n/a')}, load {num(get(res, 'machine', 'load_1min'))} → "
             f"{num(res.get('load_1min_after'))}. Torch runs the run's model with the normalisation module "
             "the export wraps; ORT runs `wavesurrogate export` [--int8] through `wavesurrogate.edge`. "
             "Bytes: the weights a device holds (safetensors / .onnx); RSS: peak resident memory of a fresh "
             "process that loads the model and answers a batch of 32; latency: median of one call (forecast: "
             "one step; source → field: sources × 4,096 points); errors: pooled relative L2 against the "
             "stored truth (one step with true inputs; rollout from frame 0 to the last frame); vs torch: "
             "distance to torch's one-step answer.", ""]
    if res.get("note"):
        lines += [f"Note: {res['note']}.", ""]
    goals = [[name, num(g.get("measured")), f"{OPS.get(g.get('op'), '')} {num(g.get('target'))}",
              "✓" if g.get("met") is True else "✗"] for name, g in (res.get("goals") or {}).items()
             if isinstance(g, dict)]
    if goals:
        lines += ["Goals:", "", *table(["goal", "measured", "target", "met"], goals), ""]
    body = [[f"{r.get('model')} ({LABELS.get(r.get('runtime'), r.get('runtime'))})", num(r.get("bytes"), ",d")
             if isinstance(r.get("bytes"), int) else "n/a", num(r.get("peak_rss_mb"), ".0f"),
             num(r.get("latency_b1_ms")), num(r.get("latency_b32_ms")), _pct(r.get("one_step_error")),
             _pct(r.get("rollout_error")), num(r.get("vs_torch"), ".2g"), _int8_cell(r)] for r in rows]
    if body:
        lines += table(["model (runtime)", "bytes", "peak RSS (MB)", "ms, batch 1", "ms, batch 32",
                        "one-step error", "rollout error", "vs torch", "int8"], body)
        lines += ["", f"int8 rule: {res.get('int8_rule', 'n/a')}.", ""]
    return lines
