"""``report.md``: what was run, the data, the bench table, the figures, and verdicts computed from numbers.

Every sentence of the verdict is derived from ``bench.json`` (no number is typed by hand): which run is
smallest, which is most accurate, what compression bought, whether each surrogate beats the solver, and
whether a coarse solve beats it on both error and time (``eval.baselines.verdict``, computed by the bench).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wavesurrogate.eval.table import format_table
from wavesurrogate.io import atomic_write_text

__all__ = ["verdicts", "render_report", "write_report"]


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.2f} %"


def _times(x: float) -> str:
    return f"{x:.3g}×"


def _valid(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def verdicts(bench: Mapping[str, Any]) -> list[str]:
    """Plain sentences comparing the runs of ``bench`` (the bench.json mapping), each from its numbers."""
    runs = list(bench["runs"])
    out: list[str] = []
    if not runs:
        return ["No run was benchmarked."]
    small = min(runs, key=lambda r: r["params"])
    big = max(runs, key=lambda r: r["params"])
    scored = [r for r in runs if _valid(r.get("test_rel_l2"))]
    if len(runs) > 1 and small is not big:
        out.append(f"Smallest model: **{small['run']}** with {small['params']:,} trainable parameters, "
                   f"{big['params'] / small['params']:.3g}× fewer than **{big['run']}** "
                   f"({big['params']:,}); weights {small['weight_bytes'] / 1024:.1f} KiB against "
                   f"{big['weight_bytes'] / 1024:.1f} KiB.")
    if scored:
        best = min(scored, key=lambda r: r["test_rel_l2"])
        worst = max(scored, key=lambda r: r["test_rel_l2"])
        if best is worst:
            out.append(f"Test relative L2 error of **{best['run']}** (one step): "
                       f"{_pct(best['test_rel_l2'])}.")
        else:
            out.append(f"Most accurate on the test cases (one step): **{best['run']}** at "
                       f"{_pct(best['test_rel_l2'])}; the least accurate, **{worst['run']}**, has "
                       f"{_pct(worst['test_rel_l2'])} "
                       f"({worst['test_rel_l2'] / best['test_rel_l2']:.3g}× the error).")
        both = _valid(small.get("test_rel_l2")) and _valid(big.get("test_rel_l2"))
        if len(runs) > 1 and small is not big and both:
            ratio = small["test_rel_l2"] / big["test_rel_l2"]
            if ratio <= 1.0:
                out.append(f"Compression cost no accuracy here: **{small['run']}** has "
                           f"{big['params'] / small['params']:.3g}× fewer parameters and "
                           f"{ratio:.3g}× the error of **{big['run']}**.")
            else:
                out.append(f"Compression has a price here: **{small['run']}** has "
                           f"{big['params'] / small['params']:.3g}× fewer parameters but "
                           f"{ratio:.3g}× the one-step error of **{big['run']}**.")
    for r in runs:
        out.extend(_solver_verdict(r))
    out.extend(c["verdict"] for c in bench.get("coarse") or [] if c.get("verdict"))
    for r in runs:
        h = r.get("rollout_rel_l2") or {}
        e10, e40 = h.get("10"), h.get("40")
        if _valid(e10) and _valid(e40):
            out.append(f"**{r['run']}** rollout: relative L2 error {_pct(e10)} after 10 frames, {_pct(e40)} "
                       f"after 40 frames{' (error above 100 %: not usable there)' if e40 > 1 else ''}.")
    m = bench.get("machine") or {}
    load, cores = m.get("load_1min"), m.get("cores")
    if _valid(load) and _valid(cores) and load > cores + 0.5:
        out.append(f"Caution: the machine was busy while timing (1-minute load {load:.1f} on {cores} cores), "
                   f"so latencies and speed-ups are noisier and likely pessimistic for both sides.")
    return out


def _solver_verdict(r: Mapping[str, Any]) -> list[str]:
    s1, s32, sr = r.get("speedup_b1"), r.get("speedup_b32"), r.get("speedup_rollout")
    name = f"**{r['run']}**"
    if not _valid(s1):
        return [f"{name}: no solver comparison (no timing)."]
    lines = []
    if s1 >= 1:
        lines.append(f"{name} beats the solver on a single prediction: {_times(s1)} faster at batch 1")
    else:
        lines.append(f"{name} is **slower than the solver** on a single prediction "
                     f"(speed-up {_times(s1)} at batch 1)")
    if _valid(s32):
        verb = "faster" if s32 >= 1 else "slower than the solver"
        lines[-1] += f"; in batches of 32, {_times(s32)} per sample ({verb})"
    if _valid(sr):
        h = r.get("rollout_horizon", 40)
        lines[-1] += (f"; over a {h}-frame rollout, {_times(sr)}"
                      f"{'' if sr >= 1 else ' (slower than the solver)'}")
    lines[-1] += "."
    be = r.get("break_even_predictions")
    if _valid(be):
        lines.append(f"{name}: its training time is paid back after {be:,.0f} single predictions "
                     f"(training seconds / seconds saved per prediction at batch 1).")
    return lines


def render_report(bench: Mapping[str, Any], figures: Sequence[tuple[str, str]] = (),
                  title: str = "wavesurrogate report", intro: Sequence[str] = (),
                  data_summary: str | None = None, timings: Mapping[str, float] | None = None,
                  sections: Sequence[str] = ()) -> str:
    """The report as markdown: intro, data summary, bench table, verdicts, figures (caption, rel. path),
    then ``sections`` (markdown lines: further measured sections)."""
    lines = [f"# {title}", ""]
    lines += [*intro, ""] if intro else []
    if data_summary:
        lines += ["## Data", "", "```", data_summary.rstrip(), "```", ""]
    lines += ["## Results", "", format_table(bench), ""]
    lines += ["## Verdict", ""] + [f"- {v}" for v in verdicts(bench)] + [""]
    if figures:
        lines += ["## Figures", ""]
        for caption, rel in figures:
            lines += [f"**{caption}**", "", f"![{caption}]({rel})", ""]
    lines += [*sections, ""] if sections else []
    if timings:
        lines += ["## Wall time of each stage", "", "| stage | seconds |", "| --- | ---: |"]
        lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()] + [""]
    m = bench.get("machine", {})
    if m:
        lines += ["## Machine", "", ", ".join(f"{k}: {v}" for k, v in m.items()), ""]
    return "\n".join(lines)


def write_report(path: str | Path, bench: Mapping[str, Any], **kwargs: Any) -> Path:
    """Render the report (see :func:`render_report`) and write it to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_report(bench, **kwargs))
    return path
