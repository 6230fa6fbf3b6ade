"""Which split a document belongs to: a 64-bit hash of its key against the val fraction.

The hash depends on the key (FineWeb `id`, else the text) and the seed only, so a document lands
on the same side however the inputs are sharded or ordered, and adding inputs never moves one.
"""

from __future__ import annotations

import hashlib

import numpy as np

from fwpipe.dataset import SPLITS

TRAIN, VAL = 0, 1
SPLIT_NAMES = SPLITS  # the dataset's split names, in the order TRAIN and VAL index them


def key_hash(key: str, seed: int) -> int:
    """64-bit blake2b of the key, keyed by the seed."""
    digest = hashlib.blake2b(
        key.encode("utf-8", "surrogatepass"), digest_size=8, key=seed.to_bytes(8, "little")
    ).digest()
    return int.from_bytes(digest, "little")


def val_threshold(val_fraction: float) -> int:
    """Documents whose key hash is below this go to val."""
    return min(int(val_fraction * 2**64), 2**64)


def key_hashes(keys: list[str | None], seed: int) -> np.ndarray:
    """key_hash of each key (0 where a key is None) as uint64, for a chunk at once."""
    return key_hashes_utf8([None if k is None else k.encode("utf-8", "surrogatepass") for k in keys], seed)


def key_hashes_utf8(keys: list[bytes | None], seed: int) -> np.ndarray:
    """key_hashes of keys already encoded as UTF-8.

    One keyed blake2b state is copied per key instead of keyed anew, and the digests are read
    as one little-endian array instead of one int each: ~1.4 instead of ~2.5 us a key.
    """
    keyed = hashlib.blake2b(digest_size=8, key=seed.to_bytes(8, "little"))
    digests = []
    for k in keys:
        if k is None:
            digests.append(_ZERO_DIGEST)
        else:
            h = keyed.copy()
            h.update(k)
            digests.append(h.digest())
    return np.frombuffer(b"".join(digests), dtype="<u8").astype(np.uint64)


_ZERO_DIGEST = bytes(8)
