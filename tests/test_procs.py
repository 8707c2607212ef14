"""Processes (issue 16): two writers of one run directory, SIGTERM/SIGINT/SIGKILL during `simulate` and
`train`. Every command here is the real CLI in its own process; each test is bounded by a stated time.

- Concurrent writers: exactly one `train` proceeds, the other prints one line and exits with code 2.
- A signal: one line on stderr, exit code 128 + signal, no process left behind (worker processes and the
  multiprocessing resource tracker included, checked in /proc), no temporary file left, and the rerun
  (or `--resume`) gives the bytes (weights) of an uninterrupted run.
- SIGKILL of `simulate`'s parent: its workers die with it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.bad_inputs import make_corpus as mc

EPOCHS = 12  # of the trainings interrupted (signalled once the first epoch is on disk)
BOUND_S = 120  # every command of this file ends within this (a hang fails the test instead of the suite)

CAMPAIGN = yaml.safe_load(mc.GOOD_CAMPAIGN) | {
    "cases": 6, "test_cases": 0, "grid": {"nx": 64, "ny": 64, "dx_m": 10.0, "dy_m": 10.0},
    "time": {"n_frames": 160, "frame_stride": 2}, "source": {"kind": "point", "x_m": [150.0, 450.0],
                                                           "y_m": 300.0, "freq_hz": 20.0, "amplitude": 1e7}}


def _cli(*args: str) -> subprocess.Popen:
    path = os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH"))
                           if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    # SIGINT as in a terminal even if this process inherited it ignored (a background job of a shell)
    return subprocess.Popen([sys.executable, "-m", "wavesurrogate.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, their children, ...)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (st := _stat(int(d.name))) is not None and st[0] not in "ZX":
            parents[int(d.name)] = st[1]
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parents.items() if pp == p}
        todo.extend(kids - found)
        found |= kids
    return found


def alive(pids: set[int]) -> set[int]:
    """The processes of ``pids`` still running (zombies waiting to be reaped count as gone)."""
    return {p for p in pids if (st := _stat(p)) is not None and st[0] not in "ZX"}


def _wait_for(cond: Any, what: str, proc: subprocess.Popen) -> None:
    t0 = time.monotonic()
    while not cond():
        assert proc.poll() is None, f"ended before {what}: {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() - t0 < BOUND_S, f"no {what} within {BOUND_S} s"
        time.sleep(0.05)


def _ended(proc: subprocess.Popen) -> tuple[int, list[str]]:
    _, err = proc.communicate(timeout=BOUND_S)
    return proc.returncode, err.strip().splitlines()


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The campaign config and its file made without interruption (in this process, one worker)."""
    from wavesurrogate.data.campaign import run_campaign

    root = tmp_path_factory.mktemp("procs")
    cfg = root / "campaign.yaml"
    cfg.write_text(yaml.safe_dump(CAMPAIGN), encoding="utf-8")
    fresh = run_campaign(cfg, root / "fresh.h5", workers=1, progress=False)
    return {"root": root, "config": cfg, "fresh": fresh}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_to_simulate_leaves_no_process_and_the_rerun_is_identical(campaign: dict[str, Path],
                                                                        sig: int) -> None:
    from wavesurrogate.data.campaign import run_campaign

    out = campaign["root"] / f"sig{sig}.h5"
    work = out.with_name(out.name + ".work")
    proc = _cli("simulate", str(campaign["config"]), "--out", str(out), "--workers", "2")
    _wait_for(lambda: any(work.glob("case-*.npz")), "first shard", proc)
    kids = descendants(proc.pid)
    assert len(kids) >= 2, kids  # two workers (and the resource tracker)
    proc.send_signal(sig)
    code, lines = _ended(proc)
    # 128 + signal; or dead of SIGINT itself after its line (CPython re-sends SIGINT at exit in some cases)
    assert code in (128 + sig, -sig) and len(lines) == 1 and "Traceback" not in lines[0], (code, lines)
    t0 = time.monotonic()
    while alive(kids) and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert not alive(kids), f"left behind: {alive(kids)}"
    assert not out.exists() and not list(work.glob(".*.tmp")) and not list(out.parent.glob(f".{out.name}.*"))
    run_campaign(campaign["config"], out, workers=1, progress=False)  # the rerun, from the shards kept
    assert out.read_bytes() == campaign["fresh"].read_bytes() and not work.exists()


@pytest.mark.slow
def test_sigkill_to_simulate_kills_its_workers(campaign: dict[str, Path]) -> None:
    out = campaign["root"] / "killed.h5"
    proc = _cli("simulate", str(campaign["config"]), "--out", str(out), "--workers", "2")
    work = out.with_name(out.name + ".work")
    _wait_for(lambda: any(work.glob("case-*.npz")), "first shard", proc)
    kids = descendants(proc.pid)
    proc.kill()
    proc.communicate(timeout=BOUND_S)
    t0 = time.monotonic()
    while alive(kids) and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert kids and not alive(kids), f"workers outlived their parent: {alive(kids)}"


# ---------------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def training(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Data, configs, and the weights of an uninterrupted run of EPOCHS epochs."""
    from safetensors.torch import load_file

    from wavesurrogate.train.loop import config_from_dict, train

    root = tmp_path_factory.mktemp("train_procs")
    data = mc.write_data(root / "data.h5", n=16, n_frames=8, n_cases=6, n_test=1)

    def cfg(out: Path, epochs: int) -> dict[str, Any]:
        return mc.train_config(data=str(data), out=str(out), epochs=epochs, num_threads=1, batch_size=4)

    straight = train(config_from_dict(cfg(root / "straight", EPOCHS)))
    return {"root": root, "cfg": cfg, "weights": load_file(str(straight / "weights.safetensors"))}


def _config(training: dict[str, Any], name: str, epochs: int) -> tuple[Path, Path]:
    run = training["root"] / name
    path = training["root"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(training["cfg"](run, epochs)), encoding="utf-8")
    return path, run


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_to_train_then_resume_gives_the_uninterrupted_weights(training: dict[str, Any],
                                                                     sig: int) -> None:
    import torch
    from safetensors.torch import load_file

    from wavesurrogate.runs import layout
    from wavesurrogate.train.loop import train_from_config

    cfg, run = _config(training, f"sig{sig}", EPOCHS)
    proc = _cli("train", str(cfg))
    _wait_for(lambda: (run / layout.METRICS).is_file(), "first checkpoint", proc)
    proc.send_signal(sig)
    code, lines = _ended(proc)
    # 128 + signal; or dead of SIGINT itself after its line (CPython re-sends SIGINT at exit in some cases)
    assert code in (128 + sig, -sig) and len(lines) == 1 and "Traceback" not in lines[0], (code, lines)
    assert not list(run.glob(".*.tmp")) and not descendants(proc.pid)
    assert len((run / layout.METRICS).read_text().splitlines()) < EPOCHS  # it was interrupted
    train_from_config(None, resume=run)
    got, want = load_file(str(run / layout.WEIGHTS)), training["weights"]
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


@pytest.mark.slow
def test_two_trains_of_one_run_directory_exactly_one_proceeds(training: dict[str, Any]) -> None:
    cfg, run = _config(training, "twice", 3)
    a, b = _cli("train", str(cfg)), _cli("train", str(cfg))
    (ca, la), (cb, lb) = _ended(a), _ended(b)
    assert sorted([ca, cb]) == [0, 2], (ca, la, cb, lb)
    loser = la if ca == 2 else lb
    assert len(loser) == 1 and ("in use by another process" in loser[0] or "already holds a run" in loser[0])
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3  # one run's epochs, not a mix


def test_lock_refuses_a_second_holder_and_is_released(tmp_path: Path) -> None:
    from wavesurrogate.errors import CheckpointError
    from wavesurrogate.runs.layout import lock_run

    run = tmp_path / "a" / "run"
    with lock_run(run):
        with pytest.raises(CheckpointError, match="in use by another process"), lock_run(run):
            pass
    with lock_run(run):  # released on exit
        (run / "x").write_text("kept")
    with pytest.raises(RuntimeError), lock_run(tmp_path / "b" / "run"):
        raise RuntimeError("a failure before anything was written")
    assert not (tmp_path / "b").exists() and (run / "x").is_file()  # what it created and left empty: gone


def test_signals_wait_for_safe_points_and_finalizers_do_not_swallow_them() -> None:
    import threading

    from wavesurrogate.procs import Terminated, deferred_signals, signals_raise

    reached = []
    with signals_raise():
        with pytest.raises(Terminated), deferred_signals() as check:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # recorded, not acted on: a worker pool's code is never interrupted
            reached.append("after the signal")
            check()  # the safe point: raises here
            reached.append("never")
        assert reached == ["after the signal"]

        class Slow:
            def __del__(self) -> None:  # a signal landing here cannot propagate: it is sent again
                t0 = time.monotonic()
                while time.monotonic() - t0 < 0.3:
                    pass

        with pytest.raises(Terminated):
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
            x = Slow()
            del x
            time.sleep(5)
