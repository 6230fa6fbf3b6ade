"""encode_chunk (one tiktoken call per chunk) against its plain twin (one per document) on real rows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fwpipe.pipeline.split import key_hashes, val_threshold
from fwpipe.pipeline.tokenize import OK, TOO_LONG, encode_chunk
from fwpipe.tokenizer import EOT_TEXT
from tests.pipeline.tokenize_ref import encode_chunk_ref, key_hash_ref


@pytest.fixture(scope="module")
def rows(sample1400, first150):
    """Real FineWeb rows: long documents with ids and urls, rows with token_count and no id,
    ~45-token pieces, and the cases a chunk must survive: null and empty text, a document that
    holds the text <|endoftext|>, an integer id."""
    a = pq.read_table(sample1400, columns=["text", "id", "url"]).slice(0, 200).to_pydict()
    b = pq.read_table(first150, columns=["text", "token_count"]).to_pydict()
    pieces = [t[i : i + 200] for t in a["text"][:40] for i in range(0, len(t), 200)]
    texts = a["text"] + b["text"] + pieces
    ids = a["id"] + [None] * len(b["text"]) + [f"piece-{k}" for k in range(len(pieces))]
    tcs = [None] * len(a["text"]) + b["token_count"] + [None] * len(pieces)
    urls = a["url"] + [None] * len(b["text"]) + [f"https://example.org/{k}" for k in range(len(pieces))]
    for at, (text, id_) in {
        5: (None, "null-text"),
        6: ("", "empty-text"),
        7: (None, None),
        205: ("", None),
        300: (None, 12345),
    }.items():
        texts[at], ids[at] = text, id_
    texts[8] = texts[8][:500] + f" see {EOT_TEXT} here " + texts[8][500:]
    return texts, ids, tcs, urls


def _assert_same(got, want):
    for f in dataclasses.fields(want):
        g, w = getattr(got, f.name), getattr(want, f.name)
        if isinstance(g, pa.Array):  # ids and urls as prepare's units pass them (an integer id as its text)
            g, w = g.to_pylist(), [None if x is None else str(x) for x in w]
        if isinstance(w, np.ndarray):
            assert g.dtype == w.dtype and np.array_equal(g, w), f.name
        else:
            assert g == w, f.name


@pytest.mark.parametrize(
    "case",
    [
        dict(
            seed=0, threshold=val_threshold(0.3), cursors=(-1, -1), forced_val=frozenset(), max_doc_tokens=100_000_000
        ),
        dict(
            seed=7, threshold=val_threshold(0.0), cursors=(-1, -1), forced_val=frozenset({3, 11}), max_doc_tokens=2_000
        ),
        dict(seed=1, threshold=val_threshold(0.5), cursors=(40, 25), forced_val=frozenset(), max_doc_tokens=500),
    ],
)
@pytest.mark.parametrize("chunk_rows", [64, 1000])
@pytest.mark.parametrize(
    "arrow", [False, True], ids=["lists", "arrow"]
)  # texts, ids and urls as Python lists or as a unit reads them
def test_encode_chunk_equals_its_twin_on_real_rows(rows, case, chunk_rows, arrow):
    texts, ids, tcs, urls = rows
    n_too_long = n_ok = n_placeholder = 0
    for lo in range(0, len(texts), chunk_rows):
        sl = slice(lo, lo + chunk_rows)
        args = (texts[sl], ids[sl], tcs[sl], urls[sl])
        kw = dict(case, file_index=2, row0=lo + 10, gpos0=lo)
        if arrow:  # read_batches gives an integer id as its decimal text
            id_array = pa.array([None if i is None else str(i) for i in ids[sl]], pa.string())
            got = encode_chunk(
                pa.array(texts[sl], pa.string()), id_array, tcs[sl], pa.array(urls[sl], pa.string()), **kw
            )
        else:
            got = encode_chunk(*args, **kw)
        want = encode_chunk_ref(*args, **kw)
        for g, w in zip(got, want):
            _assert_same(g, w)
            n_ok += int((w.status == OK).sum())
            n_too_long += int((w.status == TOO_LONG).sum())
            n_placeholder += int(w.placeholder.sum())
    assert n_ok > 100 and n_placeholder > 0  # the comparison covered real documents, FineWeb's e-mail placeholders ...
    assert (n_too_long > 0) == (case["max_doc_tokens"] < 10_000)  # ... and documents too long for a shard


def test_the_text_endoftext_inside_a_document_stays_plain_text(rows):
    texts, ids, tcs, urls = rows
    kw = dict(
        file_index=0,
        row0=0,
        gpos0=0,
        seed=0,
        threshold=0,
        cursors=(-1, -1),
        forced_val=frozenset(),
        max_doc_tokens=10**8,
    )
    train, val = encode_chunk(texts[:64], ids[:64], tcs[:64], urls[:64], **kw)
    assert EOT_TEXT in texts[8] and len(val.gpos) == 0
    # one EOT id per document, before it: the text <|endoftext|> in document 8 is not one
    assert int((train.stream == 50256).sum()) == int((train.status == OK).sum()) == 61


def test_key_hashes_equal_the_hash_from_its_definition(rows):
    texts, ids, _, _ = rows
    keys = [t if i is None else str(i) for i, t in zip(ids, texts)]
    got = key_hashes(keys, 2**64 - 1)
    assert got.dtype == np.uint64
    assert got.tolist() == [0 if k is None else key_hash_ref(k, 2**64 - 1) for k in keys]
