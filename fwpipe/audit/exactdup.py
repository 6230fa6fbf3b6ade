"""Exact duplicates section: the engine's earliest-identical-document array, summarized.

fwpipe.dedup.exact_first hashes every document whole, groups equal hashes in global order and
verifies every copy token by token; this module only counts and describes the groups.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from fwpipe.audit.corpus import Corpus
from fwpipe.dedup import exact_first
from fwpipe.dedup.docs import unique

log = logging.getLogger(__name__)
TOP_GROUPS = 10


@dataclass
class ExactResult:
    first: np.ndarray  # (n_docs,) int32 (dedup.index_dtype): the earliest identical document (itself if none)
    report: dict


def exact_duplicates(corpus: Corpus) -> ExactResult:
    n = corpus.n_docs
    first = exact_first(corpus)
    is_dup = first != np.arange(n, dtype=first.dtype)
    report = {
        "docs": int(is_dup.sum()),
        "tokens": int((corpus.ends[is_dup] - corpus.starts[is_dup]).sum()),  # not corpus.lengths: 8 bytes a document
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
    return [
        {
            "copies": int(copies[t]) + 1,
            "n_tokens": int(corpus.ends[reps[t]] - corpus.starts[reps[t]]),
            "first": corpus.where(int(reps[t])),
            "snippet": corpus.snippet(int(reps[t])),
        }
        for t in top
    ]
