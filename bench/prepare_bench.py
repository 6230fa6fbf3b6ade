"""Benchmark: `fwpipe prepare` end to end against the fastest bare tiktoken call, same texts, same cores.

Prints tokens/s of both and their ratio (goal >= 0.90), and prepare's peak RSS on inputs of 1x
and 4x the size (goal: growth < 10%). Each measurement runs in a fresh process so that peak RSS
is its own. Inputs are real FineWeb documents (the bundled sample) repeated with fresh ids into
parquet files of FineWeb's schema and row-group size.

    python bench/prepare_bench.py [--copies 16] [--workers N] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve()
CHILD = r"""
import json, resource, sys, time
mode, src, out, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if mode == "tiktoken":
    from concurrent.futures import ThreadPoolExecutor
    import pyarrow.parquet as pq
    from fwpipe.tokenizer import get_encoding
    enc = get_encoding()
    texts = pq.read_table(src, columns=["text"])["text"].to_pylist()
    enc.encode_to_numpy("warm up")
    chunks = [texts[i:i + 256] for i in range(0, len(texts), 256)]
    def work(chunk):
        return sum(len(enc.encode_to_numpy(t, disallowed_special=())) for t in chunk)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        n = sum(pool.map(work, chunks))
    dt = time.perf_counter() - t0
else:
    from fwpipe.pipeline.prepare import PrepareOptions, prepare
    from fwpipe.tokenizer import get_encoding
    get_encoding()
    t0 = time.perf_counter()
    # --dedup none: this measures the tokenizing pipeline; bench/dedup_bench.py prices dedup
    s = prepare([src], out, options=PrepareOptions(dedup="none"), workers=workers, progress=False)
    dt = time.perf_counter() - t0
    n = s["tokens"]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"tokens": n, "seconds": dt, "peak_rss": rss}))
"""


def make_input(path: Path, sample_files: list[Path], copies: int) -> None:
    """FineWeb-schema parquet: the sample's documents `copies` times, each copy with new ids."""
    base = pa.concat_tables([pq.read_table(f, columns=["text", "id", "url"]) for f in sample_files])
    texts, ids = base["text"].to_pylist(), base["id"].to_pylist()
    with pq.ParquetWriter(path, pa.schema([("text", pa.large_string()), ("id", pa.large_string())]), compression="snappy") as w:
        for c in range(copies):
            new_ids = [f"{i or 'row'}-{c}-{k}" for k, i in enumerate(ids)]
            w.write_table(pa.table({"text": pa.array(texts, pa.large_string()), "id": pa.array(new_ids, pa.large_string())}), row_group_size=1000)


def run_child(mode: str, src: Path, out: Path, workers: int) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, mode, str(src), str(out), str(workers)], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"bench child failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    from fwpipe.sample import SAMPLE_FILES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=16, help="copies of the sample in the 1x input (16 = ~37M tokens)")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs of each; the best is reported")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        x1, x4 = tmp / "x1.parquet", tmp / "x4.parquet"
        make_input(x1, SAMPLE_FILES, args.copies)
        make_input(x4, SAMPLE_FILES, 4 * args.copies)
        # alternate the two, best of --repeats each: the machine is shared and noisy, and the
        # best run is the one least disturbed by others
        bares, ours = [], []
        for r in range(args.repeats):
            bares.append(run_child("tiktoken", x1, tmp / "unused", args.workers))
            ours.append(run_child("prepare", x1, tmp / f"out1-{r}", args.workers))
        bare = min(bares, key=lambda m: m["seconds"])
        ours1 = min(ours, key=lambda m: m["seconds"])
        ours4 = run_child("prepare", x4, tmp / "out4", args.workers)
    bare_tps = bare["tokens"] / bare["seconds"]
    ours_tps = ours1["tokens"] / ours1["seconds"]
    assert bare["tokens"] == ours1["tokens"], "prepare and tiktoken disagree on the token count"
    print(f"cores: {os.cpu_count()}, workers: {args.workers}, 1x input: {ours1['tokens']:,} tokens")
    print(f"bare tiktoken encode_to_numpy, {args.workers} threads: {bare_tps / 1e6:6.2f}M tokens/s")
    print(f"fwpipe prepare end to end (parquet -> shards): {ours_tps / 1e6:6.2f}M tokens/s")
    print(f"ratio prepare / tiktoken: {ours_tps / bare_tps:.3f}   (goal >= 0.90)")
    growth = ours4["peak_rss"] / ours1["peak_rss"] - 1
    print(f"peak RSS: 1x {ours1['peak_rss'] / 2**20:.0f} MiB, 4x {ours4['peak_rss'] / 2**20:.0f} MiB, growth {100 * growth:+.1f}%   (goal < 10%)")
    print(f"4x throughput: {ours4['tokens'] / ours4['seconds'] / 1e6:.2f}M tokens/s")


if __name__ == "__main__":
    main()
