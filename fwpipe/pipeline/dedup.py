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
from typing import Iterator, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fwpipe.dedup import DEFAULT_MEMORY_BYTES, DedupConfig, Scratch, components, exact_first, index_shards, near_clusters
from fwpipe.executor import Executor
from fwpipe.pipeline.split import TRAIN, VAL
from fwpipe.dataset import DOCS, REMOVED_COLUMNS, Dataset, Split, open_dataset
from fwpipe.tokenizer import EOT

log = logging.getLogger(__name__)

Dedup = Literal["none", "exact", "near"]
CONFIG = DedupConfig()  # the engine's defaults, the same as audit's, so audit finds what prepare removed


# Rows a batch when the plan re-reads the first pass's docs.parquet (removed.parquet, pass 2):
# ~100 bytes a row in flight, so 64K rows hold ~6 MB however many documents there are.
BATCH_ROWS = 1 << 16


@dataclass
class DedupPlan:
    """Keep and split for every first-pass document, in ~35 bytes a document.

    The first pass's strings (id, url, source_file: ~100 bytes a document) stay on disk in the
    stages' docs.parquet; batches() reads them back in input order when they are needed.
    """

    dataset: Dataset  # the first pass, one train stream in input order
    stages: list[Path]  # its datasets, one per input file, in input order
    names: list[str] | None  # the name this run gives each stage's input (see first_pass)
    shard_base: np.ndarray  # (stages,) index of each stage's first shard in the combined list
    key_hash: np.ndarray  # (n,) uint64, docs.parquet's key_hash in input order
    n_tokens: np.ndarray  # (n,) int64
    rep: np.ndarray  # (n,) the first member of each document's cluster (itself if alone)
    split: np.ndarray  # (n,) int8 TRAIN / VAL for every document, by its cluster's first member
    keep: np.ndarray  # (n,) bool
    exact_first: np.ndarray  # (n,) earliest identical document
    clusters: int
    report: dict

    def forget_clusters(self) -> None:
        """Drop what only removed.parquet and the budget need (rep, exact_first, key_hash,
        n_tokens: 32 bytes a document), once they are done; pass 2 needs keep and split only."""
        self.rep = self.exact_first = self.key_hash = self.n_tokens = np.zeros(0, np.int64)

    def batches(self, columns: list[str], batch_rows: int = BATCH_ROWS) -> Iterator[tuple[int, pa.Table]]:
        """(first row, table) for the first pass's docs.parquet rows, in order, `batch_rows` at a time.

        docs["shard"] indexes the combined list of shards; with names, docs["source_file"] is
        the name this run gave each input: a resumed run may spell a path differently
        (relative, absolute) from the run that wrote the stage.
        """
        row0 = 0
        for si, stage in enumerate(self.stages):
            f = pq.ParquetFile(stage / DOCS)
            for b in f.iter_batches(batch_size=batch_rows, columns=columns):
                t = pa.Table.from_batches([b])
                if "source_file" in columns:
                    source = pa.array([self.names[si]] * t.num_rows, pa.string()) if self.names else t["source_file"].cast(pa.string())
                    t = t.set_column(t.schema.get_field_index("source_file"), "source_file", source)
                if "shard" in columns:
                    t = t.set_column(t.schema.get_field_index("shard"), "shard", pc.add(t["shard"], pa.scalar(int(self.shard_base[si]), pa.int32())))
                yield row0, t
                row0 += t.num_rows
            f.close()


def first_pass(stages: list[Path]) -> tuple[Dataset, np.ndarray, np.ndarray, np.ndarray]:
    """The first-pass datasets (one per input file, in input order) as one train stream.

    Returns it with each stage's first shard in the combined list, and the key_hash and
    n_tokens columns of their docs.parquet (the only ones the plan holds in memory).
    """
    dss = [open_dataset(d) for d in stages]
    train = Split("train", [p for ds in dss for p in ds.split("train").paths], [t for ds in dss for t in ds.split("train").shards])
    shard_base = np.cumsum([0] + [len(ds.split("train").shards) for ds in dss])[:-1]
    cols = [pq.read_table(d / DOCS, columns=["key_hash", "n_tokens"]) for d in stages]
    key_hash = np.concatenate([np.zeros(0, np.uint64)] + [t["key_hash"].to_numpy() for t in cols])
    n_tokens = np.concatenate([np.zeros(0, np.int64)] + [t["n_tokens"].to_numpy() for t in cols])
    ds = Dataset(stages[0].parent, "fwpipe", {"train": train, "val": Split("val", [], [])})
    return ds, shard_base, key_hash, n_tokens


def plan(stages: list[Path], mode: Dedup, *, threshold: int, force_val: bool, names: list[str] | None = None,
         tmp_dir: str | Path | None = None, memory_bytes: int = DEFAULT_MEMORY_BYTES, executor: Executor | None = None) -> DedupPlan:
    """Find clusters in the first pass and decide keep and split for every document.

    `threshold` is the split's 64-bit val threshold; with `force_val`, a dataset whose kept
    documents all hash to train sends the smallest-hash cluster to val. The engine's scratch
    files go under tmp_dir (default: beside the first pass) and are removed at the end.
    """
    ds, shard_base, key_hash, lengths = first_pass(stages)
    corpus = index_shards(ds.split("train").shards, EOT)
    n = len(corpus.starts)
    if len(key_hash) != n:
        raise AssertionError(f"first pass holds {n} documents but docs.parquet {len(key_hash)}")
    idx = np.arange(n, dtype=np.int64)
    first = exact_first(corpus)
    report: dict = {"mode": mode}
    sc = None
    if mode == "exact" or n == 0:
        rep = first.copy()
        split = np.where(key_hash[rep] < np.uint64(threshold), VAL, TRAIN).astype(np.int8)
        keep = rep == idx
    else:
        identity = {"stages": [(str(Path(p).resolve()), sorted((f.name, f.stat().st_size) for f in Path(p).iterdir() if f.is_file()))
                               for p in stages]}
        sc, comp = near_clusters(corpus, CONFIG, copy_of=first, tmp_dir=tmp_dir or Path(stages[0]).parent, identity=identity,
                                 memory_bytes=memory_bytes, executor=executor)
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
    return DedupPlan(ds, list(stages), names, shard_base, key_hash, lengths, rep, split, keep, first, clusters, report)


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
    return int((p.n_tokens[ok] + 1).sum())


def removed_table(p: DedupPlan, batch_rows: int = BATCH_ROWS) -> pa.Table:
    """removed.parquet: every dropped document, why, and the kept document it duplicates.

    Only the rows it names (the dropped documents and their keepers) are read back from the
    first pass, batch by batch: memory follows the number removed, not the number of documents.
    """
    gone = np.flatnonzero(~p.keep)
    kept = p.rep[gone]
    need = np.unique(np.concatenate([gone, kept]))
    cols = ["id", "source_file", "source_row", "n_tokens"]
    parts = []
    for row0, t in p.batches(cols, batch_rows):
        lo, hi = np.searchsorted(need, [row0, row0 + t.num_rows])
        if hi > lo:
            parts.append(t.take(pa.array(need[lo:hi] - row0, pa.int64())))
    d = pa.concat_tables(parts) if parts else pa.table({c: pa.array([], pa.string() if c in ("id", "source_file") else pa.int64()) for c in cols})
    take = lambda col, rows: d[col].take(pa.array(np.searchsorted(need, rows), pa.int64()))  # noqa: E731
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
    ).select(list(REMOVED_COLUMNS))
