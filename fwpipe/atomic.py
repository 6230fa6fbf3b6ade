"""Files that appear under their final name only when whole and durable.

Every output fwpipe writes (shards, sidecars, manifests, reports, checkpoints, plots) goes
through here: a temp file beside the target, fsync, rename, fsync of the directory. A crash at
any moment leaves either the old file or the new one, never half of one.

Two rules keep a user's other files safe: a temp name is opened with O_NOFOLLOW, so a symbolic
link planted there is refused instead of written through (the rename then replaces a link at
the final name, never its target); and removing a temp file after a failure never raises, so
the error the user sees is the one that stopped the write (on a read-only filesystem even
unlinking a file that does not exist fails with EROFS, which used to hide it).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from fwpipe.errors import DiskSpaceError, OutputError
from fwpipe.fmt import size

log = logging.getLogger(__name__)

HINT = "free disk space or choose another output directory"
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)
_NOT_WRITABLE_HINT = "the directory is read-only or not yours to write; choose a writable output directory"


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def output_error(path: str | Path, e: OSError, hint: str = HINT) -> OutputError:
    """The one-line error for an OSError while writing `path`, with a hint that fits its cause."""
    if e.errno == errno.ELOOP:
        return OutputError(
            f"cannot write {path}: a symbolic link is in the way",
            "fwpipe never writes through a link inside its output; remove the link",
        )
    if e.errno == errno.ENOENT:  # not a full disk: a directory went away under the run
        return OutputError(
            f"cannot write {path}: {e.strerror or e}",
            "a directory it was writing into was removed while it ran (another process?); run the same command again",
        )
    return OutputError(
        f"cannot write {path}: {e.strerror or e}", _NOT_WRITABLE_HINT if e.errno in _NOT_WRITABLE else hint
    )


def open_new(path: str | Path) -> BinaryIO:
    """Create or truncate `path` for writing, refusing (ELOOP) to follow a symbolic link there."""
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o644
    )
    return os.fdopen(fd, "wb")


def discard(path: str | Path) -> None:
    """Remove a temp file if it is there; never raises, so it cannot hide the error being handled."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        log.debug("could not remove %s: %s", path, e)


def temp_name(name: str) -> str:
    """The name a file is written under until it is whole: hidden, beside the target."""
    return f".{name}.tmp"


def final_name(name: str) -> str:
    """The target a temp name stands for; any other name is itself."""
    return name[1:-4] if name.startswith(".") and name.endswith(".tmp") else name


class AtomicWriter:
    """A file streamed under its temp name: seal() makes it complete and durable, commit() gives
    it its final name, abort() removes it. For writers that seal a file, write other files
    (a shard's sidecars), and only then commit; atomic_file() is the usual short form.

    Every OSError becomes one OutputError naming `path`, after the temp file is gone. Cleanup
    never raises, so the error raised is always the one that stopped the write.
    """

    def __init__(self, path: str | Path, *, hint: str = HINT):
        self.path = Path(path)
        self.tmp = self.path.with_name(temp_name(self.path.name))
        self.hint = hint
        try:
            self.f = open_new(self.tmp)  # never through a symbolic link planted at the temp name
        except OSError as e:
            raise self._error(e) from e

    def _error(self, e: OSError) -> OutputError:
        self.abort()
        return output_error(self.path, e, self.hint)

    def write(self, data) -> None:
        try:
            self.f.write(data)
        except OSError as e:
            raise self._error(e) from e

    def seal(self, head: bytes = b"") -> None:
        """Overwrite the first bytes with `head` (a header whose counts are known only now), then
        flush, fsync and close."""
        try:
            if head:
                self.f.seek(0)
                self.f.write(head)
            self.f.flush()
            os.fsync(self.f.fileno())
            self.f.close()
        except OSError as e:
            raise self._error(e) from e

    def commit(self) -> None:
        if not self.f.closed:
            self.seal()
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            raise self._error(e) from e
        fsync_dir(self.path.parent)

    def abort(self) -> None:
        """Close and remove the temp file; never raises (a failing close or unlink is logged)."""
        f = getattr(self, "f", None)
        try:
            if f is not None and not f.closed:
                f.close()  # flushes what is buffered, which may fail again (ENOSPC): the fd is closed anyway
        except OSError as e:
            log.debug("could not close %s: %s", self.tmp, e)
        discard(self.tmp)


@contextmanager
def atomic_file(path: str | Path, *, hint: str = HINT) -> Iterator[BinaryIO]:
    """Yield a binary file to write; on a clean exit it becomes `path`, on an error it is gone."""
    w = AtomicWriter(path, hint=hint)
    try:
        yield w.f
    except OSError as e:
        raise w._error(e) from e
    except BaseException:
        w.abort()
        raise
    w.commit()


def write_bytes(path: str | Path, chunks: list, *, hint: str = HINT) -> None:
    """Write `chunks` (bytes, memoryviews, arrays) to `path` atomically."""
    with atomic_file(path, hint=hint) as f:
        for chunk in chunks:
            f.write(chunk)


def write_json(path: str | Path, obj: Any) -> None:
    write_bytes(path, [json.dumps(obj, indent=2, default=str).encode() + b"\n"])


def commit_file(tmp: str | Path, path: str | Path, *, hint: str = HINT) -> None:
    """Give a temp file that is already complete its final name durably."""
    try:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        discard(tmp)
        raise output_error(path, e, hint) from e
    fsync_dir(Path(path).parent)


def lock_dir(path: Path, *, busy: str, hint: str, open_hint: str) -> int:
    """An open descriptor of directory `path` holding an exclusive flock, so that two writers
    (two prepares into one dataset, two trains into one run) never mix their files. The lock
    goes when the descriptor is closed or the process dies (kill -9 included)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        raise OutputError(f"cannot open {path}: {e.strerror or e}", open_hint) from e
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutputError(f"{path}: {busy}", hint) from None
    return fd


def free_bytes(path: str | Path) -> int:
    """Free bytes on the disk that holds `path`, or would hold it (its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def require_free(path: str | Path, needed: int, what: str, hint: str) -> int:
    """Refuse, before anything is written, a write of `needed` bytes under `path` that its disk
    cannot hold: one DiskSpaceError naming the place, the bytes needed and the bytes free
    ("{path}: {what} {needed}, {free} are free", what e.g. "the dedup scratch needs").
    Returns the free bytes."""
    try:
        free = free_bytes(path)
    except OSError as e:
        raise output_error(path, e) from e
    if free < needed:
        raise DiskSpaceError(f"{path}: {what} {size(needed)}, {size(free)} are free", hint)
    return free
