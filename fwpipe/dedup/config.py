"""The one dedup configuration, its defaults, and the datasketch parameters derived from it.

fwpipe uses datasketch 2.x's default permutation scheme, `affine32` (what `MinHash()` gives a
user who passes no `scheme`): a 32-bit input hash is pre-mixed with the MurmurHash3 finalizer,
then permutation k maps it to a_k * h + b_k mod 2**32, with a_k odd. The parameters come from
numpy's RandomState(seed) exactly as datasketch draws them, so for the same shingle hashes a
signature here equals `MinHash(num_perm, seed, hashfunc=lambda h: h)` bit for bit, and
`as_lean_minhash` turns a row into a datasketch LeanMinHash that compares with the user's own.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from fwpipe.errors import ConfigError

SCHEME = "affine32"

# (bands, rows) as datasketch's MinHashLSH(threshold, num_perm) picks them, for the common
# settings: its _optimal_param grid search, run once and written down, so the default run
# does not import datasketch (and scipy with it: ~0.4 s). tests/test_kernels_audit.py checks
# every entry against datasketch itself; other settings ask datasketch.
_DATASKETCH_BANDING = {
    64: {
        0.5: (14, 4),
        0.6: (10, 6),
        0.7: (8, 8),
        0.75: (7, 9),
        0.8: (5, 11),
        0.85: (4, 15),
        0.9: (3, 21),
        0.95: (2, 32),
    },
    128: {
        0.5: (25, 5),
        0.6: (18, 7),
        0.7: (14, 9),
        0.75: (11, 11),
        0.8: (9, 13),
        0.85: (8, 16),
        0.9: (5, 25),
        0.95: (3, 42),
    },
    256: {
        0.5: (42, 6),
        0.6: (32, 8),
        0.7: (25, 10),
        0.75: (21, 12),
        0.8: (17, 15),
        0.85: (13, 19),
        0.9: (9, 28),
        0.95: (5, 51),
    },
}


@dataclass(frozen=True)
class DedupConfig:
    """Near-duplicate settings shared by `fwpipe audit` and `fwpipe prepare --dedup near`.

    One set of defaults, so that audit on a deduplicated dataset finds what prepare removed.
    """

    threshold: float = 0.8  # Jaccard of the shingle sets at which two documents are near duplicates
    shingle: int = 5  # tokens per shingle; a document shorter than this is one shingle
    num_perm: int = 128  # MinHash permutations (uint32 each: 512 bytes of signature per document)
    seed: int = 1  # datasketch's default seed
    max_bucket: int = 256  # a band bucket over this many documents pairs each with its first only (linear)
    # Pairs where a document has at most this many shingles are confirmed by their exact Jaccard:
    # with one to a few 32-bit shingle hashes, a hash collision (1 in 4e9 per pair: ~100 pairs
    # among 1M distinct 5-token documents) makes unrelated documents look like Jaccard 1.
    confirm_shingles: int = 32

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"threshold {self.threshold} is not in (0, 1]", "pass e.g. --threshold 0.8")
        if self.num_perm < 2 or self.num_perm > 4096:
            raise ConfigError(f"num_perm {self.num_perm} is outside [2, 4096]", "pass e.g. --num-perm 128")
        if self.shingle < 1:
            raise ConfigError(f"shingle {self.shingle} is below 1", "pass a positive --shingle")
        if self.max_bucket < 2:
            raise ConfigError(f"max_bucket {self.max_bucket} is below 2", "pass a bucket cap of 2 or more")

    @property
    def bands(self) -> int:
        return lsh_params(self.threshold, self.num_perm)[0]

    @property
    def rows(self) -> int:
        return lsh_params(self.threshold, self.num_perm)[1]

    @property
    def min_agree(self) -> int:
        """Equal signature values a pair needs: estimated Jaccard = agree / num_perm >= threshold."""
        import math

        return math.ceil(self.threshold * self.num_perm - 1e-9)

    def as_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "shingle": self.shingle,
            "num_perm": self.num_perm,
            "seed": self.seed,
            "bands": self.bands,
            "rows": self.rows,
            "max_bucket": self.max_bucket,
            "confirm_shingles": self.confirm_shingles,
        }


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) uint32 arrays: datasketch.MinHash(num_perm, seed, scheme='affine32').permutations."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)  # odd: a bijection
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


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


def as_lean_minhash(signature: np.ndarray, seed: int = 1):
    """A datasketch LeanMinHash for one signature row (query it against the user's own index)."""
    from datasketch import LeanMinHash

    return LeanMinHash(seed=seed, hashvalues=np.asarray(signature, dtype=np.uint32), scheme=SCHEME)
