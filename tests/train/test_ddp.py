"""DDP: two processes (torchrun, gloo on CPU) give the losses of one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import train_tiny as tt
from safetensors.torch import load_file

from wavesurrogate import runs as ck
from wavesurrogate.train.loop import config_from_dict, train

HERE = Path(__file__).resolve().parent


def _step_losses(run: Path) -> list[float]:
    lines = [json.loads(x) for x in (run / ck.METRICS).read_text().splitlines()]
    return [v for line in lines for v in line["step_losses"]]


@pytest.mark.slow
def test_two_processes_match_one_process_over_20_steps(tmp_path):
    data = tt.write_tiny_file(tmp_path / "tiny.h5")
    # 18 training windows, global batch 5 → steps of 5, 5, 5, 3: uneven per-rank slices (3/2, 2/1)
    over = {"epochs": 5, "batch_size": 5, "log_step_losses": True, "num_threads": 1,
            "model": {"name": tt.FORECAST, "kwargs": {"width": 6}}}
    one = train(config_from_dict(tt.tiny_config(data, tmp_path / "one", **over)))
    cfg = tt.write_config(tmp_path / "two.yaml", tt.tiny_config(data, tmp_path / "two", **over))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           str(HERE / "train_worker.py"), "train", str(cfg)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = _step_losses(one), _step_losses(tmp_path / "two")
    assert len(a) == len(b) == 20
    assert b == pytest.approx(a, rel=1e-4)
    assert a[-1] < a[0]  # it trained
    wa, wb = load_file(str(one / ck.WEIGHTS)), load_file(str(tmp_path / "two" / ck.WEIGHTS))
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-5)
