"""The rows a shard accounts for (ROWS_SCHEMA: assemble.rows_table builds them from the units'
rows tables), a shard's statistics sidecar (named by workdir.py, written by assemble.py), and
atomic parquet / .npy writes.

    .work/train_000003.stats.npy      a finished shard's token histogram and document-length histogram
    train_000003.bin                  renamed into place last, so its name means "finished"
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fwpipe.atomic import write_bytes
from fwpipe.dataset import WORK  # noqa: F401 - the name lives with the dataset's other names
from fwpipe.tokenizer import VOCAB_SIZE

ROWS_SCHEMA = pa.schema(
    [
        ("gpos", pa.int64()),
        ("file_index", pa.int32()),
        ("source_row", pa.int64()),
        ("status", pa.int8()),
        ("shard", pa.int32()),
        ("offset", pa.int64()),
        ("n_tokens", pa.int64()),
        ("n_bytes", pa.int64()),
        ("key_hash", pa.uint64()),
        ("fineweb_token_count", pa.int64()),
        ("placeholder", pa.bool_()),
        ("id", pa.string()),
        ("url", pa.string()),
    ]
)


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    write_bytes(path, [buf.getbuffer()])


def write_npy_atomic(path: Path, array: np.ndarray) -> None:
    # .npy, not .npz: a zip member carries the time it was written, and the bytes must not
    buf = io.BytesIO()
    np.save(buf, array)
    write_bytes(path, [buf.getbuffer()])


def read_stats(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(token_counts, length_hist) of one finished shard."""
    a = np.load(path)
    return a[:VOCAB_SIZE], a[VOCAB_SIZE:]
