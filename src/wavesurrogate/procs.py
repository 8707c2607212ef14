"""Processes: signals become exceptions in the command, worker processes die with their parent.

- :func:`signals_raise`: inside it, SIGTERM (and SIGHUP) raise :class:`Terminated`, a KeyboardInterrupt, in
  the main thread, as Ctrl-C (SIGINT) does: ``finally`` blocks run (temporary files removed, locks and
  worker pools released) and the CLI prints one line.
- :func:`worker_init`: the initialiser of every worker process of the package. The kernel sends the worker
  SIGKILL when its parent dies, however it dies (``PR_SET_PDEATHSIG``, Linux), and the worker ignores
  SIGINT: Ctrl-C reaches the whole process group, and the parent alone decides (it stops the pool).
- :func:`stop_pool`: end a ``ProcessPoolExecutor`` now, its running tasks included.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

__all__ = ["Terminated", "signals_raise", "deferred_signals", "worker_init", "stop_pool",
           "set_parent_death_signal"]

PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM or SIGHUP (``signum``) inside :func:`signals_raise`."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise(signum: int, frame: Any) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Terminated in the main thread while inside (no-op in other threads, and for
    a signal this process inherited as ignored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # a signal ignored by whoever started us (nohup: SIGHUP) stays ignored
    sigs = [s for s in (signal.SIGTERM, signal.SIGHUP) if signal.getsignal(s) is not signal.SIG_IGN]
    old = {s: signal.signal(s, _raise) for s in sigs}
    old_hook = sys.unraisablehook
    sys.unraisablehook = _resend_from_finalizer
    try:
        yield
    finally:
        sys.unraisablehook = old_hook
        for s, h in old.items():
            signal.signal(s, h)


def _resend_from_finalizer(unraisable: Any) -> None:
    """An interrupt that landed in a finalizer (``__del__``, a weakref callback) cannot propagate: instead of
    the "Exception ignored" traceback, the signal is sent again, to act at the next instruction."""
    exc = unraisable.exc_value
    if not isinstance(exc, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)
        return
    sig = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
    timer = threading.Timer(0.01, os.kill, (os.getpid(), sig))
    timer.daemon = True
    timer.start()


@contextlib.contextmanager
def deferred_signals() -> Iterator[Callable[[], None]]:
    """Inside, SIGINT, SIGTERM and SIGHUP are recorded instead of acted on; the yielded ``check()``, called
    at safe points, re-sends the first one under the previous handlers (which raise, or end the process).

    An exception raised at an arbitrary instruction inside ``concurrent.futures`` can leave a future's lock
    held by the main thread, and the pool's manager thread then waits on it forever (a hang at shutdown,
    seen with SIGTERM during ``simulate --workers 2``). A signal left pending at exit is re-sent then.
    No-op outside the main thread; a signal inherited as ignored stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    got: list[int] = []
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    old = {s: h for s, h in old.items() if h not in (signal.SIG_IGN, None)}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)
        old.clear()

    def check() -> None:
        if got:
            sig = got[0]
            got.clear()
            restore()
            signal.raise_signal(sig)  # the previous handler runs now, at this safe point

    for s in old:
        signal.signal(s, lambda signum, frame: got.append(signum))
    try:
        yield check
    finally:
        restore()
        if got:
            signal.raise_signal(got[0])


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux); False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def worker_init(parent_pid: int) -> None:
    """Initialiser of a worker process: die with the parent ``parent_pid``, leave SIGINT to it."""
    set_parent_death_signal(signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)


_POOLS_STOPPED = [0]


def pool_stopped() -> bool:
    """Whether ``stop_pool`` ran in this process (the CLI then skips the interpreter's exit-time joins)."""
    return _POOLS_STOPPED[0] > 0


def stop_pool(pool: ProcessPoolExecutor, grace_s: float = 5.0) -> None:
    """Cancel what has not started, terminate the workers (SIGTERM, then SIGKILL after ``grace_s``), and
    shut the pool down; returns when every worker has exited."""
    _POOLS_STOPPED[0] += 1
    procs = list((getattr(pool, "_processes", None) or {}).values())
    queue = getattr(pool, "_call_queue", None)
    if queue is not None:  # its feeder thread must not block this process's exit on a pipe no worker reads
        with contextlib.suppress(Exception):
            queue.cancel_join_thread()
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(grace_s)
            if p.is_alive():
                p.kill()
                p.join()
    pool.shutdown(wait=True)
