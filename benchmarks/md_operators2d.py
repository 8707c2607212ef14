"""The operators2d.json section of docs/results.md (benchmarks/operators2d.py, issue 12).

Source → field operators in 2-D (free field and room) against the fine FD solve and coarser FD solves of the
same test sources: is a surrogate worth it? Every number comes from the JSON; a missing key reads "n/a".
"""

from __future__ import annotations

from typing import Any

from benchmarks.md_format import COMMAND, get, pct, speed
from wavesurrogate.eval.baselines import beating_rows, coarsest_no_worse
from wavesurrogate.eval.table import markdown as table
from wavesurrogate.eval.table import num

SET_LABELS = {"free": "Free field", "room": "Room"}
OPS = {"<=": "≤", ">=": "≥"}
RECEIVER_METRICS = (("peak_normalised_rmse", "peak-normalised RMSE"), ("relative_rmse", "relative RMSE"),
                    ("mean_relative_error_above_60db", "mean relative error above −60 dB"))


def _sets(res: dict[str, Any]) -> list[str]:
    """The sets named anywhere in the file, free and room first."""
    names = {*(res.get("data") or {}), *(res.get("solver") or {}), *(res.get("verdicts") or {}),
             *(r.get("set") for r in _runs(res) if r.get("set"))}
    return sorted(names, key=lambda s: (list(SET_LABELS).index(s) if s in SET_LABELS else len(SET_LABELS), s))


def _runs(res: dict[str, Any], **match: Any) -> list[dict[str, Any]]:
    runs = [r for r in res.get("runs") or [] if isinstance(r, dict)]
    return [r for r in runs if all(r.get(k) == v for k, v in match.items())]


def _pct_cell(x: Any) -> str:
    p = pct(x)
    return p if p == "n/a" else f"{p} %"


def _ms(seconds: Any) -> str:
    return num(None if not isinstance(seconds, int | float) else 1e3 * seconds)


# ------------------------------------------------------------------------------------------------- goals


def _goal_value(v: Any, unit: Any) -> str:
    return _pct_cell(v) if unit == "fraction" else num(v)


def _extra(key: str, v: Any) -> str:
    """A goal's side number: errors and POD floors (relative L2) as percentages."""
    if isinstance(v, float):
        return _pct_cell(v) if "error" in key or "floor" in key else num(v)
    return str(v)


def goals_table(goals: dict[str, Any]) -> list[str]:
    """One row per goal: measured against target, ✓ or ✗."""
    rows = []
    for name, g in goals.items():
        if not isinstance(g, dict):
            continue
        unit, measured = g.get("unit"), g.get("measured")
        met = "✓" if g.get("met") is True else ("✗" if measured is not None else "✗ (not measured)")
        extra = [f"{k} {_extra(k, v)}" for k, v in g.items()
                 if k not in ("measured", "target", "op", "met", "unit", "run") and v is not None]
        target = f"{OPS.get(g.get('op'), g.get('op') or '')} {_goal_value(g.get('target'), unit)}".strip()
        rows.append([name, _goal_value(measured, unit), target, met, str(unit or "n/a"),
                     str(g.get("run") or "n/a"), "; ".join(extra) or "–"])
    if not rows:
        return []
    return ["Goals of issue 12 (each computed by the benchmark from the runs below):", "",
            *table(["goal", "measured", "target", "met", "unit", "run", "also"], rows), ""]


# --------------------------------------------------------------------------------------------------- sets


def _coarse_cell(b: Any) -> str:
    c = get(b, "coarsest_no_worse")
    if not isinstance(c, dict):
        return "none" if isinstance(b, dict) and "coarsest_no_worse" in b else "n/a"
    return f"{num(c.get('factor'), 'g')}× ({_pct_cell(c.get('error'))}, {_ms(c.get('seconds'))} ms)"


def _beaten_cell(r: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    flag = get(r, "baselines", "beaten_by_solver")
    if flag is None:
        return "n/a"
    if not flag:
        return "no"
    ms = get(r, "latency", "arbitrary_ms")
    by = beating_rows(r.get("error"), ms / 1e3, rows) if isinstance(ms, int | float) else []
    return f"**yes** ({by[0].get('label')})" if by else "**yes**"


def model_row(r: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """The cells of one field run in its set's table."""
    b = r.get("baselines")
    steps = r.get("steps")
    return [str(r.get("run", "n/a")), str(r.get("model", "n/a")),
            f"{r['params']:,}" if isinstance(r.get("params"), int) else "n/a",
            str(steps) if isinstance(steps, int) else "n/a", num(r.get("train_seconds"), ".3g"),
            pct(r.get("val_gain_last_quarter")), pct(get(r, "test", "rel_l2_pooled")),
            pct(get(r, "test", "rel_l2")), pct(get(r, "last_frame", "rel_l2_pooled")),
            num(get(r, "latency", "arbitrary_ms")), num(get(r, "latency", "cached_ms")),
            speed(get(b, "speedup_vs_fine")), speed(get(b, "speedup_cached_vs_fine")), _coarse_cell(b),
            _beaten_cell(r, rows)]


def table_run(r: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A run's (r, t) table as a row of its own: the same training, the table's error and latency."""
    t = r["table"]
    c = coarsest_no_worse(rows, t.get("error")) if isinstance(t.get("error"), int | float) else None
    return {"run": f"{r.get('run')} → (r, t) table", "model": f"RadialTable {t.get('n_r')}×{t.get('n_t')}",
            "params": r.get("params"), "steps": r.get("steps"), "train_seconds": r.get("train_seconds"),
            "test": {"rel_l2_pooled": t.get("error")}, "error": t.get("error"),
            "latency": {"arbitrary_ms": t.get("arbitrary_ms")},
            "baselines": {"speedup_vs_fine": t.get("speedup_vs_fine"),
                          "beaten_by_solver": t.get("beaten_by_solver"),
                          "coarsest_no_worse": None if c is None else dict(c)}}


def solver_row(r: dict[str, Any]) -> list[str]:
    """The cells of one FD solve."""
    g = r.get("geometry") or {}
    grid = g.get("grid")
    return [str(r.get("label", "n/a")), num(r.get("factor"), "g"),
            f"{grid[0]}×{grid[1]}" if isinstance(grid, list) and len(grid) == 2 else "n/a",
            _ms(g.get("dt_s")), str(g.get("steps_per_frame", "n/a")), str(r.get("n_steps", "n/a")),
            pct(r.get("error")), _ms(r.get("seconds"))]


def _data_line(d: Any) -> str:
    if not isinstance(d, dict):
        return "Data: n/a."
    grid, dx = d.get("grid") or ["?", "?"], d.get("spacing_m") or ["?"]
    return (f"Data `{d.get('file', 'n/a')}`: {d.get('train_pool_cases', 'n/a')} training sources, "
            f"{d.get('test_cases', 'n/a')} held-out test sources; {d.get('frames', 'n/a')} frames of "
            f"{grid[0]}×{grid[-1]} at {num(dx[0], 'g')} m, one every {_ms(d.get('frame_dt_s'))} ms; "
            f"{d.get('medium', 'n/a')} medium, {d.get('boundary', 'n/a')} boundary.")


def set_section(res: dict[str, Any], s: str) -> list[str]:
    """Models, then solver rows, then the verdict of set ``s``."""
    rows = [r for r in get(res, "solver", s) or [] if isinstance(r, dict)]
    runs = _runs(res, set=s, task="source_to_field")
    n = next((get(r, "latency", "query_points") for r in runs if get(r, "latency", "query_points")), 4096)
    fine = next((r for r in rows if r.get("factor") == 1.0), None)
    out = [f"### {SET_LABELS.get(s, s)}", "", _data_line(get(res, "data", s)), ""]
    if runs:
        out += ["Held-out relative L2 over the whole space-time field of the test sources (pooled: ‖pred − "
                "true‖ / ‖true‖ over all of them; per case: the mean of each source's), and at the last "
                "frame. "
                f"Latency: one new source answered at {n:,} arbitrary points, and on the cached path (basis "
                "precomputed for a fixed grid) where the model has one. Speed-ups are over the fine FD solve "
                f"({_ms(get(fine, 'seconds'))} ms per source). Cheapest solve no worse: the fastest coarse "
                "solve whose error is at most the model's; beaten: some solve has both a smaller error and a "
                "shorter time than the model at arbitrary points.", ""]
        out += table(["run", "model", "params", "train steps", "train s", "val gain last ¼ %",
                      "held-out rel L2 % (pooled)", "per-case mean %", "last frame % (pooled)",
                      f"ms, {n:,} arbitrary points", "ms, cached", "speed-up over fine",
                      "speed-up cached", "cheapest solve no worse (error, ms)", "beaten by a solve"],
                     [model_row(x, rows) for r in runs
                      for x in ([r, table_run(r, rows)] if isinstance(r.get("table"), dict) else [r])]) + [""]
    if rows:
        out += ["FD solves of the same test sources (devito; error against the stored fine fields):", ""]
        out += table(["solve", "factor", "grid", "dt ms", "steps per frame", "steps", "rel L2 %",
                      "ms per source"],
                     [solver_row(r) for r in rows]) + [""]
    if not _runs(res, set=s) and not rows:
        out += ["No run or solve of this set in this file.", ""]
    verdict = get(res, "verdicts", s)
    out += [f"Verdict: {verdict}" if verdict else "Verdict: n/a", ""]
    return out


# ------------------------------------------------------------------------------------------ POD, receivers


def pod_section(res: dict[str, Any]) -> list[str]:
    """Per set: the POD floor (p × training sources), then each DeepONet beside the floor at its p."""
    out: list[str] = []
    for s, f in (res.get("pod_floor") or {}).items():
        if not isinstance(f, dict) or not f.get("p"):
            continue
        ns, ps = f.get("n_sources") or [], f.get("p") or []
        for key, what in (("floor", "uncentred (a DeepONet's Σ b_k t_k)"),
                          ("floor_centred", "centred (mean + p modes, as POD-DeepONet)")):
            floor = f.get(key)
            if not isinstance(floor, dict):
                continue
            out += [f"POD floor, {SET_LABELS.get(s, s).lower()}, {what}: relative L2 (%) of the best "
                    "p-mode projection of the held-out fields onto the POD basis of the first n training "
                    "sources; no linear-basis model of that kind with p modes can do better (the DeepONet "
                    "table below uses the centred floor for POD-DeepONet).", ""]
            out += table(["p \\ training sources", *(str(n) for n in ns)],
                         [[str(p), *(pct(get(floor, str(n), str(p))) for n in ns)] for p in ps]) + [""]
        d = [r for r in _runs(res, set=s) if "pod_floor_same_p" in r or r.get("model") in ("deeponet",
                                                                                             "pod_deeponet")]
        if d:
            def ratio(r: dict[str, Any]) -> str:
                e, fl = r.get("error"), r.get("pod_floor_same_p")
                ok = isinstance(e, float) and isinstance(fl, float) and fl > 0
                return num(e / fl) + "×" if ok else "n/a"
            out += table(["DeepONet run", "p", "held-out rel L2 %", "POD floor at p, all sources %", "ratio"],
                         [[r["run"], str(get(r, "kwargs", "n_basis") or "n/a"), pct(r.get("error")),
                           pct(r.get("pod_floor_same_p")), ratio(r)] for r in d]) + [""]
    return out


def receivers_section(res: dict[str, Any]) -> list[str]:
    """Source → receiver runs: the signal metrics on held-out and trained receivers."""
    runs = _runs(res, task="source_to_receiver")
    if not runs:
        return []
    rows = []
    for r in runs:
        for part, name in (("held_out", "held-out"), ("trained", "trained")):
            m = get(r, "receivers", part) or {}
            rows.append([r.get("run", "n/a"), name, str(len(m.get("receivers") or []) or "n/a"),
                         str(m.get("n_pairs", "n/a")), *(num(m.get(k)) for k, _ in RECEIVER_METRICS),
                         pct(m.get("rel_l2"))])
    out = ["### Receivers", "", "Traces at fixed receivers from the source position; metrics over the "
           "(source, receiver) pairs of the held-out test sources, at receivers never trained on and at the "
           "trained ones (fractions, not %).", ""]
    out += table(["run", "receivers", "count", "pairs", *(h for _, h in RECEIVER_METRICS), "rel L2 %"], rows)
    out += [""] + [f"- {r.get('run')}: {num(get(r, 'latency', 'arbitrary_ms'))} ms, speed-up over the fine "
                   f"solve {speed(get(r, 'baselines', 'speedup_vs_fine'))}." for r in runs]
    return out + [""]


# --------------------------------------------------------------------------------------------------- main


def _measured(res: dict[str, Any]) -> str:
    m, secs = res.get("machine") or {}, res.get("seconds") or {}
    c, paper = get(res, "training", "common") or {}, get(res, "training", "paper") or {}
    tot, tr = secs.get("total"), secs.get("training")
    return (f"Measured {res.get('created_utc', 'n/a')} on {m.get('cpu', 'n/a')} ({m.get('cores', 'n/a')} "
            f"cores, torch {m.get('torch', 'n/a')}, load {num(m.get('load_1min'), '.2f')} at the end), "
            f"{_min(tot)} min in all ({_min(tr)} min training). Training: "
            f"{get(c, 'optim', 'name') or 'n/a'} lr {num(get(c, 'optim', 'lr'), 'g')}, "
            f"{get(c, 'schedule', 'name') or 'n/a'} schedule, batch {c.get('batch_size', 'n/a')}, seed "
            f"{c.get('seed', 'n/a')}, {c.get('num_threads', 'n/a')} thread per run"
            + (f"; the paper's DeepONet settings {_settings(paper)}" if paper else "")
            + ". Latencies are medians at one thread on a shared machine.")


def _min(seconds: Any) -> str:
    return num(None if not isinstance(seconds, int | float) else seconds / 60, ".2g")


def _settings(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} " + (" ".join(f"{v2}" for v2 in v.values()) if isinstance(v, dict) else f"{v}")
                     for k, v in d.items())


def operators2d_section(res: dict[str, Any]) -> list[str]:
    """The whole operators2d section."""
    out = ["## Source → field operators in 2-D: free field and room (benchmarks/operators2d.py)", ""]
    if res.get("smoke"):
        out += ["**This file is from a `--smoke` run: not a result.**", ""]
    out += [_measured(res), ""] + goals_table(res.get("goals") or {})
    for s in _sets(res):
        out += set_section(res, s)
    out += pod_section(res) + receivers_section(res)
    cmd = str(res.get("command") or "python -m benchmarks.operators2d").strip()
    return out + [f"Reproduce: `.venv/bin/{cmd}` (trains or reuses the runs, measures, writes "
                  f"its JSON to `benchmarks/out/`), then `{COMMAND}`.", ""]
