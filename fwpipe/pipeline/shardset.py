"""The shards of one split as prepare writes them, with the sidecars that make a resume exact.

A shard is finished when its tokens, its rows table and its statistics are all durable:

    .work/train_000003.rows.parquet   every input row the shard accounts for (docs and skipped)
    .work/train_000003.stats.npy      its token histogram and document-length histogram
    train_000003.bin                  renamed into place last, so its name means "finished"

After a crash the rows tables say which input rows each split has finished; nothing else needs
to survive.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fwpipe import dataset, shards
from fwpipe.atomic import final_name, write_bytes
from fwpipe.lengthbins import length_histogram
from fwpipe.pipeline.tokenize import OK, ChunkRows
from fwpipe.tokenizer import VOCAB_SIZE

log = logging.getLogger(__name__)
WORK = ".work"

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


def sidecar(out_dir: Path, split: str, index: int, kind: str) -> Path:
    return out_dir / WORK / f"{split}_{index:06d}.{kind}"


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    write_bytes(path, [buf.getbuffer()])


def write_npy_atomic(path: Path, array: np.ndarray) -> None:
    # .npy, not .npz: a zip member carries the time it was written, and the bytes must not
    buf = io.BytesIO()
    np.save(buf, array)
    write_bytes(path, [buf.getbuffer()])


def shard_paths(shard_dir: Path, split: str) -> list[Path]:
    """The shard files of `split` in `shard_dir`: exactly the names dataset.shard_name gives, so
    a user's `train_extra.bin` beside them is never taken for one."""
    pattern = re.compile(rf"{split}_(\d{{6}})\.bin")
    return sorted(p for p in shard_dir.glob(f"{split}_*.bin") if pattern.fullmatch(p.name))


def sidecar_paths(out_dir: Path, split: str) -> list[Path]:
    """The sidecars of `split` under `.work` (and their temp files)."""
    pattern = re.compile(rf"{split}_(\d{{6}})\.(rows\.parquet|stats\.npy)")
    return sorted(p for p in (out_dir / WORK).iterdir() if pattern.fullmatch(final_name(p.name))) if (out_dir / WORK).is_dir() else []


def read_stats(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(token_counts, length_hist) of one finished shard."""
    a = np.load(path)
    return a[:VOCAB_SIZE], a[VOCAB_SIZE:]


def finished_shards(out_dir: Path, split: str, shard_dir: Path) -> list[int]:
    """Indices 0..k-1 of the shards that finished (all three files present and valid)."""
    done = []
    i = 0
    while True:
        bin_path = shard_dir / dataset.shard_name(split, i)
        rows, stats = sidecar(out_dir, split, i, "rows.parquet"), sidecar(out_dir, split, i, "stats.npy")
        if not (bin_path.exists() and rows.exists() and stats.exists()):
            break
        shards.read_shard(bin_path)  # raises if the header and size disagree
        done.append(i)
        i += 1
    # anything after the first gap is from an interrupted run: remove it so it is redone
    for path in shard_paths(shard_dir, split) + sidecar_paths(out_dir, split):
        idx = int(path.name.lstrip(".").split("_")[1][:6])
        if idx >= i:
            path.unlink(missing_ok=True)
    return done


class SplitWriter:
    """Appends documents of one split into shards of at most `shard_tokens` tokens."""

    def __init__(self, out_dir: Path, shard_dir: Path, split: str, shard_tokens: int, first_index: int, on_shard: Callable[[str, int], None]):
        self.out_dir, self.shard_dir, self.split = out_dir, shard_dir, split
        self.shard_tokens = shard_tokens
        self.index = first_index
        self.on_shard = on_shard
        self._open()

    def finished_tokens(self) -> int:
        """Stream tokens in the shards this writer's split had finished before it started."""
        return sum(len(shards.read_shard(self.shard_dir / dataset.shard_name(self.split, i))) for i in range(self.index))

    def _open(self) -> None:
        self.file: shards.TokenFileWriter | None = None
        self.n_tokens = 0
        self.cols: dict[str, list] = {name: [] for name in ROWS_SCHEMA.names}
        self.hist = np.zeros(VOCAB_SIZE, dtype=np.int64)

    def append(self, rows: ChunkRows) -> None:
        """Add rows in input order, closing a shard before the first document that overflows it."""
        lens = rows.stream_lens
        lo = 0
        while lo < len(lens):
            cum = np.cumsum(lens[lo:])
            room = self.shard_tokens - self.n_tokens
            k = int(np.searchsorted(cum, room, side="right"))  # rows that fit (skipped rows are 0 wide)
            if k == 0:
                self.close()  # the next document does not fit: it starts a new shard
                continue
            whole = lo == 0 and k == len(lens)
            self._write(rows, lo, lo + k, cum[:k], rows.hist if whole else None)
            lo += k
            if lo < len(lens):
                self.close()

    def _write(self, rows: ChunkRows, lo: int, hi: int, cum: np.ndarray, hist: np.ndarray | None) -> None:
        start = int(rows.stream_lens[:lo].sum())  # stream position of row lo within this chunk
        stream = rows.stream[start : start + int(cum[-1])]
        if self.file is None:
            self.file = shards.TokenFileWriter(self.shard_dir / dataset.shard_name(self.split, self.index))
        if len(stream):
            self.file.write(stream)
            # the worker counted the whole chunk; only a chunk cut by a shard end is recounted
            self.hist += hist if hist is not None else np.bincount(stream, minlength=VOCAB_SIZE)
        sl = slice(lo, hi)
        ok = rows.status[sl] == OK
        # offset: the document's first token, just after its EOT, from the shard's first token
        offsets = np.where(ok, self.n_tokens + cum - rows.stream_lens[sl] + 1, -1)
        c = self.cols
        c["gpos"].append(rows.gpos[sl])
        c["file_index"].append(rows.file_index[sl])
        c["source_row"].append(rows.source_row[sl])
        c["status"].append(rows.status[sl])
        c["shard"].append(np.full(hi - lo, self.index, dtype=np.int32))
        c["offset"].append(offsets.astype(np.int64))
        c["n_tokens"].append(rows.n_tokens[sl])
        c["n_bytes"].append(rows.n_bytes[sl])
        c["key_hash"].append(rows.key_hash[sl])
        c["fineweb_token_count"].append(rows.fineweb_token_count[sl])
        c["placeholder"].append(rows.placeholder[sl])
        # as Arrow strings, not Python ones: ~50 instead of ~150 bytes a document while a
        # 100M-token shard fills
        c["id"].append(pa.array(rows.ids[lo:hi], pa.string()))
        c["url"].append(pa.array(rows.urls[lo:hi], pa.string()))
        self.n_tokens += int(cum[-1])

    def table(self) -> pa.Table:
        """The rows appended to the open shard (at the very end: trailing skipped rows only)."""
        cols = {}
        for f in ROWS_SCHEMA:
            v = self.cols[f.name]
            if f.name in ("id", "url"):
                cols[f.name] = pa.concat_arrays(v) if v else pa.array([], f.type)
            else:
                cols[f.name] = pa.array(np.concatenate(v) if v else np.zeros(0, f.type.to_pandas_dtype()), type=f.type)
        return pa.table(cols, schema=ROWS_SCHEMA)

    def close(self) -> None:
        """Finish the open shard: tokens sealed, sidecars durable, then the shard's final name."""
        if self.n_tokens == 0:
            return  # a shard of only skipped rows is not written; the final tally counts them
        assert self.file is not None
        self.file.seal()
        t = self.table()
        # the table is a copy: dropping the lists now halves the peak (a 100M-token shard of
        # 40-token documents holds 2.4M rows, ~200 MB); a failure here aborts the writer anyway
        self.cols = {name: [] for name in ROWS_SCHEMA.names}
        write_parquet_atomic(t, sidecar(self.out_dir, self.split, self.index, "rows.parquet"))
        ok = t["status"].to_numpy() == OK
        lengths = t["n_tokens"].to_numpy()[ok]
        write_npy_atomic(sidecar(self.out_dir, self.split, self.index, "stats.npy"), np.concatenate([self.hist, length_histogram(lengths)]))
        self.file.commit()
        log.info("finished %s shard %d: %d tokens", self.split, self.index, self.n_tokens)
        self.on_shard(self.split, self.index)
        self.index += 1
        self._open()

    def abort(self) -> None:
        if self.file is not None:
            self.file.abort()
