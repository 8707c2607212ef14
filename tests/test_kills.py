"""SIGKILL at chosen moments, then resume: training ends with the weights of an uninterrupted run, a
campaign with the bytes of an uninterrupted file.

Each moment is exact: a worker process (this file run as a script) wraps one library function so that the
process sends itself SIGKILL when that moment comes, e.g. halfway through writing the commit file. The
kill is real (no cleanup, no ``finally``); only its timing is chosen. Complements tests/train/test_loop.py
and tests/data/test_campaign.py, which kill at a timed moment.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.bad_inputs import make_corpus as mc

HERE = Path(__file__).resolve().parent

# Training: 3 training cases → 3 windows of 6 per case = 18 windows, batch 4 → 5 steps per epoch, 3 epochs.
TRAIN_MOMENTS = {
    "step 3 (epoch 1, before any checkpoint)": "step:3",
    "writing optimizer.pt of epoch 2 (half written)": "write:optimizer.pt:2",
    "step 13 (epoch 3, after two checkpoints)": "step:13",
}
CAMPAIGN_MOMENTS = {
    "writing the 3rd shard (half written)": "shard:3",
    "assembling the file (after 4 of 6 cases)": "assemble:4",
}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _half_written(path: Path, data: bytes) -> None:
    """Leave what a killed atomic write leaves: a partial temporary file beside ``path``."""
    (path.parent / f".{path.name}.killed.tmp").write_bytes(data[: len(data) // 2])


def _arm(spec: str) -> None:
    """Wrap the library function of ``spec`` so that this process SIGKILLs itself at that moment."""
    kind, *rest = spec.split(":")
    count = {"n": 0}
    if kind == "step":
        from wavesurrogate.train import loop

        real_step = loop._train_step

        def step(*a: Any, **k: Any) -> float:
            count["n"] += 1
            if count["n"] == int(rest[0]):
                _die()
            return real_step(*a, **k)

        loop._train_step = step
    elif kind == "write":
        from wavesurrogate import io

        real_write = io.atomic_write_bytes

        def write(path: str | Path, data: bytes) -> None:
            if Path(path).name == rest[0]:
                count["n"] += 1
                if count["n"] == int(rest[1]):
                    _half_written(Path(path), data)
                    _die()
            real_write(path, data)

        for mod in [m for name, m in sys.modules.items() if name.startswith("wavesurrogate")]:
            if getattr(mod, "atomic_write_bytes", None) is real_write:
                mod.atomic_write_bytes = write  # every writer, wherever it imported the helper
    elif kind == "shard":
        from wavesurrogate.data import campaign

        real_shard = campaign.write_shard

        def shard(work: Path, spec: Any, *a: Any, **k: Any) -> str:
            count["n"] += 1
            if count["n"] == int(rest[0]):
                _half_written(work / f"case-{spec.index:06d}.npz", b"PK\x03\x04 a partial zip" * 100)
                _die()
            return real_shard(work, spec, *a, **k)

        campaign.write_shard = shard
    elif kind == "assemble":
        from wavesurrogate.data.store import DataWriter

        real_case = DataWriter.write_case

        def write_case(self: Any, *a: Any, **k: Any) -> str:
            count["n"] += 1
            if count["n"] == int(rest[0]) + 1:
                self._f.flush()
                _die()
            return real_case(self, *a, **k)

        DataWriter.write_case = write_case  # type: ignore[method-assign]
    else:
        raise ValueError(spec)


def _worker(argv: list[str]) -> int:
    """``test_kills.py SPEC CLI-ARGS...``: arm the kill, then run the CLI (which should never return)."""
    _arm(argv[0])
    from wavesurrogate.cli import main

    return main(argv[1:])


def _spawn(spec: str, *cli_args: str) -> subprocess.Popen:
    # the worker is this file run as a script: the repository root on its path finds tests.bad_inputs
    path = os.pathsep.join(p for p in (str(HERE.parent), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    return subprocess.Popen([sys.executable, __file__, spec, *cli_args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _killed(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"exit {proc.returncode}: {err.decode()[-2000:]}"


# ---------------------------------------------------------------------------------------------- training


def _train_cfg(data: Path, out: Path) -> dict[str, Any]:
    cfg = mc.train_config(data=str(data), out=str(out), epochs=3, num_threads=1, schedule={"name": "cosine"},
                          optim={"name": "adam", "lr": 0.01})
    cfg["data"]["val_fraction"] = 0.25
    return cfg


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "weights.safetensors"))


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Start every training and campaign worker at once (2 cores: their imports overlap), wait for all."""
    from wavesurrogate.train.loop import config_from_dict, train

    root = tmp_path_factory.mktemp("kills")
    data = mc.write_data(root / "data.h5", n_cases=5, n_test=1)
    camp = yaml.safe_load(mc.GOOD_CAMPAIGN) | {"cases": 4, "test_cases": 2}
    (root / "campaign.yaml").write_text(yaml.safe_dump(camp), encoding="utf-8")
    procs = {}
    for i, (name, spec) in enumerate(TRAIN_MOMENTS.items()):
        cfg_path = root / f"train{i}.yaml"
        cfg_path.write_text(yaml.safe_dump(_train_cfg(data, root / f"run{i}")), encoding="utf-8")
        procs[name] = (_spawn(spec, "train", str(cfg_path)), root / f"run{i}")
    for i, (name, spec) in enumerate(CAMPAIGN_MOMENTS.items()):
        out = root / f"camp{i}.h5"
        procs[name] = (_spawn(spec, "simulate", str(root / "campaign.yaml"), "--out", str(out),
                              "--workers", "1"), out)
    straight = train(config_from_dict(_train_cfg(data, root / "straight")))
    from wavesurrogate.data.campaign import run_campaign

    fresh = run_campaign(root / "campaign.yaml", root / "fresh.h5", workers=1, progress=False)
    for proc, _ in procs.values():
        _killed(proc)
    return {"root": root, "straight": straight, "fresh": fresh, "procs": procs}


@pytest.mark.parametrize("moment", list(TRAIN_MOMENTS))
def test_training_killed_then_resumed_equals_uninterrupted(killed_runs: dict[str, Any], moment: str) -> None:
    from wavesurrogate import runs as ck
    from wavesurrogate.train.loop import train_from_config

    run = killed_runs["procs"][moment][1]
    committed = ck.load_state(run / ck.OPTIM)["epoch"] if (run / ck.OPTIM).exists() else 0
    assert committed == {"step:3": 0, "write:optimizer.pt:2": 1, "step:13": 2}[TRAIN_MOMENTS[moment]]
    resumed = train_from_config(None, resume=run)
    a, b = _weights(killed_runs["straight"]), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (run / ck.METRICS).read_text().count("\n") == 3
    assert sorted(p.name for p in run.iterdir()) == sorted(ck.RUN_FILES)  # partial writes cleaned up


@pytest.mark.parametrize("moment", list(CAMPAIGN_MOMENTS))
def test_campaign_killed_then_rerun_gives_the_same_bytes(killed_runs: dict[str, Any], moment: str) -> None:
    from wavesurrogate.data.campaign import run_campaign

    out = killed_runs["procs"][moment][1]
    work = out.with_name(out.name + ".work")
    assert not out.exists() and work.is_dir()  # killed before the rename: no half file at OUT
    leftovers = list(out.parent.glob(f".{out.name}.*")) + list(work.glob(".*.tmp"))
    assert leftovers, "the kill should have left a partial temporary file"
    run_campaign(killed_runs["root"] / "campaign.yaml", out, workers=1, progress=False)
    assert out.read_bytes() == killed_runs["fresh"].read_bytes()
    assert not work.exists() and not list(out.parent.glob(f".{out.name}.*"))


# ------------------------------------------------------------------------------------------ write audit

WRITERS = {"write_text", "write_bytes", "save", "savez", "savez_compressed", "savefig", "imwrite", "dump",
           "to_csv", "tofile"}


def _opens_for_writing(call: ast.Call) -> bool:
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    modes = [a for a in call.args[1:2] + [k.value for k in call.keywords if k.arg == "mode"]]
    mode = modes[0].value if modes and isinstance(modes[0], ast.Constant) else ""
    return name in {"open", "File", "fdopen"} and isinstance(mode, str) and any(c in mode for c in "wax+")


def write_sites(root: Path) -> list[dict[str, Any]]:
    """Every call in the package that writes a file, and whether it is atomic.

    Atomic: inside ``with atomic_path(...)``, inside a function named ``atomic_*``, aimed at a temporary
    path (``tmp``) or an in-memory buffer (``buf``), or at a /proc pseudo-file.
    """
    sites = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn_or_with in ast.walk(tree):
            for node in ast.iter_child_nodes(fn_or_with):
                node._parent = fn_or_with  # type: ignore[attr-defined]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name not in WRITERS and not _opens_for_writing(node):
                continue
            if name == "dump" and not (node.args[1:] or any(k.arg == "fp" for k in node.keywords)):
                continue  # yaml/json dump to a string
            text = ast.get_source_segment(path.read_text(encoding="utf-8"), node) or name
            atomic, up = False, node
            while (up := getattr(up, "_parent", None)) is not None:
                if isinstance(up, ast.With) and any("atomic_path" in ast.unparse(i.context_expr)
                                                    for i in up.items):
                    atomic = True
                if isinstance(up, ast.FunctionDef) and up.name.startswith("atomic_"):
                    atomic = True
            receiver = isinstance(node.func, ast.Attribute) and name in {"write_text", "write_bytes"}
            target = ast.unparse(node.func.value) if receiver else " ".join(ast.unparse(a) for a in node.args)
            first = target.split()[0] if target else ""
            # a temporary path handed out by io.atomic_path (by convention named tmp), a buffer, or /proc
            atomic = atomic or first in ("tmp", "str(tmp)", "self._tmp") or any(
                w in target for w in ("buf", "'/proc/", '"/proc/'))
            sites.append({"where": f"{path.relative_to(root.parents[1])}:{node.lineno}",
                          "call": text.splitlines()[0][:90], "atomic": atomic, "line": node.lineno})
    return sorted(sites, key=lambda s: (s["where"].split(":")[0], s["line"]))


def test_every_write_in_the_package_is_atomic() -> None:
    sites = write_sites(HERE.parent / "src" / "wavesurrogate")
    assert len(sites) >= 10  # the audit sees the writers it should
    bad = [s for s in sites if not s["atomic"]]
    assert not bad, f"non-atomic writes (use atomic_path / atomic_write_bytes): {bad}"


def test_the_write_audit_can_fail(tmp_path: Path) -> None:
    pkg = tmp_path / "src" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "m.py").write_text("def f(p, x):\n    p.write_text(x)\n    with atomic_path(p) as tmp:\n"
                              "        tmp.write_text(x)\n", encoding="utf-8")
    assert [s["atomic"] for s in write_sites(pkg)] == [False, True]


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
