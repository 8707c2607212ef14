"""Where a campaign's cases run: local worker processes or a Dask cluster; each yields (spec, result).

Local workers are spawned (no fork of a threaded parent), die with their parent (``procs.worker_init``)
and are terminated when the campaign stops early (an error, Ctrl-C, SIGTERM): nothing is left running.
A Dask scheduler is probed with a bounded handshake before anything is created: an address that accepts a
connection but never answers is refused after ``timeout_s`` (``distributed.Client`` alone waits forever).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from wavesurrogate.errors import UserError
from wavesurrogate.procs import deferred_signals, stop_pool, worker_init

__all__ = ["run_local", "probe_scheduler", "run_dask"]

# After a SIGKILL nothing can clean up; the resource tracker then unlinks the pool's semaphores itself and
# would say so on the terminal, in two lines, after the command has ended.
QUIET_TRACKER = "ignore::UserWarning:multiprocessing.resource_tracker"


def run_local(fn: Callable[..., Any], cfg: Any, specs: list[Any], workers: int) -> Iterator[tuple[Any, Any]]:
    """``(spec, fn(cfg, spec))`` in completion order, in this process (workers <= 1) or a process pool."""
    if workers <= 1 or len(specs) <= 1:
        for spec in specs:
            yield spec, fn(cfg, spec)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    if QUIET_TRACKER not in sys.warnoptions:  # passed to the resource tracker and workers when spawned
        sys.warnoptions.append(QUIET_TRACKER)
    with deferred_signals() as check:  # signals act only at the check() calls, never inside the pool's code
        pool = ProcessPoolExecutor(max_workers=min(workers, len(specs)), mp_context=ctx,
                                   initializer=worker_init, initargs=(os.getpid(),))
        finished = False
        try:
            futures = {pool.submit(fn, cfg, spec): spec for spec in specs}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                check()
                for fut in done:
                    yield futures[fut], fut.result()
                    check()
            finished = True
        finally:
            if finished:
                pool.shutdown(wait=True)
            else:  # an error, a signal, or the consumer stopped: no worker may outlive this
                stop_pool(pool)


async def _identity(address: str, timeout_s: float) -> dict:
    from distributed.comm import connect

    comm = await connect(address, timeout=timeout_s)
    try:
        await comm.write({"op": "identity"})
        return await comm.read()
    finally:
        comm.abort()


def probe_scheduler(address: str, timeout_s: float) -> None:
    """UserError (one line) unless a Dask scheduler at ``address`` answers within ``timeout_s`` seconds."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UserError("--scheduler needs dask[distributed]: pip install 'wavesurrogate[dask]'") from None
    try:
        reply = asyncio.run(asyncio.wait_for(_identity(address, timeout_s), timeout_s))
    except TimeoutError:
        raise UserError(f"--scheduler: no answer from Dask scheduler {address!r} within {timeout_s:g} s") \
            from None
    except Exception as exc:  # noqa: BLE001  refused, unresolvable, garbage on the wire: all one line
        raise UserError(f"--scheduler: cannot connect to Dask scheduler {address!r} ({type(exc).__name__})") \
            from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        raise UserError(f"--scheduler: {address!r} is not a Dask scheduler")


def run_dask(fn: Callable[..., Any], cfg: Any, specs: list[Any], address: str, timeout_s: float
             ) -> Iterator[tuple[Any, Any]]:
    """``(spec, fn(cfg, spec))`` in completion order on the Dask cluster of scheduler ``address``."""
    from distributed import Client
    from distributed import as_completed as dask_as_completed

    try:
        client = Client(address, timeout=f"{timeout_s}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(f"--scheduler: cannot connect to Dask scheduler {address!r} ({type(exc).__name__})") \
            from None
    with client:
        futures = {client.submit(fn, cfg, spec, pure=False): spec for spec in specs}
        try:
            for fut in dask_as_completed(list(futures)):
                yield futures[fut], fut.result()
        finally:
            client.cancel(list(futures))
