"""wavesurrogate.safeload, the one reader of YAML, JSON and files we did not write (issue 16 A), and the
rule that every reader of the package goes through it."""

from __future__ import annotations

import ast
import os
import threading
import time
from pathlib import Path

import pytest

from wavesurrogate.errors import CheckpointError, ConfigError
from wavesurrogate.safeload import (
    INT_BOUND,
    MAX_DEPTH,
    MAX_NODES,
    check_regular,
    check_tree,
    h5_problem,
    load_yaml,
    parse_json,
    parse_yaml,
    read_bytes,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "wavesurrogate"


def test_no_module_but_safeload_parses_yaml_or_json() -> None:
    """Every reader of YAML or JSON in the package goes through safeload (found by the AST, not by hand)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "safeload.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            parses = {"yaml": ("load", "safe_load", "full_load", "unsafe_load"), "json": ("load", "loads")}
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and (
                    node.attr in parses.get(node.value.id, ())):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {node.value.id}.{node.attr}")
    assert not offenders, offenders


def test_yaml_refuses_duplicate_and_merge_keys_and_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"x: duplicate key 'cases' at line 3"):
        parse_yaml("cases: 2\nseed: 1\ncases: 3\n", "x", ConfigError)
    with pytest.raises(ConfigError, match=r"duplicate key 'nx' at line 4"):
        parse_yaml("grid:\n  nx: 1\n  ny: 2\n  nx: 3\n", "x", ConfigError)
    with pytest.raises(ConfigError, match=r"merge keys"):
        parse_yaml("a: &a {x: 1}\nb: {<<: *a, y: 2}\n", "x", ConfigError)
    assert parse_yaml("a: &a [1, 2]\nb: *a\n", "x") == {"a": [1, 2], "b": [1, 2]}  # plain aliases still work


@pytest.mark.parametrize("levels", [MAX_DEPTH, MAX_DEPTH + 1, 500, 100_000])
def test_nesting_is_bounded_exactly_whatever_the_depth(levels: int) -> None:
    """MAX_DEPTH levels load; one more is refused as one line, never a RecursionError (YAML and JSON)."""
    inner = levels - 1  # the top-level mapping is the first level
    y, j = "a: " + "[" * inner + "]" * inner, '{"a": ' + "[" * inner + "]" * inner + "}"
    if levels <= MAX_DEPTH:
        assert parse_yaml(y, "x") is not None and parse_json(j, "x") is not None
        return
    for parse, text in ((parse_yaml, y), (parse_json, j)):
        with pytest.raises(ConfigError, match=f"nesting deeper than {MAX_DEPTH} levels"):
            parse(text, "x", ConfigError)


def _bomb(levels: int, width: int) -> str:
    rows = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    rows += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(rows) + "\n"


def test_alias_bomb_is_refused_fast_and_its_size_counted_exactly() -> None:
    """The walk counts a container as 1 plus its scalars plus its containers' counts, once per reach: list
    l0 counts 1 + w, list l_k counts 1 + w · count(l_{k-1}), the document 1 + the sum over its lists. Just
    within MAX_NODES a bomb loads, just above it is refused, and 9 × 10 levels (3.9e9) takes milliseconds."""
    def size(levels: int, width: int) -> int:
        counts = [1 + width]
        for _ in range(1, levels):
            counts.append(1 + width * counts[-1])
        return 1 + sum(counts)

    assert size(1, 3) == 5 and size(2, 2) == 1 + 3 + 7
    small, big = (6, 9), (7, 9)
    assert size(*small) <= MAX_NODES < size(*big)
    parse_yaml(_bomb(*small), "x")
    for shape in ((8, 6), (7, 9)):
        if size(*shape) > MAX_NODES:
            with pytest.raises(ConfigError, match="more than 1000000 values"):
                parse_yaml(_bomb(*shape), "x", ConfigError)
        else:
            parse_yaml(_bomb(*shape), "x")
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="more than 1000000 values"):
        parse_yaml(_bomb(10, 9), "x", ConfigError)
    assert time.perf_counter() - t0 < 1.0


def test_shared_references_cycles_and_integers() -> None:
    x: list = [1.0]
    for _ in range(40):
        x = [x, x]
    with pytest.raises(CheckpointError, match="more than"):
        check_tree({"m": x}, "s", CheckpointError)
    y: list = []
    y.append(y)
    with pytest.raises(CheckpointError, match="reference cycle"):
        check_tree([y], "s", CheckpointError)
    check_tree({"a": [INT_BOUND - 1, -INT_BOUND]}, "s")
    with pytest.raises(ConfigError, match=r"s: a\.1: integer out of range"):
        check_tree({"a": [0, INT_BOUND]}, "s", ConfigError)
    with pytest.raises(ConfigError, match=r"seed: integer out of range"):
        parse_yaml("seed: 1" + "0" * 400, "x", ConfigError)
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_json('{"a": ' + "1" * 5000 + "}", "x", ConfigError)  # past Python's int-string limit
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        parse_json('{"a": 1, "a": 2}', "x", ConfigError)
    assert MAX_NODES == 1_000_000


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """No writer ever opens the FIFO: a reader that opened it for reading would block forever. The call
    runs in a thread; it must come back within 5 s (it takes milliseconds)."""
    fifo = tmp_path / "stats.json"
    os.mkfifo(fifo)
    result: list[BaseException | None] = []

    def read() -> None:
        try:
            read_bytes(fifo, CheckpointError)
            result.append(None)
        except BaseException as exc:  # noqa: BLE001
            result.append(exc)

    th = threading.Thread(target=read, daemon=True)
    th.start()
    th.join(5.0)
    assert result and isinstance(result[0], CheckpointError)
    assert "a FIFO, not a regular file" in str(result[0])
    with pytest.raises(ConfigError, match="a FIFO"):
        check_regular(fifo, ConfigError)
    with pytest.raises(ConfigError, match="a directory"):
        load_yaml(tmp_path, ConfigError)
    with pytest.raises(ConfigError, match="character device"):
        check_regular("/dev/null", ConfigError)


def test_sizes_are_capped_before_reading(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("a: 1\n" + "#" * 200, encoding="utf-8")
    assert read_bytes(p, max_bytes=300).startswith(b"a: 1")
    with pytest.raises(ConfigError, match="more than the 100 bytes"):
        read_bytes(p, ConfigError, max_bytes=100)
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path / "none.yaml", ConfigError, missing="config file not found: none.yaml")


def test_hdf5_open_errors_are_named_for_what_they_are() -> None:
    locked = BlockingIOError(11, "Unable to synchronously open file (unable to lock file, errno = 11)")
    assert "locked" in h5_problem(locked)
    assert "permission denied" in h5_problem(PermissionError(13, "Permission denied"))
    # "sblock" holds "lock": a truncated file is still reported as damage
    cut = OSError("Unable to synchronously open file (truncated file: eof = 1, sblock->base_addr = 0, "
                  "stored_eof = 2)")
    assert "truncated or corrupted" in h5_problem(cut)


def test_an_unreadable_file_is_reported_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permission denied is named, not taken for damage (the tests run as root, which reads anything, so the
    kernel's answer is imitated: os.access says no, os.open raises EACCES)."""
    p = tmp_path / "data.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ConfigError, match="permission denied"):
        check_regular(p, ConfigError)

    def denied(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(ConfigError, match="data.h5: permission denied"):
        read_bytes(p, ConfigError)
