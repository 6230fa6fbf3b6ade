"""Which documents `prepare --dedup` keeps, and which split each cluster goes to.

Works on a first-pass dataset (every document, in input order, one stream) through the dedup
engine (fwpipe.dedup): exact copies, then MinHash near-duplicate components in stages on disk.
One cluster, one side: every member follows the split that the cluster's first member's key
hashes to, so near duplicates never straddle train and val; with dedup on, only that first
member is kept anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fwpipe.dedup import DEFAULT_MEMORY_BYTES, DedupConfig, Scratch, components, exact_first, index_shards, near_clusters
from fwpipe.pipeline.split import TRAIN, VAL
from fwpipe.shards import Dataset, Split, open_dataset
from fwpipe.tokenizer import EOT

log = logging.getLogger(__name__)

Dedup = Literal["none", "exact", "near"]
CONFIG = DedupConfig()  # the engine's defaults, the same as audit's, so audit finds what prepare removed


@dataclass
class DedupPlan:
    dataset: Dataset  # the first pass, one train stream in input order
    docs: pa.Table  # its docs.parquet rows, in the same order
    rep: np.ndarray  # (n,) the first member of each document's cluster (itself if alone)
    split: np.ndarray  # (n,) int8 TRAIN / VAL for every document, by its cluster's first member
    keep: np.ndarray  # (n,) bool
    exact_first: np.ndarray  # (n,) earliest identical document
    clusters: int
    report: dict


def first_pass(stages: list[Path], names: list[str] | None = None) -> tuple[Dataset, pa.Table]:
    """The first-pass datasets (one per input file, in input order) as one train stream.

    docs["shard"] is renumbered to index the combined list of shards. With `names` (one per
    stage), docs["source_file"] is the name this run gave each input: a resumed run may spell
    a path differently (relative, absolute) from the run that wrote the stage.
    """
    dss = [open_dataset(d) for d in stages]
    train = Split("train", [p for ds in dss for p in ds.split("train").paths], [t for ds in dss for t in ds.split("train").shards])
    tables, n_shards = [], 0
    for d, ds in zip(stages, dss):
        t = pq.read_table(d / "docs.parquet")
        source = pa.array([names[len(tables)]] * t.num_rows, pa.string()) if names else t["source_file"].cast(pa.string())
        t = t.set_column(t.schema.get_field_index("source_file"), "source_file", source)
        t = t.set_column(t.schema.get_field_index("shard"), "shard", pc.add(t["shard"], n_shards))
        tables.append(t)
        n_shards += len(ds.split("train").shards)
    return Dataset(stages[0].parent, "fwpipe", {"train": train, "val": Split("val", [], [])}), pa.concat_tables(tables)


def plan(stages: list[Path], mode: Dedup, *, threshold: int, force_val: bool, names: list[str] | None = None,
         tmp_dir: str | Path | None = None, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> DedupPlan:
    """Find clusters in the first pass and decide keep and split for every document.

    `threshold` is the split's 64-bit val threshold; with `force_val`, a dataset whose kept
    documents all hash to train sends the smallest-hash cluster to val. The engine's scratch
    files go under tmp_dir (default: beside the first pass) and are removed at the end.
    """
    ds, docs = first_pass(stages, names)
    corpus = index_shards(ds.split("train").shards, EOT)
    n = len(corpus.starts)
    if docs.num_rows != n:
        raise AssertionError(f"first pass holds {n} documents but docs.parquet {docs.num_rows}")
    idx = np.arange(n, dtype=np.int64)
    first = exact_first(corpus)
    report: dict = {"mode": mode}
    key_hash = docs["key_hash"].to_numpy()
    sc = None
    if mode == "exact" or n == 0:
        rep = first.copy()
        split = np.where(key_hash[rep] < np.uint64(threshold), VAL, TRAIN).astype(np.int8)
        keep = rep == idx
    else:
        identity = {"stages": [(str(Path(p).resolve()), sorted((f.name, f.stat().st_size) for f in Path(p).iterdir() if f.is_file()))
                               for p in stages]}
        sc, comp = near_clusters(corpus, CONFIG, copy_of=first, tmp_dir=tmp_dir or Path(stages[0]).parent, identity=identity,
                                 memory_bytes=memory_bytes)
        rep = comp.root  # the smallest member of each component is its first
        del comp
        keep = rep == idx
        split = np.where(key_hash[rep] < np.uint64(threshold), VAL, TRAIN).astype(np.int8)
        rounds = 0
        while _residual_pass(sc, corpus, keep, rep, split, rounds):
            rounds += 1
        report.update({k: v for k, v in CONFIG.as_dict().items() if k in ("threshold", "shingle", "num_perm", "bands", "rows")})
    if force_val and keep.sum() >= 2 and not (split[keep] == VAL).any():
        # a dataset of two or more documents always gets a val document: the smallest hash
        kept = np.flatnonzero(keep)
        chosen = kept[np.argmin(key_hash[kept])]
        split[rep == chosen] = VAL
    clusters = int(len(np.unique(rep[rep != idx])))
    lengths = docs["n_tokens"].to_numpy()
    report.update(
        clusters=clusters,
        removed_docs=int((~keep).sum()),
        removed_tokens=int(lengths[~keep].sum()),
        removed_exact=int(((~keep) & (first == rep)).sum()),
    )
    report["removed_near"] = report["removed_docs"] - report["removed_exact"]
    if sc is not None:
        sc.remove()
    log.info("dedup %s: %d clusters, %d documents removed", mode, clusters, report["removed_docs"])
    return DedupPlan(ds, docs, rep, split, keep, first, clusters, report)


def _residual_pass(sc: Scratch, corpus, keep: np.ndarray, rep: np.ndarray, split: np.ndarray, round_: int,
                   cfg: DedupConfig = CONFIG) -> bool:
    """Band the kept documents again, in the order the audit stage will see them (train, then val).

    Buckets of over cfg.max_bucket documents pair each member with the bucket's first only,
    so a pair missed among many can surface once its family is gone. Any pair found now is
    removed too (the later one in audit order goes), so that audit finds none on the result.
    Returns whether anything was removed; the caller repeats until nothing is.
    """
    kept = np.flatnonzero(keep)
    order = np.concatenate([kept[split[kept] == TRAIN], kept[split[kept] == VAL]])
    root = components(sc, corpus, cfg, members=order, tag=f"residual{round_}").root
    gone = root != np.arange(len(order))
    if not gone.any():
        return False
    keep[order[gone]] = False
    rep[order[gone]] = order[root[gone]]
    rep[:] = rep[rep]  # documents that pointed at a newly removed one follow it to its keeper
    log.info("dedup: %d more near duplicates among the kept documents", int(gone.sum()))
    return True


def kept_train_tokens(p: DedupPlan) -> int:
    """Stream tokens (with EOT) of the documents this plan keeps in train."""
    ok = p.keep & (p.split == TRAIN)
    return int((p.docs["n_tokens"].to_numpy()[ok] + 1).sum())


def removed_table(p: DedupPlan) -> pa.Table:
    """removed.parquet: every dropped document, why, and the kept document it duplicates."""
    gone = np.flatnonzero(~p.keep)
    kept = p.rep[gone]
    d = p.docs
    take = lambda col, rows: d[col].take(pa.array(rows, pa.int64()))  # noqa: E731
    # "exact" when identical to the kept document (the earliest copy, so exact_first points at it)
    reason = np.where(p.exact_first[gone] == kept, "exact", "near")
    cluster_ids = np.unique(p.rep[~p.keep], return_inverse=True)[1] if len(gone) else np.zeros(0, np.int64)
    return pa.table(
        {
            "id": take("id", gone),
            "source_file": take("source_file", gone),
            "source_row": take("source_row", gone),
            "n_tokens": take("n_tokens", gone),
            "reason": pa.array(reason.tolist(), pa.string()),
            "cluster": pa.array(cluster_ids.astype(np.int64)),
            "kept_id": take("id", kept),
            "kept_source_file": take("source_file", kept),
            "kept_source_row": take("source_row", kept),
        }
    )
