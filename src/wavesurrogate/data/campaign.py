"""Simulation campaigns: sample cases from a config, run the solver in parallel, store one HDF5 file.

Crash safety: every finished case is written atomically to its own shard in ``OUT.work/`` beside the
output; a rerun of the same command skips the shards already there (after checking their checksums) and
the final file is assembled in case order into a temporary file, fsynced and renamed onto ``OUT``. The
file's bytes depend only on the resolved config (and the machine's floating point), never on worker
order, interruptions or the number of workers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wavesurrogate.config.base import dump_yaml
from wavesurrogate.config.campaign import CampaignConfig
from wavesurrogate.data.cases import CaseSpec, load_campaign, resolve, sample_cases, solve_case, trace_layout
from wavesurrogate.data.runners import probe_scheduler, run_dask, run_local
from wavesurrogate.data.schema import SCHEMA, case_checksum, decode_chunk, encode_chunk
from wavesurrogate.data.store import DataWriter, open_data
from wavesurrogate.errors import DataFileError, UserError
from wavesurrogate.io import atomic_path
from wavesurrogate.outputs import check_outputs
from wavesurrogate.progress import progress_bar, progress_wanted
from wavesurrogate.safeload import check_regular, load_json, parse_json


@dataclass(frozen=True)
class EncodedCase:
    """A simulated case ready for storage: compressed field chunk, velocity, receiver traces (name →
    float32 [n_times, n_receivers]), checksum of the float data, solve wall time in s."""

    chunk: bytes
    velocity: np.ndarray
    checksum: str
    traces: dict[str, np.ndarray] = field(default_factory=dict)
    solve_s: float = float("nan")


def _digest(frames: np.ndarray, velocity: np.ndarray, traces: dict[str, np.ndarray]) -> str:
    return case_checksum(frames, velocity, *(traces[k] for k in sorted(traces)))


def run_case_encoded(cfg: CampaignConfig, spec: CaseSpec) -> EncodedCase:
    """solve_case, then checksum and compress in the worker (the parent only moves bytes)."""
    r = solve_case(cfg, spec)
    return EncodedCase(encode_chunk(r.frames), r.velocity, _digest(r.frames, r.velocity, r.traces), r.traces,
                       r.solve_s)


# ---------------------------------------------------------------------------------------------- shards
def _shard_path(work: Path, index: int) -> Path:
    return work / f"case-{index:06d}.npz"


def write_shard(work: Path, spec: CaseSpec, case: EncodedCase) -> None:
    """Write one finished case atomically into the work directory (.npz: chunk, velocity, meta JSON)."""
    meta = json.dumps({"index": spec.index, "split": spec.split, "params": spec.params,
                       "checksum": case.checksum, "solve_s": case.solve_s})
    traces = {f"trace_{k}": v.astype("<f4") for k, v in case.traces.items()}
    with atomic_path(_shard_path(work, spec.index)) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, chunk=np.frombuffer(case.chunk, dtype=np.uint8), velocity=case.velocity.astype("<f4"),
                 meta=np.array(meta), **traces)


def read_shard(work: Path, spec: CaseSpec, shape: tuple[int, ...], verify: bool = True) -> EncodedCase:
    """A shard's case (chunk decoded and checksum checked unless verify=False); DataFileError if bad."""
    path = _shard_path(work, spec.index)
    check_regular(path, DataFileError)  # a FIFO in the work directory would block np.load
    try:
        with np.load(path, allow_pickle=False) as z:
            chunk, velocity = z["chunk"].tobytes(), z["velocity"]
            meta = parse_json(str(z["meta"]), str(path), DataFileError)
            traces = {k[6:]: z[k] for k in z.files if k.startswith("trace_")}
        fields = decode_chunk(chunk, shape) if verify else None
    except Exception as exc:
        raise DataFileError(f"{path}: unreadable shard ({type(exc).__name__})") from None
    if not isinstance(meta, dict):
        raise DataFileError(f"{path}: shard metadata is not a mapping")
    same_case = (meta.get("index"), meta.get("split"), meta.get("params")) == (spec.index, spec.split,
                                                                              spec.params)
    if (not same_case or velocity.shape != shape[1:] or not isinstance(meta.get("checksum"), str)
            or (fields is not None and _digest(fields, velocity, traces) != meta["checksum"])):
        raise DataFileError(f"{path}: shard does not match its case or its checksum")
    solve_s = meta.get("solve_s", float("nan"))
    if not isinstance(solve_s, int | float) or isinstance(solve_s, bool):
        raise DataFileError(f"{path}: shard's solve_s is not a number")
    return EncodedCase(chunk, velocity, meta["checksum"], traces, float(solve_s))


def _shard_ok(work: Path, spec: CaseSpec, shape: tuple[int, ...]) -> bool:
    try:
        read_shard(work, spec, shape)
        return True
    except DataFileError:
        return False


# ---------------------------------------------------------------------------------------------- running
def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return progress_bar(enabled, TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn())


def solve_specs(cfg: CampaignConfig, specs: list[CaseSpec], *, scheduler: str | None = None, workers: int = 1,
                scheduler_timeout_s: float = 20.0) -> list[tuple[np.ndarray, float]]:
    """Solve chosen cases of a resolved config on the campaign's workers (this process, local processes or
    Dask): (frames float32 [n_frames, ny, nx], solve wall time in s) in the order of ``specs``, each
    checksum verified after the transfer. Nothing is written (callers that keep results persist them)."""
    shape = (cfg.time.n_frames, cfg.grid.ny, cfg.grid.nx)
    if scheduler:
        probe_scheduler(scheduler, scheduler_timeout_s)
    results: Generator = (run_dask(run_case_encoded, cfg, specs, scheduler, scheduler_timeout_s) if scheduler
                          else run_local(run_case_encoded, cfg, specs, workers))
    out: dict[int, tuple[np.ndarray, float]] = {}
    for spec, case in results:
        frames = decode_chunk(case.chunk, shape)
        if _digest(frames, case.velocity, case.traces) != case.checksum:
            raise RuntimeError(f"case {spec.index}: checksum mismatch after the transfer")
        out[spec.index] = (frames, case.solve_s)
    return [out[s.index] for s in specs]


def code_fingerprint() -> str:
    """sha256 of the sources that determine a case's numbers: physics/**/*.py, data/cases.py, this file."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    here = Path(__file__).resolve()
    for p in sorted((root / "physics").rglob("*.py")) + [here.with_name("cases.py"), here]:
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _manifest(cfg: CampaignConfig) -> dict[str, str]:
    """What shards depend on: schema, package version, solver code and the resolved config."""
    from wavesurrogate import __version__

    return {"schema": SCHEMA, "package_version": __version__, "code_sha256": code_fingerprint(),
            "config_yaml": dump_yaml(cfg)}


def _read_json(path: Path) -> dict | None:
    try:
        return load_json(path, DataFileError)
    except DataFileError:
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
    s, zoi = cfg.solver, cfg.zoi_obj()
    window = {"grid_shape": [cfg.grid.ny, cfg.grid.nx], "window_ij0": [zoi.j0, zoi.i0]} \
        if cfg.record.frames == "zoi" else {}
    return {**window, "solver": f"fd/{s.backend}" if s.kind == "fd" else f"fe/{s.element}",
            "space_order": int(s.space_order), "dt": float(cfg.time.dt_s), "dx": float(cfg.grid.dx_m),
            "dy": float(cfg.grid.dy_m), **({"dz": float(cfg.grid.dz_m)} if cfg.grid.nz else {}),
            "frame_stride": int(cfg.time.frame_stride),
            "boundary": cfg.boundary.kind, "boundary_width": int(cfg.boundary.width), "seed": int(cfg.seed),
            "test_seed": int(cfg.test_seed), "name": cfg.name, "package_version": manifest["package_version"],
            "config_yaml": manifest["config_yaml"]}


def _rate(done: int, t0: float) -> str:
    dt = time.perf_counter() - t0
    return f"{done / dt:.2f} cases/s" if dt > 0 and done else ""


def simulate(cfg: CampaignConfig, out: Path, *, scheduler: str | None = None, workers: int | None = None,
             overwrite: bool = False, progress: bool | None = None,
             on_shard: Callable[[int], None] | None = None, scheduler_timeout_s: float = 20.0) -> Path:
    """Run a campaign into ``out`` (resuming from ``out.work/``); returns the output path.

    The config is resolved first (cases.resolve: time step from the CFL bound). workers: local processes
    (None or 0: usable cores; 1: in this process). Workers are spawned, so a script calling this with
    workers > 1 needs an ``if __name__ == "__main__":`` guard. progress: None: when stderr is a terminal.
    """
    return _simulate(resolve(cfg), Path(out), scheduler=scheduler, workers=workers, overwrite=overwrite,
                     progress=progress, on_shard=on_shard, scheduler_timeout_s=scheduler_timeout_s)


def _simulate(cfg: CampaignConfig, out: Path, *, scheduler: str | None, workers: int | None, overwrite: bool,
              progress: bool | None, on_shard: Callable[[int], None] | None = None,
              scheduler_timeout_s: float = 20.0, inputs: tuple[Path, ...] = ()) -> Path:
    """simulate() of a resolved config; ``inputs``: files it was read from (never overwritten)."""
    medium = getattr(cfg.medium, "path", None)
    check_outputs([out], [*inputs, medium], overwrite=True)  # an input or a directory: refused
    work = out.with_name(out.name + ".work")
    check_outputs([work / "manifest.json"], [*inputs, medium], overwrite=True)
    manifest = _manifest(cfg)
    if out.exists() and not overwrite:
        finished = work.is_dir() and _read_json(work / "manifest.json") == manifest
        if finished and _output_matches(out, manifest):
            _remove_work(work)  # a previous run finished the file but was stopped while cleaning up
            return out
        raise UserError(f"--out: {out} already exists (pass --overwrite to replace it)")
    if scheduler:  # before anything is created: an address that never answers leaves nothing behind
        probe_scheduler(scheduler, scheduler_timeout_s)
    specs = sample_cases(cfg)
    created = not work.exists()
    _prepare_work(work, manifest, overwrite)
    try:
        _run(cfg, out, work, manifest, specs, scheduler, workers, progress_wanted(progress), on_shard,
             scheduler_timeout_s)
    except BaseException:
        if created and not any(work.glob("case-*.npz")):  # nothing worth resuming: leave no trace
            _remove_work(work)
        raise
    _remove_work(work)
    return out


def _run(cfg: CampaignConfig, out: Path, work: Path, manifest: dict[str, str], specs: list[CaseSpec],
         scheduler: str | None, workers: int | None, progress: bool, on_shard: Callable[[int], None] | None,
         scheduler_timeout_s: float) -> None:
    """Simulate the cases without a valid shard in ``work``, then assemble ``out`` from the shards."""
    for tmp in out.parent.glob(f".{out.name}.*.tmp"):  # a killed assembly
        tmp.unlink(missing_ok=True)

    specs = sample_cases(cfg)
    grid, zoi = cfg.grid_obj(), cfg.zoi_obj()
    x, y, z = grid.x, grid.y, (grid.z if grid.ndim == 3 else None)
    if cfg.record.frames == "zoi":  # frames and velocity of the ZOI window only
        y, x = y[zoi.slices[0]], x[zoi.slices[1]]
    shape = (cfg.time.n_frames, *(() if z is None else (z.size,)), y.size, x.size)
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
        results: Generator = (run_dask(run_case_encoded, cfg, todo, scheduler, scheduler_timeout_s)
                              if scheduler else run_local(run_case_encoded, cfg, todo, n_workers))
        with contextlib.closing(results):  # stops the workers at once if anything below fails
            for k, (spec, case) in enumerate(results, start=1):
                write_shard(work, spec, case)
                bar.update(task, advance=1, rate=_rate(k, t0))
                if on_shard is not None:
                    on_shard(spec.index)
        t_asm = bar.add_task("writing file", total=len(specs), rate="")
        writer = DataWriter(out, n_cases=len(specs), n_frames=cfg.time.n_frames, x=x, y=y, z=z,
                            t=cfg.time_obj().times_s, attrs=_file_attrs(cfg, manifest),
                            param_names=list(specs[0].params), traces=trace_layout(cfg),
                            solve_s=cfg.record.solve_s)
        with writer:
            for spec in specs:
                case = read_shard(work, spec, shape, verify=False)  # write_case decodes and verifies
                writer.write_case(spec.index, None, case.velocity, spec.params, split=spec.split,
                                  checksum=case.checksum, chunk=case.chunk, traces=case.traces,
                                  solve_s=case.solve_s)
                bar.advance(t_asm)


def run_campaign(config_path: str | Path, out: str | Path, scheduler: str | None = None,
                 workers: int | None = None, overwrite: bool = False, progress: bool | None = None,
                 scheduler_timeout_s: float = 20.0) -> Path:
    """``wavesurrogate simulate``: load and resolve the config (nothing written if bad), then simulate."""
    cfg = load_campaign(config_path)
    return _simulate(cfg, Path(out), scheduler=scheduler, workers=workers, overwrite=overwrite,
                     progress=progress, scheduler_timeout_s=scheduler_timeout_s, inputs=(Path(config_path),))
