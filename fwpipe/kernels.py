"""Hot loops over token arrays, as numba kernels.

Each kernel has a plain numpy (or pure Python) twin, named `*_ref`, in tests/kernel_refs.py
(with the tests, not in the installed package); the tests compare the two on random input. Kernels take contiguous arrays and return new arrays; the
callers own the I/O.
"""

from __future__ import annotations

import numba
import numpy as np

# document-length histograms need no loop of ours: plain numpy, re-exported from their own module
from fwpipe.lengthbins import LENGTH_BINS, length_bin_edges, length_histogram  # noqa: F401


@numba.njit(cache=True, nogil=True)
def token_histogram(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """Count of each id in [0, vocab_size). An id outside raises: numba does not bounds-check,
    and a uint16 file can hold ids up to 65535 (fwpipe.shards rejects them before they get here)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for t in tokens:
        if t < 0 or t >= vocab_size:
            raise IndexError("token_histogram: a token id is outside [0, vocab_size)")
        counts[t] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def _count_eot(chunk, eot):
    # indices from 0 over a slice, not from a variable start: numba then knows they are
    # non-negative, drops its wraparound check, and LLVM vectorizes (~4x here)
    k = 0
    for i in range(len(chunk)):
        k += np.int64(chunk[i] == eot)
    return k


@numba.njit(cache=True, nogil=True)
def _eot_positions(chunk, eot, base, out, p):
    for i in range(len(chunk)):
        if chunk[i] == eot:  # rare (about one per document): a well-predicted branch
            out[p] = base + i
            p += 1


@numba.njit(cache=True, nogil=True, parallel=True)
def doc_bounds(tokens: np.ndarray, eot: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of every non-empty run of tokens between EOTs.

    The EOT positions are found in parallel over ~1M-token chunks (each chunk counts its own,
    then writes them at the prefix-sum offsets); the documents are the non-empty gaps between
    consecutive EOTs, with virtual EOTs at -1 and n.
    """
    n = len(tokens)
    n_chunks = min(max(n >> 20, 1), 1024)
    step = (n + n_chunks - 1) // n_chunks
    counts = np.zeros(n_chunks + 1, dtype=np.int64)
    for c in numba.prange(n_chunks):
        counts[c + 1] = _count_eot(tokens[c * step : min(n, (c + 1) * step)], eot)
    offsets = np.cumsum(counts)
    pos = np.empty(offsets[-1] + 2, dtype=np.int64)  # EOT positions between sentinels -1 and n
    pos[0], pos[-1] = -1, n
    for c in numba.prange(n_chunks):
        _eot_positions(tokens[c * step : min(n, (c + 1) * step)], eot, c * step, pos, offsets[c] + 1)
    n_docs = 0
    for j in range(1, len(pos)):
        n_docs += pos[j] - pos[j - 1] > 1
    starts = np.empty(n_docs, dtype=np.int64)
    ends = np.empty(n_docs, dtype=np.int64)
    d = 0
    for j in range(1, len(pos)):
        if pos[j] - pos[j - 1] > 1:
            starts[d] = pos[j - 1] + 1
            ends[d] = pos[j]
            d += 1
    return starts, ends


# ---------------------------------------------------------------------------------------------
# ---- audit kernels
#
# Token-window hashing for `fwpipe audit`. A window's hash is a polynomial over (token + 1)
# modulo 2**64, finished by the MurmurHash3 64-bit finalizer:
#
#     H(w) = fmix64(sum_j (w[j] + 1) * POLY**(len(w) - 1 - j))
#
# Windows never cross a document boundary (callers pass doc starts/ends). The polynomial rolls
# in O(1) per token, so hashing costs the same for 5-grams and 13-grams. MinHash shingles use
# the high 32 bits (datasketch's default `affine32` scheme takes 32-bit input hashes);
# contamination n-grams keep all 64 bits (with ~1e6 val 13-grams against ~1e8 train ones, a
# 64-bit hash has ~1e-5 expected false matches; 32 bits would give ~3e4).

_POLY = np.uint64(0x100000001B3)  # the FNV-64 prime: odd, so x -> x * POLY is a bijection
_FM64_1 = np.uint64(0xFF51AFD7ED558CCD)  # MurmurHash3 fmix64 constants
_FM64_2 = np.uint64(0xC4CEB9FE1A85EC53)
_FM32_1 = np.uint64(0x85EBCA6B)  # MurmurHash3 fmix32 constants (datasketch's _FMIX_CONSTANTS[32])
_FM32_2 = np.uint64(0xC2B2AE35)
_MASK32 = np.uint64(0xFFFFFFFF)
_U1 = np.uint64(1)
_S13, _S16, _S32, _S33 = np.uint64(13), np.uint64(16), np.uint64(32), np.uint64(33)


@numba.njit(cache=True, nogil=True, inline="always")
def _fmix64(h):
    h ^= h >> _S33
    h *= _FM64_1
    h ^= h >> _S33
    h *= _FM64_2
    h ^= h >> _S33
    return h


@numba.njit(cache=True, nogil=True, inline="always")
def _fmix32(h):
    # on uint64 holding a 32-bit value; the masks are the wraparound of datasketch's uint32 math
    h ^= h >> _S16
    h = (h * _FM32_1) & _MASK32
    h ^= h >> _S13
    h = (h * _FM32_2) & _MASK32
    h ^= h >> _S16
    return h


@numba.njit(cache=True, nogil=True, inline="always")
def _pow_poly(k):
    p = _U1
    for _ in range(k):
        p *= _POLY
    return p


@numba.njit(cache=True, nogil=True)
def _doc_window_hashes(tokens, s, e, n, short_docs, out, o):
    """Write the fmix64 hashes of doc tokens[s:e]'s n-token windows to out[o:]; return the count.

    A document shorter than n gives one window of all its tokens if short_docs, else none.
    """
    length = e - s
    if length < n:
        if not short_docs or length <= 0:
            return 0
        h = np.uint64(0)
        for i in range(s, e):
            h = h * _POLY + np.uint64(tokens[i]) + _U1
        out[o] = _fmix64(h)
        return 1
    top = _pow_poly(n - 1)
    h = np.uint64(0)
    for i in range(s, s + n):
        h = h * _POLY + np.uint64(tokens[i]) + _U1
    out[o] = _fmix64(h)
    k = 1
    for i in range(s + n, e):
        h = (h - (np.uint64(tokens[i - n]) + _U1) * top) * _POLY + np.uint64(tokens[i]) + _U1
        out[o + k] = _fmix64(h)
        k += 1
    return k


@numba.njit(cache=True, nogil=True)
def _n_windows(starts, ends, n, short_docs):
    counts = np.empty(len(starts) + 1, dtype=np.int64)
    counts[0] = 0
    for d in range(len(starts)):
        length = ends[d] - starts[d]
        c = length - n + 1 if length >= n else (1 if short_docs and length > 0 else 0)
        counts[d + 1] = counts[d] + c
    return counts


@numba.njit(cache=True, nogil=True)
def window_hashes(tokens, starts, ends, n, short_docs):
    """All window hashes of the given docs, concatenated, and offsets (len(starts) + 1)."""
    offsets = _n_windows(starts, ends, n, short_docs)
    out = np.empty(offsets[-1], dtype=np.uint64)
    for d in range(len(starts)):
        _doc_window_hashes(tokens, starts[d], ends[d], n, short_docs, out, offsets[d])
    return out, offsets


@numba.njit(cache=True, nogil=True, parallel=True)
def doc_hashes(tokens, starts, ends):
    """A 64-bit hash of each whole document (its full token run), for exact-duplicate grouping."""
    p2 = _POLY * _POLY
    p3 = p2 * _POLY
    p4 = p3 * _POLY
    out = np.empty(len(starts), dtype=np.uint64)
    for d in numba.prange(len(starts)):
        s, e = starts[d], ends[d]
        h = np.uint64(0)
        i = s
        while i + 4 <= e:  # four tokens a step, the same polynomial mod 2**64: one multiply-add
            # on the dependency chain per step instead of four
            h = h * p4 + (
                (np.uint64(tokens[i]) + _U1) * p3
                + (np.uint64(tokens[i + 1]) + _U1) * p2
                + (np.uint64(tokens[i + 2]) + _U1) * _POLY
                + np.uint64(tokens[i + 3])
                + _U1
            )
            i += 4
        for j in range(i, e):
            h = h * _POLY + np.uint64(tokens[j]) + _U1
        out[d] = _fmix64(h ^ np.uint64(e - s))  # the length too: cheap insurance
    return out


_MH_BLOCK = 1024  # documents per parallel task of minhash_signatures
_MH_FEW_SHINGLES = 64  # up to this many shingles, the loop over permutations goes inside (1.6x at 36)


@numba.njit(cache=True, nogil=True, parallel=True)
def minhash_signatures(tokens, starts, ends, n, a, b):
    """MinHash signature (len(a) uint32 values) per doc over its n-token shingles.

    Bit for bit datasketch 2.x `MinHash(scheme="affine32")` fed the 32-bit shingle hashes
    (window hash >> 32) through an identity hashfunc: each input is pre-mixed with fmix32, then
    permutation k maps it to a[k] * h + b[k] mod 2**32, and the signature keeps the minimum.
    a, b are the uint32 permutation parameters (minhash.permutations(num_perm, seed)).
    """
    n_docs = len(starts)
    n_perm = len(a)
    sig = np.empty((n_docs, n_perm), dtype=np.uint32)
    n_blocks = (n_docs + _MH_BLOCK - 1) // _MH_BLOCK
    for blk in numba.prange(n_blocks):  # blocks of documents are independent: the cores split them
        d0, d1 = blk * _MH_BLOCK, min(n_docs, (blk + 1) * _MH_BLOCK)
        most = 1
        for d in range(d0, d1):
            length = ends[d] - starts[d]
            most = max(most, length - n + 1 if length >= n else 1)
        buf = np.empty(most, dtype=np.uint64)  # scratch allocated once a block, not once a document
        hv = np.empty(most, dtype=np.uint32)  # (2x on 40-token documents)
        mins = np.empty(n_perm, dtype=np.uint32)
        for d in range(d0, d1):
            s, e = starts[d], ends[d]
            length = e - s
            n_win = length - n + 1 if length >= n else 1
            _doc_window_hashes(tokens, s, e, n, True, buf, 0)
            for w in range(n_win):  # the pre-mixed 32-bit shingle hashes
                hv[w] = np.uint32(_fmix32(buf[w] >> _S32))
            if n_win <= _MH_FEW_SHINGLES:
                # few shingles: over the permutations inside, 128 lanes of running minima (a
                # short min-reduction over shingles would be mostly loop prologue and tail)
                for k in range(n_perm):
                    mins[k] = np.uint32(0xFFFFFFFF)
                for w in range(n_win):
                    h = hv[w]
                    for k in range(n_perm):
                        mins[k] = min(mins[k], np.uint32(a[k] * h + b[k]))
                for k in range(n_perm):
                    sig[d, k] = mins[k]
                continue
            for k in range(n_perm):
                # the hot loop on long documents: a min-reduction over the shingles, in uint32
                # lanes (truncating the product is the mod 2**32). LLVM vectorizes it with the
                # running minima in registers; the other order (over k inside, per shingle)
                # loads and stores the 128 minima per shingle and was 1.5x slower there
                ak, bk = a[k], b[k]
                mk = np.uint32(0xFFFFFFFF)
                for w in range(n_win):
                    mk = min(mk, np.uint32(ak * hv[w] + bk))
                sig[d, k] = mk
    return sig


@numba.njit(cache=True, nogil=True, parallel=True)
def signature_keys(sig, n_bands, rows):
    """(n_bands + 1, n_docs) uint64: a hash of each band's `rows` signature values, then a hash
    of the whole signature.

    Two docs share a bucket in datasketch's MinHashLSH iff their band values are equal; equal
    values give equal keys here, and unequal ones collide with probability ~2**-64 per pair.
    A band key is the polynomial of its values mod 2**64 (one multiply-add a value), finished
    by fmix64; the whole-signature key chains the band keys and the values no band uses. Mixing
    only once per band is ~8x less work than mixing each value.
    """
    n_docs, n_perm = sig.shape
    keys = np.empty((n_bands + 1, n_docs), dtype=np.uint64)
    for d in numba.prange(n_docs):
        full = np.uint64(n_bands)
        for bnd in range(n_bands):
            h = np.uint64(bnd)
            for r in range(bnd * rows, (bnd + 1) * rows):
                h = h * _POLY + np.uint64(sig[d, r])
            h = _fmix64(h)
            keys[bnd, d] = h
            full = full * _POLY + h
        for r in range(n_bands * rows, n_perm):
            full = full * _POLY + np.uint64(sig[d, r])
        keys[n_bands, d] = _fmix64(full)
    return keys


@numba.njit(cache=True, nogil=True)
def bucket_pairs(sorted_keys, order, max_bucket):
    """Candidate pairs (i < j) of docs that share a key, given keys sorted and their doc ids.

    A bucket of k docs gives all k(k-1)/2 pairs when k <= max_bucket; a larger one (templated
    pages) gives only each member paired with the bucket's smallest doc id, k - 1 pairs, which
    still joins them if the estimated Jaccard agrees, and keeps the pair count linear.
    """
    n = len(sorted_keys)
    n_pairs = 0
    i = 0
    while i < n:  # pass 1: count
        j = i + 1
        while j < n and sorted_keys[j] == sorted_keys[i]:
            j += 1
        k = j - i
        n_pairs += k * (k - 1) // 2 if k <= max_bucket else k - 1
        i = j
    left = np.empty(n_pairs, dtype=np.int64)
    right = np.empty(n_pairs, dtype=np.int64)
    p = 0
    i = 0
    while i < n:
        j = i + 1
        while j < n and sorted_keys[j] == sorted_keys[i]:
            j += 1
        if j - i <= max_bucket:
            for x in range(i, j):
                for y in range(x + 1, j):
                    left[p], right[p] = min(order[x], order[y]), max(order[x], order[y])
                    p += 1
        else:  # star around the smallest doc id, so the pairs do not depend on the sort's tie order
            first = order[i]
            for x in range(i + 1, j):
                first = min(first, order[x])
            for y in range(i, j):
                if order[y] != first:
                    left[p], right[p] = first, order[y]
                    p += 1
        i = j
    return left, right


@numba.njit(cache=True, nogil=True, parallel=True)
def signature_agreement(sig, left, right):
    """Number of equal signature values per pair: the estimated Jaccard times num_perm."""
    out = np.empty(len(left), dtype=np.int32)
    for p in numba.prange(len(left)):
        c = 0
        for k in range(sig.shape[1]):
            c += sig[left[p], k] == sig[right[p], k]
        out[p] = c
    return out


@numba.njit(cache=True, nogil=True)
def union_into(parent, left, right):
    """Join the edges' items in a parent array whose entries point at smaller or equal indices;
    afterwards every entry is its component's smallest member (its label)."""
    for e in range(len(left)):
        x, y = left[e], right[e]
        while parent[x] != x:  # find with path halving
            parent[x] = parent[parent[x]]
            x = parent[x]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x < y:  # the smaller index becomes the root, so labels are the components' minima
            parent[y] = x
        elif y < x:
            parent[x] = y
    for i in range(len(parent)):  # parents always point to smaller indices, so one forward pass resolves
        parent[i] = parent[parent[i]]


@numba.njit(cache=True, nogil=True)
def union_find(n, left, right):
    """Component label of each of n items joined by the edges: the smallest member's index."""
    parent = np.arange(n, dtype=np.int64)
    union_into(parent, left, right)
    return parent


# An open-addressing set of 64-bit hashes (0 marks an empty slot, so 0 itself is stored as 1):
# for 13-gram contamination, the val n-grams go in, the train n-grams stream past.


@numba.njit(cache=True, nogil=True, inline="always")
def _slot(table, h):
    mask = len(table) - 1
    i = _fmix64(h) & np.uint64(mask)  # re-mix: the low bits of a polynomial hash are weak
    while True:
        t = table[i]
        if t == h or t == 0:
            return np.int64(i)
        i = (i + _U1) & np.uint64(mask)


@numba.njit(cache=True, nogil=True)
def hashset_build(hashes):
    """A table (power-of-two size, at most half full) holding the distinct nonzero-mapped hashes."""
    size = 1
    while size < 2 * len(hashes) + 2:
        size *= 2
    table = np.zeros(size, dtype=np.uint64)
    for h in hashes:
        h = h if h != 0 else _U1
        table[_slot(table, h)] = h
    return table


@numba.njit(cache=True, nogil=True)
def hashset_slots(table, hashes):
    """Slot of each hash in the table, -1 where it is absent."""
    out = np.empty(len(hashes), dtype=np.int64)
    for i in range(len(hashes)):
        h = hashes[i] if hashes[i] != 0 else _U1
        s = _slot(table, h)
        out[i] = s if table[s] == h else -1
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _log2(n):
    k = 0
    while (1 << (k + 1)) <= n:
        k += 1
    return k


FILTER_BITS_PER_HASH = 16
_S6, _S12, _M6 = np.uint64(6), np.uint64(12), np.uint64(63)


@numba.njit(cache=True, nogil=True, inline="always")
def _filter_mask(h):
    # three bits of one 64-bit word, chosen by the low 18 bits of the hash (the word by its
    # high bits; the table slot by fmix64(h), independent of both)
    return (_U1 << (h & _M6)) | (_U1 << ((h >> _S6) & _M6)) | (_U1 << ((h >> _S12) & _M6))


@numba.njit(cache=True, nogil=True)
def hashset_filter(table):
    """A word-blocked Bloom filter over the table's hashes: 3 bits in one uint64 word per hash.

    The table is far bigger than the CPU caches (1M val 13-grams: 2M slots, 16 MB), and nearly
    every train n-gram is absent from it, so the probe checks this filter first and touches the
    table only for the n-grams that pass. At 16 bits per hash (1M hashes: 2 MB, an L2 cache
    here) ~0.7% of absent n-grams pass; one word per lookup keeps it one cache miss at most.
    """
    n_items = 0
    for h in table:
        n_items += h != 0
    n_words = 64
    while n_words * 64 < FILTER_BITS_PER_HASH * n_items:
        n_words *= 2
    words = np.zeros(n_words, dtype=np.uint64)
    shift = np.uint64(64 - _log2(n_words))
    for h in table:
        if h != 0:
            words[h >> shift] |= _filter_mask(h)
    return words


@numba.njit(cache=True, nogil=True, parallel=True)
def ngram_probe(tokens, starts, ends, n, table, bits, hit):
    """Set hit[slot] = 1 for every table hash that some n-gram of these docs produces.

    Streams: nothing is kept beyond one document's n-grams, so memory is the table and its
    filter (bits, from hashset_filter), whatever the train size. Per document, in three
    passes, each a loop without a dependence between iterations, so the CPU overlaps the cache
    misses instead of waiting on each (2.5x the one-pass loop on 50M tokens here): hash every
    n-gram; keep those that pass the filter; load each one's home slot, then resolve. Concurrent
    writes all store 1: a harmless race.
    """
    top = _pow_poly(n - 1)
    mask = np.uint64(len(table) - 1)
    shift = np.uint64(64 - _log2(len(bits)))
    for d in numba.prange(len(starts)):
        s, e = starts[d], ends[d]
        if e - s < n:
            continue
        n_win = e - s - n + 1
        xs = np.empty(n_win, dtype=np.uint64)
        h = np.uint64(0)
        for i in range(s, s + n - 1):
            h = h * _POLY + np.uint64(tokens[i]) + _U1
        for w in range(n_win):  # 1. the hashes, rolling
            h = h * _POLY + np.uint64(tokens[s + n - 1 + w]) + _U1
            x = _fmix64(h)
            xs[w] = x if x != 0 else _U1
            h -= (np.uint64(tokens[s + w]) + _U1) * top
        n_pass = 0
        for w in range(n_win):  # 2. the filter, compacting the survivors in place
            x = xs[w]
            m = _filter_mask(x)
            if bits[x >> shift] & m == m:
                xs[n_pass] = x
                n_pass += 1
        first = np.empty(n_pass, dtype=np.uint64)
        for c in range(n_pass):  # 3. the home slots' contents: independent loads
            first[c] = table[_fmix64(xs[c]) & mask]
        for c in range(n_pass):
            x = xs[c]
            if first[c] == 0:
                continue
            j = _fmix64(x) & mask
            while True:
                t = table[j]
                if t == x:
                    hit[j] = 1
                    break
                if t == 0:
                    break
                j = (j + _U1) & mask
