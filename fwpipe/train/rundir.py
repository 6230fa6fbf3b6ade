"""The run directory: what makes a directory fwpipe's, one train at a time, no writes through links.

A directory is a fwpipe run directory when it holds `run.json` ({"kind": "fwpipe-run", ...}),
which train writes before any other file. Also taken as one: a missing or empty directory (train
creates the run in it), and a directory whose every entry carries one of the run's file names
and that holds last.pt (a run made before run.json existed, or a checkpoint copied to a new
machine). Anything else is refused before a byte is written: fwpipe never writes into a
directory it did not make.

While a run trains it holds an exclusive flock on the directory (as prepare does on a dataset),
so a second train into it is refused. Every file is written under its own name in the directory
itself and never through a symbolic link: a link among the run's names is refused, because
writing through it would overwrite a file outside the run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from fwpipe import __version__
from fwpipe.atomic import lock_dir, write_bytes
from fwpipe.atomic import temp_name as _temp_name
from fwpipe.errors import OutputError

RUN_JSON, PLAN_JSON, CONFIG_TOML, METRICS, LOSS_PNG, LAST, BEST = (
    "run.json",
    "plan.json",
    "config.toml",
    "metrics.jsonl",
    "loss.png",
    "last.pt",
    "best.pt",
)
FILES = (RUN_JSON, PLAN_JSON, CONFIG_TOML, METRICS, LOSS_PNG, LAST, BEST)
KIND = "fwpipe-run"
HINT = "free disk space, or pass --out on a writable disk"


REPORT_HTML = "report.html"  # written by `fwpipe report RUN`, not by train
OURS = set(FILES) | {REPORT_HTML} | {_temp_name(n) for n in (*FILES, REPORT_HTML)}


def _is_marker(path: Path) -> bool:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == KIND


def _refuse_links(out: Path, names: list[str]) -> None:
    for name in names:
        if name in OURS and (out / name).is_symlink():
            raise OutputError(
                f"{out / name} is a symbolic link; fwpipe never writes through a link in a run directory",
                "remove the link, or pass another --out",
            )


def inspect(out: Path) -> bool:
    """True if `out` holds a fwpipe run, False if it is missing or empty; else OutputError."""
    if not out.exists():
        if out.is_symlink():
            raise OutputError(f"--out {out} is a broken symbolic link", "pass a directory path for --out")
        return False
    if not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a run directory", "pass a directory path for --out")
    try:
        names = sorted(os.listdir(out))
    except OSError as e:
        raise OutputError(f"cannot read {out}: {e.strerror or e}", "pass another --out") from e
    if not names:
        return False
    _refuse_links(out, names)
    if RUN_JSON in names and _is_marker(out / RUN_JSON):
        return True
    if set(names) <= OURS and LAST in names:
        return True  # a run from before run.json, or a checkpoint copied here alone
    others = [n for n in names if n not in OURS] or names  # or only run names, without run.json or last.pt
    raise OutputError(
        f"--out {out} holds files that are not a fwpipe training run's ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''})",
        "pass a new or empty directory, or the --out of an earlier fwpipe run",
    )


def _lock(out: Path) -> int:
    """An open descriptor of `out` holding an exclusive flock (released when it is closed)."""
    return lock_dir(
        out,
        busy="another fwpipe train is writing this run directory",
        hint="wait for it to finish, or stop it and continue with --resume",
        open_hint="pass another --out",
    )


def check_unlocked(out: Path) -> None:
    """Refuse now, before the plan is printed, if another train holds `out` (train takes the lock for real)."""
    if Path(out).is_dir():
        os.close(_lock(Path(out)))


class RunDir:
    """A claimed run directory: locked until close(); writes only its own names, never through links."""

    def __init__(self, out: Path, fd: int):
        self.out, self._fd = out, fd

    @classmethod
    def claim(cls, out: Path) -> RunDir:
        """Create or adopt `out`, lock it, and mark it with run.json."""
        out = Path(out)
        inspect(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create the run directory {out}: {e.strerror or e}", HINT) from e
        rd = cls(out, _lock(out))
        try:
            inspect(out)  # again under the lock: the other train may have written meanwhile
            rd.write_json(RUN_JSON, {"kind": KIND, "fwpipe_version": __version__, "files": list(FILES)})
        except BaseException:
            rd.close()
            raise
        return rd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the flock
            self._fd = -1

    def path(self, name: str) -> Path:
        """The path of one of the run's files, refused if it or its temp file is a link."""
        assert name in FILES, name
        _refuse_links(self.out, [name, _temp_name(name)])
        return self.out / name

    @contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        """Yield the checked path of `name`; any OSError while writing it becomes one OutputError."""
        path = self.path(name)
        try:
            yield path
        except OSError as e:  # e.g. EROFS from a temp-file cleanup that hid the first error
            raise OutputError(f"cannot write {path}: {e.strerror or e}", HINT) from e

    def write_bytes(self, name: str, data: bytes) -> None:
        with self.writing(name) as path:
            write_bytes(path, [data], hint=HINT)

    def write_json(self, name: str, obj) -> None:
        self.write_bytes(name, json.dumps(obj, indent=2, default=str).encode() + b"\n")

    def open_append(self, name: str) -> BinaryIO:
        """`name` opened for appending, never through a link (O_NOFOLLOW)."""
        with self.writing(name) as path:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            return os.fdopen(fd, "ab", buffering=0)

    def read_text(self, name: str) -> str | None:
        path = self.path(name)
        try:
            return path.read_text()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise OutputError(f"cannot read {path}: {e.strerror or e}", "pass another --out") from e
