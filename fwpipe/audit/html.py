"""The audit as one self-contained HTML page: verdict cards, tables, the documents, two charts.

A renderer of the JSON report (schema in fwpipe/audit/report.py) plus the documents that
clusters.parquet locates (fwpipe/audit/examples.py). Every section reads its keys defensively:
a section the report lacks, or one with nothing in it, is said in words, never drawn as an
empty chart. Every text from the data is escaped (fwpipe.htmlpage.esc). No scripts, no network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fwpipe import budget as B
from fwpipe.atomic import write_bytes
from fwpipe.audit import examples as ex
from fwpipe.audit.quality import html_section as quality_html
from fwpipe.fmt import num, params, pct, ratio
from fwpipe.fmt import tokens as h
from fwpipe.htmlpage import Raw, cards, esc, figure, how, none, page, pyplot, table

SHORT_DOC_WARN = 0.2  # a fifth of documents under 64 tokens: mostly boilerplate, worth a look


def _of(fraction: object, total: object) -> str:
    """'37 of 14,540' from a fraction of a total (the report keeps the fraction and the total)."""
    if isinstance(fraction, (int, float)) and isinstance(total, int):
        return f"{round(fraction * total):,} of {total:,}"
    return "-"


def _verdicts(report: dict) -> str:
    items = [(v.get("level", "info"), v.get("section", ""), v.get("text", "")) for v in report.get("verdicts") or []]
    lengths = report.get("lengths") or {}
    tr = lengths.get("train") or {}
    if tr.get("docs"):
        short = tr.get("short_doc_share", 0)
        items.append(
            (
                "warn" if short >= SHORT_DOC_WARN else "info",
                "lengths",
                f"median train document {tr.get('p50', 0):,.0f} tokens; {pct(short)} of documents under 64 tokens; "
                f"{pct(tr.get('over_block_token_share', 0))} of tokens are in documents longer than the {tr.get('block_size', '?')}-token block",
            )
        )
    if not items:
        return none("The report holds no verdicts.")
    return cards(items)


def _totals(report: dict) -> str:
    splits = report.get("splits") or {}
    if not splits:
        return none("The report has no totals section.")
    rows = [
        [
            name,
            num(s.get("docs")),
            num(s.get("tokens")),
            num(s.get("stream_tokens")),
            num(s.get("distinct_token_ids")),
            num(s.get("shards")),
        ]
        for name, s in splits.items()
    ]
    out = table(
        ["split", "documents", "tokens", "stream tokens (with EOT)", "distinct token ids", "shards"], rows, cls="totals"
    )
    sources = report.get("sources") or []
    if sources:
        out += "<h3>By source file</h3>" + table(
            ["source", "split", "documents", "tokens"],
            [[s.get("source"), s.get("split"), num(s.get("docs")), num(s.get("tokens"))] for s in sources[:50]],
            text_cols=2,
        )
    return out


def _lengths(report: dict) -> str:
    lengths = report.get("lengths") or {}
    if not lengths:
        return none("The report has no lengths section.")
    rows = []
    for name, L in lengths.items():
        if not L.get("docs"):
            rows.append([name] + ["no documents"] + [""] * 10)
            continue
        rows.append(
            [
                name,
                f"{L['docs']:,}",
                f"{L['p10']:.0f}",
                f"{L['p50']:.0f}",
                f"{L['p90']:.0f}",
                f"{L['p99']:.0f}",
                f"{L['max']:,}",
                f"{L['mean']:.0f}",
                f"{L['gini']:.2f}",
                pct(L.get("top1pct_token_share")),
                pct(L.get("short_doc_share")),
                pct(L.get("over_block_token_share")),
            ]
        )
    blk = (report.get("options") or {}).get("block_size", "?")
    out = table(
        [
            "split",
            "documents",
            "p10",
            "median",
            "p90",
            "p99",
            "max",
            "mean",
            "gini",
            "tokens in longest 1%",
            "docs < 64 tokens",
            f"tokens in docs > {blk}",
        ],
        rows,
        cls="lengths",
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.2))
    drawn = False
    for name, L in lengths.items():
        hist = L.get("histogram") or {}
        if L.get("docs") and hist.get("counts"):
            edges = np.array(hist["bin_lower_edges"][1:], dtype=float)  # bin 0 (length 0) is always empty
            counts = np.array(hist["counts"][1:], dtype=float)
            keep = counts > 0
            ax.step(edges[keep], counts[keep] / L["docs"], where="post", label=f"{name} ({L['docs']:,} docs)")
            drawn = True
    if not drawn:
        plt.close(fig)
        return out + none("No document-length histogram to draw: the splits hold no documents.")
    ax.axvline(blk if isinstance(blk, (int, float)) else 1024, color="grey", ls=":", label=f"block size {blk}")
    ax.set(xscale="log", xlabel="document length (tokens, log2 bins)", ylabel="share of documents")
    ax.grid(alpha=0.3)
    ax.legend()
    return (
        out
        + figure(fig, "document length histogram")
        + how(
            "each step is the share of a split's documents whose length falls in that power-of-two bin; train and val "
            "should have the same shape, and a spike at the far left means many tiny (often boilerplate) documents. Text "
            "right of the dotted line is longer than the block size, so a single training window never sees all of it."
        )
    )


def _pair(docs: list[tuple[str, str]]) -> str:
    """Documents side by side: (label, markup of its text)."""
    cols = "".join(
        f'<div><div class="label">{esc(label)}</div><pre class="doc">{body}</pre></div>' for label, body in docs
    )
    return f'<div class="pair">{cols}</div>'


def _exact(report: dict) -> str:
    e = report.get("exact_duplicates")
    if not e:
        return none("The report has no exact-duplicates section.")
    out = (
        f"<p>{e.get('docs', 0):,} documents ({h(e.get('tokens'))} tokens) repeat an earlier document token for token, "
        f"in {e.get('groups', 0):,} groups.</p>"
    )
    largest = e.get("largest") or []
    if not largest:
        return out + none("No document appears twice: nothing to list.")
    rows = [
        [
            Raw(f'<span class="snip">{esc(g.get("snippet", ""))}</span>'),
            num(g.get("copies")),
            num(g.get("n_tokens")),
            f"{(g.get('first') or {}).get('split', '?')} doc {(g.get('first') or {}).get('doc', '?')}",
        ]
        for g in largest[:10]
    ]
    return (
        out
        + table(["starts with", "occurrences", "tokens each", "first copy"], rows, cls="exact")
        + how(
            "each row is one document that occurs several times; occurrences counts all of them, the first included, so all "
            "but one of them are repeated text in training."
        )
    )


def _near(report: dict, examples: ex.Examples | str) -> str:
    nd = report.get("near_duplicates")
    if not nd:
        return none("The report has no near-duplicates section.")
    out = (
        f"<p>Documents whose estimated Jaccard similarity is at least {nd.get('threshold', '?')} on "
        f"{nd.get('shingle', '?')}-token shingles ({nd.get('num_perm', '?')} MinHash permutations) are joined into clusters. "
        f"<b>{nd.get('clusters', 0):,} clusters</b> hold {nd.get('docs_in_clusters', 0):,} documents; keeping the earliest of "
        f"each would remove {nd.get('removable_docs', 0):,} documents, {h(nd.get('removable_tokens'))} tokens "
        f"({pct(nd.get('removable_token_fraction'))} of all tokens).</p>"
    )
    if not nd.get("clusters"):
        return out + none(
            "No near-duplicate clusters: no document is a near copy of another, so there is no "
            "cluster-size chart to draw."
        )
    sizes = nd.get("cluster_sizes") or {}
    if sizes.get("size"):
        out += "<h3>Cluster sizes</h3>" + table(
            ["documents in the cluster", "clusters"],
            [[s, f"{c:,}"] for s, c in list(zip(sizes["size"], sizes["clusters"]))[:20]],
            text_cols=0,
            cls="sizes",
        )
        out += how(
            "a cluster of 2 is a pair of near copies; big clusters are templates or pages crawled many times, "
            "and each of their members after the first is repeated text in training."
        )
    out += "<h3>The largest clusters, first members side by side</h3>"
    if isinstance(examples, str):
        rows = [
            [
                Raw(esc(c.get("snippet", ""))),
                num(c.get("docs")),
                num(c.get("n_tokens")),
                ", ".join(f"{k} {v}" for k, v in (c.get("splits") or {}).items()),
            ]
            for c in (nd.get("largest") or [])[:10]
        ]
        return (
            out
            + none(f"Only the first words of each cluster are shown: {examples}.")
            + table(["first member starts with", "documents", "tokens", "by split"], rows, cls="largest")
        )
    for cid, size, docs in examples.clusters:
        out += f"<p><b>Cluster {cid}</b>: {size:,} documents; the first {len(docs)} shown.</p>"
        out += _pair([(d.label, esc(ex.head(d.tokens))) for d in docs])
    return out + how(
        "the texts in a row are members of one cluster, decoded from their tokens; their differences are "
        "what the near-duplicate threshold tolerated."
    )


def _leakage(report: dict, examples: ex.Examples | str) -> str:
    lk = report.get("leakage")
    if not lk:
        return none("The report has no leakage section.")
    if lk.get("ngram_fraction") is None:
        return none(f"Nothing to compare: {lk.get('note', 'no val or no train split')}.")
    n = lk.get("ngram_n", 13)
    val = lk.get("val_docs", 0)
    rows = [
        ["exact copy of a train document", num(lk.get("exact_docs")), pct(lk.get("exact_fraction"))],
        ["near copy of a train document (includes exact)", num(lk.get("near_docs")), pct(lk.get("near_fraction"))],
        [f"shares at least one {n}-gram with train", num(lk.get("ngram_docs")), pct(lk.get("ngram_docs_fraction"))],
        [
            f"val {n}-grams that occur in train",
            _of(lk.get("ngram_fraction"), lk.get("ngram_val_ngrams")),
            pct(lk.get("ngram_fraction")),
        ],
    ]
    out = f"<p>{val:,} val documents against {lk.get('train_docs', 0):,} train documents.</p>" + table(
        ["val documents that are ...", "count", "share of val"], rows, cls="leakage"
    )
    if lk.get("note"):
        out += f"<p>{esc(lk['note'])}</p>"
    out += how(
        f"a val document that is a copy of a train document measures memory, not generalisation: val loss on it "
        f"is too good. Sharing one {n}-gram is common for boilerplate (licences, menus); copies are what matter."
    )
    out += _ngram_examples(lk.get("ngram_examples") or [], n)
    out += "<h3>The worst val documents and their train neighbours</h3>"
    if not lk.get("near_docs"):
        return out + none("No val document is a near copy of a train document: no pairs to show.")
    if isinstance(examples, str):
        return out + none(f"Not shown: {examples}.")
    if not examples.leaks:
        return out + none("No val document is a near copy of a train document: no pairs to show.")
    out += (
        f"<p>{examples.leaking_val_docs:,} val documents sit in a cluster with a train document; the "
        f"{len(examples.leaks)} sharing the largest part of their {n}-grams with their neighbour are shown, the longest "
        f"shared run highlighted.</p>"
    )
    for lk_ in examples.leaks:
        v, t = ex.window(lk_.val.tokens, lk_.val_span), ex.window(lk_.train.tokens, lk_.train_span)
        mark = lambda parts: f"{esc(parts[0])}<mark>{esc(parts[1])}</mark>{esc(parts[2])}"  # noqa: E731
        out += (
            f"<p>{pct(lk_.shared_fraction)} of this val document's {n}-grams occur in its train neighbour; the "
            f"highlighted run is {lk_.val_span[1] - lk_.val_span[0]:,} tokens.</p>"
        )
        out += _pair([("val: " + lk_.val.label, mark(v)), ("train: " + lk_.train.label, mark(t))])
    n_only = (lk.get("ngram_docs") or 0) - examples.leaking_val_docs
    if n_only > 0:
        out += (
            f"<p>{n_only:,} more val documents share a {n}-gram with train without being near copies; "
            f"the shared {n}-gram examples above show where, for the first few.</p>"
        )
    return out


def _ngram_examples(examples: list[dict], n: int) -> str:
    """The shared n-grams the audit located: the n-gram, the val and the train document, and the
    n-gram highlighted in each with the text around it."""
    out = f"<h3>Shared {n}-grams: what leaks</h3>"
    if not examples:
        return out + none(f"No val {n}-gram occurs in train.")
    which = f"The first {len(examples)} val documents" if len(examples) > 1 else "The one val document shown"
    out += (
        f"<p>{which} that share a {n}-gram with train, each with its first shared "
        f"{n}-gram, highlighted where it sits in the val document and in a train document that holds it.</p>"
    )
    for e in examples:
        v, t = e["val"], e["train"]
        out += f"<p><b>{esc(' '.join(e['text'].split()))}</b> ({n} tokens)</p>"
        out += _pair(
            [
                (
                    f"val doc {v['doc']:,}, token {v['position']:,} (shard {v['shard']}, offset {v['offset']:,})",
                    _marked(v, e["text"]),
                ),
                (
                    f"train doc {t['doc']:,}, token {t['position']:,} (shard {t['shard']}, offset {t['offset']:,})",
                    _marked(t, e["text"]),
                ),
            ]
        )
    return out


def _marked(side: dict, text: str) -> str:
    return f"{esc(side['before'])}<mark>{esc(text)}</mark>{esc(side['after'])}"


def _budget(report: dict) -> str:
    b = report.get("budget")
    if not b:
        return none(
            "No budget given: run the audit with --budget-tokens B (and --params N) to see how many epochs "
            "B tokens make over this data, and how much more data it would need."
        )
    u, B_, epochs = b.get("unique_tokens"), b.get("budget_tokens"), b.get("epochs")
    if not (u and B_ and epochs):
        return none("The budget section lacks the numbers to chart.")
    out = (
        f"<p>A budget of <b>{h(B_)} tokens</b> over <b>{h(u)} unique train tokens</b> is <b>{ratio(epochs)} epochs</b>; "
        f"effective data {h(b.get('effective_tokens'))} tokens ({pct(b.get('effective_fraction'))} of the budget). "
        f"Verdict: <b>{esc(b.get('verdict', '?'))}</b>: {esc(b.get('verdict_text', ''))}.</p>"
    )
    if epochs > 1:
        if b.get("files_for_4_epochs"):
            out += (
                f"<p><b>Files needed:</b> {b['files_for_4_epochs']:,} input files like these bring it to at most "
                f"{B.REPEATS_FREE_EPOCHS:g} epochs, "
                f"{b.get('files_for_1_epoch', 0):,} to one epoch ({b.get('source_files')} now, {h(b.get('tokens_per_source_file'))} "
                "tokens each).</p>"
            )
        elif b.get("data_multiple_for_4_epochs"):
            out += (
                f"<p><b>Data needed:</b> {ratio(b['data_multiple_for_4_epochs'])}x this data ({h(b.get('unique_tokens_for_4_epochs'))} "
                f"tokens) for at most {B.REPEATS_FREE_EPOCHS:g} epochs, {ratio(b.get('data_multiple_for_1_epoch', 0))}x for one.</p>"
            )
    if b.get("params"):
        out += (
            f"<p>{params(b['params'])} parameters: {ratio(b.get('tokens_per_param', 0))} tokens per parameter "
            f"(Chinchilla ~{B.CHINCHILLA_TOKENS_PER_PARAM:g}): "
            f"{esc(b.get('chinchilla_verdict', ''))}. Compute-optimal for this compute: {params(b.get('optimal_params'))} "
            f"parameters on {h(b.get('optimal_tokens'))} tokens.</p>"
        )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.6))
    budgets = np.logspace(np.log10(min(u / 10, B_ / 3)), np.log10(max(B_ * 10, u * 100)), 200)
    free, most = B.REPEATS_FREE_EPOCHS, B.REPEATS_MAX_EPOCHS
    for lo, hi, color, name in (
        (1e-3, 1, "tab:green", "< 1 epoch: fresh"),
        (1, free, "yellowgreen", f"1-{free:g}: nearly free"),
        (free, most, "orange", f"{free:g}-{most:g}: diminishing"),
        (most, 1e12, "tab:red", f"> {most:g}: wasted"),
    ):
        ax.axhspan(lo, hi, color=color, alpha=0.18, label=name)
    ax.plot(budgets, budgets / u, color="black", lw=1.2, label="epochs = budget / unique tokens")
    ax.plot([B_], [epochs], "o", color="black", ms=8)
    ax.annotate(f"  your budget {h(B_)}: {ratio(epochs)} epochs", (B_, epochs), va="center")
    ax.set(
        xscale="log",
        yscale="log",
        ylim=(budgets[0] / u, budgets[-1] / u),
        xlabel="training budget (tokens)",
        ylabel="epochs over train",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", fontsize=8)
    return (
        out
        + figure(fig, "epochs against budget")
        + how(
            "the black line is this dataset: the further right the budget, the more times each train token is repeated. The "
            f"dot is your budget; its band says what the repeats cost (up to ~{free:g} epochs about as good as fresh data, past ~{most:g} "
            "the extra compute buys almost nothing; Muennighoff et al. 2023)."
        )
    )


def _against(report: dict) -> str:
    """Eval-set contamination (`audit --against EVAL`): per split, then the worst eval documents."""
    ag = report.get("against")
    if not ag:
        return none(
            "No eval set given: `fwpipe audit --against EVAL` (parquet or JSONL with a text column, or a dataset) "
            "checks each eval document for exact copies, near copies and shared n-grams in train and val."
        )
    n_e, n = ag.get("eval_docs") or 0, ag.get("ngram_n", 13)
    share = lambda k: f"{k:,} ({pct(k / n_e)})" if isinstance(k, int) and n_e else num(k)  # noqa: E731
    rows = [
        [
            name,
            share(sec.get("exact_docs")),
            share(sec.get("near_docs")),
            share(sec.get("ngram_docs")),
            pct(sec.get("ngram_fraction")),
        ]
        for name in ("train", "val")
        if isinstance(sec := ag.get(name), dict)
    ]
    out = f"<p>{n_e:,} eval documents from <code>{esc(ag.get('path', '?'))}</code>.</p>"
    out += table(
        ["found in", "exact copies", "near copies", f"share a {n}-gram", f"eval {n}-grams found"], rows, cls="against"
    )
    out += how(
        f"an eval document with a copy in train was, in effect, trained on: its benchmark score overstates the model. "
        f"A shared {n}-gram alone is often a quotation or boilerplate; copies are what matter."
    )
    worst = ag.get("worst") or []
    if not worst:
        return out + none(f"No eval document overlaps the dataset: no copies and no shared {n}-gram.")
    wrows = []
    for w in worst:
        frac = w.get("ngram_fraction") or {}
        wrows.append(
            [
                f"#{w.get('doc', '?')}",
                Raw(f"<mark>{esc(w['overlap'])}</mark>" if w.get("overlap") else "-"),
                num(w.get("n_tokens")),
                ", ".join(w.get("exact") or []) or "-",
                ", ".join(w.get("near") or []) or "-",
                pct(frac.get("train")),
                pct(frac.get("val")),
            ]
        )
    return (
        out
        + "<h3>The most contaminated eval documents</h3>"
        + table(
            [
                "eval doc",
                f"one shared {n}-gram",
                "tokens",
                "exact copy in",
                "near copy in",
                f"{n}-grams in train",
                f"{n}-grams in val",
            ],
            wrows,
            text_cols=2,
            cls="against-worst",
        )
        + how(
            "rows are eval documents, worst first (exact copies, then near copies, then the share "
            f"of their {n}-grams found), each with one {n}-gram it shares with the data."
        )
    )


def render(report: dict) -> str:
    examples = ex.load(report)
    o = report.get("options") or {}
    body = (
        f'<h1>fwpipe audit</h1><p class="sub">{esc(report.get("dataset", "?"))} &middot; {esc(report.get("format", "?"))} '
        f"layout &middot; {report.get('seconds', 0):.1f} s &middot; fwpipe {esc(report.get('fwpipe_version', '?'))}</p>"
        f"{_verdicts(report)}"
        f"<h2>Totals</h2>{_totals(report)}"
        f"<h2>Document lengths</h2>{_lengths(report)}"
        f"<h2>Budget</h2>{_budget(report)}"
        f"<h2>Train/val leakage</h2>{_leakage(report, examples)}"
        f"<h2>Near duplicates</h2>{_near(report, examples)}"
        f"<h2>Exact duplicates</h2>{_exact(report)}"
        f"<h2>Eval-set contamination</h2>{_against(report)}"
        f"<h2>Quality</h2>{quality_html(report.get('quality'))}"
        f'<p class="sub">Options: block size {esc(o.get("block_size", "?"))}, shingle {esc(o.get("shingle", "?"))}, '
        f"threshold {esc(o.get('threshold', '?'))}, {esc(o.get('num_perm', '?'))} permutations, {esc(o.get('ngram', '?'))}-grams, "
        f"seed {esc(o.get('seed', '?'))}. The numbers are in the --json report.</p>"
    )
    return page(f"fwpipe audit: {report.get('dataset', '')}", body)


def write_html(report: dict, path: str | Path) -> None:
    write_bytes(path, [render(report).encode()])
