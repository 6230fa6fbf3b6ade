"""`prepare --dedup`: a first pass, a plan of which documents to keep, and a copy of them.

1. first_pass: each input file into a dedup-none dataset of its own under .work (a "stage":
   every document, in input order, all in train), through the same units, lay-out, assembly
   and finalize as any prepare. A rerun reuses the stages whose manifest is complete.
2. plan: the stages as one stream through the dedup engine (fwpipe.dedup): exact copies, then
   MinHash near-duplicate components in stages on disk. One cluster, one side: every member
   follows the split that the cluster's first member's key hashes to, so near duplicates never
   straddle train and val; with dedup on, only that first member is kept anyway.
3. copy_kept_documents: per stage a unit that copies the kept documents' tokens and rows out
   of it (copy_kept, below), laid out like tokenized units: the shards come from the same
   global step and writer as a dedup-none prepare's. The copies run one at a time in the
   driver, and each frees its stage's shards once it is written, so the first pass and the
   result share the disk (about one input's worth of tokens is on it twice, not the dataset).

Between 2 and 3 the plan is saved (.work/plan: removed.parquet, then keep and split, 2 bytes a
document, then plan.json last, as its marker), so a rerun after the first stage was freed
never needs the first pass again: it loads the plan and goes on with the copies.

Returns to prepare a Layout and the first pass's tallies (skipped rows, the token_count check,
the dedup report) that finalize records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fwpipe import shards
from fwpipe.atomic import write_json
from fwpipe.dataset import (
    DOCS,
    MANIFEST,
    REMOVED,
    REMOVED_COLUMNS,
    TOKEN_COUNTS,
    Dataset,
    Split,
    open_dataset,
    read_manifest,
)
from fwpipe.dedup import (
    DEFAULT_MEMORY_BYTES,
    DedupConfig,
    Scratch,
    components,
    exact_first,
    index_shards,
    near_clusters,
)
from fwpipe.dedup.docs import index_dtype
from fwpipe.errors import OutputError
from fwpipe.executors import INLINE, Executor
from fwpipe.pipeline import outputs, passes
from fwpipe.pipeline.finalize import DedupTallies, finalize
from fwpipe.pipeline.layout import Layout
from fwpipe.pipeline.options import Run
from fwpipe.pipeline.shardset import write_npy_atomic, write_parquet_atomic
from fwpipe.pipeline.split import TRAIN, VAL
from fwpipe.pipeline.tokenize import ChunkRows
from fwpipe.pipeline.units import UnitWriter, run_unit, verified
from fwpipe.progress import Progress
from fwpipe.tokenizer import EOT

log = logging.getLogger(__name__)

Dedup = Literal["none", "exact", "near"]
CONFIG = DedupConfig()  # the engine's defaults, the same as audit's, so audit finds what prepare removed


# Rows a batch when the plan re-reads the first pass's docs.parquet (removed.parquet, pass 2):
# ~100 bytes a row in flight, so 64K rows hold ~6 MB however many documents there are.
BATCH_ROWS = 1 << 16


PLAN_VERSION = 1  # bump when what .work/plan holds changes


@dataclass
class Kept:
    """What pass 2 needs of the plan (saved in .work/plan): the stages and their documents'
    keep and split, 2 bytes a document."""

    stages: list[Path]
    stage_docs: list[int]
    keep: np.ndarray  # (n,) bool
    split: np.ndarray  # (n,) int8 TRAIN / VAL


@dataclass
class FirstPass:
    """What --dedup's first pass hands on: the plan, and the tallies finalize records."""

    plan: Kept
    units: passes.UnitTally  # tokens this run tokenized, bytes other processes fetched
    tallies: DedupTallies  # the plan's report; rows skipped and the token_count check, over the stages


def first_pass(run: Run) -> FirstPass:
    """Pass 1 of --dedup: each input file into its own resumable dedup-none dataset under .work
    (its units run on the run's executor like any prepare's), then the plan.

    Without a budget the units of every file not yet done run first, all in one go (so small
    files keep every worker busy), then each file's stage is laid out from them. With a budget,
    files are taken in order only until the documents that dedup keeps in train reach it, so
    the inputs after that are never read. A plan an earlier run saved is loaded instead.
    """
    saved = load_plan(run)
    if saved is not None:
        log.info("dedup: the plan an interrupted run saved is reused; the first pass is not redone")
        return saved
    note = Progress(enabled=run.progress, piped_every_s=passes.PIPED_EVERY_S)
    tally = passes.UnitTally()
    if run.target is None:
        tally += _first_pass_units(run, note)
    names = [src.path for src in run.sources]
    stages, raw_train, done = [], 0, []
    for fi in range(len(run.sources)):
        stage, tallies = _stage(run.stage(fi), run.work.first_units_of(fi))
        stages.append(stage.work.out_dir)
        tally += tallies
        raw_train += read_manifest(stage.out_dir).split_totals("train").stream_tokens
        done.append(stage)
        # dedup only removes, so the (costlier) clustering is worth running only once the raw
        # first pass could hold the budget
        if run.target is not None and fi + 1 < len(run.sources) and raw_train >= run.target:
            note.update(f"prepare: finding duplicates among {raw_train:,} tokens", force=True)
            p = _plan(run, stages, names)
            if p.kept_train_stream >= run.target:
                log.info("budget reached after %d of %d input files", fi + 1, len(run.sources))
                break
    else:
        note.update(f"prepare: finding duplicates among {raw_train:,} tokens", force=True)
        p = _plan(run, stages, names)
    note.close()
    tallies = DedupTallies(p.report, *_tallies(done), stages=[s.work.out_dir for s in done])
    return FirstPass(save_plan(run, p, tallies), tally, tallies)


def save_plan(run: Run, p: DedupPlan, tallies: DedupTallies) -> Kept:
    """removed.parquet, keep and split, then plan.json (the marker, written last)."""
    d = run.work.plan
    d.mkdir(exist_ok=True)
    write_parquet_atomic(removed_table(p, 8 * (run.batch_rows or 1024)), d / REMOVED)
    kept = Kept(list(p.stages), [pq.read_metadata(Path(st) / DOCS).num_rows for st in p.stages], p.keep, p.split)
    write_npy_atomic(d / "keep.npy", kept.keep)
    write_npy_atomic(d / "split.npy", kept.split)
    write_json(
        d / "plan.json",
        {
            "version": PLAN_VERSION,
            "identity": _identity_digest(run),
            "stages": [Path(st).name for st in kept.stages],  # under .work: the directory may have moved
            "stage_docs": kept.stage_docs,
            "names": [src.path for src in run.sources],  # as removed.parquet spells the inputs
            "keep": _digest(kept.keep),
            "split": _digest(kept.split),
            "tallies": {k: getattr(tallies, k) for k in ("report", "skipped", "token_count_check")},
        },
    )
    return kept


def load_plan(run: Run) -> FirstPass | None:
    """The plan an interrupted run of this dataset saved, every file checked, else None."""
    d = run.work.plan
    try:
        j = json.loads((d / "plan.json").read_text())
        if j["version"] != PLAN_VERSION or j["identity"] != _identity_digest(run):
            return None
        keep, split = np.load(d / "keep.npy"), np.load(d / "split.npy")
        if _digest(keep) != j["keep"] or _digest(split) != j["split"] or not (d / REMOVED).is_file():
            return None
        stages = [run.work.root / name for name in j["stages"]]
        t = j["tallies"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    tallies = DedupTallies(t["report"], t["skipped"], t["token_count_check"], stages=stages)
    return FirstPass(Kept(stages, j["stage_docs"], keep, split), passes.UnitTally(), tallies)


def _identity_digest(run: Run) -> str:
    """The run's identity as resume compares it (an input is its bytes, however its path is spelt)."""
    return _digest(json.dumps(outputs.comparable(run.identity), sort_keys=True).encode())


def _digest(data) -> str:
    return hashlib.sha256(np.ascontiguousarray(data) if isinstance(data, np.ndarray) else data).hexdigest()


def _plan(run: Run, stages: list[Path], names: list[str]) -> DedupPlan:
    return plan(
        stages,
        run.options.dedup,
        threshold=run.threshold,
        force_val=run.options.val_fraction > 0,
        names=names,
        executor=run.executor,
        **run.scratch,
    )


def _first_pass_units(run: Run, note: Progress) -> passes.UnitTally:
    """Tokenize the units of every first-pass stage that is not complete, in one map."""
    tasks = []
    for fi in range(len(run.sources)):
        if not _complete(run.work.stage(fi).out_dir):
            tasks += passes.unit_tasks(run.stage(fi), run.work.first_units_of(fi))
    tally = passes.UnitTally()
    for i, r in enumerate(run.executor.map(run_unit, [(t,) for t in tasks])):
        if "error" in r:
            raise r["error"]
        tally.add(r)
        note.update(f"prepare: first pass, {i + 1:,}/{len(tasks):,} units")
    return tally


def _complete(d: Path) -> bool:
    m = read_manifest(d) if d.is_dir() else None
    return m is not None and m.status == "complete"


def _stage(stage: Run, units: Path) -> tuple[Run, passes.UnitTally]:
    """One input as a dedup-none dataset (or the one a previous run finished), its units in
    `units` (removed once they are in the stage's shards)."""
    tally = passes.UnitTally()
    if not _complete(stage.work.out_dir):
        stage.work.out_dir.mkdir(parents=True, exist_ok=True)
        passes.start(stage)
        prog = Progress(enabled=stage.progress)
        try:
            layout, tally = passes.lay_out(run_unit, passes.unit_tasks(stage, units), stage, prog)
        finally:
            prog.close()
        finalize(stage, layout.shard_counts(), layout)
    shutil.rmtree(units, ignore_errors=True)  # in the stage's shards now
    return stage, tally


def _tallies(stages: list[Run]) -> tuple[dict, dict | None]:
    """Skipped rows and the token_count check, summed over the first pass's stages."""
    skipped: dict = {}
    check: dict | None = None
    for stage in stages:
        m = read_manifest(stage.work.out_dir)
        for k, v in m.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
        tc = m.token_count_check
        if tc is not None:
            if check is None:
                check = {"checked": 0, "differ": 0, "email_placeholder": 0, "real": 0, "first_real": []}
            for k in ("checked", "differ", "email_placeholder", "real"):
                check[k] += tc[k]
            check["first_real"] = (check["first_real"] + tc["first_real"])[:5]
    return skipped, check


def copy_kept_documents(run: Run, kept: Kept, prog: Progress) -> Layout:
    """Pass 2 of --dedup: the documents the plan keeps, copied from each first-pass stage into a
    unit of its own (copy_kept), then laid out like tokenized units: one shard-writing path.

    The copies run in this process, one at a time (each is a copy, not a tokenization): a stage's
    shards are freed as soon as its copy is written, before the next copy starts.
    """
    _removed_as_named(run)
    gpos0 = np.cumsum([0] + [src.rows for src in run.sources])
    tasks, row0 = [], 0
    for si, (stage, n) in enumerate(zip(kept.stages, kept.stage_docs)):
        tasks.append(
            CopyTask(
                str(run.work.copy_unit(si)),
                str(Path(stage).absolute()),
                si,
                int(gpos0[si]),
                kept.keep[row0 : row0 + n].copy(),
                kept.split[row0 : row0 + n].copy(),
                8 * (run.batch_rows or 1024),
            )
        )
        row0 += n
    return passes.lay_out(copy_kept, tasks, run, prog, executor=INLINE)[0]


@dataclass
class DedupPlan:
    """Keep and split for every first-pass document, in ~10 bytes a document.

    The first pass's strings (id, url, source_file: ~100 bytes a document) stay on disk in the
    stages' docs.parquet; batches() reads them back in input order when they are needed.
    """

    dataset: Dataset  # the first pass, one train stream in input order
    stages: list[Path]  # its datasets, one per input file, in input order
    names: list[str] | None  # the name this run gives each stage's input (see first_pass)
    shard_base: np.ndarray  # (stages,) index of each stage's first shard in the combined list
    rep: np.ndarray  # (n,) int32 (int64 past 2**31 documents): the first member of each document's cluster
    split: np.ndarray  # (n,) int8 TRAIN / VAL for every document, by its cluster's first member
    keep: np.ndarray  # (n,) bool
    exact_first: np.ndarray  # (n,) the same dtype as rep: earliest identical document
    clusters: int
    report: dict
    kept_train_stream: int  # stream tokens (with EOT) of the documents kept in train: what a budget counts

    def forget_clusters(self) -> None:
        """Drop what only removed.parquet needs (rep, exact_first: 8 bytes a document), once it
        is written; pass 2 needs keep and split only."""
        self.rep = self.exact_first = np.zeros(0, np.int32)

    def batches(self, columns: list[str], batch_rows: int = BATCH_ROWS) -> Iterator[tuple[int, pa.Table]]:
        """(first row, table) for the first pass's docs.parquet rows, in order, `batch_rows` at a time.

        docs["shard"] indexes the combined list of shards; with names, docs["source_file"] is
        the name this run gave each input: a resumed run may spell a path differently
        (relative, absolute) from the run that wrote the stage.
        """
        row0 = 0
        for si, stage in enumerate(self.stages):
            f = pq.ParquetFile(stage / DOCS)
            for b in f.iter_batches(batch_size=batch_rows, columns=columns):
                t = pa.Table.from_batches([b])
                if "source_file" in columns:
                    source = (
                        pa.array([self.names[si]] * t.num_rows, pa.string())
                        if self.names
                        else t["source_file"].cast(pa.string())
                    )
                    t = t.set_column(t.schema.get_field_index("source_file"), "source_file", source)
                if "shard" in columns:
                    t = t.set_column(
                        t.schema.get_field_index("shard"),
                        "shard",
                        pc.add(t["shard"], pa.scalar(int(self.shard_base[si]), pa.int32())),
                    )
                yield row0, t
                row0 += t.num_rows
            f.close()


def one_stream(stages: list[Path], threshold: int) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """The first-pass datasets (one per input file, in input order) as one train stream.

    Returns it with each stage's first shard in the combined list, and whether each document's
    key_hash (docs.parquet) is below the val threshold: 1 byte a document held, not the 8 of
    the hash (read in batches; the smallest hash, which force_val may need, is read again then).
    """
    dss = [open_dataset(d) for d in stages]
    train = Split(
        "train", [p for ds in dss for p in ds.split("train").paths], [t for ds in dss for t in ds.split("train").shards]
    )
    shard_base = np.cumsum([0] + [len(ds.split("train").shards) for ds in dss])[:-1]
    below = np.empty(sum(pq.read_metadata(d / DOCS).num_rows for d in stages), dtype=bool)
    for row0, h in _key_hashes(stages):
        below[row0 : row0 + len(h)] = h < np.uint64(threshold)
    ds = Dataset(stages[0].parent, "fwpipe", {"train": train, "val": Split("val", [], [])})
    return ds, shard_base, below


def _key_hashes(stages: list[Path]) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, key_hash) of the first pass's docs.parquet rows in input order, BATCH_ROWS at a time."""
    row0 = 0
    for d in stages:
        with pq.ParquetFile(d / DOCS) as f:
            for b in f.iter_batches(batch_size=BATCH_ROWS, columns=["key_hash"]):
                yield row0, b.column(0).to_numpy()
                row0 += b.num_rows


def _smallest_hash(stages: list[Path], among: np.ndarray) -> int:
    """The first row of the smallest key_hash among the rows `among` marks (np.argmin's choice)."""
    best, best_row = None, -1
    for row0, h in _key_hashes(stages):
        rows = np.flatnonzero(among[row0 : row0 + len(h)])
        if len(rows) and (best is None or h[rows].min() < best):
            i = rows[np.argmin(h[rows])]
            best, best_row = h[i], row0 + int(i)
    return best_row


def plan(
    stages: list[Path],
    mode: Dedup,
    *,
    threshold: int,
    force_val: bool,
    names: list[str] | None = None,
    tmp_dir: str | Path | None = None,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    executor: Executor = INLINE,
) -> DedupPlan:
    """Find clusters in the first pass and decide keep and split for every document.

    `threshold` is the split's 64-bit val threshold; with `force_val`, a dataset whose kept
    documents all hash to train sends the smallest-hash cluster to val. The engine's scratch
    files go under tmp_dir (default: beside the first pass) and are removed at the end.
    """
    ds, shard_base, below = one_stream(stages, threshold)
    corpus = index_shards(ds.split("train").shards, EOT)
    n = len(corpus.starts)
    if len(below) != n:
        raise AssertionError(f"first pass holds {n} documents but docs.parquet {len(below)}")
    first = exact_first(corpus)
    report: dict = {"mode": mode}
    sc = None
    if mode == "exact" or n == 0:
        rep = first.copy()
        split = _split_of(below, rep)
        keep = rep == np.arange(n, dtype=rep.dtype)
    else:
        identity = {
            "stages": [
                (str(Path(p).resolve()), sorted((f.name, f.stat().st_size) for f in Path(p).iterdir() if f.is_file()))
                for p in stages
            ]
        }
        sc, comp = near_clusters(
            corpus,
            CONFIG,
            copy_of=first,
            tmp_dir=tmp_dir or Path(stages[0]).parent,
            identity=identity,
            memory_bytes=memory_bytes,
            executor=executor,
        )
        rep = comp.root  # the smallest member of each component is its first
        del comp
        keep = rep == np.arange(n, dtype=rep.dtype)
        split = _split_of(below, rep)
        rounds = 0
        while residual_pass(sc, corpus, keep, rep, split, rounds):
            rounds += 1
        report.update(
            {k: v for k, v in CONFIG.as_dict().items() if k in ("threshold", "shingle", "num_perm", "bands", "rows")}
        )
    del below
    if force_val and keep.sum() >= 2 and not (split[keep] == VAL).any():
        # a dataset of two or more documents always gets a val document: the smallest hash
        chosen = _smallest_hash(stages, keep)
        split[rep == chosen] = VAL
    clusters = int(len(np.unique(rep[rep != np.arange(n, dtype=rep.dtype)])))
    gone = ~keep
    # token counts from the offsets (docs.parquet's n_tokens is the same number)
    kept_train = keep & (split == TRAIN)
    report.update(
        clusters=clusters,
        removed_docs=int(gone.sum()),
        removed_tokens=int((corpus.ends[gone] - corpus.starts[gone]).sum()),
        removed_exact=int((gone & (first == rep)).sum()),
    )
    kept_train_stream = int((corpus.ends[kept_train] - corpus.starts[kept_train] + 1).sum())
    report["removed_near"] = report["removed_docs"] - report["removed_exact"]
    if sc is not None:
        sc.remove()
    log.info("dedup %s: %d clusters, %d documents removed", mode, clusters, report["removed_docs"])
    return DedupPlan(ds, list(stages), names, shard_base, rep, split, keep, first, clusters, report, kept_train_stream)


def _split_of(below: np.ndarray, rep: np.ndarray) -> np.ndarray:
    """(n,) int8 TRAIN / VAL: each document follows its cluster's first member's key hash."""
    split = np.full(len(rep), TRAIN, dtype=np.int8)
    split[below[rep]] = VAL
    return split


def residual_pass(
    sc: Scratch, corpus, keep: np.ndarray, rep: np.ndarray, split: np.ndarray, round_: int, cfg: DedupConfig = CONFIG
) -> bool:
    """Band the kept documents again, in the order the audit stage will see them (train, then val).

    Buckets of over cfg.max_bucket documents pair each member with the bucket's first only,
    so a pair missed among many can surface once its family is gone. Any pair found now is
    removed too (the later one in audit order goes), so that audit finds none on the result.
    Returns whether anything was removed; the caller repeats until nothing is.
    """
    dt = index_dtype(len(keep))  # members as int32: 4 bytes a kept document, not flatnonzero's 8
    order = np.concatenate([np.flatnonzero(keep & (split == s)).astype(dt) for s in (TRAIN, VAL)])
    root = components(sc, corpus, cfg, members=order, tag=f"residual{round_}").root
    gone = root != np.arange(len(order), dtype=root.dtype)
    if not gone.any():
        return False
    keep[order[gone]] = False
    rep[order[gone]] = order[root[gone]]
    rep[:] = rep[rep]  # documents that pointed at a newly removed one follow it to its keeper
    log.info("dedup: %d more near duplicates among the kept documents", int(gone.sum()))
    return True


def removed_table(p: DedupPlan, batch_rows: int = BATCH_ROWS) -> pa.Table:
    """removed.parquet: every dropped document, why, and the kept document it duplicates.

    Only the rows it names (the dropped documents and their keepers) are read back from the
    first pass, batch by batch: memory follows the number removed, not the number of documents.
    """
    gone = np.flatnonzero(~p.keep)
    kept = p.rep[gone]
    need = np.unique(np.concatenate([gone, kept]))
    cols = ["id", "source_file", "source_row", "n_tokens"]
    parts = []
    for row0, t in p.batches(cols, batch_rows):
        lo, hi = np.searchsorted(need, [row0, row0 + t.num_rows])
        if hi > lo:
            parts.append(t.take(pa.array(need[lo:hi] - row0, pa.int64())))
    d = (
        pa.concat_tables(parts)
        if parts
        else pa.table({c: pa.array([], pa.string() if c in ("id", "source_file") else pa.int64()) for c in cols})
    )
    take = lambda col, rows: d[col].take(pa.array(np.searchsorted(need, rows), pa.int64()))  # noqa: E731
    # "exact" when identical to the kept document (the earliest copy, so exact_first points at it)
    reason = np.where(p.exact_first[gone] == kept, "exact", "near")
    cluster_ids = np.unique(p.rep[~p.keep], return_inverse=True)[1] if len(gone) else np.zeros(0, np.int64)
    return pa.table(
        {
            "id": take("id", gone),
            "source_file": take("source_file", gone),
            "source_row": take("source_row", gone),
            "n_tokens": take("n_tokens", gone),
            "reason": pa.array(reason.tolist(), pa.string()),
            "cluster": pa.array(cluster_ids.astype(np.int64)),
            "kept_id": take("id", kept),
            "kept_source_file": take("source_file", kept),
            "kept_source_row": take("source_row", kept),
        }
    ).select(list(REMOVED_COLUMNS))


# ----------------------------------------------------------------------------- pass 2 as units

_EOT16 = np.array([EOT], dtype=np.uint16)
_COLUMNS = ["source_row", "n_tokens", "n_bytes", "key_hash", "fineweb_token_count", "shard", "offset", "id", "url"]


@dataclass(frozen=True)
class CopyTask:
    dir: str  # the unit's directory
    stage: str  # the first-pass dataset of input `file_index` (one train split, in input order)
    file_index: int
    file_gpos0: int  # global row of the input's row 0
    keep: np.ndarray  # (stage docs,) bool
    split: np.ndarray  # (stage docs,) int8 TRAIN / VAL
    batch_rows: int

    @property
    def rows(self) -> int:
        return len(self.keep)


def copy_kept(task: CopyTask) -> dict:
    """Copy the kept documents of one stage, in input order, into a unit; returns its result.

    The stage's docs.parquet is read `batch_rows` rows at a time, so its strings (ids, urls:
    ~100 bytes a document) are never all in memory at once; each stage shard's mapped pages are
    dropped once the copy has moved past it. A rerun skips a unit whose marker checks out for
    the same stage and plan (its tokens may be in the shards already: units.consume).
    """
    identity = {
        "copy_of": task.stage,
        "keep": hashlib.sha256(np.ascontiguousarray(task.keep)).hexdigest(),
        "split": hashlib.sha256(np.ascontiguousarray(task.split)).hexdigest(),
    }
    done = verified(Path(task.dir), identity)
    if done is not None:
        free_stage(Path(task.stage))  # a run killed between the copy and freeing its stage
        return dict(done, ran=False)
    if not (Path(task.stage) / MANIFEST).is_file():
        raise OutputError(
            f"{task.stage}: the first pass of this input was freed, but its copy is not whole",
            "run the same command again with --overwrite",
        )
    w = UnitWriter(Path(task.dir))
    try:
        tokens = open_dataset(task.stage).split("train").shards
        f = pq.ParquetFile(Path(task.stage) / "docs.parquet")
        row0 = released = 0
        for b in f.iter_batches(batch_size=task.batch_rows, columns=_COLUMNS):
            d = pa.Table.from_batches([b])
            kept = np.flatnonzero(task.keep[row0 : row0 + d.num_rows])  # rows of this batch
            row0 += d.num_rows
            if len(kept) == 0:
                continue
            c = {k: d[k].to_numpy() for k in ("source_row", "n_tokens", "n_bytes", "key_hash", "shard", "offset")}
            ftc = d["fineweb_token_count"].fill_null(-1).to_numpy()
            split = task.split[kept + row0 - d.num_rows]
            for sid in (TRAIN, VAL):
                rows = kept[split == sid]
                pieces = []
                for r in rows:  # EOT, then the document's tokens from the first pass
                    pieces.append(_EOT16)
                    pieces.append(tokens[c["shard"][r]][c["offset"][r] : c["offset"][r] + c["n_tokens"][r]])
                take = pa.array(rows, pa.int64())
                w.add(
                    sid,
                    ChunkRows(
                        task.file_gpos0 + c["source_row"][rows],
                        np.full(len(rows), task.file_index, np.int32),
                        c["source_row"][rows],
                        np.zeros(len(rows), np.int8),
                        c["n_tokens"][rows],
                        c["n_bytes"][rows],
                        c["key_hash"][rows],
                        ftc[rows],
                        np.zeros(len(rows), bool),
                        d["id"].take(take).to_pylist(),
                        d["url"].take(take).to_pylist(),
                        np.concatenate(pieces).astype(np.uint16, copy=False) if pieces else np.zeros(0, np.uint16),
                    ),
                )
            # mapped pages count in RSS: a 40-token document's are 80 bytes, the whole stage over a pass
            for s in range(released, int(c["shard"][kept[0]])):
                shards.release_pages(tokens[s])
            released = max(released, int(c["shard"][kept[0]]))
        for s in range(released, len(tokens)):
            shards.release_pages(tokens[s])
        result = w.commit(identity)
    except BaseException:
        w.abort()
        raise
    free_stage(Path(task.stage))
    return dict(result, ran=False)


def _removed_as_named(run: Run) -> None:
    """The saved removed.parquet at .work/removed.parquet (finalize moves, and may extend, it),
    its inputs named as this run names them: a resumed run may spell a path differently."""
    t = pq.read_table(run.work.plan / REMOVED)
    old = json.loads((run.work.plan / "plan.json").read_text())["names"]
    rename = dict(zip(old, [src.path for src in run.sources]))
    for col in ("source_file", "kept_source_file"):
        names = [rename.get(v, v) for v in t[col].to_pylist()]
        t = t.set_column(t.schema.get_field_index(col), col, pa.array(names, t.schema.field(col).type))
    write_parquet_atomic(t, run.work.removed)


def free_stage(stage: Path) -> None:
    """A stage whose kept documents are copied: its manifest goes first (it vouches for the
    shards), then its shards and docs.parquet; with --filter its removed.parquet stays for finalize."""
    if not stage.is_dir():
        return
    (stage / MANIFEST).unlink(missing_ok=True)
    for f in [*stage.glob("train_*.bin"), stage / DOCS, stage / TOKEN_COUNTS]:
        f.unlink(missing_ok=True)
