"""`fwpipe prepare --estimate`: documents and tokens of parquet inputs, and what a budget needs,
in seconds and before anything is tokenized.

Per file, cheapest source first:

- **documents**: parquet row counts minus the text column's null count (footer statistics).
- **tokens, method "token_count"**: where the file has FineWeb's `token_count` (the GPT-2 count
  of `text`) for every non-null text, its sum, reading that int64 column only. A row whose
  token_count is 0 has empty text: prepare skips it, so it is not a document here either. These
  are FineWeb's counts: rows whose text holds an e-mail placeholder (FineWeb counted before it
  replaced addresses) differ from prepare's count by a few tokens each.
- **tokens, method "sampled ratio"** (no token_count, or nulls in it): the text's UTF-8 bytes
  times a tokens-per-byte ratio measured by tokenizing a deterministic sample of documents.
  Text bytes come from the column chunks' uncompressed sizes in the footer (`bytes_from`
  "metadata": the values plus a 4-byte length each, plus page headers: ~0.05% high with
  FineWeb's 1,000-row row groups, ~0.6% with 50-row ones; with a
  dictionary page, texts repeated inside one row group's dictionary count once), or, when the
  inputs' text is small (<= 64 MB) or the encoding is one whose size does not follow the bytes,
  from reading the text column's lengths (`bytes_from` "text lengths"; exact; no tokenizing).
  Null texts are not documents and have no tokens; with metadata bytes an empty (not null) text
  counts as a document of one EOT, which prepare would skip.

The sample: with small text, every k-th non-empty document over all ratio files (k = N /
sample_docs); otherwise `sample_docs / 8` windows of consecutive documents at the start of row
groups spread evenly over the files (parquet cannot seek inside a row group without decoding
it). The interval is the ratio estimator's: SE(R) = sqrt((1 - n/N) * sum (t_i - R b_i)^2 /
(n - 1) / n) / mean(b), R +- 1.96 SE, over documents (every k-th) or over window totals
(windows: neighbouring documents may resemble each other). It covers sampling error only.

Every token figure counts one EOT per document, like prepare's shards (the manifest's
`stream_tokens`): that is what a run trains on. Train/val figures are expectations: the split
hashes each document's key, so val gets `val_fraction` of documents and tokens on average.

Keys of the returned dict (JSON-able):

    files: [ {path, bytes (file size), rows, docs, text_bytes (None for token_count),
              method ("token_count" | "sampled ratio"), bytes_from ("metadata" | "text lengths",
              None for token_count), note (why a file with a token_count column was not counted
              by it, else None), est_tokens, est_tokens_low, est_tokens_high (95%; equal for
              token_count), train_docs, val_docs, train_tokens, val_tokens} ]
    total: {files, bytes, rows, docs, text_bytes (ratio files only), est_tokens,
            est_tokens_low, est_tokens_high, train_docs, val_docs, train_tokens, val_tokens}
    sample: None (every file counted by token_count), else {docs, bytes, tokens, how,
            tokens_per_byte, bytes_per_token, rel_se (of the ratio; None for one document),
            bytes_per_token_ci95 [lo, hi]}
    val_fraction
    fetched: None (every input local), else what was fetched for remote inputs: {bytes,
            requests, retries, input_bytes (their sizes), fraction (bytes / input_bytes)}
    budget: None without a budget or params, else fwpipe.budget.plan()'s keys computed on the
            estimated train tokens (budget_tokens, unique_tokens, epochs, effective_tokens,
            effective_fraction, verdict, verdict_text; with params: params, tokens_per_param,
            optimal_params, ...) plus {budget_from ("budget_tokens" | "chinchilla"),
            max_epochs, epochs_range [at est_tokens_high, at est_tokens_low],
            tokens_per_file (train tokens per input file), files (inputs given),
            files_needed (total files like these for <= max_epochs: fwpipe.budget.files_needed),
            more_files_needed (files_needed - files), files_needed_range [best, worst]}
    seconds
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fwpipe import budget as B
from fwpipe import remote
from fwpipe.errors import BudgetError, ConfigError, InputFormatError
from fwpipe.pipeline.inputs import TOKEN_COUNT_COLUMN, Source, inspect, open_source, resolve_inputs, strings
from fwpipe.tokenizer import DEFAULT_ENGINE, check_engine, encode_batch

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_DOCS = 256
DEFAULT_SAMPLE_BYTES = 2 << 20  # soft cap on the text tokenized for the ratio
SMALL_TEXT_BYTES = 64 << 20  # at most this much text in ratio files: read it all (exact bytes)
WINDOW_DOCS = 8  # consecutive documents per sample window in large inputs
Z95 = 1.959964
# Encodings whose uncompressed size is the values' bytes plus 4 bytes per value (and levels and
# page headers). DELTA_LENGTH_BYTE_ARRAY and DELTA_BYTE_ARRAY are not: those chunks are read.
_SIZED_ENCODINGS = {"PLAIN", "RLE", "BIT_PACKED", "RLE_DICTIONARY", "PLAIN_DICTIONARY"}


@dataclass
class _File:
    src: Source
    docs: int = 0
    text_tokens: int | None = None  # token_count files: the sum of token_count
    text_bytes: int | None = None  # ratio files
    bytes_from: str | None = None
    note: str | None = None
    read_groups: list[int] = field(default_factory=list)  # row groups whose lengths must be read
    stored_text_bytes: int = 0  # the text column's uncompressed size in the footer

    @property
    def by_token_count(self) -> bool:
        return self.text_tokens is not None


def estimate(
    inputs: list[str | Path],
    *,
    text_column: str = "text",
    val_fraction: float = 0.005,
    budget_tokens: float | None = None,
    max_epochs: float = 1.0,
    params: float | None = None,
    sample_docs: int = DEFAULT_SAMPLE_DOCS,
    sample_bytes: int = DEFAULT_SAMPLE_BYTES,
    seed: int = 0,
    use_token_count: bool = True,
    tokenizer_engine: str = DEFAULT_ENGINE,
) -> dict:
    """Documents and tokens of `inputs` (files, directories, globs) without preparing them.

    With `budget_tokens` (or `params`, which defaults the budget to Chinchilla's 20 tokens per
    parameter), adds the epochs the budget runs over these files and how many files like them it
    needs for <= `max_epochs`. (`--config`, a train preset, becomes `params` in the CLI.) `seed`
    moves the sample. tokenizer_engine (fwpipe/tokenizer.py) tokenizes the sample; both give the
    same counts.
    """
    t0 = time.perf_counter()
    check_engine(tokenizer_engine)
    budget_tokens, params, budget_from = _check(val_fraction, budget_tokens, max_epochs, params, sample_docs)
    before = remote.STATS.snapshot()
    paths = resolve_inputs([str(p) for p in inputs])
    files = [_scan(p, text_column, use_token_count) for p in paths]
    ratio_files = [f for f in files if not f.by_token_count]
    sample = None
    if ratio_files:
        # remote text is sampled by windows too: reading all of it would download it
        small = sum(f.stored_text_bytes for f in ratio_files) <= SMALL_TEXT_BYTES and not any(
            f.src.url for f in ratio_files
        )
        if small:
            texts, how = _sample_all(ratio_files, text_column, sample_docs, seed)
            units = None
        else:
            texts, how, units = _sample_windows(ratio_files, text_column, sample_docs, sample_bytes, seed)
        for f in ratio_files:
            if f.read_groups:
                _read_lengths(f, text_column)
        sample = _ratio(texts, how, n_docs=sum(f.docs for f in ratio_files), units=units, engine=tokenizer_engine)

    out_files = [_file_result(f, sample, val_fraction) for f in files]
    total = {"files": len(files), "bytes": sum(f.src.bytes for f in files), "rows": sum(f.src.rows for f in files)}
    for k in (
        "docs",
        "est_tokens",
        "est_tokens_low",
        "est_tokens_high",
        "train_docs",
        "val_docs",
        "train_tokens",
        "val_tokens",
    ):
        total[k] = sum(r[k] for r in out_files)
    total["text_bytes"] = sum(f.text_bytes for f in ratio_files)
    result = {
        "files": out_files,
        "total": total,
        "sample": sample,
        "val_fraction": val_fraction,
        "fetched": None,
        "budget": None,
    }
    remote_bytes = sum(f.src.bytes for f in files if f.src.url)
    if remote_bytes:
        got = remote.since(before)
        result["fetched"] = {
            "bytes": got["fetched_bytes"],
            "requests": got["requests"],
            "retries": got["retries"],
            "input_bytes": remote_bytes,
            "fraction": got["fetched_bytes"] / remote_bytes,
        }
    if budget_tokens is not None:
        result["budget"] = _budget(budget_tokens, params, budget_from, max_epochs, total, val_fraction)
    result["seconds"] = time.perf_counter() - t0
    log.info("estimated %d files in %.2f s", len(files), result["seconds"])
    return result


def _check(val_fraction, budget_tokens, max_epochs, params, sample_docs) -> tuple[int | None, float | None, str | None]:
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"--val-fraction {val_fraction} is not in [0, 1)", "use e.g. --val-fraction 0.005")
    B.check_max_epochs(max_epochs)
    if sample_docs < 2:
        raise ConfigError(
            f"sample of {sample_docs} documents is too small to measure a ratio and its error",
            "sample at least 2 documents (default 256)",
        )
    if params is not None and (not (params > 0) or math.isinf(params)):
        raise ConfigError(f"--params {params} is not a positive number", "pass e.g. --params 40e6")
    budget_tokens, budget_from = B.budget_or_chinchilla(budget_tokens, params)
    return budget_tokens, params, budget_from


def _text_leaf(pf: pq.ParquetFile, text_column: str) -> int:
    names = [pf.metadata.schema.column(i).path for i in range(pf.metadata.num_columns)]
    return names.index(text_column)


def _scan(path: Path, text_column: str, use_token_count: bool) -> _File:
    """Footer (and token_count column) of one file; no text read."""
    src = inspect(path, text_column, hash_content=False)  # schema errors name the file
    f = _File(src)
    pf = open_source(src)
    md = pf.metadata
    leaf = _text_leaf(pf, text_column)
    text_nulls: int | None = 0
    f.stored_text_bytes = sum(md.row_group(i).column(leaf).total_uncompressed_size for i in range(md.num_row_groups))
    for i in range(md.num_row_groups):
        st = md.row_group(i).column(leaf).statistics
        if st is None or not st.has_null_count:
            text_nulls = None
            break
        text_nulls += st.null_count
    if use_token_count and src.has_token_count:
        rf = getattr(pf, "range_file", None)
        if rf is not None:  # remote: only token_count's column chunks, fetched in one concurrent batch
            tc_leaf = _text_leaf(pf, TOKEN_COUNT_COLUMN)
            rf.prefetch([remote.chunk_range(md.row_group(i).column(tc_leaf)) for i in range(md.num_row_groups)])
        try:
            tc = pf.read(columns=[TOKEN_COUNT_COLUMN], use_threads=False)[TOKEN_COUNT_COLUMN]
        except (pa.ArrowInvalid, OSError) as e:
            raise InputFormatError(
                f"{path}: cannot read token_count ({str(e).splitlines()[0][:120]})",
                "the file is truncated or corrupt; download it again",
            ) from e
        lo, hi = (pc.min_max(tc)[k].as_py() for k in ("min", "max")) if len(tc) else (0, 0)
        if (lo is not None and lo < 0) or (hi is not None and hi > f.stored_text_bytes):
            # a token is at least one byte of text: a count past the column's bytes (or below 0) is not GPT-2's
            f.note = f"token_count holds impossible values ({lo:,} to {hi:,}; the text column holds {f.stored_text_bytes:,} bytes)"
        elif tc.null_count == 0 or tc.null_count == text_nulls:
            f.docs = int(pc.sum(pc.greater(tc, 0)).as_py() or 0)
            f.text_tokens = int(pc.sum(pc.max_element_wise(tc, 0)).as_py() or 0)
            return f
        else:
            f.note = f"token_count is null in {tc.null_count:,} of {len(tc):,} rows"
    f.text_bytes = 0
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        ch = rg.column(leaf)
        st = ch.statistics
        nulls = st.null_count if st is not None and st.has_null_count else None
        if nulls is None or not set(ch.encodings) <= _SIZED_ENCODINGS:
            f.read_groups.append(i)
            continue
        nonnull = rg.num_rows - nulls
        f.docs += nonnull
        f.text_bytes += max(0, ch.total_uncompressed_size - 4 * nonnull)
    f.bytes_from = "metadata" if not f.read_groups else "text lengths"
    return f


def _read_lengths(f: _File, text_column: str) -> None:
    """Exact bytes and documents of the row groups in `f.read_groups` (reads text, no tokenizing)."""
    pf = open_source(f.src)
    for i in f.read_groups:
        lens = pc.binary_length(_read_group(pf, f.src.path, i, text_column))
        f.docs += int(pc.sum(pc.greater(lens, 0)).as_py() or 0)
        f.text_bytes += int(pc.sum(lens).as_py() or 0)
    f.read_groups = []


def _read_group(pf: pq.ParquetFile, path: str, i: int, text_column: str) -> pa.ChunkedArray:
    try:
        return pf.read_row_group(i, columns=[text_column], use_threads=False)[text_column]
    except (pa.ArrowInvalid, OSError) as e:
        raise InputFormatError(
            f"{path}: cannot read row group {i} ({str(e).splitlines()[0][:120]})",
            "the file is truncated or corrupt; download it again",
        ) from e


def _sample_all(files: list[_File], text_column: str, sample_docs: int, seed: int) -> tuple[list[str], str]:
    """Small inputs: read every text (exact bytes), take every k-th non-empty document."""
    texts: list[str] = []
    for f in files:
        pf = open_source(f.src)
        f.docs, f.text_bytes, f.read_groups, f.bytes_from = 0, 0, [], "text lengths"
        for i in range(pf.metadata.num_row_groups):
            col = _read_group(pf, f.src.path, i, text_column)
            lens = pc.binary_length(col)
            keep = pc.greater(lens, 0)
            f.docs += int(pc.sum(keep).as_py() or 0)
            f.text_bytes += int(pc.sum(lens).as_py() or 0)
            texts.extend(strings(pc.filter(col, pc.fill_null(keep, False)), f.src.path, text_column, i, "row group"))
    n = len(texts)
    k = max(1, math.ceil(n / sample_docs))
    start = seed % k
    picked = texts[start::k]
    return picked, f"every {_ordinal(k)} document from the {_ordinal(start + 1)} ({len(picked):,} of {n:,})"


def _sample_windows(
    files: list[_File], text_column: str, sample_docs: int, sample_bytes: int, seed: int
) -> tuple[list[str], str, list[int]]:
    """Large inputs: windows of consecutive documents at the starts of evenly spread row groups."""
    units = []
    for fi, f in enumerate(files):
        md = open_source(f.src).metadata
        units.extend((fi, i) for i in range(md.num_row_groups) if md.row_group(i).num_rows > 0)
    m = max(1, min(len(units), math.ceil(sample_docs / WINDOW_DOCS)))
    per_window = math.ceil(sample_docs / m)
    bytes_per_window = max(1, sample_bytes // m)
    offset = ((seed * 0.618034) % 1.0 + 0.5) % 1.0  # seed 0: the middle of each stretch
    chosen = sorted({units[min(len(units) - 1, int((j + offset) * len(units) / m))] for j in range(m)})
    texts: list[str] = []
    window: list[int] = []
    open_files: dict[int, pq.ParquetFile] = {}
    for w, (fi, rg) in enumerate(chosen):
        if fi not in open_files:
            open_files[fi] = open_source(files[fi].src)
        pf = open_files[fi]
        got, nbytes = 0, 0
        for batch in pf.iter_batches(
            batch_size=max(per_window, 16), row_groups=[rg], columns=[text_column], use_threads=False
        ):
            for t in strings(batch.column(0), files[fi].src.path, text_column, rg, "row group"):
                if not t:
                    continue
                texts.append(t)
                window.append(w)
                got += 1
                nbytes += len(t.encode("utf-8", "surrogatepass"))
                if got >= per_window or nbytes >= bytes_per_window:
                    break
            if got >= per_window or nbytes >= bytes_per_window:
                break
    nfiles = len({fi for fi, _ in chosen})
    how = f"{len(chosen)} windows of up to {per_window} consecutive documents at row-group starts in {nfiles} of {len(files)} files ({len(texts):,} documents)"
    return texts, how, window


def _ratio(
    texts: list[str], how: str, *, n_docs: int, units: list[int] | None = None, engine: str = DEFAULT_ENGINE
) -> dict:
    """Tokens per byte over the sample, with the ratio estimator's standard error.

    With `units` (the window of each document), the error is computed over window totals:
    neighbouring documents may resemble each other, so windows, not documents, are independent.
    """
    t = np.diff(encode_batch(texts, engine, threads=os.cpu_count() or 1)[1]).astype(np.float64)
    b = np.array([len(x.encode("utf-8", "surrogatepass")) for x in texts], dtype=np.float64)
    if len(texts) == 0 or b.sum() == 0:
        return {
            "docs": 0,
            "bytes": 0,
            "tokens": 0,
            "how": how,
            "tokens_per_byte": 0.0,
            "bytes_per_token": None,
            "rel_se": None,
            "bytes_per_token_ci95": None,
        }
    r = t.sum() / b.sum()
    n_docs_sampled = len(texts)
    if units is not None:
        ids = np.asarray(units)
        t, b = np.bincount(ids, t), np.bincount(ids, b)
    n = len(t)
    rel_se = None
    if n >= 2:
        fpc = max(0.0, 1 - n_docs_sampled / max(n_docs, n_docs_sampled))  # the share of documents not sampled
        se = math.sqrt(fpc * float(((t - r * b) ** 2).sum()) / (n - 1) / n) / b.mean()
        rel_se = se / r
    lo_r, hi_r = (r * (1 - Z95 * rel_se), r * (1 + Z95 * rel_se)) if rel_se is not None else (r, r)
    return {
        "docs": n_docs_sampled,
        "bytes": int(b.sum()),
        "tokens": int(t.sum()),
        "how": how,
        "tokens_per_byte": r,
        "bytes_per_token": 1 / r,
        "rel_se": rel_se,
        "bytes_per_token_ci95": [1 / hi_r, 1 / lo_r if lo_r > 0 else math.inf],
    }


def _file_result(f: _File, sample: dict | None, val_fraction: float) -> dict:
    if f.by_token_count:
        est = lo = hi = f.text_tokens + f.docs
        method = "token_count"
    else:
        r, rel = sample["tokens_per_byte"], sample["rel_se"] or 0.0
        est = round(f.text_bytes * r) + f.docs
        lo = round(f.text_bytes * r * max(0.0, 1 - Z95 * rel)) + f.docs
        hi = round(f.text_bytes * r * (1 + Z95 * rel)) + f.docs
        method = "sampled ratio"
    val_docs, val_tokens = round(f.docs * val_fraction), round(est * val_fraction)
    return {
        "path": f.src.path,
        "bytes": f.src.bytes,
        "rows": f.src.rows,
        "docs": f.docs,
        "text_bytes": f.text_bytes,
        "method": method,
        "bytes_from": f.bytes_from,
        "note": f.note,
        "est_tokens": est,
        "est_tokens_low": lo,
        "est_tokens_high": hi,
        "train_docs": f.docs - val_docs,
        "val_docs": val_docs,
        "train_tokens": est - val_tokens,
        "val_tokens": val_tokens,
    }


def _budget(
    budget_tokens: int, params: float | None, budget_from: str, max_epochs: float, total: dict, val_fraction: float
) -> dict:
    train, n_files = total["train_tokens"], total["files"]
    if train <= 0:
        raise BudgetError(
            "these inputs hold no documents to train on", "check --text-column and that the files are not empty"
        )
    train_lo = total["est_tokens_low"] - round(total["est_tokens_low"] * val_fraction)
    train_hi = total["est_tokens_high"] - round(total["est_tokens_high"] * val_fraction)
    out = B.plan(budget_tokens, train, params)
    needed = B.files_needed(train, n_files, budget_tokens, max_epochs)
    out.update(
        budget_from=budget_from,
        max_epochs=max_epochs,
        epochs_range=[budget_tokens / train_hi, budget_tokens / train_lo if train_lo > 0 else math.inf],
        files=n_files,
        tokens_per_file=train / n_files,
        files_needed=needed,
        more_files_needed=needed - n_files,
        files_needed_range=[
            B.files_needed(train_hi, n_files, budget_tokens, max_epochs),
            B.files_needed(max(train_lo, 1.0), n_files, budget_tokens, max_epochs),
        ],
    )
    return out


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"
