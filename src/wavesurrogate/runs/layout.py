"""The run directory's layout and its small readers (docs/training.md).

::

    config.yaml          resolved TrainConfig (absolute paths)
    model.json           {"format", "name", "task", "kwargs", "model_version", "package_version", "n_params"}
    stats.json           normalisation statistics of the training split + the data geometry trained on
    weights.safetensors  "best.<param>" and "last.<param>"; metadata {"format", "epoch", "best_epoch", ...}
    optimizer.pt         the resume state (commit point), tensors and numbers only (weights-only load)
    metrics.jsonl        one JSON line per finished epoch

Run directories written before ``model_version`` existed read as version 1.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wavesurrogate.config.base import read_yaml, validate
from wavesurrogate.config.train import RESUMABLE_CHANGES, TrainConfig
from wavesurrogate.errors import CheckpointError, UserError
from wavesurrogate.safeload import check_regular, load_json, parse_json, read_text

__all__ = ["CONFIG", "MODEL_JSON", "STATS", "WEIGHTS", "OPTIM", "METRICS", "RUN_FILES", "MODEL_FORMAT",
           "WEIGHTS_FORMAT", "STATE_FORMAT", "WHICH", "read_json", "read_metrics", "read_run_config",
           "holds_config", "prepare_dir", "remove_partial_writes", "run_files", "lock_run"]

CONFIG, MODEL_JSON, STATS = "config.yaml", "model.json", "stats.json"
WEIGHTS, OPTIM, METRICS = "weights.safetensors", "optimizer.pt", "metrics.jsonl"
RUN_FILES = (CONFIG, MODEL_JSON, STATS, WEIGHTS, OPTIM, METRICS)
MODEL_FORMAT = "wavesurrogate-model/1"
WEIGHTS_FORMAT = "wavesurrogate-weights/1"
STATE_FORMAT = "wavesurrogate-state/1"
WHICH = ("best", "last")


def read_json(path: Path) -> Any:
    """Parse a JSON file of a run directory (``safeload``: regular file, bounded); CheckpointError if missing
    or malformed."""
    path = Path(path)
    return load_json(path, CheckpointError, missing=f"{path.parent}: no {path.name} (not a run directory?)")



METRIC_NUMBERS = ("step", "train_loss", "val_loss", "lr", "seconds", "samples_per_s")  # what readers use


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl`` (one per finished epoch, epochs 1, 2, ... in order); [] if it
    has none yet; CheckpointError naming the first bad line."""
    path = Path(run_dir) / METRICS
    if not os.path.lexists(path):
        return []
    rows = []
    for i, ln in enumerate(read_text(path, CheckpointError).splitlines()):
        if not ln.strip():
            continue
        row = parse_json(ln, f"{path}: line {i + 1}", CheckpointError)
        if not isinstance(row, dict):
            raise CheckpointError(f"{path}: line {i + 1}: every line must be a JSON object")
        epoch = row.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch != len(rows) + 1:
            raise CheckpointError(f"{path}: line {i + 1}: 'epoch' must be {len(rows) + 1}, got {epoch!r}")
        bad = [k for k in METRIC_NUMBERS if row.get(k) is not None
               and (not isinstance(row[k], int | float) or isinstance(row[k], bool))]
        if bad:
            raise CheckpointError(f"{path}: line {i + 1}: {bad[0]!r} must be a number, got {row[bad[0]]!r}")
        rows.append(row)
    return rows


def read_run_config(run_dir: str | Path) -> TrainConfig:
    """The resolved TrainConfig stored in a run directory; CheckpointError if absent or invalid."""
    path = Path(run_dir) / CONFIG
    if not os.path.lexists(path):
        raise CheckpointError(f"{run_dir}: no {CONFIG} (not a run directory?)")
    try:
        return validate(TrainConfig, read_yaml(path), source=str(path))
    except UserError as exc:
        raise CheckpointError(str(exc)) from None


def holds_config(run_dir: str | Path, cfg: TrainConfig, ignore: tuple[str, ...] = RESUMABLE_CHANGES,
                 init_from: dict[str, str] | None = None) -> bool:
    """Whether ``run_dir`` holds a run of ``cfg``: its stored config equal in every key but ``ignore``, and
    started from the same weights (``init_from``: as ``start_weights`` describes them; None: from none)."""
    try:
        a, b = read_run_config(run_dir).model_dump(mode="json"), cfg.resolved().model_dump(mode="json")
        meta = read_json(Path(run_dir) / MODEL_JSON)
    except UserError:
        return False
    return all(a.get(k) == b.get(k) for k in a if k not in ignore) and meta.get("init_from") == init_from


def start_weights(source: str | Path) -> dict[str, str]:
    """What ``model.json`` records of the run a training started from: its path and its weights' sha256."""
    import hashlib

    path = Path(source).resolve()
    if not os.path.lexists(path / WEIGHTS):
        raise CheckpointError(f"--init-from {source}: no {WEIGHTS} (not a finished run?)")
    check_regular(path / WEIGHTS, CheckpointError)  # a FIFO would block the hash below
    h = hashlib.sha256()
    try:
        with open(path / WEIGHTS, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise CheckpointError(f"--init-from {source}: {WEIGHTS} unreadable ({exc.strerror})") from None
    digest = h.hexdigest()
    return {"run": str(path), "weights_sha256": digest}


def prepare_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse to start a new run over an existing one unless ``overwrite``."""
    present = [f for f in RUN_FILES if (run_dir / f).exists()]
    if present and not overwrite:
        raise CheckpointError(f"{run_dir} already holds a run ({present[0]}); use --resume or --overwrite")


def remove_partial_writes(run_dir: Path) -> None:
    """Delete temporary files of run files left by a write interrupted by a kill."""
    for tmp in run_dir.glob(".*.tmp"):
        if any(tmp.name.startswith(f".{f}.") for f in RUN_FILES):
            tmp.unlink(missing_ok=True)


def run_files(run_dir: str | Path) -> list[Path]:
    """The files of a run directory (what a command reading the run must never overwrite)."""
    return [Path(run_dir) / f for f in RUN_FILES]


@contextlib.contextmanager
def lock_run(run_dir: str | Path) -> Iterator[Path]:
    """Hold an exclusive, non-blocking lock on run directory ``run_dir`` while writing it.

    The lock is ``flock`` on the directory itself (no lock file: a refused command leaves the directory
    byte-for-byte as it was); the kernel releases it when the process dies, however it dies. A directory
    created here and still empty when the block fails is removed again, with the parents created for it.
    CheckpointError (one line) if another process holds the lock.
    """
    run_dir = Path(run_dir)
    if os.path.lexists(run_dir) and not os.path.isdir(run_dir):
        raise CheckpointError(f"{run_dir}: exists and is not a directory")
    created = [p for p in (run_dir, *run_dir.parents) if not os.path.lexists(p)]
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckpointError(f"{run_dir}: in use by another process writing this run; wait for it to "
                                  "finish or choose another --out") from None
        try:
            yield run_dir
        except BaseException:
            for p in created:  # innermost first; stops at the first directory that is not empty
                try:
                    p.rmdir()
                except OSError:
                    break
            raise
    finally:
        os.close(fd)  # releases the lock
