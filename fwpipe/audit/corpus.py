"""Every document of a dataset, located: which shard, where it starts and ends.

One pass of kernels.doc_bounds over each memory-mapped shard; the tokens stay on disk and
only three small arrays per document (20 bytes) live in memory. Documents are numbered
globally, train first then val, so "an earlier document" and "a train document" are both
"a smaller global index" comparisons.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from fwpipe.dataset import SPLITS, Dataset
from fwpipe.tokenizer import get_encoding

log = logging.getLogger(__name__)


@dataclass
class Corpus:
    dataset: Dataset
    shards: list[np.ndarray]  # token memmaps, train shards then val shards
    shard_split: list[str]  # split name of each shard
    shard_index: list[int]  # index of each shard within its split
    shard_docs: np.ndarray  # (n_shards + 1,) first global doc of each shard
    shard: np.ndarray  # (n_docs,) int32 shard of each doc
    starts: np.ndarray  # (n_docs,) int64 token offset of each doc in its shard
    ends: np.ndarray  # (n_docs,) int64, exclusive
    split_docs: dict[str, tuple[int, int]]  # split -> [first, last) global doc range

    @property
    def n_docs(self) -> int:
        return len(self.starts)

    @property
    def lengths(self) -> np.ndarray:
        return self.ends - self.starts

    @property
    def n_train(self) -> int:
        return self.split_docs["train"][1]

    def split_of(self, doc: int) -> str:
        return "train" if doc < self.n_train else "val"

    def doc_in_split(self, doc: int) -> int:
        return doc - self.split_docs[self.split_of(doc)][0]

    def tokens(self, doc: int) -> np.ndarray:
        return self.shards[self.shard[doc]][self.starts[doc] : self.ends[doc]]

    def shard_range(self, k: int) -> tuple[int, int]:
        return int(self.shard_docs[k]), int(self.shard_docs[k + 1])

    def snippet(self, doc: int, n_chars: int = 70) -> str:
        """The start of a document, decoded, on one line."""
        text = get_encoding().decode(self.tokens(doc)[:n_chars].tolist())
        text = " ".join(text.split())
        return text[: n_chars - 3] + "..." if len(text) > n_chars else text

    def where(self, doc: int) -> dict:
        return {
            "split": self.split_of(doc),
            "doc": self.doc_in_split(doc),
            "shard": self.shard_index[self.shard[doc]],
            "offset": int(self.starts[doc]),
            "n_tokens": int(self.ends[doc] - self.starts[doc]),
        }


def index(dataset: Dataset) -> Corpus:
    shards, shard_split, shard_index, starts, ends, shard_of, shard_docs = [], [], [], [], [], [], [0]
    split_docs = {}
    for name in SPLITS:  # train first: global order is train then val
        first = shard_docs[-1]
        for i, (_, s, e) in enumerate(dataset.split(name).documents()):
            k = len(shards)
            shards.append(dataset.split(name).shards[i])
            shard_split.append(name)
            shard_index.append(i)
            starts.append(s)
            ends.append(e)
            shard_of.append(np.full(len(s), k, dtype=np.int32))
            shard_docs.append(shard_docs[-1] + len(s))
        split_docs[name] = (first, shard_docs[-1])
    cat = lambda xs, dt: np.concatenate(xs).astype(dt, copy=False) if xs else np.zeros(0, dt)  # noqa: E731
    corpus = Corpus(
        dataset,
        shards,
        shard_split,
        shard_index,
        np.array(shard_docs, dtype=np.int64),
        cat(shard_of, np.int32),
        cat(starts, np.int64),
        cat(ends, np.int64),
        split_docs,
    )
    log.info("indexed %d documents in %d shards", corpus.n_docs, len(shards))
    return corpus
