"""Exact duplicates and leakage: exact counts on planted copies, in every layout."""

from __future__ import annotations

import numpy as np

from fwpipe.audit import audit
from tests.corpus import write_fwpipe


def test_planted_exact_duplicates(planted_reports, planted):
    e = planted_reports["fwpipe"]["exact_duplicates"]
    assert e["docs"] == planted.exact_dups == 6
    assert e["by_split"] == {"train": 4, "val": 2}
    assert e["groups"] == 4  # train 0 (x4), train 1 (x2), train 20 and 21 (x2 each, across splits)
    assert e["tokens"] == 3 * len(planted.train[0]) + len(planted.train[1]) + len(planted.train[20]) + len(
        planted.train[21]
    )
    top = e["largest"][0]
    assert top["copies"] == 4 and top["first"] == {
        "split": "train",
        "doc": 0,
        "shard": 0,
        "offset": 1,
        "n_tokens": len(planted.train[0]),
    }


def test_planted_leakage(planted_reports, planted):
    lk = planted_reports["fwpipe"]["leakage"]
    assert lk["val_docs"] == len(planted.val)
    assert lk["exact_docs"] == planted.exact_leak == 2
    assert lk["near_docs"] == planted.near_leak == 4  # 2 exact + 2 edited (~1% of words)
    assert lk["ngram_n"] == 13
    # every planted copy shares 13-grams with train; other real docs may share boilerplate
    assert lk["ngram_docs"] >= 4 and 0 < lk["ngram_fraction"] < 0.1


def test_ngram_contamination_exact_counts(real_texts, tmp_path):
    """val: 10 distinct docs; doc 0 quotes 30 tokens of a train doc, doc 1 is a train doc."""
    from fwpipe.tokenizer import encode

    docs = [encode(t).astype(np.uint16)[:200] for t in real_texts[:40]]
    train = docs[:30]
    val = docs[30:40]
    val[0] = np.concatenate([val[0][:100], train[5][50:80], val[0][100:]])
    val[1] = train[7]
    root = write_fwpipe(tmp_path / "ds", {"train": [train], "val": [val]})
    lk = audit(root, ngram=13, quality=False)["leakage"]
    assert lk["exact_docs"] == 1 and lk["near_docs"] == 1
    assert lk["ngram_docs"] == 2
    n_val_ngrams = sum(len(v) - 12 for v in val)
    assert lk["ngram_val_ngrams"] == n_val_ngrams
    # the quote gives 30 - 12 = 18 shared 13-grams, the copied doc all 188 of its own
    assert lk["ngram_fraction"] == (18 + 188) / n_val_ngrams


def test_ngram_sampling_bounds_memory(real_texts, tmp_path):
    from fwpipe.audit.corpus import index
    from fwpipe.audit.exactdup import exact_duplicates
    from fwpipe.audit.leakage import leakage
    from fwpipe.dataset import open_dataset
    from fwpipe.tokenizer import encode

    docs = [encode(t).astype(np.uint16)[:300] for t in real_texts[:60]]
    root = write_fwpipe(tmp_path / "ds", {"train": [docs[:20]], "val": [docs[:20] + docs[20:60]]})
    corpus = index(open_dataset(root))
    ex = exact_duplicates(corpus)
    near = ex.first < corpus.n_train
    full = leakage(corpus, ex.first, near, ngram=13)
    sampled = leakage(corpus, ex.first, near, ngram=13, max_val_ngrams=5000)
    assert full["ngram_docs"] == 20 and "ngram_sampled_every" not in full
    assert sampled["ngram_sampled_every"] >= 2 and sampled["ngram_val_ngrams"] <= 5000
    assert abs(sampled["ngram_docs_fraction"] - 1 / 3) < 0.15 and "every" in sampled["note"]


def test_no_val_split_still_audits(planted, tmp_path):
    root = write_fwpipe(tmp_path / "ds", {"train": [planted.train[:50]]})
    rep = audit(root, quality=False)
    assert rep["splits"]["val"]["docs"] == 0
    assert rep["leakage"]["near_docs"] == 0 and "no val split" in rep["leakage"]["note"]
    assert rep["lengths"]["val"] == {"docs": 0}
