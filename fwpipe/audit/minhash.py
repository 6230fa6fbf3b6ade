"""MinHash signatures of documents over token n-gram shingles, interchangeable with datasketch.

fwpipe uses datasketch 2.x's default permutation scheme, `affine32` (what `MinHash()` gives a
user who passes no `scheme`): a 32-bit input hash is pre-mixed with the MurmurHash3 finalizer,
then permutation k maps it to a_k * h + b_k mod 2**32, with a_k odd. The parameters come from
numpy's RandomState(seed) exactly as datasketch draws them, so for the same shingle hashes a
signature here equals `MinHash(num_perm, seed, hashfunc=lambda h: h)` bit for bit, and
`as_lean_minhash` turns a row into a datasketch LeanMinHash that compares with the user's own.

A shingle is a window of `shingle` consecutive tokens inside one document; its 32-bit hash is
the high half of kernels.window_hashes (a document shorter than a shingle is one shingle).
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from fwpipe.audit.corpus import Corpus
from fwpipe.errors import ConfigError
from fwpipe.kernels import minhash_signatures

log = logging.getLogger(__name__)
SCHEME = "affine32"


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) uint32 arrays: datasketch.MinHash(num_perm, seed, scheme='affine32').permutations."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)  # odd: a bijection
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


# (bands, rows) as datasketch's MinHashLSH(threshold, num_perm) picks them, for the common
# settings: its _optimal_param grid search, run once and written down, so the default audit
# does not import datasketch (and scipy with it: ~0.4 s). tests/test_kernels_audit.py checks
# every entry against datasketch itself; other settings ask datasketch.
_DATASKETCH_BANDING = {
    64: {0.5: (14, 4), 0.6: (10, 6), 0.7: (8, 8), 0.75: (7, 9), 0.8: (5, 11), 0.85: (4, 15), 0.9: (3, 21), 0.95: (2, 32)},
    128: {0.5: (25, 5), 0.6: (18, 7), 0.7: (14, 9), 0.75: (11, 11), 0.8: (9, 13), 0.85: (8, 16), 0.9: (5, 25), 0.95: (3, 42)},
    256: {0.5: (42, 6), 0.6: (32, 8), 0.7: (25, 10), 0.75: (21, 12), 0.8: (17, 15), 0.85: (13, 19), 0.9: (9, 28), 0.95: (5, 51)},
}


@functools.lru_cache(maxsize=32)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) that datasketch's MinHashLSH picks for this threshold (equal FP/FN weights).

    From the table above when it has the setting, else asked of datasketch itself (its grid
    search over b*r <= num_perm, ~0.7 s with the scipy import): either way the banding is the
    one a datasketch user gets.
    """
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"threshold {threshold} is not in (0, 1]", "pass e.g. --threshold 0.8")
    if num_perm < 2:
        raise ConfigError(f"num_perm {num_perm} is below 2", "pass e.g. --num-perm 128")
    known = _DATASKETCH_BANDING.get(num_perm, {}).get(threshold)
    if known is not None:
        return known
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return int(lsh.b), int(lsh.r)


def signatures(corpus: Corpus, *, shingle: int = 5, num_perm: int = 128, seed: int = 1,
               copy_of: np.ndarray | None = None) -> np.ndarray:
    """(n_docs, num_perm) uint32 signatures in global document order.

    copy_of (exact.ExactResult.first: each doc's earliest identical doc, itself if none, checked
    token by token) skips the copies: a copy's signature is its original's, so it is copied.
    """
    a, b = permutations(num_perm, seed)
    sig = np.empty((corpus.n_docs, num_perm), dtype=np.uint32)
    for k, tokens in enumerate(corpus.shards):
        lo, hi = corpus.shard_range(k)
        docs = np.arange(lo, hi)
        if copy_of is not None:
            docs = docs[copy_of[lo:hi] == docs]
        if len(docs):
            sig[docs] = minhash_signatures(tokens, corpus.starts[docs], corpus.ends[docs], shingle, a, b)
    if copy_of is not None:
        copies = np.flatnonzero(copy_of != np.arange(corpus.n_docs))
        assert np.all(copy_of[copy_of[copies]] == copy_of[copies]), "copy_of must point at originals"
        sig[copies] = sig[copy_of[copies]]
    log.info("%d MinHash signatures (%d permutations, %d-token shingles)", len(sig), num_perm, shingle)
    return sig


def as_lean_minhash(signature: np.ndarray, seed: int = 1):
    """A datasketch LeanMinHash for one signature row (query it against the user's own index)."""
    from datasketch import LeanMinHash

    return LeanMinHash(seed=seed, hashvalues=np.asarray(signature, dtype=np.uint32), scheme=SCHEME)
