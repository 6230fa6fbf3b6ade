"""Near duplicates: LSH banding by sorting, an estimated-Jaccard filter, union-find clusters.

Why sorting and not datasketch's dict of buckets: MinHashLSH.insert is a Python call per
document that stores every band's bytes as a dict key (~43K docs/s here, and several hundred
bytes per doc per band of dict overhead). Here each band's r values collapse to one 64-bit key
(kernels.band_keys), a numpy argsort per band puts equal keys side by side, and one kernel pass
emits the pairs in each run of equal keys: the same candidate pairs as inserting everything
into MinHashLSH and querying each document, in 8 bytes per doc per band and O(n log n).

Documents with identical signatures (every exact copy among them) are grouped first and banded
once, so a page copied 10,000 times costs one document, not 5e7 pairs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fwpipe.audit.arrays import unique
from fwpipe.audit.corpus import Corpus
from fwpipe.kernels import band_keys, bucket_pairs, signature_agreement, union_find

log = logging.getLogger(__name__)
TOP_CLUSTERS = 10
MAX_BUCKET = 256  # buckets above this many docs pair each member with the first only (linear)


def candidate_pairs(sig: np.ndarray, bands: int, rows: int, max_bucket: int = MAX_BUCKET) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (i < j) row pairs that share at least one band bucket."""
    keys = band_keys(sig, bands, rows)
    left, right = [], []
    for bnd in range(bands):
        # numpy's default argsort (AVX-512 quicksort here) is 5x its stable one on 100K uint64
        # keys; tie order does not matter, bucket_pairs emits the same pairs for any of them
        order = np.argsort(keys[:, bnd])
        lo, hi = bucket_pairs(keys[order, bnd], order.astype(np.int64), max_bucket)
        left.append(lo)
        right.append(hi)
    left, right = np.concatenate(left), np.concatenate(right)
    code = unique(left * np.int64(len(sig)) + right)  # one pair may share several bands
    return code // len(sig), code % len(sig)


def unique_signatures(sig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rep, group): rep[u] is the first doc of each distinct signature, group[d] its u."""
    full = band_keys(sig, 1, sig.shape[1])[:, 0]
    _, rep, group = np.unique(full, return_index=True, return_inverse=True)
    order = np.argsort(rep, kind="stable")  # number groups by first appearance: deterministic
    renum = np.empty_like(order)
    renum[order] = np.arange(len(order))
    return rep[order], renum[group.ravel()]


@dataclass
class NearResult:
    cluster: np.ndarray  # (n_docs,) cluster id, -1 for documents in no cluster
    near_train: np.ndarray  # (n_docs,) bool: has a train doc at estimated Jaccard >= threshold
    report: dict


def near_duplicates(corpus: Corpus, sig: np.ndarray, *, threshold: float, bands: int, rows: int, shingle: int) -> NearResult:
    n, num_perm = sig.shape
    rep, group = unique_signatures(sig)
    left, right = candidate_pairs(sig[rep], bands, rows)
    agree = signature_agreement(sig[rep], left, right)
    keep = agree >= math.ceil(threshold * num_perm - 1e-9)  # estimated Jaccard = agree / num_perm
    kl, kr = left[keep], right[keep]
    # docs with one signature join their group's first doc; kept pairs join groups
    doc_left = np.concatenate([rep[group], rep[kl]])
    doc_right = np.concatenate([np.arange(n, dtype=np.int64), rep[kr]])
    root = union_find(n, doc_left, doc_right)
    roots, inverse, sizes = np.unique(root, return_inverse=True, return_counts=True)
    in_cluster = sizes[inverse] > 1
    cluster = np.full(n, -1, dtype=np.int64)
    cl_roots = roots[sizes > 1]  # sorted, so cluster ids follow each cluster's first doc
    cluster[in_cluster] = np.searchsorted(cl_roots, root[in_cluster])
    is_first = root == np.arange(n)
    removable = in_cluster & ~is_first
    lengths = corpus.lengths
    # val docs whose own group, or a group joined to it by a kept pair, has a train doc
    n_train = corpus.n_train
    group_first = rep  # groups are numbered by first appearance, so rep is each group's minimum
    near_group = group_first < n_train
    near_group[kr[group_first[kl] < n_train]] = True
    near_group[kl[group_first[kr] < n_train]] = True
    near_train = near_group[group]
    report = {
        "threshold": threshold,
        "shingle": shingle,
        "num_perm": num_perm,
        "bands": bands,
        "rows": rows,
        "candidate_pairs": int(len(left)),
        "kept_pairs": int(keep.sum()),
        "distinct_signatures": int(len(rep)),
        "clusters": int(len(cl_roots)),
        "docs_in_clusters": int(in_cluster.sum()),
        "removable_docs": int(removable.sum()),
        "removable_tokens": int(lengths[removable].sum()),
        "removable_token_fraction": float(lengths[removable].sum() / max(lengths.sum(), 1)),
        "cluster_sizes": _size_histogram(sizes[sizes > 1]),
        "largest": _largest(corpus, cl_roots, sizes[sizes > 1], lengths, cluster),
    }
    log.info("near duplicates: %d candidate pairs, %d kept, %d clusters", len(left), keep.sum(), len(cl_roots))
    return NearResult(cluster, near_train, report)


def _size_histogram(sizes: np.ndarray) -> dict:
    values, counts = np.unique(sizes, return_counts=True)
    return {"size": values.tolist(), "clusters": counts.tolist()}


def _largest(corpus: Corpus, cl_roots: np.ndarray, sizes: np.ndarray, lengths: np.ndarray, cluster: np.ndarray) -> list[dict]:
    top = np.lexsort((cl_roots, -sizes))[:TOP_CLUSTERS]
    out = []
    for t in top:
        members = np.flatnonzero(cluster == t)
        out.append({"docs": int(sizes[t]), "n_tokens": int(lengths[members].sum()), "first": corpus.where(int(cl_roots[t])),
                    "splits": {s: int(((members >= lo) & (members < hi)).sum()) for s, (lo, hi) in corpus.split_docs.items()},
                    "snippet": corpus.snippet(int(cl_roots[t]))})
    return out


def write_clusters(path: Path, corpus: Corpus, cluster: np.ndarray) -> int:
    """clusters.parquet: one row per document in a cluster (absent documents are in none).

    Columns: split, doc (index within the split, in shard order), shard, offset (token offset
    of the document in its shard), n_tokens, cluster (id shared by near duplicates), keep
    (True for the earliest member, the one a deduplicating prepare would keep).
    """
    import polars as pl

    from fwpipe.atomic import write_bytes

    docs = np.flatnonzero(cluster >= 0)
    split_first = np.where(docs < corpus.n_train, 0, corpus.n_train)
    keep = np.zeros(len(docs), dtype=bool)
    keep[np.unique(cluster[docs], return_index=True)[1]] = True  # docs ascend: each cluster's earliest member
    df = pl.DataFrame({
        "split": np.where(docs < corpus.n_train, "train", "val"),
        "doc": docs - split_first,
        "shard": np.array(corpus.shard_index, dtype=np.int64)[corpus.shard[docs]] if len(docs) else np.zeros(0, np.int64),
        "offset": corpus.starts[docs],
        "n_tokens": corpus.lengths[docs],
        "cluster": cluster[docs],
        "keep": keep,
    })
    import io

    buf = io.BytesIO()
    df.write_parquet(buf)
    write_bytes(path, [buf.getvalue()])
    return len(df)
