"""Damaged and hostile run directories: bytes, text, malicious pickles, and (issue 16) special files in place
of run files, hostile JSON (deep, duplicate keys, huge numbers), model kwargs of the wrong type or size,
tampered weights (complex, metadata of the wrong type) and tampered resume states (missing keys, wrong
types, moments of the wrong shape, reference bombs)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.fuzz.harness import Tally, clean, cli, library
from benchmarks.fuzz.hdf5 import flip, truncate
from benchmarks.fuzz.values import deep, mutate_text, mutate_tree
from tests.bad_inputs import make_corpus as mc
from tests.bad_inputs import mutations_inputs as mi

BAD_KWARGS: list[dict[str, Any]] = [
    {"width": 4.5}, {"width": "wide"}, {"depth": float("nan")}, {"depth": 40}, {"width": 10**8},
    {"padding_mode": "bogus"}, {"heads": 8}, {"n_in": 3}, {"residual": "yes"}, {"width": 10**30},
    {"conv": {"kind": "cp", "rank": -1}}, {"kernel_size": 4},
]


def hostile_run(run: Path, op: int, name: str, rng: np.random.Generator) -> str:
    """One hostile change of issue 16 (op 6–9) to ``run``; returns its description."""
    p = run / name
    if op == 6:
        p.unlink()
        os.mkfifo(p)
        return f"special_file: {name} is a FIFO"
    if op == 7:
        which = ["model.json", "stats.json"][int(rng.integers(2))]
        q = run / which
        text = q.read_text(encoding="utf-8").rstrip()[:-1]
        k = int(rng.integers(3))
        extra = [f', "notes": {deep(rng)}',
                 ', "format": "again"', f', "big": {"9" * int(rng.choice([20, 400, 5000]))}'][k]
        q.write_text(text + extra + "}", encoding="utf-8")
        return f"hostile_json: {which} ({['deep', 'duplicate_key', 'huge_int'][k]})"
    if op == 8:
        kw = BAD_KWARGS[int(rng.integers(len(BAD_KWARGS)))]
        mc._json(run.parent, "model.json", lambda d: d["kwargs"].update(kw))
        if rng.random() < 0.5:  # the config agrees, so only the kwargs' own checks can refuse them
            c = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
            c["model"]["kwargs"].update(kw)
            (run / "config.yaml").write_text(yaml.safe_dump(c, sort_keys=False), encoding="utf-8")
        return f"bad_kwargs: {json.dumps(kw)[:60]}"
    state_ops = ["ck_state_missing_key", "ck_state_wrong_type", "ck_state_moment_shape", "ck_state_lr_string",
                 "ck_state_reference_bomb", "ck_state_complex_model", "ck_epoch_string", "ck_complex_weights",
                 "ck_stats_n_in", "ck_model_json_n_in"]
    which = state_ops[int(rng.integers(len(state_ops)))]
    mi.MUTATIONS[which](run.parent)
    return f"tampered: {which}"


def ck_mutation(run: Path, rng: np.random.Generator) -> str:
    """Apply one random damage to the run directory ``run``; returns its description."""
    op = int(rng.integers(0, 10))
    files = ["weights.safetensors", "optimizer.pt", "model.json", "stats.json", "config.yaml"]
    name = files[int(rng.integers(len(files)))]
    p = run / name
    if op >= 6:
        return hostile_run(run, op, name, rng)
    if op == 0:
        return f"flip: {flip(p, rng, 17)} bytes of {name}"
    if op == 1:
        return f"truncate: {name} to {truncate(p, rng)[0]} bytes"
    if op == 2:
        p.unlink()
        return f"delete: {name}"
    if op == 3 and name.endswith(".json"):
        d = json.loads(p.read_text())
        for _ in range(int(rng.integers(1, 3))):
            d = mutate_tree(d, rng)
        p.write_text(json.dumps(d))
        return f"edit: {name}"
    if op == 3 and name == "config.yaml":
        d = yaml.safe_load(p.read_text())
        p.write_text(yaml.safe_dump(mutate_tree(d, rng)))
        return f"edit: {name}"
    if op == 4:
        p.write_bytes(mc.malicious_pickle(run.parent / "pwned"))
        return f"pickle: {name} replaced by a malicious pickle"
    p.write_text(mutate_text(p.read_text(encoding="utf-8", errors="replace"), rng), encoding="utf-8")
    return f"text: {name} damaged"


def fuzz_checkpoints(n: int, rng: np.random.Generator, ws: Path) -> dict[str, Any]:
    from wavesurrogate.runs import load_run, load_state

    t = Tally()
    pristine = ws / "run.pristine"
    shutil.copytree(ws / "run", pristine)
    for i in range(n):
        clean(ws)
        shutil.rmtree(ws / "run")
        shutil.copytree(pristine, ws / "run")
        desc = ck_mutation(ws / "run", rng)
        t.strategy(desc)
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


