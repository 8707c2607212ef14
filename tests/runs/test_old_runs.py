"""Run directories written by the code before the redesign (tests/data/fixtures, made at commit 1a6c993)
keep loading and give the outputs recorded then."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from wavesurrogate import runs, tasks
from wavesurrogate.errors import CheckpointError, DataFileError
from wavesurrogate.eval.evaluate import evaluate_run
from wavesurrogate.train.loop import train

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
    want = {"run_v1_field_deeponet": "source_to_field", "run_v1_forecast_cp": "forecast",
            "run_v1_trace_cnn": "boundary_trace"}[run_dir.name]
    assert info.task == want and info.task in tasks.names()


def _copy(src: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(src, run)
    return run


def test_a_newer_model_version_is_refused_before_its_arguments_are_read(tmp_path: Path):
    run = _copy(OLD_RUNS[1], tmp_path)
    meta = json.loads((run / "model.json").read_text())
    meta["model_version"] = 99
    meta["kwargs"]["an_argument_of_version_99"] = 1
    (run / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="version 99 is newer"):
        runs.load_run(run)


def test_a_run_without_a_task_in_model_json_takes_its_configs_task(tmp_path: Path):
    run = _copy(OLD_RUNS[1], tmp_path)
    meta = json.loads((run / "model.json").read_text())
    del meta["task"]
    (run / "model.json").write_text(json.dumps(meta))
    assert runs.load_run(run)[1].task == "forecast"


def test_malformed_weights_metadata_is_one_checkpoint_error(tmp_path: Path):
    run = _copy(OLD_RUNS[1], tmp_path)
    sd = load_file(str(run / "weights.safetensors"))
    save_file(sd, str(run / "weights.safetensors"), metadata={"format": "wavesurrogate-weights/1",
                                                              "epoch": json.dumps("abc")})
    with pytest.raises(CheckpointError, match="malformed metadata"):
        runs.load_run(run)


def test_an_old_trace_run_is_refused_on_a_file_without_its_traces():
    trace_run = FIXTURES / "run_v1_trace_cnn"
    with pytest.raises(DataFileError, match="no ZOI boundary traces"):
        evaluate_run(trace_run, FIXTURES / "schema1_8x8.h5")


def test_a_run_of_the_old_trace_trainer_cannot_be_resumed(tmp_path: Path):
    run = _copy(OLD_RUNS[2], tmp_path)
    model, _ = runs.load_run(run)
    sd = model.state_dict()  # a state complete in form: what is refused is the run's stats.json
    runs.save_state(run / runs.OPTIM, {
        "epoch": 0, "global_step": 0, "model": sd, "best_model": sd, "scheduler": {}, "best_val_loss": 1.0,
        "optimizer": {"state": {}, "param_groups": [{"params": list(range(len(list(model.parameters()))))}]},
        "best_epoch": 0, "metrics": []})
    cfg = runs.read_run_config(run)
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        train(cfg, resume=run)


def test_an_old_deeponet_run_without_init_loads_with_glorot():
    run_dir = FIXTURES / "run_v1_field_deeponet"
    assert "init" not in json.loads((run_dir / "model.json").read_text())["kwargs"]
    model, _ = runs.load_run(run_dir)
    assert model.init_kwargs["init"] == "glorot" and model.trunk.omega0 == 1.0
