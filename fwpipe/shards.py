"""The token-shard format: the only module that reads or writes token bytes.

Two file layouts are read, both are written (the directory around them is fwpipe.dataset's):

* fwpipe / llm.c / modded-nanogpt shards: a header of 256 little-endian int32 (magic 20240520,
  version 1, token count, the rest zero), then the tokens as little-endian uint16. EOT (50256)
  stands *before* every document.
* nanoGPT `train.bin` / `val.bin`: raw little-endian uint16, EOT *after* every document.

Either way a document is a non-empty run of tokens between EOTs, so every reader finds
documents the same way (kernels.doc_bounds) whatever the convention.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fwpipe.atomic import AtomicWriter, write_bytes
from fwpipe.errors import InputNotFoundError, OutputError, ShardFormatError
from fwpipe.tokenizer import VOCAB_SIZE

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_DTYPE = np.dtype("<u2")  # since EOT == 50256 < 2**16
SLICE_TOKENS = 1 << 24  # tokens a pass over a whole shard maps at once (32 MB), their pages dropped after
_HINT = "free disk space or choose another -o directory, then re-run to resume"


def header(n_tokens: int) -> np.ndarray:
    h = np.zeros(HEADER_INTS, dtype="<i4")
    h[0], h[1], h[2] = MAGIC, VERSION, n_tokens
    return h


def write_shard(path: Path, tokens: np.ndarray) -> None:
    """Write one llm.c-format shard atomically (temp file, fsync, rename)."""
    tokens = np.ascontiguousarray(tokens, dtype=TOKEN_DTYPE)
    if len(tokens) >= 2**31:
        raise ShardFormatError(f"{path}: {len(tokens):,} tokens do not fit an llm.c header", "lower --shard-tokens")
    write_bytes(path, [header(len(tokens)).tobytes(), tokens.data], hint=_HINT)


def shard_tokens(path: Path) -> int:
    """The token count of one llm.c-format shard, after checking its header and size (the ids
    are not read: read_shard checks them)."""
    path = Path(path)
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise ShardFormatError(
            f"{path}: {size} bytes is shorter than the 1024-byte llm.c header", "re-run fwpipe prepare"
        )
    h = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if h[0] != MAGIC:
        raise ShardFormatError(
            f"{path}: magic {h[0]} is not {MAGIC}, not an llm.c shard", "pass a fwpipe, nanoGPT or llm.c dataset"
        )
    if h[1] != VERSION:
        raise ShardFormatError(
            f"{path}: shard version {h[1]} is not {VERSION} (uint16 tokens)",
            "re-tokenize with GPT-2 into version-1 shards",
        )
    expected = HEADER_BYTES + int(h[2]) * TOKEN_DTYPE.itemsize
    if size != expected:
        raise ShardFormatError(
            f"{path}: header says {int(h[2]):,} tokens ({expected:,} bytes) but the file has {size:,} bytes",
            "the shard is truncated or corrupt; delete it and re-run fwpipe prepare",
        )
    return int(h[2])


def read_shard(path: Path) -> np.memmap:
    """Memory-map the tokens of one llm.c-format shard after checking header and size."""
    path = Path(path)
    n = shard_tokens(path)
    if n == 0:
        return np.zeros(0, dtype=TOKEN_DTYPE)  # np.memmap cannot map zero bytes
    return check_token_ids(
        path, np.memmap(path, dtype=TOKEN_DTYPE, mode="r", offset=HEADER_BYTES, shape=(n,)), HEADER_BYTES
    )


def read_raw_bin(path: Path) -> np.memmap:
    """Memory-map a nanoGPT raw uint16 token file."""
    path = Path(path)
    size = path.stat().st_size
    if size % 2:
        raise ShardFormatError(
            f"{path}: {size} bytes is odd, not a uint16 token file", "re-export it with fwpipe prepare --format nanogpt"
        )
    if size == 0:
        return np.zeros(0, dtype=TOKEN_DTYPE)
    return check_token_ids(path, np.memmap(path, dtype=TOKEN_DTYPE, mode="r"), 0)


def release_pages(tokens: np.ndarray) -> None:
    """Drop a memory-mapped shard's pages from this process's resident memory (they stay in the
    page cache, so a later pass reads them back cheaply). A pass over every shard would
    otherwise keep the whole corpus resident: 2 bytes per token, 80 bytes per 40-token document.
    """
    base = tokens
    while base is not None and not isinstance(getattr(base, "_mmap", None), mmap.mmap):
        base = getattr(base, "base", None)
    if base is not None and hasattr(mmap, "MADV_DONTNEED"):
        try:
            base._mmap.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # a closed or unusual mapping: keeping the pages is harmless
            pass


def slices(tokens: np.ndarray, eot: int | None = None, size: int = SLICE_TOKENS) -> Iterator[tuple[int, int]]:
    """[a, b) ranges of about `size` tokens covering `tokens`, for a pass that drops each one's
    pages after it (a whole 100M-token shard mapped at once is 200 MB resident). With `eot`,
    every cut is at an EOT (tokens[b] == eot, or b is the end), so no document straddles two."""
    n, a = len(tokens), 0
    while a < n:
        b = min(n, a + size)
        while eot is not None and b < n:  # on to the next EOT, 64K tokens at a time
            hit = np.flatnonzero(tokens[b : b + (1 << 16)] == eot)
            if len(hit):
                b += int(hit[0])
                break
            b = min(n, b + (1 << 16))
        yield a, b
        a = b


def document_bounds(tokens: np.ndarray, eot: int) -> tuple[np.ndarray, np.ndarray]:
    """kernels.doc_bounds of a shard (int64 starts and ends of its non-empty runs between EOTs),
    a slice at a time, each slice's pages dropped after it."""
    from fwpipe.kernels import doc_bounds

    starts, ends = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for a, b in slices(tokens, eot):
        s, e = doc_bounds(tokens[a:b], eot)
        starts.append(s + a)
        ends.append(e + a)
        release_pages(tokens)
    return np.concatenate(starts), np.concatenate(ends)


def check_token_ids(path: Path, tokens: np.ndarray, offset: int) -> np.ndarray:
    """Return `tokens` if every id is in the GPT-2 vocabulary, else raise ShardFormatError.

    uint16 holds ids up to 65535 but GPT-2 stops at 50256: an id past it would index past the
    token histogram and the embedding table. One vectorized max per file, so every reader
    (audit, train, the nanoGPT export) is covered once: ~0.02 s per 100M tokens in page cache
    (bench/shards_bench.py); from a cold disk, one read of the file.
    """
    if len(tokens) == 0:
        return tokens
    top = 0
    for a, b in slices(tokens):  # the pass maps every page; a dataset larger than RAM must not stay resident
        top = max(top, int(tokens[a:b].max()))
        release_pages(tokens)
    if top < VOCAB_SIZE:
        return tokens
    bad = tokens >= VOCAB_SIZE
    pos = int(np.argmax(bad))
    raise ShardFormatError(
        f"{path}: token {pos:,} (byte {offset + pos * TOKEN_DTYPE.itemsize:,}) is id {int(tokens[pos])}, outside the GPT-2 "
        f"vocabulary 0..{VOCAB_SIZE - 1} ({int(np.count_nonzero(bad)):,} such ids in the file)",
        "the file is corrupt or not GPT-2 tokens (tiktoken 'gpt2'): re-tokenize the text with fwpipe prepare",
    )


class TokenFileWriter:
    """Streams tokens into a shard (llm.c header) or a raw nanoGPT .bin through an
    atomic.AtomicWriter: seal() makes the file complete and durable under its temp name,
    commit() then gives it its final name, so a file under a final name is always whole.
    abort() removes the temp file.
    """

    def __init__(self, path: Path, *, with_header: bool = True):
        self.path = Path(path)
        self.with_header = with_header
        self.n_tokens = 0
        self.file = AtomicWriter(self.path, hint=_HINT)
        if with_header:
            self.file.write(header(0).tobytes())

    def _error(self, e: OSError) -> OutputError:
        return self.file._error(e)

    def write(self, tokens: np.ndarray) -> None:
        tokens = np.ascontiguousarray(tokens, dtype=TOKEN_DTYPE)
        if self.with_header and self.n_tokens + len(tokens) >= 2**31:
            raise ShardFormatError(f"{self.path}: over 2**31 tokens do not fit an llm.c header", "lower --shard-tokens")
        self.file.write(tokens.data)
        self.n_tokens += len(tokens)

    def seal(self) -> None:
        self.file.seal(header(self.n_tokens).tobytes() if self.with_header else b"")

    def commit(self) -> None:
        if not self.file.f.closed:
            self.seal()
        self.file.commit()

    def abort(self) -> None:
        self.file.abort()


def token_source(tokens: np.ndarray) -> tuple:
    """What another process or node needs to map these tokens again: (file, byte offset, count,
    dtype) for a whole memory-mapped shard, else (None, the array itself): a slice's or an
    in-memory array's (tests') tokens travel as they are."""
    if isinstance(tokens, np.memmap) and isinstance(tokens.base, mmap.mmap) and tokens.filename:
        return (str(tokens.filename), int(tokens.offset), len(tokens), tokens.dtype.str)
    return (None, tokens)


def open_tokens(source: tuple) -> np.ndarray:
    """The tokens a token_source names, memory-mapped read-only (or the array it carries)."""
    if source[0] is None:
        return source[1]
    path, offset, count, dtype = source
    if count == 0:
        return np.zeros(0, dtype=dtype)  # np.memmap cannot map zero bytes
    need = offset + count * np.dtype(dtype).itemsize
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise InputNotFoundError(
            f"{path}: {e.strerror or e} (it was there when the run started)",
            "rerun once nothing else moves or writes the dataset; on a cluster, every node must mount it",
        ) from e
    if size < need:  # truncated or rewritten since it was opened: mapping it would fault or read past the end
        raise ShardFormatError(
            f"{path}: {size} bytes, {need} when the run started: the shard changed while it was read",
            "rerun once nothing else writes the dataset",
        )
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,))
