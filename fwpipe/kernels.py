"""Hot loops over token arrays, as numba kernels.

Each kernel has a plain numpy (or pure Python) twin right below it, named `*_ref`; the tests
compare the two on random input. Kernels take contiguous arrays and return new arrays; the
callers own the I/O.
"""

from __future__ import annotations

import numba
import numpy as np

# Document-length histogram bins: bin 0 holds length 0, bin i >= 1 holds [2**(i-1), 2**i).
LENGTH_BINS = 40


@numba.njit(cache=True, nogil=True)
def token_histogram(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    counts = np.zeros(vocab_size, dtype=np.int64)
    for t in tokens:
        counts[t] += 1
    return counts


def token_histogram_ref(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    return np.bincount(np.asarray(tokens, dtype=np.int64), minlength=vocab_size).astype(np.int64)


@numba.njit(cache=True, nogil=True)
def doc_bounds(tokens: np.ndarray, eot: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of every non-empty run of tokens between EOTs."""
    n = len(tokens)
    n_docs = 0
    prev_eot = True
    for i in range(n):  # first pass counts, so the outputs are allocated once
        is_eot = tokens[i] == eot
        if not is_eot and prev_eot:
            n_docs += 1
        prev_eot = is_eot
    starts = np.empty(n_docs, dtype=np.int64)
    ends = np.empty(n_docs, dtype=np.int64)
    d = -1
    prev_eot = True
    for i in range(n):
        is_eot = tokens[i] == eot
        if not is_eot and prev_eot:
            d += 1
            starts[d] = i
        if is_eot and not prev_eot:
            ends[d] = i
        prev_eot = is_eot
    if d >= 0 and not prev_eot:
        ends[d] = n
    return starts, ends


def doc_bounds_ref(tokens: np.ndarray, eot: int) -> tuple[np.ndarray, np.ndarray]:
    is_doc = np.concatenate([[False], np.asarray(tokens) != eot, [False]])
    edges = np.flatnonzero(np.diff(is_doc.astype(np.int8)))
    return edges[0::2].astype(np.int64), edges[1::2].astype(np.int64)


@numba.njit(cache=True, nogil=True)
def length_histogram(lengths: np.ndarray) -> np.ndarray:
    hist = np.zeros(LENGTH_BINS, dtype=np.int64)
    for n in lengths:
        b = 0
        while n > 0 and b < LENGTH_BINS - 1:  # b = bit length of n, capped
            n >>= 1
            b += 1
        hist[b] += 1
    return hist


def length_histogram_ref(lengths: np.ndarray) -> np.ndarray:
    lengths = np.asarray(lengths, dtype=np.int64)
    bins = np.array([int(n).bit_length() for n in lengths], dtype=np.int64)
    return np.bincount(np.minimum(bins, LENGTH_BINS - 1), minlength=LENGTH_BINS).astype(np.int64)


def length_bin_edges() -> list[int]:
    """Lower edge of each length_histogram bin (bin 0 is length 0)."""
    return [0] + [2 ** (i - 1) for i in range(1, LENGTH_BINS)]
