"""Progress bar on stderr (rich) for the epochs of training; shown as ``wavesurrogate.progress`` decides."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from wavesurrogate.progress import progress_bar

__all__ = ["epoch_progress"]


@contextmanager
def epoch_progress(enabled: bool) -> Iterator[Any]:
    """A rich Progress showing the epoch, steps done, loss, samples/s and elapsed time."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    cols = (TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4g}"), TextColumn("{task.fields[sps]:.0f} samples/s"),
            TimeElapsedColumn())
    with progress_bar(enabled, *cols) as p:
        yield p
