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


def main() -> None:
    ap = argparse.ArgumentParser(description=(__package_doc__ or "").splitlines()[0])
    ap.add_argument("--configs", type=int, default=1000)
    ap.add_argument("--hdf5", type=int, default=200)
    ap.add_argument("--checkpoints", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--max-memory-gb", type=float, default=6.0,
                    help="address-space limit of this process: an input that makes the package allocate more "
                         "raises MemoryError (counted as uncaught) instead of waking the OOM killer")
    ap.add_argument("--trace", action="store_true", help="print each case to stderr before running it")
    ap.add_argument("--hang-s", type=float, default=60.0,
                    help="a library or CLI call running longer is counted as a hang (the run goes on)")
    a = ap.parse_args()
    limit = int(a.max_memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    SETTINGS.update(trace=a.trace, hang_s=a.hang_s)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"seed": a.seed, "python": platform.python_version()}
    with tempfile.TemporaryDirectory(prefix="wavesurrogate-fuzz-") as tmp:
        base = mc.build_base(Path(tmp) / "base")
        ws = mc.make_workspace(base, Path(tmp) / "ws")
        with contextlib.chdir(ws):
            for kind, n, fn in (("configs", a.configs, fuzz_configs), ("hdf5", a.hdf5, fuzz_hdf5),
                                ("checkpoints", a.checkpoints, fuzz_checkpoints)):
                t1 = time.perf_counter()
                result[kind] = fn(n, np.random.default_rng([a.seed, len(kind)]), ws)
                result[kind]["seconds"] = round(time.perf_counter() - t1, 1)
    result["uncaught_total"] = sum(result[k]["uncaught"] for k in ("configs", "hdf5", "checkpoints"))
    result["hangs_total"] = sum(result[k]["hangs"] for k in ("configs", "hdf5", "checkpoints"))
    result["hang_bound_s"] = a.hang_s
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if a.out is not None:
        write_json(a.out, result)
    print(to_json(result))


if __name__ == "__main__":
    main()
