"""The one place that decides whether a command may write a path (docs/reliability.md, "Outputs").

Every verb that writes files names them before doing any work and calls :func:`check_outputs` with the
files it reads: an output that is one of its inputs (same resolved path, or the same file through another
name: a symbolic or hard link) is always refused, and an existing output is replaced only with
``overwrite`` (``--overwrite``). Nothing is written, simulated or trained before the check.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from wavesurrogate.errors import UserError

__all__ = ["same_file", "check_outputs", "check_output_dir"]


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name the same file: equal resolved paths, or the same inode (hard links)."""
    a, b = Path(a), Path(b)
    try:
        if a.resolve() == b.resolve():
            return True
    except (OSError, RuntimeError, ValueError):  # a symbolic-link loop, a NUL byte
        pass
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # either does not exist (yet)
        return False


def check_outputs(outputs: Iterable[str | Path], inputs: Iterable[str | Path | None] = (), *,
                  overwrite: bool = False, option: str = "--out") -> None:
    """UserError (one line) unless every file of ``outputs`` may be written.

    Refused: an output that is an existing directory, an output that is one of ``inputs`` (whatever
    ``overwrite`` says: the command would destroy what it reads), and an existing output without
    ``overwrite``. ``option``: how the user named the output, for the message.
    """
    ins = [Path(p) for p in inputs if p is not None]
    for out in (Path(p) for p in outputs):
        if os.path.isdir(out):
            raise UserError(f"{option}: {out} is a directory, expected a file path")
        for src in ins:
            if same_file(out, src):
                what = "" if os.path.abspath(out) == os.path.abspath(src) else f" ({src})"
                raise UserError(f"{option}: {out} is an input of this command{what}; write elsewhere")
        if os.path.lexists(out) and not overwrite:
            raise UserError(f"{option}: {out} already exists (pass --overwrite to replace it)")


def check_output_dir(out_dir: str | Path, names: Iterable[str], inputs: Iterable[str | Path | None] = (), *,
                     overwrite: bool = False, option: str = "--out") -> list[Path]:
    """check_outputs for the files ``names`` a command writes into directory ``out_dir``; their paths."""
    out_dir = Path(out_dir)
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"{option}: {out_dir} exists and is not a directory")
    files = [out_dir / n for n in names]
    check_outputs(files, inputs, overwrite=overwrite, option=option)
    return files
