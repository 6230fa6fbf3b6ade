"""Files that appear under their final name only when whole and durable.

Every output fwpipe writes (shards, sidecars, manifests, reports, checkpoints, plots) goes
through here: a temp file beside the target, fsync, rename, fsync of the directory. A crash at
any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from fwpipe.errors import OutputError

HINT = "free disk space or choose another output directory"


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


@contextmanager
def atomic_file(path: str | Path, *, hint: str = HINT) -> Iterator[BinaryIO]:
    """Yield a binary file to write; on a clean exit it becomes `path`, on an error it is gone."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {e.strerror or e}", hint) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


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
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {e.strerror or e}", hint) from e
    fsync_dir(Path(path).parent)
