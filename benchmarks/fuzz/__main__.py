"""``python -m benchmarks.fuzz``: see the package docstring."""

from __future__ import annotations

import argparse
import contextlib
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.fuzz import __doc__ as __package_doc__
from benchmarks.fuzz.checkpoints import fuzz_checkpoints
from benchmarks.fuzz.configs import fuzz_configs
from benchmarks.fuzz.harness import SETTINGS
from benchmarks.fuzz.hdf5 import fuzz_hdf5
from tests.bad_inputs import make_corpus as mc
from wavesurrogate.io import to_json, write_json

KINDS = ("configs", "hdf5", "checkpoints")


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two tallies of one kind (``Tally.as_dict`` + seconds) added up: counts summed, strategies summed,
    tracebacks concatenated (first five kept)."""
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[k] = round(a.get(k, 0) + v, 1) if isinstance(v, float) else a.get(k, 0) + v
        elif k == "mutations":
            out[k] = {m: a[k].get(m, 0) + b[k].get(m, 0) for m in sorted(set(a[k]) | set(b[k]))}
        elif k == "first_tracebacks":
            out[k] = (a[k] + v)[:5]
    return out


def _add_counts(total: dict[str, Any] | None, more: dict[str, Any]) -> dict[str, Any]:
    """Top-level counts of two process-fuzz results added (nested tallies: the first seed's, and
    ``procs_per_seed`` keeps each)."""
    if total is None:
        return dict(more)
    num = (int, float)
    return {k: total.get(k, 0) + v if isinstance(v, num) and not isinstance(v, bool) else total.get(k, v)
            for k, v in more.items()}


def _add_nested(a: Any, b: Any) -> Any:
    """Two process-fuzz tallies added at every level: numbers summed, dicts merged key by key, lists
    concatenated (first five kept); anything else: the first one's."""
    if a is None:
        return b
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _add_nested(a.get(k), b.get(k)) if k in a and k in b else a.get(k, b.get(k))
                for k in [*a, *(k for k in b if k not in a)]}
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return a + b
    if isinstance(a, list) and isinstance(b, list):
        return (a + b)[:5]
    return a


def merge_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result of several runs of disjoint seeds (e.g. one process per seed, so that a stopped run keeps
    the seeds already done): kinds merged, process counts added, per-seed tables joined, totals recounted."""
    out: dict[str, Any] = {"seed": results[0]["seed"], "seeds": [], "python": results[0]["python"],
                           "per_seed": {}}
    for r in results:
        if set(map(str, r["seeds"])) & set(map(str, out["seeds"])):
            raise SystemExit(f"fuzz --merge: seed {r['seeds']} appears twice")
        out["seeds"] += r["seeds"]
        out["per_seed"].update(r["per_seed"])
        for kind in KINDS:
            out[kind] = merge(out[kind], r[kind]) if kind in out else r[kind]
        if "procs" in r:
            out["procs"] = _add_nested(out.get("procs"), r["procs"])
            out.setdefault("procs_per_seed", {}).update(r.get("procs_per_seed", {}))
    kinds = [*KINDS, *(["procs"] if "procs" in out else [])]
    out["uncaught_total"] = sum(out[k].get("uncaught", 0) for k in kinds)
    out["hangs_total"] = sum(out[k].get("hangs", 0) for k in kinds)
    out["hang_bound_s"] = max(r.get("hang_bound_s", 0) for r in results)
    out["seconds"] = round(sum(r["seconds"] for r in results), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__package_doc__ or "").splitlines()[0])
    ap.add_argument("--merge", type=Path, nargs="+", default=None,
                    help="combine the JSON of earlier runs (disjoint seeds) into one result, then stop")
    ap.add_argument("--configs", type=int, default=1000)
    ap.add_argument("--hdf5", type=int, default=200)
    ap.add_argument("--checkpoints", type=int, default=100)
    ap.add_argument("--procs", type=int, default=0,
                    help="cases of benchmarks/fuzz_procs.py per seed (writers, signals; seconds each)")
    ap.add_argument("--seed", type=int, nargs="+", default=[0], help="one run of every kind per seed")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--max-memory-gb", type=float, default=6.0,
                    help="address-space limit of this process: an input that makes the package allocate more "
                         "raises MemoryError (counted as uncaught) instead of waking the OOM killer")
    ap.add_argument("--trace", action="store_true", help="print each case to stderr before running it")
    ap.add_argument("--hang-s", type=float, default=60.0,
                    help="a library or CLI call running longer is counted as a hang (the run goes on)")
    a = ap.parse_args()
    if a.merge:
        from wavesurrogate.safeload import load_json

        merged = merge_results([load_json(p) for p in a.merge])
        procs = merged.get("procs", {}).get("cases", 0) // max(1, len(merged["seeds"]))
        merged["command"] = ("for s in " + " ".join(map(str, merged["seeds"]))
                             + f"; do .venv/bin/python -m benchmarks.fuzz --seed $s --procs {procs} "
                             f"--hang-s {merged['hang_bound_s']:g} --out fuzz_s$s.json; done; "
                             ".venv/bin/python -m benchmarks.fuzz --merge fuzz_s*.json "
                             "--out benchmarks/fuzz.json")
        if a.out is not None:
            write_json(a.out, merged)
        print(to_json(merged))
        return
    limit = int(a.max_memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    SETTINGS.update(trace=a.trace, hang_s=a.hang_s)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"seed": a.seed[0], "seeds": a.seed, "python": platform.python_version(),
                              "per_seed": {}}
    with tempfile.TemporaryDirectory(prefix="wavesurrogate-fuzz-") as tmp:
        base = mc.build_base(Path(tmp) / "base")
        for seed in a.seed:
            ws = mc.make_workspace(base, Path(tmp) / f"ws{seed}")
            per: dict[str, Any] = {}
            with contextlib.chdir(ws):
                for kind, n, fn in (("configs", a.configs, fuzz_configs), ("hdf5", a.hdf5, fuzz_hdf5),
                                    ("checkpoints", a.checkpoints, fuzz_checkpoints)):
                    t1 = time.perf_counter()
                    per[kind] = fn(n, np.random.default_rng([seed, len(kind)]), ws)
                    per[kind]["seconds"] = round(time.perf_counter() - t1, 1)
                    result[kind] = merge(result[kind], per[kind]) if kind in result else per[kind]
                if a.procs:  # processes: concurrent writers of a run directory, signals (fuzz_procs.py)
                    from benchmarks.fuzz_procs import become_subreaper, fuzz_procs

                    become_subreaper()
                    (ws / "procs").mkdir()
                    t1 = time.perf_counter()
                    p = fuzz_procs(a.procs, np.random.default_rng([seed, 7]), ws / "procs")
                    p["seconds"] = round(time.perf_counter() - t1, 1)
                    result.setdefault("procs_per_seed", {})[str(seed)] = p
                    result["procs"] = _add_counts(result.get("procs"), p)
            result["per_seed"][str(seed)] = {k: {"cases": per[k]["cases"], "uncaught": per[k]["uncaught"],
                                                 "hangs": per[k]["hangs"]} for k in KINDS}
    kinds = [*KINDS, *(["procs"] if "procs" in result else [])]
    result["uncaught_total"] = sum(result[k].get("uncaught", 0) for k in kinds)
    result["hangs_total"] = sum(result[k].get("hangs", 0) for k in kinds)
    result["hang_bound_s"] = a.hang_s
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if a.out is not None:
        write_json(a.out, result)
    print(to_json(result))


if __name__ == "__main__":
    main()
