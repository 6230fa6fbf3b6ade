"""Where work units run: in this process, on a local process pool, or as Ray tasks.

A unit function is a top-level function of plain, picklable arguments that writes its outputs
atomically and returns a small result. Every executor returns the results in the order of the
units, never in the order they finish, so nothing downstream depends on where or when a unit
ran: the bytes written are the same for any number of workers, processes or nodes.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

log = logging.getLogger(__name__)


class Executor:
    """Runs `fn(*args)` for each args tuple; `map` yields results in input order."""

    workers = 1
    remote = False  # whether units run on other machines (then their files must be on storage every node mounts)
    forks = False  # whether workers are forked from this process (see engine.sign: not after numba's OpenMP started)

    def map(self, fn: Callable[..., Any], units: Iterable[tuple], *, window: int | None = None) -> Iterator[Any]:
        for args in units:  # inline: the reference every other executor must equal
            yield fn(*args)

    def check_storage(self, write_dirs: Iterable[str | Path], read_files: Iterable[str | Path] = ()) -> None:
        """Raise unless every machine that runs units can write and read in write_dirs and sees
        read_files; one machine (inline, local processes) has nothing to check."""

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """A pool of `workers` processes; at most `window` units in flight (default 2 per worker)."""

    forks = True

    def __init__(self, workers: int, start_method: str = "fork"):
        self.workers = workers
        self.start_method = start_method
        self.units_run = 0  # units this pool ran (tests check the pool did the work)
        self._pool: ProcessPoolExecutor | None = None

    @property
    def running(self) -> bool:
        """Whether the workers exist already (a forking pool forks all of them at its start)."""
        return self._pool is not None

    def start(self) -> "LocalExecutor":
        """Start the workers now. Forked while this process runs no OpenMP threads (numba's),
        they may run numba's parallel kernels; libgomp breaks a child forked after them."""
        if self._pool is None:
            import multiprocessing

            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context(self.start_method),
                                             initializer=_die_with_parent, initargs=(os.getpid(),))  # fmt: skip
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


# the units are CPU-bound (tokenizing, MinHash): past 2 processes a core only memory grows (a
# second one a core covers a streamed input's network waits); --workers 128 forked 128 processes
WORKERS_PER_CPU = 2


def cap_workers(workers: int | None, units: int | None = None) -> int:
    """--workers as run: default all cores, never more than WORKERS_PER_CPU a core, nor than `units`."""
    n = workers or os.cpu_count() or 1
    cap = WORKERS_PER_CPU * (os.cpu_count() or 1)
    if units is not None:
        cap = min(cap, max(units, 1))
    if n > cap:
        log.warning("--workers %d: running %d (%s)", n, cap, f"{units} units of work" if units is not None and cap == max(units, 1)
                    else f"{WORKERS_PER_CPU} a core on {os.cpu_count()} cores")  # fmt: skip
    return min(n, cap)


def make_executor(workers: int | None = None, ray_address: str | None = None, *, units: int | None = None) -> Executor:
    """The executor the CLI's --workers / --ray choose: Ray tasks, processes, or inline."""
    if ray_address is not None:
        from fwpipe.raycluster import RayExecutor  # optional extra: pip install 'fwpipe[ray]'

        return RayExecutor(ray_address)
    workers = cap_workers(workers, units)
    if workers <= 1:
        return Executor()
    # started here, before any work: the CLI makes its executor before numba's threads exist
    return LocalExecutor(workers).start()
