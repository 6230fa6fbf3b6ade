"""`fwpipe prepare`: FineWeb parquet -> GPT-2 token shards, docs.parquet and manifest.json.

One streaming pass: record batches are read in order, tokenized in chunks on a thread pool,
and appended split by split into shards (shardset.py). Everything a resume needs is in the
finished shards' sidecars, so a kill -9 at any moment followed by the same command ends with
the same bytes as a run that never stopped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fwpipe import budget as budget_mod, shards
from fwpipe.atomic import lock_dir
from fwpipe.dataset import MANIFEST_VERSION, REMOVED, Manifest, read_manifest, write_manifest
from fwpipe.errors import FwpipeError, OutputError
from fwpipe.pipeline import inputs as inputs_mod
from fwpipe.pipeline.inputs import Source
from fwpipe.pipeline import outputs
from fwpipe.pipeline.finalize import finalize
from fwpipe.pipeline.shardset import WORK, SplitWriter, finished_shards, shard_paths, sidecar, sidecar_paths, write_parquet_atomic
from fwpipe.pipeline.split import SPLIT_NAMES, TRAIN, VAL, key_hash, val_threshold
from fwpipe.pipeline.tokenize import OK, ChunkRows, encode_chunk
from fwpipe.progress import Progress, fmt_s
from fwpipe.tokenizer import EOT, NAME as TOKENIZER_NAME, VOCAB_SIZE, bpe_sha256, get_encoding

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("data/fineweb")
# A tokenizing task is a batch's rows up to this much text (~130K tokens, ~40 ms of a core): a
# task costs ~0.2 ms beyond its tokens (numpy calls, a 400 KB histogram), so 64 rows of 45-token
# documents spent ~25% of prepare's CPU on that, and a whole 1,024-row batch of them ~0%.
CHUNK_CHARS = 512 * 1024
FORCED_VAL_EXPECTED = 30  # below this many expected val docs, make sure val is not empty


@dataclass(frozen=True)
class PrepareOptions:
    """What decides the bytes written. workers, batch sizes and progress do not."""

    text_column: str = "text"
    val_fraction: float = 0.005
    seed: int = 0
    shard_tokens: int = 100_000_000
    format: Literal["fwpipe", "nanogpt"] = "fwpipe"
    budget_tokens: int | None = None  # stop once train holds budget / max_epochs stream tokens
    max_epochs: float = 1.0
    dedup: Literal["none", "exact", "near"] = "near"  # see dedup.py; "none" streams in one pass


def prepare(
    inputs: list[str | Path],
    out_dir: str | Path = DEFAULT_OUT,
    *,
    options: PrepareOptions = PrepareOptions(),
    workers: int | None = None,
    batch_rows: int = 1024,
    buffer_mb: int = 256,
    overwrite: bool = False,
    progress: bool | None = None,
    memory_gb: float | None = None,
    tmp_dir: str | Path | None = None,
) -> dict:
    """Tokenize `inputs` into a dataset at `out_dir` and return the summary (also in the manifest).

    memory_gb caps --dedup's near-duplicate stages beyond ~50 bytes per document (default 1);
    tmp_dir holds their scratch files (default: out_dir/.work; reused by a resumed run).
    """
    t0 = time.perf_counter()
    _check_options(options)
    scratch = {"tmp_dir": tmp_dir, "memory_bytes": None}
    if options.dedup != "none" or memory_gb is not None:  # the dedup engine loads numba (~1 s): only when it runs
        from fwpipe.dedup.scratch import memory_bytes

        scratch["memory_bytes"] = memory_bytes(memory_gb)
    paths = inputs_mod.resolve_inputs([str(p) for p in inputs])
    # build the encoding (~0.05 s; with --dedup, also numba's ~0.4 s first call) while the inputs are hashed
    warm = threading.Thread(target=_warm_up, args=(options.dedup != "none",), daemon=True)
    warm.start()
    sources = inputs_mod.inspect_all(paths, options.text_column)
    warm.join()
    # Measured: unless the encoder has encoded once on the main thread before the worker
    # threads start, tiktoken runs ~1.5x slower on them for the whole run (cold per-thread
    # regex state); a few bytes here buy ~30% of tokenizing speed.
    get_encoding().encode_to_numpy("warm up", disallowed_special=())
    return _prepare(paths, sources, Path(out_dir), options, max(1, workers or os.cpu_count() or 1), batch_rows, buffer_mb, overwrite, progress, t0,
                    scratch=scratch)


def _prepare(paths, sources: list[Source], out_dir: Path, options: PrepareOptions, workers: int, batch_rows: int, buffer_mb: int,
             overwrite: bool, progress: bool | None, t0: float, scratch: dict | None = None) -> dict:  # fmt: skip
    """prepare() once its inputs are found and fingerprinted (--dedup's first pass enters here)."""
    lock = _lock(out_dir)
    try:
        return _prepare_locked(paths, sources, out_dir, options, workers, batch_rows, buffer_mb, overwrite, progress, t0, scratch or {})
    finally:
        os.close(lock)


def _lock(out_dir: Path) -> int:
    """Hold an exclusive lock on the output directory, so two prepares never write one dataset."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {out_dir}: {e.strerror or e}", "choose another -o") from e
    return lock_dir(out_dir, busy="another fwpipe prepare is writing this dataset", open_hint="choose another -o",
                    hint="wait for it to finish, or stop it and run this command again to resume")


def _prepare_locked(paths, sources: list[Source], out_dir: Path, options: PrepareOptions, workers: int, batch_rows: int, buffer_mb: int,
                    overwrite: bool, progress: bool | None, t0: float, scratch: dict) -> dict:  # fmt: skip
    identity = _identity(sources, options)

    state = outputs.claim(out_dir, identity, overwrite)
    if state == "complete":
        summary = dict(read_manifest(out_dir).summary, out_dir=str(out_dir), did_work=False, seconds=time.perf_counter() - t0)
        log.info("%s is already prepared from these inputs; nothing to do", out_dir)
        return summary

    shard_dir = out_dir / WORK if options.format == "nanogpt" else out_dir
    # the manifest first: no moment leaves files of ours in a directory without one
    write_manifest(out_dir, Manifest(status="in_progress", **identity))
    try:
        (out_dir / WORK).mkdir(exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {out_dir / WORK}: {e.strerror or e}", "choose a writable -o directory") from e
    threshold = val_threshold(options.val_fraction)
    if options.dedup == "none":
        done = {s: finished_shards(out_dir, s, shard_dir) for s in SPLIT_NAMES}
        first_pass = None
    else:
        dedup_plan, tokenized = _first_pass(paths, sources, out_dir, options, threshold, workers, batch_rows, buffer_mb, progress, scratch)
        first_pass = {"tokens_this_run": tokenized}
        for s in SPLIT_NAMES:  # pass 2 is cheap and deterministic: a crashed one is redone whole
            for p in shard_paths(shard_dir, s) + sidecar_paths(out_dir, s):
                p.unlink()
        done = {s: [] for s in SPLIT_NAMES}
    cursors = tuple(_cursor(out_dir, s, done[s]) for s in SPLIT_NAMES)
    resumed = state == "resume"  # an interrupted run of this same dataset was found
    writers = {
        s: SplitWriter(out_dir, shard_dir, s, options.shard_tokens, len(done[s]), lambda split, i: _record_shard(out_dir, identity, split, i))
        for s in SPLIT_NAMES
    }
    appender = _Appender(writers, options, cursors[TRAIN])
    prog = Progress(total=sum(src.bytes for src in sources), enabled=progress)
    try:
        if first_pass is None:
            forced_val = _forced_val(sources, options, threshold)
            _run(sources, options, appender, cursors, forced_val, threshold, min(cursors) + 1, workers, batch_rows, buffer_mb, prog)
            dedup_report = None
        else:
            prog.update(f"prepare: writing the {int(dedup_plan.keep.sum()):,} documents dedup keeps", force=True)
            dedup_report = _copy_deduplicated(out_dir, sources, dedup_plan, appender, 8 * batch_rows)
            dedup_plan = None  # its arrays (~2 bytes a document by now) are not needed by finalize
        for w in writers.values():
            w.close()
        prog.close()
        summary = finalize(out_dir, shard_dir, identity, sources, options, writers, appender.stop, dedup_report)
    except BaseException:
        prog.close()
        for w in writers.values():
            w.abort()
        raise
    tokenized = first_pass.get("tokens_this_run", 0) if first_pass else appender.tokens
    seconds = time.perf_counter() - t0
    summary.update(did_work=True, resumed=resumed, seconds=seconds, workers=workers, tokens_this_run=tokenized, tokens_per_s=tokenized / max(seconds, 1e-9))
    return summary


def _warm_up(kernels: bool) -> None:
    get_encoding()
    if kernels:  # only --dedup's engine calls numba kernels here
        from fwpipe.kernels import token_histogram

        token_histogram(np.zeros(1, np.uint16), VOCAB_SIZE)


def _check_options(o: PrepareOptions) -> None:
    from fwpipe.errors import ConfigError

    if not 0 <= o.val_fraction < 1:
        raise ConfigError(f"--val-fraction {o.val_fraction} is not in [0, 1)", "use e.g. --val-fraction 0.005")
    if o.shard_tokens < 2:
        raise ConfigError(f"--shard-tokens {o.shard_tokens} is too small", "use at least a few thousand tokens (default 100M)")
    if o.budget_tokens is not None and o.budget_tokens <= 0:
        from fwpipe.errors import BudgetError

        raise BudgetError(f"--budget-tokens {o.budget_tokens} is not a positive number of tokens", "pass e.g. --budget-tokens 7.6e9")
    if not o.max_epochs > 0:
        raise ConfigError(f"--max-epochs {o.max_epochs} is not positive", "pass e.g. --max-epochs 1 (fresh data) or 4 (repeats nearly free)")
    if not 0 <= o.seed < 2**64:  # the split hash is keyed by the seed's 8 bytes
        raise ConfigError(f"--seed {o.seed} is not in [0, 2**64)", "pass a non-negative whole number, e.g. --seed 0")
    if o.shard_tokens >= 2**31:
        raise ConfigError(f"--shard-tokens {o.shard_tokens} does not fit an llm.c header", "use at most 2,147,483,647 tokens")


def _identity(sources: list[Source], options: PrepareOptions) -> dict:
    """Everything that decides the bytes of the dataset; equal identity means same output."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "format": options.format,
        "tokenizer": {"name": TOKENIZER_NAME, "vocab_size": VOCAB_SIZE, "eot": EOT, "bpe_sha256": bpe_sha256()},
        "sources": [s.to_json() for s in sources],
        "split": {"key_column": inputs_mod.KEY_COLUMN, "key_fallback": options.text_column, "hash": "blake2b-64", "val_fraction": options.val_fraction, "seed": options.seed},
        "options": asdict(options),
    }


def _cursor(out_dir: Path, split: str, done: list[int]) -> int:
    """The last global input row the finished shards of `split` account for (-1: none)."""
    if not done:
        return -1
    rows = pq.read_table(sidecar(out_dir, split, done[-1], "rows.parquet"), columns=["gpos"])
    return int(pc.max(rows["gpos"]).as_py())


def _forced_val(sources: list[Source], options: PrepareOptions, threshold: int) -> frozenset[int]:
    """A dataset of two or more documents always gets a val document.

    Where so few val documents are expected that none might fall under the threshold, read the
    keys once: if no document hashes under it, the one with the smallest hash goes to val.
    """
    total_rows = sum(s.rows for s in sources)
    if options.val_fraction == 0 or total_rows * options.val_fraction >= FORCED_VAL_EXPECTED:
        return frozenset()
    best: tuple[int, int] | None = None
    n_docs, gpos0 = 0, 0
    for fi, src in enumerate(sources):
        for b in inputs_mod.read_batches(src, fi, options.text_column):
            for i, text in enumerate(b.texts):
                if not text:
                    continue
                n_docs += 1
                key = b.ids[i] if b.ids[i] is not None else text
                h = key_hash(key, options.seed)
                if h < threshold:
                    return frozenset()
                if best is None or h < best[0]:
                    best = (h, gpos0 + b.row0 + i)
        gpos0 += src.rows
    return frozenset([best[1]]) if n_docs >= 2 and best is not None else frozenset()


class _Appender:
    """Appends tokenized rows to the split writers, stopping at the budget's last train document."""

    def __init__(self, writers: dict[str, SplitWriter], options: PrepareOptions, train_cursor: int):
        self.writers = writers
        self.target = budget_mod.unique_tokens_needed(options.budget_tokens, options.max_epochs) if options.budget_tokens else None
        self.train_tokens = writers["train"].finished_tokens()
        # a resumed run whose train shards already hold the budget stopped at their last row
        self.stop: int | None = train_cursor if self.target is not None and self.train_tokens >= self.target else None
        self.docs = self.tokens = 0

    def feed(self, rows_pair: tuple) -> None:
        if self.stop is None and self.target is not None and len(rows_pair[TRAIN].gpos):
            cum = self.train_tokens + np.cumsum(rows_pair[TRAIN].stream_lens)
            if cum[-1] >= self.target:  # this chunk holds the last train document the budget needs
                self.stop = int(rows_pair[TRAIN].gpos[int(np.searchsorted(cum, self.target, side="left"))])
        if self.stop is not None:
            rows_pair = tuple(r.head(int(np.searchsorted(r.gpos, self.stop, side="right"))) for r in rows_pair)
        for sid, rows in enumerate(rows_pair):
            if len(rows.gpos):
                self.writers[SPLIT_NAMES[sid]].append(rows)
                ok = rows.status == OK
                self.docs += int(ok.sum())
                self.tokens += int(rows.n_tokens[ok].sum())
                if sid == TRAIN:
                    self.train_tokens += int(rows.stream_lens.sum())


def _run(sources, options, appender: _Appender, cursors, forced_val, threshold, start_gpos, workers, batch_rows, buffer_mb, prog) -> None:
    """Read, tokenize on `workers` threads, and feed the appender in input order until it stops."""
    max_doc_tokens = options.shard_tokens
    budget = buffer_mb * 2**20  # text bytes in flight, which bounds memory with the batch size
    inflight: deque = deque()
    inflight_bytes = 0
    done_bytes = 0

    def drain_one() -> None:
        nonlocal inflight_bytes
        fut, nbytes = inflight.popleft()
        appender.feed(fut.result())
        inflight_bytes -= nbytes
        el = prog.elapsed()
        prog.update(
            f"prepare: {appender.docs:,} docs  {appender.tokens:,} tokens  {appender.tokens / max(el, 1e-9) / 1e6:.2f}M tok/s  "
            f"{100 * done_bytes / max(prog.total or 1, 1):.0f}%  ETA {fmt_s(prog.eta(done_bytes))}"
        )

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fwpipe-tok") as pool:
        gpos0 = 0
        for fi, src in enumerate(sources):
            if appender.stop is not None:
                break
            if gpos0 + src.rows <= start_gpos:
                gpos0 += src.rows
                done_bytes += src.bytes
                continue
            for b in inputs_mod.read_batches(src, fi, options.text_column, start_row=max(0, start_gpos - gpos0), batch_rows=batch_rows):
                if appender.stop is not None:
                    break
                done_bytes += b.n_bytes
                for lo, hi in _chunks(b.texts):
                    texts = b.texts[lo:hi]
                    nbytes = sum(len(t) for t in texts if t)
                    fut = pool.submit(
                        encode_chunk, texts, b.ids[lo:hi], b.token_counts[lo:hi], b.urls[lo:hi],
                        file_index=fi, row0=b.row0 + lo, gpos0=gpos0 + b.row0 + lo, seed=options.seed, threshold=threshold,
                        cursors=cursors, forced_val=forced_val, max_doc_tokens=max_doc_tokens,
                    )  # fmt: skip
                    inflight.append((fut, nbytes))
                    inflight_bytes += nbytes
                    # keep every worker busy, but hold at most `budget` bytes of text in flight
                    while inflight and (inflight_bytes > budget or len(inflight) > 4 * workers):
                        drain_one()
            gpos0 += src.rows
        while inflight:
            drain_one()


def _chunks(texts: list) -> list[tuple[int, int]]:
    """[lo, hi) row ranges of about CHUNK_CHARS of text each (a longer document is a chunk alone)."""
    ends = np.flatnonzero(np.diff(np.cumsum([len(t) if t else 0 for t in texts]) // CHUNK_CHARS, prepend=0)) + 1
    bounds = [0, *ends[ends < len(texts)].tolist(), len(texts)]
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


def _first_pass(paths, sources: list[Source], out_dir: Path, options: PrepareOptions, threshold: int, workers: int, batch_rows: int,
                buffer_mb: int, progress: bool | None, scratch: dict):  # fmt: skip
    """Pass 1 of --dedup: each input file into its own resumable dedup-none dataset under .work.

    With a budget, files are taken in order only until the documents that dedup keeps in train
    reach it, so the inputs after that are never read. Returns the dedup plan and the tokens
    this run tokenized.
    """
    from fwpipe.pipeline import dedup

    first_options = PrepareOptions(text_column=options.text_column, val_fraction=0.0, seed=options.seed, shard_tokens=options.shard_tokens, dedup="none")
    target = budget_mod.unique_tokens_needed(options.budget_tokens, options.max_epochs) if options.budget_tokens else None
    stages, tokenized, raw_train = [], 0, 0
    names = [src.path for src in sources]
    note = Progress(enabled=progress)
    for fi, (path, src) in enumerate(zip(paths, sources)):
        stage = out_dir / WORK / f"stage1-{fi:06d}"
        s = _prepare([path], [src], stage, first_options, workers, batch_rows, buffer_mb, False, progress, time.perf_counter())
        stages.append(stage)
        tokenized += s.get("tokens_this_run", 0)
        raw_train += s["splits"]["train"]["stream_tokens"]
        # dedup only removes, so the (costlier) clustering is worth running only once the raw
        # first pass could hold the budget
        if target is not None and fi + 1 < len(paths) and raw_train >= target:
            note.update(f"prepare: finding duplicates among {raw_train:,} tokens", force=True)
            p = dedup.plan(stages, options.dedup, threshold=threshold, force_val=options.val_fraction > 0, names=names, **scratch)
            if dedup.kept_train_tokens(p) >= target:
                log.info("budget reached after %d of %d input files", fi + 1, len(paths))
                break
    else:
        note.update(f"prepare: finding duplicates among {raw_train:,} tokens", force=True)
        p = dedup.plan(stages, options.dedup, threshold=threshold, force_val=options.val_fraction > 0, names=names, **scratch)
    note.close()
    return p, tokenized


def _copy_deduplicated(out_dir: Path, sources: list[Source], p, appender: _Appender, batch_rows: int) -> dict:
    """Pass 2 of --dedup: copy the documents the plan keeps, from the first pass into shards.

    The first pass's docs.parquet is read back in input order, `batch_rows` rows at a time, so
    its strings (ids, urls: ~100 bytes a document) are never all in memory at once; each
    first-pass shard's mapped pages are dropped once the copy has moved past it.
    """
    from fwpipe.pipeline import dedup

    write_parquet_atomic(dedup.removed_table(p, batch_rows), out_dir / WORK / REMOVED)
    p.forget_clusters()  # from here on only keep and split: 2 of the plan's ~35 bytes a document
    tokens = p.dataset.split("train").shards
    names = pa.array([src.path for src in sources], pa.string())
    gpos0 = np.cumsum([0] + [src.rows for src in sources])
    cols = ["source_file", "source_row", "n_tokens", "n_bytes", "key_hash", "fineweb_token_count", "shard", "offset", "id", "url"]
    released = 0  # first-pass shards before this one are done with
    for row0, d in p.batches(cols, batch_rows):
        kept = np.flatnonzero(p.keep[row0 : row0 + d.num_rows])  # rows of this batch
        if len(kept) == 0:
            continue
        file_index = pc.index_in(d["source_file"], value_set=names).to_numpy().astype(np.int32)
        c = {k: d[k].to_numpy() for k in ("source_row", "n_tokens", "n_bytes", "key_hash", "shard", "offset")}
        ftc = d["fineweb_token_count"].fill_null(-1).to_numpy()
        gpos = gpos0[file_index] + c["source_row"]
        split = p.split[kept + row0]
        pair = []
        for sid in (TRAIN, VAL):
            rows = kept[split == sid]
            pieces = []
            for r in rows:  # EOT, then the document's tokens from the first pass
                pieces.append(_EOT16)
                pieces.append(tokens[c["shard"][r]][c["offset"][r] : c["offset"][r] + c["n_tokens"][r]])
            take = pa.array(rows, pa.int64())
            pair.append(ChunkRows(
                gpos[rows], file_index[rows], c["source_row"][rows], np.zeros(len(rows), np.int8), c["n_tokens"][rows],
                c["n_bytes"][rows], c["key_hash"][rows], ftc[rows], np.zeros(len(rows), bool),
                d["id"].take(take).to_pylist(), d["url"].take(take).to_pylist(),
                np.concatenate(pieces).astype(np.uint16, copy=False) if pieces else np.zeros(0, np.uint16), None,
            ))  # fmt: skip
        appender.feed(tuple(pair))
        # mapped pages count in RSS: a 40-token document's are 80 bytes, the whole corpus over a pass
        for s in range(released, int(c["shard"][kept[0]])):
            shards.release_pages(tokens[s])
        released = max(released, int(c["shard"][kept[0]]))
        if appender.stop is not None and appender.stop < gpos[kept[-1]]:
            break
    for s in range(released, len(tokens)):
        shards.release_pages(tokens[s])
    return p.report


_EOT16 = np.array([EOT], dtype=np.uint16)


def _record_shard(out_dir: Path, identity: dict, split: str, index: int) -> None:
    """After a shard is durable, the manifest records it (progress for humans; sidecars are truth)."""
    try:
        m = read_manifest(out_dir) or Manifest(status="in_progress", **identity)
    except FwpipeError:
        m = Manifest(status="in_progress", **identity)
    m.shards_done = {**(m.shards_done or {}), split: index + 1}
    write_manifest(out_dir, m)
