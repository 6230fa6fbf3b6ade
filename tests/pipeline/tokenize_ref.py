"""The plain twin of fwpipe.pipeline.tokenize.encode_chunk: one document at a time.

This is prepare's per-chunk work as it was first written (a Python loop per document, one
tiktoken call per document); the fast version must return exactly what this returns.
"""

from __future__ import annotations

import hashlib

import numpy as np

from fwpipe.pipeline.split import TRAIN, VAL
from fwpipe.pipeline.tokenize import EMAIL_PLACEHOLDERS, EMPTY_TEXT, NULL_TEXT, OK, TOO_LONG, ChunkRows
from fwpipe.tokenizer import EOT, get_encoding

_FIELDS = (
    "gpos",
    "source_row",
    "status",
    "n_tokens",
    "n_bytes",
    "key_hash",
    "fineweb_token_count",
    "placeholder",
    "ids",
    "urls",
)


def key_hash_ref(key: str, seed: int) -> int:
    """The split hash from its definition (tests/pipeline/test_split.py pins its values)."""
    digest = hashlib.blake2b(
        key.encode("utf-8", "surrogatepass"), digest_size=8, key=seed.to_bytes(8, "little")
    ).digest()
    return int.from_bytes(digest, "little")


def encode_chunk_ref(
    texts, ids, token_counts, urls, *, file_index, row0, gpos0, seed, threshold, cursors, forced_val, max_doc_tokens
):
    enc = get_encoding()
    cols = ({k: [] for k in _FIELDS}, {k: [] for k in _FIELDS})
    pieces = ([], [])
    for i, text in enumerate(texts):
        gpos = gpos0 + i
        key = str(ids[i]) if ids[i] is not None else text
        h = key_hash_ref(key, seed) if key is not None else 0
        s = VAL if gpos in forced_val else (VAL if h < threshold else TRAIN) if key is not None else TRAIN
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
                pieces[s].append(np.array([EOT], dtype=np.uint32))  # EOT before every document
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


def _rows(c: dict, pieces: list, file_index: int) -> ChunkRows:
    n = len(c["gpos"])
    stream = np.concatenate(pieces).astype(np.uint16) if pieces else np.zeros(0, dtype=np.uint16)
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
    )
