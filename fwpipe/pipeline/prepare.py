"""`fwpipe prepare`: FineWeb parquet -> GPT-2 token shards, docs.parquet and manifest.json.

The inputs are cut into numbered work units (units.py: whole row groups of one file) that run
on an executor (fwpipe.executor: inline, local processes, or Ray) and write their tokens and
rows under .work/units. One cheap global step in the driver (layout.py) decides the budget
stop and every shard's pieces; the shards are assembled from the units in parallel
(assemble.py); finalize.py writes docs.parquet, token_counts.npy and the manifest. Units and
shards are written atomically and checked on a rerun, so a kill -9 at any moment followed by
the same command ends with the same bytes as a run that never stopped, whatever ran where.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import pyarrow.parquet as pq

from fwpipe import budget as budget_mod, remote
from fwpipe.atomic import lock_dir
from fwpipe.dataset import MANIFEST_VERSION, REMOVED, Manifest, read_manifest, shard_name, write_manifest
from fwpipe.errors import FwpipeError, OutputError
from fwpipe.executor import Executor, make_executor
from fwpipe.pipeline import inputs as inputs_mod
from fwpipe.pipeline import outputs
from fwpipe.pipeline.assemble import ShardTask, assemble_shard, rows_table
from fwpipe.pipeline.dedup_copy import CopyTask, copy_kept
from fwpipe.pipeline.finalize import finalize
from fwpipe.pipeline.inputs import Source
from fwpipe.pipeline.layout import Layout
from fwpipe.pipeline.shardset import WORK, sidecar, write_parquet_atomic
from fwpipe.pipeline.split import SPLIT_NAMES, key_hash, val_threshold
from fwpipe.pipeline.units import UNIT_ROWS, UnitTask, plan_units, run_unit, unit_dir
from fwpipe.fmt import clock, tokens
from fwpipe.progress import Progress
from fwpipe.tokenizer import DEFAULT_ENGINE, EOT, NAME as TOKENIZER_NAME, VOCAB_SIZE, bpe_sha256, check_engine

log = logging.getLogger(__name__)
PIPED_EVERY_S = 5.0  # stderr not a terminal (a log, `| tee`): one plain progress line this often

DEFAULT_OUT = Path("data/fineweb")
FORCED_VAL_EXPECTED = 30  # below this many expected val docs, make sure val is not empty


@dataclass(frozen=True)
class PrepareOptions:
    """What decides the bytes written. workers, executors, unit and batch sizes and progress do not,
    nor does tokenizer_engine: both engines write the same bytes, so it is left out of the identity
    (NOT_IDENTITY) and a run started with one engine may resume with the other."""

    text_column: str = "text"
    val_fraction: float = 0.005
    seed: int = 0
    shard_tokens: int = 100_000_000
    format: Literal["fwpipe", "nanogpt"] = "fwpipe"
    budget_tokens: int | None = None  # stop once train holds budget / max_epochs stream tokens
    max_epochs: float = 1.0
    dedup: Literal["none", "exact", "near"] = "near"  # see dedup.py; "none" tokenizes in one pass
    tokenizer_engine: Literal["gigatoken", "tiktoken"] = DEFAULT_ENGINE  # fwpipe/tokenizer.py
    filters: tuple[str, ...] = ()  # --filter: quality filters applied before tokenizing (fwpipe.quality.filter)


NOT_IDENTITY = ("tokenizer_engine",)


def prepare(
    inputs: list[str | Path],
    out_dir: str | Path = DEFAULT_OUT,
    *,
    options: PrepareOptions = PrepareOptions(),
    workers: int | None = None,
    batch_rows: int = 1024,
    overwrite: bool = False,
    progress: bool | None = None,
    memory_gb: float | None = None,
    tmp_dir: str | Path | None = None,
    executor: Executor | None = None,
    unit_rows: int = UNIT_ROWS,
) -> dict:
    """Tokenize `inputs` into a dataset at `out_dir` and return the summary (also in the manifest).

    executor runs the units and shard assemblies (default: `workers` local processes, inline
    for --workers 1 or a dataset of one unit, which then pays no pool start-up); unit_rows is
    the rows a unit gathers (units.py; tests shrink it). Memory is bounded per worker by batch_rows and a
    unit's rows table.
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
    # numba's first call costs ~0.4 s of set-up: pay it while the inputs are being hashed
    warm = threading.Thread(target=_warm_up, args=(options.dedup != "none", options.tokenizer_engine), daemon=True)
    warm.start()
    sources = inputs_mod.inspect_all(paths, options.text_column)
    warm.join()
    check_engine(options.tokenizer_engine)  # refuse to start if the engine is not exact (checked once, in the warm-up)
    own = executor is None
    if executor is None:
        n_units = len(plan_units(sources, unit_rows))
        executor = Executor() if n_units <= 1 else make_executor(workers, units=n_units)  # never more workers than units
    try:
        return _prepare(paths, sources, Path(out_dir), options, executor, batch_rows, unit_rows, overwrite, progress, t0, scratch)
    finally:
        if own:
            executor.close()


def _prepare(paths, sources: list[Source], out_dir: Path, options: PrepareOptions, executor: Executor, batch_rows: int, unit_rows: int,
             overwrite: bool, progress: bool | None, t0: float, scratch: dict | None = None, units_dir: Path | None = None) -> dict:  # fmt: skip
    """prepare() once its inputs are found and fingerprinted (--dedup's first pass enters here,
    with its units in `units_dir` instead of out_dir/.work/units)."""
    lock = _lock(out_dir)
    try:
        return _prepare_locked(paths, sources, out_dir, options, executor, batch_rows, unit_rows, overwrite, progress, t0, scratch or {},
                               units_dir)  # fmt: skip
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


def _prepare_locked(paths, sources: list[Source], out_dir: Path, options: PrepareOptions, executor: Executor, batch_rows: int,
                    unit_rows: int, overwrite: bool, progress: bool | None, t0: float, scratch: dict, units_dir: Path | None) -> dict:  # fmt: skip
    identity = _identity(sources, options)

    state = outputs.claim(out_dir, identity, overwrite)
    if state == "complete":
        summary = dict(read_manifest(out_dir).summary, out_dir=str(out_dir), did_work=False, seconds=time.perf_counter() - t0)
        log.info("%s is already prepared from these inputs; nothing to do", out_dir)
        return summary

    shard_dir = out_dir / WORK if options.format == "nanogpt" else out_dir
    # the manifest first: no moment leaves files of ours in a directory without one
    write_manifest(out_dir, Manifest(status="in_progress", **identity))
    work = (out_dir / WORK).absolute()  # absolute: units may run with another working directory (or node)
    try:
        work.mkdir(exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {work}: {e.strerror or e}", "choose a writable -o directory") from e
    # on a cluster: every node must write here and read the (local) inputs the driver reads
    executor.check_storage([work, out_dir.absolute()], [p for p in paths if Path(str(p)).is_file()])
    threshold = val_threshold(options.val_fraction)
    target = budget_mod.unique_tokens_needed(options.budget_tokens, options.max_epochs) if options.budget_tokens else None
    prog = Progress(enabled=progress, piped_every_s=PIPED_EVERY_S)
    try:
        if options.dedup == "none":
            forced_val = _forced_val(sources, options, threshold)
            tasks = _unit_tasks(sources, options, threshold, forced_val, units_dir or work / "units", batch_rows, unit_rows)
            layout, tokenized = _lay_out(run_unit, tasks, executor, options.shard_tokens, target, prog)
            dedup_report = None
        else:
            dedup_plan, tokenized = _first_pass(paths, sources, out_dir, options, threshold, executor, batch_rows, unit_rows, progress, scratch)
            prog.update(f"prepare: writing the {int(dedup_plan.keep.sum()):,} documents dedup keeps", force=True)
            layout = _copy_deduplicated(work, sources, dedup_plan, executor, options.shard_tokens, target, 8 * batch_rows, prog)
            dedup_report = dedup_plan.report
            dedup_plan = None  # its arrays (~2 bytes a document by now) are not needed by finalize
        prog.update("prepare: assembling shards", force=True)
        n_shards = _assemble(out_dir, shard_dir, layout, executor)
        trailing = {s: rows_table(layout.trailing[s], n_shards[s]) for s in SPLIT_NAMES}
    finally:
        prog.close()
    summary = finalize(out_dir, shard_dir, identity, sources, options, n_shards, trailing, layout.stop, dedup_report)
    seconds = time.perf_counter() - t0
    summary.update(did_work=True, resumed=state == "resume", seconds=seconds, workers=executor.workers, tokenizer_engine=options.tokenizer_engine,
                   tokens_this_run=tokenized,
                   tokens_per_s=tokenized / max(seconds, 1e-9))  # fmt: skip
    return summary


def _unit_tasks(sources: list[Source], options: PrepareOptions, threshold: int, forced_val: frozenset[int], units: Path, batch_rows: int,
                unit_rows: int) -> list[UnitTask]:  # fmt: skip
    return [
        UnitTask(str(unit_dir(units, u.index)), u, sources[u.file_index], options.text_column, options.seed, threshold, options.shard_tokens,
                 tuple(sorted(g for g in forced_val if u.file_gpos0 + u.row_start <= g < u.file_gpos0 + u.row_end)), bpe_sha256(), batch_rows,
                 options.tokenizer_engine, options.filters)
        for u in plan_units(sources, unit_rows)
    ]  # fmt: skip


def _lay_out(fn: Callable, tasks: list, executor: Executor, shard_tokens: int, target: int | None, prog: Progress) -> tuple[Layout, int]:
    """Run `fn` on every unit in order through `executor`, laying out each result as it comes.

    With a budget, units go out in waves sized from the tokens per row seen so far (one unit
    first), and none is started once the finished prefix reaches the target: as one streaming
    pass stops reading there, inputs past the stop are not read (up to a misestimated wave).
    Returns the layout and the tokens this run tokenized for it.
    """
    layout = Layout(shard_tokens, target)

    def units(wave):
        for t in wave:
            if layout.stop is not None:
                return
            yield (t,)

    tokenized = docs = rows_done = done = 0
    while done < len(tasks) and layout.stop is None:
        wave = tasks[done:] if target is None else tasks[done : done + _wave_size(tasks[done:], layout, target, rows_done)]
        for task, r in zip(wave, executor.map(fn, units(wave))):
            done += 1
            if layout.stop is not None:
                continue  # started before the budget was reached: not needed, failed or not
            if "error" in r:
                raise r["error"]
            layout.add(task.dir, r)
            rows_done += task.rows
            docs += sum(r[s]["docs"] for s in SPLIT_NAMES)
            if r["ran"]:
                tokenized += sum(r[s]["tokens"] for s in SPLIT_NAMES)
                if r.get("pid", os.getpid()) != os.getpid():
                    remote.STATS.add(r["fetched"]["fetched_bytes"], requests=r["fetched"]["requests"], retries=r["fetched"]["retries"])
            el = prog.elapsed()
            prog.update(f"prepare: {done:,}/{len(tasks):,} units  {docs:,} docs  {tokens(tokenized / max(el, 1e-9))} tok/s  "
                        f"ETA {clock(el * (len(tasks) - done) / done)}")  # fmt: skip
    layout.finish()
    return layout, tokenized


def _wave_size(rest: list, layout: Layout, target: int, rows_done: int) -> int:
    """How many of the next units a budget surely needs: 90% of the rows the remaining tokens
    take at the train tokens per row seen so far; at least one."""
    if rows_done == 0 or layout.train_stream == 0:
        return 1
    rows_needed = 0.9 * (target - layout.train_stream) * rows_done / layout.train_stream
    n, rows = 0, 0
    for t in rest:
        rows += t.rows
        if rows > rows_needed:
            break
        n += 1
    return max(1, n)


def _assemble(out_dir: Path, shard_dir: Path, layout: Layout, executor: Executor) -> dict[str, int]:
    """Write every shard the layout planned, one assembly task each, in parallel."""
    tasks = [
        (ShardTask(sh.index, str(shard_dir.absolute() / shard_name(s, sh.index)), str(sidecar(out_dir.absolute(), s, sh.index, "rows.parquet")),
                   str(sidecar(out_dir.absolute(), s, sh.index, "stats.npy")), sh.n_tokens, tuple(sh.pieces)),)
        for s in SPLIT_NAMES
        for sh in layout.shards[s]
    ]  # fmt: skip
    for _ in executor.map(assemble_shard, tasks):
        pass
    return {s: len(layout.shards[s]) for s in SPLIT_NAMES}


def _warm_up(kernels: bool, engine: str) -> None:
    from fwpipe.tokenizer import get_encoding

    get_encoding()
    try:
        check_engine(engine)  # builds and self-checks the engine
    except FwpipeError:
        pass  # prepare() calls check_engine again, on its own thread, and raises it there
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
        "options": {k: v for k, v in asdict(options).items() if k not in NOT_IDENTITY and (k != "filters" or v)},  # unfiltered: as before --filter
    }


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


def _first_pass(paths, sources: list[Source], out_dir: Path, options: PrepareOptions, threshold: int, executor: Executor, batch_rows: int,
                unit_rows: int, progress: bool | None, scratch: dict):  # fmt: skip
    """Pass 1 of --dedup: each input file into its own resumable dedup-none dataset under .work
    (its units run on `executor` like any prepare's).

    Without a budget the units of every file not yet done run first, all in one go (so small
    files keep every worker busy), then each file's stage is laid out from them. With a budget,
    files are taken in order only until the documents that dedup keeps in train reach it, so
    the inputs after that are never read. Returns the dedup plan and the tokens this run
    tokenized.
    """
    from fwpipe.pipeline import dedup

    first_options = PrepareOptions(text_column=options.text_column, val_fraction=0.0, seed=options.seed, shard_tokens=options.shard_tokens, dedup="none",
                                   tokenizer_engine=options.tokenizer_engine, filters=options.filters)
    target = budget_mod.unique_tokens_needed(options.budget_tokens, options.max_epochs) if options.budget_tokens else None
    stages, tokenized, raw_train = [], 0, 0
    names = [src.path for src in sources]
    note = Progress(enabled=progress, piped_every_s=PIPED_EVERY_S)
    units = (out_dir / WORK).absolute() / "units1"
    if target is None:
        tokenized += _first_pass_units(out_dir, sources, first_options, executor, units, batch_rows, unit_rows, note)
    for fi, (path, src) in enumerate(zip(paths, sources)):
        stage = out_dir / WORK / f"stage1-{fi:06d}"
        s = _prepare([path], [src], stage, first_options, executor, batch_rows, unit_rows, False, progress, time.perf_counter(),
                     units_dir=units / f"f{fi:06d}")  # fmt: skip
        shutil.rmtree(units / f"f{fi:06d}", ignore_errors=True)  # in the stage's shards now
        stages.append(stage)
        tokenized += s.get("tokens_this_run", 0)
        raw_train += s["splits"]["train"]["stream_tokens"]
        # dedup only removes, so the (costlier) clustering is worth running only once the raw
        # first pass could hold the budget
        if target is not None and fi + 1 < len(paths) and raw_train >= target:
            note.update(f"prepare: finding duplicates among {raw_train:,} tokens", force=True)
            p = dedup.plan(stages, options.dedup, threshold=threshold, force_val=options.val_fraction > 0, names=names, executor=executor, **scratch)
            if dedup.kept_train_tokens(p) >= target:
                log.info("budget reached after %d of %d input files", fi + 1, len(paths))
                break
    else:
        note.update(f"prepare: finding duplicates among {raw_train:,} tokens", force=True)
        p = dedup.plan(stages, options.dedup, threshold=threshold, force_val=options.val_fraction > 0, names=names, executor=executor, **scratch)
    note.close()
    return p, tokenized


def _first_pass_units(out_dir: Path, sources: list[Source], first_options: PrepareOptions, executor: Executor, units: Path, batch_rows: int,
                      unit_rows: int, note: Progress) -> int:  # fmt: skip
    """Tokenize the units of every first-pass stage that is not complete, in one map; returns the tokens."""
    tasks = []
    for fi, src in enumerate(sources):
        m = read_manifest(out_dir / WORK / f"stage1-{fi:06d}") if (out_dir / WORK / f"stage1-{fi:06d}").is_dir() else None
        if m is None or m.status != "complete":
            tasks += _unit_tasks([src], first_options, val_threshold(0.0), frozenset(), units / f"f{fi:06d}", batch_rows, unit_rows)
    tokenized = 0
    for i, r in enumerate(executor.map(run_unit, [(t,) for t in tasks])):
        if "error" in r:
            raise r["error"]
        tokenized += sum(r[s]["tokens"] for s in SPLIT_NAMES) if r["ran"] else 0
        note.update(f"prepare: first pass, {i + 1:,}/{len(tasks):,} units")
    return tokenized


def _copy_deduplicated(work: Path, sources: list[Source], p, executor: Executor, shard_tokens: int, target: int | None, batch_rows: int,
                       prog: Progress) -> Layout:  # fmt: skip
    """Pass 2 of --dedup: the documents the plan keeps, copied from each first-pass stage into a
    unit of its own (dedup_copy.py), then laid out like tokenized units: one shard-writing path.

    removed.parquet is written first; the plan then keeps only keep and split (2 bytes a document).
    """
    from fwpipe.pipeline import dedup

    write_parquet_atomic(dedup.removed_table(p, batch_rows), work / REMOVED)
    p.forget_clusters()  # from here on only keep and split: 2 of the plan's ~35 bytes a document
    gpos0 = np.cumsum([0] + [src.rows for src in sources])
    tasks, row0 = [], 0
    for si, stage in enumerate(p.stages):
        n = pq.read_metadata(Path(stage) / "docs.parquet").num_rows
        tasks.append(CopyTask(str(work / "pass2" / f"u{si:06d}"), str(Path(stage).absolute()), si, int(gpos0[si]),
                              p.keep[row0 : row0 + n].copy(), p.split[row0 : row0 + n].copy(), batch_rows))  # fmt: skip
        row0 += n
    return _lay_out(copy_kept, tasks, executor, shard_tokens, target, prog)[0]
