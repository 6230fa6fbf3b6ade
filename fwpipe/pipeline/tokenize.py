"""The per-chunk work of prepare: split, tokenize and check a run of rows (runs in a thread).

tiktoken releases the GIL while it encodes, so `workers` threads tokenize on all cores. Each
chunk's result depends only on its rows, never on which thread ran it, so the bytes written do
not depend on the number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fwpipe.kernels import token_histogram
from fwpipe.pipeline.split import TRAIN, VAL, key_hash, split_of
from fwpipe.tokenizer import EOT, VOCAB_SIZE, get_encoding

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
    ids: list
    urls: list
    stream: np.ndarray  # uint16: EOT before every OK document, concatenated
    hist: np.ndarray | None  # int64 (vocab,): token histogram of `stream`, counted in the worker

    def __post_init__(self) -> None:
        # tokens each row adds to the stream: its EOT and tokens, or nothing if it was skipped
        self.stream_lens = np.where(self.status == OK, self.n_tokens + 1, 0)

    def head(self, n: int) -> "ChunkRows":
        """The first n rows (a budget stop cuts a chunk); the histogram is recounted later."""
        return ChunkRows(
            self.gpos[:n], self.file_index[:n], self.source_row[:n], self.status[:n], self.n_tokens[:n], self.n_bytes[:n],
            self.key_hash[:n], self.fineweb_token_count[:n], self.placeholder[:n], self.ids[:n], self.urls[:n],
            self.stream[: int(self.stream_lens[:n].sum())], None,
        )  # fmt: skip


def encode_chunk(
    texts: list,
    ids: list,
    token_counts: list,
    urls: list,
    *,
    file_index: int,
    row0: int,
    gpos0: int,
    seed: int,
    threshold: int,
    cursors: tuple[int, int],
    forced_val: frozenset[int],
    max_doc_tokens: int,
) -> tuple[ChunkRows, ChunkRows]:
    """Tokenize rows [row0, row0+len(texts)) of one file; return the (train, val) rows.

    Rows whose split already holds them in a finished shard (gpos <= that split's cursor, after
    a resume) are left out without tokenizing.
    """
    enc = get_encoding()
    cols: tuple[dict, dict] = ({k: [] for k in _FIELDS}, {k: [] for k in _FIELDS})
    pieces: tuple[list, list] = ([], [])
    for i, text in enumerate(texts):
        gpos = gpos0 + i
        key = str(ids[i]) if ids[i] is not None else text
        h = key_hash(key, seed) if key is not None else 0
        s = VAL if gpos in forced_val else split_of(h, threshold) if key is not None else TRAIN
        if gpos <= cursors[s]:
            continue
        n_tokens, placeholder, n_bytes = 0, False, 0
        if text is None:
            status = NULL_TEXT
        elif not text:
            status = EMPTY_TEXT
        else:
            n_bytes = len(text.encode("utf-8", "surrogatepass"))
            tokens = enc.encode_to_numpy(text, disallowed_special=())  # == encode_ordinary
            n_tokens = len(tokens)
            if n_tokens + 1 > max_doc_tokens:
                status = TOO_LONG
            else:
                status = OK
                pieces[s].append(_EOT)  # EOT before every document
                pieces[s].append(tokens)
            tc = token_counts[i]
            if tc is not None and tc != n_tokens:
                placeholder = any(p in text for p in EMAIL_PLACEHOLDERS)
        c = cols[s]
        c["gpos"].append(gpos)
        c["source_row"].append(row0 + i)
        c["status"].append(status)
        c["n_tokens"].append(n_tokens if status in (OK, TOO_LONG) else 0)
        c["n_bytes"].append(n_bytes)
        c["key_hash"].append(h)
        tc = token_counts[i]
        c["fineweb_token_count"].append(-1 if tc is None else tc)
        c["placeholder"].append(placeholder)
        c["ids"].append(ids[i])
        c["urls"].append(urls[i])
    return _rows(cols[TRAIN], pieces[TRAIN], file_index), _rows(cols[VAL], pieces[VAL], file_index)


_FIELDS = ("gpos", "source_row", "status", "n_tokens", "n_bytes", "key_hash", "fineweb_token_count", "placeholder", "ids", "urls")


_EOT = np.array([EOT], dtype=np.uint32)


def _rows(c: dict, pieces: list, file_index: int) -> ChunkRows:
    n = len(c["gpos"])
    # one concatenation casts every uint32 piece to uint16 (ids < 50257 < 2**16)
    stream = np.concatenate(pieces, dtype=np.uint16, casting="unsafe") if pieces else np.zeros(0, dtype=np.uint16)
    return ChunkRows(
        gpos=np.array(c["gpos"], dtype=np.int64),
        file_index=np.full(n, file_index, dtype=np.int32),
        source_row=np.array(c["source_row"], dtype=np.int64),
        status=np.array(c["status"], dtype=np.int8),
        n_tokens=np.array(c["n_tokens"], dtype=np.int64),
        n_bytes=np.array(c["n_bytes"], dtype=np.int64),
        key_hash=np.array(c["key_hash"], dtype=np.uint64),
        fineweb_token_count=np.array(c["fineweb_token_count"], dtype=np.int64),
        placeholder=np.array(c["placeholder"], dtype=bool),
        ids=c["ids"],
        urls=c["urls"],
        stream=stream,
        hist=token_histogram(stream, VOCAB_SIZE),  # numba, nogil: counts in parallel too
    )
