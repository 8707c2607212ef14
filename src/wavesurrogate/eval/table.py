"""The bench table: one markdown row of cells per bench record, with the definitions under it."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["TABLE_COLUMNS", "COARSE_COLUMNS", "num", "speedup_cell", "table_row", "coarse_rows", "markdown",
           "format_table"]


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


COARSE_COLUMNS = ("solver / run", "grid", "steps per frame", "rel L2 from first predicted frame (%)",
                  "ms per case", "beaten on error and time by")


def coarse_rows(comparison: dict[str, Any], runs: list[dict[str, Any]]) -> list[list[str]]:
    """Cells of the coarse-solver table of one data file: the solves, then the runs' rollouts, marked."""
    from wavesurrogate.eval.baselines import beating_rows, row_error

    rows = comparison.get("rows") or []
    out = []
    for r in rows:
        g = r["geometry"]
        out.append([f"FD {r['label']}", f"{g['grid'][0]}×{g['grid'][1]}", str(g["steps_per_frame"]),
                    num(None if r["error"] is None else 100 * r["error"], ".2f"),
                    num(None if r["seconds"] is None else 1e3 * r["seconds"], ".2f"), "–"])
    by_name = {r["run"]: r for r in runs}
    for m in comparison.get("models") or []:
        rec = by_name.get(m["name"], {})
        err, secs = m.get("error"), m.get("seconds")
        at = [{**r, "error": row_error(r, m["start"])} for r in rows]
        best = beating_rows(err, secs, at) if err is not None and secs is not None else []
        grid = rec.get("grid")
        mark = f"**{best[0]['label']} solve**" if best else ("none" if err is not None and secs else "n/a")
        out.append([f"{m['name']} (rollout)", f"{grid[0]}×{grid[1]}" if grid else "n/a", "–",
                    num(None if err is None else 100 * err, ".2f"),
                    num(None if secs is None else 1e3 * secs, ".2f"),
                    mark])
    return out


def format_table(bench: dict[str, Any]) -> str:
    """The markdown table of a bench result (bench.json mapping), with the definitions under it.

    With coarse-solver baselines (``bench["coarse"]``), a second table per data file follows the first (its
    verdict sentence is in ``report.verdicts`` and under the table in bench.md).
    """
    notes = [f"- {k}: {v}" for k, v in bench.get("definitions", {}).items()]
    lines = markdown(TABLE_COLUMNS, [table_row(r) for r in bench["runs"]])
    for comp in bench.get("coarse") or []:
        if comp.get("rows"):
            head = f"Coarse-solver baselines ({len(comp['cases'])} test cases, frames ≥ {comp['start']}):"
            lines += ["", head,
                      "", *markdown(COARSE_COLUMNS, coarse_rows(comp, bench["runs"]))]
    return "\n".join([*lines, "", *notes])

