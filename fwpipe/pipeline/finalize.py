"""The end of a prepare: docs.parquet, token_counts.npy, nanoGPT files, removed.parquet, manifest.

Runs once every shard is durable. It streams one shard's rows table at a time, so memory does
not grow with the number of documents, and it writes the manifest (status "complete") last:
a dataset without that manifest is never read as finished.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fwpipe import __version__, budget, shards
from fwpipe.atomic import atomic_file, commit_file
from fwpipe.dataset import (
    DOCS,
    REMOVED,
    TOKEN_COUNTS,
    Manifest,
    ShardFile,
    Sizing,
    SplitTotals,
    docs_schema,
    prepare_outputs,
    shard_name,
    write_manifest,
)
from fwpipe.lengthbins import length_bin_edges
from fwpipe.pipeline.assemble import rows_parts, rows_table
from fwpipe.pipeline.inputs import Source
from fwpipe.pipeline.layout import Layout
from fwpipe.pipeline.options import Run
from fwpipe.pipeline.shardset import read_stats, write_npy_atomic
from fwpipe.pipeline.split import SPLIT_NAMES
from fwpipe.pipeline.tokenize import EMPTY_TEXT, NULL_TEXT, OK, TOO_LONG
from fwpipe.quality.filter import FILTERED
from fwpipe.quality.removed import append_removed, write_filtered
from fwpipe.tokenizer import EOT, VOCAB_SIZE

log = logging.getLogger(__name__)
DOCS_GROUP_ROWS = 1 << 20  # rows a docs.parquet row group holds (the file's bytes depend on it)
_HINT = "free disk space or choose another -o directory, then run the same command again to resume"


@dataclass
class DedupTallies:
    """What --dedup's passes counted, recorded by finalize instead of its own counts: the plan's
    report, and the rows skipped and the token_count check, summed over the first pass (the
    second pass copies documents only)."""

    report: dict
    skipped: dict
    token_count_check: dict | None
    stages: list[Path]  # the first pass's datasets: with --filter, their removed.parquet joins dedup's


def finalize(run: Run, n_shards: dict[str, int], layout: Layout, dedup: DedupTallies | None = None) -> dict:
    """All shards are durable: write docs.parquet, token_counts.npy, the nanoGPT .bin files, the manifest.

    The layout's trailing rows (after each split's last shard) are skipped rows only. Streams
    one shard's rows at a time, so memory does not grow with the number of documents.
    """
    out_dir, work, options = run.work.out_dir, run.work, run.options
    per_split, hists, skipped = _totals(run, n_shards, layout)
    bases = _write_nanogpt(out_dir, run.shard_dir, per_split) if options.format == "nanogpt" else None
    names = pa.array([s.path for s in run.sources], pa.string())
    tc_check = _write_docs(run, layout, bases, names)
    write_npy_atomic(out_dir / TOKEN_COUNTS, np.stack([hists[s] for s in SPLIT_NAMES]))

    total_docs = per_split["train"].docs + per_split["val"].docs
    if total_docs >= 2 and options.val_fraction > 0 and per_split["val"].docs == 0:
        log.warning("no document fell into val although %d documents were prepared", total_docs)
    if dedup is not None:  # rows were skipped and checked in the first pass; removed ones listed
        skipped, tc_check = dedup.skipped, dedup.token_count_check
        if options.filters:  # the stages' filtered rows join dedup's list
            append_removed(work.removed, [s / REMOVED for s in dedup.stages])
        commit_file(work.removed, out_dir / REMOVED)  # pass 2 writes it again from the saved plan if need be
    elif options.filters:
        columns = ["status", "file_index", "source_row", "id"]
        tables = (t for split in SPLIT_NAMES for t in _split_tables(layout, split, columns=columns))
        write_filtered(out_dir / REMOVED, tables, names)
    sizing = _sizing(run, per_split["train"].stream_tokens, layout.stop)
    summary = {
        "splits": {
            s: {k: v for k, v in vars(per_split[s]).items() if k not in ("shard_files", "length_hist")}
            for s in SPLIT_NAMES
        },
        "docs": total_docs,
        "tokens": per_split["train"].tokens + per_split["val"].tokens,
        "skipped": skipped,
        "token_count_check": tc_check,
        "sources": len(run.sources),
        "format": options.format,
        "sizing": sizing.to_json() if sizing else None,
        "dedup": dedup.report if dedup is not None else {"mode": "none"},
    }
    manifest = Manifest(
        status="complete",
        **run.identity,
        fwpipe_version=__version__,
        splits=per_split,
        length_bin_edges=length_bin_edges(),
        skipped=skipped,
        token_count_check=tc_check,
        sizing=sizing,
        dedup=summary["dedup"],
        files={
            "docs": DOCS,
            "token_counts": f"{TOKEN_COUNTS} (int64, shape (2, vocab): train, val)",
            **({"removed": REMOVED} if dedup is not None or options.filters else {}),
        },
        summary=summary,
        # every file this prepare wrote: the only ones a later --overwrite deletes (outputs.py)
        outputs=prepare_outputs(
            [f.file for s in SPLIT_NAMES for f in per_split[s].shard_files], removed=dedup is not None
        ),
    )
    write_manifest(out_dir, manifest)
    shutil.rmtree(work.root, ignore_errors=True)
    return dict(summary, out_dir=str(run.out_dir))


def _totals(
    run: Run, n_shards: dict[str, int], layout: Layout
) -> tuple[dict[str, SplitTotals], dict[str, np.ndarray], dict]:
    """Per split: its totals and token histogram, from the shards' sidecars; and the rows skipped."""
    per_split, hists = {}, {}
    skipped = {"null_text": 0, "empty_text": 0, "too_long": 0}
    for split in SPLIT_NAMES:
        token_counts = np.zeros(VOCAB_SIZE, dtype=np.int64)
        length_hist = np.zeros(len(length_bin_edges()), np.int64)
        shard_files = []
        for i in range(n_shards[split]):
            tc, lh = read_stats(run.work.sidecar(split, i, "stats.npy"))
            token_counts += tc
            length_hist += lh
            # the writer checked each shard holds what the layout planned (assemble.py)
            shard_files.append(ShardFile(shard_name(split, i), layout.shards[split][i].n_tokens))
        docs = tokens = 0
        for t in _split_tables(layout, split, columns=["status", "n_tokens"]):
            status = t["status"].to_numpy()
            for name, code in (("null_text", NULL_TEXT), ("empty_text", EMPTY_TEXT), ("too_long", TOO_LONG)):
                skipped[name] += int((status == code).sum())
            if run.options.filters:
                skipped["filtered"] = skipped.get("filtered", 0) + int((status >= FILTERED).sum())
            ok = status == OK
            docs += int(ok.sum())
            tokens += int(t["n_tokens"].to_numpy()[ok].sum())
        per_split[split] = SplitTotals(
            docs=docs,
            tokens=tokens,
            stream_tokens=tokens + docs,
            distinct_tokens=int((token_counts > 0).sum() - (token_counts[EOT] > 0)),
            shards=n_shards[split],
            shard_files=shard_files,
            length_hist=length_hist.tolist(),
        )
        hists[split] = token_counts
    return per_split, hists, skipped


def _write_docs(run: Run, layout: Layout, bases: dict | None, names: pa.Array) -> dict | None:
    """docs.parquet, streamed into an atomic temp file (a full disk leaves neither it nor its
    temp); returns the token_count check made on the way."""
    check = _TokenCountCheck(run.sources)
    with (
        atomic_file(run.work.out_dir / DOCS, hint=_HINT) as f,
        pq.ParquetWriter(f, docs_schema(), compression="zstd") as w,
    ):
        for split in SPLIT_NAMES:
            for pieces, index in _shards_pieces(layout, split):
                # one shard's rows, a row group at a time: the bytes of writing the shard's table
                # whole (its row groups, each column one chunk in each), with 1M rows in memory
                # at once instead of the shard's (2.4M rows of 40-token documents)
                pending, rows, wrote = [], 0, False
                for t in rows_parts(pieces, index):
                    ok = pc.equal(t["status"], OK)
                    if not pc.all(ok).as_py():  # else the piece as it is: the units' mapped rows, not a copy
                        t = t.filter(ok)
                    check.add(t)
                    pending.append(t)
                    rows += t.num_rows
                    while rows >= DOCS_GROUP_ROWS:
                        g = pa.concat_tables(pending)
                        group = g.slice(0, DOCS_GROUP_ROWS).combine_chunks()
                        w.write_table(_docs_rows(group, split, names, bases), row_group_size=DOCS_GROUP_ROWS)
                        pending, rows, wrote = [g.slice(DOCS_GROUP_ROWS)], rows - DOCS_GROUP_ROWS, True
                        del g, group
                        pa.default_memory_pool().release_unused()  # else the allocator keeps each group's pages
                if rows:
                    rest = pa.concat_tables(pending).combine_chunks()
                    w.write_table(_docs_rows(rest, split, names, bases), row_group_size=DOCS_GROUP_ROWS)
                elif not wrote:  # no document: what writing the whole (empty) table wrote
                    t = rows_table(pieces, index)
                    t = t.filter(pc.equal(t["status"], OK))
                    w.write_table(_docs_rows(t, split, names, bases), row_group_size=DOCS_GROUP_ROWS)
                del pending
    pa.default_memory_pool().release_unused()  # the allocator keeps freed row groups otherwise
    return check.result()


def _sizing(run: Run, train_stream: int, stop: int | None) -> Sizing | None:
    """What a budget-sized prepare used, reached, and (if the inputs ran out) still needs."""
    options, sources, target = run.options, run.sources, run.target
    if options.budget_tokens is None:
        return None
    used, unused, gpos0 = [], [], 0
    for src in sources:
        if stop is None or stop >= gpos0 + src.rows:
            used.append({"path": src.path, "rows": src.rows})
        elif stop >= gpos0:
            used.append({"path": src.path, "rows": stop - gpos0 + 1})
        else:
            unused.append(src.path)
        gpos0 += src.rows
    out = Sizing(
        budget_tokens=options.budget_tokens,
        max_epochs=options.max_epochs,
        target_train_tokens=target,
        train_stream_tokens=train_stream,
        epochs=budget.epochs(options.budget_tokens, train_stream) if train_stream else None,
        reached=stop is not None,
        inputs_used=used,
        inputs_unused=unused,
    )
    if stop is None:
        out.shortfall_tokens = target - train_stream
        out.files_needed = (
            budget.files_needed(train_stream, len(sources), options.budget_tokens, options.max_epochs)
            if train_stream
            else None
        )
        out.more_files_needed = out.files_needed - len(sources) if out.files_needed else None
    return out


def _split_tables(layout: Layout, split: str, columns: list[str] | None = None):
    """Each shard's rows table, then the rows after the last shard (skipped ones), read from the
    units' rows tables through the layout's pieces (the units stay until finalize is done).

    The totals pass asks only for the two columns it counts; the docs.parquet pass reads all.
    """
    for sh in layout.shards[split]:
        yield rows_table(sh.pieces, sh.index, columns)
    yield rows_table(layout.trailing[split], len(layout.shards[split]), columns)


def _shards_pieces(layout: Layout, split: str) -> Iterator[tuple[list, int]]:
    """(pieces, shard index) of each shard, then of the rows after the last one (skipped ones),
    as _split_tables reads them."""
    for sh in layout.shards[split]:
        yield sh.pieces, sh.index
    yield layout.trailing[split], len(layout.shards[split])


def _docs_rows(t: pa.Table, split: str, names: pa.Array, bases: dict | None) -> pa.Table:
    shard, offset = t["shard"].to_numpy(), t["offset"].to_numpy()
    if bases is not None:  # nanoGPT: one .bin per split; offsets move to where each shard landed
        offset = offset + np.array([bases[(split, int(i))] for i in shard], dtype=np.int64)
        shard = np.zeros(len(shard), np.int32)
    ftc = t["fineweb_token_count"]
    return pa.table(
        {
            "split": pa.array([split] * len(t), pa.string()),
            "shard": pa.array(shard, pa.int32()),
            "offset": pa.array(offset, pa.int64()),
            "n_tokens": t["n_tokens"],
            "n_bytes": t["n_bytes"],
            "source_file": pa.DictionaryArray.from_arrays(t["file_index"].combine_chunks(), names),
            "source_row": t["source_row"],
            "id": t["id"],
            "url": t["url"],
            "key_hash": t["key_hash"],
            "fineweb_token_count": pc.if_else(pc.less(ftc, 0), pa.scalar(None, pa.int64()), ftc),
        },
        schema=docs_schema(),
    )


class _TokenCountCheck:
    """Our GPT-2 counts against FineWeb's `token_count`, wherever the input had it."""

    def __init__(self, sources: list[Source]):
        self.sources = sources
        self.enabled = any(s.has_token_count for s in sources)
        self.checked = self.differ = self.placeholder = self.real = 0
        self.first_real: list[str] = []

    def add(self, t: pa.Table) -> None:
        if not self.enabled:
            return
        ftc, ours = t["fineweb_token_count"].to_numpy(), t["n_tokens"].to_numpy()
        has = ftc >= 0
        differ = has & (ftc != ours)
        placeholder = differ & t["placeholder"].to_numpy(zero_copy_only=False)
        real = differ & ~placeholder
        self.checked += int(has.sum())
        self.differ += int(differ.sum())
        self.placeholder += int(placeholder.sum())
        self.real += int(real.sum())
        for i in np.flatnonzero(real)[: 5 - len(self.first_real)]:
            self.first_real.append(
                t["id"][i].as_py()
                or f"{Path(self.sources[t['file_index'][i].as_py()].path).name}:{t['source_row'][i].as_py()}"
            )

    def result(self) -> dict | None:
        if not self.enabled:
            return None
        return {
            "checked": self.checked,
            "differ": self.differ,
            "email_placeholder": self.placeholder,
            "real": self.real,
            "first_real": self.first_real,
        }


def _write_nanogpt(out_dir: Path, shard_dir: Path, per_split: dict) -> dict:
    """nanoGPT's train.bin / val.bin: raw uint16 with EOT *after* each document.

    Our shards hold [EOT d1 EOT d2 ...]; dropping the leading EOT and appending one at the end
    gives [d1 EOT d2 EOT ...], the same stream shifted by one token, which is nanoGPT's layout.
    Returns, per (split, shard), what to add to a shard offset to get the offset in the .bin.
    """
    bases = {}
    for split, info in per_split.items():
        w = shards.TokenFileWriter(out_dir / f"{split}.bin", with_header=False)
        try:
            for i, f in enumerate(info.shard_files):
                toks = shards.read_shard(shard_dir / f.file)
                bases[(split, i)] = w.n_tokens - 1  # the dropped leading EOT moves every token back one
                if len(toks):
                    w.write(toks[1:])
                    w.write(np.array([EOT], dtype=np.uint16))
            w.commit()
        except BaseException:
            w.abort()
            raise
        info.shard_files = [ShardFile(f"{split}.bin", w.n_tokens)]
        info.shards = 1
    return bases
