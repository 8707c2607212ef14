"""Normalisation–activation layers as small graphs of primitives (after EvoNorms: Liu, Brock, Simonyan & Le
2020, arXiv 2004.02967).

A graph is JSON: ``{"nodes": {NAME: {"op": OP, "in": [INPUT, ...], ATTR: ...}, ...}, "out": NAME}``; an
input is ``"x"`` (the layer's input ``[B, C, *S]``) or another node's name. Primitives (``OPS``):

- leaves: ``param`` (a learnable per-channel ``[1, C, 1, ...]`` tensor, attr ``init``: its value, default
  1.0), ``const`` (attr ``value``);
- elementwise: ``neg``, ``sigmoid``, ``tanh``, ``abs``, ``square``, ``gelu``, ``sqrt`` (√(max(a, 0) + eps),
  attr ``eps``, default 1e-5), ``add``, ``sub``, ``mul``, ``div``, ``max``, ``min``;
- moments ``mean`` and ``var`` (biased) with attr ``axes``: ``batch`` (over B and S per channel; running
  estimates, momentum 0.1, used in eval mode), ``spatial`` (over S per sample and channel), ``group`` (over
  C/g channels and S; attr ``groups``, default gcd(8, C)), ``channel`` (over C per sample and position) or
  ``layer`` (over C and S per sample).

``parse_graph`` checks a spec without knowing the width: unknown primitive or attribute, wrong arity, an
undefined input, a cycle, and shapes (broadcast symbolically over (batch, channel, space): a group moment
needs a per-channel input, the output must have the input's full shape); ``NormAct`` checks that the groups
divide the channels. Each failure is a one-line ``ConfigError``. ``BUILTIN`` holds the named layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError

__all__ = ["AXES", "BUILTIN", "OPS", "NormAct", "graph_spec", "is_graph_norm", "parse_graph"]

UNARY: dict[str, Callable[[Tensor], Tensor]] = {
    "neg": torch.neg, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "abs": torch.abs, "square": torch.square,
    "gelu": F.gelu,
}  # fmt: skip
BINARY: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "max": torch.maximum,
    "min": torch.minimum,
}  # fmt: skip
MOMENTS = ("mean", "var")
AXES = ("batch", "spatial", "group", "channel", "layer")
LEAVES = ("param", "const")
OPS = (*LEAVES, *UNARY, "sqrt", *BINARY, *MOMENTS)
_ATTRS = {"param": {"init"}, "const": {"value"}, "sqrt": {"eps"}, "mean": {"axes", "groups"},
          "var": {"axes", "groups"}}
_MOMENTUM = 0.1
Shape = tuple[bool, bool, bool]  # which of (batch, channel, space) a node varies along
FULL: Shape = (True, True, True)


def _arity(op: str) -> int:
    return 0 if op in LEAVES else 2 if op in BINARY else 1


def _show(shape: Shape) -> str:
    return "[" + ", ".join(n if s else "1" for n, s in zip(("B", "C", "*S"), shape, strict=True)) + "]"


def _node_shape(name: str, node: dict[str, Any], ins: list[Shape]) -> Shape:
    """The symbolic shape of ``node`` from its inputs' (ConfigError on a mismatch)."""
    op = node["op"]
    if op == "param":
        return (False, True, False)
    if op == "const":
        return (False, False, False)
    if op not in MOMENTS:
        return tuple(any(s[i] for s in ins) for i in range(3))  # type: ignore[return-value]
    (b, c, s), axes = ins[0], node["axes"]
    if axes in ("group",) and not c:
        raise ConfigError(f"norm graph: shape mismatch: node {name!r} takes a group moment of a "
                          f"{_show(ins[0])} input; it needs one per channel [B, C, *S]")
    return {"batch": (False, c, False), "spatial": (b, c, False), "group": (b, True, False),
            "channel": (b, False, s), "layer": (b, False, False)}[axes]


def _check_node(name: str, node: Any, names: set[str]) -> None:
    """ConfigError unless ``node`` is a known primitive with the right arity, attributes and inputs."""
    if not isinstance(node, dict) or "op" not in node:
        raise ConfigError(f"norm graph: node {name!r} must be a mapping with an 'op'")
    op = node["op"]
    if op not in OPS:
        raise ConfigError(f"norm graph: node {name!r}: unknown primitive {op!r}; known: {', '.join(OPS)}")
    unknown = set(node) - {"op", "in"} - _ATTRS.get(op, set())
    if unknown:
        raise ConfigError(f"norm graph: node {name!r} ({op}): unknown attributes {sorted(unknown)}")
    ins = node.get("in", [])
    if not isinstance(ins, list) or len(ins) != _arity(op):
        raise ConfigError(f"norm graph: node {name!r}: {op!r} takes {_arity(op)} inputs, got {ins!r}")
    for i in ins:
        if not isinstance(i, str):
            raise ConfigError(f"norm graph: node {name!r}: inputs are names, got {i!r}")
        if i != "x" and i not in names:
            raise ConfigError(f"norm graph: node {name!r}: undefined input {i!r}")
    if op in MOMENTS and node.get("axes") not in AXES:
        raise ConfigError(f"norm graph: node {name!r}: axes must be one of {', '.join(AXES)}, "
                          f"got {node.get('axes')!r}")
    if "groups" in node and (node.get("axes") != "group" or isinstance(node["groups"], bool)
                             or not isinstance(node["groups"], int) or node["groups"] < 1):
        raise ConfigError(f"norm graph: node {name!r}: groups must be an integer >= 1 with axes 'group'")
    for key in ("init", "value", "eps"):
        v = node.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ConfigError(f"norm graph: node {name!r}: {key} must be a finite number, got {v!r}")
    if op == "sqrt" and node.get("eps", 1e-5) < 0:
        raise ConfigError(f"norm graph: node {name!r}: eps must be >= 0")


def parse_graph(spec: Any) -> tuple[dict[str, dict[str, Any]], list[str], str, dict[str, Shape]]:
    """(nodes, topological order of the nodes the output needs, output name, symbolic shapes);
    ConfigError when invalid."""
    if not isinstance(spec, dict) or set(spec) != {"nodes", "out"} or not isinstance(spec["nodes"], dict):
        raise ConfigError("norm graph: expected {nodes: {NAME: {op, in, ...}}, out: NAME}")
    nodes, out = spec["nodes"], spec["out"]
    if not isinstance(out, str) or not all(isinstance(n, str) for n in nodes):
        raise ConfigError("norm graph: out and the node names must be strings")
    if "x" in nodes:
        raise ConfigError("norm graph: 'x' names the input; a node cannot be called 'x'")
    for name, node in nodes.items():
        _check_node(name, node, set(nodes))
    if out != "x" and out not in nodes:
        raise ConfigError(f"norm graph: output {out!r} is not a node")
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2 or name == "x":
            return
        if state.get(name) == 1:
            cyc = path[path.index(name):] + [name]
            raise ConfigError(f"norm graph: cycle {' -> '.join(cyc)} (each node reads the next)")
        state[name] = 1
        for i in nodes[name].get("in", []):
            visit(i, [*path, name])
        state[name] = 2
        order.append(name)

    for name in nodes:  # every node, so that a cycle off the output's path is refused too
        visit(name, [])
    needed = {out}
    for name in reversed(order):
        if name in needed:
            needed.update(nodes[name].get("in", []))
    order = [n for n in order if n in needed]
    shapes: dict[str, Shape] = {"x": FULL}
    for name in order:
        shapes[name] = _node_shape(name, nodes[name], [shapes[i] for i in nodes[name].get("in", [])])
    if shapes[out] != FULL:
        raise ConfigError(f"norm graph: shape mismatch: output {out!r} has shape {_show(shapes[out])}, "
                          f"not the input's [B, C, *S]")
    return nodes, order, out, shapes


def _g(nodes: dict[str, Any], out: str) -> dict[str, Any]:
    return {"nodes": nodes, "out": out}


_AFFINE = {"gamma": {"op": "param", "init": 1.0}, "beta": {"op": "param", "init": 0.0}}
BUILTIN: dict[str, dict[str, Any]] = {
    "gn_gelu": _g({"m": {"op": "mean", "in": ["x"], "axes": "group"},
                   "v": {"op": "var", "in": ["x"], "axes": "group"},
                   "c": {"op": "sub", "in": ["x", "m"]}, "s": {"op": "sqrt", "in": ["v"]},
                   "n": {"op": "div", "in": ["c", "s"]}, **_AFFINE,
                   "ng": {"op": "mul", "in": ["n", "gamma"]}, "y": {"op": "add", "in": ["ng", "beta"]},
                   "out": {"op": "gelu", "in": ["y"]}}, "out"),
    "none_gelu": _g({"out": {"op": "gelu", "in": ["x"]}}, "out"),
    "evonorm_b0": _g({"vb": {"op": "var", "in": ["x"], "axes": "batch"}, "sb": {"op": "sqrt", "in": ["vb"]},
                      "vi": {"op": "var", "in": ["x"], "axes": "spatial"}, "si": {"op": "sqrt", "in": ["vi"]},
                      "v1": {"op": "param", "init": 1.0}, "v1x": {"op": "mul", "in": ["v1", "x"]},
                      "r": {"op": "add", "in": ["v1x", "si"]}, "d": {"op": "max", "in": ["sb", "r"]},
                      "n": {"op": "div", "in": ["x", "d"]}, **_AFFINE,
                      "ng": {"op": "mul", "in": ["n", "gamma"]}, "out": {"op": "add", "in": ["ng", "beta"]}},
                     "out"),
    "evonorm_s0": _g({"v1": {"op": "param", "init": 1.0}, "v1x": {"op": "mul", "in": ["v1", "x"]},
                      "sg": {"op": "sigmoid", "in": ["v1x"]}, "num": {"op": "mul", "in": ["x", "sg"]},
                      "vg": {"op": "var", "in": ["x"], "axes": "group"}, "s": {"op": "sqrt", "in": ["vg"]},
                      "n": {"op": "div", "in": ["num", "s"]}, **_AFFINE,
                      "ng": {"op": "mul", "in": ["n", "gamma"]}, "out": {"op": "add", "in": ["ng", "beta"]}},
                     "out"),
    "identity": _g({}, "x"),
}


def is_graph_norm(norm: Any) -> bool:
    """Whether a model's ``norm`` argument names a graph layer (a dict or a ``BUILTIN`` name)."""
    return isinstance(norm, dict) or (isinstance(norm, str) and norm in BUILTIN)


def graph_spec(norm: Any) -> dict[str, Any]:
    """The graph of ``norm``: a ``BUILTIN`` name, ``{"name": NAME}`` or ``{"graph": {...}}``."""
    if isinstance(norm, str) and norm in BUILTIN:
        return BUILTIN[norm]
    if isinstance(norm, dict) and set(norm) == {"name"}:
        if norm["name"] not in BUILTIN:
            raise ConfigError(f"model.norm.name: unknown {norm['name']!r}; known: {', '.join(BUILTIN)}")
        return BUILTIN[norm["name"]]
    if isinstance(norm, dict) and set(norm) == {"graph"}:
        return norm["graph"]
    raise ConfigError(f"model.norm: expected a name ({', '.join(BUILTIN)}), {{name: NAME}} or "
                      f"{{graph: {{nodes, out}}}}, got {norm!r}")


class NormAct(nn.Module):
    """The layer of graph ``spec`` on ``channels`` channels of ``[B, C, *S]`` inputs (any number of S)."""

    def __init__(self, spec: Any, channels: int) -> None:
        super().__init__()
        self.nodes, self.order, self.out, shapes = parse_graph(spec)
        self.channels = channels
        self.params = nn.ParameterDict()
        self.groups: dict[str, int] = {}
        for name in self.order:
            node = self.nodes[name]
            if node["op"] == "param":
                self.params[name] = nn.Parameter(torch.full((channels,), float(node.get("init", 1.0))))
            if node["op"] in MOMENTS and node["axes"] == "group":
                g = node.get("groups", math.gcd(8, channels))
                if channels % g:
                    raise ConfigError(f"norm graph: shape mismatch: node {name!r} has {g} groups, which do "
                                      f"not divide {channels} channels")
                self.groups[name] = g
            if node["op"] in MOMENTS and node["axes"] == "batch":  # per channel, or one if the input has none
                n = channels if shapes[node["in"][0]][1] else 1
                self.register_buffer(f"running_{name}", torch.full((n,), 1.0 if node["op"] == "var" else 0.0))

    def _moment(self, name: str, op: str, axes: str, a: Tensor) -> Tensor:
        """Mean or (biased) variance of ``a`` over ``axes``, kept-dims so that it broadcasts back."""
        b, c, *s = a.shape
        sp = tuple(range(2, a.ndim))
        if axes == "batch":
            run = getattr(self, f"running_{name}")
            if not self.training:
                return run.reshape(1, -1, *[1] * len(s)).to(a.dtype)
            red = (0, *sp)
            m = a.var(red, unbiased=False, keepdim=True) if op == "var" else a.mean(red, keepdim=True)
            with torch.no_grad():
                run.mul_(1 - _MOMENTUM).add_(m.detach().reshape(-1).to(run.dtype), alpha=_MOMENTUM)
            return m
        if axes == "group":
            g = self.groups[name]
            ag = a.reshape(b, g, -1)
            m = ag.var(-1, unbiased=False, keepdim=True) if op == "var" else ag.mean(-1, keepdim=True)
            return m.expand(b, g, c // g).reshape(b, c, *[1] * len(s))
        red = {"spatial": sp, "channel": (1,), "layer": (1, *sp)}[axes]
        return a.var(red, unbiased=False, keepdim=True) if op == "var" else a.mean(red, keepdim=True)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, *S]`` → ``[B, C, *S]``."""
        vals: dict[str, Tensor] = {"x": x}
        bshape = (1, -1, *[1] * (x.ndim - 2))
        for name in self.order:
            node = self.nodes[name]
            op, ins = node["op"], [vals[i] for i in node.get("in", [])]
            if op == "param":
                v = self.params[name].reshape(bshape)
            elif op == "const":
                v = x.new_tensor(float(node["value"]))
            elif op in UNARY:
                v = UNARY[op](ins[0])
            elif op == "sqrt":
                v = torch.sqrt(torch.clamp(ins[0], min=0.0) + float(node.get("eps", 1e-5)))
            elif op in BINARY:
                v = BINARY[op](ins[0], ins[1])
            else:
                v = self._moment(name, op, node["axes"], ins[0])
            vals[name] = v
        return vals[self.out]

    def extra_repr(self) -> str:
        return f"channels={self.channels}, nodes={len(self.order)}, out={self.out!r}"
