"""Exact duplicates: documents whose token sequence equals an earlier document's.

Each document is hashed whole (kernels.doc_hashes, 64 bits plus its length); a stable sort by
hash puts equal documents next to each other in global order, so the first of each run is the
earliest copy. Every claimed copy is then compared token by token with that first one, so a
hash collision can never be reported as a duplicate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from fwpipe.audit.arrays import unique
from fwpipe.audit.corpus import Corpus
from fwpipe.kernels import doc_hashes

log = logging.getLogger(__name__)
TOP_GROUPS = 10


@dataclass
class ExactResult:
    first: np.ndarray  # (n_docs,) global index of the earliest identical document (itself if none)
    report: dict


def exact_duplicates(corpus: Corpus) -> ExactResult:
    n = corpus.n_docs
    hashes = np.empty(n, dtype=np.uint64)
    for k, tokens in enumerate(corpus.shards):
        lo, hi = corpus.shard_range(k)
        hashes[lo:hi] = doc_hashes(tokens, corpus.starts[lo:hi], corpus.ends[lo:hi])
    order = np.argsort(hashes, kind="stable")  # stable: within equal hashes, global order
    sorted_h = hashes[order]
    run_start = np.ones(n, dtype=bool)
    run_start[1:] = sorted_h[1:] != sorted_h[:-1]
    head = order[np.maximum.accumulate(np.where(run_start, np.arange(n), 0))]  # first doc of each run
    first = np.arange(n, dtype=np.int64)
    first[order] = head
    lengths = corpus.lengths
    for d in np.flatnonzero(first != np.arange(n)):  # verify: copies are few, the check is cheap
        if not np.array_equal(corpus.tokens(d), corpus.tokens(first[d])):
            log.warning("64-bit hash collision between documents %d and %d; not a duplicate", d, first[d])
            first[d] = d
    is_dup = first != np.arange(n)
    report = {
        "docs": int(is_dup.sum()),
        "tokens": int(lengths[is_dup].sum()),
        "groups": int(len(unique(first[is_dup]))),
        "by_split": {name: int(is_dup[lo:hi].sum()) for name, (lo, hi) in corpus.split_docs.items()},
        "largest": _largest(corpus, first, is_dup),
    }
    report["doc_fraction"] = report["docs"] / n if n else 0.0
    log.info("exact duplicates: %d docs in %d groups", report["docs"], report["groups"])
    return ExactResult(first, report)


def _largest(corpus: Corpus, first: np.ndarray, is_dup: np.ndarray) -> list[dict]:
    reps, copies = np.unique(first[is_dup], return_counts=True)
    top = np.lexsort((reps, -copies))[:TOP_GROUPS]  # most copies first, ties by position
    return [{"copies": int(copies[t]) + 1, "n_tokens": int(corpus.lengths[reps[t]]), "first": corpus.where(int(reps[t])),
             "snippet": corpus.snippet(int(reps[t]))} for t in top]
