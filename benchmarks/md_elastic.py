"""The elastic.json section of docs/results.md (benchmarks/elastic.py, issue 18)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.md_format import COMMAND, pct
from benchmarks.md_format import get as _get
from wavesurrogate.eval.table import markdown as table
from wavesurrogate.eval.table import num


def _ratio(a: Any, b: Any) -> str:
    ok = isinstance(a, int | float) and isinstance(b, int | float) and b
    return f"{a / b:.2f}×" if ok else "n/a"


def _kib(b: Any) -> str:
    return "n/a" if not isinstance(b, int | float) else f"{b / 1024:.1f}"


def elastic_section(res: dict[str, Any]) -> list[str]:
    """One elastic CP network sliced to several budgets against networks trained alone."""
    arch, rec, mach = res.get("arch", {}), res.get("recipe", {}), res.get("machine", {})
    lines = ["## One network, many budgets: elastic depth × rank (benchmarks/elastic.py, issue 18)", "",
             f"Data `{Path(res.get('data', '?')).name}`: first {res.get('max_cases') or 'all'} cases for "
             "training and "
             f"validation (windows every {res.get('window_stride')} frames), first {res.get('eval_cases')} "
             f"test cases for the errors (one-step pooled relative L2; rollout from frame 0, relative L2 at "
             f"frame 40). `elastic_cnn2d` width {arch.get('width')}, {arch.get('blocks')} residual blocks of "
             f"two 3×3 CP convs at rank {arch.get('rank')}; every run {res.get('epochs')} epochs (equal "
             f"steps), Adam {rec.get('lr')} with cosine decay, batch {rec.get('batch_size')}, inputs "
             f"{rec.get('inputs')}. *fixed*: loss summed over every (blocks, rank) pair each step plus "
             f"{rec.get('distill')} × distillation toward the full model's detached output (Starbucks); "
             "*random*: one random pair per step, same distillation; *alone*: that architecture trained "
             "by itself. Slices are standalone run directories written by `wavesurrogate slice`. "
             f"Dense reference: the same network with dense 3×3 convs, {res.get('dense_params')} "
             "parameters.", "",
             f"Machine: {mach.get('cores')} cores, torch {mach.get('torch')}, load "
             f"{num(mach.get('load_1min'))}. Whole benchmark {num(res.get('wall_s'))} s.", ""]
    rows = []
    for key, s in (res.get("slices") or {}).items():
        a = (res.get("alone") or {}).get(key, {})
        f, r = s.get("fixed", {}), s.get("random", {})
        rows.append([key.replace("x", ", "), str(s.get("params")), f"1/{1 / s['share_of_dense']:.3g}",
                     pct(f.get("one_step")), pct(r.get("one_step")), pct(a.get("one_step")),
                     _ratio(f.get("one_step"), a.get("one_step")), pct(f.get("rollout")),
                     pct(r.get("rollout")), pct(a.get("rollout")),
                     _ratio(f.get("rollout"), a.get("rollout"))])
    lines += table(["(blocks, rank)", "params", "of dense", "1-step fixed %", "random %", "alone %",
                    "fixed/alone", "40-frame fixed %", "random %", "alone %", "fixed/alone"], rows)
    costs = res.get("costs") or {}
    rows = [[k.replace("x", ", "), _kib(c.get("weight_bytes")), _kib(c.get("infer_tensor_peak_bytes")),
             _kib(c.get("infer_rss_peak_bytes")), num(c.get("latency_ms"))] for k, c in costs.items()]
    if rows:
        lines += ["", "Slices of *fixed* as standalone runs: weight bytes, inference memory of one batch-32 "
                  "forward (tensor-level peak; resident-set peak in a fresh process beside it), batch-1 "
                  "latency (median of paired round-robin rounds, one thread).", ""]
        lines += table(["(blocks, rank)", "weights KiB", "infer tensor peak KiB", "infer RSS peak KiB",
                        "latency ms"], rows)
    t_full = _get(res, "alone", f"{arch.get('blocks')}x{arch.get('rank')}", "train_s")
    tc = res.get("train_cost") or {}
    lines += ["", f"Training cost of one epoch, fresh runs one after the other: fixed "
              f"{num(_get(tc, 'fixed', 'cpu_s'))} CPU s ({num(_get(tc, 'fixed', 'wall_s'))} s wall), largest "
              f"alone {num(_get(tc, 'alone', 'cpu_s'))} CPU s ({num(_get(tc, 'alone', 'wall_s'))} s wall). "
              f"The runs' own training wall times (all epochs): fixed {num(_get(res, 'fixed', 'train_s'))} "
              f"s, random {num(_get(res, 'random', 'train_s'))} s, largest alone {num(t_full)} s. A pair "
              f"outside the trained list: exit {_get(res, 'refusal', 'exit_code')}, "
              f"`{_get(res, 'refusal', 'message')}`.", ""]
    goals = res.get("goals") or {}
    rows = [[k, num(g.get("measured")), f"{g.get('op')} {num(g.get('target'))}", g.get("unit", ""),
             "yes" if g.get("met") else "**no**"] for k, g in goals.items()]
    lines += ["Goals:", ""] + table(["goal", "measured", "target", "unit", "met"], rows)
    lines += ["", f"Rerun: `.venv/bin/python -m benchmarks.elastic` then `{COMMAND}`.", ""]
    return lines


def elastic_operators_section(res: dict[str, Any]) -> list[str]:
    """One elastic TFNO (CP spectral weights) sliced in (modes, rank) against networks trained alone."""
    arch, rec, mach = res.get("arch", {}), res.get("recipe", {}), res.get("machine", {})
    title = "## Elastic operators: Fourier modes × CP rank (benchmarks/elastic_operators.py, issue 18 item 4)"
    lines = [title, "",
             f"Data `{Path(res.get('data', '?')).name}`: first {res.get('max_cases') or 'all'} cases for "
             f"training and validation (windows every {res.get('window_stride')} frames), first "
             f"{res.get('eval_cases')} test cases for the errors (one-step pooled relative L2; rollout from "
             f"frame 0, relative L2 at frame 40). `{res.get('model')}` n_modes {arch.get('n_modes')}, "
             f"hidden {arch.get('hidden_channels')}, {arch.get('n_layers')} Fourier layers, CP spectral "
             f"weights of rank {arch.get('rank')}; every run {res.get('epochs')} epochs, Adam "
             f"{rec.get('lr')} with cosine decay, batch {rec.get('batch_size')}. *elastic*: loss summed over "
             f"every (modes, rank) pair each step plus {rec.get('distill')} × distillation toward the full "
             "model; *alone*: that architecture trained by itself. Slices written by `wavesurrogate slice "
             "--modes m --rank r`.",
             "",
             f"Machine: {mach.get('cores')} cores, torch {mach.get('torch')}, load "
             f"{num(mach.get('load_1min'))}. Whole benchmark {num(res.get('wall_s'))} s.", ""]
    rows = []
    for key, s in (res.get("slices") or {}).items():
        a, c = (res.get("alone") or {}).get(key, {}), (res.get("costs") or {}).get(key, {})
        rows.append([key.replace("x", ", "), str(s.get("params")), pct(s.get("one_step")),
                     pct(a.get("one_step")), _ratio(s.get("one_step"), a.get("one_step")),
                     pct(s.get("rollout")), pct(a.get("rollout")), _ratio(s.get("rollout"), a.get("rollout")),
                     _kib(c.get("weight_bytes")), num(c.get("latency_ms"))])
    lines += table(["(modes, rank)", "params", "1-step elastic %", "alone %", "elastic/alone",
                    "40-frame elastic %", "alone %", "elastic/alone", "weights KiB", "latency ms"], rows)
    tc = res.get("train_cost") or {}
    lines += ["", f"Training cost (whole runs, process CPU seconds, one thread): elastic "
              f"{num(_get(tc, 'fixed', 'cpu_s'))} s, largest alone {num(_get(tc, 'alone', 'cpu_s'))} s (wall "
              f"{num(_get(tc, 'fixed', 'train_s'))} s and {num(_get(tc, 'alone', 'train_s'))} s). A pair "
              f"outside the trained list: exit {_get(res, 'refusal', 'exit_code')}, "
              f"`{_get(res, 'refusal', 'message')}`.", ""]
    goals = res.get("goals") or {}
    rows = [[k, num(g.get("measured")), f"{g.get('op')} {num(g.get('target'))}", g.get("unit", ""),
             "yes" if g.get("met") else "**no**"] for k, g in goals.items()]
    lines += ["Goals:", ""] + table(["goal", "measured", "target", "unit", "met"], rows)
    lines += ["", f"Rerun: `.venv/bin/python -m benchmarks.elastic_operators` then `{COMMAND}`.", ""]
    return lines
