"""prepare's work units: whole row groups of one input, tokenized into files of their own.

A unit is numbered by its place in the inputs (file order, then row order) and knows its global
row offset from parquet metadata alone (Source.row_groups), never from when it ran, so any
number of workers, processes or nodes writes the same unit files:

    .work/units/u000003/train.tokens        uint16 stream, EOT before every OK document (no header)
    .work/units/u000003/val.tokens
    .work/units/u000003/train.rows.arrow    every input row of the split (ROWS_SCHEMA minus shard, offset)
    .work/units/u000003/val.rows.arrow
    .work/units/u000003/unit.json           the completion marker, written last

Each file is written atomically; the marker records their sizes and sha256s and the identity
of everything that decides their bytes. A rerun that finds a marker whose files and identity
check out skips the unit; anything else in the unit's directory is redone. Once a split's
tokens are in the shards (assemble.py), the marker says so ("consumed") before the token file
is deleted, so a marker never vouches for a file that is gone; the rows tables stay until
finalize has read them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from fwpipe import remote, shards
from fwpipe.atomic import output_error, write_bytes, write_json
from fwpipe.errors import FwpipeError
from fwpipe.pipeline.inputs import Source, file_sha256, read_batches
from fwpipe.pipeline.split import SPLIT_NAMES
from fwpipe.pipeline.tokenize import OK, ChunkRows, encode_chunk
from fwpipe.quality.filter import make_check
from fwpipe.tokenizer import DEFAULT_ENGINE

# A unit closes after the row group that brings it to 64Ki rows or 8 MB of compressed input,
# whichever comes first. Its fixed costs (a process round trip, opening the file, six files with
# their fsyncs, the driver reading two columns back: ~20-50 ms) stay a few % of its tokenizing
# time: 8 MB of FineWeb parquet is ~20 MB of text, ~5M tokens, ~1.2 s on one core, and 64Ki
# rows of 45-token documents are ~3M tokens, ~1.5 s. Smaller units balance better: at 32 MB a
# 50 MB file made 2 units and prepare ran at 0.81 of the tokenizer ceiling on 2 cores, at 8 MB
# it made 7 and ran at 1.04 (bench/prepare_bench.py --only long). A 2 GB FineWeb file makes
# ~240 units, and a budget's overshoot (a wave misjudged) stays small.
UNIT_ROWS = 1 << 16
UNIT_BYTES = 8 << 20
# A tokenizer batch (one encode_chunk call) is ~2 MB of compressed input (~5 MB of text), 1Ki
# to 16Ki rows: each batch pays ~1 ms of fixed work (gigatoken's result array, a histogram over
# 50,257 ids, a dozen numpy passes, two arrow arrays), ~1 us a row in 1Ki-row batches of 45-token
# documents; long FineWeb documents (~2 KB compressed) keep 1Ki-row batches. Batching never
# changes the bytes written.
BATCH_BYTES = 2 << 20
BATCH_ROWS = (1 << 10, 1 << 14)
UNIT_VERSION = 2  # bump when the files a unit writes change
MARKER = "unit.json"
# the files every unit writes, and so exactly the files its marker must list (each size- and
# sha-checked): a marker listing fewer would vouch for files nobody checked
UNIT_FILES = tuple(f"{s}.{kind}" for s in SPLIT_NAMES for kind in ("tokens", "rows.arrow"))
UNIT_ROWS_SCHEMA = pa.schema(
    [
        f
        for f in (
            ("gpos", pa.int64()),
            ("file_index", pa.int32()),
            ("source_row", pa.int64()),
            ("status", pa.int8()),
            ("n_tokens", pa.int64()),
            ("n_bytes", pa.int64()),
            ("key_hash", pa.uint64()),
            ("fineweb_token_count", pa.int64()),
            ("placeholder", pa.bool_()),
            ("id", pa.string()),
            ("url", pa.string()),
        )
    ]
)


@dataclass(frozen=True)
class Unit:
    """Rows [row_start, row_end) of input `file_index`, whose row 0 is global row `file_gpos0`."""

    index: int
    file_index: int
    row_start: int
    row_end: int
    file_gpos0: int


def plan_units(sources: list[Source], unit_rows: int = UNIT_ROWS, unit_bytes: int = UNIT_BYTES) -> list[Unit]:
    """The units of `sources`, in input order, from their parquet metadata only."""
    units: list[Unit] = []
    gpos0 = 0
    for fi, src in enumerate(sources):
        bytes_per_row = src.bytes / max(src.rows, 1)
        start = pos = 0
        for n in src.row_groups:
            pos += n
            if pos - start >= unit_rows or (pos - start) * bytes_per_row >= unit_bytes:
                units.append(Unit(len(units), fi, start, pos, gpos0))
                start = pos
        if pos > start:
            units.append(Unit(len(units), fi, start, pos, gpos0))
        gpos0 += src.rows
    return units


def batch_rows_for(source: Source) -> int:
    """Rows a tokenizer batch of `source` holds: BATCH_BYTES of its compressed input, within BATCH_ROWS."""
    lo, hi = BATCH_ROWS
    return int(min(hi, max(lo, BATCH_BYTES * max(source.rows, 1) // max(source.bytes, 1))))


def unit_dir(units: Path, index: int) -> Path:
    return units / f"u{index:06d}"


@dataclass(frozen=True)
class UnitTask:
    """Everything a unit needs, as plain picklable values (it may run on another node)."""

    dir: str
    unit: Unit
    source: Source
    text_column: str
    seed: int
    threshold: int
    max_doc_tokens: int
    forced_val: tuple[int, ...]  # the dataset's forced val rows that lie in this unit
    tokenizer: dict  # the BPE files' sha256s
    batch_rows: int | None = None  # None: batch_rows_for(source)
    engine: str = DEFAULT_ENGINE  # the tokenizer engine; not in identity(): both write the same bytes
    filters: tuple[str, ...] = ()  # prepare --filter (fwpipe.quality.filter)

    @property
    def rows(self) -> int:
        return self.unit.row_end - self.unit.row_start

    def identity(self) -> dict:
        """What decides the unit's bytes (not where it runs, its directory, its batch size or engine)."""
        s, u = self.source, self.unit
        return {
            "version": UNIT_VERSION,
            "file_index": u.file_index,
            "rows": [u.row_start, u.row_end],
            "file_gpos0": u.file_gpos0,
            "source": {"bytes": s.bytes, "rows": s.rows, "sha256": s.sha256, "revision": s.revision},
            "text_column": self.text_column,
            "seed": self.seed,
            "threshold": self.threshold,
            "max_doc_tokens": self.max_doc_tokens,
            "forced_val": list(self.forced_val),
            "tokenizer": self.tokenizer,
        } | ({"filters": list(self.filters)} if self.filters else {})


def run_unit(task: UnitTask) -> dict:
    """Tokenize one unit into its directory, or verify and skip a finished one.

    Returns its marker's result ({"train": {...}, "val": {...}}) with "ran"; a bad input comes
    back as {"error": FwpipeError} so the driver decides whether the run needed that unit.
    """
    d = Path(task.dir)
    identity = task.identity()
    done = verified(d, identity)
    if done is not None:
        return dict(done, ran=False)
    before = remote.STATS.snapshot()
    try:
        result = _tokenize(task, d, identity)
    except FwpipeError as e:
        return {"error": e}
    # what it fetched, for a driver in another process to count (remote.STATS is per process)
    return dict(result, ran=True, pid=os.getpid(), fetched=remote.since(before))


def verified(d: Path, identity: dict) -> dict | None:
    """The result in `d`'s marker if it names this identity and every file matches it, else None."""
    try:
        m = json.loads((d / MARKER).read_text())
        if m["identity"] != json.loads(json.dumps(identity)):
            return None
        if sorted(m["files"]) != sorted(UNIT_FILES):
            return None
        freed = {f"{s}.tokens" for s in m.get("consumed", [])}  # in the shards now: assemble.py vouches for them
        for name in UNIT_FILES:
            if name in freed:
                continue
            f = m["files"][name]
            p = d / name
            if not p.is_file() or p.stat().st_size != f["bytes"] or file_sha256(p) != f["sha256"]:
                return None
        return m["result"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def consume(d: str | Path, split: str) -> None:
    """`split`'s tokens of unit `d` are durably in the shards: say so in the marker, then free them."""
    d = Path(d)
    m = json.loads((d / MARKER).read_text())
    if split not in m.get("consumed", []):
        m["consumed"] = sorted({*m.get("consumed", []), split})
        write_json(d / MARKER, m)
    (d / f"{split}.tokens").unlink(missing_ok=True)


def forget(d: str | Path) -> None:
    """Unit `d` is to be done again: its marker goes (its files are then unvouched for, and redone)."""
    (Path(d) / MARKER).unlink(missing_ok=True)


class UnitWriter:
    """The token stream and rows table of each split of one unit, and its marker (also used by
    --dedup's second pass, whose units copy kept documents instead of tokenizing)."""

    def __init__(self, d: Path):
        try:
            if d.exists():
                shutil.rmtree(d)  # a unit's directory is redone whole
            d.mkdir(parents=True)
        except OSError as e:
            raise output_error(d, e) from e
        self.d = d
        self.files: dict[str, dict] = {}
        self.tokens = [shards.TokenFileWriter(d / f"{s}.tokens", with_header=False) for s in SPLIT_NAMES]
        self.hashes = [hashlib.sha256() for _ in SPLIT_NAMES]
        self.cols: list[dict[str, list]] = [{f.name: [] for f in UNIT_ROWS_SCHEMA} for _ in SPLIT_NAMES]

    def add(self, sid: int, rows: ChunkRows) -> None:
        if len(rows.stream):
            stream = np.ascontiguousarray(rows.stream, dtype=shards.TOKEN_DTYPE)
            self.tokens[sid].write(stream)
            self.hashes[sid].update(stream.data)
        c = self.cols[sid]
        for name in (
            "gpos",
            "file_index",
            "source_row",
            "status",
            "n_tokens",
            "n_bytes",
            "key_hash",
            "fineweb_token_count",
            "placeholder",
        ):
            c[name].append(getattr(rows, name))
        for name, v in (("id", rows.ids), ("url", rows.urls)):
            c[name].append(v if isinstance(v, pa.Array) else pa.array(v, pa.string()))

    def commit(self, identity: dict) -> dict:
        """Make every file durable, then the marker; returns the result the marker holds."""
        result = {}
        for sid, split in enumerate(SPLIT_NAMES):
            w = self.tokens[sid]
            w.commit()
            self.files[w.path.name] = {"bytes": w.path.stat().st_size, "sha256": self.hashes[sid].hexdigest()}
            t = _table(self.cols[sid])
            # Arrow IPC, uncompressed: written and read back (memory-mapped) at memory speed; the
            # rows are read twice more (layout, assembly), which zstd parquet made ~10% of the
            # CPU time of short documents
            sink = pa.BufferOutputStream()
            with pa.ipc.new_file(sink, t.schema) as f:
                f.write_table(t)
            buf = sink.getvalue()
            name = f"{split}.rows.arrow"
            write_bytes(self.d / name, [buf])
            self.files[name] = {"bytes": buf.size, "sha256": hashlib.sha256(buf).hexdigest()}
            status, n_tokens = t["status"].to_numpy(), t["n_tokens"].to_numpy()
            ok = status == OK
            result[split] = {
                "rows": t.num_rows,
                "docs": int(ok.sum()),
                "tokens": int(n_tokens[ok].sum()),
                "stream_tokens": int(n_tokens[ok].sum() + ok.sum()),
            }
        write_json(self.d / MARKER, {"identity": identity, "files": self.files, "result": result})
        return result

    def abort(self) -> None:
        for w in self.tokens:
            w.abort()


def _table(c: dict[str, list]) -> pa.Table:
    cols = {}
    for f in UNIT_ROWS_SCHEMA:
        v = c[f.name]
        if f.name in ("id", "url"):
            cols[f.name] = pa.concat_arrays(v) if v else pa.array([], f.type)
        else:
            cols[f.name] = pa.array(np.concatenate(v) if v else np.zeros(0, f.type.to_pandas_dtype()), type=f.type)
    return pa.table(cols, schema=UNIT_ROWS_SCHEMA)


def _tokenize(task: UnitTask, d: Path, identity: dict) -> dict:
    u = task.unit
    w = UnitWriter(d)
    try:
        forced_val = frozenset(task.forced_val)
        check = make_check(task.filters) if task.filters else None
        for b in read_batches(
            task.source,
            u.file_index,
            task.text_column,
            start_row=u.row_start,
            end_row=u.row_end,
            batch_rows=task.batch_rows or batch_rows_for(task.source),
        ):
            pair = encode_chunk(
                b.text_array,
                b.id_array,
                b.token_counts,
                b.url_array,
                file_index=u.file_index,
                row0=b.row0,
                gpos0=u.file_gpos0 + b.row0,
                seed=task.seed,
                threshold=task.threshold,
                cursors=(-1, -1),
                forced_val=forced_val,
                max_doc_tokens=task.max_doc_tokens,
                engine=task.engine,
                check=check,
            )
            for sid, rows in enumerate(pair):
                w.add(sid, rows)
        return w.commit(identity)
    except BaseException:
        w.abort()
        raise


def read_rows(d: str | Path, split: str, columns: list[str] | None = None) -> pa.Table:
    t = pa.ipc.open_file(pa.memory_map(str(Path(d) / f"{split}.rows.arrow"))).read_all()
    return t.select(columns) if columns else t


def read_tokens(d: str | Path, split: str) -> np.ndarray:
    return shards.read_raw_bin(Path(d) / f"{split}.tokens")
