"""Boundary-trace data sets: full-domain FE solves recording the ZOI boundary trace and the ZOI field.

A campaign (``TraceCampaignConfig``) draws cases (source position in a square band around the ZOI, Ricker
frequency, a linear-gradient medium c = c0·(1 + gradient·(y − ly/2)/(ly/2))), solves each on the full
grid with the FE solver, and stores in one HDF5 file of schema ``wavesurrogate-traces/1``
(docs/submodel.md): the trace on the ZOI boundary every ``trace_stride`` steps, the ZOI field every
``frame_stride`` steps, the parameters and a checksum per case.

Crash safety: each finished case is written atomically to ``OUT.work/case-NNNNNN.npz``; a rerun skips the
shards that are there and valid; the final file is assembled into a temporary file and renamed onto OUT.
The CFL bound is computed once per campaign for the uniform medium at c_max (it bounds every medium with
c ≤ c_max, since K grows with c²), so no case pays for a Lanczos run.

    python -m wavesurrogate.submodel.traces configs/submodel.yaml --out data/traces256.h5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import yaml
from pydantic import Field, model_validator

from wavesurrogate.config.base import Strict, dump_yaml, read_yaml, validate
from wavesurrogate.errors import ConfigError, DataFileError
from wavesurrogate.io import atomic_path
from wavesurrogate.physics.problem import Boundary, Grid, Problem, Source, TimeAxis
from wavesurrogate.physics.zoi import Zoi, boundary_indices, check_zoi

SCHEMA = "wavesurrogate-traces/1"
PARAM_NAMES = ("source_x_m", "source_y_m", "freq_hz", "c0_mps", "gradient")
SPLITS = {0: "train", 1: "test"}
_DATASETS = ("trace", "trace_t", "zoi_fields", "frame_t", "boundary_ji", "zoi_x", "zoi_y", "split", "done",
             "checksum", "solve_s")


# ------------------------------------------------------------------------------------------------ config
class TraceGrid(Strict):
    """Full grid: nx × ny nodes, spacing dx_m = dy_m."""

    nx: int = Field(256, ge=8)
    ny: int = Field(256, ge=8)
    dx_m: float = Field(5.0, gt=0.0)


class TraceZoi(Strict):
    """The ZOI: nx × ny nodes, lower-left node (i0, j0); centred when i0/j0 are omitted."""

    nx: int = Field(64, ge=3)
    ny: int = Field(64, ge=3)
    i0: int | None = Field(None, ge=0)
    j0: int | None = Field(None, ge=0)


class TraceTime(Strict):
    """Time axis: n_steps of dt_s (default 0.8 × the FE CFL bound), trace and ZOI field strides."""

    dt_s: float | None = Field(None, gt=0.0)
    n_steps: int = Field(640, ge=2)
    trace_stride: int = Field(4, ge=1, le=5, description="steps between stored trace samples (≤ 5)")
    frame_stride: int = Field(16, ge=1, description="steps between stored ZOI fields")


class TraceMedium(Strict):
    """c0 range in m/s and range of the dimensionless vertical gradient."""

    c0_mps: tuple[float, float] = (1800.0, 2200.0)
    gradient: tuple[float, float] = (-0.1, 0.1)


class TraceSource(Strict):
    """Ricker point source: Chebyshev distance to the ZOI edge in band_m, frequency range, amplitude."""

    band_m: tuple[float, float] = (50.0, 200.0)
    freq_hz: tuple[float, float] = (10.0, 16.0)
    amplitude: float = Field(1.0e7, gt=0.0)


class TraceCampaignConfig(Strict):
    """A boundary-trace campaign: cases (train) + test_cases (held out, drawn from test_seed)."""

    name: str = "traces"
    seed: int = Field(0, ge=0)
    test_seed: int = Field(1000, ge=0)
    cases: int = Field(32, ge=1)
    test_cases: int = Field(8, ge=0)
    workers: int = Field(2, ge=1)
    element: Literal["p1", "q1"] = "p1"
    boundary_width: int = Field(20, ge=1, description="absorbing layer cells outside the grid")
    grid: TraceGrid = Field(default_factory=TraceGrid)
    zoi: TraceZoi = Field(default_factory=TraceZoi)
    time: TraceTime = Field(default_factory=TraceTime)
    medium: TraceMedium = Field(default_factory=TraceMedium)
    source: TraceSource = Field(default_factory=TraceSource)
    cfl_safety: float = Field(0.8, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> TraceCampaignConfig:
        t = self.time
        if t.n_steps % t.frame_stride or t.frame_stride % t.trace_stride:
            raise ValueError("time: frame_stride must divide n_steps and be a multiple of trace_stride")
        m, s = self.medium, self.source
        for name, (lo, hi) in (("medium.c0_mps", m.c0_mps), ("medium.gradient", m.gradient),
                               ("source.band_m", s.band_m), ("source.freq_hz", s.freq_hz)):
            if not lo <= hi:
                raise ValueError(f"{name}: needs min <= max, got [{lo}, {hi}]")
        if self.medium.c0_mps[0] <= 0 or self.source.freq_hz[0] <= 0 or self.source.band_m[0] < 0:
            raise ValueError("medium.c0_mps and source.freq_hz must be positive, source.band_m non-negative")
        if max(abs(g) for g in self.medium.gradient) >= 1:
            raise ValueError("medium.gradient: |gradient| must stay below 1 (positive velocities)")
        if self.test_cases > 0 and self.test_seed == self.seed:
            raise ValueError("test_seed: must differ from seed")
        return self

    @property
    def n_total(self) -> int:
        """Training plus test cases."""
        return self.cases + self.test_cases

    def grid_obj(self) -> Grid:
        """The full grid."""
        return Grid(self.grid.nx, self.grid.ny, self.grid.dx_m, self.grid.dx_m)

    def zoi_obj(self) -> Zoi:
        """The ZOI (centred unless i0/j0 are given)."""
        z = self.zoi
        i0 = (self.grid.nx - z.nx) // 2 if z.i0 is None else z.i0
        j0 = (self.grid.ny - z.ny) // 2 if z.j0 is None else z.j0
        return Zoi(i0, j0, z.nx, z.ny)

    def c_max(self) -> float:
        """Largest velocity any case can have, m/s."""
        return self.medium.c0_mps[1] * (1.0 + max(abs(g) for g in self.medium.gradient))

    def time_obj(self) -> TimeAxis:
        """Time axis of the full solve (frames = the stored ZOI fields); needs a resolved dt_s."""
        if self.time.dt_s is None:
            raise ConfigError("time.dt_s: unresolved (call resolve_traces first)")
        t = self.time
        return TimeAxis(t.dt_s, t.n_steps // t.frame_stride + 1, t.frame_stride)

    def trace_times(self) -> np.ndarray:
        """Times of the stored trace samples in s, [n_steps / trace_stride + 1]."""
        t = self.time
        return np.arange(t.n_steps // t.trace_stride + 1) * t.trace_stride * float(t.dt_s or 0.0)


def _reference_problem(cfg: TraceCampaignConfig) -> Problem:
    g = cfg.grid_obj()
    return Problem(g, np.full(g.shape, cfg.c_max()), TimeAxis(1.0, 2),
                   boundary=Boundary("absorbing", cfg.boundary_width))


def resolve_traces(cfg: TraceCampaignConfig) -> tuple[TraceCampaignConfig, float]:
    """Check the geometry and the CFL bound once (uniform c_max medium): (config with dt_s, λ_max 1/s²)."""
    from wavesurrogate.physics.fe import FESolver

    g, zoi = cfg.grid_obj(), cfg.zoi_obj()
    check_zoi(g, zoi)
    band = cfg.source.band_m[1]
    x0, x1 = zoi.i0 * g.dx - band, (zoi.i0 + zoi.nx - 1) * g.dx + band
    y0, y1 = zoi.j0 * g.dy - band, (zoi.j0 + zoi.ny - 1) * g.dy + band
    if x0 < 0 or y0 < 0 or x1 > g.lx or y1 > g.ly:
        raise ConfigError(f"source.band_m: the band up to {band:g} m around the ZOI leaves the grid "
                          f"[0, {g.lx:g}] × [0, {g.ly:g}] m")
    solver = FESolver.from_problem(_reference_problem(cfg), cfg.element)
    lam = solver.lambda_max()
    dt = cfg.time.dt_s if cfg.time.dt_s is not None else cfg.cfl_safety * solver.dt_max()
    solver.check_dt(dt, cfg.element)
    cfg = cfg.model_copy(update={"time": cfg.time.model_copy(update={"dt_s": float(dt)})})
    return cfg, lam


def load_traces_config(path: str | Path) -> TraceCampaignConfig:
    """The ``traces`` section of a YAML file (or the whole file if it has none); ConfigError if invalid."""
    data = read_yaml(path)
    section = data.get("traces", data) if isinstance(data.get("traces"), dict) else data
    return validate(TraceCampaignConfig, section, source=f"{path}: traces")


# ----------------------------------------------------------------------------------------------- cases
def sample_case(cfg: TraceCampaignConfig, rng: np.random.Generator) -> dict[str, float]:
    """Draw one case's parameters (PARAM_NAMES) from rng: source by rejection in the band, then the rest."""
    g, zoi = cfg.grid_obj(), cfg.zoi_obj()
    lo, hi = cfg.source.band_m
    zx0, zx1 = zoi.i0 * g.dx, (zoi.i0 + zoi.nx - 1) * g.dx
    zy0, zy1 = zoi.j0 * g.dy, (zoi.j0 + zoi.ny - 1) * g.dy
    for _ in range(100_000):
        x, y = rng.uniform(zx0 - hi, zx1 + hi), rng.uniform(zy0 - hi, zy1 + hi)
        d = max(zx0 - x, x - zx1, zy0 - y, y - zy1)  # Chebyshev distance outside the ZOI
        if lo <= d <= hi:
            break
    else:  # pragma: no cover - only for a band of zero area
        raise ConfigError("source.band_m: the band has no area")
    f = float(rng.uniform(*cfg.source.freq_hz))
    c0, grad = float(rng.uniform(*cfg.medium.c0_mps)), float(rng.uniform(*cfg.medium.gradient))
    return {"source_x_m": float(x), "source_y_m": float(y), "freq_hz": f, "c0_mps": c0, "gradient": grad}


def sample_cases(cfg: TraceCampaignConfig) -> tuple[list[dict[str, float]], np.ndarray]:
    """All cases' parameters (train from seed, then test from test_seed) and split [n] (0 train, 1 test)."""
    rng, rng_test = np.random.default_rng(cfg.seed), np.random.default_rng(cfg.test_seed)
    params = [sample_case(cfg, rng) for _ in range(cfg.cases)]
    params += [sample_case(cfg, rng_test) for _ in range(cfg.test_cases)]
    return params, np.array([0] * cfg.cases + [1] * cfg.test_cases, dtype=np.uint8)


def case_velocity(cfg: TraceCampaignConfig, params: dict[str, float]) -> np.ndarray:
    """c(y) = c0·(1 + gradient·(y − ly/2)/(ly/2)) in m/s on the full grid, [ny, nx]."""
    g = cfg.grid_obj()
    half = 0.5 * g.ly
    c = params["c0_mps"] * (1.0 + params["gradient"] * (g.y - half) / half)
    return np.repeat(c[:, None], g.nx, axis=1)


def case_problem(cfg: TraceCampaignConfig, params: dict[str, float]) -> Problem:
    """The full-domain problem of one case (absorbing walls; frames every frame_stride steps)."""
    src = Source("point", params["source_x_m"], params["source_y_m"], freq_hz=params["freq_hz"],
                 amplitude=cfg.source.amplitude)
    return Problem(cfg.grid_obj(), case_velocity(cfg, params), cfg.time_obj(), source=src,
                   boundary=Boundary("absorbing", cfg.boundary_width))


def case_checksum(trace: np.ndarray, zoi_field: np.ndarray) -> str:
    """sha256 hex of the little-endian float32 trace bytes followed by the ZOI field bytes."""
    h = hashlib.sha256()
    for a in (trace, zoi_field):
        h.update(np.ascontiguousarray(a, dtype="<f4").tobytes())
    return h.hexdigest()


def _config_key(cfg: TraceCampaignConfig) -> str:
    """Hash of what determines the data (not the number of workers): shards of another config are redone."""
    return hashlib.sha256(dump_yaml(cfg.model_copy(update={"workers": 1})).encode()).hexdigest()[:16]


def _shard(work: Path, index: int) -> Path:
    return work / f"case-{index:06d}.npz"


def _solve_cases(cfg_json: str, lam_max: float, todo: list[tuple[int, dict[str, float]]], work: str,
                 verbose: bool) -> int:
    """Worker: one reference FE solver, then each case (new velocity, cached λ_max) → shard. Cases done."""
    from wavesurrogate.physics.fe import FESolver

    cfg = TraceCampaignConfig.model_validate_json(cfg_json)
    zoi, key = cfg.zoi_obj(), _config_key(cfg)
    ref = FESolver.from_problem(_reference_problem(cfg), cfg.element)
    jj, ii = boundary_indices(zoi)
    for index, params in todo:
        t0 = time.perf_counter()
        problem = case_problem(cfg, params)
        solver = ref.with_velocity(problem.velocity)
        solver._lam_max = lam_max  # the c_max bound holds for this medium (c ≤ c_max): skip Lanczos
        frames, record = solver.solve_problem_recording(problem, jj, ii)
        trace = record[:: cfg.time.trace_stride].astype(np.float32)
        field = frames[(slice(None), *zoi.slices)].astype(np.float32)
        if not (np.all(np.isfinite(trace)) and np.all(np.isfinite(field))):
            raise ConfigError(f"case {index}: the FE solve produced non-finite values")
        solve_s = time.perf_counter() - t0
        meta = json.dumps({"index": index, "key": key, "params": params, "solve_s": solve_s,
                           "checksum": case_checksum(trace, field)})
        with atomic_path(_shard(Path(work), index)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, trace=trace, field=field, meta=np.array(meta))
        if verbose:
            print(f"traces: case {index} done in {solve_s:.1f} s", file=sys.stderr, flush=True)
    return len(todo)


def _read_shard(work: Path, index: int, key: str, params: dict[str, float]) -> dict[str, Any] | None:
    """A valid shard's contents, or None if missing, damaged, of another config or failing its checksum."""
    path = _shard(work, index)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            trace, field, meta = z["trace"], z["field"], json.loads(str(z["meta"]))
    except Exception:
        return None
    if meta.get("key") != key or meta.get("params") != params or meta.get("checksum") != case_checksum(
            trace, field):
        return None
    return {"trace": trace, "field": field, "solve_s": float(meta["solve_s"]), "checksum": meta["checksum"]}


def run_traces(cfg: TraceCampaignConfig, out: str | Path, *, workers: int | None = None,
               verbose: bool = False) -> Path:
    """Run the campaign (resuming from valid shards in OUT.work/) and write OUT atomically; returns OUT."""
    out = Path(out)
    cfg, lam = resolve_traces(cfg)
    params, split = sample_cases(cfg)
    key = _config_key(cfg)
    work = out.parent / f"{out.name}.work"
    work.mkdir(parents=True, exist_ok=True)
    todo = [(i, p) for i, p in enumerate(params) if _read_shard(work, i, key, p) is None]
    n_workers = min(workers or cfg.workers, max(len(todo), 1))
    if verbose:
        print(f"traces: {len(params) - len(todo)} of {len(params)} cases already done, {len(todo)} to run "
              f"on {n_workers} processes", file=sys.stderr, flush=True)
    if todo:
        cfg_json = cfg.model_dump_json()
        if n_workers == 1:
            _solve_cases(cfg_json, lam, todo, str(work), verbose)
        else:
            with ProcessPoolExecutor(n_workers) as pool:
                futures = [pool.submit(_solve_cases, cfg_json, lam, todo[k::n_workers], str(work), verbose)
                           for k in range(n_workers)]
                for f in futures:
                    f.result()
    _assemble(cfg, lam, params, split, work, key, out)
    shutil.rmtree(work, ignore_errors=True)
    return out


def _assemble(cfg: TraceCampaignConfig, lam: float, params: list[dict[str, float]], split: np.ndarray,
              work: Path, key: str, out: Path) -> None:
    from wavesurrogate import __version__

    zoi, n = cfg.zoi_obj(), len(params)
    t_trace, t_frame = cfg.trace_times(), cfg.time_obj().times_s
    g = cfg.grid_obj()
    jj, ii = boundary_indices(zoi)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        attrs = {"schema": SCHEMA, "solver": f"fe/{cfg.element}", "element": cfg.element,
                 "dt_s": float(cfg.time.dt_s), "dx_m": g.dx, "dy_m": g.dy, "nx": g.nx, "ny": g.ny,
                 "zoi": [zoi.i0, zoi.j0, zoi.nx, zoi.ny], "n_steps": cfg.time.n_steps,
                 "trace_stride": cfg.time.trace_stride, "frame_stride": cfg.time.frame_stride,
                 "boundary": "absorbing", "boundary_width": cfg.boundary_width, "seed": cfg.seed,
                 "test_seed": cfg.test_seed, "lambda_max": lam, "package_version": __version__,
                 "config_yaml": dump_yaml(cfg), "param_names": json.dumps(list(PARAM_NAMES))}
        for k, v in attrs.items():
            f.attrs[k] = v
        tr = f.create_dataset("trace", (n, t_trace.size, zoi.n_boundary), "<f4",
                              chunks=(1, t_trace.size, zoi.n_boundary), compression="gzip", shuffle=True)
        zf = f.create_dataset("zoi_fields", (n, t_frame.size, zoi.ny, zoi.nx), "<f4",
                              chunks=(1, t_frame.size, zoi.ny, zoi.nx), compression="gzip", shuffle=True)
        checksum, solve_s = np.empty(n, "S64"), np.empty(n)
        for i, p in enumerate(params):
            s = _read_shard(work, i, key, p)
            if s is None:
                raise DataFileError(f"{_shard(work, i)}: missing or damaged after the run (rerun to redo it)")
            tr[i], zf[i] = s["trace"], s["field"]
            checksum[i], solve_s[i] = s["checksum"].encode(), s["solve_s"]
        f["trace_t"], f["frame_t"] = t_trace, t_frame
        f["boundary_ji"] = np.stack([jj, ii], axis=1).astype(np.int32)
        f["zoi_x"], f["zoi_y"] = (zoi.i0 + np.arange(zoi.nx)) * g.dx, (zoi.j0 + np.arange(zoi.ny)) * g.dy
        f["split"], f["done"], f["checksum"], f["solve_s"] = split, np.ones(n, bool), checksum, solve_s
        for name in PARAM_NAMES:
            f[f"params/{name}"] = np.array([p[name] for p in params])


# ----------------------------------------------------------------------------------------------- reader
class TraceFile:
    """Reader of a ``wavesurrogate-traces/1`` file; DataFileError (one line) if it is not one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataFileError(f"trace file not found: {self.path}")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError:
            raise DataFileError(f"{self.path}: not an HDF5 file (or damaged)") from None
        try:
            self._validate()
        except BaseException:
            self._f.close()
            raise

    def _bad(self, msg: str) -> DataFileError:
        return DataFileError(f"{self.path}: {msg}")

    def _validate(self) -> None:
        f = self._f
        if f.attrs.get("schema") != SCHEMA:
            raise self._bad(f"schema {f.attrs.get('schema')!r}, expected {SCHEMA!r}")
        missing = [k for k in _DATASETS if k not in f] + [f"params/{k}" for k in PARAM_NAMES
                                                         if f"params/{k}" not in f]
        if missing:
            raise self._bad(f"missing dataset {missing[0]!r}")
        try:
            self.config = validate(TraceCampaignConfig, yaml.safe_load(f.attrs["config_yaml"]),
                                   source=f"{self.path}: config_yaml")
        except Exception as exc:
            raise self._bad(f"unreadable config_yaml ({exc})") from None
        n, zoi = f["trace"].shape[0], self.config.zoi_obj()
        want = {"trace": (n, self.config.trace_times().size, zoi.n_boundary),
                "zoi_fields": (n, self.config.time_obj().n_frames, zoi.ny, zoi.nx),
                "split": (n,), "done": (n,), "checksum": (n,), "solve_s": (n,)}
        for k, shape in want.items():
            if f[k].shape != shape:
                raise self._bad(f"dataset {k!r} has shape {f[k].shape}, expected {shape}")
        if not np.allclose(f["trace_t"][()], self.config.trace_times(), rtol=0, atol=1e-12):
            raise self._bad("trace_t does not match the config's time axis")

    @property
    def n_cases(self) -> int:
        """Number of cases."""
        return int(self._f["trace"].shape[0])

    @property
    def zoi(self) -> Zoi:
        """The ZOI of every case."""
        return self.config.zoi_obj()

    @property
    def trace_t(self) -> np.ndarray:
        """Trace sample times in s, [n_times]."""
        return self._f["trace_t"][()]

    @property
    def frame_t(self) -> np.ndarray:
        """ZOI field times in s, [n_frames]."""
        return self._f["frame_t"][()]

    @property
    def zoi_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates of the ZOI nodes in the full grid, (x [zoi.nx], y [zoi.ny]) in m."""
        return self._f["zoi_x"][()], self._f["zoi_y"][()]

    def solve_s(self, case: int) -> float:
        """Wall time of the case's full FE solve in the campaign (s; assembly of K + stepping, no Lanczos)."""
        return float(self._f["solve_s"][self._check(case)])

    @property
    def split(self) -> np.ndarray:
        """0 (train) or 1 (test) per case."""
        return self._f["split"][()]

    def cases(self, split: str | None = None) -> np.ndarray:
        """Indices of the finished cases of a split ('train', 'test' or None for all)."""
        done = self._f["done"][()]
        if split is None:
            return np.flatnonzero(done)
        codes = {v: k for k, v in SPLITS.items()}
        if split not in codes:
            raise DataFileError(f"split: expected 'train' or 'test', got {split!r}")
        return np.flatnonzero(done & (self.split == codes[split]))

    def params(self, case: int | None = None) -> dict[str, Any]:
        """Parameters: arrays [n_cases] by name, or one case's floats."""
        p = {k: self._f[f"params/{k}"][()] for k in PARAM_NAMES}
        if case is None:
            return p
        case = self._check(case)
        return {k: float(v[case]) for k, v in p.items()}

    def _check(self, case: int) -> int:
        if not 0 <= int(case) < self.n_cases:
            raise DataFileError(f"{self.path}: case {case} out of range (file has {self.n_cases} cases)")
        if not self._f["done"][int(case)]:
            raise DataFileError(f"{self.path}: case {case} is not finished")
        return int(case)

    def case(self, case: int) -> tuple[np.ndarray, np.ndarray]:
        """(trace float32 [n_times, n_boundary], ZOI field float32 [n_frames, zy, zx]), checksum verified."""
        case = self._check(case)
        trace, field = self._f["trace"][case], self._f["zoi_fields"][case]
        if case_checksum(trace, field).encode() != self._f["checksum"][case]:
            raise self._bad(f"case {case} fails its checksum (file damaged)")
        return trace, field

    def traces(self, cases: np.ndarray | list[int]) -> np.ndarray:
        """Traces of several cases, float32 [n, n_times, n_boundary] (no checksum: training reads)."""
        return np.stack([self._f["trace"][int(c)] for c in cases])

    def problem(self, case: int) -> Problem:
        """The full-domain problem of a case."""
        return case_problem(self.config, self.params(case))

    def close(self) -> None:
        """Close the file."""
        self._f.close()

    def __enter__(self) -> TraceFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m wavesurrogate.submodel.traces CONFIG --out FILE.h5 [--workers N]``."""
    from wavesurrogate.errors import UserError

    ap = argparse.ArgumentParser(description="boundary-trace campaign (full FE solves) → HDF5")
    ap.add_argument("config", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=None)
    a = ap.parse_args(argv)
    try:
        t0 = time.perf_counter()
        cfg = load_traces_config(a.config)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        path = run_traces(cfg, a.out, workers=a.workers, verbose=True)
        print(f"{path} ({cfg.n_total} cases, {time.perf_counter() - t0:.0f} s)")
    except UserError as exc:
        print(f"traces: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
