"""In-memory MinHash helpers: a signature matrix and its LSH candidate pairs.

For tests, interop with datasketch, and small inputs; the engine (engine.py) computes the same
signatures and pairs in stages on disk.

A shingle is a window of `shingle` consecutive tokens inside one document; its 32-bit hash is
the high half of kernels.window_hashes (a document shorter than a shingle is one shingle).
"""

from __future__ import annotations

import numpy as np

from fwpipe.dedup.config import DedupConfig, permutations
from fwpipe.dedup.docs import Docs, n_docs, unique
from fwpipe.kernels import bucket_pairs, minhash_signatures, signature_keys


def signatures(docs: Docs, cfg: DedupConfig = DedupConfig(), *, copy_of: np.ndarray | None = None) -> np.ndarray:
    """(n_docs, num_perm) uint32 signatures in global document order.

    copy_of (each doc's earliest identical doc, itself if none) skips the copies: a copy's
    signature is its original's, so it is copied.
    """
    a, b = permutations(cfg.num_perm, cfg.seed)
    n = n_docs(docs)
    sig = np.empty((n, cfg.num_perm), dtype=np.uint32)
    for k, tokens in enumerate(docs.shards):
        lo, hi = int(docs.shard_docs[k]), int(docs.shard_docs[k + 1])
        idx = np.arange(lo, hi)
        if copy_of is not None:
            idx = idx[copy_of[lo:hi] == idx]
        if len(idx):
            sig[idx] = minhash_signatures(tokens, docs.starts[idx], docs.ends[idx], cfg.shingle, a, b)
    if copy_of is not None:
        copies = np.flatnonzero(copy_of != np.arange(n))
        sig[copies] = sig[copy_of[copies]]
    return sig


def candidate_pairs(
    sig: np.ndarray, bands: int, rows: int, max_bucket: int = DedupConfig.max_bucket
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (i < j) row pairs that share at least one band bucket (datasketch MinHashLSH's
    candidates when max_bucket is at least the largest bucket)."""
    keys = signature_keys(sig, bands, rows)
    left, right = [], []
    for bnd in range(bands):
        order = np.argsort(keys[bnd])
        lo, hi = bucket_pairs(keys[bnd, order], order.astype(np.int64), max_bucket)
        left.append(lo)
        right.append(hi)
    left, right = np.concatenate(left), np.concatenate(right)
    code = unique(left * np.int64(len(sig)) + right)  # one pair may share several bands
    return code // len(sig), code % len(sig)
