"""Random campaign and training configs: mutated trees, damaged text, hostile text, special files."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.fuzz.harness import Tally, clean, cli, library
from benchmarks.fuzz.values import hostile_text, mutate_text, mutate_tree
from tests.bad_inputs import make_corpus as mc

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


def config_text(base: dict[str, Any], rng: np.random.Generator) -> tuple[str, str]:
    """YAML text of a mutated ``base`` and the strategies used (tree; then text damage or hostile text)."""
    for _ in range(int(rng.integers(1, 4))):
        base = mutate_tree(base, rng)
    try:
        text = yaml.safe_dump(base, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:
        text = str(base)
    desc = "tree"
    r = rng.random()
    if r < 0.2:
        text, desc = mutate_text(text, rng), "tree; text"
    elif r < 0.45:
        text, how = hostile_text(text, rng)
        desc = f"tree; {how}"
    return text, desc


def fuzz_configs(n: int, rng: np.random.Generator, ws: Path) -> dict[str, Any]:
    from wavesurrogate.config.train import load_train_config
    from wavesurrogate.data.cases import load_campaign
    from wavesurrogate.train.loop import prepare_data

    np.save(ws / "velocity.npy", np.full((16, 16), 1800.0))
    camps, trains = campaign_bases(), train_bases()
    t = Tally()
    for i in range(n):
        clean(ws)
        is_train = i % 3 == 2
        bases = trains if is_train else camps
        base = copy.deepcopy(bases[int(rng.integers(len(bases)))])
        text, desc = config_text(base, rng)
        path = ws / f"cfg{i % 7}.yaml"
        if rng.random() < 0.03:  # the config itself is a FIFO: a reader that opened it would block
            os.mkfifo(path)
            desc = "special_file: config"
        else:
            path.write_text(text, encoding="utf-8")
        t.strategy(desc)
        t.run += 1
        label = f"config {i} ({'train' if is_train else 'campaign'}; {desc})"
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
        path.unlink()
    return t.as_dict()
