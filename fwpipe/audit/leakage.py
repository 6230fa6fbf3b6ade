"""Train/val leakage: exact copies, near duplicates, and 13-gram contamination.

Exact and near leakage come from the duplicate sections (a val document whose earliest copy,
or a MinHash neighbour at estimated Jaccard >= threshold, is a train document). n-gram
contamination in bounded memory: the val n-gram hashes go into an open-addressing set, then
every train shard streams past it (kernels.ngram_probe), so memory is the val side only,
capped at MAX_VAL_NGRAMS (beyond it, every k-th val document is checked and the report says so).
"""

from __future__ import annotations

import logging

import numpy as np

from fwpipe.audit.arrays import unique
from fwpipe.audit.corpus import Corpus
from fwpipe.dedup.docs import release_pages
from fwpipe.kernels import hashset_build, hashset_filter, hashset_slots, ngram_probe, window_hashes

log = logging.getLogger(__name__)
MAX_VAL_NGRAMS = 16_000_000  # 128 MB of hashes + a 32M-slot (256 MB) table + 64 MB filter at most


def leakage(corpus: Corpus, exact_first: np.ndarray, near_train: np.ndarray, *, ngram: int,
            max_val_ngrams: int = MAX_VAL_NGRAMS) -> dict:
    v_lo, v_hi = corpus.split_docs["val"]
    n_val, n_train = v_hi - v_lo, corpus.n_train
    out = {"val_docs": n_val, "train_docs": n_train, "ngram_n": ngram}
    if n_val == 0 or n_train == 0:
        why = "the dataset has no val split" if n_val == 0 else "the dataset has no train split"
        out.update(exact_docs=0, near_docs=0, ngram_docs=0, ngram_fraction=None, note=f"{why}: nothing to compare")
        return out
    out["exact_docs"] = int((exact_first[v_lo:v_hi] < n_train).sum())
    out["near_docs"] = int(near_train[v_lo:v_hi].sum())  # includes the exact ones (Jaccard 1)
    out["exact_fraction"] = out["exact_docs"] / n_val
    out["near_fraction"] = out["near_docs"] / n_val
    out.update(_ngram_contamination(corpus, ngram, max_val_ngrams))
    return out


def _ngram_contamination(corpus: Corpus, n: int, max_val_ngrams: int) -> dict:
    v_lo, v_hi = corpus.split_docs["val"]
    lengths = corpus.lengths[v_lo:v_hi]
    total = int(np.maximum(lengths - n + 1, 0).sum())
    step = max(1, int(np.ceil(total / max_val_ngrams)))  # bounded memory: sample every step-th val doc
    checked = np.arange(v_lo, v_hi, step)
    hashes, doc_of = [], []
    for k in unique(corpus.shard[checked]):
        docs = checked[corpus.shard[checked] == k]
        h, off = window_hashes(corpus.shards[k], corpus.starts[docs], corpus.ends[docs], n, False)
        hashes.append(h)
        doc_of.append(np.repeat(docs, np.diff(off)))
    hashes = np.concatenate(hashes)
    doc_of = np.concatenate(doc_of)
    table = hashset_build(unique(hashes))
    bits = hashset_filter(table)
    hit = np.zeros(len(table), dtype=np.uint8)
    for k, tokens in enumerate(corpus.shards):
        if corpus.shard_split[k] == "train":
            lo, hi = corpus.shard_range(k)
            ngram_probe(tokens, corpus.starts[lo:hi], corpus.ends[lo:hi], n, table, bits, hit)
            release_pages(tokens)  # else every train shard stays resident (2 bytes a token)
    found = hit[hashset_slots(table, hashes)].astype(bool)
    contaminated = unique(doc_of[found])
    out = {
        "ngram_docs": int(len(contaminated)) if step == 1 else round(len(contaminated) / len(checked) * (v_hi - v_lo)),
        "ngram_docs_fraction": len(contaminated) / len(checked),
        "ngram_fraction": float(found.mean()) if len(found) else 0.0,  # over val n-gram occurrences
        "ngram_val_ngrams": int(len(found)),
    }
    if step > 1:
        out["ngram_sampled_every"] = step
        out["note"] = f"val has {total:,} {n}-grams; checked every {step}th val document (ngram_docs is extrapolated)"
    log.info("%d-gram contamination: %d of %d checked val docs", n, len(contaminated), len(checked))
    return out
