"""The Executor protocol and the inline executor, the reference every other executor must equal.

A unit function is a top-level function of plain, picklable arguments that writes its outputs
atomically and returns a small result. Every executor returns the results in the order of the
units, never in the order they finish, so nothing downstream depends on where or when a unit
ran: the bytes written are the same for any number of workers, processes or nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol


class Executor(Protocol):
    """Runs `fn(*args)` for each args tuple; `map` yields results in input order."""

    workers: int
    remote: bool  # whether units run on other machines (then their files must be on storage every node mounts)

    def map(self, fn: Callable[..., Any], units: Iterable[tuple], *, window: int | None = None) -> Iterator[Any]: ...

    def check_storage(self, write_dirs: Iterable[str | Path], read_files: Iterable[str | Path] = ()) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc) -> None: ...


class ExecutorBase:
    """What every executor shares: one machine, nothing to check, nothing to close."""

    workers = 1
    remote = False

    def check_storage(self, write_dirs: Iterable[str | Path], read_files: Iterable[str | Path] = ()) -> None:
        """Raise unless every machine that runs units can write and read in write_dirs and sees
        read_files; one machine (inline, local processes) has nothing to check."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Inline(ExecutorBase):
    """Every unit in this process, in order."""

    def map(self, fn: Callable[..., Any], units: Iterable[tuple], *, window: int | None = None) -> Iterator[Any]:
        for args in units:
            yield fn(*args)


INLINE = Inline()
