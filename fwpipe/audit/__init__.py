"""The audit stage, `fwpipe audit`: totals, lengths, exact and near duplicates, leakage, budget verdict.

    run.py             audit(): reads a dataset, runs each section, returns the JSON report
    corpus.py          every document located (shard, start, end) for the sections below
    totals.py lengths.py exactdup.py neardup.py leakage.py against.py budget_section.py
                       one report section each (duplicates and near copies from fwpipe.dedup)
    report.py          the report's schema (the keys --fail-on may test) and its terminal text
    rules.py           --fail-on; html.py, examples.py: the HTML page and the documents it shows

May import the ground floor (dataset, shards, tokenizer, kernels, budget, dedup, executor, ...);
never another stage (it reads what prepare wrote through fwpipe.dataset) and never the CLI.
"""

from fwpipe.audit.run import audit

__all__ = ["audit"]
