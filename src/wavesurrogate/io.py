"""The one way the package writes files: atomically (temp sibling, fsync, rename, fsync the directory).

A reader, or a process resumed after SIGKILL, sees either the old file or the new one, never a part.
Temporary files are named ``.<name>.<random>.tmp`` beside their target, so a crash leaves only such names.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["fsync_dir", "atomic_path", "atomic_write_bytes", "atomic_write_text", "write_json", "to_json"]


def fsync_dir(path: str | Path) -> None:
    """fsync a directory so that a rename inside it survives a crash (no-op where unsupported)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path to write; on success fsync it and rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a finished file is an ordinary file
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def to_json(obj: Any, indent: int | None = 2) -> str:
    """JSON text with non-finite floats written as null (JSON has no NaN or infinity)."""
    return json.dumps(_finite(obj), indent=indent)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (non-finite floats as null) atomically, ending in a newline."""
    atomic_write_text(path, to_json(obj) + "\n")


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if x == x and x not in (float("inf"), float("-inf")) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x
