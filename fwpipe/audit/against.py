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

from fwpipe.audit.corpus import Corpus
from fwpipe.dataset import SPLITS, open_dataset
from fwpipe.dedup import DedupConfig, DocIndex, Scratch, index_shards
from fwpipe.dedup.docs import unique
from fwpipe.dedup.lsh import signatures
from fwpipe.dedup.query import near_matches
from fwpipe.errors import InputFormatError, InputNotFoundError
from fwpipe.kernels import doc_hashes, hashset_build, hashset_filter, hashset_slots, ngram_probe, window_hashes
from fwpipe.shards import release_pages
from fwpipe.tokenizer import EOT, get_encoding

log = logging.getLogger(__name__)
WORST = 10
HINT = "pass a parquet or JSONL file with a `text` column, or a dataset that fwpipe audit reads"


def _kind(p: Path) -> str:
    """parquet, jsonl or dataset, from the content where there is a file to sniff (a suffix
    alone lies: `.JSONL`, a `.txt` of JSON lines, raw uint16 named `.txt`)."""
    suffix = p.suffix.lower()
    if any(c in str(p) for c in "*?[") or p.is_dir():
        return "dataset"
    if not p.exists():
        raise InputNotFoundError(f"{p}: no such file", HINT)
    if not p.is_file():
        raise InputFormatError(f"{p}: not a regular file", HINT)
    with open(p, "rb") as f:
        head = f.read(4096)
    if head[:4] == b"PAR1":
        return "parquet"
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]  # a UTF-8 BOM and blank lines may come first
    if first == b"{" and suffix != ".bin":
        return "jsonl"
    if suffix == ".bin":  # llm.c shard or nanoGPT's raw uint16 (open_dataset checks which)
        return "dataset"
    what = {".parquet": "not parquet (no PAR1 magic)", ".jsonl": "not JSON lines", ".json": "not JSON lines"}.get(
        suffix, "neither parquet nor JSON lines"
    )
    raise InputFormatError(f"{p}: {what}", HINT)


def _parquet_texts(p: Path) -> list:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(p)
        schema = pf.schema_arrow
    except (pa.ArrowInvalid, OSError) as e:
        raise InputFormatError(f"{p}: not a readable parquet file ({str(e).splitlines()[0][:100]})", HINT) from e
    names = schema.names
    if names.count("text") != 1:
        raise InputFormatError(
            f"{p}: {'no' if 'text' not in names else 'more than one'} `text` column (it has {', '.join(names)})", HINT
        )
    t = schema.field("text").type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)):
        raise InputFormatError(f"{p}: the `text` column is {schema.field('text').type}, not a string", HINT)
    try:
        col = pf.read(columns=["text"]).column("text")
        if pa.types.is_dictionary(col.type):
            col = col.cast(t)
        return col.to_pylist()
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as e:
        raise InputFormatError(f"{p}: cannot read the `text` column ({str(e).splitlines()[0][:100]})", HINT) from e


def _jsonl_texts(p: Path) -> list[str]:
    texts = []
    for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if line.strip():
            try:
                t = json.loads(line)["text"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise InputFormatError(f"{p}, line {i}: not a JSON object with a `text` field", HINT) from e
            if not isinstance(t, str):  # null or 12345 would become the text "None" / "12345"
                raise InputFormatError(f"{p}, line {i}: `text` is {json.dumps(t)[:20]}, not a string", HINT)
            texts.append(t)
    return texts


def load_eval(path: str | Path) -> tuple[DocIndex, list[np.ndarray]]:
    """The eval documents, tokenized (GPT-2), as one in-memory shard and a list of token arrays.

    Called before any audit work, so a bad eval set is one line up front."""
    p = Path(path)
    kind = _kind(p)
    if kind in ("parquet", "jsonl"):
        texts = _parquet_texts(p) if kind == "parquet" else _jsonl_texts(p)
        docs = [np.asarray(t, dtype=np.uint16) for t in get_encoding().encode_ordinary_batch([t or "" for t in texts])]
    else:
        ds = open_dataset(p)
        stream = [t for name in SPLITS for t in ds.split(name).shards]
        index = index_shards(stream, EOT)
        docs = [
            np.asarray(stream[k][s:e])
            for k in range(len(stream))
            for s, e in zip(
                index.starts[index.shard_docs[k] : index.shard_docs[k + 1]],
                index.ends[index.shard_docs[k] : index.shard_docs[k + 1]],
            )
        ]
    docs = [d for d in docs if len(d)]
    if not docs:
        raise InputFormatError(f"{p}: no documents", HINT)
    parts = [x for d in docs for x in (np.array([EOT], np.uint16), d)]
    return index_shards([np.concatenate(parts)], EOT), docs


def against(
    corpus: Corpus,
    exact_first: np.ndarray,
    sc: Scratch,
    cfg: DedupConfig,
    path: str | Path,
    *,
    ngram: int,
    loaded: tuple[DocIndex, list[np.ndarray]] | None = None,
) -> dict:
    """`loaded`: load_eval(path), when the caller checked the eval set before its own work."""
    ev, docs = loaded if loaded is not None else load_eval(path)
    n_e, tokens = len(docs), ev.shards[0]
    split_of_shard = np.array([s == "train" for s in corpus.shard_split])
    out: dict = {"path": str(path), "eval_docs": n_e, "ngram_n": ngram}
    # exact: whole-document hashes (64 bits and the length)
    eh = doc_hashes(tokens, ev.starts, ev.ends)
    exact = {}
    for name, is_train in (("train", True), ("val", False)):
        hs = [
            doc_hashes(t, corpus.starts[slice(*corpus.shard_range(k))], corpus.ends[slice(*corpus.shard_range(k))])
            for k, t in enumerate(corpus.shards)
            if split_of_shard[k] == is_train
        ]
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
        out[name] = {
            "exact_docs": int(exact[name].sum()),
            "near_docs": int(near[name].sum()),
            "ngram_docs": int((frac[name] > 0).sum()),
            "ngram_fraction": float(found[name].mean()) if len(h) else 0.0,
        }
    # worst first: exact copies, then near copies, then by the share of n-grams in train, in val
    worst = np.lexsort(
        (np.arange(n_e), -frac["val"], -frac["train"], ~(near["train"] | near["val"]), ~(exact["train"] | exact["val"]))
    )
    out["worst"] = []
    for i in worst[:WORST]:
        i = int(i)
        if not (
            exact["train"][i]
            or exact["val"][i]
            or near["train"][i]
            or near["val"][i]
            or frac["train"][i]
            or frac["val"][i]
        ):
            break
        row = {
            "doc": i,
            "n_tokens": len(docs[i]),
            "exact": [s for s in SPLITS if exact[s][i]],
            "near": [s for s in SPLITS if near[s][i]],
            "ngram_fraction": {s: float(frac[s][i]) for s in SPLITS},
        }
        hits = np.flatnonzero(found["train"][off[i] : off[i + 1]] | found["val"][off[i] : off[i + 1]])
        if len(hits):
            w = int(hits[0])
            row["overlap"] = get_encoding().decode(docs[i][w : w + ngram].tolist())
        out["worst"].append(row)
    log.info(
        "against %s: %d eval docs, %d exact and %d near copies in train",
        path,
        n_e,
        out["train"]["exact_docs"],
        out["train"]["near_docs"],
    )
    return out
