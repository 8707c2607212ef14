"""End to end: ``run_demo(quick=True)`` makes data, two runs, evaluations, a bench, figures and report.md."""

from __future__ import annotations

import json
import math
import re

import pytest
from PIL import Image

from wavesurrogate.apps.demo import LABELS, find_config, plan, run_demo
from wavesurrogate.eval.table import TABLE_COLUMNS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    msg = run_demo(out, quick=True)
    return out, msg


def _table_rows(md: str) -> list[list[str]]:
    """Cells of the bench table (the markdown table whose header is TABLE_COLUMNS)."""
    lines = md.splitlines()
    head = "| " + " | ".join(TABLE_COLUMNS) + " |"
    i = lines.index(head)
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def _number(cell: str) -> float:
    m = re.match(r"^([0-9][0-9,]*\.?[0-9]*(?:e[-+]?\d+)?)(×)?", cell)
    assert m, f"cell {cell!r} does not start with a number"
    return float(m.group(1).replace(",", ""))


def test_report_has_a_table_of_numbers_and_the_figures(demo) -> None:
    out, msg = demo
    report = out / "report.md"
    assert msg == f"report: {report}"
    md = report.read_text(encoding="utf-8")
    rows = _table_rows(md)
    assert [r[0] for r in rows] == list(LABELS)
    for r in rows:
        assert len(r) == len(TABLE_COLUMNS)
        for cell in r[1:]:
            assert cell == "n/a" or math.isfinite(_number(cell))
        # the required columns are measured, not n/a (rollout @40 exists: 45 frames, n_in 4)
        assert all(c != "n/a" for c in r[1:])
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        path = out / link
        with Image.open(path) as im:
            assert im.format in ("PNG", "GIF")
    assert {p.name for p in (out / "figures").iterdir()} >= {
        "snapshots_dense.png", "snapshots_cp.png", "rollout_error.png", "pareto.png", "training.png",
        "rollout.gif"}


def test_bench_json_is_consistent_with_its_definitions(demo) -> None:
    out, _ = demo
    bench = json.loads((out / "bench" / "bench.json").read_text(encoding="utf-8"))
    runs = {r["run"]: r for r in bench["runs"]}
    assert set(runs) == set(LABELS)
    for r in runs.values():
        step = r["solver_step"]
        assert step["n_steps"] == r["n_out"] * 4  # frame_stride of configs/demo.yaml
        assert r["speedup_b1"] == pytest.approx(step["seconds"] / (r["latency_b1"]["median_ms"] / 1e3))
        assert r["speedup_b32"] == pytest.approx(step["seconds"] / (r["latency_b32"]["per_sample_ms"] / 1e3))
        assert r["weight_bytes"] == 4 * r["params"]  # float32, no buffers in cnn2d
        assert r["peak_train_bytes"] > r["peak_infer_bytes"] > 0
        ev = json.loads((out / r["run"] / "evaluate.json").read_text(encoding="utf-8"))
        assert r["test_rel_l2"] == ev["one_step"]["rel_l2_pooled"]
        assert r["rollout_rel_l2"]["40"] == ev["rollout"]["rel_l2"][39]
    assert runs["cp"]["params"] < runs["dense"]["params"]


def test_rerun_skips_finished_stages(demo) -> None:
    out, _ = demo
    files = (out / "data.h5", out / "bench" / "bench.json", out / "dense" / "weights.safetensors",
             out / "cp" / "evaluate.json", out / "figures" / "rollout.gif")
    stamp = {p: p.stat().st_mtime_ns for p in files}
    run_demo(out, quick=True)
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp


def test_configs_are_found_and_the_pair_differs_only_in_the_conv_format() -> None:
    assert find_config("demo.yaml").is_file()
    p = plan(quick=False)
    dense, cp = p.train["dense"], p.train["cp"]
    assert {k: v for k, v in dense["model"]["kwargs"].items() if k != "conv"} == \
        {k: v for k, v in cp["model"]["kwargs"].items() if k != "conv"}
    assert cp["model"]["kwargs"]["conv"]["format"] == "cp" and "conv" not in dense["model"]["kwargs"]
    assert {k: v for k, v in dense.items() if k not in ("name", "out", "model", "optim")} == \
        {k: v for k, v in cp.items() if k not in ("name", "out", "model", "optim")}
    assert cp["optim"]["lr"] == pytest.approx(10 * dense["optim"]["lr"])  # each model at its own rate
    assert "forcing" in dense["data"]["inputs"] and isinstance(dense["epochs"], int)
    assert not hasattr(p, "budget_s")  # fixed epochs, no time budget


def test_report_has_the_operator_section_and_rollouts_from_frame_0(demo) -> None:
    out, _ = demo
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Where a surrogate wins: the source → field operator" in md
    op = json.loads((out / "operator.json").read_text(encoding="utf-8"))
    assert [r["factor"] for r in op["rows"]][0] == 1.0 and op["rows"][0]["error"] < 1e-3  # the fine re-solve
    assert op["field_s"] > 0 and op["points_s"] > 0 and math.isfinite(op["error"])
    assert "Verdict: " + op["verdict"] in md
    for label in LABELS:
        ev = json.loads((out / label / "evaluate.json").read_text(encoding="utf-8"))
        assert ev["rollout"]["start_frame"] == 0
    assert "from frame 0 of test case" in md
