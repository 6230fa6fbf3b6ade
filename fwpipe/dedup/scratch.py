"""The scratch directory of one dedup run, and the memory budget that sizes its passes.

Layout (n documents, P permutations, B bands):
    sig.u32          (n, P) uint32 signatures, row d at byte d * 4P; rows of exact copies unused
    keys.u64         (B + 1, n) uint64: band keys, band-major, then each signature's full key
    units/NNNNNN     completion marker of signature unit NNNNNN (its rows in both files are final)
    <tag>.cand.BB    candidate pairs of band BB, int64 codes left * m + right (m = members)
    <tag>.kept       verified pairs, the same codes
The directory's name carries a digest of the inputs and settings, so a rerun with the same
ones finds and reuses it (finished units are skipped) and a different run never mixes in.
It is removed on success.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fwpipe.atomic import write_bytes
from fwpipe.errors import OutputError

log = logging.getLogger(__name__)
PREFIX = "fwpipe-dedup-"
DEFAULT_MEMORY_BYTES = 1 << 30  # the fixed part a run may use beyond its per-document arrays


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

    @property
    def keys_path(self) -> Path:
        return self.root / "keys.u64"

    def unit_done(self, u: int) -> bool:
        return (self.root / "units" / f"{u:06d}").exists()

    def mark_unit(self, u: int) -> None:
        write_bytes(self.root / "units" / f"{u:06d}", [b""])

    def planned_bytes(self) -> int:
        return self.n_docs * (4 * self.num_perm + 8 * (self.bands + 1))

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def open_scratch(tmp_dir: str | Path, identity: dict, *, n_docs: int, num_perm: int, bands: int,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES) -> Scratch:
    """The scratch directory for these inputs and settings under tmp_dir, made or reused.

    identity: what makes a run the same run (input files and sizes, settings); it is hashed
    into the name and stored beside the files.
    """
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    root = Path(tmp_dir) / f"{PREFIX}{digest}"
    s = Scratch(root, n_docs, num_perm, bands, memory_bytes)
    try:
        reused = root.exists()
        (root / "units").mkdir(parents=True, exist_ok=True)
        for path, size in ((s.sig_path, 4 * n_docs * num_perm), (s.keys_path, 8 * n_docs * (bands + 1))):
            if not path.exists() or path.stat().st_size != size:
                with open(path, "wb") as f:
                    f.truncate(size)  # sparse until the units fill it
    except OSError as e:
        raise OutputError(f"cannot make the dedup scratch directory {root}: {e.strerror or e}",
                          "pass --tmp-dir DIR on a disk with room (its size is logged before it starts)") from e
    free = shutil.disk_usage(root).free
    log.info("dedup scratch %s: %.2f GB for %d documents (%s; %.1f GB free there)", root, s.planned_bytes() / 1e9, n_docs,
             "reused from an interrupted run" if reused else "new", free / 1e9)
    return s


def pwrite_array(path: Path, arr: np.ndarray, offset: int) -> None:
    """Write arr's bytes at offset of an existing file (a unit's rows of a preallocated file)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        view = memoryview(np.ascontiguousarray(arr)).cast("B")
        done = 0
        while done < len(view):
            done += os.pwrite(fd, view[done:], offset + done)
        os.fsync(fd)  # the data is on disk before its unit's marker says so
    finally:
        os.close(fd)


def read_array(path: Path, dtype, offset_items: int, count: int) -> np.ndarray:
    """count items of dtype from item offset_items: a plain read (page cache, not resident memory)."""
    return np.fromfile(path, dtype=dtype, count=count, offset=offset_items * np.dtype(dtype).itemsize)
