"""The per-chunk work of prepare: split, tokenize and check a run of rows (runs in a worker).

Each chunk's result depends only on its rows, never on which thread or process ran it, so the
bytes written do not depend on the number of workers.

A chunk is tokenized in one tiktoken call, its documents joined by the text `<|endoftext|>`
with that special token allowed: tiktoken splits the text at allowed special tokens before its
regex and BPE run, so each document is encoded exactly as `encode_ordinary` encodes it alone,
and the call returns the stream prepare writes (EOT between documents) with no per-document
Python. Measured on 45-token FineWeb pieces (CPU time, one thread): 10.5 us a document joined,
12.8 us with one `encode_to_numpy` call per document, 13.4 us for all of encode_chunk on
1,024-row chunks (15.5 us on 64-row ones); on threads the gain is larger, as every call must
also take the GIL back (bench/prepare_bench.py --only chunks; end to end: --only speed).
A chunk where some document holds that text itself is encoded document by document.

With the gigatoken engine (the default, fwpipe/tokenizer.py) the chunk is one `encode_batch`
call on the calling thread, and the EOTs are put in front of each document's ids afterwards;
the stream is the same, byte for byte. A unit passes texts, ids and urls as the arrow arrays
it read (inputs.Batch): gigatoken then reads the texts' UTF-8 in place, and a chunk makes no
Python object a row except each split key's bytes for blake2b (~3 us a short document in all,
gigatoken ~1 us of it; lists still work, for tests and the benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fwpipe.pipeline.split import TRAIN, VAL, key_hashes_utf8
from fwpipe.tokenizer import DEFAULT_ENGINE, EOT, EOT_TEXT, encode_batch, get_encoding, token_byte_lengths

# Row status, kept per row in the work sidecars so every input row is accounted for.
OK, NULL_TEXT, EMPTY_TEXT, TOO_LONG = 0, 1, 2, 3
# FineWeb counted tokens before it replaced e-mail addresses with these, so rows holding them
# legitimately differ from `token_count`.
EMAIL_PLACEHOLDERS = ("email@example.com", "firstname.lastname@example.org")


@dataclass
class ChunkRows:
    """The rows of one chunk that belong to one split, in input order."""

    gpos: np.ndarray  # int64 global row position (over all inputs, in order)
    file_index: np.ndarray  # int32
    source_row: np.ndarray  # int64
    status: np.ndarray  # int8: OK, NULL_TEXT, EMPTY_TEXT, TOO_LONG
    n_tokens: np.ndarray  # int64, 0 for skipped rows
    n_bytes: np.ndarray  # int64 utf-8 bytes of the text
    key_hash: np.ndarray  # uint64
    fineweb_token_count: np.ndarray  # int64, -1 where the input has none
    placeholder: np.ndarray  # bool: text holds a FineWeb e-mail placeholder
    ids: list | pa.Array  # str or None a row, or a pa.string() array
    urls: list | pa.Array
    stream: np.ndarray  # uint16: EOT before every OK document, concatenated (its histogram: assemble.py, per shard)


def encode_chunk(
    texts: list | pa.Array,
    ids: list | pa.Array,
    token_counts: list,
    urls: list | pa.Array,
    *,
    file_index: int,
    row0: int,
    gpos0: int,
    seed: int,
    threshold: int,
    cursors: tuple[int, int],
    forced_val: frozenset[int],
    max_doc_tokens: int,
    engine: str = DEFAULT_ENGINE,
    check=None,
) -> tuple[ChunkRows, ChunkRows]:
    """Tokenize rows [row0, row0+len(texts)) of one file; return the (train, val) rows.

    Rows whose split already holds them in a finished shard (gpos <= that split's cursor, after
    a resume) are left out without tokenizing. check (prepare --filter, fwpipe.quality.filter):
    text -> 0 or the status code of the quality rule that drops the row before it is tokenized.
    """
    n = len(texts)
    arrow = isinstance(texts, pa.Array)  # as a unit reads them: no str a row (Batch)
    if arrow:
        null_text = texts.null_count > 0
        text_bytes = np.diff(np.frombuffer(texts.buffers()[1], np.int32)[texts.offset : texts.offset + n + 1]).astype(
            np.int64
        )
        text_chars = (
            np.where(texts.is_null().to_numpy(zero_copy_only=False), -1, text_bytes) if null_text else text_bytes
        )  # sign only
    else:
        # per-row Python stays to a few C-level passes (map, list.count): on threads it holds the GIL
        null_text = None in texts
        text_chars = np.fromiter(
            (-1 if t is None else len(t) for t in texts) if null_text else map(len, texts), np.int64, n
        )
    keys = _keys(ids, texts)  # UTF-8 of the FineWeb `id`, else of the text; None: neither
    key_hash = key_hashes_utf8(keys, seed)  # 0 where there is no key
    split = np.where(key_hash < np.uint64(threshold), VAL, TRAIN).astype(np.int8)
    if null_text and None in keys:  # a row with neither id nor text has no key: train
        split[np.fromiter((k is None for k in keys), bool, n)] = TRAIN
    for g in forced_val:
        if gpos0 <= g < gpos0 + n:
            split[g - gpos0] = VAL
    gpos = np.arange(gpos0, gpos0 + n, dtype=np.int64)
    keep = gpos > np.asarray(cursors, dtype=np.int64)[split] if max(cursors) >= gpos0 else np.ones(n, bool)
    status = np.where(text_chars < 0, NULL_TEXT, np.where(text_chars == 0, EMPTY_TEXT, OK)).astype(np.int8)

    if check is not None:  # --filter: a dropped row keeps its rule's status and is not tokenized
        for i in np.flatnonzero(keep & (status == OK)).tolist():
            status[i] = check(_text(texts, i))
    coded = np.flatnonzero(
        keep & (text_chars > 0) & ((status == OK) | (check is None))
    )  # the rows to tokenize, in order
    full, starts = _encode_joined(texts if len(coded) == n else _take(texts, coded), engine)
    lens = np.diff(starts, append=len(full)) - 1  # tokens of each document, its EOT not counted
    n_tokens = np.zeros(n, np.int64)
    n_tokens[coded] = lens
    n_bytes = np.zeros(n, np.int64)
    if len(coded):
        # UTF-8 bytes of each document = the bytes its tokens stand for (byte-level BPE is lossless; EOT: 0)
        n_bytes[coded] = (
            text_bytes[coded] if arrow else np.add.reduceat(token_byte_lengths()[full], starts, dtype=np.int64)
        )
        if lens.max() + 1 > max_doc_tokens:
            status[coded[lens + 1 > max_doc_tokens]] = TOO_LONG

    if token_counts.count(None) == n:
        tc, placeholder = np.full(n, -1, np.int64), np.zeros(n, bool)
    else:
        tc = np.fromiter((-1 if c is None else c for c in token_counts), np.int64, n)
        has_tc = np.fromiter((c is not None for c in token_counts), bool, n)
        placeholder = np.zeros(n, bool)
        for i in coded[has_tc[coded] & (tc[coded] != lens)].tolist():  # FineWeb's count differs: rare
            placeholder[i] = any(p in _text(texts, i) for p in EMAIL_PLACEHOLDERS)

    cols = (gpos, status, n_tokens, n_bytes, key_hash, tc, placeholder)
    in_val = split[coded] == VAL
    ok = status[coded] == OK
    out = []
    for s in (TRAIN, VAL):
        rows = np.flatnonzero(keep & (split == s))
        if len(rows) == n:  # the whole chunk (the usual case for train)
            taken, row_ids, row_urls = cols, ids, urls
        else:
            taken = tuple(c[rows] for c in cols)
            row_ids, row_urls = _take(ids, rows), _take(urls, rows)
        in_stream = ok & (in_val if s == VAL else ~in_val)  # per tokenized document
        stream = (full if in_stream.all() else full[np.repeat(in_stream, lens + 1)]).astype(np.uint16)  # ids < 2**16
        out.append(
            ChunkRows(
                taken[0],
                np.full(len(rows), file_index, dtype=np.int32),
                row0 + rows,
                *taken[1:],
                row_ids,
                row_urls,
                stream,
            )
        )
    return out[TRAIN], out[VAL]


def _keys(ids: list | pa.Array, texts: list | pa.Array) -> list[bytes | None]:
    """Each row's split key as UTF-8 (its id, else its text): an arrow id array is read as bytes
    straight from its buffers, with no str a row in between."""
    if isinstance(ids, pa.Array):
        keys = ids.view(pa.binary()).to_pylist()  # pa.string(): valid UTF-8, checked on reading
        if ids.null_count == 0:
            return keys
    else:
        keys = [None if i is None else str(i).encode("utf-8", "surrogatepass") for i in ids]
    if isinstance(texts, pa.Array):
        return [k if k is not None else t for k, t in zip(keys, texts.view(pa.binary()).to_pylist())]
    return [
        k if k is not None else None if t is None else t.encode("utf-8", "surrogatepass") for k, t in zip(keys, texts)
    ]


def _text(texts: list | pa.Array, i: int) -> str:
    return texts[i].as_py() if isinstance(texts, pa.Array) else texts[i]


def _take(values: list | pa.Array, rows: np.ndarray) -> list | pa.Array:
    return values.take(pa.array(rows)) if isinstance(values, pa.Array) else [values[i] for i in rows.tolist()]


_ALLOWED = {EOT_TEXT}


def _encode_joined(texts: list[str] | pa.Array, engine: str = DEFAULT_ENGINE) -> tuple[np.ndarray, np.ndarray]:
    """(EOT before each text's tokens, concatenated as uint32; the position of each text's EOT)."""
    if not len(texts):
        return np.zeros(0, np.uint32), np.zeros(0, np.int64)
    if isinstance(texts, pa.Array) and engine == "tiktoken":
        texts = texts.to_pylist()
    if engine != "tiktoken":
        ids, offsets = encode_batch(texts, engine)  # on this thread: the unit's process is the parallelism
        full = np.insert(ids, offsets[:-1], EOT)
        return full, offsets[:-1] + np.arange(len(texts))  # each EOT moves up by the EOTs before it
    enc = get_encoding()
    joined = EOT_TEXT.join(texts)
    if joined.count(EOT_TEXT) == len(texts) - 1:  # no text holds the separator itself
        full = np.concatenate([_EOT, enc.encode_to_numpy(joined, allowed_special=_ALLOWED, disallowed_special=())])
    else:
        # encode_ordinary semantics per document: the text <|endoftext|> stays plain text
        pieces = [p for t in texts for p in (_EOT, enc.encode_to_numpy(t, disallowed_special=()))]
        full = np.concatenate(pieces)
    starts = np.flatnonzero(full == EOT)  # encode_ordinary never emits EOT inside a document
    assert len(starts) == len(texts), "a document's tokens hold EOT"
    return full, starts


_EOT = np.array([EOT], dtype=np.uint32)
