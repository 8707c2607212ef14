"""The normsearch.json section of docs/results.md (benchmarks/normsearch.py, issue 19)."""

from __future__ import annotations

import json
from typing import Any

from benchmarks.md_format import pct
from wavesurrogate.eval.table import markdown as table
from wavesurrogate.eval.table import num


def _x(a: Any, b: Any) -> str:
    ok = isinstance(a, int | float) and isinstance(b, int | float) and b > 0
    return f" ({a / b:.2f}×)" if ok else ""


def normsearch_section(res: dict[str, Any]) -> list[str]:
    """Search counts and rejection rates, the best graph, errors per layer and architecture, the goals."""
    s = res.get("search", {})
    cfg = res.get("search_config", {})
    mach = res.get("machine", {})
    lines = ["## Norm–activation layers searched for wave surrogates (benchmarks/normsearch.py)", "",
             f"Search (`apps/normsearch.py`, after EvoNorms): {s.get('evaluated')} candidates "
             f"({s.get('duplicates')} duplicates) over {', '.join(s.get('archs', []))} on the forecast task, "
             f"{cfg.get('epochs')} epochs each for the fitness (per-architecture log-ratio of the best "
             f"validation loss to GroupNorm+GELU's); quality gate rejected {s.get('rejected_quality')} "
             f"({pct(s.get('rejection_rate_quality'))} %), stability gate (×"
             f"{num(cfg.get('stability', {}).get('lr_factor'))} rate) rejected {s.get('rejected_stability')} "
             f"({pct(s.get('rejection_rate_stability'))} % of those past the quality gate); "
             f"{s.get('accepted')} accepted; search wall {num(res.get('search_wall_s'))} s. Machine: "
             f"{mach.get('cores')} cores, load {num(mach.get('load_1min'))}."
             + (" **Smoke run: harness check, not a result.**" if res.get("smoke") else ""), ""]
    bf = s.get("best_found") or {}
    lines += [f"Best found (`best`, candidate {bf.get('id')}, {bf.get('mutation')}, fitness "
              f"{num(bf.get('fitness'))}):", "", "```json", json.dumps(res.get("best_graph"), sort_keys=True),
              "```", ""]
    factors = ", ".join(f"{f:.3g}" for f in res.get("lr_factors", []))
    unroll = (res.get("final_rollout") or {}).get("unroll")
    lines += [f"Each layer retrained {res.get('final_epochs')} epochs (unroll curriculum {unroll}) per "
              "search architecture at "
              f"({factors}) × the architecture's rate (lowest validation loss kept); test "
              "relative L2 in %, ratio to gn_gelu in brackets:", ""]
    rows = []
    for arch, layers in res.get("search_archs", {}).items():
        ref = layers.get("gn_gelu", {})
        for name, r in layers.items():
            rows.append([arch, name, pct(r.get("one_step")) + _x(r.get("one_step"), ref.get("one_step")),
                         pct(r.get("rollout_40")) + _x(r.get("rollout_40"), ref.get("rollout_40")),
                         str(r.get("horizon", ""))])
    lines += table(["architecture", "layer", "one-step %", "rollout %", "frames"], rows) + [""]
    held = res.get("held_out", {})
    ref = held.get("gn_gelu", {})
    lines += [f"Held out (never seen by the search): CP `field_decoder`, task `source_to_field`, "
              f"{res.get('held_out_epochs')} epochs, same rate selection; whole-field test relative L2:", ""]
    lines += table(["layer", "field %"], [[n, pct(r.get("field_rel_l2")) + _x(r.get("field_rel_l2"),
                                                                              ref.get("field_rel_l2"))]
                                          for n, r in held.items()]) + [""]
    lines += table(["goal", "measured", "target", "met"],
                   [[k, num(g.get("measured")), f"{g.get('op')} {g.get('target')}", "yes" if g.get("met") else
                     "no"] for k, g in res.get("goals", {}).items()]) + [""]
    lines += ["Rerun: `.venv/bin/python -m benchmarks.normsearch` (resumable; `--smoke`: the harness).", ""]
    return lines
