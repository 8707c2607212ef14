"""Report verdicts follow the numbers: smallest, most accurate, slower or faster than the solver, load."""

from __future__ import annotations

from typing import Any

from wavesurrogate.eval.report import render_report, verdicts
from wavesurrogate.eval.table import format_table, speedup_cell


def _run(name: str, params: int, err: float, s1: float, s32: float, sr: float = 0.5) -> dict[str, Any]:
    lat = {"median_ms": 2.0, "q25_ms": 1.9, "q75_ms": 2.1, "min_ms": 1.8, "batch": 1, "repeats": 3,
           "threads": 2, "per_sample_ms": 2.0}
    return {"run": name, "params": params, "weight_bytes": 4 * params, "peak_infer_bytes": 10 * 2**20,
            "peak_train_bytes": 100 * 2**20, "train_s_per_epoch": 3.0, "latency_b1": lat,
            "latency_b32": {**lat, "batch": 32, "median_ms": 32.0, "per_sample_ms": 1.0},
            "test_rel_l2": err, "rollout_rel_l2": {"10": 2 * err, "40": 5 * err}, "rollout_horizon": 40,
            "solver_step": {"seconds": 0.004}, "speedup_b1": s1, "speedup_b32": s32, "speedup_rollout": sr}


def test_speedup_cell_marks_slower_than_solver() -> None:
    assert speedup_cell(2.5) == "2.5×"
    assert speedup_cell(0.25) == "0.25× (slower than solver)"
    assert speedup_cell(None) == "n/a"


def test_verdicts_follow_the_numbers() -> None:
    bench = {"runs": [_run("dense", 100_000, 0.02, 0.5, 2.0), _run("cp", 10_000, 0.03, 1.5, 4.0)],
             "machine": {"cores": 2, "load_1min": 0.3}}
    text = " ".join(verdicts(bench))
    assert "Smallest model: **cp** with 10,000 trainable parameters, 10× fewer than **dense**" in text
    assert "Most accurate on the test cases (one step): **dense** at 2.00 %" in text
    assert "1.5× the one-step error" in text
    assert "**dense** is **slower than the solver** on a single prediction (speed-up 0.5× at batch 1); " \
           "in batches of 32, 2× per sample (faster)" in text
    assert "**cp** beats the solver on a single prediction: 1.5× faster at batch 1" in text
    assert "busy" not in text


def test_busy_machine_is_reported() -> None:
    bench = {"runs": [_run("a", 10, 0.1, 0.1, 0.1)], "machine": {"cores": 2, "load_1min": 9.0}}
    assert any("machine was busy" in v for v in verdicts(bench))


def test_report_embeds_table_verdicts_and_figures() -> None:
    bench = {"runs": [_run("dense", 100, 0.02, 0.5, 2.0)], "definitions": {"x": "y"}, "machine": {"cores": 2}}
    md = render_report(bench, figures=[("Pareto", "figures/pareto.png")], intro=["hello"], timings={"a": 1.0})
    assert format_table(bench) in md
    assert "![Pareto](figures/pareto.png)" in md and "- x: y" in md and "| a | 1.0 |" in md
    row = next(line for line in md.splitlines() if line.startswith("| dense |"))
    assert "0.5× (slower than solver)" in row and "| 2× |" in row
