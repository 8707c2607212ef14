"""Evolutionary search of norm–activation graphs for forecast surrogates (``wavesurrogate normsearch``).

After EvoNorms (Liu, Brock, Simonyan & Le 2020, arXiv 2004.02967), on this project's networks and data:

1. Seeds: built-in layers (``seeds``, default all of ``normact.BUILTIN``; gn_gelu first, the reference);
   then each candidate is the mutation (``normact_evolve.mutate``) of a tournament
   winner: ``tournament`` candidates drawn from the newest ``population`` accepted ones, the winner the one
   with the lowest mean log-ratio among those no other drawn candidate Pareto-dominates.
2. Rejection protocols, in order: the quality gate (``quality.epochs`` of training on the first
   architecture; rejected when its best validation loss exceeds ``quality.max_ratio`` × GroupNorm+GELU's
   after the same training, or diverges); the stability gate (``stability.epochs`` on the first architecture
   at ``stability.lr_factor`` × its rate, no clipping; rejected when the loss becomes non-finite or the last
   epoch's mean step loss exceeds ``stability.max_ratio`` × GroupNorm+GELU's at the same rate).
3. Fitness of a survivor: ``epochs`` of training on every architecture of ``archs`` (same seed, data,
   schedule); per architecture log(best val loss / GroupNorm+GELU's); the objective vector of these
   log-ratios (multi-objective: Pareto rank) and their mean (scalar: lower is better).
Determinism: every random choice of candidate ``i`` comes from ``numpy.random.default_rng([seed, i])``;
every training is the project's deterministic loop (``train_or_reuse``: a run killed part-way is resumed bit
for bit). Resumable: ``state.json`` in ``work`` is rewritten atomically after each evaluated candidate; a
search restarted with the same config continues from it and ends with the same state.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from wavesurrogate.config.base import load_config
from wavesurrogate.config.normsearch import NormSearchConfig
from wavesurrogate.errors import ConfigError, TrainingDiverged
from wavesurrogate.io import to_json, write_json
from wavesurrogate.nn.layers.normact import BUILTIN
from wavesurrogate.nn.layers.normact_evolve import canonical, graph_key, mutate
from wavesurrogate.runs.layout import read_json, read_metrics
from wavesurrogate.safeload import parse_json

__all__ = ["pareto_ranks", "run_search", "run_search_from_config", "summary", "train_config"]

STATE, TIMING = "state.json", "timing.json"


def train_config(cfg: NormSearchConfig, arch_index: int, graph: dict[str, Any], out: Path, *,
                 epochs: int, lr_factor: float = 1.0, step_losses: bool = False) -> Any:
    """The training config of ``graph`` on architecture ``arch_index`` (same seed, data and schedule)."""
    from wavesurrogate.train.loop import config_from_dict

    arch = cfg.archs[arch_index]
    if "norm" in arch.kwargs:
        raise ConfigError(f"archs[{arch_index}].kwargs: norm is what the search chooses; remove it")
    return config_from_dict({
        "name": out.name, "seed": cfg.seed, "out": str(out), "data": {**cfg.data, "task": cfg.task},
        "model": {"name": arch.model, "kwargs": {**arch.kwargs, "norm": {"graph": graph}}},
        "optim": {"name": "adam", "lr": arch.lr * lr_factor}, "schedule": {"name": "cosine", "min_lr": 1e-5},
        "epochs": epochs, "batch_size": cfg.batch_size, "num_threads": cfg.num_threads, "progress": False,
        "log_step_losses": step_losses})


def _num(v: float | None) -> float:
    """A stored number; None (how JSON keeps a non-finite one) reads as infinity."""
    return math.inf if v is None else float(v)


def _best_val(run: Path) -> float:
    vals = [m["val_loss"] for m in read_metrics(run) if m.get("val_loss") is not None]
    return min(vals) if vals and all(math.isfinite(v) for v in vals) else math.inf


def _train(tcfg: Any) -> tuple[Path, bool]:
    """(run dir, diverged?) of one training through the project's loop."""
    from wavesurrogate.train.loop import train_or_reuse

    try:
        return train_or_reuse(tcfg)[0], False
    except TrainingDiverged:
        return Path(tcfg.out), True


def _quality(cfg: NormSearchConfig, graph: dict[str, Any], runs: Path) -> float:
    run, diverged = _train(train_config(cfg, 0, graph, runs / "quality", epochs=cfg.quality.epochs))
    return math.inf if diverged else _best_val(run)


def _stable(cfg: NormSearchConfig, graph: dict[str, Any], runs: Path) -> dict[str, Any]:
    """Stability gate: loss of the first step and of the last epoch at the large rate; diverged?"""
    tcfg = train_config(cfg, 0, graph, runs / "stability", epochs=cfg.stability.epochs,
                        lr_factor=cfg.stability.lr_factor, step_losses=True)
    run, diverged = _train(tcfg)
    rows = read_metrics(run)
    if diverged or not rows:
        return {"first_loss": None, "last_loss": None, "diverged": True}
    first = float(rows[0]["step_losses"][0])
    last = float(np.mean(rows[-1]["step_losses"]))
    ok = math.isfinite(last) and math.isfinite(_best_val(run))
    return {"first_loss": first, "last_loss": last, "diverged": not ok}


def _fitness(cfg: NormSearchConfig, graph: dict[str, Any], runs: Path) -> list[float]:
    losses = []
    for a, arch in enumerate(cfg.archs):
        run, diverged = _train(train_config(cfg, a, graph, runs / arch.label, epochs=cfg.epochs))
        losses.append(math.inf if diverged else _best_val(run))
    return losses


def evaluate_candidate(cfg: NormSearchConfig, graph: dict[str, Any], runs: Path,
                       ref: dict[str, Any] | None) -> dict[str, Any]:
    """Gates and fitness of ``graph`` (``ref``: GroupNorm+GELU's record; None while evaluating it)."""
    rec: dict[str, Any] = {"quality_loss": _quality(cfg, graph, runs)}
    ref_q = rec["quality_loss"] if ref is None else _num(ref["quality_loss"])
    rec["quality_ratio"] = rec["quality_loss"] / ref_q if math.isfinite(ref_q) and ref_q > 0 else math.inf
    if ref is not None and not rec["quality_ratio"] <= cfg.quality.max_ratio:
        return {**rec, "status": "rejected_quality"}
    rec["stability"] = st = _stable(cfg, graph, runs)
    if ref is not None:
        ref_last = _num((ref.get("stability") or {}).get("last_loss"))
        st["ratio"] = st["last_loss"] / ref_last if not st["diverged"] and ref_last > 0 else math.inf
        if not st["ratio"] <= cfg.stability.max_ratio:
            return {**rec, "status": "rejected_stability"}
    rec["losses"] = _fitness(cfg, graph, runs)
    base = rec["losses"] if ref is None else [_num(v) for v in ref["losses"]]
    rec["log_ratios"] = [math.log(c / b) if math.isfinite(c) and math.isfinite(b) and b > 0 else math.inf
                         for c, b in zip(rec["losses"], base, strict=True)]
    rec["fitness"] = float(np.mean(rec["log_ratios"]))
    return {**rec, "status": "accepted" if math.isfinite(rec["fitness"]) else "diverged"}


def _dominates(a: list[float], b: list[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def pareto_ranks(points: list[list[float]]) -> list[int]:
    """Non-dominated sorting: rank 0 for the Pareto front, 1 for the front of the rest, ... (minimising)."""
    ranks, left, r = [0] * len(points), set(range(len(points))), 0
    while left:
        front = {i for i in left if not any(_dominates(points[j], points[i]) for j in left if j != i)}
        for i in front:
            ranks[i] = r
        left -= front
        r += 1
    return ranks


def _parent(cfg: NormSearchConfig, records: list[dict[str, Any]], rng: np.random.Generator) -> dict[str, Any]:
    """Tournament winner among the newest ``population`` accepted (non-duplicate) candidates."""
    pool = [r for r in records if r["status"] == "accepted" and "duplicate_of" not in r][-cfg.population:]
    if not pool:  # nothing accepted yet: mutate any evaluated graph (the built-ins first of all)
        return records[int(rng.integers(len(records)))]
    idx = rng.choice(len(pool), size=min(cfg.tournament, len(pool)), replace=False)
    drawn = [pool[int(i)] for i in sorted(idx)]
    front = [r for r in drawn if not any(_dominates(o["log_ratios"], r["log_ratios"]) for o in drawn)]
    return min(front, key=lambda r: (r["fitness"], r["index"]))


def _load_state(cfg: NormSearchConfig, work: Path) -> dict[str, Any]:
    """The stored state, or a new one. Only ``candidates`` may differ from the stored config: candidate i
    depends on the seed and the records before it, so a search extended later equals one run at once."""
    dump = cfg.model_dump(mode="json", exclude={"candidates"})
    path = work / STATE
    if not path.is_file():
        return {"config": dump, "records": []}
    state = read_json(path)
    if not isinstance(state, dict) or state.get("config") != dump:
        raise ConfigError(f"{path}: holds a search of another config (only candidates may change); use "
                          "another work directory")
    return state


def run_search(cfg: NormSearchConfig, *, stop_after: int | None = None) -> dict[str, Any]:
    """Run (or continue) the search of ``cfg`` until ``cfg.candidates`` are evaluated; its summary.
    ``stop_after``: return after that many candidates in total (as if killed; for tests)."""
    work = Path(cfg.work)
    for a in range(len(cfg.archs)):  # every architecture's training config checked before anything is written
        train_config(cfg, a, BUILTIN["gn_gelu"], work / "runs" / "check", epochs=cfg.epochs)
    state = _load_state(cfg, work)
    records: list[dict[str, Any]] = state["records"]
    width = min(int(a.kwargs.get("width", 8)) for a in cfg.archs)
    timing = read_json(work / TIMING) if (work / TIMING).is_file() else {}
    while len(records) < cfg.candidates and (stop_after is None or len(records) < stop_after):
        i = len(records)
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, i])
        if i < len(cfg.seeds):
            graph, parent, what = canonical(BUILTIN[cfg.seeds[i]]), None, f"seed {cfg.seeds[i]}"
        else:
            p = _parent(cfg, records, rng)
            graph, what = mutate(p["graph"], rng, channels=width, max_nodes=cfg.max_nodes)
            parent = p["index"]
        rec: dict[str, Any] = {"index": i, "id": f"c{i:04d}", "parent": parent, "mutation": what,
                               "graph": graph, "nodes": len(graph["nodes"])}
        same = [r for r in records if r["key"] == graph_key(graph)]
        if same:  # an equal graph was evaluated: the same training gives the same numbers
            old = same[0]
            rec.update({k: v for k, v in old.items() if k not in rec and k != "key"})
            rec["duplicate_of"] = old["index"]
        else:
            runs = work / "runs" / rec["id"]
            rec.update(evaluate_candidate(cfg, graph, runs, records[0] if records else None))
        rec["key"] = graph_key(graph)
        records.append(rec)
        # as a resumed search reads it (inf as null)
        state = parse_json(to_json(state, indent=None), "search state")
        records = state["records"]
        write_json(work / STATE, state)  # the commit point of candidate i
        shutil.rmtree(work / "runs" / rec["id"], ignore_errors=True)
        # wall seconds per candidate, beside the state (not in it: the state is what must not depend on time;
        # a candidate interrupted by a kill counts only its resumed part)
        timing[rec["id"]] = time.perf_counter() - t0
        write_json(work / TIMING, timing)
    return summary(cfg, state)


def summary(cfg: NormSearchConfig, state: dict[str, Any]) -> dict[str, Any]:
    """Counts, rejection rate of each gate, the accepted candidates' Pareto front, the best graph (``best``)
    and the best other than the reference gn_gelu (``best_found``)."""
    recs = [r for r in state["records"] if "duplicate_of" not in r]
    n = len(recs)
    q = sum(r["status"] == "rejected_quality" for r in recs)
    s = sum(r["status"] == "rejected_stability" for r in recs)
    acc = [r for r in recs if r["status"] == "accepted"]
    ranks = pareto_ranks([r["log_ratios"] for r in acc]) if acc else []
    best = min(acc, key=lambda r: (r["fitness"], r["index"])) if acc else None
    found = [r for r in acc if r["parent"] is not None or r["index"] > 0]  # all but the reference
    best_found = min(found, key=lambda r: (r["fitness"], r["index"])) if found else None
    keep = ("index", "id", "mutation", "graph", "losses", "log_ratios", "fitness", "quality_ratio")
    front = sorted(({**{k: r[k] for k in keep}, "pareto_rank": k} for r, k in zip(acc, ranks, strict=True)
                    if k == 0), key=lambda r: r["fitness"])
    seeds = {r["mutation"].removeprefix("seed "): {k: r.get(k) for k in ("status", "losses", "log_ratios",
                                                                          "fitness", "quality_ratio")}
             for r in recs if r["parent"] is None}
    return {"evaluated": len(state["records"]), "unique": n, "duplicates": len(state["records"]) - n,
            "archs": [a.label for a in cfg.archs],
            "rejected_quality": q, "rejection_rate_quality": q / n if n else None,
            "rejected_stability": s, "rejection_rate_stability": s / (n - q) if n - q else None,
            "diverged_in_fitness": sum(r["status"] == "diverged" for r in recs),
            "accepted": len(acc), "seeds": seeds, "pareto_front": front,
            "best": None if best is None else {k: best[k] for k in keep},
            "best_found": None if best_found is None else {k: best_found[k] for k in keep}}


def run_search_from_config(path: str, out: str | None = None) -> str:
    """CLI entry: run the search of config ``path``; the summary JSON text (written to ``out`` if given,
    else ``<work>/summary.json``)."""
    cfg = load_config(path, NormSearchConfig)
    res = run_search(cfg)
    write_json(out or Path(cfg.work) / "summary.json", res)
    return to_json(res)
