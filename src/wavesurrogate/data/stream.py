"""Streaming access to a data file: one handle per process and a bounded LRU cache of cases.

Datasets that read cases lazily (``tasks/_forecast_stream.py``) hold a ``ProcessFile`` (the path, opened on
first use in the process that uses it: never pickled, reopened after a fork) and a ``CaseCache`` (least
recently used cases evicted once their bytes exceed the bound; the entry just loaded always stays).
A case is one HDF5 chunk of ``fields`` (one case per chunk), so reading case by case reads chunk by chunk;
each case is checksum-verified by the reader as it is read.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

__all__ = ["CaseCache", "ProcessFile", "nbytes"]


def nbytes(value: Any) -> int:
    """Bytes held by arrays/tensors in ``value`` (nested tuples and lists; None counts 0)."""
    if value is None:
        return 0
    if isinstance(value, tuple | list):
        return sum(nbytes(v) for v in value)
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if hasattr(value, "element_size"):  # torch tensors
        return int(value.element_size() * value.nelement())
    return 0


class CaseCache:
    """LRU cache bounded by bytes: ``get(key, load)`` returns the cached value or ``load()``'s, stored."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.bytes = self.hits = self.misses = self.evictions = 0

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """The value of ``key``; on a miss ``load()`` is called and the least recently used entries are
        evicted until the bytes fit (the new entry stays even if it alone is larger than the bound)."""
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
            self.hits += 1
            return hit[0]
        self.misses += 1
        value = load()
        size = nbytes(value)
        self._items[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes and len(self._items) > 1:
            _, (_, old) = self._items.popitem(last=False)
            self.bytes -= old
            self.evictions += 1
        return value

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def clear(self) -> None:
        """Drop every entry (the counters stay)."""
        self._items.clear()
        self.bytes = 0

    def info(self) -> dict[str, int]:
        """Entries, bytes, bound, hits, misses, evictions."""
        return {"entries": len(self), "bytes": self.bytes, "max_bytes": self.max_bytes, "hits": self.hits,
                "misses": self.misses, "evictions": self.evictions}

    def __getstate__(self) -> dict[str, Any]:  # a copy in another process starts empty
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["max_bytes"])  # type: ignore[misc]


class ProcessFile:
    """A data file opened (``store.open_data``, validated) on first use in each process.

    Pickling keeps only the path, and a copy made by ``fork`` (DataLoader workers on Linux) notices the
    new process id and opens its own handle: an h5py handle is never shared between processes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f: Any = None
        self._pid: int | None = None
        self.opens = 0

    def get(self) -> Any:
        """The open ``DataFile`` of this process."""
        if self._f is None or self._pid != os.getpid():
            from wavesurrogate.data.store import open_data

            self._f, self._pid = open_data(self.path), os.getpid()  # a forked parent's handle is left alone
            self.opens += 1
        return self._f

    def close(self) -> None:
        """Close this process's handle (the next ``get`` reopens)."""
        if self._f is not None and self._pid == os.getpid():
            self._f.close()
        self._f = self._pid = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]
