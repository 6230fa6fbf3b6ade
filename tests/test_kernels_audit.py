"""Audit kernels against their *_ref twins, and MinHash against datasketch itself."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash, MinHashLSH

from fwpipe import kernels as K
from fwpipe.dedup.config import as_lean_minhash, lsh_params, permutations
from fwpipe.tokenizer import EOT
from tests import kernel_refs as R


def random_stream(seed: int, n: int = 6000, docs: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random tokens with EOTs, including runs of EOT and documents of 1-4 tokens."""
    rng = np.random.default_rng(seed)
    toks = rng.integers(0, EOT, size=n).astype(np.uint16)
    toks[rng.integers(0, n, size=docs)] = EOT
    toks[10:12] = EOT
    toks[14] = EOT  # a 2-token document at 12:14
    toks[:3] = rng.integers(0, 3, size=3)  # small ids, so token 0 appears
    starts, ends = K.doc_bounds(toks, EOT)
    return toks, starts, ends


@pytest.mark.parametrize("n", [1, 5, 13])
@pytest.mark.parametrize("short_docs", [True, False])
def test_window_hashes_match_ref(n, short_docs):
    toks, s, e = random_stream(n)
    got = K.window_hashes(toks, s, e, n, short_docs)
    want = R.window_hashes_ref(toks, s, e, n, short_docs)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert len(got[0]) > 0


def test_window_hashes_differ_by_position_and_token():
    toks = np.array([1, 2, 3, 4, 5, EOT, 5, 4, 3, 2, 1, EOT, 1, 2, 3, 4, 6], dtype=np.uint16)
    s, e = K.doc_bounds(toks, EOT)
    h, _ = K.window_hashes(toks, s, e, 5, True)
    assert len(set(h.tolist())) == 3  # reversed and one-token-changed windows hash apart


def test_doc_hashes_match_ref():
    toks, s, e = random_stream(3)
    assert np.array_equal(K.doc_hashes(toks, s, e), R.doc_hashes_ref(toks, s, e))


def test_permutations_are_datasketchs():
    a, b = permutations(128, seed=1)
    m = MinHash(num_perm=128, seed=1)  # the default a user gets
    assert m.scheme == "affine32"
    assert np.array_equal(m.permutations[0], a) and np.array_equal(m.permutations[1], b)


@pytest.mark.parametrize("num_perm,seed", [(128, 1), (64, 42)])
def test_minhash_matches_ref_and_datasketch_bit_for_bit(num_perm, seed):
    toks, s, e = random_stream(seed)
    a, b = permutations(num_perm, seed)
    sig = K.minhash_signatures(toks, s, e, 5, a, b)
    assert np.array_equal(sig, R.minhash_signatures_ref(toks, s, e, 5, a, b))
    hashes, off = K.window_hashes(toks, s, e, 5, True)
    shingles32 = (hashes >> np.uint64(32)).astype(np.uint32)
    for d in range(len(s)):
        m = MinHash(num_perm=num_perm, seed=seed, hashfunc=lambda x: x)
        m.update_batch(shingles32[off[d] : off[d + 1]])
        assert np.array_equal(m.hashvalues, sig[d]), d


def test_signatures_load_as_lean_minhash():
    toks, s, e = random_stream(5)
    a, b = permutations(128, 1)
    sig = K.minhash_signatures(toks, s, e, 5, a, b)
    lean = as_lean_minhash(sig[0])
    assert isinstance(lean, LeanMinHash) and lean.scheme == "affine32"
    buf = bytearray(lean.bytesize())
    lean.serialize(buf)
    back = LeanMinHash.deserialize(buf)
    assert np.array_equal(back.hashvalues, sig[0])
    m = MinHash(num_perm=128, seed=1, hashfunc=lambda x: x)
    hashes, off = K.window_hashes(toks, s, e, 5, True)
    m.update_batch((hashes[off[1] : off[2]] >> np.uint64(32)).astype(np.uint32))
    assert as_lean_minhash(sig[1]).jaccard(LeanMinHash(m)) == 1.0


def test_lsh_params_are_datasketchs():
    from fwpipe.dedup.config import _DATASKETCH_BANDING

    settings = [(t, p) for p, row in _DATASKETCH_BANDING.items() for t in row]  # the written-down table
    settings += [(0.65, 128), (0.8, 100)]  # and two it lacks (asked of datasketch)
    for t, p in settings:
        lsh = MinHashLSH(threshold=t, num_perm=p)
        assert lsh_params(t, p) == (lsh.b, lsh.r), (t, p)
    assert lsh_params(0.8, 128) == (9, 13)


def test_signature_keys_and_agreement_match_ref():
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 4, size=(50, 14)).astype(np.uint32)  # few values: many equal bands
    sig[7] = sig[3]  # and two equal signatures
    assert np.array_equal(K.signature_keys(sig, 3, 4), R.signature_keys_ref(sig, 3, 4))
    keys = K.signature_keys(sig, 3, 4)
    for i in range(50):  # equal band values <=> equal keys; equal signatures <=> equal full keys
        for j in range(50):
            assert (keys[1, i] == keys[1, j]) == np.array_equal(sig[i, 4:8], sig[j, 4:8])
            assert (keys[3, i] == keys[3, j]) == np.array_equal(sig[i], sig[j])
    left, right = np.array([0, 1, 2, 5]), np.array([3, 4, 2, 49])
    assert np.array_equal(K.signature_agreement(sig, left, right), R.signature_agreement_ref(sig, left, right))


@pytest.mark.parametrize("max_bucket", [2, 3, 1000])
def test_bucket_pairs_match_ref(max_bucket):
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 8, size=40).astype(np.uint64)
    order = np.argsort(keys, kind="stable")
    got = K.bucket_pairs(keys[order], order.astype(np.int64), max_bucket)
    want = R.bucket_pairs_ref(keys[order], order.astype(np.int64), max_bucket)
    assert sorted(zip(*got)) == sorted(zip(*want))
    shuffled = np.lexsort((rng.random(40), keys))  # another tie order: the same pairs
    again = K.bucket_pairs(keys[shuffled], shuffled.astype(np.int64), max_bucket)
    assert sorted(zip(*again)) == sorted(zip(*got))


def test_union_find_matches_ref():
    rng = np.random.default_rng(2)
    left, right = rng.integers(0, 200, 150), rng.integers(0, 200, 150)
    got = K.union_find(200, left, right)
    assert np.array_equal(got, R.union_find_ref(200, left, right))
    assert len(np.unique(got)) < 200 and np.all(got <= np.arange(200))


def test_hashset_and_ngram_probe_match_ref():
    toks, s, e = random_stream(7, n=20000, docs=100)
    vs, ve = s[::3], e[::3]  # "val" docs
    val, _ = K.window_hashes(toks, vs, ve, 13, False)
    val = np.concatenate([val, np.array([0, 12345], dtype=np.uint64)])  # 0 is stored as 1
    table = K.hashset_build(np.unique(val))
    slots = K.hashset_slots(table, val)
    assert np.all(slots >= 0)
    assert np.all(K.hashset_slots(table, np.array([777, 99], dtype=np.uint64)) == -1)
    ts, te = s[1::3], e[1::3]  # "train" docs: share no windows unless by chance
    ts = np.concatenate([ts, vs[:4]])  # plus four val docs verbatim
    te = np.concatenate([te, ve[:4]])
    hit, hit_ref = np.zeros(len(table), np.uint8), np.zeros(len(table), np.uint8)
    bits = K.hashset_filter(table)
    assert 0 < np.unpackbits(bits.view(np.uint8)).sum() <= 3 * len(np.unique(val))
    K.ngram_probe(toks, ts, te, 13, table, bits, hit)
    R.ngram_probe_ref(toks, ts, te, 13, table, bits, hit_ref)
    assert np.array_equal(hit, hit_ref)
    h4, _ = K.window_hashes(toks, vs[:4], ve[:4], 13, False)
    assert hit.sum() == len(np.unique(h4)) > 0


def test_hashset_filter_matches_ref_and_passes_every_member():
    rng = np.random.default_rng(8)
    for n in (0, 1, 5, 1000, 70_000):  # 70K hashes: more words than the 64-word minimum
        hashes = rng.integers(0, 2**64, n, dtype=np.uint64)
        table = K.hashset_build(np.unique(hashes))
        bits = K.hashset_filter(table)
        assert np.array_equal(bits, R.hashset_filter_ref(table))
        assert len(bits) * 64 >= K.FILTER_BITS_PER_HASH * np.count_nonzero(table)
        # no false negatives: a probe with the filter finds every member a plain lookup finds
        shift = np.uint64(64 - (len(bits).bit_length() - 1))
        members = table[table != 0]
        mask = np.zeros(len(members), np.uint64)
        for field in (0, 6, 12):
            mask |= np.uint64(1) << ((members >> np.uint64(field)) & np.uint64(63))
        assert np.all(bits[members >> shift] & mask == mask)
