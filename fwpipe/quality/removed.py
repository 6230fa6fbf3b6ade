"""removed.parquet rows for the documents `prepare --filter` dropped (dataset.REMOVED_COLUMNS):
reason "quality:<rule>", n_tokens null (they were never tokenized), no cluster or kept document."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fwpipe.atomic import atomic_file
from fwpipe.dataset import REMOVED_COLUMNS
from fwpipe.quality.filter import FILTERED, reason


def _schema() -> pa.Schema:
    strings = ("id", "source_file", "reason", "kept_id", "kept_source_file")
    return pa.schema([(c, pa.string() if c in strings else pa.int64()) for c in REMOVED_COLUMNS])


def filtered_rows(t: pa.Table, names: pa.Array) -> pa.Table:
    """The dropped rows of one of prepare's row tables (status, file_index, source_row, id)."""
    status = t["status"].to_numpy()
    rows = np.flatnonzero(status >= FILTERED)
    n = len(rows)
    take = pa.array(rows, pa.int64())
    null = lambda typ: pa.nulls(n, typ)  # noqa: E731
    return pa.table(
        {
            "id": t["id"].take(take).cast(pa.string()),
            "source_file": names.take(pa.array(t["file_index"].to_numpy()[rows].astype(np.int64))),
            "source_row": t["source_row"].take(take).cast(pa.int64()),
            "n_tokens": null(pa.int64()),
            "reason": pa.array([reason(int(s)) for s in status[rows]], pa.string()),
            "cluster": null(pa.int64()),
            "kept_id": null(pa.string()),
            "kept_source_file": null(pa.string()),
            "kept_source_row": null(pa.int64()),
        },
        schema=_schema(),
    )


def write_filtered(path: Path, tables: Iterable[pa.Table], names: pa.Array) -> None:
    with atomic_file(path) as f, pq.ParquetWriter(f, _schema(), compression="zstd") as w:
        for t in tables:
            w.write_table(filtered_rows(t, names))


def append_removed(path: Path, others: list[Path]) -> None:
    """Rewrite removed.parquet at `path` with the rows of `others` (each stage's filtered rows) after its own."""
    parts = [pq.read_table(p) for p in [path, *others] if p.is_file()]
    with atomic_file(path) as f, pq.ParquetWriter(f, _schema(), compression="zstd") as w:
        for t in parts:
            w.write_table(t.select(list(REMOVED_COLUMNS)).cast(_schema()))
