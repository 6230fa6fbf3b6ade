"""Near neighbours of outside documents (an eval set) among the documents of a scratch directory.

The outside signatures are banded in memory; the indexed documents' band keys stream past them
one unit and one band at a time, so memory is the outside set plus one unit's keys. Matches
are verified as inside the engine: estimated Jaccard >= threshold, and exact Jaccard when a
side has few shingles.
"""

from __future__ import annotations

import numpy as np

from fwpipe.dedup.config import DedupConfig
from fwpipe.dedup.docs import Docs, doc_tokens
from fwpipe.dedup.engine import _signatures_of, _unit_bounds, tokens_jaccard_at_least
from fwpipe.dedup.scratch import Scratch, read_array
from fwpipe.kernels import signature_keys
from fwpipe.shards import release_pages


def near_matches(
    sc: Scratch, docs: Docs, cfg: DedupConfig, q_sig: np.ndarray, q_tokens: list[np.ndarray], indexed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(q, d): pairs of an outside document q and an indexed document d at Jaccard >= threshold.

    indexed: (n_docs,) bool, the documents whose keys sign() computed (not exact copies: a
    copy's original stands for it).
    """
    q_keys = signature_keys(q_sig, cfg.bands, cfg.rows)
    ub = _unit_bounds(docs)
    qs, ds = [], []
    for bnd in range(cfg.bands):
        order = np.argsort(q_keys[bnd])
        sk = q_keys[bnd, order]
        for u in range(len(ub) - 1):
            lo, hi = int(ub[u]), int(ub[u + 1])
            k = read_array(sc.unit_path(u), np.uint64, bnd * (hi - lo), hi - lo)
            first = np.searchsorted(sk, k, side="left")
            last = np.searchsorted(sk, k, side="right")
            for i in np.flatnonzero((last > first) & indexed[lo:hi]):
                qs.append(order[first[i] : last[i]])
                ds.append(np.full(last[i] - first[i], lo + i, dtype=np.int64))
    if not qs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    code = np.unique(np.concatenate(qs).astype(np.int64) * np.int64(len(indexed)) + np.concatenate(ds))
    q, d = code // len(indexed), code % len(indexed)
    uniq, inv = np.unique(d, return_inverse=True)
    d_sig = _signatures_of(sc, docs, cfg, uniq)
    keep = (q_sig[q] == d_sig[inv]).sum(axis=1) >= cfg.min_agree
    lengths = docs.ends[d] - docs.starts[d]
    for i in np.flatnonzero(keep):
        few = min(lengths[i], len(q_tokens[q[i]])) - cfg.shingle + 1 <= cfg.confirm_shingles
        if few and not tokens_jaccard_at_least(q_tokens[q[i]], doc_tokens(docs, int(d[i])), cfg.shingle, cfg.threshold):
            keep[i] = False
    for tokens in docs.shards:
        release_pages(tokens)
    return q[keep], d[keep]
