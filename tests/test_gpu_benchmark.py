"""benchmarks/gpu.py: without a GPU it says so and exits 0; on the CPU (``--device cpu --smoke``) the same
code times the torch FD solver and the surrogates per frame and reports their ratio."""

from __future__ import annotations

import json

import torch

from benchmarks import gpu


def test_without_a_gpu_it_says_so_and_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu.main([]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gpu"] is False and "no CUDA device" in out["reason"] and out["goals"] == {}


def test_cpu_smoke_times_solver_and_surrogates(capsys):
    assert gpu.main(["--device", "cpu", "--smoke"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gpu"] is False and out["device"] == "cpu"
    assert [(r["dim"], r["size"], r["batch"]) for r in out["rows"]] == [(2, 32, 1), (2, 32, 2), (3, 12, 1)]
    for r in out["rows"]:
        assert r["solver_s_per_frame"] > 0 and r["solver_steps_per_frame"] == 5
        for s in r["surrogates"].values():
            assert s["s_per_frame"] > 0 and s["params"] > 0
            assert abs(s["solver_over_surrogate"] - r["solver_s_per_frame"] / s["s_per_frame"]) < 1e-12
    cp, dense = (out["rows"][0]["surrogates"][k]["params"] for k in ("demo cp cnn2d", "demo dense cnn2d"))
    assert cp < dense
