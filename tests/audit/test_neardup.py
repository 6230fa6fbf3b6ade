"""Near duplicates: accuracy against exact shingle Jaccard, and the same pairs as datasketch."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
from datasketch import MinHashLSH

from fwpipe.audit import audit
from fwpipe.audit.corpus import index
from fwpipe.dataset import open_dataset
from fwpipe.dedup.config import as_lean_minhash, lsh_params
from fwpipe.dedup.lsh import candidate_pairs, signatures
from fwpipe.tokenizer import encode
from tests.corpus import edit_words, write_fwpipe


def shingles(tokens: np.ndarray, n: int = 5) -> set[tuple]:
    t = tokens.tolist()
    return {tuple(t[i : i + n]) for i in range(len(t) - n + 1)} if len(t) >= n else {tuple(t)}


def test_accuracy_on_edited_real_documents(real_texts, tmp_path):
    """400 real docs + an edited copy of each, at word-edit rates that spread Jaccard over [0.2, 1]."""
    rng = random.Random(11)
    originals = real_texts[:400]
    rates = [rng.uniform(0.0, 0.02) if i % 2 == 0 else rng.uniform(0.03, 0.2) for i in range(400)]
    orig = [encode(t).astype(np.uint16) for t in originals]
    copies = [encode(edit_words(t, r, rng)).astype(np.uint16) for t, r in zip(originals, rates)]
    jac = np.array([len(shingles(a) & shingles(b)) / len(shingles(a) | shingles(b)) for a, b in zip(orig, copies)])
    root = write_fwpipe(tmp_path / "ds", {"train": [orig + copies]})
    audit(root, quality=False)
    cl = pl.read_parquet(root / "clusters.parquet")
    cluster = dict(zip(cl["doc"].to_list(), cl["cluster"].to_list()))
    joined = np.array([cluster.get(i, -1) >= 0 and cluster.get(i) == cluster.get(400 + i) for i in range(400)])
    high, low = jac >= 0.85, jac < 0.6
    assert high.sum() >= 150 and low.sum() >= 100  # the test has enough of both kinds
    assert joined[high].mean() >= 0.95
    assert joined[low].mean() <= 0.01
    # clusters.parquet: one row per clustered doc, one kept per cluster
    assert cl.group_by("cluster").agg(pl.col("keep").sum())["keep"].to_list() == [1] * cl["cluster"].n_unique()


def test_candidate_pairs_equal_datasketch_lsh(planted_dirs):
    corpus = index(open_dataset(planted_dirs["fwpipe"]))
    sig = signatures(corpus)
    sig = sig[
        np.unique(sig, axis=0, return_index=True)[1]
    ]  # datasketch would store copies as separate keys too; keep it simple
    bands, rows = lsh_params(0.8, 128)
    left, right = candidate_pairs(sig, bands, rows)
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    lean = [as_lean_minhash(s) for s in sig]
    for i, m in enumerate(lean):
        lsh.insert(i, m)
    want = {(min(i, j), max(i, j)) for i, m in enumerate(lean) for j in lsh.query(m) if j != i}
    assert set(zip(left.tolist(), right.tolist())) == want
    assert len(want) >= 3  # the planted edits are there


def test_signatures_skip_exact_copies_without_changing_them(planted_dirs):
    from fwpipe.audit.exactdup import exact_duplicates

    corpus = index(open_dataset(planted_dirs["fwpipe"]))
    first = exact_duplicates(corpus).first
    assert (first != np.arange(corpus.n_docs)).sum() == 6  # the planted copies
    assert np.array_equal(signatures(corpus, copy_of=first), signatures(corpus))


def test_near_duplicate_report(planted_reports):
    nd = planted_reports["fwpipe"]["near_duplicates"]
    assert (nd["threshold"], nd["shingle"], nd["num_perm"], nd["bands"], nd["rows"]) == (0.8, 5, 128, 9, 13)
    # planted: {t0 x4}, {t1 x2}, {t10,e10}, {t11,e11}, {t12,e12}, {t20,v}, {t21,v}, {t30,ve}, {t31,ve}
    assert (nd["clusters"], nd["docs_in_clusters"], nd["removable_docs"]) == (9, 20, 11)
    assert nd["largest"][0]["docs"] == 4
