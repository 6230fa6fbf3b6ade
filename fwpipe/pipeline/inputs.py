"""Finding, checking and streaming parquet inputs.

Inputs are read by record batch so memory follows the batch size, never the file size. Every
check that can fail on a user's file happens here and names the file.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fwpipe import remote
from fwpipe.errors import InputFormatError, InputNotFoundError

log = logging.getLogger(__name__)

KEY_COLUMN = "id"  # FineWeb's `<urn:uuid:...>`; the text itself where it is missing or null
TOKEN_COUNT_COLUMN = "token_count"  # FineWeb's GPT-2 count of `text`
URL_COLUMN = "url"


def resolve_inputs(inputs: list[str]) -> list[Path | str]:
    """Files as given, directories as their sorted *.parquet, globs as their sorted matches.

    URLs (https://, s3://, hf://; see fwpipe.remote) stay strings: one file, or a glob's matches.
    """
    if not inputs:
        raise InputNotFoundError(
            "no input given", "pass parquet files, a directory or a glob, or --sample for the bundled sample"
        )
    remote.forget()  # a remote file may have changed since the last command in this process
    out: list[Path | str] = []
    for spec in inputs:
        p = Path(spec)
        if remote.is_url(spec):
            out.extend(remote.expand(spec))
        elif any(c in spec for c in "*?["):
            matches = sorted(Path(m) for m in globlib.glob(spec, recursive=True) if Path(m).is_file())
            if not matches:
                raise InputNotFoundError(
                    f"{spec}: the glob matches no files",
                    "check the pattern, and quote it so the shell does not expand it",
                )
            out.extend(matches)
        elif p.is_dir():
            matches = sorted(p.glob("*.parquet"))
            for m in matches:
                _regular(m)
            if not matches:
                raise InputNotFoundError(
                    f"{p}: the directory holds no *.parquet files",
                    "pass the directory that holds the FineWeb parquet shards",
                )
            out.extend(matches)
        elif p.exists():
            out.append(p)
            _regular(p)
        else:
            raise InputNotFoundError(f"{p}: no such file or directory", "check the path")
    seen: set[Path | str] = set()
    unique = []
    for p in out:  # the same file named twice would double every document
        key = remote.public_url(p) if isinstance(p, str) else p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _regular(p: Path) -> None:
    """A FIFO, socket or device named x.parquet would block the first read forever: refused."""
    if not p.is_file():
        raise InputFormatError(f"{p}: not a regular file (a FIFO, socket or device)", "pass the parquet file itself")


@dataclass(frozen=True)
class Source:
    """One parquet input: where it is, what it holds, and a fingerprint of its bytes."""

    path: str
    bytes: int
    rows: int
    sha256: str
    row_groups: tuple[int, ...]  # rows per row group, to resume without reading what is done
    has_id: bool
    has_token_count: bool
    has_url: bool
    revision: str = ""  # remote only: ETag, S3 version id or Hub commit
    url: str = field(default="", repr=False, compare=False)  # remote only: what opens it (may hold a credential)
    text_bytes: int = field(default=0, compare=False)  # the text column, uncompressed, from the footer (space.py)
    stat_key: str = field(default="", repr=False, compare=False)  # local only: stat_key() when it was hashed

    def to_json(self) -> dict:
        d = {"path": self.path, "bytes": self.bytes, "rows": self.rows, "sha256": self.sha256}
        return {**d, "revision": self.revision} if self.url else d


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def open_parquet(path: Path | str) -> pq.ParquetFile:
    if isinstance(path, str) and remote.is_url(path):
        info = remote.stat(path)
        local = remote.cached_copy(info, download=False)  # a revisionless file: its whole copy is the file
        if local is not None:
            return open_parquet(local)
        try:
            return _open_remote(info)
        except remote.RangeIgnored:
            local = remote.cached_copy(info, download=True)  # with --cache-dir: one whole read instead
            if local is None:
                raise
            return open_parquet(local)
    try:
        # pre_buffer would read every requested column chunk ahead (the whole file): memory
        # would then follow the file size. Buffered streaming reads keep it to a few MB.
        return pq.ParquetFile(path, pre_buffer=False, buffer_size=8 << 20)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
        raise InputFormatError(
            f"{path}: not a readable parquet file ({str(e).splitlines()[0][:120]})",
            "check that it is a complete .parquet file (a truncated download or a renamed CSV fails here)",
        ) from e


def _open_remote(info: remote.RemoteInfo, *, stream: bool = False) -> pq.ParquetFile:
    """A remote parquet file through range requests (footer once; with `stream`, one request per row group)."""
    rf = remote.RangeFile(info)
    try:
        # buffered: a column chunk is read page by page, so --estimate's sample windows (a few
        # documents at a row group's start) fetch about one data page (~1 MB), not the chunk
        pf = pq.ParquetFile(rf, pre_buffer=False, buffer_size=256 << 10)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
        raise InputFormatError(
            f"{info.public}: not a readable parquet file ({str(e).splitlines()[0][:120]})",
            "check that the URL names a .parquet file",
        ) from e
    if stream:
        rf.stream(remote.row_group_offsets(pf.metadata))
    pf.range_file = rf  # for the sha256 computed while streaming, and estimate's prefetch
    return pf


def open_source(source: Source, *, stream: bool = False) -> pq.ParquetFile:
    """The parquet file behind `source`, local or remote (a --cache-dir copy where there is one)."""
    if not source.url:
        return open_parquet(Path(source.path))
    if source.revision.startswith(
        "sha256:"
    ):  # a revisionless file read whole into --cache-dir: that copy, in any process
        return open_parquet(
            remote.cached_copy(
                remote.RemoteInfo(source.url, source.path, source.bytes, source.revision), download=False
            )
        )
    info = remote.stat(source.url)
    if (
        info.revision != source.revision or info.size != source.bytes
    ):  # stat again in another process: the file moved on
        raise remote.RemoteError(
            f"{source.path}: changed on the server since this run began (revision {source.revision[:24]} is gone)",
            "run the same command again with --overwrite to prepare the new file",
        )
    local = remote.cached_copy(info, download=stream)  # only a stream that reads the file whole downloads it
    return open_parquet(local) if local is not None else _open_remote(info, stream=stream)


def _is_str(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_key_type(t: pa.DataType) -> bool:
    return _is_str(t) or pa.types.is_integer(t)


def stat_key(path: Path) -> str:
    """What says a local file is byte for byte the one hashed before: its device, inode, size,
    modification and change times. Any write changes the change time, which no user call can
    set back (unlike the modification time), so a rewritten or replaced file never matches."""
    st = os.stat(path)
    return f"{os.path.realpath(path)}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def inspect(path: Path, text_column: str, *, hash_content: bool = True, known: dict[str, str] | None = None) -> Source:
    """Check schema and footer of one input and fingerprint it, reading no text.

    A remote file's fingerprint is its size and revision (and the server's sha256 where it
    states one): hashing it here would download it. known: sha256s by stat_key, recorded by an
    interrupted run of the same command (prepare's .work/inputs.json): a file whose stat_key
    is there is not hashed again.
    """
    info = remote.stat(path) if isinstance(path, str) and remote.is_url(path) else None
    key = (
        stat_key(path) if info is None and hash_content else None
    )  # taken before hashing: a write meanwhile changes it
    pf = open_parquet(path)
    schema = pf.schema_arrow
    if text_column not in schema.names:
        raise InputFormatError(
            f"{path}: no column {text_column!r}; it has {', '.join(schema.names)}",
            "pass --text-column NAME with the column that holds the documents",
        )
    twice = [c for c in (text_column, KEY_COLUMN, TOKEN_COUNT_COLUMN, URL_COLUMN) if schema.names.count(c) > 1]
    if twice:  # which one holds the documents? a guess could tokenize the wrong one
        raise InputFormatError(
            f"{path}: {schema.names.count(twice[0])} columns are named {twice[0]!r}",
            "write the file again with one column of that name (or pass --text-column NAME for another)",
        )
    ttype = schema.field(text_column).type
    if pa.types.is_dictionary(ttype) and _is_str(ttype.value_type):
        ttype = ttype.value_type  # dictionary-encoded strings read as strings (to_pylist decodes them)
    if not _is_str(ttype):
        raise InputFormatError(
            f"{path}: column {text_column!r} is {ttype}, not a string", "pass --text-column NAME with a string column"
        )
    md = pf.metadata
    leaf = [md.schema.column(i).path for i in range(md.num_columns)].index(text_column)
    return Source(
        path=info.public if info else str(path),
        bytes=info.size if info else path.stat().st_size,
        rows=md.num_rows,
        sha256=info.sha256 if info else (known or {}).get(key) or file_sha256(path) if hash_content else "",
        row_groups=tuple(md.row_group(i).num_rows for i in range(md.num_row_groups)),
        has_id=KEY_COLUMN in schema.names and text_column != KEY_COLUMN and _is_key_type(schema.field(KEY_COLUMN).type),
        has_token_count=TOKEN_COUNT_COLUMN in schema.names
        and pa.types.is_integer(schema.field(TOKEN_COUNT_COLUMN).type),
        has_url=URL_COLUMN in schema.names and _is_str(schema.field(URL_COLUMN).type),
        revision=info.revision if info else "",
        url=info.url if info else "",
        text_bytes=sum(md.row_group(i).column(leaf).total_uncompressed_size for i in range(md.num_row_groups)),
        stat_key=key or "",
    )


def inspect_all(paths: list[Path | str], text_column: str, known: dict[str, str] | None = None) -> list[Source]:
    """inspect() of every input, in order, local files hashed on several threads at once.

    Hashing is most of a big input's start-up (sha256 runs ~0.6-1.5 GB/s a core here: ~2 s for
    one 2 GB FineWeb file) and hashlib releases the GIL, so 2 cores halve it. Remote inputs are
    inspected one by one, as before. An error names the first bad input in order.
    """
    from concurrent.futures import ThreadPoolExecutor

    is_local = [not (isinstance(p, str) and remote.is_url(p)) for p in paths]
    workers = min(sum(is_local), os.cpu_count() or 1)
    if workers <= 1:
        return [inspect(p, text_column, known=known) for p in paths]
    pool = ThreadPoolExecutor(workers, thread_name_prefix="fwpipe-hash")
    try:
        futures = [
            pool.submit(inspect, p, text_column, known=known) if local else None for p, local in zip(paths, is_local)
        ]
        return [f.result() if f is not None else inspect(p, text_column) for p, f in zip(paths, futures)]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # after an error, start no more hashing


def strings(col: pa.Array, path: str, column: str, row0: int, where: str = "row") -> list:
    """`col` as Python values; a string that is not valid UTF-8 is named by file, column and row.

    `row0` is the file row (or, with where="row group", the row group) of the first value.
    """
    try:
        return col.to_pylist()
    except UnicodeDecodeError:
        bad = next(i for i, b in enumerate(col.cast(pa.binary()).to_pylist()) if b is not None and not _utf8(b))
        at = f"row {row0 + bad}" if where == "row" else f"{where} {row0}"
        raise InputFormatError(
            f"{path}: column {column!r}, {at}, is not valid UTF-8",
            "repair the file (e.g. decode that text with errors='replace' and write the file again) or leave the file out",
        ) from None


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _token_counts(col: pa.Array) -> list[int | None]:
    """FineWeb's token_count as int64-safe values: a uint64 past 2^63 is no count at all (null)."""
    return [c if c is None or -(1 << 63) <= c < (1 << 63) else None for c in col.to_pylist()]


def _ids(col: pa.Array, path: str, column: str, row0: int) -> list[str | None]:
    ids = strings(col, path, column, row0)
    return [None if i is None else str(i) for i in ids] if pa.types.is_integer(col.type) else ids


@dataclass
class Batch:
    """A slice of one input: rows [row0, row0 + len(texts)) of source `file_index`.

    Texts, ids and urls stay arrow string arrays (null where the input has none): the unit hands
    the texts to gigatoken and writes ids and urls as they are, and a Python str a row costs
    ~0.3 us to make (and ids and urls as much again to turn back into arrow).
    """

    file_index: int
    row0: int
    text_array: pa.Array  # string
    id_array: pa.Array  # string
    token_counts: list[int | None]
    url_array: pa.Array  # string
    n_bytes: int  # compressed input bytes this batch stands for, for the ETA

    @cached_property
    def texts(self) -> list[str | None]:
        return self.text_array.to_pylist()

    @cached_property
    def ids(self) -> list[str | None]:
        return self.id_array.to_pylist()

    @cached_property
    def urls(self) -> list[str | None]:
        return self.url_array.to_pylist()


def string_array(col: pa.Array, path: str, column: str, row0: int) -> pa.Array:
    """`col` as a pa.string() array, checked as strings() checks it (an integer id: its decimal text)."""
    if pa.types.is_string(col.type):
        try:
            col.validate(full=True)  # UTF-8 included, in C
            return col
        except pa.ArrowInvalid:
            pass  # strings() names the row
    values = _ids(col, path, column, row0) if pa.types.is_integer(col.type) else strings(col, path, column, row0)
    return pa.array(values, pa.string())


def read_batches(
    source: Source,
    file_index: int,
    text_column: str,
    *,
    start_row: int = 0,
    end_row: int | None = None,
    batch_rows: int = 1024,
) -> Iterator[Batch]:
    """Stream rows [start_row, end_row), skipping whole row groups that lie outside them."""
    pf = open_source(source, stream=True)
    columns = [text_column]
    if source.has_id:
        columns.append(KEY_COLUMN)
    if source.has_token_count:
        columns.append(TOKEN_COUNT_COLUMN)
    if source.has_url and URL_COLUMN not in columns:
        columns.append(URL_COLUMN)
    first_rg, rg_row0 = 0, 0
    for n in source.row_groups:
        if rg_row0 + n > start_row:
            break
        rg_row0 += n
        first_rg += 1
    last_rg, rg_end = first_rg, rg_row0
    while last_rg < len(source.row_groups) and (end_row is None or rg_end < end_row):
        rg_end += source.row_groups[last_rg]
        last_rg += 1
    row_groups = list(range(first_rg, last_rg))
    if not row_groups:
        return
    bytes_per_row = source.bytes / max(source.rows, 1)
    row = rg_row0
    try:
        for rb in pf.iter_batches(batch_size=batch_rows, row_groups=row_groups, columns=columns, use_threads=False):
            n = rb.num_rows
            if end_row is not None and row >= end_row:
                break
            if row + n <= start_row:
                row += n
                continue
            lo = max(0, start_row - row)
            if end_row is not None and row + n > end_row:
                rb = rb.slice(0, end_row - row)
            if lo:
                rb = rb.slice(lo)
            col = {name: rb.column(i) for i, name in enumerate(rb.schema.names)}
            yield Batch(
                file_index=file_index,
                row0=row + lo,
                text_array=string_array(col[text_column], source.path, text_column, row + lo),
                id_array=string_array(col[KEY_COLUMN], source.path, KEY_COLUMN, row + lo)
                if source.has_id
                else pa.nulls(rb.num_rows, pa.string()),
                token_counts=_token_counts(col[TOKEN_COUNT_COLUMN]) if source.has_token_count else [None] * rb.num_rows,
                url_array=string_array(col[URL_COLUMN], source.path, URL_COLUMN, row + lo)
                if source.has_url
                else pa.nulls(rb.num_rows, pa.string()),
                n_bytes=int(bytes_per_row * rb.num_rows),
            )
            row += n
        _check_streamed(source, pf)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
        raise InputFormatError(
            f"{source.path}: cannot read row {row} ({str(e).splitlines()[0][:120]})",
            "the file is truncated or corrupt; download it again",
        ) from e


def _check_streamed(source: Source, pf: pq.ParquetFile) -> None:
    """A remote file streamed whole has its sha256: it must match the server's where it gave one."""
    rf = getattr(pf, "range_file", None)
    if rf is None or rf.sha256 is None:
        return
    if source.sha256 and rf.sha256 != source.sha256:
        raise remote.RemoteError(
            f"{source.path}: the streamed bytes' sha256 {rf.sha256[:12]}... is not the server's {source.sha256[:12]}...",
            "the file changed or was corrupted in transit; run the same command again",
        )
    log.info("%s: streamed whole, sha256 %s", source.path, rf.sha256)
