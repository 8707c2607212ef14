"""The rooms3d.json section of docs/results.md (benchmarks/rooms3d.py, issue 15 B).

A 3-D furnished room: impulse responses of a surrogate at held-out sources and held-out receivers against
the FD solver, T30, query latency and speed-up, and the CP volumetric decoder beside its dense twin. Every
number comes from the JSON; a missing key reads "n/a".
"""

from __future__ import annotations

from typing import Any

from benchmarks.md_format import COMMAND, get, pct, speed
from wavesurrogate.eval.table import markdown as table
from wavesurrogate.eval.table import num

OPS = {"<=": "≤", ">=": "≥"}
LABELS = {"separable": "separable_operator", "decoder_dense": "field_decoder 3-D, dense",
          "decoder_cp": "field_decoder 3-D, CP (TensorizedConv3d)", "modal": "modal_operator",
          "modal_fast": "modal_operator, modes below 450 Hz"}


def _pct(x: Any) -> str:
    p = pct(x)
    return p if p == "n/a" else f"{p} %"


def _goal_cell(g: dict[str, Any]) -> str:
    v, unit = g.get("measured"), str(g.get("unit", ""))
    return _pct(v) if "T30" in unit else num(v)


def rooms3d_section(res: dict[str, Any]) -> list[str]:
    """The whole rooms3d section."""
    cfg = res.get("config") or {}
    out = ["## 3-D furnished room: impulse-response surrogate vs FD solver (benchmarks/rooms3d.py)", ""]
    if res.get("smoke"):
        out += ["**This file is from a `--smoke` run: not a result.**", ""]
    sol = res.get("solver") or {}
    out += [f"Campaign `{cfg.get('name')}` (FD grid {sol.get('grid')}, {len(cfg.get('obstacles') or [])} "
            f"rigid boxes, walls {get(cfg, 'boundary', 'kind')}), f_max = {num(res.get('f_max_hz'))} Hz, "
            f"{res.get('n_train')} training and {res.get('n_test')} test source positions, "
            f"{res.get('n_receivers')} receivers of which 8 held out; impulse responses of "
            f"{num(sol.get('ir_s'))} s ({sol.get('steps')} steps). Errors: test sources at held-out "
            f"receivers. Campaign {num(res.get('campaign_s'))} s of solves; benchmark wall time "
            f"{num(res.get('wall_s'))} s.", ""]
    rows = [[name, num(g.get("target")), OPS.get(g.get("op"), "?"),
             _goal_cell(g), g.get("unit", ""), "✓" if g.get("met") else "✗"]
            for name, g in (res.get("goals") or {}).items()]
    out += table(["goal", "target", "op", "measured", "unit", "met"], rows) + [""]
    rows = []
    for key, r in (res.get("runs") or {}).items():
        rows.append([LABELS.get(key, key), num(r.get("params")), num(r.get("epochs")), num(r.get("train_s")),
                     num(r.get("peak_normalised_rmse")), _pct(r.get("rel_l2")),
                     num(r.get("trained_receivers_peak_normalised_rmse")),
                     _pct(r.get("t30_median_rel_error")),
                     _pct(r.get("t30_within_10pct")), num(r.get("query_ms"))])
    out += table(["model", "params", "epochs", "train s", "RMSE/peak (held-out rec.)", "rel L2",
                  "RMSE/peak (trained rec.)", "median T30 error", "pairs within 10 %", "query ms (1 thread)"],
                 rows) + [""]
    out += modal_lines(res)
    cd = res.get("decoder_cp_vs_dense") or {}
    out += [f"Speed-up of one query (1 source, 8 receivers) over the FD solve of the same query "
            f"({num(sol.get('query_solve_s'))} s, warm, measured in the same run): "
            f"{speed(res.get('speedup'))}. "
            f"At 2 kHz the solve is {num(sol.get('solve_2k_s'))} s for the same duration "
            f"({num(sol.get('solve_2k_1s_s'))} s for 1 s), {sol.get('solve_2k_how', 'n/a')} "
            f"({num(get(sol, 'per_step_2k_s'))} s per step on a {sol.get('grid_2k')} grid): "
            f"{speed(res.get('speedup_2k'))} over the surrogate's query.", "",
            f"CP decoder vs its dense twin: parameters ×{num(cd.get('params_ratio'))}, error "
            f"×{num(cd.get('error_ratio'))}, query time ×{num(cd.get('query_ratio'))}.", ""]
    if res.get("figures"):
        out += ["Figures: " + ", ".join(f"`{f}`" for f in res["figures"]), ""]
    return out + ["Reproduce: `.venv/bin/python -m benchmarks.rooms3d` (makes or reuses the campaign and "
                  f"runs under `runs/rooms3d/`, writes `benchmarks/out/rooms3d.json`), then `{COMMAND}`.", ""]


def _modes_cost(md: dict[str, Any]) -> str:
    cpu, wall = md.get("cpu_s"), md.get("wall_s")
    cost = f"{num(cpu)} s CPU" if cpu is not None else f"{num(wall)} s wall"
    return cost + (", read from the run's cache" if md.get("cached") else "")


def modal_lines(res: dict[str, Any]) -> list[str]:
    """The headline model, the modal operator's modes and fit, and its truncation trade-off."""
    m = (res.get("runs") or {}).get("modal")
    head, rule = res.get("headline", "separable"), res.get("headline_rule", "n/a")
    out = [f"Headline (goals above): `{head}` ({rule}).", ""]
    if not m:
        return out
    md, fit = m.get("modes") or {}, get(m, "modes", "fit") or {}
    out += [f"`modal_operator`: {md.get('n_modes')} rigid-wall eigenmodes of the FD operator below "
            f"{num(md.get('cutoff_hz'))} Hz (spectral slicing, {md.get('slices')} shift-invert runs, "
            f"{_modes_cost(md)}), responses by ridge "
            f"least squares over {fit.get('n_pairs')} training pairs (ridge {fit.get('ridge')} × mean diag, "
            f"chosen on the validation sources; {num(fit.get('cpu_s'))} s CPU); {num(m.get('model_bytes'))} "
            "bytes of weights (the modes on every node dominate).", ""]
    rows = [[num(t.get("n_modes")), num(t.get("f_top_hz")), num(t.get("peak_normalised_rmse")),
             _pct(t.get("rel_l2")), num(t.get("query_ms")), num(t.get("model_bytes"))]
            for t in m.get("truncated") or []]
    rows.append([num(md.get("n_modes")), num(md.get("f_top_hz")), num(m.get("peak_normalised_rmse")),
                 _pct(m.get("rel_l2")), num(m.get("query_ms")), num(m.get("model_bytes"))])
    return out + table(["modes kept", "top mode Hz", "RMSE/peak", "rel L2", "query ms", "bytes"], rows) + [""]
