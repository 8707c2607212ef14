"""The mfal.json section of docs/results.md (benchmarks/mfal.py, issue 17)."""

from __future__ import annotations

from typing import Any

from wavesurrogate.eval.table import markdown as table
from wavesurrogate.eval.table import num


def _goal_row(name: str, g: dict[str, Any]) -> list[str]:
    m = g.get("measured")
    return [name, "not reached" if m is None else num(m, ".3g"), f"{g.get('op')} {num(g.get('target'), 'g')}",
            str(g.get("unit", "")), "yes" if g.get("met") else "**no**"]


def mfal_section(res: dict[str, Any]) -> list[str]:
    """Strategies' nRMSE against cumulative measured solver seconds, calibration, goals; the figure."""
    cfg, costs = res.get("config", {}), res.get("costs_s", {})
    mach = res.get("machine", {})
    ratio = res.get("cost_ratio_to_coarsest", {})
    lines = ["## Multi-fidelity active learning (benchmarks/mfal.py, issue 17)", "",
             f"`python -m benchmarks.mfal` ({'smoke' if res.get('smoke') else 'full'}; "
             f"{res.get('seeds')} seeds, "
             f"{cfg.get('rounds')} rounds, model steps {cfg.get('model', {}).get('steps_first')} + "
             f"{cfg.get('model', {}).get('steps_round')} per round). Parameters (source x, y, frequency, "
             "medium gradient) → the field at the chosen times on the top grid; fidelities are the same "
             f"problem at {', '.join(f'{k}²' for k in costs)} nodes. Measured seconds per solve: "
             + ", ".join(f"{k}²: {num(v * 1e3, '.3g')} ms ({num(ratio.get(k), '.3g')}×)"
                         for k, v in costs.items())
             + f"; per-round budget {num(res.get('budget_top_solves_per_round'), 'g')} top solves "
             f"({num(res.get('budget_s_per_round'), '.3g')} s). nRMSE: pooled relative L2 on "
             f"{cfg.get('design', {}).get('test_cases')} held-out top-fidelity cases. Wall time "
             f"{num(res.get('wall_s', 0) / 60, '.3g')} min with {res.get('jobs')} processes on "
             f"{mach.get('cores')} cores (load at the end {num(res.get('load_1min_end'), '.3g')}).", ""]
    rows = []
    for name, c in res.get("curves", {}).items():
        rows.append([name, num(c["cost_s"][0], ".3g"), pct_(c["nrmse_mean"][0]), num(c["cost_s"][-1], ".3g"),
                     f"{pct_(c['nrmse_mean'][-1])} ± {pct_(c['nrmse_std'][-1])}",
                     pct_(c["coverage90_mean"][-1]),
                     num(res.get("final_top_cases_mean", {}).get(name), ".3g")])
    lines += table(["strategy", "start s", "start nRMSE", "final s", "final nRMSE (mean ± std)",
                    "90 % coverage", "top cases"], rows) + [""]
    lines += ["Goals:", ""] + table(["goal", "measured", "target", "unit", "met"],
                                    [_goal_row(k, g) for k, g in res.get("goals", {}).items()]) + [""]
    figure = "mfal_smoke.png" if res.get("smoke") else "mfal.png"  # committed beside the JSON
    lines += [f"![nRMSE against cumulative solver seconds](../benchmarks/out/{figure})", ""]
    return lines


def pct_(v: Any) -> str:
    return "n/a" if not isinstance(v, int | float) else f"{100 * v:.1f} %"
