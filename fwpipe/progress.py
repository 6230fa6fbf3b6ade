"""A one-line progress display on stderr that stays silent when stderr is not a terminal."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: float | None = None, *, enabled: bool | None = None, every_s: float = 0.5):
        self.total = total
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.every_s = every_s
        self.t0 = time.perf_counter()
        self._last = 0.0
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
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        sys.stderr.write("\r\x1b[2K" + text[:160])
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self.enabled and self._shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
