"""Totals per split: documents, tokens without EOT, stream tokens with EOT, distinct token ids."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fwpipe.audit.corpus import Corpus
from fwpipe.errors import InputFormatError
from fwpipe.kernels import token_histogram
from fwpipe.shards import SPLITS
from fwpipe.tokenizer import EOT, VOCAB_SIZE

log = logging.getLogger(__name__)


def totals(corpus: Corpus) -> dict:
    out = {}
    for name in SPLITS:
        lo, hi = corpus.split_docs[name]
        counts = np.zeros(VOCAB_SIZE, dtype=np.int64)
        stream = 0
        for k, tokens in enumerate(corpus.shards):
            if corpus.shard_split[k] == name:
                stream += len(tokens)
                counts += token_histogram(tokens, VOCAB_SIZE)
        n_tokens = int((corpus.ends[lo:hi] - corpus.starts[lo:hi]).sum())
        out[name] = {
            "docs": hi - lo,
            "tokens": n_tokens,  # document tokens, EOT separators not counted
            "stream_tokens": stream,  # what a loader streams: tokens plus separators
            "distinct_token_ids": int(np.count_nonzero(counts[:EOT])),
            "shards": sum(1 for s in corpus.shard_split if s == name),
        }
    return out


def per_source(dataset_root: Path, manifest: dict | None) -> list[dict] | None:
    """Docs and tokens per source file, where prepare's docs.parquet records it."""
    path = Path(dataset_root) / "docs.parquet"
    if manifest is None or not path.exists():
        return None
    import polars as pl

    try:
        schema = pl.read_parquet_schema(path)
        src = next((c for c in ("source_file", "source", "source_path") if c in schema), None)
        if src is None or "n_tokens" not in schema or "split" not in schema:
            log.info("docs.parquet has no source column; skipping per-source totals")
            return None
        df = (pl.scan_parquet(path).group_by([src, "split"]).agg(pl.len().alias("docs"), pl.col("n_tokens").sum().alias("tokens"))
              .sort([src, "split"]).collect())
        return [{"source": str(r[src]), "split": str(r["split"]), "docs": int(r["docs"]), "tokens": int(r["tokens"])}
                for r in df.iter_rows(named=True)]
    except (pl.exceptions.PolarsError, OSError, TypeError, ValueError) as e:
        first_line = (str(e).splitlines() or [""])[0]
        raise InputFormatError(f"{path}: cannot read it as prepare's document table ({type(e).__name__}: {first_line})",
                               "restore docs.parquet, or re-run fwpipe prepare into a new -o directory") from e
