"""One shard from its pieces of unit files: an assembly task, one per shard, run on the executor.

A shard is finished when its tokens, its rows table and its statistics are all durable:

    .work/train_000003.rows.parquet   every input row the shard accounts for (docs and skipped)
    .work/train_000003.stats.npy      its token histogram and document-length histogram
    train_000003.bin                  renamed into place last, so its name means "finished"

A rerun skips a shard whose three files are there with the token count the layout planned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from fwpipe import shards
from fwpipe.errors import ShardFormatError
from fwpipe.lengthbins import length_histogram
from fwpipe.pipeline.layout import Piece
from fwpipe.pipeline.shardset import ROWS_SCHEMA, write_npy_atomic, write_parquet_atomic
from fwpipe.pipeline.tokenize import OK
from fwpipe.pipeline.units import read_rows, read_tokens
from fwpipe.tokenizer import VOCAB_SIZE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardTask:
    index: int
    path: str  # the shard file
    rows_path: str  # its sidecars
    stats_path: str
    n_tokens: int
    pieces: tuple[Piece, ...]


def assemble_shard(task: ShardTask) -> int:
    """Write one shard and its sidecars (or skip a finished one); returns its token count."""
    path = Path(task.path)
    if _finished(task):
        return task.n_tokens
    w = shards.TokenFileWriter(path)
    try:
        hist = np.zeros(VOCAB_SIZE, dtype=np.int64)
        maps: dict = {}
        for p in task.pieces:
            if p.tok_hi > p.tok_lo:
                if (p.unit_dir, p.split) not in maps:
                    maps = {(p.unit_dir, p.split): read_tokens(p.unit_dir, p.split)}
                stream = maps[(p.unit_dir, p.split)][p.tok_lo : p.tok_hi]
                w.write(stream)
                hist += np.bincount(stream, minlength=VOCAB_SIZE)  # numpy, not numba: --dedup none never loads numba
        if w.n_tokens != task.n_tokens:
            raise AssertionError(f"{path}: {w.n_tokens} tokens assembled, {task.n_tokens} planned")
        w.seal()
        t = rows_table(task.pieces, task.index)
        write_parquet_atomic(t, Path(task.rows_path))
        ok = t["status"].to_numpy() == OK
        write_npy_atomic(Path(task.stats_path), np.concatenate([hist, length_histogram(t["n_tokens"].to_numpy()[ok])]))
        w.commit()
    except BaseException:
        w.abort()
        raise
    log.info("finished %s: %d tokens", path.name, task.n_tokens)
    return task.n_tokens


def _finished(task: ShardTask) -> bool:
    if not (Path(task.path).exists() and Path(task.rows_path).exists() and Path(task.stats_path).exists()):
        return False
    try:
        return len(shards.read_shard(Path(task.path))) == task.n_tokens
    except ShardFormatError:
        return False


def rows_table(pieces: tuple[Piece, ...] | list[Piece], index: int) -> pa.Table:
    """The shard's rows (ROWS_SCHEMA): the pieces' unit rows with shard and offset added.

    offset is the document's first token (just after its EOT) from the shard's first token, -1
    for a skipped row.
    """
    parts, pos, cache = [], 0, {}
    for p in pieces:
        key = (p.unit_dir, p.split)
        if key not in cache:
            cache = {key: read_rows(p.unit_dir, p.split)}  # consecutive pieces of one unit read it once
        t = cache[key].slice(p.row_lo, p.row_hi - p.row_lo)
        ok = t["status"].to_numpy() == OK
        widths = np.where(ok, t["n_tokens"].to_numpy() + 1, 0)
        cum = np.cumsum(widths)
        offsets = np.where(ok, pos + cum - widths + 1, -1).astype(np.int64)
        t = t.append_column("shard", pa.array(np.full(t.num_rows, index, np.int32))).append_column(
            "offset", pa.array(offsets)
        )
        parts.append(t.select(ROWS_SCHEMA.names).cast(ROWS_SCHEMA))
        pos += int(cum[-1]) if len(cum) else 0
    if not parts:
        return ROWS_SCHEMA.empty_table()
    return pa.concat_tables(parts).combine_chunks()
