"""Atomic writer of HDF5 data files of schema ``wavesurrogate/2`` (layout in data/schema.py,
docs/data-format.md); the reader is ``wavesurrogate.data.store``."""

from __future__ import annotations

import contextlib
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
    axes,
    case_checksum,
    decode_chunk,
    required_attrs,
    set_attr,
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
                 z: np.ndarray | None = None, solve_s: bool = False,
                 traces: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None):
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
        self.trace_shapes: dict[str, tuple[int, int]] = {}
        for name, (tt, idx) in sorted((traces or {}).items()):  # traces/<name>/{values, t_s, index}
            g = f.create_group(f"traces/{name}", track_order=False)
            shape = (self.n_cases, len(tt), len(idx))
            g.create_dataset("values", shape=shape, dtype="<f4", chunks=(1, *shape[1:]), compression="gzip",
                             compression_opts=GZIP_LEVEL, shuffle=True, fillvalue=np.float32(0), **kw)
            g.create_dataset("t_s", data=np.asarray(tt, dtype="<f8"), **kw)
            g.create_dataset("index", data=np.asarray(idx, dtype="<i4"), **kw)
            self.trace_shapes[name] = shape[1:]
        if solve_s:
            f.create_dataset("solve_s", shape=(self.n_cases,), dtype="<f8", fillvalue=np.nan, **kw)
        self._done = np.zeros(self.n_cases, dtype=bool)

    def write_case(self, case: int, fields: np.ndarray | None, velocity: np.ndarray,
                   params: Mapping[str, float], split: int = 0, checksum: str | None = None,
                   chunk: bytes | None = None, traces: Mapping[str, np.ndarray] | None = None,
                   solve_s: float | None = None) -> str:
        """Store one case (fields [frame, *spatial], velocity [*spatial] in m/s); returns its checksum.

        Instead of ``fields`` a ``chunk`` = encode_chunk(fields) may be given: it is decoded and checked,
        then stored as is (no second compression). A given ``checksum`` (e.g. from a shard) is verified
        against the data before anything is written. ``traces``: name → float32 [n_times, n_receivers];
        ``solve_s``: the solve's wall time in s (files made with ``solve_s=True``).
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
        traces = {k: np.asarray(v, dtype="<f4") for k, v in (traces or {}).items()}
        if {k: v.shape for k, v in traces.items()} != self.trace_shapes:
            raise ValueError(f"case {case}: traces {sorted(traces)} do not match the file's "
                             f"{self.trace_shapes}")
        if not all(np.all(np.isfinite(a)) for a in (fields, velocity, *traces.values())):
            raise ValueError(f"case {case}: non-finite values")
        digest = case_checksum(fields, velocity, *(traces[k] for k in sorted(traces)))
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
        for k, v in traces.items():
            f["traces"][k]["values"][case] = v
        if "solve_s" in f:
            f["solve_s"][case] = np.nan if solve_s is None else float(solve_s)
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
