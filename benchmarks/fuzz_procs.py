"""Fuzz processes: concurrent writers of one run directory, and signals during `simulate` and `train`.

    .venv/bin/python -m benchmarks.fuzz_procs [--cases 1000] [--seed 0] [--out FILE.json]

(also ``benchmarks.fuzz --procs N``). Every command is the real CLI (``wavesurrogate.cli.main``) in its own
process, forked from this one (torch already imported: a case costs its work, not an interpreter start),
its stdout and stderr in files. Strategies, drawn at random per case:

- ``writers``: 2–3 `train` of one config into one run directory (fresh, ``--overwrite`` over a finished
  run, or ``--resume`` of an interrupted one), started with random delays. Each must exit 0 or 2 (one line:
  "in use" or "already holds a run"); a fresh directory gets exactly one winner; the directory afterwards
  holds the weights of an uninterrupted run of the config, bit for bit (never a mix).
- ``signals``: SIGTERM, SIGINT, SIGHUP or SIGKILL at a random moment to `simulate` (1 or 2 workers) or
  `train`. It must exit 0 (done before the signal), 128 + signal with one line on stderr, or die of
  SIGKILL; leave no process behind (workers, resource tracker: /proc); and the rerun (`simulate` again,
  `train --resume` or `train` again) must give the bytes / weights of an uninterrupted run.

After SIGKILL nothing can clean up: the multiprocessing resource tracker of a killed `simulate --workers 2`
unlinks the pool's semaphores and says so on the stderr it inherited, when the workers are gone (a late
line in that command's log, which the next command does not reuse).

A violation of any rule is counted with its description; a command still running after ``HANG_S`` is a
hang (killed, counted). JSON on stdout: counts per strategy and the first failures.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import multiprocessing
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tests.bad_inputs import make_corpus as mc
from wavesurrogate.io import to_json, write_json

HANG_S = 120.0
MAX_FAILURES = 8
SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL]
CAUGHT = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
EPOCHS = 4
CAMPAIGN = yaml.safe_load(mc.GOOD_CAMPAIGN) | {"cases": 3, "test_cases": 1,
                                               "time": {"n_frames": 24, "frame_stride": 2}}


# ------------------------------------------------------------------------------------------- processes


def _child(argv: list[str], cwd: str, log: str) -> None:
    """The body of a forked command: stdout and stderr into ``log``, signals as the CLI handles them from
    the first instruction (a signal before ``main`` runs gets the same one line and exit code)."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115  the redirected descriptors
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    from wavesurrogate.procs import signals_raise

    try:
        with signals_raise():
            signal.pthread_sigmask(signal.SIG_UNBLOCK, CAUGHT)  # blocked by the parent around the fork
            os.chdir(cwd)
            from wavesurrogate.cli import main

            code = main(argv)
    except KeyboardInterrupt as exc:
        print("wavesurrogate: interrupted before the command started", file=sys.stderr)
        code = 128 + getattr(exc, "signum", signal.SIGINT)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)  # through multiprocessing's exit: finalizers run (semaphores unlinked) as in a CLI exit


def become_subreaper() -> bool:
    """Orphans of our commands (a worker whose parent died) become our children, so none escapes the
    check (Linux PR_SET_CHILD_SUBREAPER)."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans(keep: set[int]) -> None:
    """Collect exited orphans adopted as subreaper (not the commands ``keep``, which their Process joins)."""
    me = os.getpid()
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) not in keep and (st := _stat(int(d.name))) and st[1] == me:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(int(d.name), os.WNOHANG)


class Cmd:
    """One CLI command in a forked process; ``lines`` is what it printed on stderr and stdout."""

    def __init__(self, argv: list[str], cwd: Path, log: Path):
        self.log = log
        log.unlink(missing_ok=True)  # a new file: a late writer of an earlier command writes elsewhere
        log.touch()  # here, not in the child: a command killed at once still has its (empty) log
        ctx = multiprocessing.get_context("fork")
        self.proc = ctx.Process(target=_child, args=(argv, str(cwd), str(log)))
        old = signal.pthread_sigmask(signal.SIG_BLOCK, CAUGHT)  # the child unblocks them once it handles them
        try:
            self.proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def wait(self) -> int | None:
        """Exit code (negative: killed by that signal), or None after HANG_S (then killed)."""
        self.proc.join(HANG_S)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
            return None
        return self.proc.exitcode

    @property
    def lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def descendants(pid: int) -> set[int]:
    """Live processes below ``pid``."""
    parents = {int(d.name): st[1] for d in Path("/proc").iterdir()
               if d.name.isdigit() and (st := _stat(int(d.name))) is not None and st[0] not in "ZX"}
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parents.items() if pp == p}
        todo.extend(kids - found)
        found |= kids
    return found


def alive(pids: set[int], within_s: float = 10.0) -> set[int]:
    """Of ``pids``, those still running after up to ``within_s`` seconds."""
    t0 = time.monotonic()
    while True:
        left = {p for p in pids if (st := _stat(p)) is not None and st[0] not in "ZX"}
        if not left or time.monotonic() - t0 > within_s:
            return left
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------- bookkeeping


class Tally:
    def __init__(self) -> None:
        self.cases = self.violations = self.hangs = self.processes = 0
        self.outcomes: dict[str, int] = {}
        self.failures: list[str] = []

    def seen(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def fail(self, what: str, hang: bool = False) -> None:
        self.hangs += hang
        self.violations += not hang
        if len(self.failures) < MAX_FAILURES:
            self.failures.append(what[:1500])

    def as_dict(self) -> dict[str, Any]:
        return {"cases": self.cases, "processes": self.processes, "violations": self.violations,
                "hangs": self.hangs, "outcomes": self.outcomes, "first_failures": self.failures}


def _weights_digest(run: Path) -> str | None:
    try:
        from safetensors.torch import load_file

        sd = load_file(str(run / "weights.safetensors"))
    except Exception:  # noqa: BLE001
        return None
    h = hashlib.sha256()
    for k in sorted(sd):
        h.update(k.encode() + sd[k].numpy().tobytes())
    return h.hexdigest()


def _one_line(cmd: Cmd, code: int | None, ok_codes: set[int]) -> str | None:
    """What is wrong with how ``cmd`` ended (None: nothing). Its log holds stdout and stderr: exactly one
    line either way (the result it printed, or the error), none after SIGKILL, never a traceback."""
    if code is None:
        return "hang"
    lines = cmd.lines
    if code not in ok_codes:
        return f"exit code {code}: {lines[-3:]}"
    want = (0, 1) if code < 0 else (1,)
    if len(lines) not in want or any("Traceback" in ln for ln in lines):
        return f"exit {code} with {len(lines)} lines: {lines[-5:]}"
    if code == 0 and "error" in lines[0]:
        return f"exit 0 with an error line: {lines[0]}"
    return None


# ------------------------------------------------------------------------------------------- strategies


def writers(t: Tally, rng: np.random.Generator, ws: Path, ref: dict[str, Any]) -> None:
    """2–3 trainings of one config into one run directory at once."""
    mode = ["fresh", "overwrite", "resume"][int(rng.integers(3))]
    run = ws / "w_run"
    shutil.rmtree(run, ignore_errors=True)
    if mode == "overwrite":
        shutil.copytree(ref["run"], run)
    elif mode == "resume":
        shutil.copytree(ref["half"], run)
    cfg = ws / "w.yaml"
    cfg.write_text(yaml.safe_dump(ref["cfg"](run)), encoding="utf-8")
    argv = {"fresh": ["train", str(cfg)], "overwrite": ["train", str(cfg), "--overwrite"],
            "resume": ["train", "--resume", str(run)]}[mode]
    cmds = []
    for i in range(int(rng.integers(2, 4))):
        time.sleep(float(rng.uniform(0, 0.3)))
        cmds.append(Cmd([*argv, "--no-progress"], ws, ws / f"w{i}.log"))
    codes = [c.wait() for c in cmds]
    t.processes += len(cmds)
    label = f"writers/{mode} x{len(cmds)}"
    for c, code in zip(cmds, codes, strict=True):
        if (bad := _one_line(c, code, {0, 2})) is not None:
            t.fail(f"{label}: {bad}", hang=bad == "hang")
            return
        if code == 2 and not any(w in c.lines[-1] for w in ("in use by another process", "already holds")):
            t.fail(f"{label}: refused for another reason: {c.lines[-1]}")
            return
    if mode == "fresh" and codes.count(0) != 1:
        t.fail(f"{label}: {codes.count(0)} of {len(codes)} fresh trainings proceeded")
        return
    if _weights_digest(run) != ref["digest"]:
        t.fail(f"{label}: the run does not hold the weights of an uninterrupted run (codes {codes})")
        return
    t.seen(f"{mode}: {codes.count(0)} proceeded, {codes.count(2)} refused")


def signals(t: Tally, rng: np.random.Generator, ws: Path, ref: dict[str, Any]) -> None:
    """A signal at a random moment to simulate or train; then the rerun."""
    sig = SIGNALS[int(rng.integers(len(SIGNALS)))]
    what = ["simulate", "train"][int(rng.integers(2))]
    workers = int(rng.integers(1, 3))
    out, run = ws / "s_out.h5", ws / "s_run"
    for p in (out, ws / "s_out.h5.work", run):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    for p in ws.glob(".s_out.h5.*"):
        p.unlink()
    cfg = ws / "s.yaml"
    cfg.write_text(yaml.safe_dump(ref["cfg"](run)), encoding="utf-8")
    argv = (["simulate", str(ws / "campaign_s.yaml"), "--out", str(out), "--workers", str(workers)]
            if what == "simulate" else ["train", str(cfg), "--no-progress"])
    delay = float(rng.uniform(0, 1) ** 2 * ref[f"{what}_s"])  # early moments more often
    cmd = Cmd(argv, ws, ws / "s.log")
    time.sleep(delay)
    with contextlib.suppress(ProcessLookupError):
        os.kill(cmd.proc.pid, sig)
    code = cmd.wait()
    t.processes += 1
    name = signal.Signals(sig).name
    label = f"signals/{what} (workers {workers}) {name} after {delay:.2f} s"
    # 128 + signal after its one line; or dead of the signal itself (CPython re-raises SIGINT at exit when
    # an interrupt arrives while it is already unwinding; SIGKILL always): then at most one line
    ok = {0, -signal.SIGKILL} if sig == signal.SIGKILL else {0, 128 + sig, -sig}
    if (bad := _one_line(cmd, code, ok)) is not None:
        t.fail(f"{label}: {bad}", hang=bad == "hang")
        return
    left = alive(descendants(os.getpid()))  # as subreaper: every process our command left behind
    reap_orphans(set())
    if left:
        t.fail(f"{label}: processes left behind: {sorted(left)}")
        for p in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        return
    done = out.is_file() if what == "simulate" else len(mc_metrics(run)) == EPOCHS
    if code == 0 or done:  # it finished before the signal (or its work was done when it came)
        rerun = None
    elif what == "simulate":
        rerun = Cmd(argv, ws, ws / "s2.log")
    elif (run / "config.yaml").is_file():
        rerun = Cmd(["train", "--resume", str(run), "--no-progress"], ws, ws / "s2.log")
    else:
        rerun = Cmd(argv, ws, ws / "s2.log")
    if rerun is not None:
        code2 = rerun.wait()
        t.processes += 1
        if (bad := _one_line(rerun, code2, {0})) is not None:
            t.fail(f"{label}, rerun: {bad}", hang=bad == "hang")
            return
    same = (out.read_bytes() == ref["h5"]) if what == "simulate" else _weights_digest(run) == ref["digest"]
    if not same:
        t.fail(f"{label}: the rerun differs from an uninterrupted run")
        return
    t.seen(f"{what} {name}: exit {code}")


def mc_metrics(run: Path) -> list[str]:
    """The lines of a run's metrics.jsonl ([] if none)."""
    try:
        return (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []


def _reference(ws: Path) -> dict[str, Any]:
    """Uninterrupted results (run, campaign file), a run stopped after 2 epochs, and their durations."""
    from wavesurrogate.data.campaign import run_campaign
    from wavesurrogate.train.loop import config_from_dict, train

    data = mc.write_data(ws / "data.h5", n=16, n_frames=8, n_cases=5, n_test=1)

    def cfg(out: Path) -> dict[str, Any]:
        return mc.train_config(data=str(data), out=str(out), epochs=EPOCHS, num_threads=1)

    t0 = time.perf_counter()
    run = train(config_from_dict(cfg(ws / "ref_run")))
    train_s = time.perf_counter() - t0 + 0.3  # + the start of the command (forked: no imports)
    half = train(config_from_dict(cfg(ws / "ref_half")), stop_after_epoch=2)
    (ws / "campaign_s.yaml").write_text(yaml.safe_dump(CAMPAIGN), encoding="utf-8")
    t0 = time.perf_counter()
    h5 = run_campaign(ws / "campaign_s.yaml", ws / "ref.h5", workers=1, progress=False)
    sim_s = time.perf_counter() - t0 + 1.0
    return {"cfg": cfg, "run": run, "half": half, "digest": _weights_digest(run), "h5": h5.read_bytes(),
            "train_s": train_s, "simulate_s": sim_s}


def fuzz_procs(n: int, rng: np.random.Generator, ws: Path) -> dict[str, Any]:
    """``n`` cases of the process strategies in workspace ``ws``; counts as a dict (see the module doc)."""
    ref = _reference(ws)
    tallies = {"writers": Tally(), "signals": Tally()}
    for _ in range(n):
        kind = "writers" if rng.random() < 0.4 else "signals"
        tallies[kind].cases += 1
        (writers if kind == "writers" else signals)(tallies[kind], rng, ws, ref)
    res: dict[str, Any] = {k: v.as_dict() for k, v in tallies.items()}
    res["cases"] = n
    res["uncaught"] = sum(v.violations for v in tallies.values())
    res["hangs"] = sum(v.hangs for v in tallies.values())
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    become_subreaper()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="wavesurrogate-fuzz-procs-") as tmp:
        res = fuzz_procs(a.cases, np.random.default_rng([a.seed, 7]), Path(tmp))
    goals = {k: {"measured": res[key], "target": 0, "op": "<=", "met": res[key] == 0, "unit": "cases"}
             for k, key in (("violations (uncaught)", "uncaught"), ("hangs", "hangs"))}
    result = {"seed": a.seed, "python": platform.python_version(), "procs": res, "goals": goals,
              "seconds": round(time.perf_counter() - t0, 1)}
    if a.out is not None:
        write_json(a.out, result)
    print(to_json(result))


if __name__ == "__main__":
    main()
