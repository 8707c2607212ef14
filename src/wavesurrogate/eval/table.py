"""The bench table: one markdown row of cells per bench record, with the definitions under it."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["TABLE_COLUMNS", "num", "speedup_cell", "table_row", "markdown", "format_table"]


def _mib(b: float | None) -> str:
    return "n/a" if b is None else f"{b / 2**20:.1f}"


def num(x: Any, fmt: str = ".3g") -> str:
    """A number for a table cell; n/a for None, a non-number or a non-finite value."""
    if x is None or isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return "n/a"
    return format(x, fmt)


def speedup_cell(s: float | None) -> str:
    """A speed-up for the table: ``12.3×`` or ``0.45× (slower than solver)``."""
    if s is None or not math.isfinite(s):
        return "n/a"
    return f"{s:.3g}×" if s >= 1 else f"{s:.3g}× (slower than solver)"


TABLE_COLUMNS = (
    "run", "params", "weights (KiB)", "peak mem, inference b1 (MiB)", "peak mem, train step (MiB)",
    "train s/epoch", "ms/sample b1", "ms/sample b32", "test rel L2 (%)", "rollout rel L2 @10 (%)",
    "rollout rel L2 @40 (%)", "solver ms (same step)", "speed-up b1", "speed-up b32", "speed-up rollout",
)


def table_row(r: dict[str, Any]) -> list[str]:
    """The table cells of one bench record."""
    roll = r.get("rollout_rel_l2") or {}

    def pct(x: float | None) -> str:
        return num(None if x is None else 100 * x, ".2f")

    return [
        str(r["run"]), f"{r['params']:,}", f"{r['weight_bytes'] / 1024:.1f}", _mib(r.get("peak_infer_bytes")),
        _mib(r.get("peak_train_bytes")), num(r.get("train_s_per_epoch"), ".2f"),
        num(r["latency_b1"]["per_sample_ms"], ".3f"), num(r["latency_b32"]["per_sample_ms"], ".3f"),
        pct(r.get("test_rel_l2")), pct(roll.get("10")), pct(roll.get("40")),
        num(None if r.get("solver_step") is None else 1e3 * r["solver_step"]["seconds"], ".2f"),
        speedup_cell(r.get("speedup_b1")), speedup_cell(r.get("speedup_b32")),
        speedup_cell(r.get("speedup_rollout")),
    ]


def markdown(head: list[str] | tuple[str, ...], rows: list[list[str]]) -> list[str]:
    """Markdown table lines (first column left-aligned, the others right-aligned)."""
    return ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(head) - 1)) + " |",
            *["| " + " | ".join(r) + " |" for r in rows]]


def format_table(bench: dict[str, Any]) -> str:
    """The markdown table of a bench result (bench.json mapping), with the definitions under it."""
    notes = [f"- {k}: {v}" for k, v in bench.get("definitions", {}).items()]
    return "\n".join([*markdown(TABLE_COLUMNS, [table_row(r) for r in bench["runs"]]), "", *notes])

