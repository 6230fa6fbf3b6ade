"""What checking token ids against the vocabulary costs a reader (fwpipe.shards.check_token_ids).

    python bench/shards_bench.py [--tokens 1e8]

Writes one shard of --tokens random GPT-2 ids to a temp dir, then times read_shard (header
check + memory map + the vectorized max over every id) and the id check alone, best and median
of 5, with the shard in the page cache as right after prepare wrote it. From a cold disk the
check reads the file once, so it runs at disk speed (2 bytes per token).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from fwpipe import shards


def _times(fn, n: int = 5) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return sorted(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=float, default=1e8)
    n = int(ap.parse_args().tokens)
    with tempfile.TemporaryDirectory(prefix="fwpipe-shards-bench") as d:
        path = Path(d) / "train_000000.bin"
        shards.write_shard(path, np.random.default_rng(0).integers(0, 50257, n, dtype=np.uint16))
        tokens = shards.read_shard(path)  # warms the page cache
        check = _times(lambda: shards.check_token_ids(path, tokens, shards.HEADER_BYTES))
        read = _times(lambda: shards.read_shard(path))
    print(
        f"{n:,} tokens: id check best {check[0] * 1e3:.1f} ms, median {check[2] * 1e3:.1f} ms "
        f"({n / check[2] / 1e9:.1f}G tokens/s); read_shard with the check median {read[2] * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
