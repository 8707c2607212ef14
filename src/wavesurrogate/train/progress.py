"""Progress bars on stderr (rich) for long work: epochs of training, cases of a campaign."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["epoch_progress"]


@contextmanager
def epoch_progress(enabled: bool) -> Iterator[Any]:
    """A rich Progress showing the epoch, steps done, loss, samples/s and elapsed time."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    cols = (TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4g}"), TextColumn("{task.fields[sps]:.0f} samples/s"),
            TimeElapsedColumn())
    with Progress(*cols, console=Console(stderr=True), disable=not enabled) as p:
        yield p
