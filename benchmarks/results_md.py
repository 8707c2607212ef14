"""Regenerate docs/results.md from the benchmark JSON files in benchmarks/out/ (never edit it by hand).

    .venv/bin/python -m benchmarks.results_md [--out docs/results.md] [--json-dir benchmarks/out]

``operators.json`` (benchmarks/operators.py), ``operators2d.json`` (benchmarks/md_operators2d.py),
``compression.json`` (benchmarks/md_compression.py) and the sections of the ``md_*`` modules registered in
``dedicated`` below (rooms3d, deploy, elastic, elastic_operators, layers, ...) get dedicated tables; any
other ``*.json`` there (solver, submodel, ...) is summarised generically (its scalar fields and tables of its
record lists); ``*_smoke.json`` files are skipped. Winners are picked from the numbers, whatever they are;
nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from benchmarks.md_compression import compression_section
from benchmarks.md_deploy import deploy_section
from benchmarks.md_elastic import elastic_operators_section, elastic_section
from benchmarks.md_format import COMMAND, pct, speed
from benchmarks.md_format import get as _get
from benchmarks.md_layers import layers_section
from benchmarks.md_mfal import mfal_section
from benchmarks.md_normsearch import normsearch_section
from benchmarks.md_operators2d import operators2d_section
from benchmarks.md_rollouts import rollouts_section
from benchmarks.md_rooms3d import rooms3d_section
from wavesurrogate.eval.table import markdown as table
from wavesurrogate.eval.table import num
from wavesurrogate.safeload import load_json

ROOT = Path(__file__).resolve().parents[1]
BUDGET_TAGS = ("10k", "50k", "250k")
FORECAST_LABELS = {"cnn_dense": "dense CNN", "cnn_cp": "CP CNN", "fno": "FNO", "tfno": "TFNO"}
FIELD_LABELS = {"deeponet": "DeepONet", "decoder_cp": "CP CNN decoder"}


# ----------------------------------------------------------------------------------------------- labels


def split_label(run: str) -> tuple[str, str]:
    """``fno_50k`` → (``fno``, ``50k``)."""
    family, _, tag = run.rpartition("_")
    return family, tag


def ordered(records: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Records in the order of ``labels`` (then any others by name)."""
    order = list(labels)
    return sorted(records, key=lambda r: (order.index(split_label(r["run"])[0])
                                          if split_label(r["run"])[0] in order else len(order), r["run"]))


def best(records: list[dict[str, Any]], key: Any) -> dict[str, Any] | None:
    """The record with the smallest finite ``key(record)``, or None."""
    scored = [(key(r), r) for r in records]
    scored = [(v, r) for v, r in scored if isinstance(v, int | float) and math.isfinite(v)]
    return min(scored, key=lambda vr: vr[0])[1] if scored else None


# --------------------------------------------------------------------------------------------- operators


def _setup(res: dict[str, Any]) -> list[str]:
    d, t, m, mach = res["data"], res["training"], res["measure"], res["machine"]
    secs, reused = res["seconds"], t.get("reused_runs", [])
    trained = f"{secs['training'] / 60:.0f} min training, {t['jobs']} run(s) at once"
    if reused:
        trained += f"; {len(reused)} run(s) were trained by an earlier invocation and reused"
    lines = [f"Generated from `benchmarks/out/operators.json` ({res['created_utc']}, command "
             f"`.venv/bin/python {res['command'].strip()}`), total {secs['total'] / 60:.0f} min ({trained}). "
             "The train s columns are each run's own epoch times (from its metrics.jsonl).", ""]
    for task, name in (("forecast", "Forecast"), ("source_to_field", "Source-to-field")):
        x, s = d[task], t["tasks"][task]
        lines.append(f"- {name} data: `{x['file']}` ({x['cases']} cases: {x['train_pool_cases']} training "
                     f"pool, {x['test_cases']} test), {x['frames']} frames of {x['grid'][0]}×{x['grid'][1]}, "
                     f"one every {x['frame_dt_s'] * 1e3:g} ms. Training: {s['epochs']} epochs, batch "
                     f"{s['batch_size']}, data options {json.dumps(s['data'])}.")
    c, cpu, cores = t["common"], mach.get("cpu", mach.get("processor")), mach.get("cores", mach.get("cpus"))
    lines += [f"- Every run: {c['optim']['name']} lr {c['optim']['lr']:g}, {c['schedule']['name']} schedule, "
              f"seed {c['seed']}, {c['num_threads']} thread; CP CNNs use rank = {t['cp_rank_ratio']:g} × "
              "width.",
              f"- Measured one model at a time, {m['threads']} thread, on {cpu} "
              f"({cores} cores, shared): load average {mach['load_avg_start'][0]:.1f} at the start, "
              f"{mach['load_avg_end'][0]:.1f} at the end. Latency = median of {m['latency_repeats']} calls "
              "(batch 32: a quarter of that) after warm-up, `torch.inference_mode`.", ""]
    return lines


def _forecast(res: dict[str, Any]) -> list[str]:
    recs = [r for r in res["forecast"] if not r.get("extra")]
    sol = res["solver"]["forecast"]
    m = res["measure"]
    one_ms, roll_ms = 1e3 * sol["one_frame"]["seconds"], 1e3 * sol["rollout"]["seconds"]
    n_roll = sol["rollout"]["n_steps"] // max(1, sol["one_frame"]["n_steps"])
    out = ["## Forecast task: dense CNN, CP CNN, FNO, TFNO at matched budgets", "",
           f"Next frame from the last {recs[0]['kwargs'].get('n_in', 4)} frames and the velocity map. "
           f"One-step error over the test cases' windows (one every {m['test_window_stride']} frames, true "
           "inputs); "
           f"rollout error of the autoregressive forecast started at frame {m['rollout_start_frame']} (after "
           "the source has stopped) at horizons 10 and 40. Relative L2 is pooled over all test samples "
           "(‖pred − true‖ / ‖true‖); RMSE in field units. Solver (FD, devito, 1 thread, same case set-up): "
           f"{one_ms:.1f} ms for one frame ({sol['one_frame']['n_steps']} steps), {roll_ms:.1f} ms for "
           f"{n_roll} frames ({sol['rollout']['n_steps']} steps).", ""]
    head = ["model", "params", "train steps", "train s", "val MSE (norm.)", "one-step rel L2 %",
            "one-step RMSE", "rollout rel L2 % @10", "@40", "ms b1", "ms/sample b32", "speed-up b1",
            "speed-up b32", f"speed-up {n_roll}-frame rollout"]
    rows, verdicts = [], []
    for tag in BUDGET_TAGS:
        group = ordered([r for r in recs if split_label(r["run"])[1] == tag], FORECAST_LABELS)
        rows += [_forecast_row(r) for r in group]
        if group:
            verdicts.append(_forecast_verdict(tag, group))
    out += table(head, rows) + [""] + verdicts + [""]
    return out


def _forecast_row(r: dict[str, Any]) -> list[str]:
    return [_name(r, FORECAST_LABELS), f"{r['params']:,}", str(r["steps"]), num(r["train_seconds"], ".0f"),
            num(r["best_val_loss"], ".3g"), pct(_get(r, "one_step", "rel_l2_pooled")),
            num(_get(r, "one_step", "rmse"), ".3g"), pct(_get(r, "rollout", "rel_l2", "10")),
            pct(_get(r, "rollout", "rel_l2", "40")), num(r["latency_b1"]["median_ms"], ".3g"),
            num(r["latency_b32"]["per_sample_ms"], ".3g"), speed(r["speedup_b1"]), speed(r["speedup_b32"]),
            speed(r["speedup_rollout"])]


def _name(r: dict[str, Any] | None, labels: dict[str, str]) -> str:
    if r is None:
        return "n/a"
    fam, tag = split_label(r["run"])
    if tag not in BUDGET_TAGS:
        return r["run"]
    return f"{labels.get(fam, fam)} {tag}"


def _forecast_verdict(tag: str, group: list[dict[str, Any]]) -> str:
    one = best(group, lambda r: _get(r, "one_step", "rel_l2_pooled"))
    r40 = best(group, lambda r: _get(r, "rollout", "rel_l2", "40"))
    fast = best(group, lambda r: r["latency_b1"]["median_ms"])
    fastest_speed = max((r["speedup_b1"] for r in group), default=float("nan"))
    e40 = _get(r40, "rollout", "rel_l2", "40")
    worse = ""
    if e40 is not None and e40 >= 1:
        worse = " — every model above 100 %, i.e. worse than predicting zero"
    return (f"- **{tag}**: lowest one-step error {_name(one, FORECAST_LABELS)} "
            f"({pct(_get(one, 'one_step', 'rel_l2_pooled'))} %); lowest error at rollout step 40 "
            f"{_name(r40, FORECAST_LABELS)} ({pct(e40)} %{worse}); fastest at "
            f"batch 1 {_name(fast, FORECAST_LABELS)} ({num(_get(fast, 'latency_b1', 'median_ms'))} ms, "
            f"speed-up over the solver {speed(fastest_speed)}).")


def _field(res: dict[str, Any]) -> list[str]:
    recs = [r for r in res["source_to_field"] if not r.get("extra")]
    extra = [r for r in res["source_to_field"] if r.get("extra")]
    sol = res["solver"]["source_to_field"]["to_last_frame"]
    target = res["measure"].get("target_ms", 5.0)
    out = ["## Source-to-field task: DeepONet and a CP-compressed CNN decoder at matched budgets", "",
           "Source position (x, y) → the whole wavefield u(x, y, t). Test error over the whole space-time "
           "field of each test case (relative L2 averaged over cases, and RMSE in field units) and at the "
           f"last frame only. Latency: one new source position answered at the {_n_query(recs):,} grid "
           "points of the last frame; for DeepONet with the trunk precomputed for that fixed query grid "
           "(only the branch and one matrix product run), and with all points new (trunk evaluated too). The "
           f"solver gives the same answer by an FD solve of that case up to the last frame: {sol['n_steps']} "
           f"steps, {1e3 * sol['seconds']:.1f} ms (devito, 1 thread, median of {sol['repeats']}).", ""]
    head = ["model", "params", "train steps", "train s", "test rel L2 % (field)", "test RMSE (field)",
            "rel L2 % last frame", "ms new source, fixed query", "ms new source, all points new",
            f"≤ {target:g} ms", "speed-up fixed query", "speed-up all new"]
    rows, verdicts = [], []
    for tag in BUDGET_TAGS:
        group = ordered([r for r in recs if split_label(r["run"])[1] == tag], FIELD_LABELS)
        rows += [_field_row(r) for r in group]
        if group:
            acc = best(group, lambda r: r["test_whole_field"]["rel_l2_mean"])
            fast = best(group, _best_ms)
            verdicts.append(f"- **{tag}**: lower test error {_name(acc, FIELD_LABELS)} "
                            f"({pct(_get(acc, 'test_whole_field', 'rel_l2_mean'))} %); faster new-source "
                            f"answer {_name(fast, FIELD_LABELS)} "
                            f"({num(_best_ms(fast) if fast else None)} ms).")
    rms = recs[0]["test_whole_field"]["field_rms"]
    note = f"- Field RMS of the test set: {rms:.3g} (an RMSE of that size means no skill)."
    out += table(head, rows) + ["", *verdicts, note, ""]
    if extra:
        out += ["Not matched (other schedule; see the config's header), so not in the verdicts above:", ""]
        out += table(["run", *head[1:]], [[r["run"], *_field_row(r)[1:]] for r in extra]) + [""]
    out += _deeponet_target(recs + extra, target)
    return out


def _n_query(recs: list[dict[str, Any]]) -> int:
    return int(recs[0]["new_source_latency"]["query_points"]) if recs else 0


def _best_ms(r: dict[str, Any]) -> float:
    lat = r["new_source_latency"]
    return lat.get("cached_trunk_ms", lat["all_new_points_ms"])


def _field_row(r: dict[str, Any]) -> list[str]:
    lat = r["new_source_latency"]
    cached = "cached_trunk_ms" in lat
    return [_name(r, FIELD_LABELS), f"{r['params']:,}", str(r["steps"]), num(r["train_seconds"], ".0f"),
            pct(r["test_whole_field"]["rel_l2_mean"]), num(r["test_whole_field"]["rmse"], ".3g"),
            pct(r["test_last_frame"]["rel_l2_mean"]), num(lat.get("cached_trunk_ms")) if cached else "—",
            num(lat["all_new_points_ms"], ".3g"), "yes" if lat["meets_5ms"] else "no",
            speed(lat["speedup_fixed_query"]) if cached else "—", speed(lat["speedup_all_new_points"])]


def _deeponet_target(recs: list[dict[str, Any]], target: float) -> list[str]:
    """The issue's DeepONet criteria, stated from the numbers."""
    tag_order = {t: i for i, t in enumerate(BUDGET_TAGS)}
    d = sorted((r for r in recs if r.get("model") == "deeponet"),
               key=lambda r: (bool(r.get("extra")), tag_order.get(split_label(r["run"])[1], 9), r["run"]))
    if not d:
        return []
    lines = [f"DeepONet against the {target:g} ms target (one new source position, 4,096 query points, CPU):"]
    for r in d:
        lat, err = r["new_source_latency"], r["test_whole_field"]
        ok_fixed = "meets" if lat["meets_5ms"] else "misses"
        ok_new = "meets" if lat["all_new_points_ms"] <= target else "misses"
        lines.append(f"- {_name(r, FIELD_LABELS)}: {num(lat.get('cached_trunk_ms'))} ms with the fixed "
                     f"query grid ({ok_fixed} the target; speed-up over the solver "
                     f"{speed(lat['speedup_fixed_query'])}), {num(lat['all_new_points_ms'])} ms when all "
                     f"{lat['query_points']:,} points are new ({ok_new} it; speed-up "
                     f"{speed(lat['speedup_all_new_points'])}); test relative L2 {pct(err['rel_l2_mean'])} "
                     f"%, RMSE {num(err['rmse'])} (field RMS {num(err['field_rms'])}).")
    return lines + [""]


def _solver_overhead(res: dict[str, Any]) -> str:
    """How much of the solver's one-frame time is per-call cost, from its one-frame and rollout timings."""
    s = res["solver"]["forecast"]
    one, many = s["one_frame"], s["rollout"]
    frames = many["n_steps"] // max(1, one["n_steps"])
    per = (many["seconds"] - one["seconds"]) / max(1, frames - 1)
    return (f"- The solver's one-frame time ({1e3 * one['seconds']:.1f} ms) is mostly a per-call cost: "
            f"{frames} frames take {1e3 * many['seconds']:.1f} ms, i.e. about {1e3 * per:.2f} ms per further "
            "frame. So a surrogate that beats it on one step can still lose over a rollout (last column).")


def _caveats(res: dict[str, Any]) -> list[str]:
    """What the numbers above do and do not say (facts computed from the JSON where they are numbers)."""
    fc = [r for r in res["forecast"] if not r.get("extra")]
    steps = sorted({r["steps"] for r in fc + res["source_to_field"] if not r.get("extra")})
    slower = [_name(r, FORECAST_LABELS) for r in fc if r["speedup_b1"] < 1]
    roll_slower = [r for r in fc if r["speedup_rollout"] < 1]
    counts = [f"{r['run']} ({r['model_json_n_params']:,} vs {r['params']:,})" for r in fc
              if r.get("model_json_n_params") not in (None, r["params"])]
    out = ["### What these numbers do not say", "",
           f"- Short schedules: every matched run took {' or '.join(str(s) for s in steps)} optimiser steps "
           "(same epochs, batch, optimiser and schedule within a task). All models are undertrained; longer "
           "training may reorder them. Equal steps are not equal time: see the train s column.",
           "- The CNNs predict the increment over the last input frame (`residual=True`, their default); "
           "the FNO/TFNO adapters have no residual option and predict the frame itself (with "
           "`domain_padding` 0.125, as the grid is not periodic). That may favour the CNNs early.",
           f"- Batch-1 forecasts slower than one solver frame: {', '.join(slower) if slower else 'none'}. "
           f"Rollouts slower than the solver over the same frames: {len(roll_slower)} of {len(fc)} models. "
           "The FD solver (devito, 4th order, the case's velocity, source and solver built beforehand, as "
           "`eval.bench.time_solver` times it) takes milliseconds on a 64×64 grid.",
           _solver_overhead(res),
           "- Latencies are medians at one thread on a shared machine (load recorded above); they move by "
           "tens of percent between runs."]
    if counts:
        out.append("- Parameter counts here count a complex weight as two real numbers; the run directories' "
                   f"`model.json` counts it once (train.loop uses `numel`): {', '.join(counts)}.")
    return out + [""]


def operators_section(res: dict[str, Any]) -> list[str]:
    """The peers comparison from operators.json."""
    lines = ["## Peers: CNNs against neural operators (benchmarks/operators.py)", ""]
    if res.get("smoke"):
        lines += ["**This file is from a `--smoke` run: not a result.**", ""]
    return lines + _setup(res) + _forecast(res) + _field(res) + _caveats(res) + [
        "Reproduce: `.venv/bin/python -m benchmarks.operators --jobs 2` (makes the data, trains the "
        f"{len(res['forecast']) + len(res['source_to_field'])} configs of `configs/peers/`, measures, writes "
        "`benchmarks/out/operators.json`), then "
        f"`{COMMAND}`. Run directories that already finished the same config are reused, so a rerun only "
        "re-measures.", ""]


# ----------------------------------------------------------------------------------------------- generic


def _scalars(d: dict[str, Any], prefix: str = "", depth: int = 2) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict) and depth > 1:
            out += _scalars(v, f"{prefix}{k}.", depth - 1)
        elif isinstance(v, str | int | float | bool) or v is None:
            out.append((f"{prefix}{k}", v))
    return out


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return num(v, ".4g")
    return str(v).replace("|", "\\|").replace("\n", " ")[:80]


def generic_section(name: str, res: Any) -> list[str]:
    """Scalars (two levels deep) and tables of record lists of any benchmark JSON."""
    title = res.get("benchmark", Path(name).stem) if isinstance(res, dict) else Path(name).stem
    lines = [f"## {title} (benchmarks/out/{name})", ""]
    if not isinstance(res, dict):
        return lines + [f"(unrecognised content: {type(res).__name__})", ""]
    goals = res.get("goals")
    if isinstance(goals, dict) and goals:
        rows = [[k, _cell(g.get("measured")), f"{g.get('op', '')} {_cell(g.get('target'))}",
                 "✓" if g.get("met") is True else "✗", _cell(g.get("unit"))]
                for k, g in goals.items() if isinstance(g, dict)]
        cols = ["goal", "measured", "target", "met", "unit"]
        lines += ["Goals (computed by the benchmark):", ""] + table(cols, rows) + [""]
    sc = [(k, v) for k, v in _scalars(res) if not k.startswith("goals.")][:40]
    if sc:
        lines += table(["field", "value"], [[k, _cell(v)] for k, v in sc]) + [""]
    for k, v in res.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            cols = [c for c, _ in _scalars(v[0], depth=1)][:10]
            lines += [f"`{k}`:", ""] + table(cols, [[_cell(x.get(c)) for c in cols] for x in v[:40]]) + [""]
    return lines


# -------------------------------------------------------------------------------------------------- main


def render(json_dir: Path) -> str:
    """The whole results.md text (``*_smoke.json`` files are harness checks, not results: left out)."""
    files = sorted(f for f in json_dir.glob("*.json") if not f.name.endswith("_smoke.json"))
    lines = ["# Results", "",
             f"Generated by `{COMMAND}` from the JSON files in `benchmarks/out/` ({len(files)} file(s)); "
             "do not edit by hand, rerun the command. Each section says which benchmark made its numbers and "
             "how to rerun it. Numbers come from a 2-core shared CPU machine: absolute times are "
             "pessimistic, the load average is recorded.", ""]
    if not files:
        lines += ["No benchmark output yet.", ""]
    dedicated = {"operators.json": operators_section, "operators2d.json": operators2d_section,
                 "rooms3d.json": rooms3d_section, "normsearch.json": normsearch_section,
                 "deploy.json": deploy_section, "elastic.json": elastic_section,
                 "elastic_operators.json": elastic_operators_section,
                 "mfal.json": mfal_section, "layers.json": layers_section, "rollouts.json": rollouts_section}
    for f in files:
        if f.name in dedicated:
            lines += dedicated[f.name](load_json(f))
    for f in files:
        res = load_json(f)
        if f.name == "compression.json" and isinstance(res, dict) and "goals" in res:
            lines += compression_section(res)
        elif f.name not in dedicated:
            lines += generic_section(f.name, res)
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    """Write docs/results.md (or --out) from benchmarks/out/*.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    ap.add_argument("--json-dir", default=str(ROOT / "benchmarks" / "out"))
    args = ap.parse_args()
    text = render(Path(args.json_dir))
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text.splitlines())} lines)")


if __name__ == "__main__":
    main()
