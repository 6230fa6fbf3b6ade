"""`fwpipe audit --against EVAL`: benchmark contamination of the user's eval set by train and val.

Per eval document: an exact copy in train / val (whole-document hashes), a near copy (the dedup
engine's MinHash bands and verification, against the audit's own scratch directory), and the
share of its n-grams (13 by default, as GPT-3's contamination check) found in train / val
(the eval n-grams in a hash set, the dataset's shards streamed past it). The worst documents
come with the text of one overlapping n-gram.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from fwpipe.dedup.docs import unique
from fwpipe.audit.corpus import Corpus
from fwpipe.dedup import DedupConfig, DocIndex, Scratch, index_shards
from fwpipe.shards import release_pages
from fwpipe.dedup.lsh import signatures
from fwpipe.dedup.query import near_matches
from fwpipe.errors import InputFormatError, InputNotFoundError
from fwpipe.kernels import doc_hashes, hashset_build, hashset_filter, hashset_slots, ngram_probe, window_hashes
from fwpipe.dataset import SPLITS, open_dataset
from fwpipe.tokenizer import EOT, get_encoding

log = logging.getLogger(__name__)
WORST = 10
HINT = "pass a parquet or JSONL file with a `text` column, or a dataset that fwpipe audit reads"


def load_eval(path: str | Path) -> tuple[DocIndex, list[np.ndarray]]:
    """The eval documents, tokenized (GPT-2), as one in-memory shard and a list of token arrays."""
    p = Path(path)
    if p.suffix in (".parquet", ".jsonl", ".json") and not p.is_file():
        raise InputNotFoundError(f"{p}: no such file", HINT)
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            texts = pq.read_table(p, columns=["text"]).column("text").to_pylist()
        except (KeyError, ValueError, OSError) as e:
            raise InputFormatError(f"{p}: cannot read a `text` column ({e})", HINT) from e
        docs = [np.asarray(t, dtype=np.uint16) for t in get_encoding().encode_ordinary_batch([t or "" for t in texts])]
    elif p.suffix in (".jsonl", ".json"):
        texts = []
        for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if line.strip():
                try:
                    texts.append(str(json.loads(line)["text"]))
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise InputFormatError(f"{p}, line {i}: not a JSON object with a `text` field", HINT) from e
        docs = [np.asarray(t, dtype=np.uint16) for t in get_encoding().encode_ordinary_batch(texts)]
    else:
        ds = open_dataset(p)
        stream = [t for name in SPLITS for t in ds.split(name).shards]
        index = index_shards(stream, EOT)
        docs = [np.asarray(stream[k][s:e]) for k in range(len(stream))
                for s, e in zip(index.starts[index.shard_docs[k] : index.shard_docs[k + 1]],
                                index.ends[index.shard_docs[k] : index.shard_docs[k + 1]])]
    docs = [d for d in docs if len(d)]
    if not docs:
        raise InputFormatError(f"{p}: no documents", HINT)
    parts = [x for d in docs for x in (np.array([EOT], np.uint16), d)]
    return index_shards([np.concatenate(parts)], EOT), docs


def against(corpus: Corpus, exact_first: np.ndarray, sc: Scratch, cfg: DedupConfig, path: str | Path, *, ngram: int) -> dict:
    ev, docs = load_eval(path)
    n_e, tokens = len(docs), ev.shards[0]
    split_of_shard = np.array([s == "train" for s in corpus.shard_split])
    out: dict = {"path": str(path), "eval_docs": n_e, "ngram_n": ngram}
    # exact: whole-document hashes (64 bits and the length)
    eh = doc_hashes(tokens, ev.starts, ev.ends)
    exact = {}
    for name, is_train in (("train", True), ("val", False)):
        hs = [doc_hashes(t, corpus.starts[slice(*corpus.shard_range(k))], corpus.ends[slice(*corpus.shard_range(k))])
              for k, t in enumerate(corpus.shards) if split_of_shard[k] == is_train]
        exact[name] = np.isin(eh, unique(np.concatenate(hs))) if hs else np.zeros(n_e, bool)
    # near: the engine's bands over the dataset's originals (exact copies stand behind them)
    q, d = near_matches(sc, corpus, cfg, signatures(ev, cfg), docs, exact_first == np.arange(corpus.n_docs))
    near = {"train": np.zeros(n_e, bool), "val": np.zeros(n_e, bool)}
    near["train"][q[d < corpus.n_train]] = True
    near["val"][q[d >= corpus.n_train]] = True
    # n-grams: eval n-grams in a hash set, each split's shards streamed past it
    h, off = window_hashes(tokens, ev.starts, ev.ends, ngram, False)
    table = hashset_build(unique(h))
    bits = hashset_filter(table)
    frac, found = {}, {}
    for name, is_train in (("train", True), ("val", False)):
        hit = np.zeros(len(table), dtype=np.uint8)
        for k, t in enumerate(corpus.shards):
            if split_of_shard[k] == is_train:
                lo, hi = corpus.shard_range(k)
                ngram_probe(t, corpus.starts[lo:hi], corpus.ends[lo:hi], ngram, table, bits, hit)
                release_pages(t)
        found[name] = hit[hashset_slots(table, h)].astype(bool) if len(h) else np.zeros(0, bool)
        counts = np.concatenate([[0], np.cumsum(found[name])])
        frac[name] = (counts[off[1:]] - counts[off[:-1]]) / np.maximum(np.diff(off), 1)
    for name in SPLITS:
        out[name] = {"exact_docs": int(exact[name].sum()), "near_docs": int(near[name].sum()),
                     "ngram_docs": int((frac[name] > 0).sum()), "ngram_fraction": float(found[name].mean()) if len(h) else 0.0}
    # worst first: exact copies, then near copies, then by the share of n-grams in train, in val
    worst = np.lexsort((np.arange(n_e), -frac["val"], -frac["train"], ~(near["train"] | near["val"]),
                        ~(exact["train"] | exact["val"])))
    out["worst"] = []
    for i in worst[:WORST]:
        i = int(i)
        if not (exact["train"][i] or exact["val"][i] or near["train"][i] or near["val"][i] or frac["train"][i] or frac["val"][i]):
            break
        row = {"doc": i, "n_tokens": len(docs[i]), "exact": [s for s in SPLITS if exact[s][i]],
               "near": [s for s in SPLITS if near[s][i]],
               "ngram_fraction": {s: float(frac[s][i]) for s in SPLITS}}
        hits = np.flatnonzero(found["train"][off[i] : off[i + 1]] | found["val"][off[i] : off[i + 1]])
        if len(hits):
            w = int(hits[0])
            row["overlap"] = get_encoding().decode(docs[i][w : w + ngram].tolist())
        out["worst"].append(row)
    log.info("against %s: %d eval docs, %d exact and %d near copies in train", path, n_e, out["train"]["exact_docs"],
             out["train"]["near_docs"])
    return out
