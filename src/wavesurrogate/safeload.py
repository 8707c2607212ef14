"""The one way the package reads a file it did not just write, and parses YAML and JSON: bounded and strict.

Every reader goes through here (configs, ``model.json``, ``stats.json``, ``metrics.jsonl``, the
``config_yaml`` attribute of a data file, weights metadata, the resume state's structure):

- ``check_regular`` / ``read_bytes``: only regular files are read. A FIFO, a socket or a device is refused
  before anything blocks on it (``read_bytes`` opens without blocking and checks the open descriptor, so
  a file swapped for a FIFO after a check is refused too); a file larger than its cap is refused unread.
- ``parse_yaml``: PyYAML's safe loader, with duplicate keys refused, merge keys (``<<``) refused, and
  nesting bounded while the document is composed (no RecursionError, whatever the depth).
- ``parse_json``: duplicate keys refused, nesting bounded.
- ``check_tree``: what any loader returned, walked without recursion: at most ``MAX_DEPTH`` levels and
  ``MAX_NODES`` values *counting shared references as often as they are reached* (so an alias bomb or a
  pickle whose lists share references 10⁹ ways is refused after a bounded walk, before anything else
  traverses it), and no integer outside the signed 64-bit range (no file or array we write holds one).

Errors are the caller's ``UserError`` subclass, one line naming the source and the problem.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from wavesurrogate.errors import UserError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "INT_BOUND", "check_regular", "read_bytes", "read_text",
           "parse_yaml", "parse_json", "load_yaml", "load_json", "check_tree", "file_kind", "h5_problem",
           "h5_contained"]

MAX_BYTES = 64 * 2**20  # any YAML/JSON file we read; configs and run files are kilobytes
MAX_DEPTH = 64  # nesting levels of any YAML/JSON document (ours use at most 5)
MAX_NODES = 1_000_000  # values in a document, shared references counted each time they are reached
INT_BOUND = 2**63  # |integer| below this: what int64 (HDF5 attributes, numpy, torch) holds

ErrorType = type[UserError]


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words (from ``st_mode``)."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _os_problem(exc: OSError | ValueError) -> str:
    if isinstance(exc, ValueError):  # a NUL in the name
        return "invalid file name"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if exc.errno == errno.ENAMETOOLONG:
        return "file not found (file name too long)"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return (exc.strerror or type(exc).__name__).lower()


def check_regular(path: str | Path, error: ErrorType = UserError, max_bytes: int | None = None) -> Path:
    """``path`` if it names a regular file (symbolic links followed) we may read; else ``error``, one line.

    For readers that open the file themselves (h5py, safetensors, torch, numpy): nothing is opened here.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        raise error(f"{path}: {_os_problem(exc)}") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: {file_kind(st.st_mode)}, not a regular file: refused") from None
    if not os.access(path, os.R_OK):
        raise error(f"{path}: permission denied (not readable)")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"{path}: {st.st_size} bytes, more than the {max_bytes} bytes allowed for it")
    return path


def read_bytes(path: str | Path, error: ErrorType = UserError, max_bytes: int = MAX_BYTES,
               missing: str | None = None) -> bytes:
    """The bytes of the regular file ``path`` (at most ``max_bytes``); ``error`` otherwise.

    Opened with O_NONBLOCK and checked on the descriptor, so a FIFO or device never blocks the reader.
    ``missing``: the message when the file does not exist (default ``PATH: file not found``).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(missing or f"{path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise error(f"{path}: {_os_problem(exc)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path}: {file_kind(st.st_mode)}, not a regular file: refused")
        if st.st_size > max_bytes:
            raise error(f"{path}: {st.st_size} bytes, more than the {max_bytes} bytes allowed for it")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: {_os_problem(exc)}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # grew since fstat
        raise error(f"{path}: more than the {max_bytes} bytes allowed for it")
    return data


def read_text(path: str | Path, error: ErrorType = UserError, max_bytes: int = MAX_BYTES,
              missing: str | None = None) -> str:
    """UTF-8 text of the regular file ``path``; ``error`` if it is not one, too big, or not UTF-8."""
    try:
        return read_bytes(path, error, max_bytes, missing).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start})") from None


# ------------------------------------------------------------------------------------------------ YAML


class _Refused(Exception):
    """A structural refusal inside the YAML loader (turned into the caller's error)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with nesting bounded while composing, duplicate keys and merge keys refused."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels at line {mark.line + 1}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _Refused(f"merge keys (<<) are not supported (line {key_node.start_mark.line + 1})")
                key = self.construct_object(key_node, deep=True)
                try:
                    dup = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: the base class names it
                    continue
                if dup:
                    raise _Refused(f"duplicate key {str(key)[:60]!r} at line {key_node.start_mark.line + 1}")
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str, error: ErrorType = UserError, max_nodes: int = MAX_NODES) -> Any:
    """The YAML document ``text`` as Python data, bounded (see the module docstring); ``error`` otherwise."""
    if len(text) > MAX_BYTES:
        raise error(f"{source}: more than {MAX_BYTES} characters of YAML")
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506  (_Loader is a SafeLoader)
    except _Refused as exc:
        raise error(f"{source}: {exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError, ValueError, TypeError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise error(f"{source}: not valid YAML{where}") from None
    check_tree(data, source, error, max_nodes=max_nodes)
    return data


# ------------------------------------------------------------------------------------------------ JSON


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Refused(f"duplicate key {k[:60]!r}")
        out[k] = v
    return out


def parse_json(text: str | bytes, source: str, error: ErrorType = UserError,
               max_nodes: int = MAX_NODES) -> Any:
    """The JSON document ``text`` as Python data, bounded (see the module docstring); ``error`` otherwise."""
    if len(text) > MAX_BYTES:
        raise error(f"{source}: more than {MAX_BYTES} characters of JSON")
    try:
        data = json.loads(text, object_pairs_hook=_pairs)
    except _Refused as exc:
        raise error(f"{source}: {exc}") from None
    except RecursionError:
        raise error(f"{source}: nesting deeper than {MAX_DEPTH} levels") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError, an int of > 4300 digits
        raise error(f"{source}: not valid JSON ({str(exc).splitlines()[0][:100]})") from None
    check_tree(data, source, error, max_nodes=max_nodes)
    return data


def load_yaml(path: str | Path, error: ErrorType = UserError, max_bytes: int = MAX_BYTES,
              missing: str | None = None) -> Any:
    """``parse_yaml`` of the regular file ``path``."""
    return parse_yaml(read_text(path, error, max_bytes, missing), str(path), error)


def load_json(path: str | Path, error: ErrorType = UserError, max_bytes: int = MAX_BYTES,
              missing: str | None = None) -> Any:
    """``parse_json`` of the regular file ``path``."""
    return parse_json(read_text(path, error, max_bytes, missing), str(path), error)


# ------------------------------------------------------------------------------------------------ walk


_CONTAINERS = (dict, list, tuple, set, frozenset)
_SHARED = "(counting shared references; an alias or reference bomb?)"


def _walk(obj: Any, max_depth: int, max_nodes: int, leaf: Callable[[Any], bool] | None) -> str | None:
    """The first problem of ``obj`` in words (without its location), or None; see check_tree.

    Post-order over the distinct containers with the expanded size and height of each memoised by
    identity: linear in the distinct objects, however often they are shared (an alias or reference bomb
    of 10⁹ expanded values costs as much as its 100 lists)."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(obj, False)]
    while stack:
        x, done = stack.pop()
        key = id(x)
        items = list(x.values()) + [k for k in x if not isinstance(k, str)] if isinstance(x, dict) else x
        if done:
            open_.discard(key)
            kids = [v for v in items if isinstance(v, _CONTAINERS)]
            size[key] = 1 + len(items) - len(kids) + sum(size[id(v)] for v in kids)
            height[key] = 1 + max((height[id(v)] for v in kids), default=0)
            if size[key] > max_nodes:
                return f"more than {max_nodes} values {_SHARED}"
            if height[key] > max_depth:
                return f"nesting deeper than {max_depth} levels"
            continue
        if key in size:
            continue
        if key in open_:
            return "a reference cycle (a container inside itself)"
        if len(open_) > max_depth:
            return f"nesting deeper than {max_depth} levels"
        open_.add(key)
        stack.append((x, True))
        for v in items:
            if isinstance(v, _CONTAINERS):
                if id(v) not in size:
                    stack.append((v, False))
            elif isinstance(v, int) and not isinstance(v, bool):
                if not -INT_BOUND <= v < INT_BOUND:
                    return "integer out of range (more than 64 bits)"
            elif leaf is not None and not leaf(v):
                return f"unexpected {type(v).__name__}"
    return None


def _locate(obj: Any, problem: str, leaf: Callable[[Any], bool] | None) -> str:
    """Where the (leaf) ``problem`` lies, as ``key.0.key``; only called once a problem is known."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(obj, ())]
    for _ in range(MAX_NODES):
        if not stack:
            break
        x, path = stack.pop()
        if isinstance(x, _CONTAINERS) and len(path) <= MAX_DEPTH:
            pairs = x.items() if isinstance(x, dict) else enumerate(x)
            stack.extend((v, (*path, k)) for k, v in pairs)
        elif _walk([x], MAX_DEPTH, MAX_NODES, leaf) == problem:
            return ".".join(str(p) for p in path) or "(top level)"
    return "(somewhere)"


def check_tree(obj: Any, source: str, error: ErrorType = UserError, *, max_depth: int = MAX_DEPTH,
               max_nodes: int = MAX_NODES, leaf: Callable[[Any], bool] | None = None) -> None:
    """Walk ``obj`` without recursion: ``error`` beyond ``max_depth`` levels or ``max_nodes`` values (shared
    references counted each time reached, so cycles and reference bombs stop), or for an integer outside
    ±2⁶³. Dicts, lists, tuples and sets are containers; ``leaf`` (default: anything else) may refuse
    other objects by returning False."""
    if not isinstance(obj, _CONTAINERS):
        obj = [obj]
    problem = _walk(obj, max_depth, max_nodes, leaf)
    if problem is None:
        return
    if problem.startswith(("integer", "unexpected")):
        problem = f"{_locate(obj, problem, leaf)}: {problem}"
    raise error(f"{source}: {problem}")


# ------------------------------------------------------------------------------------------------ HDF5

MAX_H5_OBJECTS = 10_000  # groups and datasets of a data file (ours hold a few dozen)


def h5_problem(exc: BaseException) -> str:
    """What an exception of ``h5py.File(path, "r")`` means, in words: locked, permission, or damage."""
    text = str(exc).lower()
    if isinstance(exc, BlockingIOError) or "unable to lock file" in text:
        return "locked by another process (being written?); try again when it is done"
    if isinstance(exc, PermissionError) or "permission denied" in text:
        return "permission denied (not readable)"
    return "not a readable HDF5 file (truncated or corrupted?)"


def h5_contained(group: Any, source: str, error: ErrorType = UserError, only: str | None = None) -> None:
    """``error`` unless every object under ``group`` (or only its member ``only``) lies in this file: no soft
    or external link, no virtual dataset, no dataset with external storage (a link out of the file could
    point at a FIFO, a device or someone else's data). Walks at most MAX_H5_OBJECTS objects."""
    import h5py

    stack = [(group, [only] if only is not None else list(group.keys()), group.name.rstrip("/"))]
    seen = 0
    while stack:
        g, names, prefix = stack.pop()
        for name in names:
            seen += 1
            if seen > MAX_H5_OBJECTS:
                raise error(f"{source}: more than {MAX_H5_OBJECTS} objects")
            where = f"{prefix}/{name}".lstrip("/")
            link = g.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise error(f"{source}: {where!r} is an external link to {link.filename!r}: a data file "
                            "must be self-contained")
            if link is None or not isinstance(link, h5py.HardLink):
                raise error(f"{source}: {where!r} is a {type(link).__name__}, not an object of the file")
            obj = g[name]
            if isinstance(obj, h5py.Group):
                stack.append((obj, list(obj.keys()), where))
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    raise error(f"{source}: {where!r} is a virtual dataset (data from other files): a data "
                                "file must be self-contained")
                if obj.external:
                    raise error(f"{source}: {where!r} keeps its data in external files: a data file must be "
                                "self-contained")
