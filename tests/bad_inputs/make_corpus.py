"""Build the valid base files of the bad-input corpus and the binary bad inputs derived from them.

The repository holds no binaries: HDF5 files, run directories and checkpoints are made here, at test time,
from a valid tiny data file and a valid one-epoch run, then damaged by a named *mutation* (see
``MUTATIONS``; ``manifest.yaml`` says which case uses which).

    python tests/bad_inputs/make_corpus.py DIR      # materialise every case's workspace under DIR/<id>

A workspace holds ``good.h5`` (valid data file), ``run/`` (a valid run trained on it), ``campaign.yaml``
and ``train.yaml`` (valid configs), the case's YAML input if it has one, and whatever its mutation made.
Cases come from ``manifest.yaml`` and every ``manifest_*.yaml`` (``manifest_inputs.yaml``: what the package
reads, with its mutations in ``mutations_inputs.py``); each runs within ``HANG_S`` seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import shutil
import stat
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.yaml"

GOOD_CAMPAIGN = """\
name: corpus
seed: 1
cases: 2
test_cases: 1
test_seed: 2
solver: {kind: fd, space_order: 2, backend: numpy}
grid: {nx: 16, ny: 16, dx_m: 10.0, dy_m: 10.0}
time: {n_frames: 8, frame_stride: 2}
boundary: {kind: absorbing, width: 4}
medium: {kind: constant, c_mps: [1500.0, 2000.0]}
source: {kind: point, x_m: [50.0, 100.0], y_m: 75.0, freq_hz: 20.0, amplitude: 1.0e+7}
"""


def train_config(data: str = "good.h5", out: str = "run", **over: Any) -> dict[str, Any]:
    """A valid one-epoch training config of a tiny cnn2d on ``data`` (paths relative to the workspace)."""
    cfg: dict[str, Any] = {
        "name": "corpus", "seed": 0, "out": out,
        "data": {"path": data, "task": "forecast", "n_in": 2, "n_out": 1, "val_fraction": 0.34},
        "model": {"name": "cnn2d", "kwargs": {"n_in": 2, "n_out": 1, "width": 4, "depth": 1}},
        "epochs": 1, "batch_size": 4, "progress": False,
    }
    cfg.update(over)
    return cfg


def write_data(path: Path, n: int = 16, n_frames: int = 8, n_cases: int = 4, n_test: int = 1) -> Path:
    """A valid schema-wavesurrogate/2 file of smooth synthetic waves (no solver needed), built atomically."""
    from wavesurrogate.data.store import DataWriter

    rng = np.random.default_rng(0)
    x = np.arange(n) * 10.0
    t = np.arange(n_frames) * 0.004
    c = rng.uniform(1500.0, 2000.0, n_cases)
    k = rng.uniform(0.01, 0.03, n_cases)
    attrs = {"solver": "synthetic", "space_order": 2, "dt": 0.002, "dx": 10.0, "dy": 10.0, "frame_stride": 2,
             "boundary": "absorbing", "seed": 1, "package_version": "corpus", "config_yaml": GOOD_CAMPAIGN}
    with DataWriter(path, n_cases=n_cases, n_frames=n_frames, x=x, y=x, t=t, attrs=attrs,
                    param_names=["medium_c_mps", "wavenumber"]) as w:
        for i in range(n_cases):
            phase = k[i] * (x[None, None, :] + x[None, :, None] - c[i] * t[:, None, None])
            fields = (np.sin(phase) * np.exp(-((x[None, :, None] - 80.0) ** 2) / 2e3)).astype(np.float32)
            w.write_case(i, fields, np.full((n, n), c[i], np.float32),
                         {"medium_c_mps": float(c[i]), "wavenumber": float(k[i])},
                         split=int(i >= n_cases - n_test))
    return path


def build_base(base: Path) -> Path:
    """The valid files every workspace starts from: good.h5, run/, campaign.yaml, train.yaml."""
    from wavesurrogate.train.loop import config_from_dict, train

    base.mkdir(parents=True, exist_ok=True)
    write_data(base / "good.h5")
    (base / "campaign.yaml").write_text(GOOD_CAMPAIGN, encoding="utf-8")
    (base / "train.yaml").write_text(yaml.safe_dump(train_config(), sort_keys=False), encoding="utf-8")
    cfg = train_config(data=str(base / "good.h5"), out=str(base / "run"))
    train(config_from_dict(cfg))
    # the run's config.yaml holds absolute paths; point it at this base's files again after copying
    return base


def make_workspace(base: Path, dest: Path) -> Path:
    """Copy the base files into ``dest`` and re-point the run's stored data path at dest/good.h5."""
    shutil.copytree(base, dest)
    cfg_path = dest / "run" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    cfg["data"]["path"], cfg["out"] = str(dest / "good.h5"), str(dest / "run")
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return dest


# ------------------------------------------------------------------------------------- HDF5 mutations


def _copy(ws: Path, name: str = "bad.h5") -> Path:
    dst = ws / name
    shutil.copy(ws / "good.h5", dst)
    return dst


def _edit(ws: Path, fn: Callable[[h5py.File], None]) -> None:
    with h5py.File(_copy(ws), "r+") as f:
        fn(f)


def _rechecksum(f: h5py.File, case: int) -> None:
    from wavesurrogate.data.store import case_checksum

    f["checksum"][case] = case_checksum(f["fields"][case], f["velocity"][case]).encode("ascii")


def _nan_fields(f: h5py.File) -> None:
    a = f["fields"][0]
    a[3, 5, 5] = np.nan
    f["fields"][0] = a
    _rechecksum(f, 0)  # the checksum agrees: only the NaN check can catch it


def _flip_value(f: h5py.File) -> None:
    a = f["fields"][1]
    a[2, 4, 4] += 1.0
    f["fields"][1] = a


def _replace(f: h5py.File, name: str, data: np.ndarray) -> None:
    del f[name]
    f.create_dataset(name, data=data)


def _traces(f: h5py.File, dtype: type) -> h5py.Group:
    """Add a receiver-trace group traces/boundary (3 receivers, 5 samples) with values of ``dtype``."""
    g = f.create_group("traces/boundary")
    g.create_dataset("values", data=np.ones((f["fields"].shape[0], 5, 3), dtype))
    g.create_dataset("t_s", data=np.arange(5) * 1e-3)
    g.create_dataset("index", data=np.zeros((3, 2), np.int32))
    return g


def h5_truncated(ws: Path) -> None:
    p = _copy(ws)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def h5_empty(ws: Path) -> None:
    (ws / "bad.h5").write_bytes(b"")


def h5_text(ws: Path) -> None:
    (ws / "bad.h5").write_text("fields: not really an HDF5 file\n", encoding="utf-8")


def h5_foreign(ws: Path) -> None:
    with h5py.File(ws / "bad.h5", "w") as f:
        f.create_dataset("u", data=np.zeros((4, 4), np.float32))


H5_EDITS: dict[str, Callable[[h5py.File], None]] = {
    "h5_schema_future": lambda f: f.attrs.__setitem__("schema", "wavesurrogate/3"),
    "h5_missing_dataset": lambda f: f.__delitem__("velocity"),
    "h5_missing_checksum": lambda f: f.__delitem__("checksum"),
    "h5_missing_attr": lambda f: f.attrs.__delitem__("dt"),
    "h5_negative_dt": lambda f: f.attrs.__setitem__("dt", -0.002),
    "h5_nan_dx": lambda f: f.attrs.__setitem__("dx", np.nan),
    "h5_float64_fields": lambda f: _replace(f, "fields", f["fields"][()].astype(np.float64)),
    "h5_3d_fields": lambda f: _replace(f, "fields", f["fields"][()][:, 0]),
    "h5_velocity_shape": lambda f: _replace(f, "velocity", f["velocity"][()][:, :8]),
    "h5_nan_fields": _nan_fields,
    "h5_checksum_mismatch": _flip_value,
    "h5_case_not_done": lambda f: f["done"].__setitem__(0, False),
    "h5_nan_coordinate": lambda f: _replace(f, "t", np.full(f["t"].shape, np.nan)),
    "h5_string_params": lambda f: _replace(f, "params/wavenumber", np.array([b"a", b"b", b"c", b"d"])),
    "h5_float_split": lambda f: _replace(f, "split", f["split"][()].astype(np.float64)),
    "h5_trace_float64": lambda f: _traces(f, np.float64),
    "h5_trace_missing_index": lambda f: _traces(f, np.float32).__delitem__("index"),
    "h5_trace_checksum": lambda f: _traces(f, np.float32),  # traces added, checksums not updated
    "h5_trace_times_not_uniform": lambda f: _replace(_traces(f, np.float32), "t_s", np.r_[0, 1, 2, 4, 9.0]),
    "h5_trace_index_outside": lambda f: _replace(_traces(f, np.float32), "index", np.full((3, 2), 99)),
    "h5_window_alone": lambda f: f.attrs.create("window_ij0", np.array([1, 1], np.int64)),
    "h5_window_negative": lambda f: f.attrs.__setitem__("window_ij0", np.array([-1, 0])),
}


def h5_velocity_chunk_zeroed(ws: Path) -> None:
    p = _copy(ws)
    with h5py.File(p, "r") as f:
        info = f["velocity"].id.get_chunk_info(0)  # where case 0's compressed velocity lies in the file
    data = bytearray(p.read_bytes())
    data[info.byte_offset:info.byte_offset + info.size] = bytes(info.size)
    p.write_bytes(bytes(data))


def h5_bad_string_encoding(ws: Path) -> None:
    """Attribute 'solver' as a fixed ASCII string whose character-set field says 13 (no such encoding)."""
    p = _copy(ws)
    with h5py.File(p, "r+") as f:
        del f.attrs["solver"]
        tid = h5py.h5t.C_S1.copy()
        tid.set_size(9)
        aid = h5py.h5a.create(f.id, b"solver", tid, h5py.h5s.create(h5py.h5s.SCALAR))
        aid.write(np.array(b"synthetic", dtype="S9"), mtype=tid)
    data = bytearray(p.read_bytes())
    at = data.find(b"\x13\x00\x00\x00\x09\x00\x00\x00", data.find(b"solver\x00"))  # string type, 9 bytes
    data[at + 1] = 0xD0  # class bit field: character set 13 in the high nibble
    p.write_bytes(bytes(data))


def h5_other_grid(ws: Path) -> None:
    write_data(ws / "bad.h5", n=12)


def h5_too_few_frames(ws: Path) -> None:
    write_data(ws / "bad.h5", n_frames=2)


def h5_no_train_cases(ws: Path) -> None:
    write_data(ws / "bad.h5", n_cases=2, n_test=2)


# ------------------------------------------------------------------------------ checkpoint mutations


class _Exploit:
    """Unpickling this object would create the file ``pwned`` (a harmless stand-in for arbitrary code)."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({self.target!r}, 'w').write('code ran')",))


def malicious_pickle(target: Path) -> bytes:
    """torch.save-format bytes whose unpickling would run code (creating ``target``)."""
    import torch

    buf = io.BytesIO()
    torch.save({"format": "wavesurrogate-state/1", "epoch": _Exploit(str(target))}, buf)
    return buf.getvalue()


def _json(ws: Path, name: str, fn: Callable[[dict], None]) -> None:
    p = ws / "run" / name
    d = json.loads(p.read_text(encoding="utf-8"))
    fn(d)
    p.write_text(json.dumps(d), encoding="utf-8")


def ck_weights_truncated(ws: Path) -> None:
    p = ws / "run" / "weights.safetensors"
    p.write_bytes(p.read_bytes()[:300])


def ck_weights_pickle(ws: Path) -> None:
    (ws / "run" / "weights.safetensors").write_bytes(malicious_pickle(ws / "pwned"))


def ck_weights_missing(ws: Path) -> None:
    (ws / "run" / "weights.safetensors").unlink()


def ck_other_architecture(ws: Path) -> None:
    """model.json and config.yaml agree on width 8; the weights were trained with width 4."""
    _json(ws, "model.json", lambda d: d["kwargs"].update(width=8))
    p = ws / "run" / "config.yaml"
    cfg = yaml.safe_load(p.read_text(encoding="utf-8"))
    cfg["model"]["kwargs"]["width"] = 8
    p.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")


def ck_other_model(ws: Path) -> None:
    _json(ws, "model.json", lambda d: d.update(name="unet2d"))


def ck_unknown_model(ws: Path) -> None:
    _json(ws, "model.json", lambda d: d.update(name="no_such_net"))


def ck_model_json_garbage(ws: Path) -> None:
    (ws / "run" / "model.json").write_text("{\"name\": \"cnn2d\", ", encoding="utf-8")


def ck_stats_empty(ws: Path) -> None:
    (ws / "run" / "stats.json").write_text("{}", encoding="utf-8")


def ck_stats_missing_key(ws: Path) -> None:
    _json(ws, "stats.json", lambda d: d.pop("field_mean"))


def ck_stats_zero_std(ws: Path) -> None:
    _json(ws, "stats.json", lambda d: d.update(field_std=0.0))


def ck_stats_bad_types(ws: Path) -> None:
    _json(ws, "stats.json", lambda d: d.update(field_std="wide", data=[16, 16]))


def ck_task_mismatch(ws: Path) -> None:
    _json(ws, "model.json", lambda d: d.update(task="source_to_field"))


def ck_no_config(ws: Path) -> None:
    (ws / "run" / "config.yaml").unlink()


def ck_state_pickle(ws: Path) -> None:
    (ws / "run" / "optimizer.pt").write_bytes(malicious_pickle(ws / "pwned"))


def ck_state_truncated(ws: Path) -> None:
    p = ws / "run" / "optimizer.pt"
    p.write_bytes(p.read_bytes()[:200])


def ck_state_foreign(ws: Path) -> None:
    import torch

    buf = io.BytesIO()
    torch.save({"epoch": 1, "weights": torch.zeros(3)}, buf)  # weights-only safe, but not our format
    (ws / "run" / "optimizer.pt").write_bytes(buf.getvalue())


def ck_plain_pickle_state(ws: Path) -> None:
    (ws / "run" / "optimizer.pt").write_bytes(pickle.dumps(_Exploit(str(ws / "pwned"))))


def ck_empty_run_dir(ws: Path) -> None:
    (ws / "empty_run").mkdir()


# --------------------------------------------------------------------------------------- other inputs


def npy_wrong_shape(ws: Path) -> None:
    np.save(ws / "velocity.npy", np.full((8, 8), 1500.0))


def npy_negative(ws: Path) -> None:
    np.save(ws / "velocity.npy", np.full((16, 16), -1500.0))


def npy_pickled(ws: Path) -> None:
    np.save(ws / "velocity.npy", np.array([_Exploit(str(ws / "pwned"))], dtype=object), allow_pickle=True)


LONG_NAME = "x" * 300  # longer than any file system allows (NAME_MAX is 255)


def long_name_config(ws: Path) -> None:
    text = (ws / "campaign.yaml").read_text(encoding="utf-8")
    text = text.replace("{kind: constant, c_mps: [1500.0, 2000.0]}", f"{{kind: file, path: {LONG_NAME}.npy}}")
    (ws / "long_medium.yaml").write_text(text, encoding="utf-8")
    (ws / "long_data.yaml").write_text(yaml.safe_dump(train_config(data=LONG_NAME + ".h5")), encoding="utf-8")


def existing_out(ws: Path) -> None:
    (ws / "out").mkdir()
    (ws / "out" / "keep.txt").write_text("precious\n", encoding="utf-8")


MUTATIONS: dict[str, Callable[[Path], None]] = {
    "h5_truncated": h5_truncated, "h5_empty": h5_empty, "h5_text": h5_text, "h5_foreign": h5_foreign,
    **{k: (lambda ws, fn=fn: _edit(ws, fn)) for k, fn in H5_EDITS.items()},
    "h5_velocity_chunk_zeroed": h5_velocity_chunk_zeroed, "h5_bad_string_encoding": h5_bad_string_encoding,
    "h5_other_grid": h5_other_grid,
    "h5_too_few_frames": h5_too_few_frames,
    "h5_no_train_cases": h5_no_train_cases,
    "ck_weights_truncated": ck_weights_truncated, "ck_weights_pickle": ck_weights_pickle,
    "ck_weights_missing": ck_weights_missing, "ck_other_architecture": ck_other_architecture,
    "ck_other_model": ck_other_model, "ck_unknown_model": ck_unknown_model,
    "ck_model_json_garbage": ck_model_json_garbage, "ck_stats_empty": ck_stats_empty,
    "ck_stats_missing_key": ck_stats_missing_key, "ck_stats_zero_std": ck_stats_zero_std,
    "ck_stats_bad_types": ck_stats_bad_types, "ck_task_mismatch": ck_task_mismatch,
    "ck_no_config": ck_no_config, "ck_state_pickle": ck_state_pickle,
    "ck_state_truncated": ck_state_truncated,
    "ck_state_foreign": ck_state_foreign, "ck_plain_pickle_state": ck_plain_pickle_state,
    "ck_empty_run_dir": ck_empty_run_dir,
    "npy_wrong_shape": npy_wrong_shape, "npy_negative": npy_negative, "npy_pickled": npy_pickled,
    "existing_out": existing_out, "long_name_config": long_name_config,
}
# outputs, locks, run names, resume, hangs, progress, launch environment (issue 16): their own module
from tests.bad_inputs.mutations_safety import MUTATIONS as _SAFETY  # noqa: E402
from tests.bad_inputs.mutations_safety import release_held  # noqa: E402

MUTATIONS.update(_SAFETY)


# ------------------------------------------------------------------------------------------- manifest


def all_mutations() -> dict[str, Callable[[Path], None]]:
    """MUTATIONS here and those of mutations_inputs.py (what the package reads, issue 16)."""
    from tests.bad_inputs.mutations_inputs import MUTATIONS as READS

    return {**MUTATIONS, **READS}


def load_manifest(path: Path | None = None) -> list[dict[str, Any]]:
    """The corpus cases of ``path`` (default: manifest.yaml and every manifest_*.yaml beside it; each case:
    id, kind, argv, expect, optional input/make/absent/class)."""
    paths = [path] if path is not None else [MANIFEST, *sorted(HERE.glob("manifest_*.yaml"))]
    cases = [c for p in paths for c in yaml.safe_load(p.read_text(encoding="utf-8"))["cases"]]
    ids = [c["id"] for c in cases]
    if len(set(ids)) != len(ids):
        raise ValueError("manifest: duplicate case ids")
    known = all_mutations()
    for c in cases:
        if c.get("make") is not None and c["make"] not in known:
            raise ValueError(f"manifest: {c['id']}: unknown mutation {c['make']!r}")
    return cases


def prepare_case(case: dict[str, Any], base: Path, dest: Path) -> tuple[Path, list[str]]:
    """Workspace of one case and its argv with ``{ws}`` filled in."""
    ws = make_workspace(base, dest)
    if case.get("input"):
        shutil.copy(HERE / case["input"], ws / Path(case["input"]).name)
    subs = {"{ws}": str(ws), "{long}": LONG_NAME}
    if case.get("make"):
        subs.update(all_mutations()[case["make"]](ws) or {})  # a mutation may name more placeholders
    argv = [str(a) for a in case["argv"]]
    for k, v in subs.items():
        argv = [a.replace(k, v) for a in argv]
    return ws, argv


def snapshot(root: Path) -> dict[str, str]:
    """Relative path → sha256 (or 'dir') of everything under ``root``: to prove nothing was written."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):  # rglob does not follow links to directories
        rel, mode = str(p.relative_to(root)), os.lstat(p).st_mode
        if stat.S_ISLNK(mode):  # never read through a link (it may name /dev/zero): its target is its content
            out[rel] = "link:" + os.readlink(p)
        elif stat.S_ISDIR(mode):
            out[rel] = "dir"
        elif not stat.S_ISREG(mode):  # a FIFO of a special-file case: opening it would block
            out[rel] = f"special:{stat.S_IFMT(mode):o}"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``wavesurrogate ARGV`` in-process as the console script runs it: (exit code, stdout, stderr).

    argparse's SystemExit becomes the code; warnings go to stderr (Python's default filters), as they
    would outside pytest, so that a stray warning breaks the one-line rule here too.
    """
    from wavesurrogate.cli import main as cli_main

    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        warnings.resetwarnings()
        for cat in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", cat)
        warnings.showwarning = warnings._showwarning_orig  # type: ignore[attr-defined]
        try:
            code = cli_main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


HANG_S = 20.0  # the time bound of every case: a reader blocked on a FIFO or a bomb being expanded fails it


class CaseHung(BaseException):  # not an Exception: no `except Exception` of the package may swallow it
    """A corpus case ran past HANG_S."""


@contextlib.contextmanager
def time_bound(seconds: float) -> Any:
    """Raise CaseHung in this (main) thread after ``seconds`` (SIGALRM: interrupts blocking system calls
    and Python loops); a hang inside C code that retries past the signal ends the process with a traceback
    at 3 × ``seconds`` (faulthandler) instead of hanging the test run."""
    import faulthandler
    import signal

    def fire(signum: int, frame: Any) -> None:
        raise CaseHung()

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(3 * seconds, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        faulthandler.cancel_dump_traceback_later()


def check_case(case: dict[str, Any], base: Path, dest: Path) -> dict[str, Any]:
    """Run one corpus case in its workspace (as working directory); what happened and what went wrong.

    Returns {"argv", "code", "line", "problems"}: ``problems`` is empty when the case was rejected with
    exit code 2, one line on stderr holding every expected word, no traceback, nothing on stdout, no
    ``absent`` path created and the workspace byte-for-byte unchanged.
    """
    from tests.bad_inputs.mutations_inputs import release

    ws, argv = prepare_case(case, base, dest)
    before = snapshot(ws)
    env = {k: str(v) for k, v in (case.get("env") or {}).items()}
    saved = {k: os.environ.get(k) for k in env}
    hung = False
    t0 = time.perf_counter()
    try:
        os.environ.update(env)
        with contextlib.chdir(ws), time_bound(HANG_S):  # relative paths in configs land in the workspace
            code, out, err = run_cli(argv)
    except CaseHung:
        hung, code, out, err = True, -1, "", f"no answer within {HANG_S:g} s"
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        release()
        release_held()
    seconds = time.perf_counter() - t0
    lines = err.strip().splitlines()
    problems = [f"hung: {err}"] if hung else []
    if case.get("within_s") is not None and seconds > float(case["within_s"]):
        problems.append(f"took {seconds:.1f} s, more than its bound of {case['within_s']} s")
    if code != 2:
        problems.append(f"exit code {code}")
    if len(lines) != 1 or "Traceback" in err:
        problems.append(f"{len(lines)} lines on stderr")
    if out:
        problems.append("output on stdout")
    if "\x1b" in err or "weights_only=False" in err:
        problems.append("terminal escape codes or advice to load unsafely")
    first = lines[0] if lines else ""
    missing = [w for w in case["expect"] if w.lower() not in first.lower()]
    if missing:
        problems.append(f"message lacks {missing}")
    created = [rel for rel in case.get("absent") or [] if (ws / rel).exists()]
    if created:
        problems.append(f"created {created}")
    after = snapshot(ws)
    if after != before:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        problems.append(f"workspace changed: {changed[:5]}")
    return {"argv": argv, "code": code, "line": first, "stderr": err, "problems": problems,
            "files_checked": len(before), "seconds": seconds}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: make_corpus.py DIR", file=sys.stderr)
        return 2
    root = Path(argv[0])
    base = build_base(root / "_base")
    for case in load_manifest():
        ws, args = prepare_case(case, base, root / case["id"].replace("/", "__"))
        print(f"{case['id']}: wavesurrogate {' '.join(args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
