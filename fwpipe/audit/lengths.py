"""Document-length distribution per split: percentiles, skew, concentration, block-size overflow."""

from __future__ import annotations

import numpy as np

from fwpipe.audit.corpus import Corpus
from fwpipe.dataset import SPLITS
from fwpipe.kernels import length_bin_edges, length_histogram

SHORT_DOC_TOKENS = 64  # documents under this many tokens are mostly boilerplate or fragments


def length_stats(lengths: np.ndarray, block_size: int) -> dict:
    """Summary of one split's document lengths (tokens without EOT)."""
    return _stats(lengths.astype(np.float64), block_size)


def _stats(x: np.ndarray, block_size: int) -> dict:
    """length_stats of the lengths as a float64 array of the caller's, which it sorts in place
    (np.sort would hold a second copy, 8 bytes a document)."""
    n = len(x)
    if n == 0:
        return {"docs": 0}
    x.sort()
    counts = length_histogram(x.astype(np.int64))  # the exact integers: lengths are far below 2**53
    total = x.sum()
    mean = total / n
    std = x.std()
    # Gini from the sorted values: G = sum_i (2i - n - 1) x_i / (n * sum x), i = 1..n; the
    # weights built in one array in place, by the same float operations as (2 * i - n - 1) * x
    w = np.arange(1, n + 1, dtype=np.float64)
    w *= 2
    w -= n
    w -= 1
    w *= x
    gini = float(w.sum() / (n * total)) if total else 0.0
    del w
    top = lambda frac: float(x[n - max(1, int(np.ceil(frac * n))) :].sum() / total)  # noqa: E731
    p = np.percentile(x, [10, 50, 90, 99])
    return {
        "docs": n,
        "min": int(x[0]),
        "p10": float(p[0]),
        "p50": float(p[1]),
        "p90": float(p[2]),
        "p99": float(p[3]),
        "max": int(x[-1]),
        "mean": float(mean),
        "skewness": float(((x - mean) ** 3).mean() / std**3) if std > 0 else 0.0,
        "gini": gini,
        "top1pct_token_share": top(0.01),  # share of tokens in the longest 1% of documents
        "top10pct_token_share": top(0.10),
        "short_doc_share": float((x < SHORT_DOC_TOKENS).mean()),
        "short_doc_tokens": SHORT_DOC_TOKENS,
        "block_size": block_size,
        "over_block_token_share": float(x[x > block_size].sum() / total),
        "histogram": {
            "bin_lower_edges": length_bin_edges(),
            "counts": counts.tolist(),
        },
    }


def lengths(corpus: Corpus, block_size: int) -> dict:
    out = {}
    for name in SPLITS:
        lo, hi = corpus.split_docs[name]
        x = corpus.ends[lo:hi].astype(np.float64)  # one split's lengths as floats, and no int copy beside
        x -= corpus.starts[lo:hi]
        out[name] = _stats(x, block_size)
        del x
    return out
