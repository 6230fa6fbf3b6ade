"""Small real-looking inputs for prepare tests, and an independent llm.c shard reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

EOT = 50256


def read_llmc_independently(path: Path) -> list[int]:
    """A reader that shares no code with fwpipe: llm.c's header, then uint16 tokens."""
    raw = path.read_bytes()
    magic, version, n = np.frombuffer(raw[:12], dtype="<i4")
    assert (magic, version) == (20240520, 1)
    toks = np.frombuffer(raw[1024:], dtype="<u2")
    assert len(toks) == n
    return toks.tolist()


def split_docs_eot_before(tokens: list[int]) -> list[list[int]]:
    docs, cur = [], None
    for t in tokens:
        if t == EOT:
            if cur is not None:
                docs.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur is not None:
        docs.append(cur)
    return docs


def write_parquet(path: Path, rows: dict, row_group_size: int | None = None) -> Path:
    pq.write_table(pa.table(rows), path, row_group_size=row_group_size)
    return path
