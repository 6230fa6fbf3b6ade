"""What the engine needs to know about documents: where each one's tokens are.

Documents are numbered globally; the documents of shard k are [shard_docs[k], shard_docs[k+1]),
and document d is shards[shard(d)][starts[d]:ends[d]]. audit's Corpus has these fields; prepare
builds a DocIndex over its first-pass shards (two offsets a document: int32 while every shard
holds under 2**31 tokens, 8 bytes a document; int64 otherwise); the tokens stay on disk,
memory-mapped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fwpipe.shards import document_bounds


class Docs(Protocol):
    shards: Sequence[np.ndarray]  # token arrays (memory maps)
    shard_docs: np.ndarray  # (n_shards + 1,) first global document of each shard
    starts: np.ndarray  # (n_docs,) int32 or int64 offset of each document in its shard
    ends: np.ndarray  # (n_docs,) the same dtype, exclusive


@dataclass
class DocIndex:
    shards: list[np.ndarray]
    shard_docs: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


def index_shards(shards: Sequence[np.ndarray], eot: int) -> DocIndex:
    """Every non-empty run of tokens between EOTs in the shards, numbered in shard order.

    Each shard is read a slice at a time, its mapped pages dropped after each: kept, the whole
    corpus would stay resident, 2 bytes a token (330 MB for 5M 33-token documents)."""
    # offsets as int32 where every shard is under 2**31 tokens (prepare's are 100M): 8 bytes a
    # document instead of 16
    dt = np.int32 if max((len(t) for t in shards), default=0) <= INT32_OFFSETS else np.int64
    starts, ends, counts = [], [], [0]
    for tokens in shards:
        s, e = document_bounds(tokens, eot)
        starts.append(s.astype(dt))
        ends.append(e.astype(dt))
        counts.append(len(s))
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, dt)  # noqa: E731
    return DocIndex(list(shards), np.cumsum(counts).astype(np.int64), cat(starts), cat(ends))


# Document numbers are stored as int32 while every one fits (4 bytes a document instead of 8 in
# each per-document index array: exact_first, rep, root); a corpus of 2**31 documents or more
# gets int64. A module constant, so a test can lower it and check that both give one answer.
INT32_DOCS = 2**31 - 1
INT32_OFFSETS = 2**31 - 1  # likewise for token offsets within a shard (index_shards)


def index_dtype(n: int) -> np.dtype:
    """The dtype of arrays that hold document numbers (or member positions) below n."""
    return np.dtype(np.int32) if n <= INT32_DOCS else np.dtype(np.int64)


def n_docs(docs: Docs) -> int:
    return len(docs.starts)


def doc_tokens(docs: Docs, d: int) -> np.ndarray:
    k = int(np.searchsorted(docs.shard_docs, d, side="right")) - 1
    return docs.shards[k][docs.starts[d] : docs.ends[d]]


def unique(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values, by sort + compare: numpy 2.4's hash-based np.unique measured
    ~90x slower here (0.9 s against 0.01 s for 1M uint64)."""
    x = np.sort(x)
    if len(x) == 0:
        return x
    keep = np.empty(len(x), dtype=bool)
    keep[0] = True
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    return x[keep]
