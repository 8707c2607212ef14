"""Fuzz the public loaders and the CLI with random configs, mutated HDF5 files and damaged run directories.

    .venv/bin/python -m benchmarks.fuzz [--configs 1000] [--hdf5 200] [--checkpoints 100] [--seed 0]
                                        [--out FILE.json]

Every case goes through the library loader (``load_campaign``/``load_train_config``,
``open_data`` + every accessor + ``load_all`` + ``describe``, ``load_run``/``load_state``) and through
the CLI in-process (``simulate``/``train`` against an existing output, ``info``, ``show``, ``evaluate``,
``train --resume``). A case is *accepted* (loaded fine), *rejected* (a ``UserError``; through the CLI:
exit code 2, one line on stderr, no traceback, nothing created or changed) or a *crash* (any other
exception, or a CLI rejection that broke those rules). JSON on stdout: counts per kind and the first
tracebacks. The inputs are derived from the valid tiny files of tests/bad_inputs/make_corpus.py.

Safety: the process's address space is limited (``--max-memory-gb``), so an input that makes the package
over-allocate shows up as a MemoryError instead of the OOM killer; a case that runs longer than 300 s
(a loop inside libhdf5, say) ends the run with a traceback on stderr (``--trace`` names each case first).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import faulthandler
import json
import math
import platform
import resource
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

from tests.bad_inputs import make_corpus as mc
from wavesurrogate.errors import UserError
from wavesurrogate.io import to_json, write_json

ROOT = Path(__file__).resolve().parents[1]

MAX_TRACEBACKS = 5
TRACE = False
HANG_S = 300.0  # one case running longer than this is a hang: traceback to stderr, exit (see --trace)

# ------------------------------------------------------------------------------------------ bookkeeping


class Tally:
    """Counts of accepted / rejected / crashed cases of one kind, with the first few tracebacks."""

    def __init__(self) -> None:
        self.run = self.accepted = self.rejected = self.crashed = 0
        self.cli_calls = self.cli_rejected = self.cli_unclean = 0
        self.tracebacks: list[str] = []

    def crash(self, what: str) -> None:
        self.crashed += 1
        if len(self.tracebacks) < MAX_TRACEBACKS:
            self.tracebacks.append(what)

    def as_dict(self) -> dict[str, Any]:
        return {"cases": self.run, "accepted": self.accepted, "rejected_cleanly": self.rejected,
                "uncaught": self.crashed, "cli_calls": self.cli_calls, "cli_rejected": self.cli_rejected,
                "cli_unclean": self.cli_unclean, "first_tracebacks": self.tracebacks}


def library(t: Tally, label: str, fn: Callable[..., Any], *args: Any) -> bool | None:
    """Run ``fn(*args)``: True if accepted, False if a UserError, None (and a recorded crash) otherwise."""
    if TRACE:
        print(label, file=sys.stderr, flush=True)
    faulthandler.dump_traceback_later(HANG_S, exit=True)  # a hang in C code (libhdf5) ends the run, loudly
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn(*args)
        return True
    except UserError as exc:
        if "\n" in str(exc):
            t.crash(f"{label}: multi-line UserError: {exc!r}")
            return None
        return False
    except Exception:
        t.crash(f"{label}:\n{traceback.format_exc(limit=6)}")
        return None
    finally:
        faulthandler.cancel_dump_traceback_later()


def cli(t: Tally, label: str, argv: list[str], ws: Path, outputs: list[Path]) -> int:
    """Run the CLI in-process; on exit code 2 check one line, no traceback, nothing written in ``ws``."""
    if TRACE:
        print(f"{label}: {' '.join(argv)}", file=sys.stderr, flush=True)
    before = mc.snapshot(ws)
    t.cli_calls += 1
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        code, _, text = mc.run_cli(argv)
    except Exception:
        code, text = -1, traceback.format_exc(limit=6)
    finally:
        faulthandler.cancel_dump_traceback_later()
    if code == 2:
        t.cli_rejected += 1
        lines = text.strip().splitlines()
        problems = []
        if len(lines) != 1 or "Traceback" in text:
            problems.append(f"{len(lines)} lines on stderr")
        if mc.snapshot(ws) != before:
            problems.append("the workspace changed")
        if problems:
            t.cli_unclean += 1
            t.crash(f"{label}: {' '.join(argv)} → {', '.join(problems)}:\n{text[-1500:]}")
    elif code != 0:
        t.crash(f"{label}: {' '.join(argv)} → exit {code}:\n{text[-1500:]}")
    for p in outputs:  # an accepted input may legitimately write; start the next case clean
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
    return code


# ------------------------------------------------------------------------------------------ random values

SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-300, 1e308, -1.0, 0.5]
HUGE_INTS = [2**31, 2**63, -(2**63), 10**30, -1, 0]
STRINGS = ["", "abc", "1.5", "nan", "[1, 2]", "yes", "\x00", "é", "x" * 300, "../../etc/passwd", "1.0e7"]


def rand_value(rng: np.random.Generator, depth: int = 0) -> Any:
    """A random YAML-able value: None, bools, small/huge ints, plain/special floats, strings, containers."""
    k = int(rng.integers(0, 11 if depth < 2 else 8))
    if k == 0:
        return None
    if k == 1:
        return bool(rng.integers(0, 2))
    if k == 2:
        return int(rng.integers(-3, 50))
    if k == 3:
        return HUGE_INTS[int(rng.integers(len(HUGE_INTS)))]
    if k == 4:
        return float(rng.uniform(-1e3, 1e4))
    if k == 5:
        return SPECIAL_FLOATS[int(rng.integers(len(SPECIAL_FLOATS)))]
    if k in (6, 7):
        return STRINGS[int(rng.integers(len(STRINGS)))]
    if k == 8:
        return [rand_value(rng, depth + 1) for _ in range(int(rng.integers(0, 4)))]
    if k == 9:
        lo = float(rng.uniform(0, 3000))
        return [lo, lo - float(rng.uniform(-100, 100))]  # a range, sometimes reversed
    return {str(rand_value(rng, 2)): rand_value(rng, depth + 1) for _ in range(int(rng.integers(0, 3)))}


def _paths(d: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(d, dict):
        for k, v in d.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out += _paths(v, prefix + (i,))
    return out


def _parent(d: Any, path: tuple) -> Any:
    for k in path[:-1]:
        d = d[k]
    return d


def mutate_tree(d: Any, rng: np.random.Generator) -> Any:
    """Set, delete or add one key somewhere in a nested mapping (in place); returns it."""
    paths = _paths(d)
    op = int(rng.integers(0, 4))
    if not paths or op == 3:
        target = d if not paths else _parent(d, paths[int(rng.integers(len(paths)))] + ("x",))
        if isinstance(target, dict):
            target[str(rng.choice(["colour", "nz", "lr_", "kind", "extra"]))] = rand_value(rng)
        return d
    path = paths[int(rng.integers(len(paths)))]
    parent = _parent(d, path)
    if op == 0 and isinstance(parent, dict):
        del parent[path[-1]]
    elif op == 1 and isinstance(parent[path[-1]], int | float) and not isinstance(parent[path[-1]], bool):
        v = parent[path[-1]]
        parent[path[-1]] = type(v)(v * float(rng.choice([-1, 0, 10, 1e6, 0.5])))
    else:
        parent[path[-1]] = rand_value(rng)
    return d


def mutate_text(text: str, rng: np.random.Generator) -> str:
    """Damage YAML text: truncate, delete, duplicate or insert characters."""
    op = int(rng.integers(0, 4))
    i = int(rng.integers(0, len(text) + 1))
    if op == 0:
        return text[:i]
    if op == 1:
        return text[:i] + text[i + int(rng.integers(1, 20)):]
    if op == 2:
        junk = [":", "-", "[", "{", "'", "\t", "\n  ", "&a", "*a", "!!python/object"]
        return text[:i] + str(rng.choice(junk)) + text[i:]
    j = int(rng.integers(0, len(text) + 1))
    return text[:i] + text[min(i, j):max(i, j)] + text[i:]


# --------------------------------------------------------------------------------------------- configs

CAMPAIGN_MEDIA = [
    {"kind": "constant", "c_mps": [1500.0, 2000.0]},
    {"kind": "grf", "mean_mps": [1800.0, 2200.0], "contrast": [0.0, 0.1], "correlation_length_m": 30.0},
    {"kind": "layered", "velocities_mps": [1500.0, [1800.0, 2000.0]], "interfaces_m": [70.0]},
    {"kind": "inclusions", "background_mps": 1800.0, "n": 2, "radius_m": [10.0, 20.0],
     "c_mps": [1500.0, 2500.0]},
    {"kind": "file", "path": "velocity.npy"},
]


def campaign_bases() -> list[dict[str, Any]]:
    """Valid campaign configs (as mappings) covering every medium kind and both solvers."""
    good = yaml.safe_load(mc.GOOD_CAMPAIGN)
    out = []
    for m in CAMPAIGN_MEDIA:
        c = copy.deepcopy(good)
        c["medium"] = copy.deepcopy(m)
        out.append(c)
    fe = copy.deepcopy(good)
    fe["solver"] = {"kind": "fe", "element": "q1"}
    fe["grid"] = {"nx": 8, "ny": 8, "dx_m": 10.0, "dy_m": 10.0}
    fe["source"] = {"kind": "gaussian", "x_m": 30.0, "y_m": 30.0, "width_m": 15.0, "freq_hz": 20.0}
    fe["initial"] = {"kind": "gaussian", "width_m": [5.0, 10.0]}
    out.append(fe)
    return out


def train_bases() -> list[dict[str, Any]]:
    """Valid training configs: forecast (cnn2d) and source_to_field (deeponet)."""
    f2 = mc.train_config(model={"name": "deeponet", "kwargs": {"n_params": 2, "n_basis": 4, "branch_width": 8,
                                                                "trunk_width": 8, "n_fourier": 4}})
    f2["data"] = {**f2["data"], "task": "source_to_field", "points_per_case": 16}
    return [mc.train_config(), f2, mc.train_config(optim={"name": "sgd", "lr": 0.1},
                                                   schedule={"name": "cosine"}, grad_clip=1.0)]


def _small(d: Any) -> bool:
    """No int beyond 10⁴ anywhere (so that building data sets stays cheap)."""
    if isinstance(d, dict):
        return all(_small(v) for v in d.values())
    if isinstance(d, list):
        return all(_small(v) for v in d)
    return not isinstance(d, int) or abs(d) <= 10**4


def fuzz_configs(n: int, rng: np.random.Generator, ws: Path) -> dict[str, Any]:
    from wavesurrogate.config.train import load_train_config
    from wavesurrogate.data.cases import load_campaign
    from wavesurrogate.train.loop import prepare_data

    np.save(ws / "velocity.npy", np.full((16, 16), 1800.0))
    camps, trains = campaign_bases(), train_bases()
    t = Tally()
    for i in range(n):
        is_train = i % 3 == 2
        bases = trains if is_train else camps
        base = copy.deepcopy(bases[int(rng.integers(len(bases)))])
        for _ in range(int(rng.integers(1, 4))):
            base = mutate_tree(base, rng)
        try:
            text = yaml.safe_dump(base, sort_keys=False, allow_unicode=True)
        except yaml.YAMLError:
            text = str(base)
        if rng.random() < 0.2:
            text = mutate_text(text, rng)
        path = ws / f"cfg{i % 7}.yaml"
        path.write_text(text, encoding="utf-8")
        t.run += 1
        label = f"config {i} ({'train' if is_train else 'campaign'})"
        if is_train:
            holder: list[Any] = []
            ok = library(t, label, lambda p, h: h.append(load_train_config(p)), path, holder)
            if ok and _small(base) and isinstance(base, dict):
                ok = library(t, label + " prepare_data", lambda h: prepare_data(h[0].resolved()), holder)
            cli(t, label, ["train", str(path), "--out", str(ws / "run")], ws, [])
        else:
            ok = library(t, label, load_campaign, path)
            cli(t, label, ["simulate", str(path), "--out", str(ws / "good.h5")], ws, [])
        t.accepted += ok is True
        t.rejected += ok is False
    return t.as_dict()


# ----------------------------------------------------------------------------------------------- HDF5


def _datasets(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _objects(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visit(names.append)
    return names


def _flip(path: Path, rng: np.random.Generator, most: int) -> int:
    """Flip 1..most-1 random bytes of ``path`` in place; how many."""
    data = bytearray(path.read_bytes())
    k = int(rng.integers(1, most))
    for pos in rng.integers(0, len(data), k):
        data[int(pos)] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(data))
    return k


def _truncate(path: Path, rng: np.random.Generator) -> tuple[int, int]:
    """Cut ``path`` at a random length; (new length, old length)."""
    data = path.read_bytes()
    n = int(rng.integers(0, len(data)))
    path.write_bytes(data[:n])
    return n, len(data)


def h5_mutation(path: Path, rng: np.random.Generator) -> str:
    """Apply one random damage to the HDF5 file at ``path``; returns its description."""
    op = int(rng.integers(0, 10))
    if op == 0:  # bit flips anywhere
        return f"flip: {_flip(path, rng, 65)} random bytes"
    if op == 1:
        return "truncate: to {} of {} bytes".format(*_truncate(path, rng))
    if op == 2:  # zero a page
        data = bytearray(path.read_bytes())
        start = int(rng.integers(0, len(data)))
        data[start:start + 4096] = bytes(min(4096, len(data) - start))
        path.write_bytes(bytes(data))
        return f"zero: 4 KiB at {start}"
    try:
        with h5py.File(path, "r+") as f:
            return _h5_edit(f, op, rng)
    except Exception as exc:  # noqa: BLE001  already too damaged (e.g. after byte flips) to edit further
        return f"edit-failed: op {op} on a damaged file ({type(exc).__name__})"


def _h5_edit(f: h5py.File, op: int, rng: np.random.Generator) -> str:
    """One structural damage (op 3–9) of an open file; returns its description."""
    names = _datasets(f)
    name = names[int(rng.integers(len(names)))]
    if op == 3:
        objs = _objects(f)
        victim = objs[int(rng.integers(len(objs)))]
        del f[victim]
        return f"delete: {victim}"
    if op == 4:
        keys = list(f.attrs)
        victim = keys[int(rng.integers(len(keys)))]
        del f.attrs[victim]
        return f"delattr: {victim}"
    if op == 5:
        a = f[name][()]
        dt = [np.float64, np.int8, np.float16, "S8", np.complex64][int(rng.integers(5))]
        try:
            b = a.astype(dt)
        except (ValueError, TypeError):
            b = np.zeros(a.shape, dt)
        del f[name]
        f.create_dataset(name, data=b)
        return f"dtype: {name} as {np.dtype(dt)}"
    if op == 6:
        a = f[name][()]
        shape = list(a.shape) or [1]
        choice = int(rng.integers(3))
        if choice == 0:
            b = np.zeros(shape[:-1], a.dtype) if len(shape) > 1 else np.zeros((), a.dtype)
        elif choice == 1:
            b = np.zeros(shape + [2], a.dtype)
        else:
            shape[int(rng.integers(len(shape)))] += int(rng.choice([-1, 1, 3]))
            b = np.zeros([max(s, 0) for s in shape], a.dtype)
        del f[name]
        f.create_dataset(name, data=b)
        return f"reshape: {name} {a.shape} → {b.shape}"
    if op == 7:
        floats = [n for n in names if f[n].dtype.kind == "f" and f[n].size]
        name = floats[int(rng.integers(len(floats)))]
        a = f[name][()]
        idx = tuple(int(rng.integers(s)) for s in a.shape)
        a[idx] = float(rng.choice([np.nan, np.inf, -np.inf, 1e38]))
        f[name][...] = a
        if name in ("fields", "velocity") and rng.random() < 0.5:
            mc._rechecksum(f, idx[0])
            return f"nonfinite: {name}{idx} (checksum recomputed)"
        return f"nonfinite: {name}{idx}"
    if op == 8:
        keys = list(f.attrs)
        victim = keys[int(rng.integers(len(keys)))]
        v = rand_value(rng, 1)
        try:
            f.attrs[victim] = v
        except (TypeError, ValueError):
            f.attrs[victim] = str(v)
        return f"setattr: {victim} = {v!r}"[:200]
    which = ["done", "split", "checksum"][int(rng.integers(3))]
    i = int(rng.integers(f[which].shape[0]))
    new = {"done": False, "split": int(rng.choice([2, 7, 255])), "checksum": b"0" * 64}[which]
    f[which][i] = new
    return f"flag: {which}[{i}] = {new!r}"


def read_everything(path: Path) -> None:
    """Every public accessor of the reader, then describe()."""
    from wavesurrogate.data.store import describe, open_data

    with open_data(path) as d:
        _ = (d.attrs, d.n_cases, d.n_frames, d.ny, d.nx, d.dt, d.frame_dt, d.dx, d.dy, d.frame_stride,
             d.x, d.y, d.t, d.params, d.split, d.done, d.cases(), d.cases("train"), d.cases("test"))
        for i in range(d.n_cases):
            d.velocity(i)
        d.load_all()
    describe(path)


def fuzz_hdf5(n: int, rng: np.random.Generator, ws: Path) -> dict[str, Any]:
    t = Tally()
    good = (ws / "good.h5").read_bytes()
    bad = ws / "bad.h5"
    descriptions: dict[str, int] = {}
    for i in range(n):
        bad.write_bytes(good)
        desc = h5_mutation(bad, rng)
        if rng.random() < 0.25:
            desc += "; " + h5_mutation(bad, rng)
        for part in desc.split("; "):
            kind = part.split(":")[0]
            descriptions[kind] = descriptions.get(kind, 0) + 1
        t.run += 1
        label = f"hdf5 {i} ({desc})"
        ok = library(t, label, lambda: read_everything(bad))
        t.accepted += ok is True
        t.rejected += ok is False
        cli(t, label, ["info", str(bad)], ws, [])
        case = int(rng.integers(0, 5))
        cli(t, label, ["show", str(bad), "--case", str(case), "--out", str(ws / "show"), "--overwrite"], ws,
            [ws / "show"])
        cli(t, label, ["evaluate", str(ws / "run"), "--data", str(bad), "--out", str(ws / "eval.json"),
                       "--overwrite"], ws,
            [ws / "eval.json"])
    return {**t.as_dict(), "mutations": descriptions}


# -------------------------------------------------------------------------------------------- checkpoints


def ck_mutation(run: Path, rng: np.random.Generator) -> str:
    """Apply one random damage to the run directory ``run``; returns its description."""
    op = int(rng.integers(0, 6))
    files = ["weights.safetensors", "optimizer.pt", "model.json", "stats.json", "config.yaml"]
    name = files[int(rng.integers(len(files)))]
    p = run / name
    if op == 0:
        return f"{_flip(p, rng, 17)} byte flips in {name}"
    if op == 1:
        return f"{name} truncated to {_truncate(p, rng)[0]} bytes"
    if op == 2:
        p.unlink()
        return f"{name} deleted"
    if op == 3 and name.endswith(".json"):
        d = json.loads(p.read_text())
        for _ in range(int(rng.integers(1, 3))):
            d = mutate_tree(d, rng)
        p.write_text(json.dumps(d))
        return f"{name} edited"
    if op == 3 and name == "config.yaml":
        d = yaml.safe_load(p.read_text())
        p.write_text(yaml.safe_dump(mutate_tree(d, rng)))
        return f"{name} edited"
    if op == 4:
        p.write_bytes(mc.malicious_pickle(run.parent / "pwned"))
        return f"{name} replaced by a malicious pickle"
    p.write_text(mutate_text(p.read_text(encoding="utf-8", errors="replace"), rng), encoding="utf-8")
    return f"{name} text-damaged"


def fuzz_checkpoints(n: int, rng: np.random.Generator, ws: Path) -> dict[str, Any]:
    from wavesurrogate.runs import load_run, load_state

    t = Tally()
    pristine = ws / "run.pristine"
    shutil.copytree(ws / "run", pristine)
    for i in range(n):
        shutil.rmtree(ws / "run")
        shutil.copytree(pristine, ws / "run")
        desc = ck_mutation(ws / "run", rng)
        t.run += 1
        label = f"checkpoint {i} ({desc})"
        ok = library(t, label, lambda: (load_run(ws / "run", "best"), load_run(ws / "run", "last")))
        ok2 = library(t, label + " state", lambda: load_state(ws / "run" / "optimizer.pt"))
        t.accepted += ok is True and ok2 is True
        t.rejected += ok is False or ok2 is False
        cli(t, label, ["evaluate", str(ws / "run"), "--data", str(ws / "good.h5"), "--overwrite", "--out",
                       str(ws / "eval.json")], ws, [ws / "eval.json"])
        cli(t, label, ["train", "--resume", str(ws / "run")], ws, [])
        if (ws / "pwned").exists():
            t.crash(f"{label}: CODE RAN (pwned file created)")
            (ws / "pwned").unlink()
    shutil.rmtree(pristine)
    return t.as_dict()


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=1000)
    ap.add_argument("--hdf5", type=int, default=200)
    ap.add_argument("--checkpoints", type=int, default=100)
    ap.add_argument("--procs", type=int, default=0,
                    help="cases of benchmarks/fuzz_procs.py (concurrent writers, signals; seconds each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--max-memory-gb", type=float, default=6.0,
                    help="address-space limit of this process: an input that makes the package allocate more "
                         "raises MemoryError (counted as uncaught) instead of waking the OOM killer")
    ap.add_argument("--trace", action="store_true", help="print each case to stderr before running it")
    a = ap.parse_args()
    limit = int(a.max_memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    global TRACE
    TRACE = a.trace
    t0 = time.perf_counter()
    result: dict[str, Any] = {"seed": a.seed, "python": platform.python_version()}
    with tempfile.TemporaryDirectory(prefix="wavesurrogate-fuzz-") as tmp:
        base = mc.build_base(Path(tmp) / "base")
        ws = mc.make_workspace(base, Path(tmp) / "ws")
        with contextlib.chdir(ws):
            for kind, n, fn in (("configs", a.configs, fuzz_configs), ("hdf5", a.hdf5, fuzz_hdf5),
                                ("checkpoints", a.checkpoints, fuzz_checkpoints)):
                t1 = time.perf_counter()
                result[kind] = fn(n, np.random.default_rng([a.seed, len(kind)]), ws)
                result[kind]["seconds"] = round(time.perf_counter() - t1, 1)
            if a.procs:  # processes: concurrent writers of a run directory, signals (fuzz_procs.py)
                from benchmarks.fuzz_procs import become_subreaper, fuzz_procs

                become_subreaper()
                (ws / "procs").mkdir()
                t1 = time.perf_counter()
                result["procs"] = fuzz_procs(a.procs, np.random.default_rng([a.seed, 7]), ws / "procs")
                result["procs"]["seconds"] = round(time.perf_counter() - t1, 1)
    kinds = [k for k in ("configs", "hdf5", "checkpoints", "procs") if k in result]
    result["uncaught_total"] = sum(result[k]["uncaught"] for k in kinds)
    result["hangs_total"] = result.get("procs", {}).get("hangs", 0)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if a.out is not None:
        write_json(a.out, result)
    print(to_json(result))


if __name__ == "__main__":
    main()
