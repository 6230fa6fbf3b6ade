"""Benchmark: what `--estimate` and `prepare` fetch from a URL, against the file's size.

Writes FineWeb-like parquet files (estimate_bench's: real sample texts, FineWeb's 9 columns,
snappy, 1,000-row row groups, with and without `token_count`), serves them from bench/range_server.py's
HTTP server on 127.0.0.1 (Range, ETag), runs `estimate` on each URL and `prepare` on the
smallest, and prints the bytes fetched / file bytes (goal for --estimate with token_count:
<= 2%) and the requests made. Nothing leaves the machine.

    python bench/remote_bench.py [--mb 50 200]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from estimate_bench import base_table, write_file
from range_server import RangeServer

from fwpipe import remote
from fwpipe.pipeline.estimate import estimate
from fwpipe.pipeline.prepare import PrepareOptions, prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, nargs="+", default=[50.0, 200.0], help="file sizes to try (MB)")
    a = ap.parse_args()
    base, _ = base_table()
    srv = RangeServer()
    with tempfile.TemporaryDirectory() as d:
        bytes_per_copy = None
        for mb in a.mb:
            for tc in (True, False):
                p = Path(d) / f"fw_{mb:g}mb_{'tc' if tc else 'notc'}.parquet"
                if bytes_per_copy is None:
                    write_file(p, base, 1, 0, tc)
                    bytes_per_copy = p.stat().st_size
                write_file(p, base, max(1, math.ceil(mb * 1e6 / bytes_per_copy)), 0, tc)
                srv.put(p.name, p.read_bytes())
                before = remote.STATS.snapshot()
                est = estimate([srv.url(p.name)])
                g = est["fetched"]
                print(
                    f"estimate {p.name:28s} {p.stat().st_size / 1e6:8.1f} MB  fetched {g['bytes'] / 1e6:7.3f} MB "
                    f"({g['fraction']:.3%}) in {remote.since(before)['requests']} requests, method {est['files'][0]['method']}"
                )
        small = sorted(srv.files, key=lambda n: len(srv.files[n]))[0]
        before = remote.STATS.snapshot()
        prepare([srv.url(small)], Path(d) / "ds", options=PrepareOptions(dedup="none"), progress=False)
        got = remote.since(before)
        print(
            f"prepare  {small:28s} {len(srv.files[small]) / 1e6:8.1f} MB  fetched {got['fetched_bytes'] / 1e6:7.3f} MB "
            f"({got['fetched_bytes'] / len(srv.files[small]):.1%}) in {got['requests']} requests"
        )
    srv.close()


if __name__ == "__main__":
    main()
