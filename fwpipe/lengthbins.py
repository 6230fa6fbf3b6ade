"""Document-length histogram bins, shared by prepare's shard sidecars, the manifest and the audit.

Plain numpy, outside fwpipe.kernels: `prepare --dedup none` then never loads numba, whose import
and first call (it imports scipy) cost ~1 s of a two-document prepare's ~2 s
(bench/prepare_bench.py --only startup).
"""

from __future__ import annotations

import numpy as np

# bin 0 holds length 0, bin i >= 1 holds [2**(i-1), 2**i); the last bin also holds every longer length
LENGTH_BINS = 40
_BLOCK = 1 << 20  # lengths per step: bounds the temporaries (~20 MB) whatever a shard holds


def length_histogram(lengths: np.ndarray) -> np.ndarray:
    """int64 (LENGTH_BINS,): documents per bin (a length <= 0 counts in bin 0)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    hist = np.zeros(LENGTH_BINS, dtype=np.int64)
    for lo in range(0, len(lengths), _BLOCK):
        n = lengths[lo : lo + _BLOCK]
        # frexp's exponent is the bit length: exact below 2**53, and longer lengths are capped anyway
        bits = np.where(n > 0, np.minimum(np.frexp(n.astype(np.float64))[1], LENGTH_BINS - 1), 0)
        hist += np.bincount(bits, minlength=LENGTH_BINS)
    return hist


def length_bin_edges() -> list[int]:
    """Lower edge of each length_histogram bin (bin 0 is length 0)."""
    return [0] + [2 ** (i - 1) for i in range(1, LENGTH_BINS)]
