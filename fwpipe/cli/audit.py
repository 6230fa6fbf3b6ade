"""`fwpipe audit`: totals, lengths, duplicates, train/val leakage and a budget verdict of a dataset.

A thin wrapper over fwpipe.audit.audit; the text it prints is fwpipe.audit.report.terminal's.
Imports fwpipe.cli.common, the ground floor and the audit stage (inside the command).
"""

from __future__ import annotations

import sys

import click

from fwpipe import budget, fmt
from fwpipe.cli.common import (
    CONTEXT,
    TOKENS,
    SuggestingCommand,
    budget_option,
    dataset_argument,
    json_option,
    memory_gb_option,
    note,
    params_option,
    ray_option,
    summary,
    tmp_dir_option,
    workers_option,
)


@click.command(cls=SuggestingCommand, context_settings=CONTEXT)
@dataset_argument
@budget_option("adds epochs, effective data and a verdict.")
@params_option
@click.option(
    "--block-size", type=TOKENS, default=1024, show_default=True, help="Context length for the long-document share."
)
@click.option("--shingle", type=int, default=5, show_default=True, help="Tokens per MinHash shingle.")
@click.option("--threshold", type=float, default=0.8, show_default=True, help="Jaccard threshold for near duplicates.")
@click.option("--num-perm", type=int, default=128, show_default=True, help="MinHash permutations.")
@click.option("--ngram", type=int, default=13, show_default=True, help="n for train/val n-gram contamination.")
@json_option("the full report")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="Write a self-contained HTML report with plots.",
)
@click.option(
    "--fail-on",
    "fail_on",
    multiple=True,
    metavar="RULE",
    help="Exit 1 if RULE holds, e.g. 'leakage.near_docs>0', 'budget.epochs>4'. Repeatable.",
)
@memory_gb_option
@tmp_dir_option("system temp")
@click.option(
    "--against",
    "against_path",
    default=None,
    metavar="EVAL",
    help="Eval set (parquet/JSONL with text, or a dataset): its exact, near and n-gram overlap with train/val.",
)
@click.option(
    "--no-quality", "no_quality", is_flag=True, help="Skip the quality section (Gopher/FineWeb/C4 rules, language)."
)
@click.option(
    "--quality-config",
    default=None,
    metavar="TOML",
    help="Quality thresholds to use instead of the published ones (README, Quality).",
)
@workers_option("Worker processes for the signature units")
@ray_option
def audit(
    dataset,
    budget_tokens,
    params,
    block_size,
    shingle,
    threshold,
    num_perm,
    ngram,
    json_path,
    html_path,
    fail_on,
    memory_gb,
    tmp_dir,
    against_path,
    no_quality,
    quality_config,
    workers,
    ray_address,
):
    """Audit a tokenized dataset: totals, lengths, duplicates, train/val leakage, budget verdict.

    DATASET is a fwpipe dataset directory (default data/fineweb), a nanoGPT directory with
    train.bin/val.bin, or llm.c shards (a directory or a quoted glob).

    \b
      fwpipe audit --budget-tokens 7.6e9 --params 40e6
      fwpipe audit --params 40e6                    # budget: Chinchilla's 20 tokens/param = 800M
      fwpipe audit data/fineweb --json audit.json --html audit.html
      fwpipe audit 'shards/fineweb_*.bin' --fail-on 'leakage.near_docs>0' --fail-on 'budget.epochs>4'
      fwpipe audit data/fineweb --tmp-dir /shared/scratch --ray=HEAD:6379
    """
    from fwpipe.audit import audit as run_audit
    from fwpipe.audit.report import terminal
    from fwpipe.audit.rules import failed_rules, parse_rule
    from fwpipe.dataset import check_report_path
    from fwpipe.executors import make_executor
    from fwpipe.progress import Progress

    echo = note(json_path)
    check_report_path(json_path, dataset, flag="--json")  # before the audit writes anything
    check_report_path(html_path, dataset, flag="--html")
    budget_tokens, budget_from = budget.budget_or_chinchilla(budget_tokens, params)  # as `fwpipe estimate --params`
    if budget_from == "chinchilla":
        click.echo(
            f"budget: Chinchilla's {budget.CHINCHILLA_TOKENS_PER_PARAM:g} tokens x {fmt.params(params)} params = {fmt.tokens(budget_tokens)} tokens "
            "(pass --budget-tokens for another)",
            err=True,
        )
    # a malformed rule, an unknown key or a budget rule without a budget fails before the audit runs
    rules = [parse_rule(r, budget=budget_tokens is not None, params=params is not None) for r in fail_on]
    prog = Progress()
    if not no_quality:
        from fwpipe.audit.quality import warm

        warm()  # before the pool forks: its workers inherit the language model and kernels
    try:
        with make_executor(workers, ray_address) as ex:
            report = run_audit(
                dataset,
                budget_tokens=budget_tokens,
                params=params,
                block_size=block_size,
                shingle=shingle,
                threshold=threshold,
                num_perm=num_perm,
                ngram=ngram,
                memory_gb=memory_gb,
                tmp_dir=tmp_dir,
                against_path=against_path,
                executor=ex,
                quality=not no_quality,
                quality_config=quality_config,
                on_step=lambda s: prog.update(f"audit: {s} ({prog.elapsed():.0f} s)", force=True),
            )
    finally:
        prog.close()
    summary(json_path, report, terminal(report))
    if html_path:
        from fwpipe.audit.html import write_html

        write_html(report, html_path)
        echo(f"wrote {html_path}")
    failed = failed_rules(report, rules)
    for rule, value in failed:
        click.echo(f"fail-on: {rule.text} holds ({'.'.join(rule.path)} = {value:g})", err=True)
    if failed:
        sys.exit(1)
