"""Totals per split: documents, tokens without EOT, stream tokens with EOT, distinct token ids."""

from __future__ import annotations

import numpy as np

from fwpipe.audit.corpus import Corpus
from fwpipe.dataset import SPLITS, Dataset
from fwpipe.errors import InputFormatError
from fwpipe.kernels import token_histogram
from fwpipe.shards import release_pages, slices
from fwpipe.tokenizer import EOT, VOCAB_SIZE


def totals(corpus: Corpus) -> dict:
    out = {}
    for name in SPLITS:
        lo, hi = corpus.split_docs[name]
        counts = np.zeros(VOCAB_SIZE, dtype=np.int64)
        stream = 0
        for k, tokens in enumerate(corpus.shards):
            if corpus.shard_split[k] == name:
                stream += len(tokens)
                for a, b in slices(tokens):  # each slice's pages dropped after it: 2 bytes a token otherwise
                    counts += token_histogram(tokens[a:b], VOCAB_SIZE)
                    release_pages(tokens)
        n_tokens = int((corpus.ends[lo:hi] - corpus.starts[lo:hi]).sum())
        out[name] = {
            "docs": hi - lo,
            "tokens": n_tokens,  # document tokens, EOT separators not counted
            "stream_tokens": stream,  # what a loader streams: tokens plus separators
            "distinct_token_ids": int(np.count_nonzero(counts[:EOT])),
            "shards": sum(1 for s in corpus.shard_split if s == name),
        }
    return out


def per_source(ds: Dataset) -> list[dict] | None:
    """Docs and tokens per input file, from a fwpipe dataset's docs.parquet (dataset.docs_schema)."""
    path = ds.docs_table
    if path is None:
        return None
    import polars as pl

    try:
        df = (
            pl.scan_parquet(path)
            .group_by(["source_file", "split"])
            .agg(pl.len().alias("docs"), pl.col("n_tokens").sum().alias("tokens"))
            .sort(["source_file", "split"])
            .collect()
        )
        return [
            {
                "source": str(r["source_file"]),
                "split": str(r["split"]),
                "docs": int(r["docs"]),
                "tokens": int(r["tokens"]),
            }
            for r in df.iter_rows(named=True)
        ]
    except (pl.exceptions.PolarsError, OSError, TypeError, ValueError) as e:
        first_line = (str(e).splitlines() or [""])[0]
        raise InputFormatError(
            f"{path}: cannot read it as prepare's document table ({type(e).__name__}: {first_line})",
            "restore docs.parquet, or re-run fwpipe prepare into a new -o directory",
        ) from e
