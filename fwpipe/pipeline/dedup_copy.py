"""--dedup's second pass as units: the documents the plan keeps, copied out of one first-pass stage.

Each unit writes the same files as a tokenizing unit (units.UnitWriter: per split the token
stream with EOT before every document, and the rows table), so the kept documents reach the
shards through the same global step and assembly as a dedup-none prepare. Nothing is tokenized
again: the tokens come from the stage's shards. These units are cheap and follow from the
plan, so a rerun redoes them instead of checking them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fwpipe import shards
from fwpipe.dataset import open_dataset
from fwpipe.pipeline.split import TRAIN, VAL
from fwpipe.pipeline.tokenize import ChunkRows
from fwpipe.pipeline.units import UnitWriter
from fwpipe.tokenizer import EOT

_EOT16 = np.array([EOT], dtype=np.uint16)
_COLUMNS = ["source_row", "n_tokens", "n_bytes", "key_hash", "fineweb_token_count", "shard", "offset", "id", "url"]


@dataclass(frozen=True)
class CopyTask:
    dir: str  # the unit's directory
    stage: str  # the first-pass dataset of input `file_index` (one train split, in input order)
    file_index: int
    file_gpos0: int  # global row of the input's row 0
    keep: np.ndarray  # (stage docs,) bool
    split: np.ndarray  # (stage docs,) int8 TRAIN / VAL
    batch_rows: int

    @property
    def rows(self) -> int:
        return len(self.keep)


def copy_kept(task: CopyTask) -> dict:
    """Copy the kept documents of one stage, in input order, into a unit; returns its result.

    The stage's docs.parquet is read `batch_rows` rows at a time, so its strings (ids, urls:
    ~100 bytes a document) are never all in memory at once; each stage shard's mapped pages are
    dropped once the copy has moved past it.
    """
    w = UnitWriter(Path(task.dir))
    try:
        tokens = open_dataset(task.stage).split("train").shards
        f = pq.ParquetFile(Path(task.stage) / "docs.parquet")
        row0 = released = 0
        for b in f.iter_batches(batch_size=task.batch_rows, columns=_COLUMNS):
            d = pa.Table.from_batches([b])
            kept = np.flatnonzero(task.keep[row0 : row0 + d.num_rows])  # rows of this batch
            row0 += d.num_rows
            if len(kept) == 0:
                continue
            c = {k: d[k].to_numpy() for k in ("source_row", "n_tokens", "n_bytes", "key_hash", "shard", "offset")}
            ftc = d["fineweb_token_count"].fill_null(-1).to_numpy()
            split = task.split[kept + row0 - d.num_rows]
            for sid in (TRAIN, VAL):
                rows = kept[split == sid]
                pieces = []
                for r in rows:  # EOT, then the document's tokens from the first pass
                    pieces.append(_EOT16)
                    pieces.append(tokens[c["shard"][r]][c["offset"][r] : c["offset"][r] + c["n_tokens"][r]])
                take = pa.array(rows, pa.int64())
                w.add(sid, ChunkRows(
                    task.file_gpos0 + c["source_row"][rows], np.full(len(rows), task.file_index, np.int32), c["source_row"][rows],
                    np.zeros(len(rows), np.int8), c["n_tokens"][rows], c["n_bytes"][rows], c["key_hash"][rows], ftc[rows],
                    np.zeros(len(rows), bool), d["id"].take(take).to_pylist(), d["url"].take(take).to_pylist(),
                    np.concatenate(pieces).astype(np.uint16, copy=False) if pieces else np.zeros(0, np.uint16), None,
                ))  # fmt: skip
            # mapped pages count in RSS: a 40-token document's are 80 bytes, the whole stage over a pass
            for s in range(released, int(c["shard"][kept[0]])):
                shards.release_pages(tokens[s])
            released = max(released, int(c["shard"][kept[0]]))
        for s in range(released, len(tokens)):
            shards.release_pages(tokens[s])
        return dict(w.commit({"copy_of": task.stage}), ran=False)
    except BaseException:
        w.abort()
        raise
