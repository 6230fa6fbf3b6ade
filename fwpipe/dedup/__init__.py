"""The one deduplication engine under `fwpipe prepare --dedup` and `fwpipe audit`.

Config and defaults (config.py), exact copies (exact.py), MinHash signatures, band buckets,
verified pairs and union-find clusters out of core (engine.py, scratch.py); clusters out, no
report text. `near_clusters` runs the whole of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fwpipe.dedup.config import SCHEME, DedupConfig, as_lean_minhash, lsh_params, permutations
from fwpipe.dedup.docs import DocIndex, Docs, index_shards, n_docs
from fwpipe.dedup.engine import Components, components, sign
from fwpipe.dedup.exact import exact_first
from fwpipe.dedup.scratch import DEFAULT_MEMORY_BYTES, Scratch, memory_bytes, open_scratch, scratch_bytes
from fwpipe.executors import INLINE, Executor

__all__ = [
    "SCHEME",
    "DedupConfig",
    "as_lean_minhash",
    "lsh_params",
    "permutations",
    "DocIndex",
    "Docs",
    "index_shards",
    "Components",
    "components",
    "sign",
    "exact_first",
    "Scratch",
    "open_scratch",
    "near_clusters",
    "DEFAULT_MEMORY_BYTES",
    "memory_bytes",
    "scratch_bytes",
]


def near_clusters(
    docs: Docs,
    cfg: DedupConfig,
    *,
    copy_of: np.ndarray,
    tmp_dir: str | Path,
    identity: dict,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    executor: Executor = INLINE,
) -> tuple[Scratch, Components]:
    """Signatures and near-duplicate components of every document, in a scratch directory
    under tmp_dir (the caller removes it with .remove() once it has read the kept pairs).
    The signature units run through `executor` (default: in this process)."""
    sc = open_scratch(
        tmp_dir,
        {**identity, "config": cfg.as_dict(), "n_docs": n_docs(docs)},
        n_docs=n_docs(docs),
        num_perm=cfg.num_perm,
        bands=cfg.bands,
        memory_bytes=memory_bytes,
    )
    sign(sc, docs, cfg, copy_of, executor)
    return sc, components(sc, docs, cfg, copy_of=copy_of)
