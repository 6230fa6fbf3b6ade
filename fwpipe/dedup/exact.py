"""Exact duplicates: each document's earliest identical document.

Each document is hashed whole (kernels.doc_hashes, 64 bits plus its length, per shard); a
stable argsort by hash puts equal documents side by side in global order, so the first of each
run is the earliest copy. Every claimed copy is then compared token by token with that first
one, so a hash collision can never count as a duplicate. Memory: the hashes and their sorted
copy, 16 bytes per document, and the answer (4 bytes per document; 8 past 2**31 documents).
"""

from __future__ import annotations

import logging

import numba
import numpy as np

from fwpipe.dedup.docs import Docs, doc_tokens, index_dtype, n_docs
from fwpipe.kernels import doc_hashes
from fwpipe.shards import release_pages

log = logging.getLogger(__name__)


def _repeated(keys: np.ndarray) -> np.ndarray:
    """Mask of the entries whose value occurs more than once."""
    s = np.sort(keys)
    twice = s[1:][s[1:] == s[:-1]]
    if len(twice) == 0:
        return np.zeros(len(keys), dtype=bool)
    del s
    twice = np.unique(twice)
    out = np.empty(len(keys), dtype=bool)
    for lo in range(0, len(keys), 1 << 20):  # in slices: the positions cost 8 bytes each
        k = keys[lo : lo + (1 << 20)]
        out[lo : lo + len(k)] = twice[np.minimum(np.searchsorted(twice, k), len(twice) - 1)] == k
    return out


@numba.njit(cache=True, nogil=True)
def _first_of_runs(hashes, order, first):
    """first[order[i]] = the first document of its run of equal hashes (order sorts hashes stably)."""
    head = -1
    prev = np.uint64(0)
    for i in range(len(order)):
        d = order[i]
        if i == 0 or hashes[d] != prev:
            head = d
            prev = hashes[d]
        first[d] = head


def exact_first(docs: Docs) -> np.ndarray:
    """(n_docs,) int32 (int64 past 2**31 documents, docs.index_dtype): the global index of each document's earliest identical document (itself if none)."""
    n = n_docs(docs)
    hashes = np.empty(n, dtype=np.uint64)
    for k, tokens in enumerate(docs.shards):
        lo, hi = int(docs.shard_docs[k]), int(docs.shard_docs[k + 1])
        for a in range(lo, hi, 1 << 17):  # slices, each one's pages dropped after it: a whole
            b = min(hi, a + (1 << 17))  # shard would hold up to 200 MB resident
            hashes[a:b] = doc_hashes(tokens, docs.starts[a:b], docs.ends[a:b])
            release_pages(tokens)
    first = np.arange(n, dtype=index_dtype(n))
    # nearly every hash is unique: a plain sort finds the repeated ones, and only those are
    # argsorted, stably, so that within equal hashes the order is global order
    order = np.flatnonzero(_repeated(hashes))
    order = order[np.argsort(hashes[order], kind="stable")]
    _first_of_runs(hashes, order, first)
    del order, hashes
    copies = np.flatnonzero(first != np.arange(n, dtype=first.dtype))
    same_len = (docs.ends[copies] - docs.starts[copies]) == (docs.ends[first[copies]] - docs.starts[first[copies]])
    for i, d in enumerate(copies):  # verify: one comparison of a copy's tokens with the original's
        if not same_len[i] or not np.array_equal(doc_tokens(docs, d), doc_tokens(docs, first[d])):
            log.warning("64-bit hash collision between documents %d and %d; not a duplicate", d, first[d])
            first[d] = d
        if i % 128 == 127 or i == len(copies) - 1:
            # each check faults in the pages around both documents (~200 KB a document)
            for tokens in docs.shards:
                release_pages(tokens)
    log.info("exact duplicates: %d of %d documents are copies", int((first[copies] != copies).sum()), n)
    return first
