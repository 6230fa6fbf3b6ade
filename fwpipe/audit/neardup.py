"""Near duplicates section: the engine's components, summarized, and clusters.parquet.

fwpipe.dedup finds the components (MinHash signatures, LSH band buckets, verified pairs,
union-find, in stages on disk); this module numbers the clusters, works out which val
documents have a train neighbour, and describes the largest clusters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fwpipe.audit.corpus import Corpus
from fwpipe.dedup import Components, DedupConfig

log = logging.getLogger(__name__)
TOP_CLUSTERS = 10


@dataclass
class NearResult:
    cluster: np.ndarray  # (n_docs,) cluster id, -1 for documents in no cluster (int32 below 2**31 documents)
    near_train: np.ndarray  # (n_docs,) bool: has a train doc at estimated Jaccard >= threshold
    report: dict


def cluster_ids(root: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cluster, cl_roots, sizes): cluster id per doc (-1 when alone; ids follow each cluster's
    first doc), each cluster's first doc, each cluster's size. The answer in root's dtype, and
    2 bytes per document besides (not a count per document: 8 bytes)."""
    joined = root != np.arange(len(root), dtype=root.dtype)  # documents that are not their own root
    in_cluster = joined.copy()
    in_cluster[root[joined]] = True  # and the roots that others joined
    del joined
    members = root[in_cluster]  # the cluster members' roots: as many as documents in clusters
    cl_roots = np.flatnonzero(in_cluster & (root == np.arange(len(root), dtype=root.dtype)))  # ascending
    ids = np.searchsorted(cl_roots, members)
    sizes = np.bincount(ids, minlength=len(cl_roots)).astype(np.int64)
    cluster = np.full(len(root), -1, dtype=root.dtype)
    cluster[in_cluster] = ids
    return cluster, cl_roots, sizes


def near_duplicates(corpus: Corpus, comp: Components, cfg: DedupConfig) -> NearResult:
    n = corpus.n_docs
    root, rep = comp.root, comp.rep
    cluster, cl_roots, sizes = cluster_ids(root)
    removable = root != np.arange(n, dtype=root.dtype)  # in a cluster, and not its first member
    # val docs whose own group, or a group joined to it by a kept pair, has a train doc
    n_train = corpus.n_train
    near_rep = np.zeros(n, dtype=bool)  # for group first members: a train doc is in the group
    near_rep[:n_train] = True
    for left, right in comp.kept_pairs():  # left < right, so a train right implies a train left
        near_rep[right[left < n_train]] = True
    near_train = near_rep[rep]
    del near_rep
    # token sums from the offsets, not corpus.lengths (8 bytes a document)
    removable_tokens = (corpus.ends[removable] - corpus.starts[removable]).sum()
    all_tokens = corpus.ends.sum() - corpus.starts.sum()
    report = {
        **{k: v for k, v in cfg.as_dict().items() if k in ("threshold", "shingle", "num_perm", "bands", "rows")},
        "candidate_pairs": comp.stats["candidate_pairs"],
        "kept_pairs": comp.stats["kept_pairs"],
        "distinct_signatures": comp.stats["distinct_signatures"],
        "confirmed_rejects": comp.stats["confirmed_rejects"],
        "clusters": int(len(cl_roots)),
        "docs_in_clusters": int(sizes.sum()),
        "removable_docs": int(removable.sum()),
        "removable_tokens": int(removable_tokens),
        "removable_token_fraction": float(removable_tokens / max(all_tokens, 1)),
        "cluster_sizes": _size_histogram(sizes),
        "largest": _largest(corpus, cl_roots, sizes, cluster),
    }
    log.info(
        "near duplicates: %d candidate pairs, %d kept, %d clusters",
        report["candidate_pairs"],
        report["kept_pairs"],
        len(cl_roots),
    )
    return NearResult(cluster, near_train, report)


def _size_histogram(sizes: np.ndarray) -> dict:
    values, counts = np.unique(sizes, return_counts=True)
    return {"size": values.tolist(), "clusters": counts.tolist()}


def _largest(corpus: Corpus, cl_roots: np.ndarray, sizes: np.ndarray, cluster: np.ndarray) -> list[dict]:
    top = np.lexsort((cl_roots, -sizes))[:TOP_CLUSTERS]
    out = []
    for t in top:
        members = np.flatnonzero(cluster == t)
        out.append(
            {
                "docs": int(sizes[t]),
                "n_tokens": int((corpus.ends[members] - corpus.starts[members]).sum()),
                "first": corpus.where(int(cl_roots[t])),
                "splits": {
                    s: int(((members >= lo) & (members < hi)).sum()) for s, (lo, hi) in corpus.split_docs.items()
                },
                "snippet": corpus.snippet(int(cl_roots[t])),
            }
        )
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
    df = pl.DataFrame(
        {
            "split": np.where(docs < corpus.n_train, "train", "val"),
            "doc": docs - split_first,
            "shard": np.array(corpus.shard_index, dtype=np.int64)[corpus.shard[docs]]
            if len(docs)
            else np.zeros(0, np.int64),
            "offset": corpus.starts[docs],
            "n_tokens": corpus.lengths[docs],
            "cluster": cluster[docs],
            "keep": keep,
        }
    )
    import io

    import pyarrow.parquet as pq

    from fwpipe.dataset import clusters_schema

    buf = io.BytesIO()
    pq.write_table(df.to_arrow().cast(clusters_schema()), buf)  # the schema carries audit's mark
    write_bytes(path, [buf.getvalue()])
    return len(df)
