"""benchmarks.fuzz --merge: per-seed runs combine into the one result docs/reliability.md is made from."""

from __future__ import annotations

import pytest

from benchmarks.fuzz.__main__ import merge_results


def _run(seed: int, cases: int, uncaught: int, procs: int) -> dict:
    kind = {"cases": cases, "cli_calls": 2 * cases, "uncaught": uncaught, "hangs": 0, "seconds": 1.5,
            "mutations": {"drop": cases}, "first_tracebacks": [f"tb{seed}"] * uncaught}
    return {"seed": seed, "seeds": [seed], "python": "3.11", "per_seed": {str(seed): {}},
            "configs": dict(kind), "hdf5": dict(kind), "checkpoints": dict(kind),
            "procs": {"cases": procs, "violations": 0, "hangs": 1,
                      "signals": {"cases": procs // 2, "outcomes": {"exit 143": 3, f"s{seed}": 1}}},
            "procs_per_seed": {str(seed): {}},
            "hang_bound_s": 120.0, "seconds": 10.0}


def test_merge_adds_counts_and_keeps_each_seed():
    m = merge_results([_run(0, 1000, 0, 400), _run(1, 1300, 2, 400), _run(2, 1300, 0, 300)])
    assert m["seeds"] == [0, 1, 2] and set(m["per_seed"]) == {"0", "1", "2"}
    assert m["configs"]["cases"] == 3600 and m["configs"]["mutations"]["drop"] == 3600
    assert m["procs"]["cases"] == 1100 and set(m["procs_per_seed"]) == {"0", "1", "2"}
    assert m["procs"]["signals"]["cases"] == 200 + 200 + 150
    assert m["procs"]["signals"]["outcomes"] == {"exit 143": 9, "s0": 1, "s1": 1, "s2": 1}
    assert m["uncaught_total"] == 3 * 2 and m["hangs_total"] == 3  # 2 uncaught in each kind of seed 1
    assert m["seconds"] == 30.0 and m["configs"]["first_tracebacks"] == ["tb1", "tb1"]


def test_merge_refuses_a_seed_twice():
    with pytest.raises(SystemExit, match="twice"):
        merge_results([_run(0, 10, 0, 1), _run(0, 10, 0, 1)])
