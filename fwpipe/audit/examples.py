"""The documents behind the audit's numbers, for the HTML page: cluster members and leaking val docs.

The report holds counts and one snippet per cluster; the members themselves are located by
clusters.parquet (split, shard, offset, n_tokens, cluster per clustered document), which the
audit writes beside a fwpipe dataset. Their tokens are read back from the shards and decoded
with the GPT-2 encoding. A leaking val document is a val member of a cluster that also holds
train documents; its neighbour is the cluster's earliest train member, and the longest run of
tokens the two share (made of shared n-grams) is what the page highlights.

Nothing here is needed for the report's numbers: when the file or the dataset is gone, `load`
returns the reason in words and the page says it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from fwpipe.dataset import open_dataset
from fwpipe.errors import FwpipeError
from fwpipe.tokenizer import get_encoding

log = logging.getLogger(__name__)
COLUMNS = ("split", "shard", "offset", "n_tokens", "cluster")


@dataclass
class Doc:
    split: str
    shard: int
    offset: int
    tokens: np.ndarray

    @property
    def label(self) -> str:
        return f"{self.split} shard {self.shard}, token offset {self.offset:,}, {len(self.tokens):,} tokens"


@dataclass
class Leak:
    val: Doc
    train: Doc
    shared_fraction: float  # share of the val doc's n-grams that occur in the train doc
    val_span: tuple[int, int]  # longest shared run of tokens, in the val doc
    train_span: tuple[int, int]  # the same run in the train doc


@dataclass
class Examples:
    clusters: list[tuple[int, int, list[Doc]]]  # (cluster id, size, first members)
    leaks: list[Leak]
    leaking_val_docs: int  # val docs in a cluster with a train doc


def load(report: dict, *, top_clusters: int = 5, members: int = 3, top_leaks: int = 6) -> Examples | str:
    """The largest clusters' first members and the worst leaking val docs, or why not (a sentence)."""
    nd = report.get("near_duplicates") or {}
    path = nd.get("clusters_file")
    if not path:
        return (
            "the audit wrote no clusters.parquet (it writes one only into a writable fwpipe dataset directory, and never "
            "over a file of that name it did not write), so the documents themselves cannot be shown"
        )
    try:
        import polars as pl

        df = pl.read_parquet(path)
        ds = open_dataset(report["dataset"])
    except (FwpipeError, OSError, KeyError, ValueError) as e:  # polars raises ComputeError (a ValueError) on a bad file
        return f"could not read the documents back ({getattr(e, 'message', e)})"
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        return f"{path} has no column {', '.join(missing)}, so the documents cannot be located"

    def doc(row: dict) -> Doc | None:
        try:
            shard = ds.split(row["split"]).shards[row["shard"]]
        except (FwpipeError, KeyError, IndexError):
            return None
        lo, hi = int(row["offset"]), int(row["offset"]) + int(row["n_tokens"])
        if hi > len(shard):
            return None  # the dataset changed since the audit
        return Doc(row["split"], int(row["shard"]), lo, np.asarray(shard[lo:hi]))

    df = df.with_columns(
        pl.col("split").replace_strict({"train": 0, "val": 1}, default=2, return_dtype=pl.Int64).alias("_order")
    )
    df = df.sort(["cluster", "_order", "shard", "offset"])
    sizes = df.group_by("cluster").len().sort(["len", "cluster"], descending=[True, False])
    clusters = []
    for cid, size in sizes.head(top_clusters).iter_rows():
        rows = df.filter(pl.col("cluster") == cid).head(members).iter_rows(named=True)
        docs = [d for d in map(doc, rows) if d is not None]
        if docs:
            clusters.append((int(cid), int(size), docs))
    mixed = df.group_by("cluster").agg(
        (pl.col("split") == "train").any().alias("t"), (pl.col("split") == "val").any().alias("v")
    )
    mixed_ids = mixed.filter(pl.col("t") & pl.col("v"))["cluster"]
    in_mixed = df.filter(pl.col("cluster").is_in(mixed_ids.to_list()))
    n = int((report.get("leakage") or {}).get("ngram_n") or (report.get("options") or {}).get("ngram") or 13)
    leaks = []
    first_train = {
        r["cluster"]: r
        for r in in_mixed.filter(pl.col("split") == "train")
        .unique("cluster", keep="first", maintain_order=True)
        .iter_rows(named=True)
    }
    val_rows = in_mixed.filter(pl.col("split") == "val")
    for row in val_rows.head(200).iter_rows(named=True):  # a page shows a handful; 200 bounds the work
        v, t = doc(row), doc(first_train[row["cluster"]])
        if v is not None and t is not None:
            leaks.append(shared(v, t, n))
    leaks.sort(key=lambda lk: -lk.shared_fraction)
    seen, shown = set(), []
    for lk in leaks:  # one val doc per train neighbour: five val copies of one page would show one pair five times
        key = (lk.train.split, lk.train.shard, lk.train.offset)
        if key not in seen:
            seen.add(key)
            shown.append(lk)
    return Examples(clusters, shown[:top_leaks], val_rows.height)


def _ngrams(tokens: np.ndarray, n: int) -> np.ndarray:
    """Each n-gram as one bytes value (a row view), so numpy set operations compare whole n-grams."""
    if len(tokens) < n:
        return np.zeros(0, dtype=f"V{n * 4}")
    w = np.lib.stride_tricks.sliding_window_view(tokens.astype(np.uint32), n)
    return np.ascontiguousarray(w).view(f"V{n * 4}").ravel()


def shared(val: Doc, train: Doc, n: int) -> Leak:
    gv, gt = _ngrams(val.tokens, n), _ngrams(train.tokens, n)
    hit = np.isin(gv, gt)
    frac = float(hit.mean()) if len(hit) else 0.0
    if not hit.any():
        return Leak(val, train, frac, (0, 0), (0, 0))
    # tokens covered by shared n-grams, as runs; the longest run is the highlight
    cover = np.zeros(len(val.tokens) + 1, dtype=np.int8)
    starts = np.flatnonzero(hit)
    np.add.at(cover, starts, 1)
    np.add.at(cover, starts + n, -1)
    covered = np.cumsum(cover)[:-1] > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], covered.view(np.int8), [0]])))
    runs = edges.reshape(-1, 2)
    a, b = runs[np.argmax(runs[:, 1] - runs[:, 0])]
    p = int(np.flatnonzero(gt == gv[a])[0])  # where the run's first n-gram sits in the train doc
    m = 0
    while a + m < b and p + m < len(train.tokens) and val.tokens[a + m] == train.tokens[p + m]:
        m += 1
    return Leak(val, train, frac, (int(a), int(a + m)), (p, p + m))


def decode(tokens: np.ndarray) -> str:
    return get_encoding().decode([int(t) for t in tokens])


def window(
    tokens: np.ndarray, span: tuple[int, int], *, before: int = 120, inside: int = 260, after: int = 80
) -> tuple[str, str, str]:
    """(text before, highlighted text, text after) around span, cut to a readable length."""
    a, b = span
    lo = max(0, a - before)
    cut = min(b, a + inside)
    pre = ("... " if lo > 0 else "") + decode(tokens[lo:a])
    mid = decode(tokens[a:cut]) + (" ..." if cut < b else "")
    post = decode(tokens[b : b + after]) + (" ..." if b + after < len(tokens) else "") if cut == b else ""
    return pre, mid, post


def head(tokens: np.ndarray, n_tokens: int = 220) -> str:
    return decode(tokens[:n_tokens]) + (" ..." if len(tokens) > n_tokens else "")
