"""benchmarks/md_deploy.py: the deploy section of docs/results.md, rendered from benchmarks/out/deploy.json.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from benchmarks import md_deploy, results_md

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "out" / "deploy.json"


@pytest.fixture(scope="module")
def res() -> dict:
    return json.loads(OUT.read_text(encoding="utf-8"))


def table_rows(lines: list[str], first_head: str) -> dict[str, dict[str, str]]:
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_head} |"))
    head = [c.strip() for c in lines[start].strip("|").split(" | ")]
    out = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        out[cells[0]] = dict(zip(head, cells, strict=True))
    return out


def test_every_row_and_goal_is_rendered_from_the_json(res):
    lines = md_deploy.deploy_section(res)
    rows = table_rows(lines, "model (runtime)")
    assert len(rows) == len(res["rows"]) == 9
    for r in res["rows"]:
        label = f"{r['model']} ({md_deploy.LABELS[r['runtime']]})"
        cells = rows[label]
        assert cells["bytes"] == f"{r['bytes']:,d}" and cells["ms, batch 1"] == f"{r['latency_b1_ms']:.3g}"
        if r["runtime"] == "ort_int8":
            assert ("not recommended" in cells["int8"]) != r["recommended"]
            assert ("says little" in cells["int8"]) == ("caveat" in r)
    goals = table_rows(lines, "goal")
    assert set(goals) == set(res["goals"])
    for name, g in res["goals"].items():
        assert goals[name]["met"] == ("✓" if g["met"] else "✗")


def test_int8_verdict_follows_the_ratio(res):
    r = copy.deepcopy(res)
    row = next(x for x in r["rows"] if x["runtime"] == "ort_int8")
    row["recommended"] = False
    row["accuracy_loss"] = {"one_step_error_ratio": 3.0, "rollout_error_ratio": 2.7}
    row["time_ratio_b1"] = 0.5
    row.pop("caveat", None)
    assert md_deploy._int8_cell(row) == "2.7× fp32's error, 0.5× its batch-1 time: not recommended"


def test_results_md_renders_the_section(tmp_path, res):
    (tmp_path / "deploy.json").write_text(json.dumps(res), encoding="utf-8")
    text = results_md.render(tmp_path)
    assert "## Deploying the demo's models" in text and text.count("| dense (ORT int8) |") == 1
