"""Random values and mutations of nested mappings and of YAML/JSON text, hostile ones included."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-300, 1e308, -1.0, 0.5]
HUGE_INTS = [2**31, 2**63, -(2**63), 10**30, 10**400, 10**14, -1, 0]
STRINGS = ["", "abc", "1.5", "nan", "[1, 2]", "yes", "\x00", "é", "x" * 300, "../../etc/passwd", "1.0e7"]


def rand_value(rng: np.random.Generator, depth: int = 0) -> Any:
    """A random YAML-able value: None, bools, small/huge ints, plain/special floats, strings, containers."""
    k = int(rng.integers(0, 11 if depth < 2 else 8))
    if k == 0:
        return None
    if k == 1:
        return bool(rng.integers(0, 2))
    if k == 2:
        return int(rng.integers(-3, 50))
    if k == 3:
        return HUGE_INTS[int(rng.integers(len(HUGE_INTS)))]
    if k == 4:
        return float(rng.uniform(-1e3, 1e4))
    if k == 5:
        return SPECIAL_FLOATS[int(rng.integers(len(SPECIAL_FLOATS)))]
    if k in (6, 7):
        return STRINGS[int(rng.integers(len(STRINGS)))]
    if k == 8:
        return [rand_value(rng, depth + 1) for _ in range(int(rng.integers(0, 4)))]
    if k == 9:
        lo = float(rng.uniform(0, 3000))
        return [lo, lo - float(rng.uniform(-100, 100))]  # a range, sometimes reversed
    return {str(rand_value(rng, 2)): rand_value(rng, depth + 1) for _ in range(int(rng.integers(0, 3)))}


def _paths(d: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(d, dict):
        for k, v in d.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out += _paths(v, prefix + (i,))
    return out


def _parent(d: Any, path: tuple) -> Any:
    for k in path[:-1]:
        d = d[k]
    return d


def mutate_tree(d: Any, rng: np.random.Generator) -> Any:
    """Set, delete or add one key somewhere in a nested mapping (in place); returns it."""
    paths = _paths(d)
    op = int(rng.integers(0, 4))
    if not paths or op == 3:
        target = d if not paths else _parent(d, paths[int(rng.integers(len(paths)))] + ("x",))
        if isinstance(target, dict):
            target[str(rng.choice(["colour", "nz", "lr_", "kind", "extra"]))] = rand_value(rng)
        return d
    path = paths[int(rng.integers(len(paths)))]
    parent = _parent(d, path)
    if op == 0 and isinstance(parent, dict):
        del parent[path[-1]]
    elif op == 1 and isinstance(parent[path[-1]], int | float) and not isinstance(parent[path[-1]], bool):
        v = parent[path[-1]]
        factor = float(rng.choice([-1, 0, 10, 1e6, 0.5]))
        try:
            parent[path[-1]] = type(v)(v * factor)
        except OverflowError:  # an int of 400 digits times a float
            parent[path[-1]] = v * int(factor)
    else:
        parent[path[-1]] = rand_value(rng)
    return d


def mutate_text(text: str, rng: np.random.Generator) -> str:
    """Damage YAML text: truncate, delete, duplicate or insert characters."""
    op = int(rng.integers(0, 4))
    i = int(rng.integers(0, len(text) + 1))
    if op == 0:
        return text[:i]
    if op == 1:
        return text[:i] + text[i + int(rng.integers(1, 20)):]
    if op == 2:
        junk = [":", "-", "[", "{", "'", "\t", "\n  ", "&a", "*a", "!!python/object"]
        return text[:i] + str(rng.choice(junk)) + text[i:]
    j = int(rng.integers(0, len(text) + 1))
    return text[:i] + text[min(i, j):max(i, j)] + text[i:]


# ------------------------------------------------------------------------------------ hostile text (issue 16)

HUGE_NUMBERS = ["1" + "0" * 400, "9" * 30, "-" + "9" * 20, "1.0e+308", "-1.0e+308", "1.0e-300", "1e400",
                "100000000000000", "1000000"]


def deep(rng: np.random.Generator, flow_map: bool = False) -> str:
    """A value nested 65 … 3000 levels deep (flow sequences or flow mappings)."""
    n = int(rng.choice([65, 200, 500, 3000]))
    return ("{a: " * n + "1" + "}" * n) if flow_map else "[" * n + "]" * n


def bomb(indent: str, rng: np.random.Generator) -> str:
    """A YAML alias bomb (``width`` aliases per level, ``levels`` levels) as a block mapping at ``indent``."""
    width, levels = int(rng.integers(2, 10)), int(rng.integers(8, 40))
    lines = [f"{indent}l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"{indent}l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def hostile_text(text: str, rng: np.random.Generator) -> tuple[str, str]:
    """One hostile change to YAML text: (new text, strategy). Strategies: ``deep`` nesting (under a new key
    or in place of a value), ``alias_bomb`` (top level or inside a nested mapping), ``duplicate_key``,
    ``merge_key``, ``huge_number`` (a number replaced by one of HUGE_NUMBERS)."""
    lines = text.splitlines()
    op = int(rng.integers(0, 5))
    keyed = [i for i, ln in enumerate(lines) if ":" in ln and not ln.lstrip().startswith(("#", "-"))]
    if op == 0:
        return text.rstrip("\n") + f"\nnotes: {deep(rng, bool(rng.integers(2)))}\n", "deep"
    if op == 1:
        nested = [i for i in keyed if lines[i].rstrip().endswith(":")]  # a block mapping opens here
        if nested and rng.random() < 0.7:
            i = nested[int(rng.integers(len(nested)))]
            ind = " " * (len(lines[i]) - len(lines[i].lstrip()) + 2)
            return "\n".join(lines[:i + 1]) + f"\n{ind}bomb:\n" + bomb(ind + "  ", rng) + "\n".join(
                lines[i + 1:]) + "\n", "alias_bomb"
        return text.rstrip("\n") + "\nbomb:\n" + bomb("  ", rng), "alias_bomb"
    if op == 2 and keyed:
        i = keyed[int(rng.integers(len(keyed)))]
        return "\n".join(lines[:i + 1] + [lines[i]] + lines[i + 1:]) + "\n", "duplicate_key"
    if op == 3:
        return text.rstrip("\n") + "\nbase: &b {x: 1}\nmerged: {<<: *b, y: 2}\n", "merge_key"
    import re

    nums = list(re.finditer(r"(?<![\w.])-?\d+(\.\d+)?(e[+-]?\d+)?(?![\w.])", text))
    if not nums:
        return text, "huge_number"
    m = nums[int(rng.integers(len(nums)))]
    return text[:m.start()] + str(rng.choice(HUGE_NUMBERS)) + text[m.end():], "huge_number"
