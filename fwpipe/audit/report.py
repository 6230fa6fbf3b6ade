"""The audit report as terminal text (100 columns, verdicts first) and as JSON.

JSON schema (schema_version 1; keys are only ever added). Counts are documents or tokens;
"tokens" never include EOT separators, "stream_tokens" do; fractions are in [0, 1].

    schema_version, fwpipe_version, dataset, format ("fwpipe" | "nanogpt" | "llmc"),
    options {block_size, shingle, threshold, num_perm, ngram, seed, minhash_scheme},
    seconds
    verdicts [{section, level ("ok" | "warn" | "bad"), text}]
    splits.{train,val}      {docs, tokens, stream_tokens, distinct_token_ids, shards}
    sources                 [{source, split, docs, tokens}]   (fwpipe datasets with docs.parquet)
    lengths.{train,val}     {docs, min, p10, p50, p90, p99, max, mean, skewness, gini,
                             top1pct_token_share, top10pct_token_share, short_doc_share,
                             short_doc_tokens, block_size, over_block_token_share,
                             histogram {bin_lower_edges, counts}}      (only {docs: 0} if empty)
    exact_duplicates        {docs, tokens, groups, doc_fraction, by_split {train, val},
                             largest [{copies, n_tokens, first {split, doc, shard, offset,
                             n_tokens}, snippet}]}
                             docs = documents equal to an earlier one (train before val)
    near_duplicates         {threshold, shingle, num_perm, bands, rows, candidate_pairs,
                             kept_pairs, distinct_signatures, clusters, docs_in_clusters,
                             removable_docs, removable_tokens, removable_token_fraction,
                             cluster_sizes {size, clusters}, largest [{docs, n_tokens, first,
                             splits, snippet}], clusters_file?}
                             clusters span both splits and include exact copies;
                             removable = all but the earliest document of each cluster
    leakage                 {val_docs, train_docs, exact_docs, near_docs, ngram_n, ngram_docs,
                             ngram_fraction, exact_fraction, near_fraction,
                             ngram_docs_fraction, ngram_val_ngrams, note?, ngram_sampled_every?}
                             near_docs counts val docs with a train doc at estimated Jaccard
                             >= threshold, so it includes exact_docs; ngram_fraction is the
                             share of val n-gram occurrences that also occur in train
    budget (with --budget-tokens)
                            {budget_tokens, unique_tokens (= train stream tokens), epochs,
                             effective_tokens, effective_fraction, verdict ("fresh" |
                             "nearly-free" | "diminishing" | "wasted"), verdict_text,
                             source_files, tokens_per_source_file, files_for_4_epochs,
                             files_for_1_epoch, data_multiple_for_4_epochs,
                             data_multiple_for_1_epoch, unique_tokens_for_4_epochs,
                             unique_tokens_for_1_epoch, repeats_free_epochs,
                             with --params: params, tokens_per_param, chinchilla_tokens_per_param,
                             compute_flops, optimal_params, optimal_tokens, chinchilla_verdict}
    quality (unless --no-quality)
                            {docs, tokens, filters.{gopher_quality, gopher_repetition, fineweb, c4,
                             lang} {fail_docs, fail_tokens, fail_doc_fraction, fail_token_fraction},
                             rules [{rule, filter, column, threshold, fail_docs, fail_tokens,
                             fail_doc_fraction, examples [{split, doc, id, value, snippet, lines}]}],
                             languages [{lang, docs, tokens, mean_score}], lang_keep,
                             lang_min_score, file?, removed_by_prepare? {docs, by_rule}}
                             (README, Quality: the rules and columns)
"""

from __future__ import annotations

from fwpipe.fmt import params, pct, ratio, tokens
from fwpipe.fmt import tokens as h  # one number formatter for the terminal and the pages

# The schema above as data, so that `--fail-on` rules are checked before the audit runs. A key
# maps to NUMBER, TEXT, LIST (items not checked) or a dict of its own keys; keys that only some
# reports have (budget, note, ...) are included. tests/audit/test_report.py holds it to a real report.
NUMBER, TEXT, LIST = "number", "text", "list"


def _keys(names: str, kind: str = NUMBER) -> dict:
    return dict.fromkeys(names.split(), kind)


_SPLIT = _keys("docs tokens stream_tokens distinct_token_ids shards")
_LENGTHS = {
    **_keys(
        "docs min p10 p50 p90 p99 max mean skewness gini top1pct_token_share top10pct_token_share short_doc_share "
        "short_doc_tokens block_size over_block_token_share"
    ),
    "histogram": _keys("bin_lower_edges counts", LIST),
}
KEYS: dict = {
    **_keys("schema_version seconds"),
    **_keys("fwpipe_version dataset format", TEXT),
    **_keys("verdicts sources", LIST),
    "options": {**_keys("block_size shingle threshold num_perm ngram seed"), "minhash_scheme": TEXT},
    "splits": {"train": _SPLIT, "val": _SPLIT},
    "lengths": {"train": _LENGTHS, "val": _LENGTHS},
    "exact_duplicates": {**_keys("docs tokens groups doc_fraction"), "by_split": _keys("train val"), "largest": LIST},
    "near_duplicates": {
        **_keys(
            "threshold shingle num_perm bands rows candidate_pairs kept_pairs distinct_signatures clusters "
            "docs_in_clusters removable_docs removable_tokens removable_token_fraction confirmed_rejects"
        ),
        "cluster_sizes": _keys("size clusters", LIST),
        "largest": LIST,
        "clusters_file": TEXT,
    },
    "leakage": {
        **_keys(
            "val_docs train_docs exact_docs near_docs ngram_n ngram_docs ngram_fraction exact_fraction near_fraction "
            "ngram_docs_fraction ngram_val_ngrams ngram_sampled_every"
        ),
        "note": TEXT,
    },
    "against": {
        **_keys("eval_docs ngram_n"),
        "path": TEXT,
        "worst": LIST,  # only with --against
        "train": _keys("exact_docs near_docs ngram_docs ngram_fraction"),
        "val": _keys("exact_docs near_docs ngram_docs ngram_fraction"),
    },
    "budget": {
        **_keys(
            "budget_tokens unique_tokens epochs effective_tokens effective_fraction source_files tokens_per_source_file "
            "files_for_4_epochs files_for_1_epoch data_multiple_for_4_epochs data_multiple_for_1_epoch "
            "unique_tokens_for_4_epochs unique_tokens_for_1_epoch repeats_free_epochs params tokens_per_param "
            "chinchilla_tokens_per_param compute_flops optimal_params optimal_tokens"
        ),
        **_keys("verdict verdict_text chinchilla_verdict", TEXT),
    },
    "quality": {
        **_keys("docs tokens lang_min_score"),
        **_keys("rules languages lang_keep", LIST),
        "file": TEXT,  # unless --no-quality
        "removed_by_prepare": {"docs": NUMBER, "by_rule": LIST},
        "filters": {
            f: _keys("fail_docs fail_tokens fail_doc_fraction fail_token_fraction")
            for f in ("gopher_quality", "gopher_repetition", "fineweb", "c4", "lang")
        },
    },
}
PARAMS_KEYS = (
    "params",
    "tokens_per_param",
    "chinchilla_tokens_per_param",
    "compute_flops",
    "optimal_params",
    "optimal_tokens",
    "chinchilla_verdict",
)  # in budget only with --params

WIDTH = 100
_LEVEL = {"ok": "[ OK ]", "warn": "[WARN]", "bad": "[BAD ]"}


# C0 and C1 control characters (ESC starts a terminal escape sequence: a document could recolour,
# retitle or clear the user's terminal) and the bidi overrides that reorder what follows them
_UNPRINTABLE = {
    c: " " for c in [*range(0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
}


def _clip(line: str) -> str:
    """One terminal line of at most WIDTH columns, with a document's control characters as spaces."""
    line = line.translate(_UNPRINTABLE)
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."


def terminal(report: dict) -> str:
    out: list[str] = []
    add = out.append
    add(f"fwpipe audit  {report['dataset']}  ({report['format']} layout, {report['seconds']:.1f} s)")
    add("")
    for v in report["verdicts"]:
        add(f"{_LEVEL[v['level']]} {v['section']:<11}{v['text']}")
    add("")
    add(f"{'TOTALS':<8}{'docs':>12}{'tokens':>16}{'stream tokens':>16}{'distinct ids':>14}")
    for name, s in report["splits"].items():
        add(
            f"  {name:<6}{s['docs']:>12,}{tokens(s['tokens']):>16}{tokens(s['stream_tokens']):>16}{s['distinct_token_ids']:>14,}"
        )
    add("")
    add(
        f"{'LENGTHS':<8}{'p10':>7}{'p50':>7}{'p90':>7}{'p99':>8}{'max':>9}{'mean':>8}{'skew':>6}{'gini':>6}"
        f"{'top1%':>7}{'<64':>7}{'>blk':>7}"
    )
    for name, L in report["lengths"].items():
        if L["docs"] == 0:
            add(f"  {name:<6}  (no documents)")
            continue
        add(
            f"  {name:<6}{L['p10']:>7.0f}{L['p50']:>7.0f}{L['p90']:>7.0f}{L['p99']:>8.0f}{L['max']:>9,}{L['mean']:>8.0f}"
            f"{L['skewness']:>6.1f}{L['gini']:>6.2f}{pct(L['top1pct_token_share']):>7}{pct(L['short_doc_share']):>7}"
            f"{pct(L['over_block_token_share']):>7}"
        )
    blk = next(iter(report["lengths"].values())).get("block_size", "")
    add(f"  top1%: token share of the longest 1% of docs; <64: share of docs; >blk: token share over {blk}")
    add("")
    e = report["exact_duplicates"]
    add(
        f"EXACT DUPLICATES  {e['docs']:,} docs ({h(e['tokens'])} tokens) repeat an earlier doc, in {e['groups']:,} groups"
    )
    for g in e["largest"][:5]:
        add(_clip(f'  {g["copies"]:>6,}x {g["n_tokens"]:>7,} tok  "{g["snippet"]}"'))
    add("")
    nd = report["near_duplicates"]
    add(
        f"NEAR DUPLICATES  Jaccard >= {nd['threshold']} on {nd['shingle']}-token shingles, {nd['num_perm']} perms, "
        f"{nd['bands']} bands x {nd['rows']} rows"
    )
    add(
        f"  {nd['clusters']:,} clusters hold {nd['docs_in_clusters']:,} docs; removable {nd['removable_docs']:,} docs, "
        f"{h(nd['removable_tokens'])} tokens ({pct(nd['removable_token_fraction'])})"
    )
    for c in nd["largest"][:5]:
        add(_clip(f'  {c["docs"]:>6,} docs {c["n_tokens"]:>8,} tok  "{c["snippet"]}"'))
    if nd.get("clusters_file"):
        add(f"  wrote {nd['clusters_file']}")
    add("")
    lk = report["leakage"]
    add(f"LEAKAGE  {lk['val_docs']:,} val docs")
    if lk.get("ngram_fraction") is None:
        add(f"  {lk['note']}")
    else:
        add(
            f"  exact copies in train {lk['exact_docs']:,} ({pct(lk['exact_fraction'])})   near copies {lk['near_docs']:,} "
            f"({pct(lk['near_fraction'])})"
        )
        add(
            f"  sharing a {lk['ngram_n']}-gram with train {lk['ngram_docs']:,} ({pct(lk['ngram_docs_fraction'])}); "
            f"{pct(lk['ngram_fraction'])} of val {lk['ngram_n']}-grams occur in train"
        )
        for e in (lk.get("ngram_examples") or [])[:2]:  # the rest are on the HTML page, highlighted
            add(
                _clip(
                    f'  e.g. val doc {e["val"]["doc"]:,} and train doc {e["train"]["doc"]:,} share "{" ".join(e["text"].split())}"'
                )
            )
        if lk.get("note"):
            add(_clip(f"  {lk['note']}"))
    if report.get("quality"):
        from fwpipe.audit.quality import terminal_lines

        add("")
        out.extend(terminal_lines(report["quality"]))
    b = report.get("budget")
    if b:
        add("")
        add(f"BUDGET  {h(b['budget_tokens'])} tokens over {h(b['unique_tokens'])} unique train tokens")
        add(
            f"  {ratio(b['epochs'])} epochs; effective data {h(b['effective_tokens'])} tokens ({pct(b['effective_fraction'])} of "
            f"the budget); verdict: {b['verdict']}"
        )
        if b["epochs"] > 1:
            if b["files_for_4_epochs"]:
                add(
                    f"  for <= {b['repeats_free_epochs']:g} epochs: {b['files_for_4_epochs']:,} input files like these "
                    f"({b['source_files']} now, "
                    f"{h(b['tokens_per_source_file'])} tokens each); for 1 epoch: {b['files_for_1_epoch']:,}"
                )
            else:
                add(
                    f"  for <= {b['repeats_free_epochs']:g} epochs: {ratio(b['data_multiple_for_4_epochs'])}x this data "
                    f"({h(b['unique_tokens_for_4_epochs'])} "
                    f"tokens); for 1 epoch: {ratio(b['data_multiple_for_1_epoch'])}x"
                )
        if "params" in b:
            add(
                f"  {params(b['params'])} params, {ratio(b['tokens_per_param'])} tokens/param (Chinchilla ~{b['chinchilla_tokens_per_param']:g})"
            )
            add(f"  {b['chinchilla_verdict']}")
            add(
                f"  compute-optimal for this compute: {params(b['optimal_params'])} params on {h(b['optimal_tokens'])} tokens"
            )
    return "\n".join(_clip(line) for line in out)
