"""Per-step exponential decay (``schedule.name: exponential_steps``): the closed form lr0·γ^(k/decay_steps)
after k optimiser steps, in the scheduler and through the training loop, and an exact resume."""

from __future__ import annotations

import json

import pytest
import torch
import train_tiny as tt

from wavesurrogate import runs as ck
from wavesurrogate.errors import ConfigError
from wavesurrogate.train.loop import config_from_dict, train, train_from_config
from wavesurrogate.train.optim import optimizer, scheduler, steps_per_batch

SCHED = {"name": "exponential_steps", "gamma": 0.9, "decay_steps": 3}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tt.write_tiny_file(tmp_path_factory.mktemp("data") / "tiny.h5")


def _cfg(data, out, **over):
    return config_from_dict(tt.tiny_config(data, out, schedule=SCHED, **over))


def test_lr_after_k_steps_is_the_closed_form(tmp_path):
    cfg = config_from_dict(
        tt.tiny_config(
            tmp_path / "d.h5", tmp_path / "r", optim={"name": "adamw", "lr": 1e-3},
            schedule={"name": "exponential_steps", "gamma": 0.9, "decay_steps": 2000},
        )
    )
    assert steps_per_batch(cfg) and not steps_per_batch(config_from_dict(tt.tiny_config(tmp_path, tmp_path)))
    w = torch.nn.Parameter(torch.ones(2))
    opt = optimizer(cfg, iter([w]))
    sched = scheduler(cfg, opt)
    for k in range(1, 5001):
        w.grad = torch.ones(2)
        opt.step()
        sched.step()
        if k in (1, 1999, 2000, 4000, 5000):
            assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.9 ** (k / 2000), rel=1e-15)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.81 * 0.9**0.5, rel=1e-15)


def test_loop_steps_the_schedule_after_every_optimiser_step(data, tmp_path):
    run = train(_cfg(data, tmp_path / "r", epochs=3))
    lines = [json.loads(x) for x in (run / ck.METRICS).read_text().splitlines()]
    steps_before = [0] + [line["step"] for line in lines[:-1]]
    assert lines[0]["step"] > 1  # several optimiser steps per epoch, so per-step and per-epoch differ
    for line, k in zip(lines, steps_before, strict=True):  # lr logged = the rate the epoch started with
        assert line["lr"] == pytest.approx(1e-2 * 0.9 ** (k / 3), rel=1e-12)
    state = ck.load_state(run / ck.OPTIM)
    assert state["scheduler"]["last_epoch"] == lines[-1]["step"]
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-2 * 0.9 ** (lines[-1]["step"] / 3))


def test_resume_with_per_step_schedule_is_bit_exact(data, tmp_path):
    straight = train(_cfg(data, tmp_path / "straight", epochs=3))
    part = train(_cfg(data, tmp_path / "part", epochs=3), stop_after_epoch=1)
    resumed = train_from_config(None, resume=part)
    a, b = ck.load_state(straight / ck.OPTIM), ck.load_state(resumed / ck.OPTIM)
    assert [(m["train_loss"], m["lr"]) for m in a["metrics"]] == [
        (m["train_loss"], m["lr"]) for m in b["metrics"]
    ]
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]


def test_decay_steps_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="decay_steps"):
        config_from_dict(
            tt.tiny_config(tmp_path, tmp_path, schedule={"name": "exponential_steps", "decay_steps": 0})
        )
