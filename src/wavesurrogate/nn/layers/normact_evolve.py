"""Mutations of norm–activation graphs (``normact``) for the evolutionary search, and their canonical form.

Three mutations, as in Liu et al. 2020 (arXiv 2004.02967): replace a node's op by another of the same arity
(a moment may change its op or its axes), rewire one input of a node to an earlier node or ``x`` (the graph
stays acyclic), insert a new node on an edge (a unary op or moment of the edge's source, or a binary op of
it and an earlier node or a new per-channel parameter). Every choice is drawn from the ``numpy`` generator
passed in, so a seed fixes the child. ``canonical`` renames the nodes the output needs in topological order
(``n0``, ``n1``, ...) and drops the rest: two equal graphs get equal JSON.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.normact import AXES, BINARY, MOMENTS, UNARY, NormAct, parse_graph

__all__ = ["MUTATIONS", "canonical", "graph_key", "mutate"]

MUTATIONS = ("replace", "rewire", "insert")
_UNARY = (*UNARY, "sqrt")
_SEARCH_AXES = tuple(a for a in AXES)


def canonical(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with only the nodes its output needs, renamed ``n0..`` in topological order."""
    nodes, order, out, _ = parse_graph(spec)
    names = {"x": "x", **{n: f"n{i}" for i, n in enumerate(order)}}
    new = {}
    for n in order:
        node = {k: v for k, v in nodes[n].items() if k != "in"}
        if "in" in nodes[n]:
            node["in"] = [names[i] for i in nodes[n]["in"]]
        new[names[n]] = node
    return {"nodes": new, "out": names[out]}


def graph_key(spec: dict[str, Any]) -> str:
    """A string equal for equal graphs (canonical JSON, sorted keys)."""
    return json.dumps(canonical(spec), sort_keys=True, separators=(",", ":"))


def _choice(rng: np.random.Generator, items: list[Any] | tuple[Any, ...]) -> Any:
    return items[int(rng.integers(len(items)))]


def _new_node(rng: np.random.Generator, src: str, earlier: list[str],
              params: dict[str, Any]) -> dict[str, Any]:
    """A random node reading ``src`` (and, if binary, an earlier node, ``x`` or a new parameter)."""
    kind = _choice(rng, ("unary", "binary", "moment"))
    if kind == "unary":
        return {"op": _choice(rng, _UNARY), "in": [src]}
    if kind == "moment":
        return {"op": _choice(rng, MOMENTS), "in": [src], "axes": _choice(rng, _SEARCH_AXES)}
    other = _choice(rng, [*earlier, "x", "param"])
    if other == "param":
        other = f"p{len(params)}_{int(rng.integers(1 << 30))}"
        params[other] = {"op": "param", "init": float(_choice(rng, (0.0, 1.0)))}
    pair = [src, other] if rng.random() < 0.5 else [other, src]
    return {"op": _choice(rng, tuple(BINARY)), "in": pair}


def _mutate_once(spec: dict[str, Any], rng: np.random.Generator) -> tuple[dict[str, Any], str]:
    nodes, order, out, _ = parse_graph(spec)
    nodes = copy.deepcopy({n: nodes[n] for n in order})
    kind = _choice(rng, MUTATIONS) if order else "insert"
    if kind == "replace":
        name = _choice(rng, order)
        node = nodes[name]
        op = node["op"]
        if op in MOMENTS:
            if rng.random() < 0.5:
                node["op"] = "var" if op == "mean" else "mean"
            else:
                node["axes"] = _choice(rng, [a for a in _SEARCH_AXES if a != node["axes"]])
            node.pop("groups", None)
        elif op == "param":
            node["init"] = 1.0 - float(node.get("init", 1.0)) if node.get("init", 1.0) in (0.0, 1.0) else 1.0
        elif op == "const":
            node["value"] = float(_choice(rng, (0.0, 0.5, 1.0, 2.0)))
        else:
            pool = _UNARY if op in _UNARY else tuple(BINARY)
            node["op"] = _choice(rng, [o for o in pool if o != op])
            node.pop("eps", None)
        new = {"param": f"init {node.get('init')}", "const": f"value {node.get('value')}"}.get(op, node["op"])
        if op in MOMENTS:
            new = f"{node['op']} over {node['axes']}"
        return {"nodes": nodes, "out": out}, f"replace {name}: {op} -> {new}"
    if kind == "rewire":
        readers = [n for n in order if nodes[n].get("in")]
        if not readers:
            return _mutate_once({"nodes": nodes, "out": out}, rng)  # nothing to rewire: insert instead
        name = _choice(rng, readers)
        slot = int(rng.integers(len(nodes[name]["in"])))
        earlier = ["x", *order[: order.index(name)]]
        new = _choice(rng, earlier)
        old = nodes[name]["in"][slot]
        nodes[name]["in"][slot] = new
        return {"nodes": nodes, "out": out}, f"rewire {name}[{slot}]: {old} -> {new}"
    # insert on an edge (reader, slot) or after the output
    edges = [(n, s) for n in order for s in range(len(nodes[n].get("in", [])))] + [("", 0)]
    reader, slot = _choice(rng, edges)
    src = out if reader == "" else nodes[reader]["in"][slot]
    earlier = order if reader == "" else order[: order.index(reader)]
    params: dict[str, Any] = {}
    new_name = f"m{len(nodes)}_{int(rng.integers(1 << 30))}"
    node = _new_node(rng, src, [e for e in earlier if e != src], params)
    nodes.update(params)
    nodes[new_name] = node
    if reader == "":
        out = new_name
    else:
        nodes[reader]["in"][slot] = new_name
    return {"nodes": nodes, "out": out}, f"insert {node['op']} on {src} -> {reader or 'out'}"


def mutate(spec: dict[str, Any], rng: np.random.Generator, *, channels: int = 8, max_nodes: int = 24,
           attempts: int = 100) -> tuple[dict[str, Any], str]:
    """(canonical child, what changed): the first of ``attempts`` random mutations that gives a valid graph
    of at most ``max_nodes`` nodes different from ``spec`` (ConfigError if none does)."""
    key = graph_key(spec)
    for _ in range(attempts):
        try:
            child, what = _mutate_once(spec, rng)
            child = canonical(child)
            NormAct(child, channels)  # shapes and groups on a real width
        except ConfigError:
            continue
        if len(child["nodes"]) <= max_nodes and graph_key(child) != key:
            return child, what
    raise ConfigError(f"normsearch: no valid mutation of {key[:80]} in {attempts} attempts")
