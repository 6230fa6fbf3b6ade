"""What the engine needs to know about documents: where each one's tokens are.

Documents are numbered globally; the documents of shard k are [shard_docs[k], shard_docs[k+1]),
and document d is shards[shard(d)][starts[d]:ends[d]]. audit's Corpus has these fields; prepare
builds a DocIndex over its first-pass shards. 20 bytes per document stay in memory (two int64
offsets and the shard boundaries); the tokens stay on disk, memory-mapped.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from fwpipe.kernels import doc_bounds


class Docs(Protocol):
    shards: Sequence[np.ndarray]  # token arrays (memory maps)
    shard_docs: np.ndarray  # (n_shards + 1,) first global document of each shard
    starts: np.ndarray  # (n_docs,) int64 offset of each document in its shard
    ends: np.ndarray  # (n_docs,) int64, exclusive


@dataclass
class DocIndex:
    shards: list[np.ndarray]
    shard_docs: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


def index_shards(shards: Sequence[np.ndarray], eot: int) -> DocIndex:
    """Every non-empty run of tokens between EOTs in the shards, numbered in shard order."""
    starts, ends, counts = [], [], [0]
    for tokens in shards:
        s, e = doc_bounds(tokens, eot)
        starts.append(s)
        ends.append(e)
        counts.append(len(s))
    cat = lambda xs: np.concatenate(xs).astype(np.int64, copy=False) if xs else np.zeros(0, np.int64)  # noqa: E731
    return DocIndex(list(shards), np.cumsum(counts).astype(np.int64), cat(starts), cat(ends))


def n_docs(docs: Docs) -> int:
    return len(docs.starts)


def doc_tokens(docs: Docs, d: int) -> np.ndarray:
    k = int(np.searchsorted(docs.shard_docs, d, side="right")) - 1
    return docs.shards[k][docs.starts[d] : docs.ends[d]]


def shingle_counts(docs: Docs, lo: int, hi: int, shingle: int) -> np.ndarray:
    """Shingles (with repeats) of documents [lo, hi): length - shingle + 1, at least 1."""
    return np.maximum(docs.ends[lo:hi] - docs.starts[lo:hi] - shingle + 1, 1)


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
