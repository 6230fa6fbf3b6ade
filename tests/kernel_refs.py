"""Plain numpy / pure Python twins of the numba kernels in fwpipe/kernels.py.

They live with the tests, not in the installed package: each is the definition a kernel must
match, written for reading rather than speed; tests/test_kernels*.py compare the two on random
input.
"""

from __future__ import annotations

import numpy as np

from fwpipe.kernels import FILTER_BITS_PER_HASH, LENGTH_BINS, hashset_slots


def token_histogram_ref(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    tokens = np.asarray(tokens, dtype=np.int64)
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise IndexError("token_histogram: a token id is outside [0, vocab_size)")
    return np.bincount(tokens, minlength=vocab_size).astype(np.int64)


def doc_bounds_ref(tokens: np.ndarray, eot: int) -> tuple[np.ndarray, np.ndarray]:
    is_doc = np.concatenate([[False], np.asarray(tokens) != eot, [False]])
    edges = np.flatnonzero(np.diff(is_doc.astype(np.int8)))
    return edges[0::2].astype(np.int64), edges[1::2].astype(np.int64)


def length_histogram_ref(lengths: np.ndarray) -> np.ndarray:
    lengths = np.asarray(lengths, dtype=np.int64)
    bins = np.array([int(n).bit_length() for n in lengths], dtype=np.int64)
    return np.bincount(np.minimum(bins, LENGTH_BINS - 1), minlength=LENGTH_BINS).astype(np.int64)


def _fmix64_ref(h: int) -> int:
    m = (1 << 64) - 1
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & m
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & m
    return h ^ (h >> 33)


def window_hashes_ref(tokens, starts, ends, n, short_docs):
    """Pure Python: each window hashed from scratch (no rolling), as the definition above says."""
    m = (1 << 64) - 1
    out, offsets = [], [0]
    for s, e in zip(starts, ends):
        doc = [int(t) for t in tokens[s:e]]
        windows = (
            [doc[i : i + n] for i in range(len(doc) - n + 1)]
            if len(doc) >= n
            else ([doc] if short_docs and doc else [])
        )
        for w in windows:
            h = 0
            for t in w:
                h = (h * 0x100000001B3 + t + 1) & m
            out.append(_fmix64_ref(h))
        offsets.append(len(out))
    return np.array(out, dtype=np.uint64), np.array(offsets, dtype=np.int64)


def doc_hashes_ref(tokens, starts, ends):
    m = (1 << 64) - 1
    out = []
    for s, e in zip(starts, ends):
        h = 0
        for t in tokens[s:e]:
            h = (h * 0x100000001B3 + int(t) + 1) & m
        out.append(_fmix64_ref(h ^ int(e - s)))
    return np.array(out, dtype=np.uint64)


def minhash_signatures_ref(tokens, starts, ends, n, a, b):
    """numpy, datasketch's own arithmetic: uint32 arrays whose wraparound is the mod 2**32."""
    hashes, offsets = window_hashes_ref(tokens, starts, ends, n, True)
    a = np.asarray(a, dtype=np.uint32)
    b = np.asarray(b, dtype=np.uint32)
    sig = np.empty((len(starts), len(a)), dtype=np.uint32)
    for d in range(len(starts)):
        hv = (hashes[offsets[d] : offsets[d + 1]] >> np.uint64(32)).astype(np.uint32).reshape(-1, 1)
        hv = hv ^ (hv >> np.uint32(16))
        hv = hv * np.uint32(0x85EBCA6B)
        hv = hv ^ (hv >> np.uint32(13))
        hv = hv * np.uint32(0xC2B2AE35)
        hv = hv ^ (hv >> np.uint32(16))
        sig[d] = (hv * a + b).min(axis=0)
    return sig


def signature_keys_ref(sig, n_bands, rows):
    m = (1 << 64) - 1
    keys = np.empty((n_bands + 1, sig.shape[0]), dtype=np.uint64)
    for d in range(sig.shape[0]):
        full = n_bands
        for bnd in range(n_bands):
            h = bnd
            for r in range(bnd * rows, (bnd + 1) * rows):
                h = (h * 0x100000001B3 + int(sig[d, r])) & m
            keys[bnd, d] = _fmix64_ref(h)
            full = (full * 0x100000001B3 + int(keys[bnd, d])) & m
        for r in range(n_bands * rows, sig.shape[1]):
            full = (full * 0x100000001B3 + int(sig[d, r])) & m
        keys[n_bands, d] = _fmix64_ref(full)
    return keys


def bucket_pairs_ref(sorted_keys, order, max_bucket):
    buckets: dict[int, list[int]] = {}
    for key, doc in zip(sorted_keys.tolist(), order.tolist()):
        buckets.setdefault(key, []).append(doc)
    left, right = [], []
    for docs in buckets.values():
        pairs = (
            [(x, y) for i, x in enumerate(docs) for y in docs[i + 1 :]]
            if len(docs) <= max_bucket
            else [(min(docs), y) for y in docs if y != min(docs)]
        )
        for x, y in pairs:
            left.append(min(x, y))
            right.append(max(x, y))
    return np.array(left, dtype=np.int64), np.array(right, dtype=np.int64)


def signature_agreement_ref(sig, left, right):
    return (sig[left] == sig[right]).sum(axis=1).astype(np.int32)


def union_find_ref(n, left, right):
    adj: dict[int, list[int]] = {}
    for x, y in zip(np.asarray(left).tolist(), np.asarray(right).tolist()):
        adj.setdefault(x, []).append(y)
        adj.setdefault(y, []).append(x)
    label = np.full(n, -1, dtype=np.int64)
    for i in range(n):  # i is the smallest unlabelled index, so it is its component's minimum
        if label[i] >= 0:
            continue
        label[i] = i
        stack = [i]
        while stack:
            x = stack.pop()
            for y in adj.get(x, []):
                if label[y] < 0:
                    label[y] = i
                    stack.append(y)
    return label


def hashset_filter_ref(table):
    table = np.asarray(table, dtype=np.uint64)
    h = table[table != 0]
    n_words = 64
    while n_words * 64 < FILTER_BITS_PER_HASH * len(h):
        n_words *= 2
    words = np.zeros(n_words, dtype=np.uint64)
    word = h >> np.uint64(64 - (n_words.bit_length() - 1))
    for field in (0, 6, 12):
        np.bitwise_or.at(words, word, np.uint64(1) << ((h >> np.uint64(field)) & np.uint64(63)))
    return words


def ngram_probe_ref(tokens, starts, ends, n, table, bits, hit):
    """No filter: every n-gram looked up in the table (the filter may only skip absent ones)."""
    hashes, _ = window_hashes_ref(tokens, starts, ends, n, False)
    slots = hashset_slots(table, hashes)
    hit[slots[slots >= 0]] = 1
