"""Architecture: the import-linter contracts of pyproject.toml hold, and the package has no import cycle."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]

# Allow-list of tolerated import cycles (a cycle passes only if all its members lie in one allowed set).
# Empty: the last ones (physics/fd <-> fd_devito <-> boundaries) went with the physics/fd package.
KNOWN_CYCLES: set[frozenset[str]] = set()


def strongly_connected(adj: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one node (the cycles) of a directed graph (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []
    for root in sorted(adj):
        if root in index:
            continue
        work = [(root, iter(sorted(adj[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(adj.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(frozenset(comp))
    return out


def import_cycles(graph: grimp.ImportGraph) -> list[tuple[frozenset[str], list[str]]]:
    """Cycles among modules and among the children of every package, each with its level and imports."""
    mods = set(graph.modules)
    direct = {m: set(graph.find_modules_directly_imported_by(m)) & mods for m in mods}
    found = [(c, "modules") for c in strongly_connected(direct)]
    for pkg in sorted(mods):
        kids = graph.find_children(pkg)
        if len(kids) < 2:
            continue
        owner = {d: k for k in kids for d in {k, *graph.find_descendants(k)}}
        adj: dict[str, set[str]] = {k: set() for k in kids}
        for m, k in owner.items():
            adj[k] |= {owner[i] for i in direct[m] if i in owner and owner[i] != k}
        found += [(c, f"children of {pkg}") for c in strongly_connected(adj)]
    out = []
    for members, level in found:
        edges = sorted(f"{a} -> {b}" for a in members for b in members if a != b and
                       graph.direct_import_exists(importer=a, imported=b, as_packages=True))
        out.append((members, [level, *edges]))
    return out


def test_strongly_connected_on_a_small_graph() -> None:
    adj = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert sorted(map(sorted, strongly_connected(adj))) == [["a", "b", "c"], ["d", "e"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_import_linter_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, "import-linter contracts broken:\n" + capsys.readouterr().out


def test_no_import_cycles() -> None:
    cycles = import_cycles(grimp.build_graph("wavesurrogate", cache_dir=None))
    new = [(c, e) for c, e in cycles if not any(c <= known for known in KNOWN_CYCLES)]
    report = "\n".join(f"{'NEW ' if (c, e) in new else 'known '}cycle {sorted(c)} ({e[0]}):\n    "
                       + "\n    ".join(e[1:]) for c, e in cycles)
    assert not new, "import cycles found:\n" + report
