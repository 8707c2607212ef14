"""Simulation campaigns: sample cases from a config, run the solver in parallel, store one HDF5 file.

Crash safety: every finished case is written atomically to its own shard in ``OUT.work/`` beside the
output; a rerun of the same command skips the shards already there (after checking their checksums) and
the final file is assembled in case order into a temporary file, fsynced and renamed onto ``OUT``. The
file's bytes depend only on the resolved config (and the machine's floating point), never on worker
order, interruptions or the number of workers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wavesurrogate.config.base import dump_yaml
from wavesurrogate.config.campaign import (
    CampaignConfig,
    ConstantMedium,
    FileMedium,
    GRFMedium,
    InclusionsMedium,
    LayeredMedium,
    bounds,
    file_velocity,
    load_campaign_config,
)
from wavesurrogate.data.store import (
    SCHEMA,
    DataWriter,
    case_checksum,
    decode_chunk,
    encode_chunk,
    open_data,
)
from wavesurrogate.errors import ConfigError, DataFileError, UserError
from wavesurrogate.io import atomic_path
from wavesurrogate.physics import media
from wavesurrogate.physics.problem import Initial, Problem, Source

SPLIT_TRAIN, SPLIT_TEST = 0, 1


@dataclass(frozen=True)
class CaseSpec:
    """One case: its index in the file, split (0 train, 1 test) and sampled parameters (SI units)."""

    index: int
    split: int
    params: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- sampling
def _draw(rng: np.random.Generator, r: float | tuple[float, float]) -> float:
    lo, hi = bounds(r)
    return float(rng.uniform(lo, hi))  # always one draw, so fixing a range never shifts the others


def sample_params(cfg: CampaignConfig, rng: np.random.Generator) -> dict[str, float]:
    """The parameters of one case, drawn in a fixed order from ``rng`` (names carry units)."""
    g = cfg.grid_obj()
    p: dict[str, float] = {}
    s = cfg.source
    if s.kind != "none":
        p["source_x_m"] = _draw(rng, s.x_m if s.x_m is not None else (0.0, g.lx))
        p["source_y_m"] = _draw(rng, s.y_m if s.y_m is not None else (0.0, g.ly))
        p["freq_hz"] = _draw(rng, s.freq_hz)
        p["amplitude"] = _draw(rng, s.amplitude)
    m = cfg.medium
    if isinstance(m, ConstantMedium):
        p["medium_c_mps"] = _draw(rng, m.c_mps)
    elif isinstance(m, LayeredMedium):
        for k, v in enumerate(m.velocities_mps):
            p[f"medium_velocity_{k}_mps"] = _draw(rng, v)
    elif isinstance(m, GRFMedium):
        p["medium_mean_mps"] = _draw(rng, m.mean_mps)
        p["medium_contrast"] = _draw(rng, m.contrast)
        p["medium_correlation_length_m"] = _draw(rng, m.correlation_length_m)
    elif isinstance(m, InclusionsMedium):
        p["medium_background_mps"] = _draw(rng, m.background_mps)
    i = cfg.initial
    if i.kind == "gaussian":
        p["initial_x_m"] = _draw(rng, i.x_m if i.x_m is not None else (0.0, g.lx))
        p["initial_y_m"] = _draw(rng, i.y_m if i.y_m is not None else (0.0, g.ly))
        p["initial_width_m"] = _draw(rng, i.width_m)
    if i.kind != "zero":
        p["initial_amplitude"] = _draw(rng, i.amplitude)
    if isinstance(m, GRFMedium | InclusionsMedium):
        p["medium_seed"] = float(rng.integers(0, 2**31))  # exact in float64
    return p


def sample_cases(cfg: CampaignConfig) -> list[CaseSpec]:
    """All cases: training case i from rng (seed, i), then test case j from rng (test_seed, j)."""
    def draw(seed: int, k: int) -> dict[str, float]:
        return sample_params(cfg, np.random.default_rng([seed, k]))

    return ([CaseSpec(i, SPLIT_TRAIN, draw(cfg.seed, i)) for i in range(cfg.cases)]
            + [CaseSpec(cfg.cases + j, SPLIT_TEST, draw(cfg.test_seed, j)) for j in range(cfg.test_cases)])


# ---------------------------------------------------------------------------------------------- one case
def case_velocity(cfg: CampaignConfig, spec: CaseSpec) -> np.ndarray:
    """Velocity model of a case in m/s, float32 [ny, nx] (the exact values the solver sees)."""
    g, m, p = cfg.grid_obj(), cfg.medium, spec.params
    if isinstance(m, ConstantMedium):
        c = media.constant(g, p["medium_c_mps"])
    elif isinstance(m, LayeredMedium):
        c = media.layered(g, [p[f"medium_velocity_{k}_mps"] for k in range(len(m.velocities_mps))],
                          m.interfaces_m)
    elif isinstance(m, GRFMedium):
        rng = np.random.default_rng(int(p["medium_seed"]))
        c = media.gaussian_random_field(g, p["medium_mean_mps"], p["medium_contrast"],
                                        p["medium_correlation_length_m"], rng)
    elif isinstance(m, InclusionsMedium):
        rng = np.random.default_rng(int(p["medium_seed"]))
        c = media.random_inclusions(g, p["medium_background_mps"], m.n, m.radius_m, m.c_mps, rng)
    else:
        assert isinstance(m, FileMedium)
        c = file_velocity(cfg)
    return np.asarray(c, dtype=np.float32)


def case_source(cfg: CampaignConfig, spec: CaseSpec) -> Source:
    """The physics Source of a case."""
    s, p = cfg.source, spec.params
    if s.kind == "none":
        return Source(kind="none")
    return Source(kind=s.kind, x_m=p["source_x_m"], y_m=p["source_y_m"], freq_hz=p["freq_hz"],
                  wavelet=s.wavelet, amplitude=p["amplitude"], width_m=s.width_m, delay_s=s.delay_s)


def case_initial(cfg: CampaignConfig, spec: CaseSpec) -> Initial:
    """The physics Initial condition of a case."""
    i, p = cfg.initial, spec.params
    if i.kind == "zero":
        return Initial()
    if i.kind == "mode":
        return Initial(kind="mode", amplitude=p["initial_amplitude"], m=i.m, n=i.n)
    return Initial(kind="gaussian", x_m=p["initial_x_m"], y_m=p["initial_y_m"], width_m=p["initial_width_m"],
                   amplitude=p["initial_amplitude"])


@functools.lru_cache(maxsize=4)
def _fd_solver(grid, boundary, time_axis, space_order: int, backend: str, thread: int):
    """One compiled FD solver per (settings, process, thread): devito compiles once, not once per case."""
    from wavesurrogate.physics.fd import FDSolver

    del thread  # part of the cache key only: a solver's buffers are not shared between threads
    return FDSolver(grid, boundary, time_axis, space_order, backend=backend, dtype=np.float32)


def run_case(cfg: CampaignConfig, spec: CaseSpec) -> tuple[np.ndarray, np.ndarray]:
    """Simulate one case → (frames float32 [n_frames, ny, nx], velocity float32 [ny, nx] in m/s)."""
    velocity = case_velocity(cfg, spec)
    source, initial = case_source(cfg, spec), case_initial(cfg, spec)
    grid, time_axis, boundary = cfg.grid_obj(), cfg.time_obj(), cfg.boundary_obj()
    if cfg.solver.kind == "fd":
        solver = _fd_solver(grid, boundary, time_axis, cfg.solver.space_order, cfg.solver.backend,
                            threading.get_ident())
        frames = solver.run(velocity.astype(np.float64), source, initial)
    else:
        from wavesurrogate.physics.fe import solve_fe

        problem = Problem(grid, velocity.astype(np.float64), time_axis, source, initial, boundary,
                          cfg.solver.space_order)
        frames = solve_fe(problem, element=cfg.solver.element)
    frames = np.asarray(frames, dtype=np.float32)
    if frames.shape != (cfg.time.n_frames, cfg.grid.ny, cfg.grid.nx):
        raise RuntimeError(f"case {spec.index}: solver returned frames of shape {frames.shape}")
    if not np.all(np.isfinite(frames)):
        raise ConfigError(f"case {spec.index}: the solver produced non-finite values (unstable settings?)")
    return frames, velocity


@dataclass(frozen=True)
class EncodedCase:
    """A simulated case ready for storage: compressed field chunk, velocity, checksum of the float data."""

    chunk: bytes
    velocity: np.ndarray
    checksum: str


def run_case_encoded(cfg: CampaignConfig, spec: CaseSpec) -> EncodedCase:
    """run_case, then checksum and compress in the worker (the parent only moves bytes)."""
    frames, velocity = run_case(cfg, spec)
    return EncodedCase(encode_chunk(frames), velocity, case_checksum(frames, velocity))


# ---------------------------------------------------------------------------------------------- shards
def _shard_path(work: Path, index: int) -> Path:
    return work / f"case-{index:06d}.npz"


def write_shard(work: Path, spec: CaseSpec, case: EncodedCase) -> None:
    """Write one finished case atomically into the work directory (.npz: chunk, velocity, meta JSON)."""
    meta = json.dumps({"index": spec.index, "split": spec.split, "params": spec.params,
                       "checksum": case.checksum})
    with atomic_path(_shard_path(work, spec.index)) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, chunk=np.frombuffer(case.chunk, dtype=np.uint8), velocity=case.velocity.astype("<f4"),
                 meta=np.array(meta))


def read_shard(work: Path, spec: CaseSpec, shape: tuple[int, int, int], verify: bool = True) -> EncodedCase:
    """A shard's case (chunk decoded and checksum checked unless verify=False); DataFileError if bad."""
    path = _shard_path(work, spec.index)
    try:
        with np.load(path, allow_pickle=False) as z:
            chunk, velocity, meta = z["chunk"].tobytes(), z["velocity"], json.loads(str(z["meta"]))
        fields = decode_chunk(chunk, shape) if verify else None
    except Exception as exc:
        raise DataFileError(f"{path}: unreadable shard ({type(exc).__name__})") from None
    same_case = (meta.get("index"), meta.get("split"), meta.get("params")) == (spec.index, spec.split,
                                                                              spec.params)
    if (not same_case or velocity.shape != shape[1:] or not isinstance(meta.get("checksum"), str)
            or (fields is not None and case_checksum(fields, velocity) != meta["checksum"])):
        raise DataFileError(f"{path}: shard does not match its case or its checksum")
    return EncodedCase(chunk, velocity, meta["checksum"])


def _shard_ok(work: Path, spec: CaseSpec, shape: tuple[int, int, int]) -> bool:
    try:
        read_shard(work, spec, shape)
        return True
    except DataFileError:
        return False


# ---------------------------------------------------------------------------------------------- running
def _progress(enabled: bool, console_stderr: bool = True):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=console_stderr), disable=not enabled)


def _run_local(cfg: CampaignConfig, specs: list[CaseSpec], workers: int
               ) -> Iterator[tuple[CaseSpec, EncodedCase]]:
    if workers <= 1 or len(specs) <= 1:
        for spec in specs:
            yield spec, run_case_encoded(cfg, spec)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # no fork of a threaded parent; workers import afresh
    with ProcessPoolExecutor(max_workers=min(workers, len(specs)), mp_context=ctx) as pool:
        futures = {pool.submit(run_case_encoded, cfg, spec): spec for spec in specs}
        try:
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        finally:
            for fut in futures:
                fut.cancel()


def _run_dask(cfg: CampaignConfig, specs: list[CaseSpec], address: str, timeout_s: float
              ) -> Iterator[tuple[CaseSpec, EncodedCase]]:
    try:
        from distributed import Client
        from distributed import as_completed as dask_as_completed
    except ImportError:
        raise UserError("--scheduler needs dask[distributed]: pip install 'wavesurrogate[dask]'") from None
    try:
        client = Client(address, timeout=f"{timeout_s}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(f"--scheduler: cannot connect to Dask scheduler {address!r} ({type(exc).__name__})") \
            from None
    with client:
        futures = {client.submit(run_case_encoded, cfg, spec, pure=False): spec for spec in specs}
        try:
            for fut in dask_as_completed(list(futures)):
                yield futures[fut], fut.result()
        finally:
            client.cancel(list(futures))


def code_fingerprint() -> str:
    """sha256 of the source files that determine a case's numbers (physics/*.py, data/campaign.py)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for p in sorted((root / "physics").glob("*.py")) + [Path(__file__).resolve()]:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _manifest(cfg: CampaignConfig) -> dict[str, str]:
    """What shards depend on: schema, package version, solver code and the resolved config."""
    from wavesurrogate import __version__

    return {"schema": SCHEMA, "package_version": __version__, "code_sha256": code_fingerprint(),
            "config_yaml": dump_yaml(cfg)}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _prepare_work(work: Path, manifest: dict[str, str], overwrite: bool) -> None:
    """Create or reuse the shard directory; refuse shards of another config unless overwriting."""
    mpath = work / "manifest.json"
    if work.exists():
        old = _read_json(mpath)
        shards = list(work.glob("case-*.npz"))
        if old != manifest and (shards or old is not None):
            if not overwrite:
                raise UserError(f"{work}: holds shards of a different config, package version or solver "
                                f"code; remove it or pass --overwrite")
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for tmp in work.glob(".*.tmp"):  # partial writes of a killed run
        tmp.unlink(missing_ok=True)
    if _read_json(mpath) != manifest:
        with atomic_path(mpath) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")


def _remove_work(work: Path) -> None:
    """Delete shards first and the manifest last, so a crash midway still leaves a recognisable dir."""
    for p in sorted(work.glob("case-*.npz")):
        p.unlink(missing_ok=True)
    for p in work.glob(".*.tmp"):
        p.unlink(missing_ok=True)
    (work / "manifest.json").unlink(missing_ok=True)
    shutil.rmtree(work, ignore_errors=True)


def _output_matches(out: Path, manifest: dict[str, str]) -> bool:
    try:
        with open_data(out) as d:
            a = d.attrs
            return a.get("config_yaml") == manifest["config_yaml"] and bool(d.done.all())
    except DataFileError:
        return False


def _file_attrs(cfg: CampaignConfig, manifest: dict[str, str]) -> dict:
    s = cfg.solver
    return {"solver": f"fd/{s.backend}" if s.kind == "fd" else f"fe/{s.element}",
            "space_order": int(s.space_order), "dt": float(cfg.time.dt_s), "dx": float(cfg.grid.dx_m),
            "dy": float(cfg.grid.dy_m), "frame_stride": int(cfg.time.frame_stride),
            "boundary": cfg.boundary.kind, "boundary_width": int(cfg.boundary.width), "seed": int(cfg.seed),
            "test_seed": int(cfg.test_seed), "name": cfg.name, "package_version": manifest["package_version"],
            "config_yaml": manifest["config_yaml"]}


def _rate(done: int, t0: float) -> str:
    dt = time.perf_counter() - t0
    return f"{done / dt:.2f} cases/s" if dt > 0 and done else ""


def simulate(cfg: CampaignConfig, out: Path, *, scheduler: str | None = None, workers: int | None = None,
             overwrite: bool = False, progress: bool = True,
             on_shard: Callable[[int], None] | None = None, scheduler_timeout_s: float = 20.0) -> Path:
    """Run a resolved campaign into ``out`` (resuming from ``out.work/``); returns the output path.

    workers: local processes (None or 0: usable cores; 1: in this process). Workers are spawned, so a
    script calling this with workers > 1 needs an ``if __name__ == "__main__":`` guard.
    """
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out: {out} is a directory, expected a file path")
    work = out.with_name(out.name + ".work")
    manifest = _manifest(cfg)
    if out.exists() and not overwrite:
        finished = work.is_dir() and _read_json(work / "manifest.json") == manifest
        if finished and _output_matches(out, manifest):
            _remove_work(work)  # a previous run finished the file but was stopped while cleaning up
            return out
        raise UserError(f"--out: {out} already exists (pass --overwrite to replace it)")
    _prepare_work(work, manifest, overwrite)
    for tmp in out.parent.glob(f".{out.name}.*.tmp"):  # a killed assembly
        tmp.unlink(missing_ok=True)

    specs = sample_cases(cfg)
    shape = (cfg.time.n_frames, cfg.grid.ny, cfg.grid.nx)
    n_workers = workers if workers else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                         else os.cpu_count() or 1)
    with _progress(progress) as bar:
        todo: list[CaseSpec] = []
        t_check = bar.add_task("checking shards", total=len(specs), rate="")
        for spec in specs:
            if not _shard_path(work, spec.index).exists() or not _shard_ok(work, spec, shape):
                todo.append(spec)
            bar.advance(t_check)
        bar.update(t_check, visible=False)
        done0 = len(specs) - len(todo)
        task = bar.add_task("simulating", total=len(specs), completed=done0, rate="")
        t0 = time.perf_counter()
        results: Iterable = (_run_dask(cfg, todo, scheduler, scheduler_timeout_s) if scheduler
                             else _run_local(cfg, todo, n_workers))
        for k, (spec, case) in enumerate(results, start=1):
            write_shard(work, spec, case)
            bar.update(task, advance=1, rate=_rate(k, t0))
            if on_shard is not None:
                on_shard(spec.index)
        t_asm = bar.add_task("writing file", total=len(specs), rate="")
        writer = DataWriter(out, n_cases=len(specs), n_frames=cfg.time.n_frames, x=cfg.grid_obj().x,
                            y=cfg.grid_obj().y, t=cfg.time_obj().times_s, attrs=_file_attrs(cfg, manifest),
                            param_names=list(specs[0].params))
        with writer:
            for spec in specs:
                case = read_shard(work, spec, shape, verify=False)  # write_case decodes and verifies
                writer.write_case(spec.index, None, case.velocity, spec.params, split=spec.split,
                                  checksum=case.checksum, chunk=case.chunk)
                bar.advance(t_asm)
    _remove_work(work)
    return out


def run_campaign(config_path: str | Path, out: str | Path, scheduler: str | None = None,
                 workers: int | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """``wavesurrogate simulate``: load and check the config (nothing written if bad), then simulate."""
    cfg = load_campaign_config(config_path)
    return simulate(cfg, Path(out), scheduler=scheduler, workers=workers, overwrite=overwrite,
                    progress=progress)
