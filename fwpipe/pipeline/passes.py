"""The passes every prepare runs: units out, a layout in, shards written as it grows.

unit_tasks cuts the inputs into tokenizing units (units.py); lay_out runs any unit function in
order through the run's executor, lays each result out as it comes (layout.py), stopping at a
budget, and has the shards the layout plans written meanwhile (assemble.ShardWriter, in this
process: each unit's tokens are freed once a shard holds them). forced_val decides the one
document a tiny dataset sends to val.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fwpipe.dataset import Manifest, write_manifest
from fwpipe.errors import OutputError
from fwpipe.executors import Executor
from fwpipe.fmt import clock, tokens
from fwpipe.pipeline.assemble import ShardWriter
from fwpipe.pipeline.inputs import read_batches
from fwpipe.pipeline.layout import Layout
from fwpipe.pipeline.options import Run
from fwpipe.pipeline.split import SPLIT_NAMES, key_hash
from fwpipe.pipeline.units import UnitTask, plan_units, run_unit, unit_dir
from fwpipe.progress import Progress
from fwpipe.tokenizer import bpe_sha256

PIPED_EVERY_S = 5.0  # stderr not a terminal (a log, `| tee`): one plain progress line this often
FORCED_VAL_EXPECTED = 30  # below this many expected val docs, make sure val is not empty


def start(run: Run) -> None:
    """Begin writing the dataset: its manifest first ("in_progress"), so no moment leaves files
    of ours in a directory without one, then its .work."""
    write_manifest(run.work.out_dir, Manifest(status="in_progress", **run.identity))
    try:
        run.work.root.mkdir(exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {run.work.root}: {e.strerror or e}", "choose a writable -o directory") from e


@dataclass
class UnitTally:
    """What the units of this run did: tokens tokenized (not those skipped as already done), and
    what units in other processes fetched (remote.STATS counts only this one's)."""

    tokens: int = 0
    fetched: dict = field(default_factory=lambda: {"fetched_bytes": 0, "requests": 0, "retries": 0})

    def add(self, r: dict) -> None:
        if not r["ran"]:
            return
        self.tokens += sum(r[s]["tokens"] for s in SPLIT_NAMES)
        if r.get("pid", os.getpid()) != os.getpid():
            for k in self.fetched:
                self.fetched[k] += r["fetched"][k]

    def __iadd__(self, other: UnitTally) -> UnitTally:
        self.tokens += other.tokens
        self.fetched = {k: v + other.fetched[k] for k, v in self.fetched.items()}
        return self


def unit_tasks(run: Run, units: Path, forced_val: frozenset[int] = frozenset()) -> list[UnitTask]:
    """The tokenizing units of `run`'s inputs, with their directories under `units`."""
    o = run.options
    return [
        UnitTask(
            str(unit_dir(units, u.index)),
            u,
            run.sources[u.file_index],
            o.text_column,
            o.seed,
            run.threshold,
            o.shard_tokens,
            tuple(sorted(g for g in forced_val if u.file_gpos0 + u.row_start <= g < u.file_gpos0 + u.row_end)),
            bpe_sha256(),
            run.batch_rows,
            o.tokenizer_engine,
            o.filters,
        )
        for u in plan_units(run.sources, run.unit_rows)
    ]


def tokenize(run: Run, prog: Progress) -> tuple[Layout, UnitTally]:
    """A dedup-none prepare's one pass: every unit tokenized, laid out and written, up to a budget."""
    tasks = unit_tasks(run, run.work.units, forced_val(run))
    return lay_out(run_unit, tasks, run, prog)


def shard_writer(run: Run, tasks: list) -> ShardWriter:
    """The writer of `run`'s shards. Its plan (the run's identity and its units) keys the part
    files' journals: a rerun cut into other units starts the open shards again."""
    units = [(Path(t.dir).name, t.rows) for t in tasks]
    key = json.dumps([run.identity, units], sort_keys=True, default=str)
    return ShardWriter(run.work, run.options.format, hashlib.sha256(key.encode()).hexdigest()[:16])


def lay_out(
    fn: Callable, tasks: list, run: Run, prog: Progress, executor: Executor | None = None
) -> tuple[Layout, UnitTally]:
    """Run `fn` on every unit in order through the run's executor, laying out each result as it
    comes and writing the shards it plans (ShardWriter).

    With a budget, units go out in waves sized from the tokens per row seen so far (one unit
    first), and none is started once the finished prefix reaches the target: as one streaming
    pass stops reading there, inputs past the stop are not read (up to a misestimated wave).
    executor (default the run's) runs the units. Returns the layout and what the units did.
    """
    executor, target = executor or run.executor, run.target
    layout = Layout(run.options.shard_tokens, target)
    writer = shard_writer(run, tasks)

    def units(wave):
        for t in wave:
            if layout.stop is not None:
                return
            yield (t,)

    tally = UnitTally()
    docs = rows_done = done = 0
    try:
        while done < len(tasks) and layout.stop is None:
            wave = (
                tasks[done:]
                if target is None
                else tasks[done : done + wave_size(tasks[done:], layout, target, rows_done)]
            )
            for task, r in zip(wave, executor.map(fn, units(wave))):
                done += 1
                if layout.stop is not None:
                    continue  # started before the budget was reached: not needed, failed or not
                if "error" in r:
                    raise r["error"]
                layout.add(task.dir, r)
                writer.update(layout)
                rows_done += task.rows
                docs += sum(r[s]["docs"] for s in SPLIT_NAMES)
                tally.add(r)
                el = prog.elapsed()
                prog.update(
                    f"prepare: {done:,}/{len(tasks):,} units  {docs:,} docs  {tokens(tally.tokens / max(el, 1e-9))} tok/s  "
                    f"ETA {clock(el * (len(tasks) - done) / done)}"
                )
        layout.finish()
        writer.finish(layout)
    except BaseException:
        writer.close()  # the open parts stay, for a rerun to resume from their journals
        raise
    return layout, tally


def wave_size(rest: list, layout: Layout, target: int, rows_done: int) -> int:
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


def forced_val(run: Run) -> frozenset[int]:
    """A dataset of two or more documents always gets a val document.

    Where so few val documents are expected that none might fall under the threshold, read the
    keys once: if no document hashes under it, the one with the smallest hash goes to val.
    """
    o = run.options
    total_rows = sum(s.rows for s in run.sources)
    if o.val_fraction == 0 or total_rows * o.val_fraction >= FORCED_VAL_EXPECTED:
        return frozenset()
    best: tuple[int, int] | None = None
    n_docs, gpos0 = 0, 0
    for fi, src in enumerate(run.sources):
        for b in read_batches(src, fi, o.text_column):
            for i, text in enumerate(b.texts):
                if not text:
                    continue
                n_docs += 1
                key = b.ids[i] if b.ids[i] is not None else text
                h = key_hash(key, o.seed)
                if h < run.threshold:
                    return frozenset()
                if best is None or h < best[0]:
                    best = (h, gpos0 + b.row0 + i)
        gpos0 += src.rows
    return frozenset([best[1]]) if n_docs >= 2 and best is not None else frozenset()
