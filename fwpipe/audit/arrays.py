"""Array helpers the audit sections share."""

from __future__ import annotations

import numpy as np


def unique(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values, by sorting.

    Plain np.unique takes numpy 2.4's hash-based path, measured here at 0.9 s for 1M uint64
    against 0.01 s for sort + compare: the difference dominated the whole leakage section.
    """
    x = np.sort(x)
    if len(x) == 0:
        return x
    keep = np.empty(len(x), dtype=bool)
    keep[0] = True
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    return x[keep]
