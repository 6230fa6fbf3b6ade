"""Benchmark: `prepare --dedup near` against plain `prepare --dedup none` on the same input.

Prints both times and the ratio (goal: dedup costs < 25% extra, i.e. ratio < 1.25). Runs
alternate, best of --repeats each, every run in a fresh process. The input is the bundled real
FineWeb sample repeated with fresh ids (later copies word-shuffled, so they are new documents),
one in 20 documents replaced by a word-edited copy of the one before, so there is real clustering work to do.

    python bench/dedup_bench.py [--copies 4] [--repeats 3]
    python bench/dedup_bench.py --copies 1 --files 1000 --repeats 1   # the same rows as 1,000 small files

--files N cuts the input into N files (one or a few rows each, in a directory): the per-file
cost of --dedup near's first pass, which works file by file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CHILD = r"""
import json, sys, time
from fwpipe.pipeline.prepare import PrepareOptions, prepare
from fwpipe.tokenizer import get_encoding
get_encoding()
t0 = time.perf_counter()
s = prepare([sys.argv[1]], sys.argv[2], options=PrepareOptions(dedup=sys.argv[3]), progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "docs": s["docs"], "tokens": s["tokens"], "dedup": s["dedup"]}))
"""


def make_input(path: Path, copies: int) -> None:
    from fwpipe.sample import SAMPLE_FILES

    texts = [t for f in SAMPLE_FILES for t in pq.read_table(f, columns=["text"])["text"].to_pylist()]
    rng = random.Random(0)
    out_t, out_id = [], []
    for c in range(copies):
        for k, t in enumerate(texts):
            words = t.split(" ")
            if c:  # later copies shuffle the words: new 5-gram shingles, same tokenizing work
                rng.shuffle(words)
            if rng.random() < 0.05:  # and one in 20 becomes a near copy of the previous document
                words = out_t[-1].split(" ") if out_t else words
                words = [w if rng.random() > 0.02 else rng.choice(words) for w in words]
            out_t.append(" ".join(words))
            out_id.append(f"doc-{c}-{k}")
    pq.write_table(pa.table({"text": out_t, "id": out_id}), path, row_group_size=1000)


def run(src: Path, out: Path, mode: str) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(src), str(out), mode], capture_output=True, text=True)
    if r.returncode:
        sys.exit(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--files", type=int, default=0, help="cut the input into this many files (0: one file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "in.parquet"
        make_input(src, args.copies)
        if args.files:  # the same rows as N files in a directory, in order
            t = pq.read_table(src)
            d = tmp / "in"
            d.mkdir()
            step = -(-t.num_rows // args.files)
            for i in range(0, t.num_rows, step):
                pq.write_table(t.slice(i, step), d / f"part-{i // step:06d}.parquet")
            src = d
        n_files = len(list(src.glob("*.parquet"))) if args.files else 1
        plain, near = [], []
        for r in range(args.repeats):
            plain.append(run(src, tmp / f"plain{r}", "none"))
            near.append(run(src, tmp / f"near{r}", "near"))
    p = min(plain, key=lambda m: m["seconds"])
    n = min(near, key=lambda m: m["seconds"])
    files = f" in {n_files:,} files" if args.files else ""
    print(f"cores: {os.cpu_count()}; input: {p['docs']:,} docs, {p['tokens']:,} tokens{files}")
    print(f"prepare --dedup none: {p['seconds']:.2f} s")
    print(
        f"prepare --dedup near: {n['seconds']:.2f} s, removed {n['dedup']['removed_docs']:,} docs in {n['dedup']['clusters']:,} clusters"
    )
    print(f"ratio near / none: {n['seconds'] / p['seconds']:.3f}   (goal < 1.25)")


if __name__ == "__main__":
    main()
