"""Units on a pool of local processes, which end when the driver does.

The pool starts when start() is called (make_executor does, before any work) or at its first
map. Unless told otherwise its workers are forked from this process, except once numba's
OpenMP threads run here: libgomp breaks a child forked after its threads started ("fork()
called from a process already using GNU OpenMP"), so the workers then start from a forkserver
instead. That is the one place the start method is decided.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor

from fwpipe.executors.base import ExecutorBase


class LocalExecutor(ExecutorBase):
    """A pool of `workers` processes; at most `window` units in flight (default 2 per worker).

    start_method: None picks fork, or forkserver once OpenMP threads run (see above).
    """

    def __init__(self, workers: int, start_method: str | None = None):
        self.workers = workers
        self.start_method = start_method
        self.units_run = 0  # units this pool ran (tests check the pool did the work)
        self._pool: ProcessPoolExecutor | None = None

    @property
    def running(self) -> bool:
        """Whether the workers exist already (a forking pool forks all of them at its start)."""
        return self._pool is not None

    def start(self) -> LocalExecutor:
        """Start the workers now (map does it when needed)."""
        if self._pool is None:
            import multiprocessing

            method = self.start_method or ("forkserver" if _openmp_started() else "fork")
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context(method),
                initializer=_die_with_parent,
                initargs=(os.getpid(),),
            )
            self._pool.submit(int).result()  # a fork pool launches every worker at its first task
        return self

    def map(self, fn, units, *, window=None):
        self.start()
        inflight: deque = deque()
        for args in units:
            inflight.append(self._pool.submit(fn, *args))
            self.units_run += 1
            if len(inflight) >= (window or 2 * self.workers):
                yield inflight.popleft().result()
        while inflight:
            yield inflight.popleft().result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def _openmp_started() -> bool:
    """Whether numba's OpenMP threading layer runs in this process (never, if numba was not imported)."""
    if "numba" not in sys.modules:
        return False
    import numba

    try:
        return numba.threading_layer() == "omp"  # raises until a parallel kernel has run
    except ValueError:
        return False


def _die_with_parent(parent: int) -> None:
    """A worker ends when the driver does, kill -9 included: it must not go on writing unit files
    (nor hold the lock on the output directory that fork copied) once a rerun has started."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):  # elsewhere: notice within a second
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if not _alive(parent):  # the driver died before the line above
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while _alive(parent):
        time.sleep(1)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # there, and someone else's: not ours, but alive
        return True
    return True
