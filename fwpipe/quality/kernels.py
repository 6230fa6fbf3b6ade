"""The n-gram loops of Gopher's repetition rules, as numba kernels (the rest of the rules are
str methods, already C). Plain-Python twins in tests/quality/test_kernels.py, compared on
random and real text.

A document is handed over as its words' ids (int64, equal words equal ids) and, for the
duplicate n-grams, the characters of its words concatenated (uint32 code points) with each
word's start in them: datatrove keys those n-grams by "".join(words), so ("ab", "c") and
("a", "bc") are the same n-gram there, and here too (the keys are compared character by
character, after a 64-bit rolling hash finds the candidates).
"""

from __future__ import annotations

import numba
import numpy as np

_MUL = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime, as the rolling hash's base


@numba.njit(cache=True, nogil=True)
def _table_size(n: int) -> int:
    size = 16
    while size < 2 * n:
        size *= 2
    return size


@numba.njit(cache=True, nogil=True)
def top_ngram_chars(ids: np.ndarray, lens: np.ndarray, n: int) -> int:
    """Characters of the most frequent word n-gram joined by single spaces, times its count;
    among n-grams of that count, the first seen (Counter.most_common(1)). 0 when there are
    fewer than n words."""
    m = len(ids) - n + 1
    if m <= 0:
        return 0
    size = _table_size(m)
    first = np.full(size, -1, np.int64)  # slot -> first word index of the n-gram
    count = np.zeros(size, np.int64)
    for i in range(m):
        h = np.uint64(14695981039346656037)
        for k in range(n):
            h = (h ^ np.uint64(ids[i + k])) * _MUL
        s = np.int64(h & np.uint64(size - 1))
        while True:
            j = first[s]
            if j == -1:
                first[s] = i
                count[s] = 1
                break
            same = True
            for k in range(n):
                if ids[j + k] != ids[i + k]:
                    same = False
                    break
            if same:
                count[s] += 1
                break
            s = (s + 1) & (size - 1)
    best, best_first = 0, m
    for s in range(size):
        if first[s] != -1 and (count[s] > best or (count[s] == best and first[s] < best_first)):
            best, best_first = count[s], first[s]
    chars = n - 1
    for k in range(n):
        chars += lens[best_first + k]
    return best * chars


@numba.njit(cache=True, nogil=True)
def dup_ngram_chars(chars: np.ndarray, starts: np.ndarray, n: int) -> int:
    """Characters in repeated n-grams of words joined with no separator, going left to right and
    jumping n words past each repeat (datatrove's find_all_duplicate). starts: (n_words + 1,),
    word w is chars[starts[w]:starts[w + 1]]."""
    n_words = len(starts) - 1
    m = n_words - n + 1
    if m <= 0:
        return 0
    prefix = np.zeros(len(chars) + 1, np.uint64)  # prefix[i]: hash of chars[:i]
    power = np.ones(len(chars) + 1, np.uint64)
    for i in range(len(chars)):
        prefix[i + 1] = prefix[i] * _MUL + np.uint64(chars[i]) + np.uint64(1)
        power[i + 1] = power[i] * _MUL
    size = _table_size(m)
    first = np.full(size, -1, np.int64)  # slot -> first word of a stored n-gram
    hashes = np.zeros(size, np.uint64)
    repeated = 0
    i = 0
    while i < m:
        a, b = starts[i], starts[i + n]
        h = prefix[b] - prefix[a] * power[b - a]
        s = np.int64(h & np.uint64(size - 1))
        found = False
        while first[s] != -1:
            j = first[s]
            ja, jb = starts[j], starts[j + n]
            if hashes[s] == h and jb - ja == b - a:
                same = True
                for k in range(b - a):
                    if chars[ja + k] != chars[a + k]:
                        same = False
                        break
                if same:
                    found = True
                    break
            s = (s + 1) & (size - 1)
        if found:
            repeated += b - a
            i += n
        else:
            first[s] = i
            hashes[s] = h
            i += 1
    return repeated
