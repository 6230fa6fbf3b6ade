"""The scratch directory of one dedup run, and the memory budget that sizes its passes.

Layout (B bands, U units of at most engine.UNIT_DOCS documents):
    keys.NNNNNN      unit NNNNNN's keys: (B + 1, docs of the unit) uint64, band-major (each
                     band's keys, then each signature's full key); written atomically, so the
                     file is the unit's completion marker
    sig.u32          only when signatures were given rather than computed (write_signatures):
                     (n, P) uint32; otherwise the few signatures that verification needs are
                     recomputed from the tokens, which is cheaper than writing 512 bytes per
                     document to disk and reading them back
    <tag>.cand.BB    candidate pairs of band BB, int64 codes left * m + right (m = members)
    <tag>.kept       verified pairs, the same codes
The directory's name carries a digest of the inputs and settings, so a rerun with the same
ones finds and reuses it (finished units are skipped) and a different run never mixes in.
It is removed on success.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fwpipe.atomic import free_bytes, require_free
from fwpipe.errors import OutputError

log = logging.getLogger(__name__)
PREFIX = "fwpipe-dedup-"
DEFAULT_MEMORY_BYTES = 1 << 30  # the fixed part a run may use beyond its per-document arrays


def memory_bytes(memory_gb: float | None) -> int:
    """--memory-gb (the same flag on audit and prepare) as bytes; None is the default."""
    from fwpipe.errors import ConfigError

    if memory_gb is None:
        return DEFAULT_MEMORY_BYTES
    if not memory_gb > 0:
        raise ConfigError(f"--memory-gb {memory_gb} is not positive", "pass e.g. --memory-gb 1")
    return int(memory_gb * 2**30)


@dataclass
class Scratch:
    root: Path
    n_docs: int
    num_perm: int
    bands: int
    memory_bytes: int = DEFAULT_MEMORY_BYTES

    @property
    def sig_path(self) -> Path:
        return self.root / "sig.u32"

    def unit_path(self, u: int) -> Path:
        return self.root / f"keys.{u:06d}"

    def planned_bytes(self) -> int:
        return scratch_bytes(self.n_docs, self.bands)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        fd = _locks.pop(str(self.root), None)
        if fd is not None:
            os.close(fd)  # releases the flock


_locks: dict[str, int] = {}  # scratch root -> the open, flock-ed .lock that says "a run is using this"


def _claim(root: Path) -> bool:
    """Lock root/.lock for this run; False when another run (process) holds it now. This
    process holding it already (a run resumed in one process, as the tests do) counts as its own."""
    if str(root) in _locks:
        return True
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _locks[str(root)] = fd
    return True


def open_scratch(
    tmp_dir: str | Path,
    identity: dict,
    *,
    n_docs: int,
    num_perm: int,
    bands: int,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
) -> Scratch:
    """The scratch directory for these inputs and settings under tmp_dir, made or reused.

    identity: what makes a run the same run (input files and sizes, settings); it is hashed
    into the name.
    """
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    root = Path(tmp_dir) / f"{PREFIX}{digest}"
    s = Scratch(root, n_docs, num_perm, bands, memory_bytes)
    try:
        reused = root.exists()
        root.mkdir(parents=True, exist_ok=True)
        if not _claim(root):  # another audit of the same data is using it now: this run gets its own
            root = root.with_name(f"{root.name}-p{os.getpid()}-{len(_locks)}")
            s = Scratch(root, n_docs, num_perm, bands, memory_bytes)
            reused = False
            root.mkdir(parents=True, exist_ok=True)
            _claim(root)
        free = free_bytes(root)
    except OSError as e:
        raise OutputError(
            f"cannot make the dedup scratch directory {root}: {e.strerror or e}",
            "pass --tmp-dir DIR on a disk with room (its size is logged before it starts)",
        ) from e
    log.info(
        "dedup scratch %s: %.2f GB for %d documents (%s; %.1f GB free there)",
        root,
        s.planned_bytes() / 1e9,
        n_docs,
        "reused from an interrupted run" if reused else "new",
        free / 1e9,
    )
    if not reused:
        try:
            require_free(
                tmp_dir, s.planned_bytes(), "the dedup scratch needs", "pass --tmp-dir DIR on a disk with room"
            )
        except OutputError:
            s.remove()
            raise
    return s


def trim_heap() -> None:
    """Give the C heap's freed pages back to the system (glibc's malloc_trim; nothing elsewhere).

    After a large array is freed, glibc serves allocations up to its size from the heap rather
    than from fresh mappings, and the chunked passes' many few-MB arrays then leave freed pages
    resident there (measured: ~80 MB at 4M documents), counted in RSS like live ones."""
    global _malloc_trim
    if _malloc_trim is None:
        import ctypes
        import ctypes.util

        try:
            _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


def scratch_bytes(n_docs: int, bands: int) -> int:
    """Disk the scratch directory takes for n_docs documents: 8 bytes a band key and the full key."""
    return n_docs * 8 * (bands + 1)


def read_array(path: Path, dtype, offset_items: int, count: int) -> np.ndarray:
    """count items of dtype from item offset_items: a plain read (page cache, not resident memory)."""
    return np.fromfile(path, dtype=dtype, count=count, offset=offset_items * np.dtype(dtype).itemsize)
