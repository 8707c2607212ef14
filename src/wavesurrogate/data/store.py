"""HDF5 data files (layout and validation in data/schema.py, docs/data-format.md): distrustful reader,
summary; the atomic writer ``DataWriter`` lives in data/writer.py. Files of schema ``wavesurrogate/1``
open as 2-D files."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wavesurrogate.data.schema import (
    SPLITS,
    attr_value,
    bad,
    case_checksum,
    validate,
)
from wavesurrogate.data.writer import DataWriter
from wavesurrogate.errors import DataFileError
from wavesurrogate.limits import memory_bytes
from wavesurrogate.safeload import check_regular, h5_problem, parse_yaml

__all__ = ["DataFile", "DataWriter", "describe", "open_data"]


class DataFile:
    """Read access to one validated data file; every case read is checked against its stored checksum."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        check_regular(self.path, DataFileError)  # a FIFO or device would block libhdf5 forever
        try:
            self._f = h5py.File(self.path, "r")
        except Exception as exc:
            raise bad(self.path, h5_problem(exc)) from None
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
    def z(self) -> np.ndarray:
        """Node z coordinates in metres, [nz] (3-D files; DataFileError otherwise)."""
        if self.n_spatial_dims != 3:
            raise bad(self.path, f"no z axis in a {self.n_spatial_dims}-D file")
        return self._f["z"][()]

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
            traces = [self._f["traces"][k]["values"][case] for k in self.trace_names]
            stored = attr_value(self._f["checksum"][case])
        except Exception as exc:
            raise bad(self.path, f"case {case} unreadable ({type(exc).__name__}; truncated?)") from None
        if case_checksum(fields, velocity, *traces) != stored:
            raise bad(self.path, f"case {case}: checksum mismatch (data corrupted)")
        if not all(np.all(np.isfinite(a)) for a in (fields, velocity, *traces)):
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

    @property
    def trace_names(self) -> list[str]:
        """Names of the receiver-trace groups (``traces/<name>``), sorted; empty without traces."""
        return sorted(self._f["traces"]) if "traces" in self._f else []

    def _traces(self, name: str) -> h5py.Group:
        if name not in self.trace_names:
            raise bad(self.path, f"no receiver traces {name!r} (the file has {self.trace_names or 'none'})")
        return self._f["traces"][name]

    def trace_t(self, name: str) -> np.ndarray:
        """Sample times of the traces ``name`` in s, float64 [n_times]."""
        return self._traces(name)["t_s"][()]

    def trace_index(self, name: str) -> np.ndarray:
        """Grid indices of the receivers of ``name`` in the full grid, int [n_receivers, n_spatial_dims]."""
        return self._traces(name)["index"][()]

    def traces(self, name: str, cases: Sequence[int] | np.ndarray) -> np.ndarray:
        """Receiver traces of cases, float32 [n, n_times, n_receivers]; each case checksum-verified once."""
        values, out = self._traces(name)["values"], []
        for c in np.asarray(cases, dtype=np.int64).reshape(-1):
            if int(c) not in self._verified:
                self.case(int(c))
            out.append(values[int(c)])
        return np.stack(out) if out else np.zeros((0, *values.shape[1:]), np.float32)

    def solve_s(self, case: int) -> float | None:
        """Wall time of the case's solve in the campaign in s; None if the campaign had no record.solve_s."""
        case = self._check_index(case)
        return float(self._f["solve_s"][case]) if "solve_s" in self._f else None

    @property
    def config(self) -> Any:
        """The resolved CampaignConfig that wrote the file (from ``config_yaml``, read through ``safeload``);
        DataFileError unless it is valid YAML of a campaign that agrees with the file (time step, frames,
        stride, grid spacing)."""
        if getattr(self, "_config", None) is not None:
            return self._config
        from wavesurrogate.config.base import validate as validate_config
        from wavesurrogate.config.campaign import CampaignConfig
        from wavesurrogate.errors import UserError

        where = f"{self.path}: attribute config_yaml"
        raw = self._attrs.get("config_yaml")
        if not isinstance(raw, str):
            raise DataFileError(f"{where}: not text")
        data = parse_yaml(raw, where, DataFileError)
        if not isinstance(data, dict):
            raise DataFileError(f"{where}: not a mapping of keys")
        try:
            cfg = validate_config(CampaignConfig, data, source=where)
        except UserError as exc:
            raise DataFileError(str(exc)) from None
        t, g = cfg.time, cfg.grid
        want = (g.dy_m, g.dx_m) if g.nz is None else (g.dz_m, g.dy_m, g.dx_m)  # axis order [(z,) y, x]
        dt_ok = t.dt_s is not None and math.isclose(t.dt_s, self.dt, rel_tol=1e-9)
        disagree = [what for what, ok in (
            ("time.dt_s and attribute dt", dt_ok),
            ("time.frame_stride and attribute frame_stride", t.frame_stride == self.frame_stride),
            ("time.n_frames and the frames of 'fields'", t.n_frames == self.n_frames),
            ("grid spacing and the file's spacing_m", len(want) == len(self.spacing)
             and all(math.isclose(a, b) for a, b in zip(want, self.spacing, strict=False)))) if not ok]
        if disagree:
            raise DataFileError(f"{where}: {disagree[0]} disagree (time.dt_s {t.dt_s}, dt {self.dt})"
                                if "dt_s" in disagree[0] else f"{where}: {disagree[0]} disagree")
        self._config = cfg
        return cfg

    def problem(self, case: int) -> Any:
        """The full-domain physics Problem of a case, rebuilt from the config and the case's parameters."""
        from wavesurrogate.data.cases import CaseSpec, case_problem

        case = self._check_index(case)
        params = {k: float(v[case]) for k, v in self.params.items()}
        try:
            problem = case_problem(self.config, CaseSpec(case, int(self.split[case]), params))
        except (KeyError, ValueError, TypeError, IndexError, ArithmeticError) as exc:  # not the config's
            raise bad(self.path, f"case {case}: its parameters do not fit config_yaml ({type(exc).__name__}: "
                                 f"{str(exc)[:100]})") from None
        c = problem.velocity.astype(np.float32)
        if "window_ij0" in self._attrs:
            c = c[tuple(slice(o, o + s) for o, s in zip(self._attrs["window_ij0"], self.spatial_shape,
                                                       strict=True))]
        if not np.array_equal(c, self.velocity(case)):  # the media code changed since the file was made
            raise bad(self.path, f"case {case}: the velocity rebuilt from the config differs from the file")
        return problem

    def load_all(self, cases: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(fields [n, frame, *spatial], velocity [n, *spatial]) float32 of cases (None: all); verified."""
        idx = np.arange(self.n_cases) if cases is None else np.asarray(cases, dtype=np.int64).reshape(-1)
        need, have = 4 * idx.size * (self.n_frames + 1) * int(np.prod(self.spatial_shape)), memory_bytes()
        if have is not None and need > have:
            raise bad(self.path, f"{idx.size} cases of 'fields' need {need / 1e9:.3g} GB in memory, more "
                                 f"than the {have / 1e9:.3g} GB available; use data.stream")
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
        lo, hi = np.inf, -np.inf  # velocity range of the done cases (all if none is), one case at a time
        try:
            for i in np.flatnonzero(done) if done.any() else range(d.n_cases):
                v = d._f["velocity"][int(i)]
                lo, hi = min(lo, float(np.nanmin(v))), max(hi, float(np.nanmax(v)))
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
            f"velocity    {_fmt_range(np.array([lo, hi]), ' m/s')}",
        ]
        if "window_ij0" in a:
            lines.insert(4, f"window      of the full grid {a['grid_shape']} from node {a['window_ij0']} "
                            "(axis order)")
        for k in d.trace_names:
            shape = list(d._f["traces"][k]["values"].shape)
            lines.append(f"traces      {k}: [case, time, receiver] = {shape} float32")
        for k, v in d.params.items():
            if k == "medium_seed":
                continue
            lines.append(f"  {k:<30}{_fmt_range(v[done] if done.any() else v)}")
        return "\n".join(lines)
