"""Benchmark: `prepare --estimate` on a directory of large FineWeb-like files, against preparing them.

Generates parquet files of FineWeb's 9 columns (half of them without `token_count`, as in
FineWeb's sample-10BT) from the bundled sample's real texts, repeated with new ids, written
like datatrove writes FineWeb (snappy, 1,000-row row groups, pyarrow's dictionary default).
Times `estimate` on the directory in a fresh process, then times `prepare` on a slice of the
first file and extrapolates it to the whole directory by text bytes; prints the ratio
estimate / prepare (goal < 1%) and the estimate's error against the known true token count.
Files are generated under a temporary directory and removed afterwards. The page cache is warm
(the files were just written); a cold read of the footers adds a few seeks per file.

    python bench/estimate_bench.py [--gb 1.0] [--files 8] [--slice-rows 10000] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CHILD_ESTIMATE = r"""
import json, sys, time
t0 = time.perf_counter()
from fwpipe.pipeline.estimate import estimate
from fwpipe.pipeline.summary import format_estimate
t1 = time.perf_counter()
d = estimate([sys.argv[1]], budget_tokens=7.6e9, max_epochs=4)
t2 = time.perf_counter()
print(format_estimate(d), file=sys.stderr)
print(json.dumps({"import_s": t1 - t0, "estimate_s": t2 - t1, "total": d["total"], "sample": d["sample"],
                  "budget": {k: d["budget"][k] for k in ("epochs", "files_needed")}}))
"""

CHILD_PREPARE = r"""
import json, sys, time
from fwpipe.pipeline.prepare import prepare
from fwpipe.tokenizer import get_encoding
get_encoding()
t0 = time.perf_counter()
s = prepare([sys.argv[1]], sys.argv[2], workers=int(sys.argv[3]), progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "tokens": s["tokens"], "docs": s["docs"]}))
"""

FINEWEB_SCHEMA = pa.schema(
    [
        ("text", pa.string()),
        ("id", pa.string()),
        ("dump", pa.string()),
        ("url", pa.string()),
        ("date", pa.string()),
        ("file_path", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float64()),
        ("token_count", pa.int64()),
    ]
)


def base_table() -> tuple[pa.Table, int]:
    """The bundled sample's texts with true GPT-2 counts; and their stream tokens (+1 EOT each)."""
    from fwpipe.sample import SAMPLE_FILES
    from fwpipe.tokenizer import get_encoding

    texts = pa.concat_tables([pq.read_table(f, columns=["text"]) for f in SAMPLE_FILES])["text"].to_pylist()
    counts = [len(t) for t in get_encoding().encode_ordinary_batch(texts, num_threads=os.cpu_count() or 1)]
    n = len(texts)
    t = pa.table(
        {
            "text": pa.array(texts, pa.string()),
            "id": pa.array([""] * n, pa.string()),
            "dump": pa.array(["CC-MAIN-2024-10"] * n, pa.string()),
            "url": pa.array([f"https://example.com/{i}" for i in range(n)], pa.string()),
            "date": pa.array(["2024-02-21T00:00:00Z"] * n, pa.string()),
            "file_path": pa.array(["s3://commoncrawl/crawl-data/CC-MAIN-2024-10/x.warc.gz"] * n, pa.string()),
            "language": pa.array(["en"] * n, pa.string()),
            "language_score": pa.array([0.95] * n, pa.float64()),
            "token_count": pa.array(counts, pa.int64()),
        },
        schema=FINEWEB_SCHEMA,
    )
    return t, sum(counts) + n


def write_file(path: Path, base: pa.Table, copies: int, file_no: int, with_token_count: bool) -> None:
    schema = FINEWEB_SCHEMA if with_token_count else pa.schema([f for f in FINEWEB_SCHEMA if f.name != "token_count"])
    with pq.ParquetWriter(path, schema, compression="snappy") as w:
        for c in range(copies):
            # each copy in its own order, so row groups do not start at the same documents
            order = np.random.default_rng([file_no, c]).permutation(base.num_rows)
            ids = pa.array([f"<urn:uuid:{file_no:04d}-{c:06d}-{k:06d}>" for k in range(base.num_rows)], pa.string())
            t = base.take(order).set_column(1, "id", ids)
            if not with_token_count:
                t = t.drop_columns(["token_count"])
            w.write_table(t, row_group_size=1000)


def run_child(code: str, *args: str) -> dict:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"bench child failed:\n{r.stderr}")
    if r.stderr.strip():
        print(r.stderr.rstrip())
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=1.0, help="total size of the generated parquet files (GB)")
    ap.add_argument("--files", type=int, default=8, help="number of files; every other one lacks token_count")
    ap.add_argument(
        "--slice-rows", type=int, default=10_000, help="rows of the first file to prepare for the extrapolation"
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()

    base, base_stream_tokens = base_table()
    with tempfile.TemporaryDirectory(prefix="fwpipe-estimate-bench-") as tmp:
        tmp = Path(tmp)
        probe = tmp / "probe.parquet"
        write_file(probe, base, 2, 0, True)
        bytes_per_copy = probe.stat().st_size / 2
        probe.unlink()
        copies = max(1, round(args.gb * 1e9 / args.files / bytes_per_copy))
        data = tmp / "fineweb"
        data.mkdir()
        t0 = time.perf_counter()
        for i in range(args.files):
            write_file(data / f"{i:03d}_00000.parquet", base, copies, i, with_token_count=i % 2 == 0)
        files = sorted(data.glob("*.parquet"))
        size = sum(f.stat().st_size for f in files)
        rows = copies * base.num_rows * args.files
        text_bytes_per_copy = sum(len(t.encode()) for t in base["text"].to_pylist())
        true_tokens = base_stream_tokens * copies * args.files
        print(
            f"generated {args.files} files, {size / 1e9:.2f} GB, {rows:,} rows, {true_tokens:,} true tokens "
            f"in {time.perf_counter() - t0:.0f} s ({copies} copies of {base.num_rows:,} FineWeb documents each)"
        )

        est = run_child(CHILD_ESTIMATE, str(data))
        tot = est["total"]
        err = tot["est_tokens"] / true_tokens - 1
        inside = tot["est_tokens_low"] <= true_tokens <= tot["est_tokens_high"]

        # prepare a slice: the first --slice-rows rows of the first file (with token_count, so
        # prepare also checks counts as it would on FineWeb)
        slice_path = tmp / "slice.parquet"
        rows_slice = min(args.slice_rows, copies * base.num_rows)
        pf = pq.ParquetFile(files[0])
        with pq.ParquetWriter(slice_path, pf.schema_arrow, compression="snappy") as w:
            got = 0
            for rb in pf.iter_batches(batch_size=1000):
                rb = rb.slice(0, min(rb.num_rows, rows_slice - got))
                w.write_batch(rb, row_group_size=1000)
                got += rb.num_rows
                if got >= rows_slice:
                    break
        slice_text_bytes = sum(len(t.encode()) for t in pq.read_table(slice_path, columns=["text"])["text"].to_pylist())
        prep = run_child(CHILD_PREPARE, str(slice_path), str(tmp / "prepared"), str(args.workers))
        total_text_bytes = text_bytes_per_copy * copies * args.files
        prepare_full_s = prep["seconds"] * total_text_bytes / slice_text_bytes

    print()
    print(
        f"estimate : {est['estimate_s']:.2f} s (+ {est['import_s']:.2f} s imports) for {size / 1e9:.2f} GB, "
        f"{args.files} files ({args.files // 2 + args.files % 2} with token_count)"
    )
    print(
        f"           {tot['est_tokens']:,} tokens estimated vs {true_tokens:,} true: {err:+.3%}, "
        f"true value {'inside' if inside else 'OUTSIDE'} the 95% interval"
    )
    print(
        f"prepare  : {prep['seconds']:.1f} s for a {rows_slice:,}-row slice ({prep['tokens'] / prep['seconds'] / 1e6:.2f}M tok/s, "
        f"{args.workers} workers) -> ~{prepare_full_s:.0f} s for all {total_text_bytes / 1e9:.2f} GB of text"
    )
    print(f"ratio    : estimate / prepare = {est['estimate_s'] / prepare_full_s:.3%} (goal < 1%)")


if __name__ == "__main__":
    main()
