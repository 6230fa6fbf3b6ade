"""Train/val leakage: exact copies, near duplicates, and 13-gram contamination.

Exact and near leakage come from the duplicate sections (a val document whose earliest copy,
or a MinHash neighbour at estimated Jaccard >= threshold, is a train document). n-gram
contamination in bounded memory: the val n-gram hashes go into an open-addressing set, then
every train shard streams past it (kernels.ngram_probe), so memory is the val side only,
capped at MAX_VAL_NGRAMS (beyond it, every k-th val document is checked and the report says so).

The share alone does not say what leaks, so `ngram_examples` names a few: for the first
N_EXAMPLES contaminated val documents, the first shared n-gram, where it sits in the val
document and in a train document, and the text around it on both sides. Locating the train
side costs little: while the train shards stream past, each table slot remembers the first
train shard that hit it (2 bytes a slot), so only that shard is hashed again, a chunk of
documents at a time (EXAMPLE_CHUNK_TOKENS, 8 bytes a token), until the n-gram is found; the
tokens are compared, so a hash collision is never shown as a leak.
"""

from __future__ import annotations

import logging

import numpy as np

from fwpipe.audit.corpus import Corpus
from fwpipe.dedup.docs import unique
from fwpipe.kernels import hashset_build, hashset_filter, hashset_slots, ngram_probe, window_hashes
from fwpipe.shards import release_pages
from fwpipe.tokenizer import get_encoding

log = logging.getLogger(__name__)
MAX_VAL_NGRAMS = 16_000_000  # 128 MB of hashes + a 32M-slot (256 MB) table + 64 MB filter at most
N_EXAMPLES = 5  # shared n-grams shown, each from another val document
EXAMPLE_CHUNK_TOKENS = 4_000_000  # train tokens hashed at once while locating an example (32 MB)
CONTEXT_TOKENS = 40  # text kept either side of an example's n-gram


def leakage(
    corpus: Corpus, exact_first: np.ndarray, near_train: np.ndarray, *, ngram: int, max_val_ngrams: int = MAX_VAL_NGRAMS
) -> dict:
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
    lengths = corpus.ends[v_lo:v_hi] - corpus.starts[v_lo:v_hi]  # val only (corpus.lengths: every document)
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
    first_shard = np.full(len(table), -1, dtype=np.int16 if len(corpus.shards) < 2**15 else np.int32)
    for k, tokens in enumerate(corpus.shards):
        if corpus.shard_split[k] == "train":
            lo, hi = corpus.shard_range(k)
            ngram_probe(tokens, corpus.starts[lo:hi], corpus.ends[lo:hi], n, table, bits, hit)
            release_pages(tokens)  # else every train shard stays resident (2 bytes a token)
            first_shard[(hit == 1) & (first_shard < 0)] = k  # for ngram_examples: where to look
    slots = hashset_slots(table, hashes)
    found = hit[slots].astype(bool)
    contaminated = unique(doc_of[found])
    out = {
        "ngram_docs": int(len(contaminated)) if step == 1 else round(len(contaminated) / len(checked) * (v_hi - v_lo)),
        "ngram_docs_fraction": len(contaminated) / len(checked),
        "ngram_fraction": float(found.mean()) if len(found) else 0.0,  # over val n-gram occurrences
        "ngram_val_ngrams": int(len(found)),
    }
    out["ngram_examples"] = ngram_examples(corpus, n, hashes, doc_of, found, first_shard[slots])
    if step > 1:
        out["ngram_sampled_every"] = step
        out["note"] = f"val has {total:,} {n}-grams; checked every {step}th val document (ngram_docs is extrapolated)"
    log.info("%d-gram contamination: %d of %d checked val docs", n, len(contaminated), len(checked))
    return out


def ngram_examples(
    corpus: Corpus,
    n: int,
    hashes: np.ndarray,
    doc_of: np.ndarray,
    found: np.ndarray,
    shard_of_hit: np.ndarray,
    k: int = N_EXAMPLES,
) -> list[dict]:
    """Up to k shared n-grams, one per val document (the first contaminated ones, in order):
    the n-gram's text and token ids, and for the val and the train side the document (split,
    index in split, shard, offset, n_tokens), the n-gram's token position in it, and the text
    before, of and after the n-gram. hashes/doc_of/found/shard_of_hit are per val n-gram."""
    picked, seen = [], set()
    for i in np.flatnonzero(found):
        d = int(doc_of[i])
        if d not in seen:
            seen.add(d)
            picked.append(int(i))
            if len(picked) == k:
                break
    examples = []
    for i in picked:
        vdoc = int(doc_of[i])
        vpos = i - int(np.searchsorted(doc_of, vdoc))  # doc_of is sorted: the doc's first n-gram
        gram = np.asarray(corpus.tokens(vdoc)[vpos : vpos + n])
        where = _locate(corpus, int(shard_of_hit[i]), hashes[i], gram)
        if where is None:
            continue  # a hash collision: no train document holds these tokens
        tdoc, tpos = where
        examples.append(
            {
                "n": n,
                "tokens": gram.tolist(),
                "text": _decode(gram),
                "val": {**corpus.where(vdoc), "position": vpos, **_context(corpus, vdoc, vpos, n)},
                "train": {**corpus.where(tdoc), "position": tpos, **_context(corpus, tdoc, tpos, n)},
            }
        )
    return examples


def _locate(corpus: Corpus, shard: int, h: np.uint64, gram: np.ndarray) -> tuple[int, int] | None:
    """The first (train doc, position) in `shard` whose n-gram hashes to h and has these tokens."""
    if shard < 0:
        return None
    tokens, n = corpus.shards[shard], len(gram)
    lo, hi = corpus.shard_range(shard)
    d = lo
    while d < hi:  # a chunk of documents at a time: 8 bytes a token of hashes
        e = int(np.searchsorted(corpus.starts[lo:hi], corpus.starts[d] + EXAMPLE_CHUNK_TOKENS)) + lo
        e = max(e, d + 1)
        hs, off = window_hashes(tokens, corpus.starts[d:e], corpus.ends[d:e], n, False)
        for j in np.flatnonzero(hs == h):
            doc = int(np.searchsorted(off, j, side="right")) - 1
            pos = int(j - off[doc])
            start = int(corpus.starts[d + doc]) + pos
            if np.array_equal(np.asarray(tokens[start : start + n]), gram):
                return d + doc, pos
        d = e
    return None


def _context(corpus: Corpus, doc: int, pos: int, n: int) -> dict:
    t = corpus.tokens(doc)
    a, b = max(0, pos - CONTEXT_TOKENS), min(len(t), pos + n + CONTEXT_TOKENS)
    return {
        "before": ("..." if a > 0 else "") + _decode(t[a:pos]),
        "after": _decode(t[pos + n : b]) + ("..." if b < len(t) else ""),
    }


def _decode(tokens: np.ndarray) -> str:
    return get_encoding().decode([int(x) for x in tokens])
