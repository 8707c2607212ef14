"""Mutations of the bad-input corpus for what the package *reads* (issue 16 A; ``manifest_inputs.yaml``):
special files where a reader looks, HDF5 objects that leave the file, consistent files with nothing in
them or more than memory, locked files, and run files of the wrong type or disagreeing with each other.

Each takes the case's workspace (see make_corpus.py) and damages it in place. FIFOs are made with
``os.mkfifo``: a reader that opened one would block forever, which the corpus's time bound turns into a
failure instead of a hang.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

from tests.bad_inputs import make_corpus as mc

HELD: list[int] = []  # descriptors holding locks for the case being run (closed by release())


def release() -> None:
    """Close the descriptors a mutation kept open (file locks)."""
    while HELD:
        os.close(HELD.pop())


def _fifo(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def _train_yaml(ws: Path, data: str) -> None:
    text = yaml.safe_dump(mc.train_config(data=data), sort_keys=False)
    (ws / "on_bad.yaml").write_text(text, encoding="utf-8")


def _medium_yaml(ws: Path, path: str) -> None:
    text = mc.GOOD_CAMPAIGN.replace("{kind: constant, c_mps: [1500.0, 2000.0]}",
                                    f"{{kind: file, path: {path}}}")
    (ws / "medium.yaml").write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------------------ special files


def sp_fifo_data(ws: Path) -> None:
    """bad.h5 is a FIFO; on_bad.yaml trains on it."""
    _fifo(ws / "bad.h5")
    _train_yaml(ws, "bad.h5")


def sp_fifo_medium(ws: Path) -> None:
    _fifo(ws / "velocity.npy")
    _medium_yaml(ws, "velocity.npy")


def sp_device_medium(ws: Path) -> None:
    """The medium file is a symbolic link to /dev/zero (endless zeros: a reader would never finish)."""
    os.symlink("/dev/zero", ws / "velocity.npy")
    _medium_yaml(ws, "velocity.npy")


def _run_fifo(name: str) -> Callable[[Path], None]:
    def make(ws: Path) -> None:
        _fifo(ws / "run" / name)

    return make


# ------------------------------------------------------------------------------------ links out of the file


def ln_external_fields_fifo(ws: Path) -> None:
    """'fields' is an external link to a FIFO's dataset."""
    _fifo(ws / "elsewhere.h5")
    with h5py.File(mc._copy(ws), "r+") as f:
        del f["fields"]
        f["fields"] = h5py.ExternalLink("elsewhere.h5", "/fields")
    _train_yaml(ws, "bad.h5")


def ln_external_velocity(ws: Path) -> None:
    """'velocity' is an external link into a valid copy of the file (someone else's data)."""
    shutil.copy(ws / "good.h5", ws / "other.h5")
    with h5py.File(mc._copy(ws), "r+") as f:
        del f["velocity"]
        f["velocity"] = h5py.ExternalLink("other.h5", "/velocity")


def ln_virtual_fields_fifo(ws: Path) -> None:
    """'fields' is a virtual dataset mapping a FIFO's dataset."""
    _fifo(ws / "source.h5")
    with h5py.File(mc._copy(ws), "r+") as f:
        shape = f["fields"].shape
        del f["fields"]
        layout = h5py.VirtualLayout(shape=shape, dtype="f4")
        layout[...] = h5py.VirtualSource("source.h5", "fields", shape=shape)
        f.create_virtual_dataset("fields", layout)


def ln_external_storage(ws: Path) -> None:
    """'velocity' keeps its raw data in an external file, which is a FIFO."""
    with h5py.File(mc._copy(ws), "r+") as f:
        shape = f["velocity"].shape
        del f["velocity"]
        f.create_dataset("velocity", shape=shape, dtype="f4",
                         external=[("velocity.raw", 0, h5py.h5f.UNLIMITED)])
    _fifo(ws / "velocity.raw")


def ln_external_param(ws: Path) -> None:
    """A parameter dataset params/wavenumber is an external link (to a file that does not exist)."""
    with h5py.File(mc._copy(ws), "r+") as f:
        del f["params/wavenumber"]
        f["params/wavenumber"] = h5py.ExternalLink("missing.h5", "/wavenumber")


def ln_medium_external(ws: Path) -> None:
    """An HDF5 medium file whose dataset 'velocity' is an external link to a FIFO."""
    _fifo(ws / "elsewhere.h5")
    with h5py.File(ws / "medium.h5", "w") as f:
        f["velocity"] = h5py.ExternalLink("elsewhere.h5", "/velocity")
    _medium_yaml(ws, "medium.h5")


# -------------------------------------------------------------------------------- empty, huge, locked data


def _resize(f: h5py.File, frames: int | None = None, nx: int | None = None, cases: int | None = None) -> None:
    """Replace the datasets of ``f`` by consistent ones (zero fields, 1500 m/s, true checksums) of another
    frame count, width or case count."""
    n, nt, ny, nxx = f["fields"].shape
    n = cases if cases is not None else n
    nt = frames if frames is not None else nt
    nxx = nx if nx is not None else nxx
    for k in ("fields", "velocity", "t", "x", "split", "done", "checksum",
              *(f"params/{p}" for p in f["params"])):
        del f[k]
    from wavesurrogate.data.schema import case_checksum

    fields, velocity = np.zeros((nt, ny, nxx), np.float32), np.full((ny, nxx), 1500.0, np.float32)
    f["fields"] = np.broadcast_to(fields, (n, *fields.shape))
    f["velocity"] = np.broadcast_to(velocity, (n, *velocity.shape))
    f["t"], f["x"] = np.arange(nt) * 0.004, np.arange(nxx) * 10.0
    f["split"], f["done"] = np.zeros(n, np.uint8), np.ones(n, bool)
    f["checksum"] = np.array([case_checksum(fields, velocity).encode("ascii")] * n, dtype="S64")  # consistent
    for p in ("medium_c_mps", "wavenumber"):
        f[f"params/{p}"] = np.ones(n)


def h5_zero_frames(ws: Path) -> None:
    with h5py.File(mc._copy(ws), "r+") as f:
        _resize(f, frames=0)


def h5_zero_width(ws: Path) -> None:
    with h5py.File(mc._copy(ws), "r+") as f:
        _resize(f, nx=0)


def h5_zero_cases(ws: Path) -> None:
    with h5py.File(mc._copy(ws), "r+") as f:
        _resize(f, cases=0)


def h5_huge_fields(ws: Path) -> None:
    """A 0.5 MB file declaring 4 cases × 8 frames of 2^17 × 2^17 (2.2 TB) compressed, never written."""
    n_side = 2**17
    with h5py.File(mc._copy(ws), "r+") as f:
        n, nt = f["fields"].shape[:2]
        for k in ("fields", "velocity", "x", "y"):
            del f[k]
        f.create_dataset("fields", shape=(n, nt, n_side, n_side), dtype="f4", chunks=(1, 1, 512, 512),
                         compression="gzip")
        f.create_dataset("velocity", shape=(n, n_side, n_side), dtype="f4", chunks=(1, 512, 512),
                         compression="gzip")
        f["x"] = np.arange(n_side) * 10.0
        f["y"] = np.arange(n_side) * 10.0
    _train_yaml(ws, "bad.h5")


def h5_locked(ws: Path) -> None:
    """bad.h5 is locked exclusively (as HDF5 does while another process writes it)."""
    fd = os.open(mc._copy(ws), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    HELD.append(fd)


def _config_yaml(text: str) -> Callable[[Path], None]:
    def make(ws: Path) -> None:
        from wavesurrogate.data.schema import set_attr

        with h5py.File(mc._copy(ws), "r+") as f:
            set_attr(f, "config_yaml", text)

    return make


RESOLVED = mc.GOOD_CAMPAIGN.replace("frame_stride: 2}", "frame_stride: 2, dt_s: 0.002}")
BOMB = "notes:\n" + "".join(
    f"  l{i}: &l{i} [" + (", ".join([f"*l{i - 1}"] * 9) if i else "a, b, c, d, e, f, g, h, i") + "]\n"
    for i in range(10))


# ------------------------------------------------------------------------------------ run files, wrong types


def _weights(ws: Path, fn: Callable[[dict[str, Any], dict[str, str]], None]) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    p = ws / "run" / "weights.safetensors"
    with safe_open(str(p), "pt") as f:
        meta = dict(f.metadata() or {})
    sd = load_file(p)
    fn(sd, meta)
    save_file(sd, p, metadata=meta)


def ck_epoch_string(ws: Path) -> None:
    _weights(ws, lambda sd, meta: meta.update(epoch=json.dumps("abc")))


def ck_complex_weights(ws: Path) -> None:
    """Every weight complex, of the right shape (its imaginary part would be dropped silently)."""
    import torch

    def make(sd: dict[str, Any], meta: dict[str, str]) -> None:
        for k, v in sd.items():
            sd[k] = torch.complex(v, torch.ones_like(v))

    _weights(ws, make)


def _state(ws: Path, fn: Callable[[dict[str, Any]], None]) -> None:
    import torch

    p = ws / "run" / "optimizer.pt"
    state = torch.load(p, weights_only=True)
    fn(state)
    buf = io.BytesIO()
    torch.save(state, buf)
    p.write_bytes(buf.getvalue())


def _bomb(state: dict[str, Any]) -> None:
    x: list[Any] = [1.0]
    for _ in range(40):  # 2^40 leaves reached through 80 list objects
        x = [x, x]
    state["metrics"][0]["bomb"] = x


def _moment(state: dict[str, Any]) -> None:
    import torch

    state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(3)


def _deep_json(ws: Path, name: str) -> None:
    p = ws / "run" / name
    p.write_text(p.read_text(encoding="utf-8").rstrip()[:-1] + ', "notes": ' + "[" * 500 + "]" * 500 + "}\n",
                 encoding="utf-8")


def _edit(name: str, ws: Path, **kw: Any) -> None:
    """Set ``kw`` in stats.json, or in the kwargs of model.json."""
    mc._json(ws, name, lambda d: (d["kwargs"] if name == "model.json" else d).update(kw))


def _duplicate_name(ws: Path) -> None:
    p = ws / "run" / "model.json"
    p.write_text(p.read_text(encoding="utf-8").rstrip()[:-1] + ', "name": "unet2d"}', encoding="utf-8")


def _complex_model(state: dict[str, Any]) -> None:
    import torch

    state["model"] = {k: v.to(torch.complex64) for k, v in state["model"].items()}


MUTATIONS: dict[str, Callable[[Path], None]] = {
    "sp_fifo_data": sp_fifo_data, "sp_fifo_medium": sp_fifo_medium, "sp_device_medium": sp_device_medium,
    **{f"sp_fifo_{n.replace('.', '_')}": _run_fifo(n) for n in
       ("stats.json", "model.json", "config.yaml", "weights.safetensors", "optimizer.pt")},
    "ln_external_fields_fifo": ln_external_fields_fifo, "ln_external_velocity": ln_external_velocity,
    "ln_virtual_fields_fifo": ln_virtual_fields_fifo, "ln_external_storage": ln_external_storage,
    "ln_external_param": ln_external_param, "ln_medium_external": ln_medium_external,
    "h5_zero_frames": h5_zero_frames, "h5_zero_width": h5_zero_width, "h5_zero_cases": h5_zero_cases,
    "h5_huge_fields": h5_huge_fields, "h5_locked": h5_locked,
    "h5_config_not_yaml": _config_yaml("grid: [unclosed\n"),
    "h5_config_bomb": _config_yaml(RESOLVED + BOMB),
    "h5_config_unresolved": _config_yaml(mc.GOOD_CAMPAIGN),
    "h5_config_other_stride": _config_yaml(RESOLVED.replace("frame_stride: 2,", "frame_stride: 3,")),
    "h5_params_not_config": _config_yaml(RESOLVED),  # a point source: params lack source_x_m
    "ck_epoch_string": ck_epoch_string, "ck_complex_weights": ck_complex_weights,
    "ck_stats_n_in": lambda ws: _edit("stats.json", ws, n_in=3),
    "ck_stats_task": lambda ws: _edit("stats.json", ws, task="source_to_field"),
    "ck_model_json_n_in": lambda ws: _edit("model.json", ws, n_in=3),
    "ck_model_json_padding": lambda ws: _edit("model.json", ws, padding_mode="x"),
    "ck_model_json_width_float": lambda ws: _edit("model.json", ws, width=4.5),
    "ck_model_json_depth_40": lambda ws: _edit("model.json", ws, depth=40),
    "ck_model_json_nan": lambda ws: _edit("model.json", ws, width=float("nan")),
    "ck_model_json_huge_int": lambda ws: _edit("model.json", ws, width=10**30),
    "ck_model_json_deep": lambda ws: _deep_json(ws, "model.json"),
    "ck_stats_deep": lambda ws: _deep_json(ws, "stats.json"),
    "ck_model_json_duplicate": _duplicate_name,
    "ck_state_missing_key": lambda ws: _state(ws, lambda s: s.pop("best_epoch")),
    "ck_state_wrong_type": lambda ws: _state(ws, lambda s: s.update(global_step="3")),
    "ck_state_moment_shape": lambda ws: _state(ws, _moment),
    "ck_state_lr_string": lambda ws: _state(ws, lambda s: s["optimizer"]["param_groups"][0].update(lr="x")),
    "ck_state_reference_bomb": lambda ws: _state(ws, _bomb),
    "ck_state_complex_model": lambda ws: _state(ws, _complex_model),
}
