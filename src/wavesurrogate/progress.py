"""Progress output: drawn on stderr only when stderr is a terminal, unless asked for (``--progress``).

A bar drawn on a file or a pipe is not a progress bar but a multi-line log that precedes every later
error; commands therefore pass ``None`` (decide from the terminal) unless the user said otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_wanted", "progress_bar"]


def progress_wanted(flag: bool | None) -> bool:
    """``flag`` if given, else whether stderr is a terminal."""
    if flag is not None:
        return bool(flag)
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(enabled: bool, *columns: Any) -> Any:
    """A rich ``Progress`` of ``columns`` on stderr; disabled (prints nothing at all) unless ``enabled``."""
    from rich.console import Console
    from rich.progress import Progress

    return Progress(*columns, console=Console(stderr=True), disable=not enabled)
