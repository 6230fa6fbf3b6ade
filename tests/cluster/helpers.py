"""Helpers for the cluster tests: slow units, and waiting for units' files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import ray

from fwpipe.executors.ray import RayExecutor

# workers cannot import tests/ (it is not installed): they get these functions by value
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def slow_call(fn, delay: float, *args):
    time.sleep(delay)
    return fn(*args)


class SlowUnits(RayExecutor):
    """Each unit waits `delay` s before it runs: units stay in flight long enough to lose a node under them."""

    delay = 0.25

    def map(self, fn, units, *, window=None):
        return super().map(slow_call, ((fn, self.delay, *a) for a in units), window=window)


def wait_for_files(root: Path, pattern: str, n: int, alive, timeout: float = 60) -> int:
    """Wait until n files match root/pattern (while `alive`, a thread or a process, runs); how many match then."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        done = len(list(root.glob(pattern)))
        if done >= n:
            return done
        if alive is not None and not (alive.is_alive() if hasattr(alive, "is_alive") else alive.poll() is None):
            raise AssertionError("the run ended before the units were written")
        time.sleep(0.005)
    raise AssertionError(f"no {n} units in {timeout} s")


def kill_cli_after(args: list[str], address: str, root: Path, pattern: str, n: int) -> None:
    """Run `fwpipe ARGS` as a driver process of its own (finding the cluster via RAY_ADDRESS) and
    SIGKILL it once n files match root/pattern: a driver killed mid-run."""
    p = subprocess.Popen(
        [sys.executable, "-m", "fwpipe", *args],
        env={**os.environ, "RAY_ADDRESS": address},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_files(root, pattern, n, p)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
