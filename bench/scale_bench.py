"""Benchmark: memory and speed of `fwpipe audit` and `fwpipe prepare --dedup near` as the
document count grows.

Generates N documents, runs each command in a child process, and prints its peak RSS (the
child's VmHWM, read by the child at exit), bytes per document, documents/s and tokens/s, at each size, then the
marginal bytes per document between the smallest and largest size (flat cost: the same figure
at every size). Goal: audit on 15M short documents and prepare --dedup near on 5M documents
each under 2 GB peak RSS.

Audit input: llm.c shards of random token ids, "short" documents (20-60 tokens, mean 40) or
"fineweb" ones (log-normal lengths, median ~500 tokens, like FineWeb's); 1% of documents are
exact copies and 1% edited copies (last tokens changed) of earlier ones, so the duplicate
stages have work. Prepare input: parquet of word soup (~40 tokens a document), same copies.

    python bench/scale_bench.py --audit-docs 1e6,15e6 --prepare-docs 1e6,5e6
    python bench/scale_bench.py --audit-docs 1e5,1e6 --prepare-docs 1e5,3e5 --kind fineweb   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EOT = 50256
SHARD_TOKENS = 100_000_000


def _lengths(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "short":
        return rng.integers(20, 61, n)
    return np.clip(rng.lognormal(np.log(500), 1.0, n), 16, 20_000).astype(np.int64)


def make_shards(root: Path, n: int, kind: str, seed: int = 0) -> int:
    """llm.c shards (EOT before every document) holding n documents; returns the token count."""
    from fwpipe.shards import write_shard

    rng = np.random.default_rng(seed)
    lengths = _lengths(n, kind, rng)
    root.mkdir(parents=True)
    total, k, d0 = 0, 0, 0
    while d0 < n:
        d1 = d0 + max(1, int(np.searchsorted(np.cumsum(lengths[d0:] + 1), SHARD_TOKENS)))
        d1 = min(d1, n)
        ls = lengths[d0:d1]
        toks = rng.integers(0, EOT, int(ls.sum() + len(ls))).astype(np.uint16)
        starts = np.concatenate([[0], np.cumsum(ls[:-1] + 1)])
        toks[starts] = EOT
        # copies: 1% exact, 1% edited (last 2 tokens replaced), of the previous document
        for j in np.flatnonzero(rng.random(len(ls)) < 0.02):
            if j == 0 or ls[j] != ls[j - 1]:
                continue
            toks[starts[j] + 1 : starts[j] + 1 + ls[j]] = toks[starts[j - 1] + 1 : starts[j - 1] + 1 + ls[j]]
            if rng.random() < 0.5:
                toks[starts[j] + ls[j] - 1 : starts[j] + ls[j] + 1] = rng.integers(0, EOT, 2)
        write_shard(root / f"bench_train_{k:06d}.bin", toks)
        total += len(toks)
        k, d0 = k + 1, d1
    return total


def make_parquet(root: Path, n: int, seed: int = 0) -> None:
    """Parquet files of n word-soup documents (~30 words), 2% copies, 500K rows a file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    words = np.array(
        (
            "the of and to in is that for it as was with be by on not he this are or his from at which "
            "but have an they you were her she there been one all we their has would when if so no more "
            "water garden city river market school music light paper story table window history"
        ).split()
    )
    root.mkdir(parents=True)
    for f, lo in enumerate(range(0, n, 500_000)):
        m = min(n, lo + 500_000) - lo
        idx = rng.integers(0, len(words), (m, 30))
        texts = [" ".join(r) + f" {lo + i}" for i, r in enumerate(words[idx])]  # the number keeps them distinct
        for j in np.flatnonzero(rng.random(m) < 0.02)[1:]:
            texts[j] = texts[j - 1] if rng.random() < 0.5 else texts[j - 1] + " end"
        pq.write_table(
            pa.table({"text": texts, "id": [f"b{lo + i}" for i in range(m)]}),
            root / f"part-{f:04d}.parquet",
            row_group_size=50_000,
        )


# The child writes its own peak (VmHWM: the high-water mark of its memory after exec) at exit.
# Not ru_maxrss from wait4 / RUSAGE_CHILDREN: Linux carries into it the RSS the child had
# between fork and exec, i.e. this parent's, which made the figures follow the size of the data
# this script had generated (1.00 GB reported where the audit itself peaked at 0.66 GB).
CHILD = """
import atexit, os, sys
def _peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(os.environ["FWPIPE_BENCH_PEAK"], "w").write(line.split()[1])
atexit.register(_peak)
from fwpipe.cli import main
main()
"""


def _run(args: list[str]) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of `fwpipe args` in a child process."""
    with tempfile.NamedTemporaryFile("r") as peak:
        t0 = time.perf_counter()
        p = subprocess.run(
            [sys.executable, "-c", CHILD, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "FWPIPE_BENCH_PEAK": peak.name},
        )
        seconds = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"fwpipe {' '.join(args)} failed:\n{p.stderr.decode(errors='replace')[-2000:]}")
        return seconds, int(peak.read()) * 1024  # VmHWM is in kB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--audit-docs", default="1e5,1e6", help="comma-separated document counts for audit")
    ap.add_argument(
        "--prepare-docs", default="1e5,3e5", help="comma-separated document counts for prepare --dedup near"
    )
    ap.add_argument("--kind", choices=["short", "fineweb"], default="short", help="audit document lengths")
    ap.add_argument("--memory-gb", default=None, help="passed to both commands")
    ap.add_argument("--tmp", default=None, help="where to generate data (default: system temp)")
    ap.add_argument("--json", default=None, help="also write the rows as JSON")
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fwpipe-scale-", dir=a.tmp))
    extra = ["--memory-gb", a.memory_gb] if a.memory_gb else []
    rows = []
    try:
        for n in [int(float(x)) for x in a.audit_docs.split(",") if x]:
            d = base / f"audit-{n}"
            tokens = make_shards(d, n, a.kind)
            secs, rss = _run(["audit", str(d), "--json", str(base / f"audit-{n}.json"), *extra])
            rows.append(
                {"command": "audit", "kind": a.kind, "docs": n, "tokens": tokens, "seconds": secs, "peak_rss": rss}
            )
            _print(rows[-1])
            shutil.rmtree(d)
        for n in [int(float(x)) for x in a.prepare_docs.split(",") if x]:
            d = base / f"pq-{n}"
            make_parquet(d, n)
            out = base / f"prep-{n}"
            secs, rss = _run(
                ["prepare", str(d), "-o", str(out), "--dedup", "near", "--json", str(base / f"prep-{n}.json"), *extra]
            )
            s = json.loads((base / f"prep-{n}.json").read_text())
            tokens = s["splits"]["train"]["tokens"] + s["splits"]["val"]["tokens"] + s["dedup"]["removed_tokens"]
            rows.append(
                {
                    "command": "prepare --dedup near",
                    "kind": "words",
                    "docs": n,
                    "tokens": tokens,
                    "seconds": secs,
                    "peak_rss": rss,
                    "removed_docs": s["dedup"]["removed_docs"],
                }
            )
            _print(rows[-1])
            shutil.rmtree(d)
            shutil.rmtree(out)
        for cmd in ("audit", "prepare --dedup near"):
            r = [x for x in rows if x["command"] == cmd]
            if len(r) >= 2:
                marg = (r[-1]["peak_rss"] - r[0]["peak_rss"]) / (r[-1]["docs"] - r[0]["docs"])
                print(
                    f"{cmd}: marginal {marg:,.0f} bytes/document from {r[0]['docs']:,} to {r[-1]['docs']:,} documents"
                )
        if a.json:
            Path(a.json).write_text(json.dumps(rows, indent=1))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _print(r: dict) -> None:
    print(
        f"{r['command']:<22} {r['kind']:<8} {r['docs']:>11,} docs {r['tokens']:>14,} tokens {r['seconds']:8.1f} s  "
        f"peak RSS {r['peak_rss'] / 2**30:6.2f} GB  {r['peak_rss'] / r['docs']:8,.0f} B/doc  "
        f"{r['docs'] / r['seconds']:>10,.0f} docs/s  {r['tokens'] / r['seconds'] / 1e6:7.2f} M tokens/s",
        flush=True,
    )


if __name__ == "__main__":
    main()
