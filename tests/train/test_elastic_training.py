"""Elastic training through the one loop (Task.batch_loss) and the ``slice`` verb's run directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.train.train_tiny import tiny_config, write_tiny_file
from wavesurrogate import tasks
from wavesurrogate.cli import main
from wavesurrogate.errors import ConfigError
from wavesurrogate.nn import elastic
from wavesurrogate.runs import load_run
from wavesurrogate.runs.slice import family
from wavesurrogate.train.loop import build_model, config_from_dict, train

MODEL = {"name": "elastic_cnn2d", "kwargs": {"n_in": 2, "n_out": 1, "width": 4, "blocks": 2, "rank": 4}}
PAIRS = [[1, 1], [1, 2], [2, 4]]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_tiny_file(tmp_path_factory.mktemp("el") / "tiny.h5", n_cases=5, n_test=1, n_frames=6)


def cfg(data: Path, out: Path, **elastic_over):
    el = {"pairs": PAIRS, **elastic_over}
    return config_from_dict(tiny_config(data, out, model=MODEL, elastic=el, epochs=2))


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    return train(cfg(data, tmp_path_factory.mktemp("el") / "run"))


def test_loss_is_the_sum_over_pairs_plus_distillation(data, tmp_path):
    c = cfg(data, tmp_path / "r", distill=0.5)
    task = tasks.get("forecast")
    d = task.prepare(c.resolved())
    model = build_model(c, d.stats)
    x, y = (torch.stack(t) for t in zip(*(d.train[i] for i in range(3)), strict=True))
    model.eval()
    with torch.no_grad():
        full = model(x)
        want = (full - y).pow(2).flatten(1).mean(1)
        for b, r in PAIRS[:2]:
            with elastic.active(model, b, r):
                p = model(x)
            want = want + (p - y).pow(2).flatten(1).mean(1) + 0.5 * (p - full).pow(2).flatten(1).mean(1)
        got = task.batch_loss(model, [x, y], c)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    # random sampling: one pair per training step; validation (eval mode) still sums every pair
    cr = cfg(data, tmp_path / "r", sampling="random", distill=0.0)
    with torch.no_grad():
        torch.testing.assert_close(task.batch_loss(model, [x, y], cr),
                                   task.batch_loss(model, [x, y], cfg(data, tmp_path / "r", distill=0.0)))
        model.train()
        singles = {round(float(task.batch_loss(model, [x, y], cr).sum()), 6) for _ in range(12)}
    assert 2 <= len(singles) <= 3


def test_pairs_that_do_not_fit_fail_before_anything_is_written(data, tmp_path):
    with pytest.raises(ConfigError, match="must include the full model"):
        train(cfg(data, tmp_path / "bad", pairs=[[1, 1], [1, 2]]))
    assert not (tmp_path / "bad" / "model.json").exists()
    with pytest.raises(ConfigError, match="pairs"):
        cfg(data, tmp_path / "bad", pairs=[[1, 1], [1, 1]])


def test_slice_round_trip_and_refusals(run, data, tmp_path, capsys):
    out = tmp_path / "s12"
    assert main(["slice", str(run), "--blocks", "1", "--rank", "2", "--out", str(out)]) == 0
    full, _ = load_run(run)
    sub, info = load_run(out)
    meta = json.loads((out / "model.json").read_text())
    assert meta["kwargs"]["blocks"] == 1 and meta["kwargs"]["rank"] == 2 and meta["sliced_from"]["rank"] == 2
    assert info.config.elastic.pairs == [(1, 1), (1, 2)]
    assert family(out) == {"family": str(run.resolve()), "blocks": 1, "rank": 2}  # bench's curves
    assert family(run) == {"family": str(run.resolve()), "blocks": 2, "rank": 4}
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad(), elastic.active(full, 1, 2):
        torch.testing.assert_close(sub(x), full(x), rtol=1e-5, atol=1e-6)
    assert (out / "weights.safetensors").stat().st_size < (run / "weights.safetensors").stat().st_size
    assert sum(p.numel() for p in sub.parameters()) == meta["n_params"] < json.loads(
        (run / "model.json").read_text())["n_params"]
    # every other verb reads it: evaluate (CLI), the task's rollout (what bench and the demo call)
    assert main(["evaluate", str(out), "--data", str(data), "--out", str(tmp_path / "ev.json")]) == 0
    ev = json.loads((tmp_path / "ev.json").read_text())
    assert np.isfinite(ev["one_step"]["rel_l2_pooled"])
    f = np.random.default_rng(0).normal(size=(1, 4, 16, 16))
    pred = tasks.get("forecast").predict(sub, info.stats, f, np.full((1, 16, 16), 1.5), 2, 3)
    assert pred.shape == (1, 3, 16, 16)
    # a slice of a slice, and the refusals: one line, exit 2, nothing written or overwritten
    assert main(["slice", str(out), "--blocks", "1", "--rank", "1", "--out", str(tmp_path / "s11")]) == 0
    capsys.readouterr()
    before = (out / "weights.safetensors").read_bytes()
    for args in (["--blocks", "2", "--rank", "2", "--out", str(tmp_path / "x")],  # not a trained pair
                 ["--blocks", "1", "--rank", "1", "--out", str(out)],  # an existing run, no --overwrite
                 ["--blocks", "0", "--rank", "1", "--out", str(tmp_path / "y")],  # bad argument
                 ["--blocks", "1", "--rank", "1", "--out", str(run)]):  # the source itself
        code = 0
        try:
            code = main(["slice", str(run), *args])
        except SystemExit as exc:  # argparse
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert (out / "weights.safetensors").read_bytes() == before
    assert main(["slice", str(run), "--blocks", "1", "--rank", "1", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "model.json").read_text())["kwargs"]["rank"] == 1
    assert not list(tmp_path.glob(".s12.*"))


def test_a_run_not_trained_elastic_is_refused(data, tmp_path, capsys):
    plain = train(config_from_dict(tiny_config(data, tmp_path / "plain", model=MODEL, epochs=1)))
    assert main(["slice", str(plain), "--blocks", "1", "--rank", "1", "--out", str(tmp_path / "o")]) == 2
    assert "not trained elastic" in capsys.readouterr().err
    assert family(plain) is None


def test_the_cp_field_decoder_trains_elastic_through_the_points_task(tmp_path):
    """source_to_field's default batch_pred (model(params, coords) against the values) carries the pairs."""
    kw = {"n_params": 2, "n_frames": 3, "ny": 8, "nx": 8, "width": 4, "latent": 2, "n_up": 2,
          "conv": {"format": "cp", "rank": 4}}
    c = config_from_dict({"name": "f", "data": {"path": str(tmp_path / "x.h5"), "task": "source_to_field"},
                          "model": {"name": "field_decoder", "kwargs": kw},
                          "elastic": {"pairs": [[1, 2], [2, 4]], "distill": 0.3}})
    torch.manual_seed(0)
    from wavesurrogate.nn import registry

    model = registry.build("field_decoder", kw).eval()
    p, q, v = torch.randn(3, 2), torch.rand(3, 20, 3) * 2 - 1, torch.randn(3, 20)
    with torch.no_grad():
        full = model(p, q)
        with elastic.active(model, 1, 2):
            sub = model(p, q)
        want = ((full - v) ** 2).mean(1) + ((sub - v) ** 2).mean(1) + 0.3 * ((sub - full) ** 2).mean(1)
        torch.testing.assert_close(tasks.get("source_to_field").batch_loss(model, [p, q, v], c), want)
