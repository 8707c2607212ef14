"""HDF5 data files (layout and validation in data/schema.py, docs/data-format.md): atomic writer,
distrustful reader, summary. Files of schema ``wavesurrogate/1`` open as 2-D files."""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wavesurrogate.data.schema import (
    CHECKSUM_DTYPE,
    GZIP_LEVEL,
    SCHEMA,
    SPLITS,
    attr_value,
    axes,
    bad,
    case_checksum,
    decode_chunk,
    required_attrs,
    set_attr,
    validate,
)
from wavesurrogate.errors import DataFileError
from wavesurrogate.io import atomic_path


class DataWriter:
    """Writes one schema-wavesurrogate/2 file into a temporary file; ``close()`` renames it into place.

    2-D by default (coordinates ``y``, ``x``); 3-D when ``z`` is given (``attrs`` then carry ``dz`` too).
    Use as a context manager: the file appears at ``path`` only if every case was written and no
    exception escaped; otherwise nothing is left behind.
    """

    def __init__(self, path: str | Path, *, n_cases: int, n_frames: int, x: np.ndarray, y: np.ndarray,
                 t: np.ndarray, attrs: Mapping[str, Any], param_names: Sequence[str],
                 z: np.ndarray | None = None):
        self.path = Path(path)
        coords = {"z": z, "y": y, "x": x} if z is not None else {"y": y, "x": x}
        self.axes = axes(len(coords))
        missing = [k for k in required_attrs(SCHEMA, len(coords)) if k not in attrs and k not in (
            "schema", "n_spatial_dims", "axes", "spacing_m")]
        if missing:
            raise ValueError(f"DataWriter: missing attributes {missing}")
        self.n_cases, self.n_frames = int(n_cases), int(n_frames)
        self.spatial_shape = tuple(len(c) for c in coords.values())
        self._ctx = atomic_path(self.path)
        self._tmp = self._ctx.__enter__()
        self._f = h5py.File(self._tmp, "w", libver="earliest", track_order=False)
        f = self._f
        set_attr(f, "schema", SCHEMA)
        set_attr(f, "n_spatial_dims", len(coords))
        set_attr(f, "axes", list(self.axes))
        set_attr(f, "spacing_m", np.array([float(attrs[f"d{a}"]) for a in coords], dtype="<f8"))
        for k, v in attrs.items():
            set_attr(f, k, v)
        kw: dict[str, Any] = {"track_times": False}
        for name, shape in (("fields", (self.n_cases, self.n_frames, *self.spatial_shape)),
                            ("velocity", (self.n_cases, *self.spatial_shape))):
            f.create_dataset(name, shape=shape, dtype="<f4", chunks=(1, *shape[1:]), compression="gzip",
                             compression_opts=GZIP_LEVEL, shuffle=True, fillvalue=np.float32(0), **kw)
        for name, c in (*reversed(coords.items()), ("t", t)):  # x, y, (z,) t: the order of schema 1
            f.create_dataset(name, data=np.asarray(c, dtype="<f8"), **kw)
        f.create_dataset("split", shape=(self.n_cases,), dtype="u1", fillvalue=0, **kw)
        f.create_dataset("done", shape=(self.n_cases,), dtype="bool", fillvalue=False, **kw)
        f.create_dataset("checksum", shape=(self.n_cases,), dtype=CHECKSUM_DTYPE, fillvalue=b"", **kw)
        g = f.create_group("params", track_order=False)
        for name in param_names:
            g.create_dataset(name, shape=(self.n_cases,), dtype="<f8", fillvalue=np.nan, **kw)
        self._done = np.zeros(self.n_cases, dtype=bool)

    def write_case(self, case: int, fields: np.ndarray | None, velocity: np.ndarray,
                   params: Mapping[str, float], split: int = 0, checksum: str | None = None,
                   chunk: bytes | None = None) -> str:
        """Store one case (fields [frame, *spatial], velocity [*spatial] in m/s); returns its checksum.

        Instead of ``fields`` a ``chunk`` = encode_chunk(fields) may be given: it is decoded and checked,
        then stored as is (no second compression). A given ``checksum`` (e.g. from a shard) is verified
        against the data before anything is written.
        """
        if chunk is not None:
            try:
                fields = decode_chunk(chunk, (self.n_frames, *self.spatial_shape))
            except (ValueError, zlib.error) as exc:
                raise DataFileError(f"case {case}: compressed chunk does not decode ({exc})") from None
        fields = np.asarray(fields, dtype="<f4")
        velocity = np.asarray(velocity, dtype="<f4")
        if fields.shape != (self.n_frames, *self.spatial_shape) or velocity.shape != self.spatial_shape:
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
            f["fields"].id.write_direct_chunk((case,) + (0,) * (fields.ndim), chunk)
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


class DataFile:
    """Read access to one validated data file; every case read is checked against its stored checksum."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not os.path.isfile(self.path):  # False, not OSError, for a name that is too long
            raise bad(self.path, "file not found")
        try:
            self._f = h5py.File(self.path, "r")
        except Exception:
            raise bad(self.path, "not a readable HDF5 file (truncated or corrupted?)") from None
        try:
            self._validate()
        except DataFileError:
            self._f.close()
            raise
        except Exception as exc:  # anything h5py throws while inspecting a damaged file
            self._f.close()
            raise bad(self.path, f"unreadable ({type(exc).__name__}: {exc})".splitlines()[0]) from None
        self._verified: set[int] = set()

    def _validate(self) -> None:
        self._attrs, self._axes, self._spacing = validate(self._f, self.path)

    # -- metadata -------------------------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes as plain Python values (strings decoded, arrays as lists)."""
        return dict(self._attrs)

    @property
    def n_spatial_dims(self) -> int:
        """Number of spatial axes (2 for schema-1 files)."""
        return len(self._axes) - 2

    @property
    def axes(self) -> tuple[str, ...]:
        """Axis names of ``fields``: ('case', 'frame', (z,) y, x)."""
        return self._axes

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Grid nodes per spatial axis, in axis order."""
        return tuple(int(n) for n in self._f["fields"].shape[2:])

    @property
    def spacing(self) -> tuple[float, ...]:
        """Grid spacing in metres per spatial axis, in axis order."""
        return self._spacing

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
        return self.spatial_shape[-2]

    @property
    def nx(self) -> int:
        """Grid nodes along x."""
        return self.spatial_shape[-1]

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
        return self._spacing[-1]

    @property
    def dy(self) -> float:
        """Grid spacing along y in metres."""
        return self._spacing[-2]

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
            raise bad(self.path, f"case {case} was never written (done is false)")
        return case

    def case(self, case: int) -> tuple[np.ndarray, np.ndarray]:
        """(fields float32 [frame, *spatial], velocity float32 [*spatial] in m/s) of one case, verified."""
        case = self._check_index(case)
        try:
            fields = self._f["fields"][case]
            velocity = self._f["velocity"][case]
            stored = attr_value(self._f["checksum"][case])
        except Exception as exc:
            raise bad(self.path, f"case {case} unreadable ({type(exc).__name__}; truncated?)") from None
        if case_checksum(fields, velocity) != stored:
            raise bad(self.path, f"case {case}: checksum mismatch (data corrupted)")
        if not (np.all(np.isfinite(fields)) and np.all(np.isfinite(velocity))):
            raise bad(self.path, f"case {case}: non-finite values")
        self._verified.add(case)
        return fields, velocity

    def fields(self, case: int) -> np.ndarray:
        """Wavefield of one case, float32 [frame, *spatial], checksum verified."""
        return self.case(case)[0]

    def velocity(self, case: int) -> np.ndarray:
        """Velocity model of one case, float32 [*spatial] in m/s (checksum verified on first access)."""
        case = self._check_index(case)
        if case not in self._verified:
            return self.case(case)[1]
        return self._f["velocity"][case]

    def load_all(self, cases: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(fields [n, frame, *spatial], velocity [n, *spatial]) float32 of cases (None: all); verified."""
        idx = np.arange(self.n_cases) if cases is None else np.asarray(cases, dtype=np.int64).reshape(-1)
        fields = np.empty((idx.size, self.n_frames, *self.spatial_shape), dtype=np.float32)
        velocity = np.empty((idx.size, *self.spatial_shape), dtype=np.float32)
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
            raise bad(d.path, f"'velocity' unreadable ({type(exc).__name__}; corrupted?)") from None
        size_mb = d.path.stat().st_size / 1e6
        grid = list(zip(d.axes[:1:-1], d.spacing[::-1], strict=True))  # x first, as in schema 1
        lines = [
            f"file        {d.path} ({size_mb:.1f} MB)",
            f"schema      {a['schema']} (package {a['package_version']})",
            f"cases       {d.n_cases} ({int((split == 0).sum())} train, {int((split == 1).sum())} test; "
            f"{int(done.sum())} done)",
            f"fields      [{', '.join(d.axes)}] = {[d.n_cases, d.n_frames, *d.spatial_shape]} float32",
            "grid        " + ", ".join(f"d{a} = {h:.4g} m" for a, h in grid) + ", domain "
            + " × ".join(f"{float(d._f[a][-1]):.4g} m" for a, _ in grid),
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
