"""Run directories: atomic writes, load_run round trip, and refusal of truncated, foreign or unsafe files."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import train_tiny as tt
import yaml

from wavesurrogate import runs as ck
from wavesurrogate.errors import CheckpointError
from wavesurrogate.io import atomic_write_bytes
from wavesurrogate.train.loop import config_from_dict, train, train_from_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("ckpt")
    data = tt.write_tiny_file(base / "tiny.h5")
    return train(config_from_dict(tt.tiny_config(data, base / "run", epochs=2)))


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A private copy of the trained run directory, free to damage."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "f.bin"
    atomic_write_bytes(p, b"old")
    atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"new"
    with pytest.raises(TypeError):
        atomic_write_bytes(p, "not bytes")  # type: ignore[arg-type]  # fails mid-write
    assert p.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["f.bin"]


def test_load_run_rebuilds_the_model_from_files_alone(run):
    model, info = ck.load_run(run, "last")
    state = ck.load_state(run / ck.OPTIM)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state["model"][k])
    assert info.model_name == tt.FORECAST and info.task == "forecast" and info.epoch == 2
    # the constructor arguments as captured by the registry: the config's, plus the defaults it left out
    assert info.model_kwargs == {"n_in": 2, "n_out": 1, "width": 4, "nan_after": 0, "sleep_s": 0.0,
                                 "dropout": 0.0}
    assert info.stats["n_in"] == 2 and info.config.epochs == 2 and not model.training
    best, binfo = ck.load_run(run, "best")
    assert 1 <= binfo.best_epoch <= 2
    x = torch.zeros(1, 3, 16, 16)
    assert best(x).shape == (1, 1, 16, 16)


def test_truncated_weights_refused(run):
    w = run / ck.WEIGHTS
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(CheckpointError) as exc:
        ck.load_run(run)
    assert "corrupted or truncated" in _one_line(exc)
    w.write_bytes(b"\x00" * 3)
    with pytest.raises(CheckpointError):
        ck.load_run(run)


def test_weights_of_another_architecture_refused(run):
    meta = json.loads((run / ck.MODEL_JSON).read_text())
    meta["kwargs"]["width"] = 5
    (run / ck.MODEL_JSON).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="kwargs.width = 5 but config.yaml"):
        ck.load_run(run)  # model.json alone disagrees with the config
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model"]["kwargs"]["width"] = 5
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(CheckpointError) as exc:
        ck.load_run(run)  # both say width 5: the weights (width 4) do not fit
    assert "do not fit model" in _one_line(exc) and "shape" in str(exc.value)


def test_unknown_model_name_refused(run):
    meta = json.loads((run / ck.MODEL_JSON).read_text())
    meta["name"] = "no_such_model"
    (run / ck.MODEL_JSON).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as exc:
        ck.load_run(run)
    assert "no_such_model" in _one_line(exc)


def test_missing_files_refused(run, tmp_path):
    (run / ck.MODEL_JSON).unlink()
    with pytest.raises(CheckpointError, match="model.json"):
        ck.load_run(run)
    with pytest.raises(CheckpointError, match="not a run directory"):
        ck.load_run(tmp_path)
    with pytest.raises(CheckpointError, match="which"):
        ck.load_weights(run / ck.WEIGHTS, "middle")


class _Evil:
    """Unpickling this would create a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("how", ["torch.save", "raw pickle"])
def test_malicious_pickle_in_optimizer_state_refused(run, tmp_path, how):
    marker = tmp_path / "pwned"
    payload = {"format": "wavesurrogate-state/1", "epoch": 1, "evil": _Evil(marker)}
    if how == "torch.save":  # torch.load(weights_only=False) would create the marker
        torch.save(payload, run / ck.OPTIM)
    else:
        (run / ck.OPTIM).write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError) as exc:
        train_from_config(None, resume=run)
    assert "refused" in _one_line(exc)
    assert not marker.exists()


def test_truncated_optimizer_state_refused(run):
    p = run / ck.OPTIM
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(CheckpointError):
        ck.load_state(p)
    torch.save({"format": "something else"}, p)
    with pytest.raises(CheckpointError, match="not a wavesurrogate training state"):
        ck.load_state(p)


def test_resume_of_a_foreign_state_refused(run):
    """An optimizer.pt of a wider model (another architecture) must not be loaded into this one."""
    state = ck.load_state(run / ck.OPTIM)
    state["model"] = {k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) for k, v in state["model"].items()}
    ck.save_state(run / ck.OPTIM, {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(CheckpointError, match="do not fit"):
        train_from_config(None, resume=run)
