"""An elastic TFNO (modes, CP rank) trained by the one loop, sliced by the CLI, evaluated, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.train.train_tiny import tiny_config, write_tiny_file
from wavesurrogate.cli import main
from wavesurrogate.nn import elastic
from wavesurrogate.nn.registry import count_trainable
from wavesurrogate.runs import load_run
from wavesurrogate.runs.slice import family
from wavesurrogate.train.loop import config_from_dict, train

pytest.importorskip("neuralop", reason="neuralop (optional extra .[operators]) not installed")

MODEL = {"name": "tfno", "kwargs": {"n_in": 2, "n_out": 1, "n_modes": [8, 8], "hidden_channels": 4,
                                    "n_layers": 2, "factorization": "cp", "rank": 4}}
PAIRS = [[4, 1], [6, 2], [8, 4]]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_tiny_file(tmp_path_factory.mktemp("elfno") / "tiny.h5", n_cases=5, n_test=1, n_frames=6)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    c = tiny_config(data, tmp_path_factory.mktemp("elfno") / "run", model=MODEL,
                    elastic={"pairs": PAIRS}, epochs=2)
    return train(config_from_dict(c))


def test_fno_slice_loads_evaluates_and_refuses_untrained_pairs(run, data, tmp_path, capsys):
    out = tmp_path / "s62"
    assert main(["slice", str(run), "--modes", "6", "--rank", "2", "--out", str(out)]) == 0
    full, _ = load_run(run)
    sub, info = load_run(out)
    meta = json.loads((out / "model.json").read_text())
    assert meta["kwargs"]["n_modes"] == [6, 6] and meta["kwargs"]["rank"] == 2
    assert meta["sliced_from"]["modes"] == 6 and meta["sliced_from"]["rank"] == 2
    assert info.config.elastic.pairs == [(4, 1), (6, 2)]
    assert family(out) == {"family": str(run.resolve()), "modes": 6, "rank": 2}
    assert family(run) == {"family": str(run.resolve()), "modes": 8, "rank": 4}
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad(), elastic.active(full, 6, 2):
        torch.testing.assert_close(sub(x), full(x), rtol=1e-5, atol=1e-6)
    assert count_trainable(sub) == meta["n_params"] < json.loads(
        (run / "model.json").read_text())["n_params"]
    assert (out / "weights.safetensors").stat().st_size < (run / "weights.safetensors").stat().st_size
    assert main(["evaluate", str(out), "--data", str(data), "--out", str(tmp_path / "ev.json")]) == 0
    assert np.isfinite(json.loads((tmp_path / "ev.json").read_text())["one_step"]["rel_l2_pooled"])
    # --rank omitted: the largest trained rank at those modes
    assert main(["slice", str(run), "--modes", "8", "--out", str(tmp_path / "s8")]) == 0
    capsys.readouterr()
    before = (out / "weights.safetensors").read_bytes()
    for args in (["--modes", "6", "--rank", "1", "--out", str(tmp_path / "x")],  # not a trained pair
                 ["--modes", "5", "--rank", "2", "--out", str(tmp_path / "x")],  # not nested
                 ["--blocks", "4", "--rank", "1", "--out", str(tmp_path / "x")],  # the wrong axis
                 ["--modes", "4", "--rank", "1", "--out", str(out)]):  # an existing run, no --overwrite
        assert main(["slice", str(run), *args]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1, (args, err)
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.*"))
    assert (out / "weights.safetensors").read_bytes() == before
