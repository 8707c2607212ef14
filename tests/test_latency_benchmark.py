"""``benchmarks/latency.py`` (issue 14.4) end to end on one model with tiny repeats: the JSON's structure."""

from __future__ import annotations

import json

import torch

from benchmarks import latency


def test_latency_main_writes_goals(tmp_path):
    out = tmp_path / "latency.json"
    threads = torch.get_num_threads()
    got = latency.main(["--repeats", "3", "--warmup", "1", "--models", "relative", "--no-compile",
                        "--out", str(out)])
    assert torch.get_num_threads() == threads  # restored
    data = json.loads(out.read_text())
    assert data == json.loads(json.dumps(got))
    assert set(data["models"]) == {"relative"}
    goal = data["goals"]["relative_batch1_latency_factor"]
    assert {"measured", "target", "op", "met", "unit"} <= set(goal)
    assert goal["measured"] > 0 and goal["target"] == 1.1 and goal["op"] == ">="
    assert isinstance(goal["met"], bool)
    assert goal["met"] or goal["reason"]
    rec = data["models"]["relative"]
    assert {"baseline", "inference_mode", "threads_2"} <= set(rec["settings"])
    assert "channels_last" not in rec["settings"] and "compile" not in rec["settings"]
    for row in rec["settings"].values():
        assert row["median_ms"] > 0 and row["min_ms"] > 0 and row["factor_paired"] > 0
    assert rec["best"] in rec["settings"] and rec["best_factor"] > 0 and rec["thread_switch_ms"] > 0
    assert data["machine"]["cores"] >= 1 and "load_1min" in data["machine"]
