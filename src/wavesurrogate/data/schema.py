"""What a data file holds (docs/data-format.md): schema names, axes, attributes, checksums, chunk bytes.

Schema ``wavesurrogate/2``: fields [case, frame, *spatial] with spatial axes named ``(z,) y, x``; root
attributes ``n_spatial_dims``, ``axes`` and ``spacing_m`` (per spatial axis, in axis order) beside
``dx``, ``dy`` (``dz``). Files of schema ``wavesurrogate/1`` (2-D, no such attributes) read as
n_spatial_dims = 2 with axes case, frame, y, x.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wavesurrogate.errors import DataFileError
from wavesurrogate.limits import memory_bytes
from wavesurrogate.safeload import h5_contained

SCHEMA = "wavesurrogate/2"
SCHEMA_V1 = "wavesurrogate/1"
READABLE = (SCHEMA_V1, SCHEMA)
SPATIAL = ("z", "y", "x")  # the spatial axes of a 3-D file; 2-D files use the last two, 1-D the last
BASE_ATTRS = ("schema", "solver", "space_order", "dt", "frame_stride", "boundary", "seed", "package_version",
              "config_yaml")
V2_ATTRS = ("n_spatial_dims", "axes", "spacing_m")
BASE_DATASETS = ("fields", "velocity", "t", "split", "done", "checksum")
SPLITS = {0: "train", 1: "test"}
GZIP_LEVEL = 4  # deflate level of every compressed dataset (and of chunks encoded by encode_chunk)
CHECKSUM_DTYPE = "S64"
TRACE_DATASETS = ("values", "t_s", "index")  # of each receiver-trace group traces/<name>


def spatial_axes(n_spatial_dims: int) -> tuple[str, ...]:
    """Names of the spatial axes in storage order: ('y', 'x') for 2-D, ('z', 'y', 'x') for 3-D."""
    if not 1 <= n_spatial_dims <= len(SPATIAL):
        raise ValueError(f"n_spatial_dims must be 1, 2 or 3, got {n_spatial_dims}")
    return SPATIAL[len(SPATIAL) - n_spatial_dims:]


def axes(n_spatial_dims: int) -> tuple[str, ...]:
    """Axis names of ``fields``: ('case', 'frame', *spatial_axes)."""
    return ("case", "frame", *spatial_axes(n_spatial_dims))


def required_attrs(schema: str, n_spatial_dims: int = 2) -> tuple[str, ...]:
    """Root attributes a file of ``schema`` must carry (spacing ``d<axis>`` for each spatial axis)."""
    extra = V2_ATTRS if schema == SCHEMA else ()
    return BASE_ATTRS[:4] + tuple(f"d{a}" for a in spatial_axes(n_spatial_dims)) + BASE_ATTRS[4:] + extra


def case_checksum(fields: np.ndarray, velocity: np.ndarray, *traces: np.ndarray) -> str:
    """sha256 hex digest of the case's little-endian float32 field bytes, then its velocity bytes, then
    its receiver-trace values of each trace group in name order (none in a file without traces)."""
    h = hashlib.sha256()
    for a in (fields, velocity, *traces):
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


def set_attr(f: h5py.File, key: str, value: Any) -> None:
    """Write a root attribute; strings (and lists of strings) as fixed-length UTF-8, kept in the attribute.

    Variable-length strings live in the file's global heap, and a corrupted global heap makes libhdf5 loop
    forever instead of failing. Plain h5py therefore reads these strings back as ``bytes``.
    """
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        b = [v.encode("utf-8") for v in value]
        n = max(1, *(len(x) for x in b))
        f.attrs.create(key, np.array(b, dtype=f"S{n}"), dtype=h5py.string_dtype("utf-8", n))
        return
    b = value.encode("utf-8") if isinstance(value, str) else None
    if b is not None and len(b) < 60_000:  # an attribute message holds at most 64 KiB
        f.attrs.create(key, np.bytes_(b), dtype=h5py.string_dtype("utf-8", max(1, len(b))))
    else:
        f.attrs[key] = value


def attr_value(v: Any) -> Any:
    """An attribute as a plain Python value: bytes decoded as UTF-8, NumPy scalars and arrays as Python."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return [attr_value(x) for x in v.tolist()] if v.dtype.kind == "S" else v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def bad(path: Path, msg: str) -> DataFileError:
    """A one-line DataFileError naming the file."""
    return DataFileError(f"{path}: {msg}")


def validate(f: h5py.File, p: Path) -> tuple[dict[str, Any], tuple[str, ...], tuple[float, ...]]:
    """Check an open file against its schema: (attributes as Python values, axes, spacing in m); else
    DataFileError with one line naming the problem."""
    h5_contained(f, str(p), DataFileError)  # before any object is opened: no link out of the file
    a = {k: attr_value(v) for k, v in f.attrs.items()}  # a damaged attribute fails here, once
    schema = a.get("schema", None)
    if schema is None:
        raise bad(p, "no 'schema' attribute: not a wavesurrogate data file")
    if schema not in READABLE:
        raise bad(p, f"schema {schema!r} is not supported (this reader knows {', '.join(READABLE)})")
    nd = a.get("n_spatial_dims", 2) if schema == SCHEMA else 2
    if not isinstance(nd, int) or not 1 <= nd <= 3:
        raise bad(p, f"attribute 'n_spatial_dims' must be 1, 2 or 3, got {nd!r}")
    ax, spatial = axes(nd), spatial_axes(nd)
    for k in required_attrs(schema, nd):
        if k not in f.attrs:
            raise bad(p, f"missing attribute {k!r}")
    for k in (*BASE_DATASETS, *spatial):
        if k not in f or not isinstance(f[k], h5py.Dataset):
            raise bad(p, f"missing dataset {k!r}")
    if "params" not in f or not isinstance(f["params"], h5py.Group):
        raise bad(p, "missing group 'params'")
    if schema == SCHEMA and a["axes"] != list(ax):
        raise bad(p, f"attribute 'axes' must be {list(ax)}, got {a['axes']!r}")
    fl = f["fields"]
    if fl.ndim != 2 + nd or fl.dtype != np.float32:
        raise bad(p, f"'fields' must be float32 [{', '.join(ax)}], got {fl.dtype} {fl.shape}")
    n, nt, *shape = fl.shape
    empty = [name for name, m in zip(ax, fl.shape, strict=True) if m == 0]
    if empty:
        raise bad(p, f"'fields' {fl.shape} has no {empty[0]} (a 0-length axis): nothing to read")
    case_bytes, have = 4 * (nt + 1) * int(np.prod(shape)), memory_bytes()
    if have is not None and case_bytes > have:
        raise bad(p, f"one case of 'fields' {fl.shape} needs {case_bytes / 1e9:.3g} GB, more than the "
                     f"{have / 1e9:.3g} GB of memory available")
    expect = {"velocity": (n, *shape), "t": (nt,), "split": (n,), "done": (n,), "checksum": (n,)}
    expect.update({s: (m,) for s, m in zip(spatial, shape, strict=True)})
    expect.update({f"params/{k}": (n,) for k in f["params"]})
    for k, want in expect.items():
        if f[k].shape != want:
            raise bad(p, f"dataset {k!r} has shape {f[k].shape}, expected {want}")
    if f["velocity"].dtype != np.float32:
        raise bad(p, "'velocity' must be float32")
    kinds = {"t": "fiu", "split": "iu", "done": "biu", "checksum": "S", **dict.fromkeys(spatial, "fiu")}
    kinds.update({f"params/{k}": "fiu" for k in f["params"]})
    for k, allowed in kinds.items():
        if f[k].dtype.kind not in allowed:
            raise bad(p, f"dataset {k!r} has dtype {f[k].dtype}, which is not of the schema")
    for k in ("dt", *(f"d{s}" for s in spatial)):
        v = a[k]
        if not isinstance(v, int | float) or not np.isfinite(v) or v <= 0:
            raise bad(p, f"attribute {k!r} must be a positive finite number, got {v!r}")
    spacing = tuple(float(a[f"d{s}"]) for s in spatial)
    if schema == SCHEMA and a["spacing_m"] != list(spacing):
        raise bad(p, f"attribute 'spacing_m' {a['spacing_m']!r} differs from d{', d'.join(spatial)}")
    stride = a["frame_stride"]
    if not isinstance(stride, int) or stride < 1:
        raise bad(p, f"attribute 'frame_stride' must be a positive integer, got {stride!r}")
    for k in (*spatial, "t"):
        if not np.all(np.isfinite(f[k][()])):
            raise bad(p, f"coordinate {k!r} is not finite")
    _validate_records(f, p, a, n, nd)
    for k in ("split", "done", "checksum", *(f"params/{k}" for k in f["params"])):
        f[k][()]  # small [case] datasets: read now, so damage surfaces here as one DataFileError
    return a, ax, spacing


def _validate_records(f: h5py.File, p: Path, a: dict[str, Any], n: int, nd: int) -> None:
    """The optional parts: ``traces/<name>/{values, t_s, index}``, ``solve_s``, the window attributes."""
    for k in ("grid_shape", "window_ij0"):
        v = a.get(k)
        if v is not None and (not isinstance(v, list) or len(v) != nd
                              or not all(isinstance(x, int) and x >= 0 for x in v)):
            raise bad(p, f"attribute {k!r} must be {nd} non-negative integers, got {v!r}")
    if ("grid_shape" in a) != ("window_ij0" in a):
        raise bad(p, "attributes 'grid_shape' and 'window_ij0' come together (a window of the full grid)")
    if "solve_s" in f and (not isinstance(f["solve_s"], h5py.Dataset) or f["solve_s"].shape != (n,)
                           or f["solve_s"].dtype.kind != "f"):
        raise bad(p, f"dataset 'solve_s' must be float [{n}]")
    if "traces" not in f:
        return
    if not isinstance(f["traces"], h5py.Group):
        raise bad(p, "'traces' must be a group")
    for name, g in f["traces"].items():
        if not isinstance(g, h5py.Group) or any(not isinstance(g.get(k), h5py.Dataset)
                                                for k in TRACE_DATASETS):
            raise bad(p, f"trace group {name!r} must hold datasets {', '.join(TRACE_DATASETS)}")
        v, t, idx = (g[k] for k in TRACE_DATASETS)
        if v.dtype != np.float32 or v.ndim != 3 or v.shape[0] != n:
            raise bad(p, f"'traces/{name}/values' must be float32 [{n}, time, receiver], got {v.dtype} "
                         f"{v.shape}")
        ts = t[()] if t.shape == (v.shape[1],) and t.dtype.kind == "f" else None
        if ts is None or ts.size < 2 or not np.all(np.isfinite(ts)) or not np.allclose(
                np.diff(ts), ts[1] - ts[0], rtol=1e-9, atol=0) or not ts[1] > ts[0]:
            raise bad(p, f"'traces/{name}/t_s' must be {v.shape[1]} (at least 2) uniformly increasing times")
        if idx.shape != (v.shape[2], nd) or idx.dtype.kind not in "iu":
            raise bad(p, f"'traces/{name}/index' must be integers [{v.shape[2]}, {nd}], got {idx.shape}")
        full = a.get("grid_shape") or [f["fields"].shape[2 + k] for k in range(nd)]
        if idx.size and (idx[()].min() < 0 or np.any(idx[()].max(axis=0) >= np.asarray(full))):
            raise bad(p, f"'traces/{name}/index' points outside the grid {list(full)}")
