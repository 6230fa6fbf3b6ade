"""Progress for people: a live line on stderr, and the clock of a training run.

`Progress` keeps one line on stderr up to date. On a terminal it redraws in place (a carriage
return, at most every `every_s`); when stderr is piped to a file or a log collector it is
silent, unless the caller asks for `piped_every_s`: then it writes a plain line (no carriage
returns, no escape codes) at most that often, so `fwpipe prepare ... 2>&1 | tee log` still shows
how far it got. A forced update (a new phase) is drawn at once on a terminal; piped, every line keeps the pace.

`RunClock` is the training log's clock: iteration i/N, time elapsed and an ETA from the average
pace since the run (or the resume) began, which counts the evals and checkpoints too.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from fwpipe.fmt import clock


class Progress:
    def __init__(
        self,
        total: float | None = None,
        *,
        enabled: bool | None = None,
        every_s: float = 0.5,
        piped_every_s: float | None = None,
    ):
        self.total = total
        tty = sys.stderr.isatty()
        self.enabled = (tty or piped_every_s is not None) if enabled is None else enabled
        self.live = tty if enabled is None else bool(enabled)  # enabled=True: the caller asks for the live line
        self.every_s = every_s if self.live or piped_every_s is None else piped_every_s
        self.t0 = time.perf_counter()
        self._last = 0.0 if self.live else self.t0  # piped: the first line after every_s, none for a short run
        self._shown = False

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def eta(self, done: float) -> float | None:
        if not self.total or done <= 0:
            return None
        return self.elapsed() * (self.total - done) / done

    def update(self, text: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if (self.live and force) is False and now - self._last < self.every_s:
            return  # piped lines keep their pace even for a forced update: a log gets a line per few seconds
        self._last = now
        if self.live:
            sys.stderr.write("\r\x1b[2K" + text[:160])
        else:
            sys.stderr.write(text[:160] + "\n")  # piped: one plain line per update
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self.enabled and self.live and self._shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()


class RunClock:
    """`iter 120/14,496 | ... | 0:42 elapsed, ETA 1:23:05` for the training log lines."""

    def __init__(self, total_iters: int, start_iter: int = 0, *, now: Callable[[], float] = time.perf_counter):
        self.total, self.start, self.now = total_iters, start_iter, now
        self.t0 = now()

    def iteration(self, it: int) -> str:
        return f"{it:,}/{self.total:,}"

    def elapsed(self) -> float:
        return self.now() - self.t0

    def eta(self, it: int) -> float | None:
        """Seconds left at the average pace since the start; None before the first iteration."""
        done = it - self.start
        if done <= 0:
            return None
        return self.elapsed() * max(self.total - it, 0) / done

    def text(self, it: int) -> str:
        return f"{clock(self.elapsed())} elapsed, ETA {clock(self.eta(it))}"
