"""The dedup engine: the out-of-core passes give the one-pass answer, the answer is datasketch's,
and few-shingle pairs are confirmed exactly."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest
from datasketch import MinHashLSH

from fwpipe import kernels as K
from fwpipe.dedup import DedupConfig, DocIndex, as_lean_minhash, components, exact_first, index_shards, near_clusters
from fwpipe.dedup.lsh import candidate_pairs, signatures
from fwpipe.tokenizer import EOT, encode
from tests.corpus import edit_words


def _stream(docs: list[np.ndarray]) -> np.ndarray:
    parts = []
    for d in docs:
        parts += [np.array([EOT], np.uint16), np.asarray(d, np.uint16)]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def mixed(sample1400) -> DocIndex:
    """Two shards of real documents: 300 originals, edited copies (~1% and ~10% of words), exact
    copies, and 40 short documents (a few tokens, some repeated)."""
    texts = [t for t in pl.read_parquet(sample1400, columns=["text"])["text"].to_list() if len(t.split()) >= 60][:300]
    rng = random.Random(3)
    docs = [encode(t) for t in texts]
    docs += [encode(edit_words(texts[i], 0.01 if i % 2 else 0.1, rng)) for i in range(0, 120)]
    docs += [docs[i] for i in range(0, 300, 7)]
    short = [encode(f"item {i} sold") for i in range(30)] + [encode("item 3 sold")] * 5 + [encode(" ok")] * 5
    docs += short
    order = list(range(len(docs)))
    rng.shuffle(order)
    docs = [docs[i] for i in order]
    half = len(docs) // 2
    return index_shards([_stream(docs[:half]), _stream(docs[half:])], EOT)


def test_out_of_core_passes_equal_one_pass(mixed, tmp_path):
    cfg = DedupConfig()
    first = exact_first(mixed)
    _, one = near_clusters(mixed, cfg, copy_of=first, tmp_dir=tmp_path / "one", identity={}, memory_bytes=1 << 30)
    _, many = near_clusters(mixed, cfg, copy_of=first, tmp_dir=tmp_path / "many", identity={}, memory_bytes=4096)
    assert one.stats["bucket_passes"] == 1 and one.stats["verify_passes"] == 1
    assert many.stats["bucket_passes"] >= 4 and many.stats["verify_passes"] >= 3  # the cap forced several passes
    assert np.array_equal(one.root, many.root) and np.array_equal(one.rep, many.rep)
    assert {k: one.stats[k] for k in ("candidate_pairs", "kept_pairs", "distinct_signatures")} == {
        k: many.stats[k] for k in ("candidate_pairs", "kept_pairs", "distinct_signatures")
    }
    assert one.stats["kept_pairs"] >= 40 and (one.root != np.arange(len(one.root))).sum() >= 100  # real work was done


def test_int32_and_int64_document_numbers_give_one_answer(mixed, tmp_path, monkeypatch):
    """Below 2**31 documents (tokens in a shard) the per-document index arrays (offsets) are
    int32, 4 bytes a document, not 8; past it, int64. With the limits lowered under this
    corpus's sizes the int64 paths run, and the exact copies, groups and components must be the
    same numbers."""
    from fwpipe.dedup import docs as docs_module

    cfg = DedupConfig()
    first32 = exact_first(mixed)
    _, c32 = near_clusters(mixed, cfg, copy_of=first32, tmp_dir=tmp_path / "a", identity={}, memory_bytes=4096)
    monkeypatch.setattr(docs_module, "INT32_DOCS", len(mixed.starts) - 1)
    monkeypatch.setattr(docs_module, "INT32_OFFSETS", 100)
    wide = index_shards(mixed.shards, EOT)
    first64 = exact_first(wide)
    _, c64 = near_clusters(wide, cfg, copy_of=first64, tmp_dir=tmp_path / "b", identity={}, memory_bytes=4096)
    assert mixed.starts.dtype == first32.dtype == c32.root.dtype == c32.rep.dtype == np.int32
    assert wide.starts.dtype == first64.dtype == c64.root.dtype == c64.rep.dtype == np.int64
    assert np.array_equal(mixed.starts, wide.starts) and np.array_equal(mixed.ends, wide.ends)
    assert (first32 != np.arange(len(first32))).sum() >= 40  # exact copies were found
    assert np.array_equal(first32, first64)
    assert np.array_equal(c32.root, c64.root) and np.array_equal(c32.rep, c64.rep)
    assert c32.stats == c64.stats


def test_engine_pairs_and_clusters_equal_datasketch_lsh(mixed, tmp_path):
    """The same candidate pairs as datasketch MinHashLSH on the same signatures, and the clusters
    of those pairs at estimated Jaccard >= threshold."""
    cfg = DedupConfig()
    first = exact_first(mixed)
    sc, comp = near_clusters(mixed, cfg, copy_of=first, tmp_dir=tmp_path, identity={}, memory_bytes=4096)
    sig = signatures(mixed, cfg, copy_of=first)
    reps = np.flatnonzero(comp.rep == np.arange(len(comp.rep)))
    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
    lean = [as_lean_minhash(sig[r]) for r in reps]
    for i, m in enumerate(lean):
        lsh.insert(i, m)
    want = {(min(i, j), max(i, j)) for i, m in enumerate(lean) for j in lsh.query(m) if j != i}
    assert comp.stats["candidate_pairs"] == len(want) > 50
    left, right = candidate_pairs(sig[reps], cfg.bands, cfg.rows)
    assert set(zip(left.tolist(), right.tolist())) == want
    close = K.signature_agreement(sig[reps], left, right) >= cfg.min_agree
    kept = {(int(reps[a]), int(reps[b])) for a, b in zip(left[close], right[close])}
    got = {(int(a), int(b)) for lo, hi in comp.kept_pairs() for a, b in zip(lo, hi)}
    assert got == kept  # no short document here has a colliding hash: confirmation rejects none
    root = K.union_find(
        len(sig),
        np.concatenate([comp.rep, left[close] * 0 + reps[left[close]]]),
        np.concatenate([np.arange(len(sig)), reps[right[close]]]),
    )
    assert np.array_equal(root, comp.root)
    sc.remove()
    assert not sc.root.exists()


def _colliding_short_docs() -> tuple[np.ndarray, np.ndarray]:
    """Two different 4-token documents whose 32-bit shingle hashes collide (a birthday search)."""
    rng = np.random.default_rng(0)
    n = 300_000
    toks = rng.integers(0, 50_000, size=(n, 4)).astype(np.uint16)
    starts = np.arange(n, dtype=np.int64) * 4
    h, _ = K.window_hashes(toks.ravel(), starts, starts + 4, 5, True)
    h32 = h >> np.uint64(32)
    order = np.argsort(h32, kind="stable")
    same = np.flatnonzero(h32[order][1:] == h32[order][:-1])
    a, b = order[same[0]], order[same[0] + 1]
    assert not np.array_equal(toks[a], toks[b])
    return toks[a], toks[b]


def test_short_documents_with_colliding_hashes_are_not_near_duplicates(tmp_path):
    """Issue 9, item 8: documents of <= 5 tokens have one 32-bit shingle hash, so a collision
    gives equal signatures (estimated Jaccard 1). The engine confirms such pairs exactly."""
    a, b = _colliding_short_docs()
    c = np.array([7, 8, 9, 10], np.uint16)
    docs = index_shards([_stream([a, c, b, c, np.concatenate([a, [11]])])], EOT)
    cfg = DedupConfig()
    sig = signatures(docs, cfg)
    assert np.array_equal(sig[0], sig[2])  # the trap: MinHash alone calls them identical
    first = exact_first(docs)
    _, comp = near_clusters(docs, cfg, copy_of=first, tmp_dir=tmp_path, identity={})
    assert comp.root.tolist() == [0, 1, 2, 1, 4]  # a and b apart; c's exact copy joined
    # not grouped by signature (few shingles), a and b meet as a band-bucket pair, which the
    # exact check rejects; a and a + one token (Jaccard 1/2 of shingle sets) are not close either
    assert comp.stats["confirmed_rejects"] == 1 and comp.stats["candidate_pairs"] >= 1
    # the same two as the members of a residual pass
    root = components(*_scratch_for(docs, cfg, tmp_path / "r"), cfg, members=np.array([0, 2])).root
    assert root.tolist() == [0, 1]


def _scratch_for(docs, cfg, tmp):
    from fwpipe.dedup import open_scratch, sign

    sc = open_scratch(tmp, {}, n_docs=len(docs.starts), num_perm=cfg.num_perm, bands=cfg.bands)
    sign(sc, docs, cfg)
    return sc, docs


def test_a_resumed_run_reuses_finished_signature_units(mixed, tmp_path, monkeypatch):
    from fwpipe.dedup import engine, open_scratch, sign

    cfg = DedupConfig()
    monkeypatch.setattr(engine, "UNIT_DOCS", 64)
    sc = open_scratch(tmp_path, {"x": 1}, n_docs=len(mixed.starts), num_perm=cfg.num_perm, bands=cfg.bands)
    sign(sc, mixed, cfg)
    done = sorted(p.name for p in sc.root.glob("keys.*"))
    assert len(done) == len(engine.units(mixed)) >= 6
    want = [(sc.root / name).read_bytes() for name in done]
    (sc.root / done[2]).unlink()  # as if interrupted while writing unit 2
    calls = []
    real = K.minhash_signatures
    monkeypatch.setattr(engine, "minhash_signatures", lambda *a: calls.append(1) or real(*a))
    again = open_scratch(tmp_path, {"x": 1}, n_docs=len(mixed.starts), num_perm=cfg.num_perm, bands=cfg.bands)
    assert again.root == sc.root
    sign(again, mixed, cfg)
    assert len(calls) == 1  # only the unfinished unit was signed again
    assert [(sc.root / name).read_bytes() for name in done] == want
    keys = np.concatenate([np.fromfile(sc.root / name, np.uint64).reshape(cfg.bands + 1, -1) for name in done], axis=1)
    assert np.array_equal(keys, K.signature_keys(signatures(mixed, cfg), cfg.bands, cfg.rows))


def test_a_full_disk_is_refused_before_any_work(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from fwpipe.dedup import open_scratch
    from fwpipe.errors import OutputError

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(OutputError, match="needs 80 MB, 1 KB are free"):
        open_scratch(tmp_path, {}, n_docs=1_000_000, num_perm=128, bands=9)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_pair_codes_refuse_a_corpus_they_cannot_number():
    """A pair travels as left * m + right in an int64: the largest m whose codes all fit is the
    limit, one more is refused with one line (numpy would wrap without a word)."""
    from fwpipe.dedup.engine import MAX_MEMBERS, check_pair_codes
    from fwpipe.errors import ConfigError

    top = np.iinfo(np.int64).max
    assert (MAX_MEMBERS - 1) * MAX_MEMBERS + (MAX_MEMBERS - 1) <= top  # the largest code at the limit fits
    assert MAX_MEMBERS * (MAX_MEMBERS + 1) + MAX_MEMBERS > top  # one more document and it would not
    check_pair_codes(MAX_MEMBERS)
    with pytest.raises(ConfigError, match="3,037,000,500 documents"):
        check_pair_codes(MAX_MEMBERS + 1)
