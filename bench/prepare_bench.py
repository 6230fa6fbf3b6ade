"""Benchmark: `fwpipe prepare` against bare tiktoken and gigatoken on the same texts and cores, and its start-up.

The ceiling is the issue's: tiktoken `encode_to_numpy(text)` once per document on N threads of
one process (tiktoken releases the GIL while it encodes), over the same texts, read into memory
first. Also printed, not used for the ratios: the same calls on N processes (no GIL at all).

Candidates, each a ratio of tokens/s against the ceiling measured in the same round (rounds
alternate ceiling and candidates, because the machine is shared; the median round is reported):

  prepare     `prepare(FILE, dedup="none", workers=N)` (what `fwpipe prepare --dedup none` runs) in a
              fresh process, after start-up: the process first prepares a two-document file, which
              pays the imports, the encoding and the kernels' loading, then the timed run
  chunks/thr  encode_chunk (prepare's per-chunk work) on N threads of one process
  chunks/proc encode_chunk on N processes, each unit (~1/8 of a worker's share, whole row groups)
              reading its own rows from the parquet file (what a process-pool executor of work units
              does, without writing; predicts prepare after that change)

Each ratio is printed twice: of tokens/s (what a user sees; noisy while others share the cores)
and of CPU efficiency, the ceiling's CPU seconds over the candidate's for the same tokens (steadier
under contention, though not immune: two threads fighting over shared cores burn more CPU; it
equals the tokens/s ratio when the candidate keeps N cores as busy as the ceiling does).

Corpora are real FineWeb rows (../shared/data/fineweb, or the bundled copies of the same files):
"long" is the documents as they are, repeated with fresh ids up to --long-mb of text; "short" is
the same documents cut at spaces into pieces of ~200 characters (~45 tokens), fresh ids, up to
--short-docs. The issue's figures use --long-mb 80 --short-docs 525000; the defaults are 1/8 of
that for a quick run (~3 min on 2 shared cores).

Engines (--only engines; the tokenizer engine issue): side by side in each round, on the same
texts and N threads/workers, (a) gigatoken alone (one encode_batch on its own pool of N threads)
vs tiktoken alone (the ceiling above), and (b) prepare with the gigatoken engine vs gigatoken
alone (the new ceiling) and vs prepare with the tiktoken engine (today's prepare), as ratios of
tokens/s and of tokens per CPU-second. --only cache streams --cache-docs documents (short pieces
plus a random id and number each: new text to cache all the way) through the engine's call, one
thread, printing RSS as it goes, with the cache reset on and off.

Also: start-up of a two-document prepare and where it goes, encode_chunk's CPU per short document
against tiktoken's alone at several chunk sizes, peak RSS of prepare on 1x and 4x the
long input (each in a fresh process), and prepare's throughput at 1, 2, ... --max-workers.

    python bench/prepare_bench.py [--long-mb 10] [--short-docs 65000] [--workers 2] [--rounds 3]
    python bench/prepare_bench.py --long-mb 80 --short-docs 525000          # the issue's corpora
    python bench/prepare_bench.py --only startup                            # start-up only
    python bench/prepare_bench.py --only engines --long-mb 80 --short-docs 525000   # gigatoken vs tiktoken, prepare vs both
    python bench/prepare_bench.py --only cache --cache-docs 1e7                 # RSS over 10M documents
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fwpipe.dataset import read_manifest

GOALS = {"long": 0.92, "short": 0.85}
STARTUP_GOAL_S = 0.8
ROW_GROUP_ROWS = 256  # small enough that the chunks/proc candidate's units (a row group each) balance
HEAVY = (
    "torch",
    "polars",
    "matplotlib",
    "scipy",
    "numba",
    "datasketch",
    "tiktoken",
    "pyarrow.compute",
    "pyarrow.dataset",
)

# One child per measurement: a fresh interpreter, so imports, warm-up and peak RSS are its own.
CEILING = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor, ProcessPoolExecutor
import pyarrow.parquet as pq
from fwpipe.tokenizer import get_encoding
src, workers, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
texts = [t for t in pq.read_table(src, columns=["text"])["text"].to_pylist() if t]
enc = get_encoding()
enc.encode_to_numpy("warm up", disallowed_special=())  # cold per-thread regex state otherwise (prepare.py)
def work(chunk):
    c0 = time.process_time()  # a process's own CPU seconds: used where each worker is a process
    return sum(len(enc.encode_to_numpy(t, disallowed_special=())) for t in chunk), time.process_time() - c0
chunks = [texts[i:i + 256] for i in range(0, len(texts), 256)]
pool = (ThreadPoolExecutor if kind == "threads" else ProcessPoolExecutor)(workers)
list(pool.map(work, [["warm up"]] * workers))  # start the workers (fork: they share `texts`)
t0, c0 = time.perf_counter(), time.process_time()
res = list(pool.map(work, chunks, chunksize=1 if kind == "threads" else 8))
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
pool.shutdown()
cpu += sum(r[1] for r in res) if kind == "processes" else 0
print(json.dumps({"tokens": sum(r[0] for r in res), "seconds": dt, "cpu": cpu}))
"""

PREPARE = r"""
import json, resource, sys, time
from fwpipe.pipeline.prepare import PrepareOptions, prepare
src, tiny, out, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
opts = PrepareOptions(dedup="none", tokenizer_engine=sys.argv[5] if len(sys.argv) > 5 else "tiktoken")
prepare([tiny], out + "-tiny", options=opts, workers=workers, progress=False, overwrite=True)  # start-up paid here
def workers_cpu():  # prepare's pool is reaped when it returns: its workers' CPU lands here
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
t0, c0, w0 = time.perf_counter(), time.process_time(), workers_cpu()
s = prepare([src], out, options=opts, workers=workers, progress=False, overwrite=True)
cpu = time.process_time() - c0 + workers_cpu() - w0
print(json.dumps({"tokens": s["tokens"], "seconds": time.perf_counter() - t0, "cpu": cpu}))
"""

CHUNKS = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor, ProcessPoolExecutor
import pyarrow.parquet as pq
from fwpipe.pipeline.split import val_threshold
from fwpipe.pipeline.tokenize import OK, encode_chunk
from fwpipe.tokenizer import get_encoding
src, workers, kind, chunk_rows = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
KW = dict(file_index=0, seed=0, threshold=val_threshold(0.005), cursors=(-1, -1), forced_val=frozenset(), max_doc_tokens=100_000_000)
def warm(_):
    # what a worker process pays once: the encoding, and whatever encode_chunk loads on first use
    get_encoding().encode_to_numpy("warm up", disallowed_special=())
    encode_chunk(["warm up"], ["w"], [None], [None], row0=0, gpos0=0, **KW)
def tokens(pair):
    return sum(int(r.n_tokens[r.status == OK].sum()) for r in pair)
def run_chunks(cols, row0):
    n = 0
    for lo in range(0, len(cols["text"]), chunk_rows):
        sl = slice(lo, lo + chunk_rows)
        n += tokens(encode_chunk(cols["text"][sl], cols["id"][sl], cols["token_count"][sl], cols["url"][sl],
                                 row0=row0 + lo, gpos0=row0 + lo, **KW))
    return n
def row_groups(rgs):
    # what a work unit does: read its own row groups (one footer parse), then tokenize them chunk by chunk
    c0 = time.process_time()
    pf = pq.ParquetFile(src)
    row0 = sum(pf.metadata.row_group(i).num_rows for i in range(rgs[0]))
    t = pf.read_row_groups(rgs, columns=["text", "id", "url"], use_threads=False)
    cols = {k: t[k].to_pylist() for k in ("text", "id", "url")}
    cols["token_count"] = [None] * t.num_rows
    return run_chunks(cols, row0), time.process_time() - c0
pf = pq.ParquetFile(src)
n_rg = pf.metadata.num_row_groups
warm(0)  # on the main thread first, as prepare does (cold per-thread regex state otherwise)
if kind == "threads":  # prepare today: one reader, chunks to N threads
    t = pq.read_table(src, columns=["text", "id", "url"])
    cols = {k: t[k].to_pylist() for k in ("text", "id", "url")}
    cols["token_count"] = [None] * t.num_rows
    pool = ThreadPoolExecutor(workers)
    list(pool.map(warm, range(workers)))
    t0, c0 = time.perf_counter(), time.process_time()
    step = chunk_rows
    n = sum(pool.map(lambda lo: run_chunks({k: v[lo:lo + step] for k, v in cols.items()}, lo), range(0, t.num_rows, step)))
    cpu = time.process_time() - c0
else:
    pool = ProcessPoolExecutor(workers)
    list(pool.map(warm, range(workers)))
    t0, c0 = time.perf_counter(), time.process_time()
    # ~8 units a worker, whole row groups each: balanced, and each unit parses the footer once
    per_unit = max(1, n_rg // (8 * workers))
    res = list(pool.map(row_groups, [list(range(i, min(i + per_unit, n_rg))) for i in range(0, n_rg, per_unit)]))
    n, cpu = sum(r[0] for r in res), sum(r[1] for r in res) + time.process_time() - c0
dt = time.perf_counter() - t0
pool.shutdown()
print(json.dumps({"tokens": n, "seconds": dt, "cpu": cpu}))
"""

# gigatoken alone: one encode_batch over every text on its own thread pool of N threads
# (RAYON_NUM_THREADS, set by the parent), the way it is fastest; CPU is the process's own.
GIGA = r"""
import json, sys, time
import pyarrow.parquet as pq
from fwpipe import tokenizer
src = sys.argv[1]
texts = [t for t in pq.read_table(src, columns=["text"])["text"].to_pylist() if t]
tokenizer.encode_batch(["warm up"] * 64, threads=2)  # threads > 1: its pool (RAYON_NUM_THREADS); builds, self-checks, starts it
t0, c0 = time.perf_counter(), time.process_time()
ids, offsets = tokenizer.encode_batch(texts, threads=2)
print(json.dumps({"tokens": int(offsets[-1]), "seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}))
"""

# gigatoken's cache over a long run: N documents through prepare's call (encode_batch on the
# calling thread, 1,024 a call), each a short real FineWeb piece plus a random 8-letter word and
# a random number, so every document brings new pieces of text to cache (as names, ids and
# numbers do in real text, only more): the worst case for a cache that keeps everything.
CACHE = r"""
import json, sys, time
import numpy as np, pyarrow.parquet as pq
from fwpipe import tokenizer
src, n_docs, reset, every = sys.argv[1], int(float(sys.argv[2])), sys.argv[3], int(float(sys.argv[4]))
if reset == "off":
    tokenizer.CACHE_RESET_BYTES = 1 << 62
pieces = pq.read_table(src, columns=["text"])["text"].to_pylist()
rng = np.random.default_rng(0)
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
tokenizer.encode_batch(["warm up"])
g = tokenizer.gigatoken_engine()
points, t0, c0, tokens, nbytes = [], time.perf_counter(), time.process_time(), 0, 0
for lo in range(0, n_docs, 1024):
    words = rng.integers(97, 123, 1024 * 8, dtype=np.uint8).tobytes().decode()  # 8 random letters a document
    nums = rng.integers(0, 10**10, 1024).tolist()
    batch = [f"{pieces[(lo + i) % len(pieces)]} {words[8 * i:8 * i + 8]} {x}" for i, x in enumerate(nums)]
    tokens += int(tokenizer.encode_batch(batch)[1][-1])
    if (lo // 1024 + 1) % (every // 1024) == 0 or lo + 1024 >= n_docs:
        points.append({"docs": min(lo + 1024, n_docs), "rss": rss(), "resets": g.resets, "seconds": time.perf_counter() - t0})
print(json.dumps({"points": points, "tokens": tokens, "cpu": time.process_time() - c0}))
"""

MICRO = r"""
import json, sys, time
import pyarrow.parquet as pq
from fwpipe.pipeline.split import val_threshold
from fwpipe.pipeline.tokenize import encode_chunk
from fwpipe.tokenizer import EOT_TEXT, get_encoding
t = pq.read_table(sys.argv[1], columns=["text", "id", "url"]).slice(0, int(sys.argv[2]))
texts, ids, urls = (t[k].to_pylist() for k in ("text", "id", "url"))
enc = get_encoding()
kw = dict(file_index=0, seed=0, threshold=val_threshold(0.005), cursors=(-1, -1), forced_val=frozenset(), max_doc_tokens=10**8)
def per_doc():
    for x in texts:
        enc.encode_to_numpy(x, disallowed_special=())
def joined():
    for lo in range(0, len(texts), 1024):
        enc.encode_to_numpy(EOT_TEXT.join(texts[lo:lo + 1024]), allowed_special={EOT_TEXT}, disallowed_special=())
def chunks(c):
    def run():
        for lo in range(0, len(texts), c):
            encode_chunk(texts[lo:lo + c], ids[lo:lo + c], [None] * len(texts[lo:lo + c]), urls[lo:lo + c], row0=lo, gpos0=lo, **kw)
    return run
runs = {"encode_to_numpy per document": per_doc, "one call per 1,024 documents joined": joined,
        **{f"encode_chunk on {c}-row chunks": chunks(c) for c in (64, 256, 1024)}}
per_doc(); best = {}
for _ in range(3):  # alternate, best of 3: the least disturbed run
    for k, f in runs.items():
        c0 = time.process_time(); f(); best[k] = min(best.get(k, 1e9), time.process_time() - c0)
print(json.dumps({k: v / len(texts) * 1e6 for k, v in best.items()}))
"""

STARTUP_PARTS = r"""
import json, sys, time
t = {}
t0 = time.perf_counter()
import fwpipe.cli
t["import fwpipe.cli"] = time.perf_counter() - t0
t0 = time.perf_counter()
import fwpipe.pipeline.prepare
t["import fwpipe.pipeline.prepare (on top)"] = time.perf_counter() - t0
numba_loaded = "numba" in sys.modules
t0 = time.perf_counter()
from fwpipe.tokenizer import get_encoding
get_encoding().encode_to_numpy("warm up", disallowed_special=())
t["tokenizer: build the GPT-2 encoding"] = time.perf_counter() - t0
import numpy as np
t0 = time.perf_counter()
import fwpipe.kernels
t["numba: import (fwpipe.kernels)" + (" [already imported above]" if numba_loaded else "")] = time.perf_counter() - t0
t0 = time.perf_counter()
fwpipe.kernels.token_histogram(np.zeros(1, np.uint16), 50257)
t["numba: first call of a cached kernel"] = time.perf_counter() - t0
from fwpipe.pipeline import inputs
big = sys.argv[1]
t0 = time.perf_counter()
inputs.inspect(__import__("pathlib").Path(big), "text")
dt = time.perf_counter() - t0
mb = __import__('os').path.getsize(big) / 1e6
t[f"inputs.inspect (sha256) of a {mb:.0f} MB file ({mb / dt:.0f} MB/s)"] = dt
print(json.dumps(t))
"""

MODULES = r"""
import json, sys
from fwpipe.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print(json.dumps(sorted(m for m in %r if m in sys.modules)))
""" % (HEAVY,)


def shared_fineweb() -> list[Path]:
    shared = (
        Path(os.environ.get("FWPIPE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "fineweb"
    )
    from fwpipe.sample import SAMPLE_FILES

    return [shared / f.name if (shared / f.name).exists() else f for f in SAMPLE_FILES]


def write_corpus(path: Path, texts: list[str], urls: list[str], tag: str) -> None:
    """FineWeb-schema parquet (text, id, url), fresh ids, FineWeb-like row groups."""
    ids = [f"<urn:uuid:{tag}-{k:09d}>" for k in range(len(texts))]
    pq.write_table(
        pa.table({"text": texts, "id": ids, "url": urls}), path, row_group_size=ROW_GROUP_ROWS, compression="snappy"
    )


def build_corpora(tmp: Path, long_mb: float, short_docs: int) -> dict[str, Path]:
    rows = [r for f in shared_fineweb() for r in pq.read_table(f, columns=["text", "url"]).to_pylist() if r["text"]]
    base_chars = sum(len(r["text"]) for r in rows)
    out = {}
    reps1 = max(1, round(long_mb * 1e6 / base_chars))
    for name, reps in (("long", reps1), ("long4x", 4 * reps1)):
        out[name] = tmp / f"{name}.parquet"
        write_corpus(
            out[name],
            [r["text"] for _ in range(reps) for r in rows],
            [r["url"] or "" for _ in range(reps) for r in rows],
            name,
        )
    pieces, urls = [], []
    while len(pieces) < short_docs:
        for r in rows:
            t, i = r["text"], 0
            while i < len(t) and len(pieces) < short_docs:
                j = t.find(" ", i + 200)  # ~200 characters, ~45 GPT-2 tokens
                j = len(t) if j < 0 else j
                pieces.append(t[i:j])
                urls.append(r["url"] or "")
                i = j
            if len(pieces) >= short_docs:
                break
    out["short"] = tmp / "short.parquet"
    write_corpus(out["short"], pieces, urls, "short")
    out["tiny"] = tmp / "tiny.parquet"
    write_corpus(out["tiny"], [rows[0]["text"], rows[1]["text"]], [rows[0]["url"] or "", rows[1]["url"] or ""], "tiny")
    return out


def child(code: str, *args, env: dict | None = None) -> dict:
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    if r.returncode:
        sys.exit(f"bench child failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def fwpipe_prepare(src: Path, out: Path, *flags: str) -> dict:
    """Wall seconds and peak RSS of `fwpipe prepare` in a fresh process."""
    cmd = [sys.executable, "-m", "fwpipe", "prepare", str(src), "-o", str(out), "--overwrite", *flags]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    stdout, stderr = p.stdout.read(), p.stderr.read()
    p.stdout.close(), p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
    summary = read_manifest(out).summary
    cpu = ru.ru_utime + ru.ru_stime
    return {"seconds": wall, "cpu": cpu, "tokens": summary["tokens"], "peak_rss": ru.ru_maxrss * 1024, "stdout": stdout}


def startup(tmp: Path, tiny: Path, big: Path, workers: int, repeats: int) -> None:
    print("\n== start-up: a two-document prepare, the whole command in a fresh process (best of %d)" % repeats)
    print(f"  {'':45s} wall   CPU (user+sys; steadier while others share the cores)")
    for flags in (["--dedup", "none"], []):
        runs = [fwpipe_prepare(tiny, tmp / f"tiny-out-{k}", *flags, "--workers", str(workers)) for k in range(repeats)]
        label = " ".join(["fwpipe prepare tiny.parquet", *flags])
        walls = ", ".join(f"{r['seconds']:.2f}" for r in runs)
        best = min(r["seconds"] for r in runs)
        print(
            f"  {label:45s} {best:4.2f} s {min(r['cpu'] for r in runs):4.2f} s   (goal <= {STARTUP_GOAL_S} s; walls {walls})"
        )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    print(
        f"  where it goes (each line in one fresh process, in this order; a bare interpreter is {time.perf_counter() - t0:.2f} s):"
    )
    for name, s in child(STARTUP_PARTS, big).items():
        print(f"    {name:60s} {s:5.2f} s")
    mods = child(MODULES, "prepare", str(tiny), "-o", str(tmp / "tiny-mods"), "--overwrite", "--dedup", "none")
    print(f"  heavy modules loaded by `prepare --dedup none`: {', '.join(mods) or 'none'}")
    mods = child(MODULES, "prepare", str(tiny), "-o", str(tmp / "tiny-mods2"), "--overwrite")
    print(f"  heavy modules loaded by `prepare` (--dedup near): {', '.join(mods) or 'none'}")


def speed(tmp: Path, corpora: dict[str, Path], workers: int, rounds: int, chunk_rows: int, names: list[str]) -> None:
    for name in names:
        src = corpora[name]
        n_rows = pq.ParquetFile(src).metadata.num_rows
        print(
            f"\n== {name}: {n_rows:,} documents, {src.stat().st_size / 1e6:.0f} MB parquet; {workers} workers; {rounds} rounds"
        )
        keys = ("ceiling/thr", "ceiling/proc", "prepare", "chunks/thr", "chunks/proc")
        rows: dict[str, list[float]] = {k: [] for k in keys}
        cpus: dict[str, list[float]] = {k: [] for k in keys}
        tokens = None
        for r in range(rounds):
            m = {
                "ceiling/thr": child(CEILING, src, workers, "threads"),
                "ceiling/proc": child(CEILING, src, workers, "processes"),
            }
            m["prepare"] = child(
                PREPARE, src, corpora["tiny"], tmp / f"{name}-out-{r}", workers, "tiktoken"
            )  # a fresh directory each round
            m["chunks/thr"] = child(CHUNKS, src, workers, "threads", chunk_rows)
            m["chunks/proc"] = child(CHUNKS, src, workers, "processes", chunk_rows)
            tokens = m["ceiling/thr"]["tokens"]
            for k, v in m.items():
                assert v["tokens"] == tokens, f"{k} counted {v['tokens']} tokens, the ceiling {tokens}"
            tps = {k: tokens / v["seconds"] for k, v in m.items()}
            for k in keys:
                rows[k].append(tps[k] / tps["ceiling/thr"] if k != "ceiling/thr" else tps[k])
                cpus[k].append(m["ceiling/thr"]["cpu"] / m[k]["cpu"])
            print(
                f"  round {r + 1}: ceiling {tps['ceiling/thr'] / 1e6:.2f}M tok/s; tok/s ratios "
                + ", ".join(f"{k} {rows[k][-1]:.2f}" for k in keys[1:])
                + "; CPU ratios "
                + ", ".join(f"{cpus[k][-1]:.2f}" for k in keys[1:])
            )
        med = {k: statistics.median(v) for k, v in rows.items()}
        cpu = {k: statistics.median(v) for k, v in cpus.items()}
        print(f"  {tokens:,} tokens, {tokens / n_rows:.0f} per document")
        print(
            f"  ceiling: tiktoken encode_to_numpy per document, {workers} threads: {med['ceiling/thr'] / 1e6:.2f}M tok/s (median round)"
        )
        print(f"  {'':52s} tok/s ratio  CPU-efficiency ratio (ceiling CPU s / its CPU s)")
        labels = {
            "ceiling/proc": f"same calls on {workers} processes (not the ceiling)",
            "prepare": "fwpipe prepare --dedup none, after start-up",
            "chunks/thr": f"encode_chunk x{chunk_rows} rows on {workers} threads",
            "chunks/proc": f"encode_chunk x{chunk_rows} rows on {workers} processes (units)",
        }
        for k, label in labels.items():
            goal = f"   (goal >= {GOALS[name]})" if k == "prepare" else ""
            print(f"  {label:52s} {med[k]:5.2f}        {cpu[k]:5.2f}{goal}")


def engines(tmp: Path, corpora: dict[str, Path], workers: int, rounds: int, names: list[str]) -> None:
    """The issue's two comparisons, side by side in each round (median round reported):
    (a) gigatoken alone vs tiktoken alone on the same texts and thread count;
    (b) prepare (gigatoken engine) vs gigatoken alone (the new ceiling), and vs today's prepare
        (the tiktoken engine), each a fresh process, after start-up."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(workers))
    for name in names:
        src = corpora[name]
        n_rows = pq.ParquetFile(src).metadata.num_rows
        text_bytes = pc.sum(pc.binary_length(pq.read_table(src, columns=["text"])["text"])).as_py()
        print(
            f"\n== engines, {name}: {n_rows:,} documents, {text_bytes / n_rows:,.0f} bytes of text a document; {workers} threads / workers; "
            f"{rounds} rounds"
        )
        keys = ("giga", "tik", "prep/giga", "prep/tik")
        tps: dict[str, list[float]] = {k: [] for k in keys}
        cpu_tps: dict[str, list[float]] = {k: [] for k in keys}
        tokens = None
        for r in range(rounds):
            m = {"giga": child(GIGA, src, env=env), "tik": child(CEILING, src, workers, "threads")}
            m["prep/giga"] = child(PREPARE, src, corpora["tiny"], tmp / f"eng-{name}-g-{r}", workers, "gigatoken")
            m["prep/tik"] = child(PREPARE, src, corpora["tiny"], tmp / f"eng-{name}-t-{r}", workers, "tiktoken")
            tokens = m["tik"]["tokens"]
            for k, v in m.items():
                assert v["tokens"] == tokens, f"{k} counted {v['tokens']} tokens, tiktoken {tokens}"
                tps[k].append(tokens / v["seconds"])
                cpu_tps[k].append(tokens / v["cpu"])
            print(
                f"  round {r + 1}: M tok/s "
                + ", ".join(f"{k} {tps[k][-1] / 1e6:.2f}" for k in keys)
                + "; M tok per CPU-s "
                + ", ".join(f"{k} {cpu_tps[k][-1] / 1e6:.2f}" for k in keys)
            )

        def ratio(a: str, b: str, d: dict) -> float:  # median over rounds of the same-round ratio
            return statistics.median(x / y for x, y in zip(d[a], d[b]))

        print(f"  {tokens:,} tokens, {tokens / n_rows:.0f} per document; median round:")
        for k, label in (
            ("giga", f"gigatoken alone, {workers} threads"),
            ("tik", f"tiktoken alone, {workers} threads"),
            ("prep/giga", "prepare --tokenizer-engine gigatoken"),
            ("prep/tik", "prepare --tokenizer-engine tiktoken (today)"),
        ):
            print(
                f"  {label:48s} {statistics.median(tps[k]) / 1e6:6.2f}M tok/s  {statistics.median(cpu_tps[k]) / 1e6:6.2f}M tok/CPU-s"
            )
        print(f"  {'ratio':48s} {'tok/s':>12s}  {'tok/CPU-s':>12s}")
        for a, b, label, goal in (
            ("giga", "tik", "(a) gigatoken / tiktoken", ""),
            ("prep/giga", "giga", "(b) prepare / gigatoken ceiling", "   (goal >= 0.9)"),
            ("prep/giga", "prep/tik", "prepare gigatoken / prepare tiktoken", "   (goal >= 2)"),
        ):
            print(f"  {label:48s} {ratio(a, b, tps):12.2f}  {ratio(a, b, cpu_tps):12.2f}{goal}")


def cache(corpora: dict[str, Path], n_docs: float, every: float) -> None:
    print(
        f"\n== gigatoken's cache over {n_docs:,.0f} documents (short FineWeb pieces + a random word and number each), one thread"
    )
    for reset in ("on", "off"):
        r = child(CACHE, corpora["short"], n_docs, reset, every)
        pts = r["points"]
        line = ", ".join(f"{p['docs'] / 1e6:.2f}M: {p['rss'] / 2**20:.0f} MiB" for p in pts)
        print(
            f"  reset {reset:3s}: RSS {line}; resets {pts[-1]['resets']}; {r['tokens'] / r['cpu'] / 1e6:.2f}M tok/CPU-s; {pts[-1]['seconds']:.0f} s"
        )


def micro(corpora: dict[str, Path], n_docs: int) -> None:
    print(f"\n== CPU microseconds a document, one thread, {n_docs:,} short documents (best of 3)")
    res = child(MICRO, corpora["short"], n_docs)
    base = res["encode_to_numpy per document"]
    for k, us in res.items():
        print(f"  {k:45s} {us:6.2f} us   ({base / us:.2f}x the per-document calls)")


def memory(tmp: Path, corpora: dict[str, Path], workers: int) -> None:
    print("\n== peak RSS of `fwpipe prepare --dedup none` (each a fresh process; the driver's, workers' are similar)")
    for engine in ("gigatoken", "tiktoken"):
        m = {
            k: fwpipe_prepare(
                corpora[k],
                tmp / f"mem-{engine}-{k}",
                "--dedup",
                "none",
                "--workers",
                str(workers),
                "--tokenizer-engine",
                engine,
            )
            for k in ("long", "long4x")
        }
        docs = {k: pq.ParquetFile(corpora[k]).metadata.num_rows for k in m}
        growth = m["long4x"]["peak_rss"] / m["long"]["peak_rss"] - 1
        print(
            f"  {engine:9s} 1x {m['long']['peak_rss'] / 2**20:.0f} MiB ({docs['long']:,} docs, {m['long']['peak_rss'] / docs['long']:,.0f} B/doc), "
            f"4x {m['long4x']['peak_rss'] / 2**20:.0f} MiB ({docs['long4x']:,} docs, {m['long4x']['peak_rss'] / docs['long4x']:,.0f} B/doc): "
            f"growth {100 * growth:+.1f}%   (goal: flat, < 10%)"
        )


def scaling(tmp: Path, corpora: dict[str, Path], max_workers: int) -> None:
    print("\n== throughput of `fwpipe prepare --dedup none --workers W` on the long corpus (wall, start-up included)")
    for w in range(1, max_workers + 1):  # a directory each: with the same one, the second run would find it done
        r = fwpipe_prepare(corpora["long"], tmp / f"scale-out-{w}", "--dedup", "none", "--workers", str(w))
        print(f"  W={w}: {r['tokens'] / r['seconds'] / 1e6:.2f}M tok/s ({r['seconds']:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--long-mb", type=float, default=10, help="MB of text in the long corpus (issue: 80)")
    ap.add_argument("--short-docs", type=int, default=65_000, help="pieces in the short corpus (issue: 525000)")
    ap.add_argument(
        "--workers", type=int, default=os.cpu_count(), help="threads/processes of the ceiling and the candidates"
    )
    ap.add_argument("--max-workers", type=int, default=os.cpu_count(), help="scaling: prepare at 1..this many workers")
    ap.add_argument(
        "--rounds", type=int, default=3, help="rounds of ceiling + candidates; the median ratio is reported"
    )
    ap.add_argument(
        "--chunk-rows",
        type=int,
        default=1024,
        help="rows per encode_chunk call in the chunks/* candidates (prepare: ~512K chars)",
    )
    ap.add_argument("--cache-docs", type=float, default=2e6, help="documents through gigatoken's cache (issue: 10M+)")
    ap.add_argument(
        "--only",
        choices=["startup", "speed", "long", "short", "engines", "cache", "chunks", "memory", "scaling"],
        default=None,
    )
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}, load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="prepare-bench-") as tmp:
        tmp = Path(tmp)
        corpora = build_corpora(tmp, args.long_mb, args.short_docs)
        if args.only in (None, "startup"):
            startup(tmp, corpora["tiny"], corpora["long"], args.workers, 3)
        if args.only in (None, "speed", "long", "short"):
            names = [args.only] if args.only in ("long", "short") else ["long", "short"]
            speed(tmp, corpora, args.workers, args.rounds, args.chunk_rows, names)
        if args.only in (None, "engines"):
            engines(tmp, corpora, args.workers, args.rounds, ["long", "short"])
        if args.only in (None, "cache"):
            cache(corpora, args.cache_docs, max(1024, args.cache_docs / 5))
        if args.only in (None, "chunks"):
            micro(corpora, min(args.short_docs, 30_000))
        if args.only in (None, "memory"):
            memory(tmp, corpora, args.workers)
        if args.only in (None, "scaling"):
            scaling(tmp, corpora, args.max_workers)


if __name__ == "__main__":
    main()
