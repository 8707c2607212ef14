"""wavesurrogate learn: a run killed mid-round (SIGKILL) and resumed by the same command ends with the same
state as an uninterrupted run; measured costs are recorded; the state holds what a round needs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from wavesurrogate.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {
    "name": "tiny", "seed": 3, "fidelities": [10, 20], "costs_s": {10: 0.001, 20: 0.004},
    "measure_repeats": 2,
    "problem": {"backend": "numpy", "frames": [5], "space_order": 2},
    "model": {"modes": 6, "latent": 4, "hidden": 16, "steps_first": 30, "steps_round": 15, "samples": 4},
    "design": {"initial": {10: 6, 20: 3}, "candidates": 24, "test_cases": 4},
    "strategy": "active", "rounds": 2, "budget_s": 0.011,
}
KILL = """
import os, signal, sys
from wavesurrogate.apps.learn import learn
from wavesurrogate.config.learn import load_learn_config

def hook(event, r):
    if (event, r) == ("solved", 2):  # round 2's cases solved, nothing of round 2 committed
        os.kill(os.getpid(), signal.SIGKILL)

learn(load_learn_config(sys.argv[1]), __import__("pathlib").Path(sys.argv[2]), hook=hook)
"""


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)


def _state(run: Path) -> tuple[dict, dict, bytes]:
    st = json.loads((run / "state.json").read_text())
    with np.load(run / st["data"]) as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("solve_s")}  # wall times are measurements
    for h in st["history"]:
        h.pop("solve_wall_s")
    st.pop("costs_measured_s")
    return st, arrays, (run / st["weights"]).read_bytes()


def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path: Path) -> None:
    cfg = tmp_path / "learn.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    cli = ["-m", "wavesurrogate.cli", "learn", str(cfg), "--out"]
    whole = _run([*cli, str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = _run(["-c", KILL, str(cfg), str(tmp_path / "resumed")])
    assert killed.returncode == -signal.SIGKILL
    assert json.loads((tmp_path / "resumed" / "state.json").read_text())["round"] == 1
    resumed = _run([*cli, str(tmp_path / "resumed")])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (a_st, a_arr, a_w), (b_st, b_arr, b_w) = _state(tmp_path / "whole"), _state(tmp_path / "resumed")
    assert a_st == b_st and a_w == b_w
    assert a_arr.keys() == b_arr.keys() and all(np.array_equal(a_arr[k], b_arr[k]) for k in a_arr)
    # what the run holds: 2 rounds after round 0, costs as given, measured costs recorded (> 0), spent within
    # the budget each round, the files of round 2 only
    st = json.loads((tmp_path / "whole" / "state.json").read_text())
    hist = st["history"]
    assert [h["round"] for h in hist] == [0, 1, 2] and st["costs_s"] == {"10": 0.001, "20": 0.004}
    assert all(v > 0 for v in st["costs_measured_s"].values())
    assert hist[0]["cost_s"] == 6 * 0.001 + 3 * 0.004
    spent = [b["cost_s"] - a["cost_s"] for a, b in zip(hist, hist[1:], strict=False)]
    assert all(0 < s <= CONFIG["budget_s"] + 1e-12 for s in spent)
    assert all(np.isfinite(h["nrmse"]) and 0 <= h["coverage90"] <= 1 for h in hist)
    assert sorted(p.name for p in (tmp_path / "whole").iterdir()) == [
        "round-0002.npz", "round-0002.safetensors", "state.json"]
    from wavesurrogate.apps.learn import run_learn

    run_learn(cfg, tmp_path / "whole")  # a finished run: nothing to do, nothing changed
    assert _state(tmp_path / "whole")[0] == a_st
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**CONFIG, "budget_s": 0.02}))
    before = (tmp_path / "whole" / "state.json").read_bytes()
    with pytest.raises(UserError, match="different config"):
        run_learn(other, tmp_path / "whole")
    assert (tmp_path / "whole" / "state.json").read_bytes() == before
