"""HDF5 data files of schema ``wavesurrogate/1``: atomic writer, distrustful reader, one-line summary.

Layout (see docs/data-format.md): root attributes describing the solver and campaign; ``fields`` float32
[case, frame, y, x] (one case per chunk, gzip); ``velocity`` float32 [case, y, x]; ``params/<name>``
[case]; ``x``, ``y``, ``t`` coordinates in m and s; ``split`` uint8 [case] (0 train, 1 test); ``done``
bool [case]; ``checksum`` [case] (sha256 hex of the case's float32 field bytes then velocity bytes).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wavesurrogate.errors import DataFileError
from wavesurrogate.io import atomic_path

SCHEMA = "wavesurrogate/1"
REQUIRED_ATTRS = ("schema", "solver", "space_order", "dt", "dx", "dy", "frame_stride", "boundary", "seed",
                  "package_version", "config_yaml")
REQUIRED_DATASETS = ("fields", "velocity", "x", "y", "t", "split", "done", "checksum")
SPLITS = {0: "train", 1: "test"}
GZIP_LEVEL = 4  # deflate level of every compressed dataset (and of chunks encoded by encode_chunk)
_CHECKSUM_DTYPE = "S64"


def case_checksum(fields: np.ndarray, velocity: np.ndarray) -> str:
    """sha256 hex digest of the case's little-endian float32 field bytes followed by its velocity bytes."""
    h = hashlib.sha256()
    for a in (fields, velocity):
        h.update(np.ascontiguousarray(a, dtype="<f4").tobytes())
    return h.hexdigest()


def encode_chunk(fields: np.ndarray, level: int = GZIP_LEVEL) -> bytes:
    """One case's fields as the stored HDF5 chunk: byte shuffle (4-byte elements) then zlib deflate.

    Identical to what HDF5's shuffle + deflate filters produce, so workers can compress in parallel and
    the writer stores the bytes directly (``DataWriter.write_case(chunk=...)``).
    """
    raw = np.ascontiguousarray(fields, dtype="<f4").view(np.uint8).reshape(-1, 4)
    return zlib.compress(raw.T.tobytes(), level)


def decode_chunk(chunk: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of encode_chunk: float32 array of ``shape``; ValueError if the bytes do not decode to it."""
    raw = np.frombuffer(zlib.decompress(chunk), dtype=np.uint8)
    n = int(np.prod(shape))
    if raw.size != 4 * n:
        raise ValueError(f"chunk holds {raw.size} bytes, expected {4 * n}")
    return raw.reshape(4, n).T.copy().view("<f4").reshape(shape)


def _set_attr(f: h5py.File, key: str, value: Any) -> None:
    """Strings as fixed-length UTF-8, kept in the attribute itself: variable-length strings live in the
    file's global heap, and a corrupted global heap makes libhdf5 loop forever instead of failing."""
    b = value.encode("utf-8") if isinstance(value, str) else None
    if b is not None and len(b) < 60_000:  # an attribute message holds at most 64 KiB
        f.attrs.create(key, np.bytes_(b), dtype=h5py.string_dtype("utf-8", max(1, len(b))))
    else:
        f.attrs[key] = value


class DataWriter:
    """Writes one schema-wavesurrogate/1 file into a temporary file; ``close()`` renames it into place.

    Use as a context manager: the file appears at ``path`` only if every case was written and no
    exception escaped; otherwise nothing is left behind.
    """

    def __init__(self, path: str | Path, *, n_cases: int, n_frames: int, x: np.ndarray, y: np.ndarray,
                 t: np.ndarray, attrs: Mapping[str, Any], param_names: Sequence[str]):
        self.path = Path(path)
        missing = [k for k in REQUIRED_ATTRS if k not in attrs and k != "schema"]
        if missing:
            raise ValueError(f"DataWriter: missing attributes {missing}")
        self.n_cases, self.n_frames = int(n_cases), int(n_frames)
        self.ny, self.nx = len(y), len(x)
        self._ctx = atomic_path(self.path)
        self._tmp = self._ctx.__enter__()
        self._f = h5py.File(self._tmp, "w", libver="earliest", track_order=False)
        f = self._f
        _set_attr(f, "schema", SCHEMA)
        for k, v in attrs.items():
            _set_attr(f, k, v)
        kw: dict[str, Any] = {"track_times": False}
        shape = (self.n_cases, self.n_frames, self.ny, self.nx)
        f.create_dataset("fields", shape=shape, dtype="<f4", chunks=(1, *shape[1:]), compression="gzip",
                         compression_opts=GZIP_LEVEL, shuffle=True, fillvalue=np.float32(0), **kw)
        vshape = (self.n_cases, self.ny, self.nx)
        f.create_dataset("velocity", shape=vshape, dtype="<f4", chunks=(1, *vshape[1:]), compression="gzip",
                         compression_opts=GZIP_LEVEL, shuffle=True, fillvalue=np.float32(0), **kw)
        f.create_dataset("x", data=np.asarray(x, dtype="<f8"), **kw)
        f.create_dataset("y", data=np.asarray(y, dtype="<f8"), **kw)
        f.create_dataset("t", data=np.asarray(t, dtype="<f8"), **kw)
        f.create_dataset("split", shape=(self.n_cases,), dtype="u1", fillvalue=0, **kw)
        f.create_dataset("done", shape=(self.n_cases,), dtype="bool", fillvalue=False, **kw)
        f.create_dataset("checksum", shape=(self.n_cases,), dtype=_CHECKSUM_DTYPE, fillvalue=b"", **kw)
        g = f.create_group("params", track_order=False)
        for name in param_names:
            g.create_dataset(name, shape=(self.n_cases,), dtype="<f8", fillvalue=np.nan, **kw)
        self._done = np.zeros(self.n_cases, dtype=bool)

    def write_case(self, case: int, fields: np.ndarray | None, velocity: np.ndarray,
                   params: Mapping[str, float], split: int = 0, checksum: str | None = None,
                   chunk: bytes | None = None) -> str:
        """Store one case (fields [frame, y, x], velocity [y, x] in m/s); returns its checksum.

        Instead of ``fields`` a ``chunk`` = encode_chunk(fields) may be given: it is decoded and checked,
        then stored as is (no second compression). A given ``checksum`` (e.g. from a shard) is verified
        against the data before anything is written.
        """
        if chunk is not None:
            try:
                fields = decode_chunk(chunk, (self.n_frames, self.ny, self.nx))
            except (ValueError, zlib.error) as exc:
                raise DataFileError(f"case {case}: compressed chunk does not decode ({exc})") from None
        fields = np.asarray(fields, dtype="<f4")
        velocity = np.asarray(velocity, dtype="<f4")
        if fields.shape != (self.n_frames, self.ny, self.nx) or velocity.shape != (self.ny, self.nx):
            raise ValueError(f"case {case}: shapes {fields.shape}, {velocity.shape} do not match the file")
        if not (np.all(np.isfinite(fields)) and np.all(np.isfinite(velocity))):
            raise ValueError(f"case {case}: non-finite values")
        digest = case_checksum(fields, velocity)
        if checksum is not None and checksum != digest:
            raise DataFileError(f"case {case}: checksum mismatch while assembling")
        if set(params) != set(self._f["params"]):
            raise ValueError(f"case {case}: params {sorted(params)} != {sorted(self._f['params'])}")
        f = self._f
        if chunk is None:
            f["fields"][case] = fields
        else:
            f["fields"].id.write_direct_chunk((case, 0, 0, 0), chunk)
        f["velocity"][case] = velocity
        for k, v in params.items():
            f["params"][k][case] = float(v)
        f["split"][case] = int(split)
        f["checksum"][case] = digest.encode("ascii")
        f["done"][case] = True
        self._done[case] = True
        return digest

    def close(self) -> Path:
        """Flush, fsync and rename the file into place; raises if some case was never written."""
        if not self._done.all():
            missing = np.flatnonzero(~self._done)
            self.abort()
            raise RuntimeError(f"DataWriter: {missing.size} cases never written (first {missing[0]})")
        self._f.close()
        self._ctx.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file; nothing appears at ``path``."""
        with contextlib.suppress(Exception):
            self._f.close()
        with contextlib.suppress(Exception):
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> DataWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _bad(path: Path, msg: str) -> DataFileError:
    return DataFileError(f"{path}: {msg}")


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


class DataFile:
    """Read access to one validated data file; every case read is checked against its stored checksum."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not os.path.isfile(self.path):  # False, not OSError, for a name that is too long
            raise _bad(self.path, "file not found")
        try:
            self._f = h5py.File(self.path, "r")
        except Exception:
            raise _bad(self.path, "not a readable HDF5 file (truncated or corrupted?)") from None
        try:
            self._validate()
        except DataFileError:
            self._f.close()
            raise
        except Exception as exc:  # anything h5py throws while inspecting a damaged file
            self._f.close()
            raise _bad(self.path, f"unreadable ({type(exc).__name__}: {exc})".splitlines()[0]) from None
        self._verified: set[int] = set()

    def _validate(self) -> None:
        f, p = self._f, self.path
        self._attrs = {k: _attr(v) for k, v in f.attrs.items()}  # a damaged attribute fails here, once
        schema = _attr(f.attrs.get("schema", None))
        if schema is None:
            raise _bad(p, "no 'schema' attribute: not a wavesurrogate data file")
        if schema != SCHEMA:
            raise _bad(p, f"schema {schema!r} is not supported (expected {SCHEMA!r})")
        for k in REQUIRED_ATTRS:
            if k not in f.attrs:
                raise _bad(p, f"missing attribute {k!r}")
        for k in REQUIRED_DATASETS:
            if k not in f or not isinstance(f[k], h5py.Dataset):
                raise _bad(p, f"missing dataset {k!r}")
        if "params" not in f or not isinstance(f["params"], h5py.Group):
            raise _bad(p, "missing group 'params'")
        fl = f["fields"]
        if fl.ndim != 4 or fl.dtype != np.float32:
            raise _bad(p, f"'fields' must be float32 [case, frame, y, x], got {fl.dtype} {fl.shape}")
        n, nt, ny, nx = fl.shape
        expect = {"velocity": (n, ny, nx), "x": (nx,), "y": (ny,), "t": (nt,), "split": (n,), "done": (n,),
                  "checksum": (n,)}
        expect.update({f"params/{k}": (n,) for k in f["params"]})
        for k, shape in expect.items():
            if f[k].shape != shape:
                raise _bad(p, f"dataset {k!r} has shape {f[k].shape}, expected {shape}")
        if f["velocity"].dtype != np.float32:
            raise _bad(p, "'velocity' must be float32")
        kinds = {"x": "fiu", "y": "fiu", "t": "fiu", "split": "iu", "done": "biu", "checksum": "S"}
        kinds.update({f"params/{k}": "fiu" for k in f["params"]})
        for k, allowed in kinds.items():
            if f[k].dtype.kind not in allowed:
                raise _bad(p, f"dataset {k!r} has dtype {f[k].dtype}, which is not of the schema")
        for k in ("dt", "dx", "dy"):
            v = _attr(f.attrs[k])
            if not isinstance(v, int | float) or not np.isfinite(v) or v <= 0:
                raise _bad(p, f"attribute {k!r} must be a positive finite number, got {v!r}")
        stride = _attr(f.attrs["frame_stride"])
        if not isinstance(stride, int) or stride < 1:
            raise _bad(p, f"attribute 'frame_stride' must be a positive integer, got {stride!r}")
        for k in ("x", "y", "t"):
            if not np.all(np.isfinite(f[k][()])):
                raise _bad(p, f"coordinate {k!r} is not finite")
        for k in ("split", "done", "checksum", *(f"params/{k}" for k in f["params"])):
            f[k][()]  # small [case] datasets: read now, so damage surfaces here as one DataFileError

    # -- metadata -------------------------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes as plain Python values."""
        return dict(self._attrs)

    @property
    def n_cases(self) -> int:
        """Number of cases."""
        return int(self._f["fields"].shape[0])

    @property
    def n_frames(self) -> int:
        """Frames per case."""
        return int(self._f["fields"].shape[1])

    @property
    def ny(self) -> int:
        """Grid nodes along y."""
        return int(self._f["fields"].shape[2])

    @property
    def nx(self) -> int:
        """Grid nodes along x."""
        return int(self._f["fields"].shape[3])

    @property
    def dt(self) -> float:
        """Solver time step in seconds (frames are ``frame_stride`` steps apart)."""
        return float(self._f.attrs["dt"])

    @property
    def frame_dt(self) -> float:
        """Time between stored frames in seconds (dt · frame_stride)."""
        return self.dt * self.frame_stride

    @property
    def dx(self) -> float:
        """Grid spacing along x in metres."""
        return float(self._f.attrs["dx"])

    @property
    def dy(self) -> float:
        """Grid spacing along y in metres."""
        return float(self._f.attrs["dy"])

    @property
    def frame_stride(self) -> int:
        """Solver steps between stored frames."""
        return int(self._f.attrs["frame_stride"])

    @property
    def x(self) -> np.ndarray:
        """Node x coordinates in metres, [nx]."""
        return self._f["x"][()]

    @property
    def y(self) -> np.ndarray:
        """Node y coordinates in metres, [ny]."""
        return self._f["y"][()]

    @property
    def t(self) -> np.ndarray:
        """Frame times in seconds, [n_frames]."""
        return self._f["t"][()]

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Sampled parameters per case: name → [case] (SI units, the name says which)."""
        return {k: self._f["params"][k][()] for k in sorted(self._f["params"])}

    @property
    def split(self) -> np.ndarray:
        """Split per case, uint8 [case]: 0 = train, 1 = test."""
        return self._f["split"][()]

    @property
    def done(self) -> np.ndarray:
        """Whether each case was written, bool [case]."""
        return self._f["done"][()].astype(bool)

    def cases(self, split: str | None = None) -> np.ndarray:
        """Indices of the cases of ``split`` ('train' or 'test'; all when None)."""
        if split is None:
            return np.arange(self.n_cases)
        code = {v: k for k, v in SPLITS.items()}.get(split)
        if code is None:
            raise DataFileError(f"unknown split {split!r} (expected 'train' or 'test')")
        return np.flatnonzero(self.split == code)

    # -- data ------------------------------------------------------------------------------------
    def _check_index(self, case: int) -> int:
        case = int(case)
        if not 0 <= case < self.n_cases:
            raise DataFileError(f"{self.path}: case {case} out of range (file has {self.n_cases} cases)")
        if not bool(self._f["done"][case]):
            raise _bad(self.path, f"case {case} was never written (done is false)")
        return case

    def case(self, case: int) -> tuple[np.ndarray, np.ndarray]:
        """(fields float32 [frame, y, x], velocity float32 [y, x] in m/s) of one case, checksum verified."""
        case = self._check_index(case)
        try:
            fields = self._f["fields"][case]
            velocity = self._f["velocity"][case]
            stored = _attr(self._f["checksum"][case])
        except Exception as exc:
            raise _bad(self.path, f"case {case} unreadable ({type(exc).__name__}; truncated?)") from None
        if case_checksum(fields, velocity) != stored:
            raise _bad(self.path, f"case {case}: checksum mismatch (data corrupted)")
        if not (np.all(np.isfinite(fields)) and np.all(np.isfinite(velocity))):
            raise _bad(self.path, f"case {case}: non-finite values")
        self._verified.add(case)
        return fields, velocity

    def fields(self, case: int) -> np.ndarray:
        """Wavefield of one case, float32 [frame, y, x], checksum verified."""
        return self.case(case)[0]

    def velocity(self, case: int) -> np.ndarray:
        """Velocity model of one case, float32 [y, x] in m/s (checksum verified on first access)."""
        case = self._check_index(case)
        if case not in self._verified:
            return self.case(case)[1]
        return self._f["velocity"][case]

    def load_all(self, cases: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(fields [n, frame, y, x], velocity [n, y, x]) float32 for ``cases`` (all by default), verified."""
        idx = np.arange(self.n_cases) if cases is None else np.asarray(cases, dtype=np.int64).reshape(-1)
        fields = np.empty((idx.size, self.n_frames, self.ny, self.nx), dtype=np.float32)
        velocity = np.empty((idx.size, self.ny, self.nx), dtype=np.float32)
        for j, i in enumerate(idx):
            fields[j], velocity[j] = self.case(int(i))
        return fields, velocity

    def close(self) -> None:
        """Close the file."""
        self._f.close()

    def __enter__(self) -> DataFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_data(path: str | Path) -> DataFile:
    """Open and validate a data file (use ``with``); DataFileError with one line if anything is off."""
    return DataFile(path)


def _fmt_range(a: np.ndarray, unit: str = "") -> str:
    a = np.asarray(a, dtype=float)
    if a.size == 0:
        return "-"
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    return f"{lo:.4g}{unit}" if lo == hi else f"{lo:.4g} … {hi:.4g}{unit}"


def describe(path: str | Path) -> str:
    """A short human-readable summary of a data file (shapes, solver, time axis, splits, parameter ranges)."""
    with open_data(path) as d:
        a = d.attrs
        split = d.split
        done = d.done
        try:
            vel = d._f["velocity"][()]
        except Exception as exc:  # a damaged chunk index: velocity is read raw here, without a checksum
            raise _bad(d.path, f"'velocity' unreadable ({type(exc).__name__}; corrupted?)") from None
        size_mb = d.path.stat().st_size / 1e6
        lines = [
            f"file        {d.path} ({size_mb:.1f} MB)",
            f"schema      {a['schema']} (package {a['package_version']})",
            f"cases       {d.n_cases} ({int((split == 0).sum())} train, {int((split == 1).sum())} test; "
            f"{int(done.sum())} done)",
            f"fields      [case, frame, y, x] = [{d.n_cases}, {d.n_frames}, {d.ny}, {d.nx}] float32",
            f"grid        dx = {d.dx:.4g} m, dy = {d.dy:.4g} m, domain {d.x[-1]:.4g} m × {d.y[-1]:.4g} m",
            f"time        dt = {d.dt:.4g} s, frame every {d.frame_stride} steps ({d.frame_dt * 1e3:.4g} ms), "
            f"t = 0 … {d.t[-1] * 1e3:.4g} ms",
            f"solver      {a['solver']} (space order {a['space_order']}), boundary {a['boundary']}",
            f"seed        {a['seed']}" + (f", test seed {a['test_seed']}" if "test_seed" in a else ""),
            f"velocity    {_fmt_range(vel[done] if done.any() else vel, ' m/s')}",
        ]
        for k, v in d.params.items():
            if k == "medium_seed":
                continue
            lines.append(f"  {k:<30}{_fmt_range(v[done] if done.any() else v)}")
        return "\n".join(lines)
