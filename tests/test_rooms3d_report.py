"""The rooms3d section of docs/results.md renders from the benchmark's JSON (the committed smoke file)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmarks.md_rooms3d import rooms3d_section
from benchmarks.results_md import render

SMOKE = Path(__file__).resolve().parents[1] / "benchmarks" / "out" / "rooms3d_smoke.json"


def test_rooms3d_section_renders_goals_runs_and_speedups(tmp_path):
    res = json.loads(SMOKE.read_text(encoding="utf-8"))
    text = "\n".join(rooms3d_section(res))
    assert "`--smoke` run: not a result" in text
    for name in res["goals"]:
        assert f"| {name} |" in text
    assert "separable_operator" in text and "CP (TensorizedConv3d)" in text and "extrapolated" in text
    assert "Headline" in text and "modes kept" in text  # the modal operator and its truncation table
    rows = sum(line.startswith("| ") for line in text.splitlines())
    assert rows >= len(res["goals"]) + len(res["runs"]) + 2
    # as rooms3d.json it gets the dedicated section in results.md; a missing key reads n/a, not an error
    del res["solver"]
    (tmp_path / "rooms3d.json").write_text(json.dumps(res), encoding="utf-8")
    shutil.copy(SMOKE, tmp_path / "rooms3d_smoke.json")  # smoke files are left out
    md = render(tmp_path)
    assert md.count("## 3-D furnished room") == 1 and "n/a" in md
