"""`fwpipe prepare`: FineWeb parquet -> GPT-2 token shards, docs.parquet and manifest.json.

One reading, top to bottom, in every mode: claim the output directory -> check its disk has
room (space.py) -> tokenize (or, with --dedup, a first pass, a plan and a copy of the kept
documents) -> finalize. The inputs are cut into numbered work units (units.py: whole row
groups of one file) that run on an executor (fwpipe.executors: inline, local processes, or
Ray) and write their tokens and rows under .work (workdir.py). One cheap global step in the
driver (layout.py) decides, unit by unit, the budget stop and every shard's pieces, and the
driver writes the shards as it goes, freeing each unit's tokens once a shard holds them
(assemble.py); finalize.py writes docs.parquet, token_counts.npy and the manifest.
Units and shards are written atomically and checked on a rerun, so a kill -9 at any moment
followed by the same command ends with the same bytes as a run that never stopped, whatever
ran where.

May import: the ground floor (fwpipe/*.py, fwpipe.dataset, fwpipe.executors), the dedup
engine (fwpipe.dedup); never another stage.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from fwpipe import remote
from fwpipe.atomic import lock_dir, write_json
from fwpipe.dataset import read_manifest
from fwpipe.errors import FwpipeError, OutputError
from fwpipe.executors import INLINE, Executor, make_executor, sized
from fwpipe.pipeline import dedup_passes, outputs, passes, space
from fwpipe.pipeline.finalize import finalize
from fwpipe.pipeline.inputs import inspect_all, resolve_inputs
from fwpipe.pipeline.options import PrepareOptions, Run
from fwpipe.pipeline.units import UNIT_ROWS, plan_units
from fwpipe.pipeline.workdir import WorkDir
from fwpipe.progress import Progress
from fwpipe.tokenizer import VOCAB_SIZE, check_engine

__all__ = ["DEFAULT_OUT", "PrepareOptions", "prepare"]

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("data/fineweb")


def prepare(
    inputs: list[str | Path],
    out_dir: str | Path = DEFAULT_OUT,
    *,
    options: PrepareOptions = PrepareOptions(),
    executor: Executor | None = None,
    workers: int | None = None,
    batch_rows: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    memory_gb: float | None = None,
    tmp_dir: str | Path | None = None,
    unit_rows: int = UNIT_ROWS,
) -> dict:
    """Tokenize `inputs` into a dataset at `out_dir` and return the summary (also in the manifest).

    executor runs the units and shard assemblies (the CLI passes the one it opened; without one,
    `make_executor(workers)` for this call). A dataset of one unit runs inline whatever the
    executor (executors.sized), paying no pool start-up. unit_rows is the rows a unit gathers
    (units.py; tests shrink it). Memory is bounded per worker by batch_rows (default: ~2 MB of
    compressed input, units.batch_rows_for) and a unit's rows table. memory_gb caps --dedup's
    near-duplicate stages beyond ~50 bytes per document (default 1); tmp_dir holds their scratch
    files (default: out_dir/.work; reused by a resumed run).
    """
    t0 = time.perf_counter()
    fetched_before = remote.STATS.snapshot()
    options.check()
    scratch = {"tmp_dir": tmp_dir}
    if options.dedup != "none" or memory_gb is not None:  # the dedup engine loads numba (~1 s): only when it runs
        from fwpipe.dedup.scratch import memory_bytes

        scratch["memory_bytes"] = memory_bytes(memory_gb)
    paths = resolve_inputs([str(p) for p in inputs])
    # numba's first call costs ~0.4 s of set-up: pay it while the inputs are being hashed
    warm = threading.Thread(target=_warm_up, args=(options.dedup != "none", options.tokenizer_engine), daemon=True)
    warm.start()
    sources = inspect_all(paths, options.text_column, known=_known_hashes(WorkDir(out_dir)))
    warm.join()
    check_engine(options.tokenizer_engine)  # refuse to start if the engine is not exact (checked once, in the warm-up)
    n_units = len(plan_units(sources, unit_rows))
    with contextlib.ExitStack() as stack:
        if executor is None:  # a library call: a pool for this call only, none where sized() would not use it
            executor = INLINE if n_units <= 1 else stack.enter_context(make_executor(workers, units=n_units))
        ex = sized(executor, n_units)
        run = Run(options, sources, paths, WorkDir(out_dir), ex, batch_rows, unit_rows, progress, scratch)
        with _locked(run.out_dir):
            summary = _prepare(run, overwrite)
    summary["seconds"] = seconds = time.perf_counter() - t0
    if summary["did_work"]:
        units = summary.pop("units")
        summary.update(
            workers=ex.workers,
            tokenizer_engine=run.options.tokenizer_engine,
            tokens_this_run=units.tokens,
            tokens_per_s=units.tokens / max(seconds, 1e-9),
        )
        fetched = {k: v + units.fetched[k] for k, v in remote.since(fetched_before).items()}
        if fetched["requests"]:
            summary["fetched"] = fetched
    return summary


def _prepare(run: Run, overwrite: bool) -> dict:
    """The passes, once the output directory is locked: claim -> tokenize or dedup -> assemble -> finalize."""
    state = outputs.claim(run.out_dir, run.identity, overwrite)
    if state == "complete":
        log.info("%s is already prepared from these inputs; nothing to do", run.out_dir)
        return dict(read_manifest(run.out_dir).summary, out_dir=str(run.out_dir), did_work=False)
    space.check_free(run)  # before the first file: a disk that cannot hold the run is one line now, not hours later
    passes.start(run)
    _record_hashes(run)
    # on a cluster: every node must write here and read the (local) inputs the driver reads
    run.executor.check_storage([run.work.root, run.work.out_dir], [p for p in run.paths if Path(str(p)).is_file()])
    prog = Progress(enabled=run.progress, piped_every_s=passes.PIPED_EVERY_S)
    try:
        if run.options.dedup == "none":
            layout, units = passes.tokenize(run, prog)
            dedup = None
        else:
            first = dedup_passes.first_pass(run)
            prog.update(f"prepare: writing the {int(first.plan.keep.sum()):,} documents dedup keeps", force=True)
            layout = dedup_passes.copy_kept_documents(run, first.plan, prog)
            units, dedup = first.units, first.tallies
            del first  # the plan's arrays (~2 bytes a document by now) are not needed by finalize
        prog.update("prepare: writing docs.parquet and the manifest", force=True)
    finally:
        prog.close()
    summary = finalize(run, layout.shard_counts(), layout, dedup)
    return dict(summary, did_work=True, resumed=state == "resume", units=units)


def _known_hashes(work: WorkDir) -> dict[str, str]:
    """The inputs' sha256s an interrupted run recorded, by stat_key (inputs.py): a resume does
    not hash inputs that provably did not change (~1 s a GB). Read before the lock is taken:
    a guess, checked again by identity once the directory is ours."""
    try:
        if work.root.is_symlink():
            return {}
        known = json.loads(work.inputs.read_text())["files"]
        return {k: v for k, v in known.items() if isinstance(k, str) and isinstance(v, str)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _record_hashes(run: Run) -> None:
    write_json(run.work.inputs, {"files": {s.stat_key: s.sha256 for s in run.sources if s.stat_key and s.sha256}})


@contextlib.contextmanager
def _locked(out_dir: Path):
    """Hold an exclusive lock on the output directory, so two prepares never write one dataset."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {out_dir}: {e.strerror or e}", "choose another -o") from e
    fd = lock_dir(
        out_dir,
        busy="another fwpipe prepare is writing this dataset",
        open_hint="choose another -o",
        hint="wait for it to finish, or stop it and run this command again to resume",
    )
    try:
        yield
    finally:
        os.close(fd)


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
