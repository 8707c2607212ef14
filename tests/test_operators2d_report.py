"""benchmarks/md_operators2d.py: the operators2d section of docs/results.md, rendered from the smoke JSON."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks import md_operators2d, results_md

SMOKE = Path(__file__).resolve().parents[1] / "benchmarks" / "out" / "operators2d_smoke.json"


@pytest.fixture(scope="module")
def res() -> dict[str, Any]:
    return json.loads(SMOKE.read_text(encoding="utf-8"))


def rows_of(lines: list[str], first_head: str) -> dict[str, dict[str, str]]:
    """The markdown table whose header starts with ``first_head``: {first cell: {column: cell}}."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_head} |"))
    head = [c.strip() for c in lines[start].strip("|").split(" | ")]
    out = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == len(head), line
        out.setdefault(cells[0], dict(zip(head, cells, strict=True)))
    return out


def run(res: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in res["runs"] if r["run"] == name)


def test_goal_rows_show_measured_target_and_mark(res: dict[str, Any]) -> None:
    goals = rows_of(md_operators2d.operators2d_section(res), "goal")
    assert set(goals) == set(res["goals"])
    g = res["goals"]["free_field_rel_l2"]
    assert goals["free_field_rel_l2"]["measured"] == f"{100 * g['measured']:.1f} %"
    assert goals["free_field_rel_l2"]["target"] == "≤ 5.0 %"
    assert goals["free_field_rel_l2"]["met"] == "✗" and goals["free_field_rel_l2"]["run"] == g["run"]
    lat = goals["new_source_4096_points_ms"]
    assert lat["met"] == "✓"
    assert lat["measured"] == f"{res['goals']['new_source_4096_points_ms']['measured']:.3g}"
    assert goals["speedup_vs_fine_solver"]["target"] == "≥ 20"
    assert goals["room_rel_l2"]["met"] == "✗ (not measured)" and goals["room_rel_l2"]["measured"] == "n/a"
    # side numbers of a goal: the paper DeepONet's error as a percentage
    paper = res["goals"]["paper_deeponet_converged"]
    assert goals["paper_deeponet_converged"]["also"] == f"error {100 * paper['error']:.1f} %"


def test_model_rows_carry_the_runs_numbers(res: dict[str, Any]) -> None:
    models = rows_of(md_operators2d.operators2d_section(res), "run")
    field_runs = [r["run"] for r in res["runs"] if r["set"] == "free" and r["task"] == "source_to_field"]
    assert list(models) == field_runs  # receivers go to their own table
    r, row = run(res, "free_relative"), models["free_relative"]
    assert row["held-out rel L2 % (pooled)"] == f"{100 * r['test']['rel_l2_pooled']:.1f}"
    assert row["per-case mean %"] == f"{100 * r['test']['rel_l2']:.1f}"
    assert row["last frame % (pooled)"] == f"{100 * r['last_frame']['rel_l2_pooled']:.1f}"
    assert row["ms, 4,096 arbitrary points"] == f"{r['latency']['arbitrary_ms']:.3g}"
    assert row["params"] == f"{r['params']:,}" and row["train steps"] == str(r["steps"])
    assert row["ms, cached"] == "n/a" and row["speed-up cached"] == "n/a"  # no cached path
    assert row["speed-up over fine"] == f"{r['baselines']['speedup_vs_fine']:.3g}×"
    c = r["baselines"]["coarsest_no_worse"]
    assert row["cheapest solve no worse (error, ms)"] == (f"{c['factor']:g}× ({100 * c['error']:.1f} %, "
                                                          f"{1e3 * c['seconds']:.3g} ms)")
    assert row["beaten by a solve"] == "no"
    pod, prow = run(res, "free_pod_deeponet_100"), models["free_pod_deeponet_100"]
    assert prow["ms, cached"] == f"{pod['latency']['cached_ms']:.3g}"
    assert prow["speed-up cached"] == f"{pod['baselines']['speedup_cached_vs_fine']:.3g}×"
    assert prow["speed-up over fine"].endswith("(slower)")
    # the ¼-resolution solve is both faster and more accurate than this run
    assert prow["beaten by a solve"] == "**yes** (¼-resolution)"


def test_solver_rows_verdict_receivers_and_provenance(res: dict[str, Any]) -> None:
    lines = md_operators2d.operators2d_section(res)
    text = "\n".join(lines)
    solves = rows_of(lines, "solve")
    quarter = next(s for s in res["solver"]["free"] if s["factor"] == 0.25)
    assert solves["¼-resolution"]["grid"] == "17×17" and solves["¼-resolution"]["dt ms"] == "7.5"
    assert solves["¼-resolution"]["rel L2 %"] == f"{100 * quarter['error']:.1f}"
    assert solves["¼-resolution"]["ms per source"] == f"{1e3 * quarter['seconds']:.3g}"
    assert f"Verdict: {res['verdicts']['free']}" in lines
    rec = rows_of(lines, "run")  # first "run" table is the models'; the receivers' one follows
    assert "free_receivers" not in rec
    start = lines.index("### Receivers")
    held = run(res, "free_receivers")["receivers"]["held_out"]
    receivers = [line for line in lines[start:] if line.startswith("| free_receivers | held-out |")]
    assert receivers
    assert f"| {held['peak_normalised_rmse']:.3g} | {held['relative_rmse']:.3g} |" in receivers[0]
    assert f"| {len(held['receivers'])} | {held['n_pairs']} |" in receivers[0]
    assert f"`.venv/bin/{res['command']}`" in text and res["created_utc"] in text
    assert "**This file is from a `--smoke` run: not a result.**" in lines


def test_deeponets_beside_the_pod_floor(res: dict[str, Any]) -> None:
    r = copy.deepcopy(res)
    run(r, "free_pod_deeponet_100")["pod_floor_same_p"] = 0.5
    lines = md_operators2d.operators2d_section(r)
    floor = rows_of(lines, "p \\ training sources")
    assert floor["25"]["60"] == f"{100 * res['pod_floor']['free']['floor']['60']['25']:.1f}"
    d = rows_of(lines, "DeepONet run")
    err = run(res, "free_pod_deeponet_100")["error"]
    assert d["free_pod_deeponet_100"]["p"] == "100"
    assert d["free_pod_deeponet_100"]["POD floor at p, all sources %"] == "50.0"
    assert d["free_pod_deeponet_100"]["ratio"] == f"{err / 0.5:.3g}×"
    assert d["free_deeponet_paper_256"]["ratio"] == "n/a"  # its floor was not measured at p = 100
    assert "free_decoder_cp" not in d


def test_missing_keys_read_na() -> None:
    bare = {"run": "bare", "set": "room", "task": "source_to_field"}
    lines = md_operators2d.operators2d_section({"runs": [bare], "goals": {"g": {"target": 1.0, "op": "<="}}})
    row = rows_of(lines, "run")["bare"]
    assert set(list(row.values())[1:]) == {"n/a"}
    assert rows_of(lines, "goal")["g"]["met"] == "✗ (not measured)"
    assert "Verdict: n/a" in lines
    assert md_operators2d.operators2d_section({})[0].startswith("## ")


def test_tabulated_fast_path_is_a_row_of_its_own(res: dict[str, Any]) -> None:
    r = copy.deepcopy(res)
    run(r, "free_relative")["table"] = {"n_r": 2048, "n_t": 1024, "error": 0.0625, "arbitrary_ms": 0.125,
                                        "speedup_vs_fine": 96.0, "beaten_by_solver": False}
    row = rows_of(md_operators2d.operators2d_section(r), "run")["free_relative → (r, t) table"]
    assert row["model"] == "RadialTable 2048×1024"
    assert row["held-out rel L2 % (pooled)"] == "6.2"
    assert row["speed-up over fine"] == "96×" and row["beaten by a solve"] == "no"
    # the cheapest solve no worse than 6.25 % in the smoke file's rows, by hand
    ok = [x for x in r["solver"]["free"] if x["error"] <= 0.0625]
    best = min(ok, key=lambda x: x["seconds"])
    assert row["cheapest solve no worse (error, ms)"].startswith(f"{best['factor']:g}×")


def test_render_skips_smoke_files(tmp_path: Path) -> None:
    shutil.copy(SMOKE, tmp_path / "operators2d_smoke.json")
    text = results_md.render(tmp_path)
    assert "operators2d" not in text and "(0 file(s))" in text
    shutil.copy(SMOKE, tmp_path / "operators2d.json")
    text = results_md.render(tmp_path)
    assert text.count("## Source → field operators in 2-D") == 1
    assert "(1 file(s))" in text and "(benchmarks/out/operators2d.json)" not in text  # no generic dump too
