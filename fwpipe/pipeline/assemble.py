"""The shards from their pieces of unit files, in order: one assembly task.

Each shard is written under .work while it grows and freed units' tokens as it goes, so the
tokens are on disk about once (the units' copy shrinks as the shards' grows):

    .work/train_000003.bin.part       the shard while it is written (llm.c header filled in last)
    .work/train_000003.bin.part.json  its journal: how many pieces and tokens are in it, durably
    .work/train_000003.stats.npy      its token histogram and document-length histogram
    train_000003.bin                  renamed into place last, so its name means "finished"

After the piece that ends a unit's token stream is in the part file, fsynced and journaled, the
unit's marker is rewritten to say its tokens live in the shards now (units.consume), and only
then is the unit's token file deleted: no marker ever vouches for a file that is gone. A rerun
skips a finished shard, and resumes a part file from its journal (truncated to what the journal
vouches for). A unit's stream may run on into the next shard, and its marker is rewritten
when a split's tokens are freed, so the shards are written in order by one task (one writer of
each marker; the copy is disk-bound, and val is ~0.5% of the tokens).

The rows each shard accounts for are not copied: finalize reads them from the units' rows
tables through the layout's pieces (rows_table).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from fwpipe import shards
from fwpipe.atomic import commit_file, discard, open_new, output_error, write_json
from fwpipe.errors import OutputError, ShardFormatError
from fwpipe.lengthbins import length_histogram
from fwpipe.pipeline.layout import Piece
from fwpipe.pipeline.shardset import ROWS_SCHEMA, write_npy_atomic
from fwpipe.pipeline.tokenize import OK
from fwpipe.pipeline.units import consume, forget, read_rows, read_tokens
from fwpipe.tokenizer import VOCAB_SIZE

log = logging.getLogger(__name__)

READ_BACK_TOKENS = 1 << 24  # a resumed part's histogram is read back 32 MB at a time


@dataclass(frozen=True)
class ShardTask:
    index: int
    path: str  # the shard file
    part: str  # where it is written until it is finished (its journal: part + ".json")
    stats_path: str
    n_tokens: int
    pieces: tuple[Piece, ...]

    def digest(self) -> str:
        """What the part file holds is decided by the pieces: a journal of other pieces is not its."""
        return hashlib.sha256(repr((self.n_tokens, self.pieces)).encode()).hexdigest()[:16]


def assemble_split(tasks: tuple[ShardTask, ...]) -> int:
    """Write the shards in order (or skip finished ones); returns their tokens."""
    return sum(assemble_shard(t) for t in tasks)


def assemble_shard(task: ShardTask) -> int:
    """Write one shard and its statistics (or skip a finished one); returns its token count."""
    path = Path(task.path)
    if _finished(task):
        _free_consumed(task.pieces)  # a run killed between the rename and freeing the last unit
        discard(task.part + ".json")
        return task.n_tokens
    part = ShardPart(task)
    try:
        _free_consumed(task.pieces[: part.pieces])  # a run killed between a journal and freeing its unit
        hist = part.hist
        for j in range(part.pieces, len(task.pieces)):
            p = task.pieces[j]
            if p.tok_hi > p.tok_lo:
                stream = _unit_tokens(p)
                tokens = stream[p.tok_lo : p.tok_hi]
                part.write(tokens)
                hist += np.bincount(tokens, minlength=VOCAB_SIZE)  # numpy, not numba: --dedup none never loads numba
                last = p.tok_hi == len(stream)
                del stream, tokens
                if last:  # the unit's stream ends here: make the part durable, then free the unit's tokens
                    part.journal(j + 1)
                    consume(p.unit_dir, p.split)
        if part.n_tokens != task.n_tokens:
            raise AssertionError(f"{path}: {part.n_tokens} tokens assembled, {task.n_tokens} planned")
        part.seal()
        t = rows_table(task.pieces, task.index, ["status", "n_tokens"])
        ok = t["status"].to_numpy() == OK
        write_npy_atomic(Path(task.stats_path), np.concatenate([hist, length_histogram(t["n_tokens"].to_numpy()[ok])]))
        commit_file(task.part, path)
        discard(task.part + ".json")
    except BaseException:
        part.close()
        raise
    log.info("finished %s: %d tokens", path.name, task.n_tokens)
    return task.n_tokens


def _unit_tokens(p: Piece) -> np.ndarray:
    try:
        return read_tokens(p.unit_dir, p.split)
    except FileNotFoundError as e:  # freed into a part file that is gone (someone cleaned .work by hand)
        forget(p.unit_dir)  # the next run tokenizes that unit again
        raise OutputError(
            f"{e.filename}: freed into a shard that is no longer under .work",
            "run the same command again: the units it needs are redone",
        ) from e


def _free_consumed(pieces: tuple[Piece, ...]) -> None:
    for p in pieces:
        if p.tok_hi > p.tok_lo:
            f = Path(p.unit_dir) / f"{p.split}.tokens"
            if f.exists() and f.stat().st_size == 2 * p.tok_hi:
                consume(p.unit_dir, p.split)


class ShardPart:
    """A shard's part file: new, or resumed from its journal (pieces, tokens)."""

    def __init__(self, task: ShardTask):
        self.task = task
        self.path = Path(task.part)
        self.pieces = self.n_tokens = 0
        self.hist = np.zeros(VOCAB_SIZE, dtype=np.int64)
        self.f = None
        j = self._read_journal()
        try:
            if j is not None:
                self.f = open(self.path, "r+b", buffering=0)
                self.pieces, self.n_tokens = j["pieces"], j["tokens"]
                self.f.truncate(shards.HEADER_BYTES + 2 * self.n_tokens)  # what the journal vouches for
                self.f.seek(0, os.SEEK_END)
                self._read_back()
            else:
                discard(task.part + ".json")
                self.f = open_new(self.path)
                self.f.write(shards.header(0).tobytes())
        except OSError as e:
            self.close()
            raise output_error(task.path, e) from e

    def _read_journal(self) -> dict | None:
        try:
            j = json.loads(Path(self.task.part + ".json").read_text())
            if j["plan"] != self.task.digest() or self.path.stat().st_size < shards.HEADER_BYTES + 2 * j["tokens"]:
                return None
            return j
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _read_back(self) -> None:
        """The histogram of the tokens a previous run put in the part file."""
        for lo in range(0, self.n_tokens, READ_BACK_TOKENS):
            n = min(READ_BACK_TOKENS, self.n_tokens - lo)
            t = np.fromfile(self.path, dtype=shards.TOKEN_DTYPE, count=n, offset=shards.HEADER_BYTES + 2 * lo)
            self.hist += np.bincount(t, minlength=VOCAB_SIZE)

    def write(self, tokens: np.ndarray) -> None:
        if self.n_tokens + len(tokens) >= 2**31:
            raise ShardFormatError(
                f"{self.task.path}: over 2**31 tokens do not fit an llm.c header", "lower --shard-tokens"
            )
        try:
            self.f.write(np.ascontiguousarray(tokens, dtype=shards.TOKEN_DTYPE).data)
        except OSError as e:
            raise output_error(self.task.path, e) from e
        self.n_tokens += len(tokens)

    def journal(self, pieces: int) -> None:
        """Make the tokens so far durable, then record them: a rerun resumes here."""
        try:
            os.fsync(self.f.fileno())
        except OSError as e:
            raise output_error(self.task.path, e) from e
        write_json(self.task.part + ".json", {"plan": self.task.digest(), "pieces": pieces, "tokens": self.n_tokens})

    def seal(self) -> None:
        try:
            self.f.seek(0)
            self.f.write(shards.header(self.n_tokens).tobytes())
            os.fsync(self.f.fileno())
            self.f.close()
        except OSError as e:
            raise output_error(self.task.path, e) from e

    def close(self) -> None:
        """Close, keeping the file: its journal says what in it a rerun may keep."""
        try:
            if self.f is not None and not self.f.closed:
                self.f.close()
        except OSError as e:
            log.debug("could not close %s: %s", self.path, e)


def _finished(task: ShardTask) -> bool:
    if not (Path(task.path).exists() and Path(task.stats_path).exists()):
        return False
    try:
        return len(shards.read_shard(Path(task.path))) == task.n_tokens
    except ShardFormatError:
        return False


def rows_table(pieces: tuple[Piece, ...] | list[Piece], index: int, columns: list[str] | None = None) -> pa.Table:
    """The shard's rows (ROWS_SCHEMA, or those `columns` of it): the pieces' unit rows with shard
    and offset added.

    offset is the document's first token (just after its EOT) from the shard's first token, -1
    for a skipped row.
    """
    names = columns or ROWS_SCHEMA.names
    schema = pa.schema([ROWS_SCHEMA.field(n) for n in names])
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
        parts.append(t.select(names).cast(schema))
        pos += int(cum[-1]) if len(cum) else 0
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts).combine_chunks()
