"""Run directories written by the code before the redesign (tests/data/fixtures, made at commit 1a6c993)
keep loading and give the outputs recorded then."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from wavesurrogate import runs, tasks
from wavesurrogate.errors import CheckpointError

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
OLD_RUNS = sorted(p for p in FIXTURES.glob("run_v1_*") if p.is_dir())


def test_the_fixtures_are_there():
    assert [p.name for p in OLD_RUNS] == ["run_v1_field_deeponet", "run_v1_forecast_cp", "run_v1_trace_cnn"]


@pytest.mark.parametrize("run_dir", OLD_RUNS, ids=lambda p: p.name)
def test_old_run_loads_and_predicts_the_recorded_outputs(run_dir: Path):
    model, info = runs.load_run(run_dir)
    io = load_file(str(run_dir / "expected_io.safetensors"))
    inputs = [io[k] for k in ("x", "params", "coords") if k in io]
    with torch.no_grad():
        y = model(*inputs)
    assert y.shape == io["y"].shape
    torch.testing.assert_close(y, io["y"], rtol=1e-6, atol=1e-6)
    assert info.model_version == 1  # written before model versions existed
    assert info.task in tasks.names()


def test_a_newer_model_version_is_refused(tmp_path: Path):
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(OLD_RUNS[1], run)
    meta = json.loads((run / "model.json").read_text())
    meta["model_version"] = 99
    (run / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="version 99 is newer"):
        runs.load_run(run)
