"""Property tests (hypothesis): the config loaders raise nothing but ConfigError on any mapping or any text,
and the HDF5 reader raises nothing but DataFileError on any damaged file. The long version of this is
benchmarks/fuzz.py (1,000 configs, 200 HDF5 files, 100 run directories).
"""

from __future__ import annotations

import copy
import math
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bad_inputs import make_corpus as mc
from wavesurrogate.config.train import load_train_config
from wavesurrogate.data.cases import load_campaign
from wavesurrogate.data.store import DataFile, describe, open_data
from wavesurrogate.errors import ConfigError, DataFileError

SETTINGS = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12) | st.sampled_from(["1.0e7", "nan", "-1", "[1, 2]", "fd", "file", "cnn2d"]))
values = st.recursive(
    scalars, lambda ch: st.lists(ch, max_size=3) | st.dictionaries(st.text(max_size=6), ch, max_size=3),
    max_leaves=6)
CAMPAIGN = yaml.safe_load(mc.GOOD_CAMPAIGN)
TRAIN = mc.train_config()


def _paths(d: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(d, dict):
        for k, v in d.items():
            out += _paths(v, prefix + (k,))
    return out


@st.composite
def edited(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with 1–3 keys (anywhere in the tree) replaced, deleted or added."""
    d = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(d)
        path = draw(st.sampled_from(paths)) if paths else ()
        parent = d
        for k in path[:-1]:
            parent = parent[k]
        op = draw(st.sampled_from(["set", "delete", "add"]))
        if not path or not isinstance(parent, dict):
            continue
        if op == "set":
            parent[path[-1]] = draw(values)
        elif op == "delete":
            del parent[path[-1]]
        else:
            parent[draw(st.text(min_size=1, max_size=6))] = draw(values)
    return d


def _load_or_config_error(loader: Any, path: Path) -> None:
    try:
        loader(path)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("props")
    mc.write_data(d / "good.h5")
    np.save(d / "velocity.npy", np.full((16, 16), 1800.0))
    return d


@SETTINGS
@given(cfg=edited(CAMPAIGN) | edited({**CAMPAIGN, "medium": {"kind": "file", "path": "velocity.npy"}}))
def test_campaign_loader_raises_only_config_error(ws: Path, cfg: dict[str, Any]) -> None:
    path = ws / "campaign.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    _load_or_config_error(load_campaign, path)


@SETTINGS
@given(cfg=edited(TRAIN))
def test_train_loader_raises_only_config_error(ws: Path, cfg: dict[str, Any]) -> None:
    path = ws / "train.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    _load_or_config_error(load_train_config, path)


@SETTINGS
@given(text=st.text(max_size=200) | st.binary(max_size=200))
def test_loaders_on_arbitrary_text(ws: Path, text: str | bytes) -> None:
    path = ws / "any.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    _load_or_config_error(load_campaign, path)
    _load_or_config_error(load_train_config, path)


def test_the_campaign_property_can_fail(ws: Path) -> None:
    """The loaders do reject: a NaN spacing and a huge grid are ConfigErrors, the base config loads."""
    path = ws / "c.yaml"
    path.write_text(yaml.safe_dump(CAMPAIGN), encoding="utf-8")
    assert load_campaign(path).grid.nx == 16
    for grid in ({"dx_m": math.nan}, {"nx": 2**40}):
        path.write_text(yaml.safe_dump({**CAMPAIGN, "grid": {**CAMPAIGN["grid"], **grid}}), encoding="utf-8")
        with pytest.raises(ConfigError, match="grid"):
            load_campaign(path)


# -------------------------------------------------------------------------------------------------- HDF5


def _objects(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visit(names.append)
    return sorted(names)


@st.composite
def damage(draw: st.DrawFn) -> tuple[str, Any]:
    """One kind of damage and its parameters (applied by ``apply``)."""
    kind = draw(st.sampled_from(["flip", "truncate", "delete", "attr_delete", "attr_set", "dtype", "shape",
                                 "nonfinite", "flag"]))
    return kind, draw(st.tuples(st.integers(0, 10**9), st.integers(0, 10**9), values))


def apply(path: Path, kind: str, params: tuple[int, int, Any]) -> None:
    a, b, v = params
    if kind in ("flip", "truncate"):
        data = bytearray(path.read_bytes())
        if kind == "truncate":
            path.write_bytes(bytes(data[: a % len(data)]))
            return
        for k in range(1 + b % 16):
            data[(a + 7919 * k) % len(data)] ^= 1 + (b >> k) % 255
        path.write_bytes(bytes(data))
        return
    try:
        with h5py.File(path, "r+") as f:
            _edit(f, kind, a, b, v)
    except Exception:  # noqa: BLE001  the file was already too damaged to edit: it stays as it is
        pass


def _edit(f: h5py.File, kind: str, a: int, b: int, v: Any) -> None:
    """One structural damage of an open file (indices a, b pick the object; v is a random value)."""
    objs = _objects(f)
    name = objs[a % len(objs)]
    attrs = sorted(f.attrs)
    if kind == "delete":
        del f[name]
    elif kind == "attr_delete":
        del f.attrs[attrs[a % len(attrs)]]
    elif kind == "attr_set":
        try:
            f.attrs[attrs[a % len(attrs)]] = v
        except (TypeError, ValueError):
            f.attrs[attrs[a % len(attrs)]] = str(v)
    elif isinstance(f[name], h5py.Dataset) and kind in ("dtype", "shape"):
        arr = f[name][()]
        if kind == "dtype":
            new = np.zeros(arr.shape, [np.float64, np.int16, "S4", np.float16][b % 4])
        else:
            shape = list(arr.shape)
            new = np.zeros(shape[:-1] if b % 2 else shape + [2], arr.dtype)
        del f[name]
        f.create_dataset(name, data=new)
    elif kind == "nonfinite":
        floats = [n for n in objs if isinstance(f[n], h5py.Dataset) and f[n].dtype.kind == "f"]
        arr = f[floats[a % len(floats)]][()]
        arr.reshape(-1)[b % arr.size] = [np.nan, np.inf, -np.inf][b % 3]
        f[floats[a % len(floats)]][...] = arr
    elif kind == "flag":
        which = ["done", "split", "checksum"][b % 3]
        f[which][a % f[which].shape[0]] = {"done": False, "split": 9, "checksum": b"f" * 64}[which]


def read_all(path: Path) -> None:
    with open_data(path) as d:
        _ = (d.attrs, d.dt, d.dx, d.dy, d.frame_dt, d.x, d.y, d.t, d.params, d.split, d.done,
             d.cases("train"), d.cases("test"))
        d.load_all()
    describe(path)


@SETTINGS
@given(damages=st.lists(damage(), min_size=1, max_size=2))
def test_reader_raises_only_data_file_error(ws: Path, damages: list[tuple[str, Any]]) -> None:
    path = ws / "mutated.h5"
    shutil.copy(ws / "good.h5", path)
    for kind, params in damages:
        apply(path, kind, params)
    try:
        read_all(path)
    except DataFileError as exc:
        assert "\n" not in str(exc) and str(exc)


def test_the_reader_property_can_fail(ws: Path) -> None:
    """Damage that must be caught is caught: a flipped field value, a truncated file."""
    path = ws / "m.h5"
    shutil.copy(ws / "good.h5", path)
    read_all(path)
    with h5py.File(path, "r+") as f:
        f["fields"][0, 1, 2, 3] = 5.0
    with pytest.raises(DataFileError, match="checksum mismatch"):
        read_all(path)
    apply(path, "truncate", (path.stat().st_size // 3, 0, None))
    with pytest.raises(DataFileError):
        DataFile(path)
