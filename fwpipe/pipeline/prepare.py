"""`fwpipe prepare`: FineWeb parquet -> GPT-2 token shards, docs.parquet and manifest.json.

One streaming pass: record batches are read in order, tokenized in chunks on a thread pool,
and appended split by split into shards (shardset.py). Everything a resume needs is in the
finished shards' sidecars, so a kill -9 at any moment followed by the same command ends with
the same bytes as a run that never stopped.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
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

from fwpipe import __version__, shards
from fwpipe.errors import DatasetMismatchError, FwpipeError, OutputError
from fwpipe.kernels import length_bin_edges
from fwpipe.pipeline import inputs as inputs_mod
from fwpipe.pipeline.inputs import Source
from fwpipe.pipeline.shardset import WORK, SplitWriter, finished_shards, sidecar, read_stats, write_npy_atomic, write_parquet_atomic
from fwpipe.pipeline.split import SPLIT_NAMES, TRAIN, VAL, key_hash, val_threshold
from fwpipe.pipeline.tokenize import EMPTY_TEXT, NULL_TEXT, OK, TOO_LONG, encode_chunk
from fwpipe.progress import Progress, fmt_s
from fwpipe.tokenizer import EOT, NAME as TOKENIZER_NAME, VOCAB_SIZE, bpe_sha256

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
DEFAULT_OUT = Path("data/fineweb")
CHUNK_ROWS = 256  # rows per tokenizing task: big enough to amortize, small enough to balance
FORCED_VAL_EXPECTED = 30  # below this many expected val docs, make sure val is not empty


@dataclass(frozen=True)
class PrepareOptions:
    """What decides the bytes written. workers, batch sizes and progress do not."""

    text_column: str = "text"
    val_fraction: float = 0.005
    seed: int = 0
    shard_tokens: int = 100_000_000
    format: Literal["fwpipe", "nanogpt"] = "fwpipe"


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
) -> dict:
    """Tokenize `inputs` into a dataset at `out_dir` and return the summary (also in the manifest)."""
    t0 = time.perf_counter()
    _check_options(options)
    workers = max(1, workers or os.cpu_count() or 1)
    out_dir = Path(out_dir)
    paths = inputs_mod.resolve_inputs([str(p) for p in inputs])
    sources = [inputs_mod.inspect(p, options.text_column) for p in paths]
    identity = _identity(sources, options)

    state = _claim_output(out_dir, identity, sources, overwrite)
    if state == "complete":
        manifest = json.loads((out_dir / shards.MANIFEST).read_text())
        summary = dict(manifest["summary"], out_dir=str(out_dir), did_work=False, seconds=time.perf_counter() - t0)
        log.info("%s is already prepared from these inputs; nothing to do", out_dir)
        return summary

    shard_dir = out_dir / WORK if options.format == "nanogpt" else out_dir
    (out_dir / WORK).mkdir(parents=True, exist_ok=True)
    done = {s: finished_shards(out_dir, s, shard_dir) for s in SPLIT_NAMES}
    cursors = tuple(_cursor(out_dir, s, done[s]) for s in SPLIT_NAMES)
    resumed = any(done.values())
    _write_manifest(out_dir, {"status": "in_progress", **identity, "shards_done": {s: len(done[s]) for s in SPLIT_NAMES}})

    threshold = val_threshold(options.val_fraction)
    forced_val = _forced_val(sources, options, threshold)
    writers = {
        s: SplitWriter(out_dir, shard_dir, s, sid, options.shard_tokens, len(done[s]), lambda split, i: _record_shard(out_dir, identity, split, i))
        for sid, s in enumerate(SPLIT_NAMES)
    }
    total_bytes = sum(src.bytes for src in sources)
    start_gpos = min(cursors) + 1
    prog = Progress(total=total_bytes, enabled=progress)
    stats = {"docs": 0, "tokens": 0, "bytes": 0}
    try:
        _run(sources, options, writers, cursors, forced_val, threshold, start_gpos, workers, batch_rows, buffer_mb, prog, stats)
        for w in writers.values():
            w.close()
        prog.close()
        summary = _finalize(out_dir, shard_dir, identity, sources, options, writers)
    except BaseException:
        prog.close()
        for w in writers.values():
            w.abort()
        raise
    seconds = time.perf_counter() - t0
    summary.update(did_work=True, resumed=resumed, seconds=seconds, workers=workers, tokens_this_run=stats["tokens"], tokens_per_s=stats["tokens"] / max(seconds, 1e-9))
    return summary


def _check_options(o: PrepareOptions) -> None:
    from fwpipe.errors import ConfigError

    if not 0 <= o.val_fraction < 1:
        raise ConfigError(f"--val-fraction {o.val_fraction} is not in [0, 1)", "use e.g. --val-fraction 0.005")
    if o.shard_tokens < 2:
        raise ConfigError(f"--shard-tokens {o.shard_tokens} is too small", "use at least a few thousand tokens (default 100M)")
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


_OURS = ("manifest.json", "docs.parquet", "token_counts.npy", "train.bin", "val.bin", WORK)


def _ours(p: Path) -> bool:
    return p.name in _OURS or (p.suffix == ".bin" and p.name.split("_")[0] in SPLIT_NAMES) or p.name.endswith(".tmp")


def _claim_output(out_dir: Path, identity: dict, sources: list[Source], overwrite: bool) -> str:
    """'fresh', 'resume' or 'complete'; refuses a directory that holds something else."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetMismatchError(f"{out_dir}: exists and is not a directory", "choose another -o")
    if not out_dir.exists():
        try:
            out_dir.mkdir(parents=True)
        except OSError as e:
            raise OutputError(f"cannot create {out_dir}: {e.strerror or e}", "choose another -o") from e
        return "fresh"
    manifest_path = out_dir / shards.MANIFEST
    entries = list(out_dir.iterdir())
    if overwrite:
        for p in entries:
            if _ours(p):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        entries = list(out_dir.iterdir())
    if not manifest_path.exists():
        foreign = [p.name for p in entries if not _ours(p)]
        if foreign:
            raise DatasetMismatchError(f"{out_dir}: not empty and not a fwpipe dataset (holds {', '.join(sorted(foreign)[:3])})", "choose an empty or new -o directory")
        for p in entries:  # only leftovers of a run that died before its first manifest
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        return "fresh"
    try:
        old = json.loads(manifest_path.read_text())
    except json.JSONDecodeError:
        old = {}
    old_identity = {k: old.get(k) for k in identity}
    if old_identity == identity:
        return "complete" if old.get("status") == "complete" else "resume"
    old_sources = {s["path"]: s for s in old.get("sources") or []}
    changed = [s.path for s in sources if s.path in old_sources and (old_sources[s.path]["bytes"], old_sources[s.path]["sha256"]) != (s.bytes, s.sha256)]
    if changed:
        raise DatasetMismatchError(f"{changed[0]}: changed since {out_dir} was prepared from it (size or content)", "pass --overwrite to prepare it again")
    diffs = [k for k in identity if old_identity.get(k) != identity[k]]
    raise DatasetMismatchError(f"{out_dir}: holds a different dataset (differs in {', '.join(diffs)})", "pass --overwrite to replace it, or choose another -o")


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


def _run(sources, options, writers, cursors, forced_val, threshold, start_gpos, workers, batch_rows, buffer_mb, prog, stats) -> None:
    """Read, tokenize on `workers` threads, and append to the split writers in input order."""
    max_doc_tokens = options.shard_tokens
    budget = buffer_mb * 2**20  # text bytes in flight, which bounds memory with the batch size
    inflight: deque = deque()
    inflight_bytes = 0
    done_bytes = 0

    def drain_one() -> None:
        nonlocal inflight_bytes
        fut, nbytes = inflight.popleft()
        rows_pair = fut.result()
        inflight_bytes -= nbytes
        for sid, rows in enumerate(rows_pair):
            if len(rows.gpos):
                writers[SPLIT_NAMES[sid]].append(rows)
                ok = rows.status == OK
                stats["docs"] += int(ok.sum())
                stats["tokens"] += int(rows.n_tokens[ok].sum())
        el = prog.elapsed()
        prog.update(
            f"prepare: {stats['docs']:,} docs  {stats['tokens']:,} tokens  {stats['tokens'] / max(el, 1e-9) / 1e6:.2f}M tok/s  "
            f"{100 * done_bytes / max(prog.total or 1, 1):.0f}%  ETA {fmt_s(prog.eta(done_bytes))}"
        )

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fwpipe-tok") as pool:
        gpos0 = 0
        for fi, src in enumerate(sources):
            if gpos0 + src.rows <= start_gpos:
                gpos0 += src.rows
                done_bytes += src.bytes
                continue
            for b in inputs_mod.read_batches(src, fi, options.text_column, start_row=max(0, start_gpos - gpos0), batch_rows=batch_rows):
                done_bytes += b.n_bytes
                for lo in range(0, len(b.texts), CHUNK_ROWS):
                    hi = min(lo + CHUNK_ROWS, len(b.texts))
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


def _record_shard(out_dir: Path, identity: dict, split: str, index: int) -> None:
    """After a shard is durable, the manifest records it (progress for humans; sidecars are truth)."""
    path = out_dir / shards.MANIFEST
    try:
        m = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        m = {"status": "in_progress", **identity, "shards_done": {}}
    m.setdefault("shards_done", {})[split] = index + 1
    _write_manifest(out_dir, m)


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    data = json.dumps(manifest, indent=2, sort_keys=False).encode() + b"\n"
    shards.atomic_write_bytes(out_dir / shards.MANIFEST, [data])


def _finalize(out_dir: Path, shard_dir: Path, identity: dict, sources: list[Source], options: PrepareOptions, writers: dict[str, SplitWriter]) -> dict:
    """All shards are durable: write docs.parquet, token_counts.npy, the nanoGPT .bin files and the manifest."""
    per_split, tables, hists = {}, [], {}
    skipped = {"null_text": 0, "empty_text": 0, "too_long": 0}
    for sid, split in enumerate(SPLIT_NAMES):
        n_shards = writers[split].index
        split_tables = [pq.read_table(sidecar(out_dir, split, i, "rows.parquet")) for i in range(n_shards)]
        split_tables.append(writers[split].pending_table())  # trailing skipped rows, no shard
        t = pa.concat_tables(split_tables)
        token_counts = np.zeros(VOCAB_SIZE, dtype=np.int64)
        length_hist = None
        shard_files = []
        for i in range(n_shards):
            tc, lh = read_stats(sidecar(out_dir, split, i, "stats.npy"))
            token_counts += tc
            length_hist = lh if length_hist is None else length_hist + lh
            n_tok = len(shards.read_shard(shard_dir / shards.shard_name(split, i)))
            shard_files.append({"file": shards.shard_name(split, i), "tokens": n_tok})
        status = t["status"].to_numpy()
        ok = status == OK
        n_tokens = t["n_tokens"].to_numpy()
        skipped["null_text"] += int((status == NULL_TEXT).sum())
        skipped["empty_text"] += int((status == EMPTY_TEXT).sum())
        skipped["too_long"] += int((status == TOO_LONG).sum())
        docs = int(ok.sum())
        tokens = int(n_tokens[ok].sum())
        per_split[split] = {
            "docs": docs,
            "tokens": tokens,
            "stream_tokens": tokens + docs,
            "distinct_tokens": int((token_counts > 0).sum() - (token_counts[EOT] > 0)),
            "shards": n_shards,
            "shard_files": shard_files,
            "length_hist": (length_hist if length_hist is not None else np.zeros(len(length_bin_edges()), np.int64)).tolist(),
        }
        hists[split] = token_counts
        tables.append(t.filter(pa.array(ok)).append_column("split", pa.array([split] * docs, pa.string())))

    docs_t = pa.concat_tables(tables)
    tc_check = _token_count_check(docs_t, sources)
    total_docs = per_split["train"]["docs"] + per_split["val"]["docs"]
    if total_docs >= 2 and options.val_fraction > 0 and per_split["val"]["docs"] == 0:
        log.warning("no document fell into val although %d documents were prepared", total_docs)

    if options.format == "nanogpt":
        docs_t = _write_nanogpt(out_dir, shard_dir, per_split, docs_t)
    _write_docs(out_dir, docs_t, sources)
    write_npy_atomic(out_dir / "token_counts.npy", np.stack([hists[s] for s in SPLIT_NAMES]))

    summary = {
        "splits": {s: {k: v for k, v in per_split[s].items() if k not in ("shard_files", "length_hist")} for s in SPLIT_NAMES},
        "docs": total_docs,
        "tokens": per_split["train"]["tokens"] + per_split["val"]["tokens"],
        "skipped": skipped,
        "token_count_check": tc_check,
        "sources": len(sources),
        "format": options.format,
    }
    manifest = {
        "status": "complete",
        **identity,
        "fwpipe_version": __version__,
        "splits": per_split,
        "length_bin_edges": length_bin_edges(),
        "skipped": skipped,
        "token_count_check": tc_check,
        "files": {"docs": "docs.parquet", "token_counts": "token_counts.npy (int64, shape (2, vocab): train, val)"},
        "summary": summary,
    }
    _write_manifest(out_dir, manifest)
    shutil.rmtree(out_dir / WORK, ignore_errors=True)
    return dict(summary, out_dir=str(out_dir))


def _token_count_check(docs_t: pa.Table, sources: list[Source]) -> dict | None:
    """Compare our GPT-2 counts with FineWeb's `token_count` wherever the input had it."""
    if not any(s.has_token_count for s in sources):
        return None
    ftc = docs_t["fineweb_token_count"].to_numpy()
    ours = docs_t["n_tokens"].to_numpy()
    has = ftc >= 0
    differ = has & (ftc != ours)
    placeholder = differ & docs_t["placeholder"].to_numpy(zero_copy_only=False)
    real = differ & ~placeholder
    ids = docs_t["id"].to_pylist()
    files = docs_t["file_index"].to_numpy()
    rows = docs_t["source_row"].to_numpy()
    first = [ids[i] or f"{Path(sources[files[i]].path).name}:{rows[i]}" for i in np.flatnonzero(real)[:5]]
    return {"checked": int(has.sum()), "differ": int(differ.sum()), "email_placeholder": int(placeholder.sum()), "real": int(real.sum()), "first_real": first}


def _write_docs(out_dir: Path, docs_t: pa.Table, sources: list[Source]) -> None:
    names = pa.array([s.path for s in sources], pa.string())
    fi = docs_t["file_index"]
    source_file = pa.DictionaryArray.from_arrays(fi, names)
    ftc = docs_t["fineweb_token_count"]
    out = pa.table(
        {
            "split": docs_t["split"],
            "shard": docs_t["shard"],
            "offset": docs_t["offset"],
            "n_tokens": docs_t["n_tokens"],
            "n_bytes": docs_t["n_bytes"],
            "source_file": source_file,
            "source_row": docs_t["source_row"],
            "id": docs_t["id"],
            "url": docs_t["url"],
            "key_hash": docs_t["key_hash"],
            "fineweb_token_count": pc.if_else(pc.less(ftc, 0), pa.scalar(None, pa.int64()), ftc),
        }
    )
    write_parquet_atomic(out, out_dir / "docs.parquet")


def _write_nanogpt(out_dir: Path, shard_dir: Path, per_split: dict, docs_t: pa.Table) -> pa.Table:
    """nanoGPT's train.bin / val.bin: raw uint16 with EOT *after* each document.

    Our shards hold [EOT d1 EOT d2 ...]; dropping the leading EOT and appending one at the end
    gives [d1 EOT d2 EOT ...], the same stream shifted by one token, which is nanoGPT's layout.
    Returns docs_t with offsets into the .bin files (shard 0).
    """
    base = {}  # (split, shard) -> where that shard's first token lands in the .bin
    for split, info in per_split.items():
        w = shards.TokenFileWriter(out_dir / f"{split}.bin", with_header=False)
        try:
            for i, f in enumerate(info["shard_files"]):
                toks = shards.read_shard(shard_dir / f["file"])
                base[(split, i)] = w.n_tokens - 1  # the dropped leading EOT moves every token back one
                if len(toks):
                    w.write(toks[1:])
                    w.write(np.array([EOT], dtype=np.uint16))
            w.commit()
        except BaseException:
            w.abort()
            raise
        info["shard_files"] = [{"file": f"{split}.bin", "tokens": w.n_tokens}]
        info["shards"] = 1
    splits = docs_t["split"].to_pylist()
    shard_ids = docs_t["shard"].to_numpy()
    shift = np.array([base[(s, int(i))] for s, i in zip(splits, shard_ids)], dtype=np.int64)
    docs_t = docs_t.set_column(docs_t.schema.get_field_index("offset"), "offset", pa.array(docs_t["offset"].to_numpy() + shift))
    return docs_t.set_column(docs_t.schema.get_field_index("shard"), "shard", pa.array(np.zeros(len(shard_ids), np.int32)))
