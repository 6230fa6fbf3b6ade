"""The plan on paper for the full FineWeb on a Ray cluster (docs/scale.md), from rates measured here.

    python bench/scale_plan.py [--memory-gb 3000] [--tokens 15e12] [--docs 22e9] [--nodes 8,32,128] ...

Part 1 measures, in this one process (numba on one thread), on the real FineWeb rows in
../shared/data, CPU-seconds (time.process_time: steadier than wall time on a shared machine) a
token of each step prepare and audit run over every token; a real prepare + audit quality
section, timed apart from its units, for the driver's own share a document and the files' bytes
a document; and a numpy sort of 8-byte keys (the dedup engine's global stages are such sorts).
Kernel rates come from the 1,400-document file (2.2M tokens: steadier timings), the quality
rules' from fineweb-first150 (695 tokens a document, FineWeb's mean is ~682).
Part 2 scales them to --tokens / --docs, says where each stage runs (cluster tasks, or the
driver alone), and prints wall time and cost for each --nodes. Every input that is not measured
is an argument whose help says where its default comes from.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # CPU-seconds of the work, not of threads waiting on each other
import numpy as np  # noqa: E402
import pyarrow as pa
import pyarrow.parquet as pq

from fwpipe import kernels as K
from fwpipe.audit.corpus import index
from fwpipe.audit.leakage import MAX_VAL_NGRAMS
from fwpipe.audit.quality import measure_unit, quality, warm
from fwpipe.dataset import open_dataset
from fwpipe.dedup.config import DedupConfig, permutations
from fwpipe.dedup.docs import unique
from fwpipe.dedup.engine import KEY_BYTES, MAX_MEMBERS, UNIT_DOCS
from fwpipe.executors.base import Inline
from fwpipe.pipeline.options import PrepareOptions
from fwpipe.pipeline.prepare import prepare
from fwpipe.pipeline.units import UNIT_BYTES
from fwpipe.quality.config import QualityConfig
from fwpipe.tokenizer import EOT, encode_batch, forget_engine

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fineweb"
FILES = ("fineweb-first150.parquet", "fineweb-sample10bt-1400.parquet")
TOKENIZE, MINHASH = "tokenize (gigatoken, cold cache)", "MinHash signatures + band keys"
INDEX, TOTALS, EXACT = "index (doc_bounds)", "totals (token_histogram)", "exact (doc_hashes)"
PROBE, QUALITY = "leakage (13-gram probe, 16M-entry table)", "quality signals (decode, rules, language)"


def cpu(fn, rounds: int = 3, min_s: float = 0.2) -> float:
    """Best, over `rounds`, of the CPU-seconds one call of fn takes (each round repeats fn for min_s)."""
    best = math.inf
    for _ in range(rounds):
        n, t0 = 0, time.process_time()
        while n == 0 or time.process_time() - t0 < min_s:
            fn()
            n += 1
        best = min(best, (time.process_time() - t0) / n)
    return best


def probe_cpu(toks: np.ndarray, s: np.ndarray, e: np.ndarray) -> float:
    """CPU-seconds of audit's 13-gram probe over these documents, against a val set at leakage's
    cap (MAX_VAL_NGRAMS): every 200th document's n-grams (0.5% as val) padded with random hashes to
    the size a full corpus fills, so the probe misses the CPU caches as it would at scale."""
    h, _ = K.window_hashes(toks, s[::200], e[::200], 13, False)
    pad = np.random.default_rng(0).integers(1, 2**63, MAX_VAL_NGRAMS - len(h), dtype=np.uint64)
    table = K.hashset_build(unique(np.concatenate([h, pad])))
    bits, hit = K.hashset_filter(table), np.zeros(len(table), np.uint8)
    return cpu(lambda: K.ngram_probe(toks, s, e, 13, table, bits, hit))


def measure(path: Path, with_quality: bool) -> dict:
    """CPU-seconds a token of each step over every token, on one parquet file's documents."""
    texts = pq.read_table(path, columns=["text"]).column("text").combine_chunks().cast(pa.string())  # polars: large

    def cold_encode():  # a fresh engine each time: gigatoken caches the text it has seen
        forget_engine()
        encode_batch(texts[:1], "gigatoken")  # builds and self-checks the engine (not timed below)
        t0 = time.process_time()
        out = encode_batch(texts, "gigatoken")
        return time.process_time() - t0, out

    tok_s, (ids, offs) = min((cold_encode() for _ in range(3)), key=lambda r: r[0])
    n_docs, n_tok = len(offs) - 1, int(offs[-1])
    toks = np.insert(ids.astype(np.uint16), offs[:-1], EOT)  # the shard layout: EOT before each document
    s = offs[:-1] + np.arange(n_docs) + 1
    e = offs[1:] + np.arange(n_docs) + 1
    cfg = DedupConfig()
    a, b = permutations(cfg.num_perm, cfg.seed)
    K.minhash_signatures(toks, s[:2], e[:2], cfg.shingle, a, b)  # numba: load before timing
    per_tok = {
        TOKENIZE: tok_s,
        MINHASH: cpu(
            lambda: K.signature_keys(K.minhash_signatures(toks, s, e, cfg.shingle, a, b), cfg.bands, cfg.rows)
        ),
        INDEX: cpu(lambda: K.doc_bounds(toks, EOT)),
        TOTALS: cpu(lambda: K.token_histogram(toks, 50257)),
        EXACT: cpu(lambda: K.doc_hashes(toks, s, e)),
        PROBE: probe_cpu(toks, s, e),
    }
    if with_quality:  # the quality rules as one unit of a worker's
        warm()
        t0 = time.process_time()
        measure_unit((None, toks), s, e, "train", 0, [None] * n_docs, QualityConfig(), True)
        per_tok[QUALITY] = time.process_time() - t0
    return {
        "docs": n_docs,
        "tokens": n_tok,
        "cpu_per_token": {k: v / n_tok for k, v in per_tok.items()},
        "parquet_bytes_per_token": path.stat().st_size / n_tok,
        "text_bytes_per_token": len(texts.buffers()[2]) / n_tok,
    }


class Timed(Inline):
    """Runs the units in this process, counting the CPU-seconds inside them: the rest of the
    caller's time is the driver's own, which no number of nodes shares."""

    remote = True  # as Ray's: sized() keeps it

    def __init__(self):
        self.unit_s = 0.0

    def map(self, fn, units, *, window=None):
        for args in units:
            t0 = time.process_time()
            out = fn(*args)
            self.unit_s += time.process_time() - t0
            yield out


def audit_quality(src: Path) -> dict:
    """`prepare --dedup none --workers 1` of a parquet file, then audit's quality section on it:
    docs.parquet and quality.parquet bytes a document, the units' CPU-seconds a token, and the
    driver's own CPU-seconds a document (the units' tables gathered in order, the tallies,
    quality.parquet written)."""
    with tempfile.TemporaryDirectory() as tmp:
        ds = Path(tmp) / "ds"
        prepare([src], ds, options=PrepareOptions(dedup="none"), workers=1, progress=False)
        corpus = index(open_dataset(ds))
        warm()
        ex, t0 = Timed(), time.process_time()
        quality(corpus, QualityConfig(), ds / "quality.parquet", executor=ex)
        n = corpus.n_docs
        return {
            "n": n,
            "docs": (ds / "docs.parquet").stat().st_size / n,
            "quality": (ds / "quality.parquet").stat().st_size / n,
            "unit_per_token": ex.unit_s / int(corpus.lengths.sum()),
            "driver_per_doc": (time.process_time() - t0 - ex.unit_s) / n,
        }


def cut(path: Path, out: Path, chars: int = 600) -> None:
    """The file's text in pieces of `chars` characters (ids `<id>/k`, the url kept): many documents
    for the same text, so the quality section's fixed costs weigh little in the driver's share
    a document (their bytes a document are not FineWeb's: ids and urls repeat)."""
    rows = pq.read_table(path, columns=["text", "id", "url"]).to_pylist()
    pieces = [
        {"text": r["text"][i : i + chars], "id": f"{r['id']}/{i // chars}", "url": r["url"]}
        for r in rows
        for i in range(0, len(r["text"]), chars)
    ]
    pq.write_table(pa.Table.from_pylist(pieces), out)


def plan(r: dict, files: dict, sort_s: float, args) -> None:
    """Part 2: the measured rates r (CPU-seconds a token) scaled to --tokens / --docs."""
    T, D = args.tokens, args.docs
    tb = lambda x: f"{x / 1e12:,.1f} TB"  # noqa: E731
    sort_n = sort_s * math.log2(D) / math.log2(1e7)  # per element: n log n from the 1e7-key measurement
    passes = lambda *ks: T * sum(r[k] for k in ks)  # noqa: E731
    bands = DedupConfig().bands
    global_sorts = D * (2 + bands) * sort_n  # exact hashes, full signature keys, each band: a sort of D keys
    scratch = 8 * (bands + 1)  # B/doc of dedup scratch: the band keys and the full key (README)
    in_bytes = T * args.parquet_bytes_per_token
    # (stage, where, CPU-seconds, runs on many threads, bytes read + written by those doing it).
    # Tokens are 2 bytes; the assembly and copy stages' CPU is not measured (they copy bytes: 0 here)
    stages = [
        ("prepare: fetch + tokenize to units", "cluster", T * r[TOKENIZE] / args.prepare_share, True, in_bytes + 2 * T),
        # the driver appends each unit's tokens to the open shard as units finish (the disk peak's
        # price): every shard byte passes through it
        ("prepare: assemble first-pass shards", "driver", 0.0, True, 4 * T),
        ("prepare: MinHash (--dedup near)", "cluster", T * r[MINHASH], True, 2 * T + scratch * D),
        ("prepare: plan: index + exact hashes", "driver", passes(INDEX, EXACT), True, 2 * 2 * T),
        (f"prepare: plan: {2 + bands} sorts + union-find", "driver", global_sorts, False, scratch * D),
        ("prepare: copy kept + assemble shards", "driver", 0.0, True, 8 * T),
        ("audit: index, totals, exact, 13-gram probe", "driver", passes(INDEX, TOTALS, EXACT, PROBE), True, 4 * 2 * T),
        ("audit: MinHash", "cluster", T * r[MINHASH], True, 2 * T + scratch * D),
        (f"audit: {2 + bands} sorts + union-find", "driver", global_sorts, False, scratch * D),
    ]
    stages += [  # with --no-quality, audit skips these two
        ("audit: quality signals", "cluster", T * r[QUALITY], True, 2 * T),
        ("audit: quality tables, in order, to 1 file", "driver", D * files["quality_drv"], False, D * files["quality"]),
    ]
    print(f"\n== Part 2: {T:.3g} tokens, {D:.3g} documents ({T / D:.0f} tokens a document)")
    print(f"{'stage':<44} {'where':<8} {'CPU-hours':>10} {'I/O':>9} {'driver h':>9}")

    def hours(stage, n):
        """Wall hours of a stage: on the driver (its numba passes on all its cores, numpy's sorts
        and Python on one), or on n nodes; the slower of CPU and bytes."""
        _, where, c, par, byt = stage
        if where == "driver":
            return max(c / (args.driver_cores if par else 1), byt / (args.driver_read_gbs * 1e9)) / 3600
        bw = min(n * args.node_gbps / 8, args.storage_gbs) * 1e9  # the nodes' links, or the storage
        return max(c / (n * args.node_cores * args.util), byt / bw) / 3600

    for st in stages:
        h = f"{hours(st, 1):,.1f}" if st[1] == "driver" else ""
        print(f"{st[0]:<44} {st[1]:<8} {st[2] / 3600:>10,.0f} {tb(st[4]):>9} {h:>9}")
    print(f"\n{'':>6} {'with the quality section':^44}  {'audit --no-quality':^33}")
    print(f"{'nodes':>6}" + f" {'driver h':>8} {'cluster h':>9} {'total h':>8} {'$ held':>8} {'$ released':>10}" * 2)
    for n in args.nodes:
        line = f"{n:>6}"
        for todo in (stages, stages[:-2]):
            drv = sum(hours(st, n) for st in todo if st[1] == "driver")
            clu = sum(hours(st, n) for st in todo if st[1] == "cluster")
            held = (clu + drv) * (n * args.node_usd_h + args.driver_usd_h)
            released = clu * n * args.node_usd_h + (clu + drv) * args.driver_usd_h  # nodes only while they work
            line += f" {drv:>8,.1f} {clu:>9,.1f} {clu + drv:>8,.1f} {held:>8,.0f} {released:>10,.0f}"
        print(line)
    print("\nthe driver's global stages:")
    for what, bpd in (("audit", args.audit_bytes_per_doc), ("prepare --dedup near", args.prepare_bytes_per_doc)):
        print(f"  {what}: {bpd:.0f} B/doc x {D:.3g} docs = {tb(bpd * D)} resident")
    print(f"  union-find parent + group arrays alone: 16 B/doc = {tb(16 * D)}; one array of 8-byte keys: {tb(8 * D)}")
    print(
        f"  pair code left*m+right in int64: exceeds 2**63 above m = {math.isqrt(2**63):,} documents"
        f" (refused above engine.MAX_MEMBERS = {MAX_MEMBERS:,}: {D / MAX_MEMBERS:.1f} parts at --docs)"
    )
    print(f"  dedup scratch, each of prepare and audit: {scratch} B/doc = {tb(scratch * D)}")
    for gb in sorted({1.0, args.memory_gb}):  # fwpipe's default, and the one asked for
        ranges = 2 ** math.ceil(math.log2(max(1.0, KEY_BYTES * D / (gb * 2**30))))
        print(
            f"  bucketing at --memory-gb {gb:g}: {ranges} key range(s) a band, each re-reading the band's keys:"
            f" {tb(9 * ranges * 8 * D)} read (engine.KEY_BYTES = {KEY_BYTES} B a group)"
        )
    print(
        f"  work units: prepare {in_bytes / UNIT_BYTES:,.0f}, signature {D / UNIT_DOCS:,.0f},"
        f" quality {T / (1 << 19):,.0f}; 100M-token shards {T / 1e8:,.0f}"
    )
    final = 2 * T + D * files["docs"]
    print(
        f"  disk: input {tb(in_bytes)}, final shards {tb(2 * T)}, docs.parquet {tb(D * files['docs'])},"
        f" quality.parquet {tb(D * files['quality'])}; prepare's peak at --disk-peak {args.disk_peak:g}x"
        f" the dataset: {tb(args.disk_peak * final)}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--tokens", type=float, default=15e12, help="FineWeb's published size (dataset card: 15T GPT-2 tokens)"
    )
    ap.add_argument("--docs", type=float, default=22e9, help="FineWeb's documents (~22B, as the issue states it)")
    ap.add_argument("--nodes", default="8,32,128", help="cluster sizes to price")
    ap.add_argument("--node-cores", type=int, default=64, help="vCPUs a node (assumed: one does a core's work here)")
    ap.add_argument(
        "--node-usd-h", type=float, default=3.23, help="assumption: AWS m7i.16xlarge on-demand, us-east-1, 2024 list"
    )
    ap.add_argument(
        "--driver-usd-h", type=float, default=26.7, help="assumption: AWS x2iedn.32xlarge (4 TB), on-demand, 2024 list"
    )
    ap.add_argument("--node-gbps", type=float, default=25.0, help="assumption: a node's network, Gbit/s (m7i.16xlarge)")
    ap.add_argument(
        "--storage-gbs", type=float, default=20.0, help="assumption: GB/s the shared storage serves, all nodes"
    )
    ap.add_argument("--driver-cores", type=int, default=128, help="the driver node's vCPUs (x2iedn.32xlarge)")
    ap.add_argument(
        "--driver-read-gbs", type=float, default=1.0, help="assumption: GB/s the driver reads from shared storage"
    )
    ap.add_argument(
        "--util", type=float, default=0.8, help="assumption: share of the cluster's cores busy (waves, stragglers)"
    )
    ap.add_argument(
        "--memory-gb",
        type=float,
        default=1.0,
        help="the dedup engine's --memory-gb to plan for (fwpipe's default, 1, is shown too)",
    )
    ap.add_argument(
        "--parquet-bytes-per-token",
        type=float,
        default=None,
        help="input bytes a token (default: measured, text column only)",
    )
    ap.add_argument(
        "--prepare-share", type=float, default=0.60, help="prepare / bare gigatoken, README (prepare_bench, long)"
    )
    ap.add_argument(
        "--audit-bytes-per-doc",
        type=float,
        default=44,
        help="README, Memory and the dedup engine: scale_bench, audit 1M-15M",
    )
    ap.add_argument(
        "--prepare-bytes-per-doc",
        type=float,
        default=45,
        help="README, Memory and the dedup engine: scale_bench, prepare --dedup near 1M-5M (43 B/doc; its plan ~45)",
    )
    ap.add_argument(
        "--disk-peak",
        type=float,
        default=1.3,
        help="prepare's peak disk over the dataset it leaves: README, prepare's Disk (disk_bench, 4 inputs; ~2 for 1)",
    )
    args = ap.parse_args()
    args.nodes = [int(x) for x in args.nodes.split(",")]

    print("== Part 1: measured here, one process, CPU-seconds (shared machine: load in the doc)")
    ms = {f: measure(SHARED / f, with_quality=f == FILES[0]) for f in FILES}
    real = audit_quality(SHARED / FILES[1])
    ms[FILES[1]]["cpu_per_token"][QUALITY] = real["unit_per_token"]
    with tempfile.TemporaryDirectory() as tmp:
        cut(SHARED / FILES[1], Path(tmp) / "pieces.parquet")
        pieces = audit_quality(Path(tmp) / "pieces.parquet")
    for f, m in ms.items():
        print(f"\n{f}: {m['docs']} docs, {m['tokens']:,} tokens ({m['tokens'] / m['docs']:.0f} a doc)")
        for k, v in m["cpu_per_token"].items():
            print(f"  {k:<44} {v * 1e9:9.1f} ns/token  {1 / v / 1e6:8.2f} M tokens/CPU-s")
        print(
            f"  parquet {m['parquet_bytes_per_token']:.2f} B/token (text {m['text_bytes_per_token']:.2f} B/token raw)"
        )
    print("\nprepare --dedup none, then audit's quality section (units inline, timed apart from the driver):")
    for what, q in ((f"{FILES[1]}", real), (f"the same text cut into {pieces['n']:,} documents", pieces)):
        print(f"  {what}: docs.parquet {q['docs']:.0f} B/doc, quality.parquet {q['quality']:.0f} B/doc,")
        print(f"    driver's own share {q['driver_per_doc'] * 1e6:.1f} us/doc")
    keys = np.random.default_rng(1).integers(0, 2**64 - 1, 10**7, dtype=np.uint64)
    sort_s = cpu(lambda: np.sort(keys), rounds=3, min_s=0) / len(keys)
    print(f"numpy sort of 1e7 uint64: {sort_s * 1e9:.1f} ns/element")
    # the plan's rates: the kernels' from the larger file (2.2M tokens: steadier timings); the
    # quality rules' from first150, whose documents have FineWeb's mean length (their cost a
    # token depends on it: the language model reads at most 10,000 characters a document)
    big, typical = ms[FILES[1]], ms[FILES[0]]
    r = {**big["cpu_per_token"], QUALITY: typical["cpu_per_token"][QUALITY]}
    if args.parquet_bytes_per_token is None:
        args.parquet_bytes_per_token = big["parquet_bytes_per_token"]
    files = {"docs": real["docs"], "quality": real["quality"], "quality_drv": pieces["driver_per_doc"]}
    plan(r, files, sort_s, args)


if __name__ == "__main__":
    main()
