"""The shards, written in the driver as the layout plans them, unit by unit.

lay_out (passes.py) hands each finished unit to the layout (layout.py) in order; ShardWriter
then appends the new pieces to each split's open shard and finishes every shard the layout
closed. A shard grows under .work and takes its final name only when whole:

    .work/train_000003.bin.part       the shard while it is written (llm.c header filled in last)
    .work/train_000003.bin.part.json  its journal: pieces and tokens in it, durably, and the plan
    .work/train_000003.bin.part.npy   the token histogram of what the journal vouches for
    .work/train_000003.stats.npy      its token histogram and document-length histogram
    train_000003.bin                  renamed into place last, so its name means "finished"

Tokens are on disk about once: after the piece that ends a unit's token stream is in the part
file, fsynced and journaled, the unit's marker is rewritten to say its tokens live in the shards
now (units.consume), and only then is the unit's token file deleted, so no marker ever vouches
for a file that is gone. A unit is ~5M tokens, so a journal entry costs a few fsyncs per unit.

A rerun lays the same units out again (the layout is decided by the units' rows tables, which
stay until finalize): a finished shard is skipped, and an open one resumes from its journal,
truncated to what the journal vouches for, when the journal was written for the same plan (the
same units). So a run killed at 90% of its units finds 90% of the tokens in shards already.

The rows each shard accounts for are not copied: finalize reads them from the units' rows
tables through the layout's pieces (rows_table).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from fwpipe import shards
from fwpipe.atomic import commit_file, discard, open_new, output_error, write_json
from fwpipe.errors import OutputError, ShardFormatError
from fwpipe.lengthbins import length_histogram
from fwpipe.pipeline.layout import Layout, Piece
from fwpipe.pipeline.shardset import ROWS_SCHEMA, write_npy_atomic
from fwpipe.pipeline.split import SPLIT_NAMES
from fwpipe.pipeline.tokenize import OK
from fwpipe.pipeline.units import consume, forget, read_rows, read_tokens
from fwpipe.pipeline.workdir import WorkDir
from fwpipe.tokenizer import VOCAB_SIZE

log = logging.getLogger(__name__)

READ_BACK_TOKENS = 1 << 24  # a resumed part's (or a finished shard's) histogram is read back 32 MB at a time


class ShardWriter:
    """Writes the shards of one dataset as its layout grows (call update() after each unit)."""

    def __init__(self, work: WorkDir, fmt: str, plan: str):
        self.work, self.fmt, self.plan = work, fmt, plan
        self.finished = {s: 0 for s in SPLIT_NAMES}  # shards of each split finished
        self.open: dict[str, ShardPart | None] = {s: None for s in SPLIT_NAMES}

    def update(self, layout: Layout, *, open_shards: bool = True) -> None:
        """Finish every shard the layout closed since the last call, then feed the open ones."""
        for s in SPLIT_NAMES:
            closed = layout.shards[s]
            while self.finished[s] < len(closed):
                sh = closed[self.finished[s]]
                w = self._shard(s, sh.index)
                w.feed(sh.pieces)
                w.finish(sh.n_tokens, sh.pieces)
                self.open[s] = None
                self.finished[s] += 1
            if open_shards and layout.open[s].pieces:
                self._shard(s, layout.open[s].index).feed(layout.open[s].pieces)

    def finish(self, layout: Layout) -> dict[str, int]:
        """After layout.finish(): the last shards; an open one left without tokens is dropped
        (its rows are the layout's trailing rows). Returns the shards per split."""
        self.update(layout, open_shards=False)
        for s in SPLIT_NAMES:
            if self.open[s] is not None:
                self.open[s].drop()
                self.open[s] = None
        return {s: len(layout.shards[s]) for s in SPLIT_NAMES}

    def close(self) -> None:
        """After an error: close the open parts, keeping them for a rerun (their journals say what to keep)."""
        for p in self.open.values():
            if p is not None:
                p.close()

    def _shard(self, split: str, index: int) -> ShardPart:
        p = self.open[split]
        if p is None or p.index != index:
            p = self.open[split] = ShardPart(self.work, self.fmt, split, index, self.plan)
        return p


class ShardPart:
    """One shard being written: found finished, resumed from its journal, or new."""

    def __init__(self, work: WorkDir, fmt: str, split: str, index: int, plan: str):
        self.index, self.plan = index, plan
        self.path = work.shard(fmt, split, index)
        self.part = work.part(split, index)
        self.journal_path = Path(f"{self.part}.json")
        self.hist_path = Path(f"{self.part}.npy")
        self.stats = work.sidecar(split, index, "stats.npy")
        self.hist = np.zeros(VOCAB_SIZE, dtype=np.int64)
        self.n_tokens = 0
        self.fed = 0  # pieces of the shard that are in the file (a previous run's included)
        self.seen = 0  # pieces whose units this run has checked for tokens left to free
        self.f = None
        self.done = self.path.exists()  # a previous run finished it (its name is taken last)
        if self.done:
            return
        j = self._read_journal()
        try:
            if j is not None:
                self.f = open(self.part, "r+b", buffering=0)
                self.fed, self.n_tokens = j["pieces"], j["tokens"]
                self.f.truncate(shards.HEADER_BYTES + 2 * self.n_tokens)  # what the journal vouches for
                self.f.seek(0, os.SEEK_END)
                self.hist += self._journaled_histogram()
            else:
                discard(self.journal_path)
                discard(self.hist_path)
                self.f = open_new(self.part)
                self.f.write(shards.header(0).tobytes())
        except OSError as e:
            self.close()
            raise output_error(self.path, e) from e

    def _journaled_histogram(self) -> np.ndarray:
        """The histogram the journal's last entry saved (its counts sum to the tokens it vouches
        for), else one read back from the part file."""
        try:
            h = np.load(self.hist_path)
            if h.shape == (VOCAB_SIZE,) and h.dtype == np.int64 and int(h.sum()) == self.n_tokens:
                return h
        except (OSError, ValueError):
            pass
        return _histogram(self.part, self.n_tokens)

    def _read_journal(self) -> dict | None:
        try:
            j = json.loads(self.journal_path.read_text())
            if j["plan"] != self.plan or self.part.stat().st_size < shards.HEADER_BYTES + 2 * j["tokens"]:
                return None
            return j
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def feed(self, pieces: list[Piece]) -> None:
        """Append pieces [fed, len(pieces)) of the shard's pieces so far."""
        # a previous run put these in the file (or the finished shard): free what it left behind
        for p in pieces[self.seen : len(pieces) if self.done else min(self.fed, len(pieces))]:
            _free_if_taken(p)
        self.seen = max(self.seen, len(pieces) if self.done else min(self.fed, len(pieces)))
        if self.done:
            return
        for j in range(self.fed, len(pieces)):
            p = pieces[j]
            if p.tok_hi > p.tok_lo:
                stream = _unit_tokens(p)
                tokens = stream[p.tok_lo : p.tok_hi]
                self.write(tokens)
                self.hist += np.bincount(
                    tokens, minlength=VOCAB_SIZE
                )  # numpy, not numba: --dedup none never loads numba
                last = p.tok_hi == len(stream)
                del stream, tokens
                if last:  # the unit's stream ends here: make the part durable, then free the unit's tokens
                    self._journal(j + 1)
                    consume(p.unit_dir, p.split)
            self.fed = self.seen = j + 1

    def finish(self, n_tokens: int, pieces: list[Piece]) -> None:
        """The layout closed this shard at n_tokens: seal it, write its statistics, give it its name."""
        if self.done:
            try:
                found = shards.shard_tokens(self.path)  # its header (ids were checked as they went in)
            except ShardFormatError:
                found = -1
            if found != n_tokens:
                raise OutputError(
                    f"{self.path}: holds {found:,} tokens, this run's layout puts {n_tokens:,} there",
                    "run the same command again with --overwrite",
                )
            if not self.stats.exists():  # written before the rename; rebuilt from the shard if lost
                self._write_stats(_histogram(self.path, n_tokens), pieces)
            discard(self.journal_path)
            discard(self.hist_path)
            return
        if self.n_tokens != n_tokens:
            raise AssertionError(f"{self.path}: {self.n_tokens} tokens assembled, {n_tokens} planned")
        try:
            self.f.seek(0)
            self.f.write(shards.header(self.n_tokens).tobytes())
            os.fsync(self.f.fileno())
            self.f.close()
        except OSError as e:
            self.close()
            raise output_error(self.path, e) from e
        self._write_stats(self.hist, pieces)
        commit_file(self.part, self.path)
        discard(self.journal_path)
        discard(self.hist_path)
        log.info("finished %s: %d tokens", self.path.name, n_tokens)

    def drop(self) -> None:
        """The shard ended with no tokens (its rows are trailing): no file."""
        self.close()
        if not self.done:
            discard(self.part)
            discard(self.journal_path)
            discard(self.hist_path)

    def close(self) -> None:
        """Close, keeping the file: its journal says what in it a rerun may keep."""
        try:
            if self.f is not None and not self.f.closed:
                self.f.close()
        except OSError as e:
            log.debug("could not close %s: %s", self.part, e)

    def write(self, tokens: np.ndarray) -> None:
        if self.n_tokens + len(tokens) >= 2**31:
            raise ShardFormatError(f"{self.path}: over 2**31 tokens do not fit an llm.c header", "lower --shard-tokens")
        try:
            self.f.write(np.ascontiguousarray(tokens, dtype=shards.TOKEN_DTYPE).data)
        except OSError as e:
            self.close()
            raise output_error(self.path, e) from e
        self.n_tokens += len(tokens)

    def _journal(self, pieces: int) -> None:
        """Make the tokens so far durable, then record them: a rerun resumes here."""
        try:
            os.fsync(self.f.fileno())
        except OSError as e:
            self.close()
            raise output_error(self.path, e) from e
        write_npy_atomic(self.hist_path, self.hist)  # a resume then reads 400 KB, not the part file
        write_json(self.journal_path, {"plan": self.plan, "pieces": pieces, "tokens": self.n_tokens})

    def _write_stats(self, hist: np.ndarray, pieces: list[Piece]) -> None:
        t = rows_table(pieces, self.index, ["status", "n_tokens"])
        ok = t["status"].to_numpy() == OK
        write_npy_atomic(self.stats, np.concatenate([hist, length_histogram(t["n_tokens"].to_numpy()[ok])]))


def _histogram(path: Path, n_tokens: int) -> np.ndarray:
    """The token histogram of a shard or part file, read back a slice at a time."""
    hist = np.zeros(VOCAB_SIZE, dtype=np.int64)
    for lo in range(0, n_tokens, READ_BACK_TOKENS):
        n = min(READ_BACK_TOKENS, n_tokens - lo)
        hist += np.bincount(
            np.fromfile(path, dtype=shards.TOKEN_DTYPE, count=n, offset=shards.HEADER_BYTES + 2 * lo),
            minlength=VOCAB_SIZE,
        )
    return hist


def _unit_tokens(p: Piece) -> np.ndarray:
    try:
        return read_tokens(p.unit_dir, p.split)
    except FileNotFoundError as e:  # freed into a part file that is gone (someone cleaned .work by hand)
        forget(p.unit_dir)  # the next run tokenizes that unit again
        raise OutputError(
            f"{e.filename}: freed into a shard that is no longer under .work",
            "run the same command again: the units it needs are redone",
        ) from e


def _free_if_taken(p: Piece) -> None:
    """A piece a previous run put in a shard: free its unit's tokens if the stream ended there
    (a run killed between a journal entry and freeing the unit)."""
    if p.tok_hi > p.tok_lo:
        f = Path(p.unit_dir) / f"{p.split}.tokens"
        try:
            if f.stat().st_size == 2 * p.tok_hi:
                consume(p.unit_dir, p.split)
        except FileNotFoundError:
            pass


def rows_table(pieces: tuple[Piece, ...] | list[Piece], index: int, columns: list[str] | None = None) -> pa.Table:
    """The shard's rows (ROWS_SCHEMA, or those `columns` of it): the pieces' unit rows with shard
    and offset added.

    offset is the document's first token (just after its EOT) from the shard's first token, -1
    for a skipped row.
    """
    names = columns or ROWS_SCHEMA.names
    parts = list(rows_parts(pieces, index, columns))
    if not parts:
        return pa.schema([ROWS_SCHEMA.field(n) for n in names]).empty_table()
    return pa.concat_tables(parts).combine_chunks()


def rows_parts(
    pieces: tuple[Piece, ...] | list[Piece], index: int, columns: list[str] | None = None
) -> Iterator[pa.Table]:
    """rows_table a piece at a time (finalize streams docs.parquet from them)."""
    names = columns or ROWS_SCHEMA.names
    schema = pa.schema([ROWS_SCHEMA.field(n) for n in names])
    pos, cache = 0, {}
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
        pos += int(cum[-1]) if len(cum) else 0
        yield t.select(names).cast(schema)
