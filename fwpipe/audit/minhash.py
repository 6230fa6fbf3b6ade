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


@functools.lru_cache(maxsize=32)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) that datasketch's MinHashLSH picks for this threshold (equal FP/FN weights).

    Asked of datasketch itself (its grid search over b*r <= num_perm, ~0.7 s with the scipy
    import), so the banding is by construction the one a datasketch user gets.
    """
    from datasketch import MinHashLSH

    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"threshold {threshold} is not in (0, 1]", "pass e.g. --threshold 0.8")
    if num_perm < 2:
        raise ConfigError(f"num_perm {num_perm} is below 2", "pass e.g. --num-perm 128")
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return int(lsh.b), int(lsh.r)


def signatures(corpus: Corpus, *, shingle: int = 5, num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """(n_docs, num_perm) uint32 signatures in global document order."""
    a, b = permutations(num_perm, seed)
    sig = np.empty((corpus.n_docs, num_perm), dtype=np.uint32)
    for k, tokens in enumerate(corpus.shards):
        lo, hi = corpus.shard_range(k)
        if hi > lo:
            sig[lo:hi] = minhash_signatures(tokens, corpus.starts[lo:hi], corpus.ends[lo:hi], shingle, a, b)
    log.info("%d MinHash signatures (%d permutations, %d-token shingles)", len(sig), num_perm, shingle)
    return sig


def as_lean_minhash(signature: np.ndarray, seed: int = 1):
    """A datasketch LeanMinHash for one signature row (query it against the user's own index)."""
    from datasketch import LeanMinHash

    return LeanMinHash(seed=seed, hashvalues=np.asarray(signature, dtype=np.uint32), scheme=SCHEME)
