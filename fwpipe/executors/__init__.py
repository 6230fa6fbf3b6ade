"""Where work units run: inline (base.py), on a local process pool (local.py), or as Ray tasks
(ray.py, the optional extra). The CLI opens one executor with `with make_executor(...)` and
passes it down; library functions receive it and never build or swap one. `sized` is the one
rule for when a map runs inline instead.

May import: fwpipe's ground floor (errors, atomic). Nothing here imports a stage, and `ray` is
imported only when a Ray executor or check is made.
"""

from __future__ import annotations

import logging
import os

from fwpipe.executors.base import INLINE, Executor, ExecutorBase, Inline
from fwpipe.executors.local import LocalExecutor

log = logging.getLogger(__name__)

# the units are CPU-bound (tokenizing, MinHash): past 2 processes a core only memory grows (a
# second one a core covers a streamed input's network waits); --workers 128 forked 128 processes
WORKERS_PER_CPU = 2

__all__ = [
    "WORKERS_PER_CPU",
    "cap_workers",
    "Executor",
    "ExecutorBase",
    "Inline",
    "INLINE",
    "LocalExecutor",
    "make_executor",
    "sized",
]


def cap_workers(workers: int | None, units: int | None = None) -> int:
    """--workers as run: default all cores, never more than WORKERS_PER_CPU a core, nor than `units`."""
    n = workers or os.cpu_count() or 1
    cap = WORKERS_PER_CPU * (os.cpu_count() or 1)
    if units is not None:
        cap = min(cap, max(units, 1))
    if n > cap:
        why = (
            f"{units} units of work"
            if units is not None and cap == max(units, 1)
            else f"{WORKERS_PER_CPU} a core on {os.cpu_count()} cores"
        )
        log.warning("--workers %d: running %d (%s)", n, cap, why)
    return min(n, cap)


def make_executor(workers: int | None = None, ray_address: str | None = None, *, units: int | None = None) -> Executor:
    """The executor the CLI's --workers / --ray choose: Ray tasks, processes, or inline for --workers 1.

    A pool starts here, before any work, and forks: the CLI makes its executor before numba's
    OpenMP threads exist, and forked workers inherit what the driver set up (--cache-dir, loaded
    modules). A pool made later and started by its first map follows local.py's rule instead.
    """
    if ray_address is not None:
        from fwpipe.executors.ray import RayExecutor  # optional extra: pip install 'fwpipe[ray]'

        return RayExecutor(ray_address)
    workers = cap_workers(workers, units)  # never more than `units` (where known) nor 2 a core
    if workers <= 1:
        return Inline()
    return LocalExecutor(workers, start_method="fork").start()


def sized(executor: Executor, n_units: int, *, worth_a_pool: bool = True) -> Executor:
    """The executor a map of `n_units` units should use: inline for at most one unit, or (for a
    local pool) for work under one full unit's worth, where a pool's start-up (~1 s) costs
    more than it saves; otherwise `executor` itself."""
    if n_units <= 1 or (not executor.remote and not worth_a_pool):
        return INLINE
    return executor
