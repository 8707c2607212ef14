"""The physics import graph runs one way: backends import fd.core, never each other; checks import solvers."""

from __future__ import annotations

import ast
from pathlib import Path

import wavesurrogate.physics as physics

ROOT = Path(physics.__file__).parent


def _graph() -> dict[str, set[str]]:
    """Module → the wavesurrogate.physics modules it imports (at any depth in the file, lazy ones too)."""
    mods = {".".join(("wavesurrogate.physics", *p.relative_to(ROOT).with_suffix("").parts))
            .removesuffix(".__init__"): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                deps |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                         for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def test_physics_imports_are_acyclic_and_layered() -> None:
    graph = _graph()
    fd = "wavesurrogate.physics.fd"
    assert {f"{fd}.{m}" for m in ("core", "numpy", "devito", "boundaries", "solver")} <= set(graph)
    assert f"{fd}.core" in graph[f"{fd}.numpy"] and f"{fd}.core" in graph[f"{fd}.devito"]
    assert f"{fd}.devito" not in graph[f"{fd}.numpy"] and f"{fd}.numpy" not in graph[f"{fd}.devito"]
    assert not any("wavesurrogate.physics.checks" in deps for deps in graph.values())
    state: dict[str, int] = {}  # depth-first search: 1 on the stack, 2 done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            assert state.get(d) != 1, f"import cycle: {' -> '.join([*path, m, d])}"
            if d not in state:
                visit(d, [*path, m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])
