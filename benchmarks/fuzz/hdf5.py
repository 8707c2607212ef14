"""Damaged and hostile HDF5 data files: bytes, structure, and (issue 16) links out of the file, virtual
datasets, external storage, empty and huge extents, special files in place of the file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

from benchmarks.fuzz.harness import Tally, clean, cli, library
from benchmarks.fuzz.values import rand_value
from tests.bad_inputs import make_corpus as mc
from tests.bad_inputs import mutations_inputs as mi


def _datasets(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _objects(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visit(names.append)
    return names


def flip(path: Path, rng: np.random.Generator, most: int) -> int:
    """Flip 1..most-1 random bytes of ``path`` in place; how many."""
    data = bytearray(path.read_bytes())
    k = int(rng.integers(1, most))
    for pos in rng.integers(0, len(data), k):
        data[int(pos)] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(data))
    return k


def truncate(path: Path, rng: np.random.Generator) -> tuple[int, int]:
    """Cut ``path`` at a random length; (new length, old length)."""
    data = path.read_bytes()
    n = int(rng.integers(0, len(data)))
    path.write_bytes(data[:n])
    return n, len(data)


def h5_mutation(path: Path, rng: np.random.Generator) -> str:
    """Apply one random damage to the HDF5 file at ``path``; returns its description."""
    op = int(rng.integers(0, 17))
    if op >= 10:
        try:
            return hostile_h5(path, op, rng)
        except Exception as exc:  # noqa: BLE001  a damaged file (second mutation) may refuse the edit
            return f"edit-failed: op {op} on a damaged file ({type(exc).__name__})"
    if op == 0:  # bit flips anywhere
        return f"flip: {flip(path, rng, 65)} random bytes"
    if op == 1:
        return "truncate: to {} of {} bytes".format(*truncate(path, rng))
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
    for i in range(n):
        clean(ws)
        bad.write_bytes(good)
        desc = h5_mutation(bad, rng)
        if rng.random() < 0.25 and os.path.isfile(bad) and not os.path.islink(bad):
            desc += "; " + h5_mutation(bad, rng)
        t.strategy(desc)
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
        if any(k in desc for k in HOSTILE):  # training reads the file its own way (load_all, streaming)
            (ws / "on_bad.yaml").write_text(yaml.safe_dump(mc.train_config(data="bad.h5")), encoding="utf-8")
            cli(t, label, ["train", str(ws / "on_bad.yaml"), "--out", str(ws / "new_run")], ws,
                [ws / "new_run"])
    return t.as_dict()




HOSTILE = ("external_link", "soft_link", "virtual", "external_storage", "zero_extent", "huge_extent",
           "special_file")


def _side(path: Path, rng: np.random.Generator) -> str:
    """A file beside ``path`` for a link to point at: a FIFO, a valid copy, or nothing (missing)."""
    name = f"side{int(rng.integers(1000))}.h5"
    k = int(rng.integers(3))
    if k == 0:
        os.mkfifo(path.parent / name)
    elif k == 1:
        shutil.copy(path.parent / "good.h5", path.parent / name)
    return name


def hostile_h5(path: Path, op: int, rng: np.random.Generator) -> str:
    """One of the hostile changes of issue 16 (op 10–16); returns its description."""
    if op == 16:  # the data file itself is a special file
        path.unlink()
        if rng.random() < 0.5:
            os.mkfifo(path)
            return "special_file: FIFO"
        os.symlink("/dev/zero", path)
        return "special_file: /dev/zero"
    if op == 15:
        mi.h5_huge_fields(path.parent)
        return "huge_extent: 2^17 x 2^17 declared"
    with h5py.File(path, "r+") as f:
        names = _datasets(f)
        name = names[int(rng.integers(len(names)))]
        if op == 10:
            side = _side(path, rng)
            del f[name]
            f[name] = h5py.ExternalLink(side, "/" + name)
            return f"external_link: {name} -> {side}"
        if op == 11:
            other = names[int(rng.integers(len(names)))]
            del f[name]
            f[name] = h5py.SoftLink("/" + other)
            return f"soft_link: {name} -> {other}"
        if op == 12:
            side, shape, dtype = _side(path, rng), f[name].shape, f[name].dtype
            del f[name]
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            layout[...] = h5py.VirtualSource(side, name, shape=shape, dtype=dtype)
            f.create_virtual_dataset(name, layout)
            return f"virtual: {name} from {side}"
        if op == 13:
            shape, dtype = f[name].shape, f[name].dtype
            raw = f"side{int(rng.integers(1000))}.raw"
            if dtype.kind in "fiub":
                del f[name]
                f.create_dataset(name, shape=shape, dtype=dtype, external=[(raw, 0, h5py.h5f.UNLIMITED)])
                if rng.random() < 0.5:
                    os.mkfifo(path.parent / raw)
                return f"external_storage: {name} in {raw}"
            return "external_storage: skipped (string dataset)"
        which = ["frames", "nx", "cases"][int(rng.integers(3))]
        mi._resize(f, **{which: 0})
        return f"zero_extent: {which}"
