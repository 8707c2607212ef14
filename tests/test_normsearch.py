"""The norm–activation search (apps/normsearch.py): deterministic under a seed, identical after a SIGKILL."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.bad_inputs.make_corpus import write_data
from wavesurrogate.apps.normsearch import pareto_ranks, run_search
from wavesurrogate.config.base import validate
from wavesurrogate.config.normsearch import NormSearchConfig
from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.normact import BUILTIN, NormAct
from wavesurrogate.nn.layers.normact_evolve import canonical, graph_key, mutate

ROOT = Path(__file__).resolve().parents[1]
N = 4  # two built-in seeds and two mutants


def _cfg(work: Path, data: Path) -> dict[str, Any]:
    arch = {"n_in": 2, "n_out": 1, "width": 4, "depth": 1}
    cp = {**arch, "conv": {"format": "cp", "rank": 2}}
    return {"work": str(work), "seed": 3,
            "data": {"path": str(data), "n_in": 2, "n_out": 1, "val_fraction": 0.25},
            "archs": [{"label": "dense", "model": "cnn2d", "kwargs": arch, "lr": 3e-3},
                      {"label": "cp", "model": "cnn2d", "kwargs": cp, "lr": 1e-2}],
            "candidates": N, "seeds": ["gn_gelu", "evonorm_s0"], "population": 4, "tournament": 2,
            "epochs": 1, "batch_size": 8,
            "quality": {"epochs": 1, "max_ratio": 3.0}, "stability": {"epochs": 1, "lr_factor": 10.0}}


def test_mutations_are_valid_seeded_and_canonical() -> None:
    g = canonical(BUILTIN["evonorm_s0"])
    kids = [mutate(g, np.random.default_rng([0, i]))[0] for i in range(30)]
    assert kids == [mutate(g, np.random.default_rng([0, i]))[0] for i in range(30)]
    assert len({graph_key(k) for k in kids}) > 10 and graph_key(g) not in {graph_key(k) for k in kids}
    x = torch.randn(3, 8, 5, 6)
    for k in kids:  # valid graphs: the symbolic shapes hold on a real tensor
        assert NormAct(k, 8)(x).shape == x.shape
    assert graph_key(BUILTIN["gn_gelu"]) == graph_key(canonical(BUILTIN["gn_gelu"]))


def test_pareto_ranks_by_hand() -> None:
    assert pareto_ranks([[0, 0], [1, -1], [1, 1], [2, 2], [0.5, 0.5]]) == [0, 0, 2, 3, 1]


def test_search_is_deterministic_and_survives_sigkill(tmp_path: Path) -> None:
    data = write_data(tmp_path / "d.h5", n=12, n_frames=10, n_cases=5, n_test=1)
    # the quality gate trains 4 epochs here, so the kill (once its first epoch is on disk) lands inside it
    def cfg(work: Path) -> dict[str, Any]:
        return {**_cfg(work, data), "quality": {"epochs": 4, "max_ratio": 3.0}}

    ref = run_search(validate(NormSearchConfig, cfg(tmp_path / "a")))
    assert ref["evaluated"] == N and ref["seeds"]["gn_gelu"]["log_ratios"] == [0.0, 0.0]
    assert [r["parent"] for r in json.loads((tmp_path / "a" / "state.json").read_text())["records"]][:2] == [
        None, None]
    rates = (ref["rejection_rate_quality"], ref["rejection_rate_stability"])
    assert all(r is not None and 0.0 <= r <= 1.0 for r in rates)
    # a second process runs the same search and is killed in the middle of candidate 2's trainings
    work = tmp_path / "b"
    (tmp_path / "b.json").write_text(json.dumps(cfg(work)))
    code = ("import json, sys; from wavesurrogate.config.base import validate; "
            "from wavesurrogate.config.normsearch import NormSearchConfig; "
            "from wavesurrogate.apps.normsearch import run_search; "
            "run_search(validate(NormSearchConfig, json.load(open(sys.argv[1]))))")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "b.json")], env=env)
    target = work / "runs" / "c0002" / "quality" / "metrics.jsonl"  # its first training has one epoch done
    t0 = time.time()
    while not target.is_file() and proc.poll() is None and time.time() - t0 < 120:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.is_file(), "the search ended before it could be killed"
    state = json.loads((work / "state.json").read_text())
    # killed after candidate 2 began and before the end (under load candidate 2, one epoch per gate, may
    # have been committed before the signal landed)
    assert 2 <= len(state["records"]) < N
    again = run_search(validate(NormSearchConfig, cfg(work)))
    assert again == ref
    a, b = (json.loads((tmp_path / w / "state.json").read_text())["records"] for w in "ab")
    assert a == b


def test_a_changed_config_is_refused_but_more_candidates_extend_the_search(tmp_path: Path) -> None:
    data = write_data(tmp_path / "d.h5", n=12, n_frames=10, n_cases=5, n_test=1)
    cfg = _cfg(tmp_path / "w", data)
    run_search(validate(NormSearchConfig, {**cfg, "candidates": 1}))
    with pytest.raises(ConfigError, match="another config"):
        run_search(validate(NormSearchConfig, {**cfg, "candidates": 1, "seed": 4}))
    assert run_search(validate(NormSearchConfig, {**cfg, "candidates": 2}))["evaluated"] == 2  # extended


def test_report_section_renders_the_smoke_json() -> None:
    """docs/results.md's section from the committed smoke output: one row per (architecture, layer), ratios
    to gn_gelu computed from the numbers (gn_gelu's own rows at 1.00×; three architectures and the held-out
    one), and the goals table."""
    from benchmarks.md_normsearch import normsearch_section

    res = json.loads((ROOT / "benchmarks" / "out" / "normsearch_smoke.json").read_text())
    text = "\n".join(normsearch_section(res))
    n_rows = sum(len(v) for v in res["search_archs"].values())
    assert sum(line.startswith(("| dense |", "| cp |", "| unet |")) for line in text.splitlines()) == n_rows
    assert text.count("| gn_gelu | ") == 4 and "(1.00×)" in text and "search_archs_at_0.9x" in text
    assert json.dumps(res["best_graph"], sort_keys=True) in text


def test_stability_gate_is_relative_to_the_reference(tmp_path: Path, monkeypatch: Any) -> None:
    """At a large rate the reference itself may end above its first step's loss: the gate compares the
    candidate's last-epoch loss with GroupNorm+GELU's under the same rate (``stability.max_ratio``)."""
    import wavesurrogate.apps.normsearch as ns

    cfg = validate(NormSearchConfig, _cfg(tmp_path, tmp_path / "d.h5"))
    assert cfg.stability.max_ratio == 2.0
    last = {"ref": 0.92, "ok": 1.7, "bad": 2.1, "nan": math.nan}
    monkeypatch.setattr(ns, "_quality", lambda c, g, r: 1.0)
    monkeypatch.setattr(ns, "_fitness", lambda c, g, r: [1.0, 1.0])
    which = {}
    monkeypatch.setattr(ns, "_stable", lambda c, g, r: {"first_loss": 0.79, "last_loss": last[which["k"]],
                                                        "diverged": which["k"] == "nan"})
    which["k"] = "ref"
    ref = ns.evaluate_candidate(cfg, {}, tmp_path, None)
    assert ref["status"] == "accepted"  # the reference is never gated, though 0.92 > 0.79
    out = {}
    for k in ("ok", "bad", "nan"):
        which["k"] = k
        out[k] = ns.evaluate_candidate(cfg, {}, tmp_path, ref)
    assert out["ok"]["status"] == "accepted" and abs(out["ok"]["stability"]["ratio"] - 1.7 / 0.92) < 1e-12
    assert out["bad"]["status"] == "rejected_stability" and out["nan"]["status"] == "rejected_stability"
