"""The rollouts.json section of docs/results.md (benchmarks/rollouts.py, issue 13)."""

from __future__ import annotations

from typing import Any

from benchmarks.md_mfal import _goal_row, pct_
from wavesurrogate.eval.table import markdown as table
from wavesurrogate.eval.table import num


def rollouts_section(res: dict[str, Any]) -> list[str]:
    """Per model: parameters, one-step, 40- and 200-frame rollout errors from frame 0, energy growth,
    spectral radius, training time; the coarse-solver rows and verdict of the same run; the goals."""
    recipe, mach = res.get("recipe", {}), res.get("machine", {})
    lines = ["## Long forecast rollouts on forecast64 (benchmarks/rollouts.py, issue 13)", "",
             f"`python -m benchmarks.rollouts --epochs {res.get('epochs')}`"
             f"{' (smoke)' if res.get('smoke') else ''}: the recipe {recipe}; errors are pooled relative L2 "
             "of the rollout from frame 0 (the first n_in true frames, the forcing known) on forecast64's "
             "100 test cases (40 frames) and on 16 cases of a 205-frame campaign of the same physics "
             "(200 frames). "
             f"Wall time {num(res.get('wall_s', 0) / 60, '.3g')} min on {mach.get('cores')} cores.", ""]
    rows = []
    for name, r in res.get("runs", {}).items():
        rows.append([name, f"{r.get('params'):,}", num(r.get("lr"), "g"), pct_(r.get("one_step")),
                     pct_(r.get("rollout_short")), pct_(r.get("rollout_short_all")),
                     pct_(r.get("rollout_long")),
                     num(r.get("energy_growth"), ".3g"), num(r.get("spectral_radius"), ".4g"),
                     num(r.get("train_s"), ".4g")])
    lines += table(["model", "params", "lr", "one-step", "40-frame (at h)", "40-frame (all h)",
                    "200-frame (at h)", "energy growth", "spectral radius", "train s"], rows) + [""]
    coarse = res.get("coarse", {})
    if coarse.get("rows"):
        lines += ["Coarse solves of the same test cases, timed in the same run:", ""]
        lines += table(["solver", "factor", "error", "seconds"],
                       [[r["label"], num(r["factor"], "g"), pct_(r["error"]), num(r["seconds"], ".3g")]
                        for r in coarse["rows"]]) + [""]
        if coarse.get("verdict"):
            lines += [f"Verdict: {coarse['verdict']}", ""]
    lines += ["Goals:", ""] + table(["goal", "measured", "target", "unit", "met"],
                                    [_goal_row(k, g) for k, g in res.get("goals", {}).items()]) + [""]
    return lines
