"""The training loop: determinism, resume equality (also after SIGKILL), NaN guard, CLI, evaluate."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import train_tiny as tt
from safetensors.torch import load_file

from wavesurrogate import runs as ck
from wavesurrogate.cli import main
from wavesurrogate.data.store import open_data
from wavesurrogate.errors import CheckpointError, ConfigError, DataFileError, TrainingDiverged
from wavesurrogate.eval.evaluate import evaluate_run
from wavesurrogate.nn import registry
from wavesurrogate.train.loop import config_from_dict, train, train_from_config

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tt.write_tiny_file(tmp_path_factory.mktemp("data") / "tiny.h5")


def _cfg(data_file: Path, out: Path, **over):
    return config_from_dict(tt.tiny_config(data_file, out, **over))


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / ck.WEIGHTS))


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (run / ck.METRICS).read_text().splitlines()]


def test_same_seed_same_weights_other_seed_differs(data, tmp_path):
    a = train(_cfg(data, tmp_path / "a", epochs=2))
    b = train(_cfg(data, tmp_path / "b", epochs=2))
    c = train(_cfg(data, tmp_path / "c", epochs=2, seed=4))
    _assert_same(_weights(a), _weights(b))
    assert not torch.equal(_weights(a)["last.c1.weight"], _weights(c)["last.c1.weight"])


def test_training_reduces_the_loss(data, tmp_path):
    run = train(_cfg(data, tmp_path / "r", epochs=6))
    losses = _losses(run)
    assert losses[-1] < 0.7 * losses[0]


RICH = {"schedule": {"name": "cosine"}, "model": {"name": tt.FORECAST, "kwargs": {"dropout": 0.2}}}


def test_resume_equals_uninterrupted(data, tmp_path):
    straight = train(_cfg(data, tmp_path / "straight", **RICH))
    part = train(_cfg(data, tmp_path / "part", **RICH), stop_after_epoch=2)
    assert ck.load_state(part / ck.OPTIM)["epoch"] == 2
    resumed = train_from_config(None, resume=part)
    _assert_same(_weights(straight), _weights(resumed))
    assert _losses(straight) == _losses(resumed)
    s, r = ck.load_state(straight / ck.OPTIM), ck.load_state(resumed / ck.OPTIM)
    for k, v in s["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg_sq"], r["optimizer"]["state"][k]["exp_avg_sq"])


def test_resume_after_kill_between_weights_and_commit(data, tmp_path):
    """weights.safetensors and metrics.jsonl of epoch 3 written, optimizer.pt still at epoch 2."""
    straight = train(_cfg(data, tmp_path / "straight", **RICH))
    ahead = train(_cfg(data, tmp_path / "ahead", **RICH), stop_after_epoch=3)
    part = train(_cfg(data, tmp_path / "part", **RICH), stop_after_epoch=2)
    for f in (ck.WEIGHTS, ck.METRICS):
        shutil.copy(ahead / f, part / f)
    resumed = train_from_config(None, resume=part)
    _assert_same(_weights(straight), _weights(resumed))
    assert [json.loads(x)["epoch"] for x in (resumed / ck.METRICS).read_text().splitlines()] == [1, 2, 3, 4]


def test_init_from_starts_at_the_other_runs_best_weights(data, tmp_path):
    a = train(_cfg(data, tmp_path / "a", epochs=2))
    sgd = {"name": "sgd", "lr": 1e-30, "momentum": 0.0}  # a step too small to move any weight
    b = train(_cfg(data, tmp_path / "b", epochs=1, seed=9, optim=sgd), init_from=a)
    wa, wb = _weights(a), _weights(b)
    for k in (k for k in wa if k.startswith("best.")):
        assert torch.equal(wb["last." + k[5:]], wa[k]), k
    fresh = train(_cfg(data, tmp_path / "c", epochs=1, seed=9, optim=sgd))
    assert not torch.equal(_weights(fresh)["last.c1.weight"], wa["best.c1.weight"])
    wide = tt.tiny_config(data, tmp_path / "d", epochs=1)
    wide["model"]["kwargs"]["width"] = 5
    with pytest.raises(CheckpointError, match="weights do not fit"):
        train(config_from_dict(wide), init_from=a)
    with pytest.raises(ConfigError, match="--init-from"):
        train(_cfg(data, tmp_path / "a", epochs=3), resume=a, init_from=a)
    with pytest.raises(ConfigError, match="run directory being written"):
        train(_cfg(data, a, epochs=1), overwrite=True, init_from=a)
    assert (a / ck.WEIGHTS).is_file()  # the source run is untouched
    other = tt.tiny_config(data, tmp_path / "f", epochs=1)
    other["model"] = {"name": "cnn2d", "kwargs": {"width": 4, "depth": 1}}
    with pytest.raises(CheckpointError, match="holds model 'test_tiny_forecast'"):
        train(config_from_dict(other), init_from=a)
    import hashlib

    start = json.loads((b / ck.MODEL_JSON).read_text())["init_from"]
    assert start == {"run": str(a.resolve()),
                     "weights_sha256": hashlib.sha256((a / ck.WEIGHTS).read_bytes()).hexdigest()}
    cfg = tt.write_config(tmp_path / "e.yaml", tt.tiny_config(data, tmp_path / "e", epochs=1, seed=9,
                                                              optim=sgd))
    assert main(["train", str(cfg), "--init-from", str(a)]) == 0
    assert torch.equal(_weights(tmp_path / "e")["last.c1.weight"], wa["best.c1.weight"])


def test_a_model_that_does_not_fit_its_data_fails_before_anything_is_written(data, tmp_path):
    cfg = tt.tiny_config(data, tmp_path / "run", epochs=1)
    cfg["data"] = {"path": str(data), "task": "source_to_field", "points_per_case": 8, "val_fraction": 0.25}
    cfg["model"] = {"name": tt.FIELD, "kwargs": {"n_params": 3}}  # the file has 2 parameters
    with pytest.raises(ConfigError, match="does not fit the data"):
        train(config_from_dict(cfg))
    assert not (tmp_path / "run").exists()


def test_resume_may_extend_epochs_without_schedule(data, tmp_path):
    straight = train(_cfg(data, tmp_path / "s", epochs=4))
    short = train(_cfg(data, tmp_path / "short", epochs=2))
    longer = tt.write_config(tmp_path / "longer.yaml", tt.tiny_config(data, tmp_path / "short", epochs=4))
    _assert_same(_weights(straight), _weights(train_from_config(longer, resume=short)))
    assert ck.read_run_config(short).epochs == 4  # the run now says how far it was trained


def test_resume_refuses_other_changes(data, tmp_path):
    run = train(_cfg(data, tmp_path / "r", epochs=1))
    other = tt.write_config(tmp_path / "o.yaml", tt.tiny_config(data, run, optim={"name": "adam", "lr": 0.5}))
    with pytest.raises(ConfigError, match="optim"):
        train_from_config(other, resume=run)
    cos = tt.write_config(tmp_path / "c.yaml",
                          tt.tiny_config(data, run, epochs=3, schedule={"name": "cosine"}))
    with pytest.raises(ConfigError, match="schedule"):
        train_from_config(cos, resume=run)


def test_existing_run_is_not_overwritten_without_flag(data, tmp_path):
    run = train(_cfg(data, tmp_path / "r", epochs=1))
    before = (run / ck.WEIGHTS).read_bytes()
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(_cfg(data, run, epochs=1))
    assert (run / ck.WEIGHTS).read_bytes() == before
    train(_cfg(data, run, epochs=1, seed=9), overwrite=True)
    assert (run / ck.WEIGHTS).read_bytes() != before


def test_sigkill_during_training_then_resume(data, tmp_path):
    slow = {"model": {"name": tt.FORECAST, "kwargs": {"sleep_s": 0.02}}, "epochs": 6}
    cfg = tt.write_config(tmp_path / "slow.yaml", tt.tiny_config(data, tmp_path / "killed", **slow))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(HERE / "train_worker.py"), "train", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while not (tmp_path / "killed" / ck.OPTIM).exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert ck.load_state(tmp_path / "killed" / ck.OPTIM)["epoch"] < 6  # really killed mid-run
    resumed = train_from_config(None, resume=tmp_path / "killed")
    straight = train(_cfg(data, tmp_path / "straight", epochs=6, model={"name": tt.FORECAST,
                                                                         "kwargs": {"sleep_s": 0.0}}))
    _assert_same(_weights(straight), _weights(resumed))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(data, tmp_path):
    # 18 training windows, batch 4 → 5 steps per epoch; the 7th forward (epoch 2) returns NaN
    cfg = _cfg(data, tmp_path / "r", epochs=3, model={"name": tt.FORECAST, "kwargs": {"nan_after": 7}})
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 2 .*last good checkpoint: epoch 1"):
        train(cfg)
    run = tmp_path / "r"
    assert ck.load_state(run / ck.OPTIM)["epoch"] == 1
    model, info = ck.load_run(run, "last")
    assert info.epoch == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert len((run / ck.METRICS).read_text().splitlines()) == 1


def test_stats_come_from_the_training_split_only(data, tmp_path):
    run = train(_cfg(data, tmp_path / "r", epochs=1))
    stats = json.loads((run / ck.STATS).read_text())
    tr, va, te = (stats["splits"][k] for k in ("train", "val", "test"))
    assert te == [4, 5] and not set(tr) & set(va) and sorted(tr + va) == [0, 1, 2, 3]
    with open_data(data) as f:
        fields, _ = f.load_all(tr)
        everything, _ = f.load_all()
    assert stats["field_mean"] == pytest.approx(float(fields.astype(np.float64).mean()), rel=1e-12)
    assert abs(stats["field_mean"] - float(everything.astype(np.float64).mean())) > 1e-3


class _ThreadProbe(tt.TinyForecast):
    seen: list[int] = []

    def forward(self, x):
        self.seen.append(torch.get_num_threads())
        return super().forward(x)


def test_num_threads_honoured_and_restored_eval_every(data, tmp_path):
    tt._register("test_thread_probe", registry.FRAMES, _ThreadProbe)
    before = torch.get_num_threads()
    want = 2 if before == 1 else 1
    run = train(_cfg(data, tmp_path / "r", epochs=3, eval_every=2, num_threads=want,
                     model={"name": "test_thread_probe"}))
    assert set(_ThreadProbe.seen) == {want} and torch.get_num_threads() == before
    lines = [json.loads(x) for x in (run / ck.METRICS).read_text().splitlines()]
    assert [x["val_loss"] is None for x in lines] == [True, False, False]  # epochs 2 and 3 (the last)
    assert all(x["samples_per_s"] > 0 and x["lr"] == 1e-2 for x in lines)


def test_model_must_fit_the_task(data, tmp_path):
    with pytest.raises(ConfigError, match="solves"):
        train(_cfg(data, tmp_path / "r", model={"name": tt.FIELD}))
    with pytest.raises(ConfigError, match="n_in"):
        train(_cfg(data, tmp_path / "r", model={"name": tt.FORECAST, "kwargs": {"n_in": 3}}))


def test_cli_train_and_evaluate_end_to_end(data, tmp_path, capsys):
    cfg = tt.write_config(tmp_path / "c.yaml", tt.tiny_config(data, tmp_path / "run", epochs=2))
    assert main(["train", str(cfg)]) == 0
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == sorted(ck.RUN_FILES)
    meta = json.loads((run / ck.MODEL_JSON).read_text())
    assert meta["name"] == tt.FORECAST and meta["model_version"] == 1
    assert meta["kwargs"] == {"n_in": 2, "n_out": 1, "width": 4, "nan_after": 0, "sleep_s": 0.0,
                              "dropout": 0.0}
    w = _weights(run)
    assert {k.split(".", 1)[0] for k in w} == {"best", "last"}
    capsys.readouterr()
    assert main(["train", str(cfg)]) == 2  # the run exists: one line, exit 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--resume" in err
    assert main(["train", "--resume", str(run)]) == 0  # finished: nothing to do
    _assert_same(w, _weights(run))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(data), "--out", str(tmp_path / "ev.json")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res == json.loads((tmp_path / "ev.json").read_text())
    assert res["split"] == "test" and res["cases"] == [4, 5]
    assert res["one_step"]["n_samples"] == 2 * (8 - 2 - 1 + 1)
    assert set(res["one_step"]["frmse"]) == {"low", "mid", "high"}
    assert res["rollout"]["horizon"] == [1, 2, 3, 4, 5, 6] and res["diverged"] is False
    # the one-step error equals the rollout's first horizon (same inputs, same target frame)
    assert res["rollout"]["rmse"][0] <= res["one_step"]["rmse"] * 1.5


def test_evaluate_one_step_matches_an_independent_computation(data, tmp_path):
    run = train(_cfg(data, tmp_path / "r", epochs=1))
    res = json.loads(evaluate_run(run, data))
    model, info = ck.load_run(run)
    s = info.stats
    with open_data(data) as f:
        fields, vel = f.load_all([4, 5])
    fn = (fields - s["field_mean"]) / s["field_std"]
    vn = (vel - s["velocity_mean"]) / s["velocity_std"]
    errs, trues = [], []
    with torch.no_grad():
        for c in range(2):
            for t0 in range(6):
                x = np.concatenate([fn[c, t0:t0 + 2], vn[c][None]])[None].astype(np.float32)
                p = model(torch.from_numpy(x))[0].double().numpy() * s["field_std"] + s["field_mean"]
                errs.append(p - fields[c, t0 + 2:t0 + 3])
                trues.append(fields[c, t0 + 2:t0 + 3].astype(np.float64))
    e, t = np.stack(errs), np.stack(trues)
    assert res["one_step"]["rmse"] == pytest.approx(float(np.sqrt(np.mean(e**2))), rel=1e-5)
    assert res["one_step"]["max_error"] == pytest.approx(float(np.abs(e).max()), rel=1e-5)
    assert res["one_step"]["rel_l2_pooled"] == pytest.approx(float(np.linalg.norm(e) / np.linalg.norm(t)),
                                                              rel=1e-5)


def test_train_or_reuse_reuses_resumes_and_retrains(data, tmp_path):
    from wavesurrogate.train.loop import train_or_reuse

    ref = train(_cfg(data, tmp_path / "ref", epochs=2))
    cfg = _cfg(data, tmp_path / "r", epochs=2)
    train(cfg, stop_after_epoch=1)  # interrupted after one epoch: resumed
    assert train_or_reuse(cfg) == (tmp_path / "r", True)
    _assert_same(_weights(ref), _weights(tmp_path / "r"))
    before = (tmp_path / "r" / ck.WEIGHTS).stat().st_mtime_ns
    assert train_or_reuse(cfg.model_copy(update={"progress": True})) == (tmp_path / "r", False)  # finished
    assert (tmp_path / "r" / ck.WEIGHTS).stat().st_mtime_ns == before
    assert train_or_reuse(_cfg(data, tmp_path / "r", epochs=2, seed=4))[1] is True  # another config
    assert not torch.equal(_weights(ref)["last.c1.weight"], _weights(tmp_path / "r")["last.c1.weight"])
    # a fine-tune is reused only when it started from the same weights
    ft = _cfg(data, tmp_path / "ft", epochs=1)
    assert train_or_reuse(ft, init_from=ref)[1] is True
    assert train_or_reuse(ft, init_from=ref)[1] is False
    assert train_or_reuse(ft, init_from=tmp_path / "r")[1] is True  # other start weights: trained again
    assert train_or_reuse(ft)[1] is True  # and from scratch is yet another run


def test_evaluate_window_stride_and_error_over_all_horizons(data, tmp_path):
    """window_stride 2: every other window per case; the rollout error over all horizons pools them."""
    from wavesurrogate.eval.evaluate import evaluate_model

    model, info = ck.load_run(train(_cfg(data, tmp_path / "r", epochs=1)))
    every = evaluate_model(model, info, data, rollout_start=2)
    strided = evaluate_model(model, info, data, rollout_start=2, window_stride=2)
    assert every["one_step"]["n_samples"] == 2 * 6 and strided["one_step"]["n_samples"] == 2 * 3
    assert strided["rollout"] == every["rollout"]
    r = every["rollout"]
    e2 = np.square(r["rmse"])  # per horizon: mean square error, and squared truth = e2 / rel_l2²
    want = float(np.sqrt(e2.sum() / (e2 / np.square(r["rel_l2"])).sum()))
    assert r["rel_l2_all_horizons"] == pytest.approx(want, rel=1e-6)


def test_rollout_from_a_later_start_frame(data, tmp_path, capsys):
    """--rollout-start 3: the rollout's first horizon is the one-step error of the windows starting at frame
    3 (computed independently), its horizon runs to the last frame; a start leaving nothing is refused."""
    run = train(_cfg(data, tmp_path / "r", epochs=1))
    assert main(["evaluate", str(run), "--data", str(data), "--rollout-start", "3"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["rollout"]["start_frame"] == 3 and res["rollout"]["horizon"] == [1, 2, 3]
    model, info = ck.load_run(run)
    s = info.stats
    with open_data(data) as f:
        fields, vel = f.load_all([4, 5])
    fn = (fields - s["field_mean"]) / s["field_std"]
    vn = (vel - s["velocity_mean"]) / s["velocity_std"]
    x = np.concatenate([fn[:, 3:5], vn[:, None]], axis=1).astype(np.float32)
    with torch.no_grad():
        p = model(torch.from_numpy(x))[:, 0].double().numpy() * s["field_std"] + s["field_mean"]
    e = p - fields[:, 5]
    assert res["rollout"]["rmse"][0] == pytest.approx(float(np.sqrt(np.mean(e**2))), rel=1e-5)
    assert main(["evaluate", str(run), "--data", str(data), "--rollout-start", "6"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--rollout-start" in err


def test_diverging_rollout_is_reported_not_raised(data, tmp_path):
    run = train(_cfg(data, tmp_path / "r", epochs=1))
    w = _weights(run)
    sd = {k.split(".", 1)[1]: v * (1e6 if ".c2." in k else 1.0)
          for k, v in w.items() if k.startswith("best.")}
    ck.save_weights(run / ck.WEIGHTS, sd, sd, {"epoch": 1, "best_epoch": 1, "best_val_loss": 0.0})
    res = json.loads(evaluate_run(run, data))
    assert res["diverged"] is True and res["rollout"]["diverged_at"] == 1


def test_evaluate_refuses_a_data_file_that_does_not_fit(data, tmp_path):
    run = train(_cfg(data, tmp_path / "r", epochs=1))
    other = tt.write_tiny_file(tmp_path / "big.h5", n=20)
    with pytest.raises(DataFileError, match="grid"):
        evaluate_run(run, other)
    short = tt.write_tiny_file(tmp_path / "short.h5", n_frames=2)
    with pytest.raises(DataFileError, match="frames"):
        evaluate_run(run, short)


def test_source_to_field_trains_and_evaluates(data, tmp_path):
    over = {"data": {"path": str(data), "task": "source_to_field", "points_per_case": 64,
                     "val_fraction": 0.25},
            "model": {"name": tt.FIELD, "kwargs": {"n_params": 2, "width": 8}}, "epochs": 2, "batch_size": 2}
    run = train(_cfg(data, tmp_path / "f", **over))
    stats = json.loads((run / ck.STATS).read_text())
    assert stats["param_names"] == ["c_m_per_s", "kx"]
    res = json.loads(evaluate_run(run, data))
    assert res["task"] == "source_to_field" and res["rollout"] is None
    assert res["one_step"]["n_samples"] == 2 and res["one_step"]["rmse"] > 0
    last = res["last_frame"]  # the last frame alone: at most the whole field's largest error
    assert last["n_samples"] == 2 and 0 < last["max_error"] <= res["one_step"]["max_error"]
