"""`fwpipe estimate` and `fwpipe prepare`: parquet -> GPT-2 token shards, and what they would hold.

Thin wrappers over fwpipe.pipeline.estimate.estimate and fwpipe.pipeline.prepare.prepare; the
text they print is fwpipe.pipeline.summary's. Imports fwpipe.cli.common, the ground floor and
the pipeline stage (inside the commands, so that `fwpipe --help` stays fast).
"""

from __future__ import annotations

import click

from fwpipe.cli.common import (
    CONTEXT,
    DEFAULT_DATASET,
    TOKENS,
    SuggestingCommand,
    budget_option,
    config_option,
    json_option,
    memory_gb_option,
    model_params,
    params_option,
    ray_option,
    summary,
    tmp_dir_option,
    workers_option,
)


def inputs_argument(f):
    return click.argument("inputs", nargs=-1, metavar="INPUTS...")(f)


def sample_option(f):
    return click.option(
        "--sample", is_flag=True, help="Add the bundled FineWeb sample (1,550 real documents) to the inputs."
    )(f)


def text_column_option(f):
    return click.option("--text-column", default="text", show_default=True, help="Column that holds the documents.")(f)


def val_fraction_option(f):
    return click.option(
        "--val-fraction", type=float, default=0.005, show_default=True, help="Share of documents (by key hash) in val."
    )(f)


def seed_option(f):
    return click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split hash.")(f)


def tokenizer_engine_option(f):
    return click.option(
        "--tokenizer-engine",
        type=click.Choice(["gigatoken", "tiktoken"]),
        default="gigatoken",
        show_default=True,
        help="What tokenizes: gigatoken (fast) or tiktoken (the reference); the same ids and bytes either way.",
    )(f)


def max_epochs_option(f):
    return click.option(
        "--max-epochs",
        type=float,
        default=1.0,
        show_default=True,
        help="Epochs the budget may run over the train split.",
    )(f)


def _with_sample(inputs: tuple, sample: bool) -> list[str]:
    if not sample:
        return list(inputs)
    from fwpipe.sample import SAMPLE_FILES

    click.echo(
        f"using the bundled FineWeb sample ({len(SAMPLE_FILES)} files; ODC-By 1.0, HuggingFaceFW/fineweb)", err=True
    )
    return [str(p) for p in SAMPLE_FILES] + list(inputs)


def _estimate(
    inputs, *, text_column, val_fraction, seed, budget_tokens, max_epochs, params, config, json_path, tokenizer_engine
) -> None:
    from fwpipe.pipeline.estimate import estimate as run_estimate
    from fwpipe.pipeline.summary import format_estimate

    est = run_estimate(
        inputs,
        text_column=text_column,
        val_fraction=val_fraction,
        budget_tokens=budget_tokens,
        max_epochs=max_epochs,
        params=model_params(params, config),
        seed=seed,
        tokenizer_engine=tokenizer_engine,
    )
    summary(json_path, est, format_estimate(est))


# --------------------------------------------------------------------------------- estimate


@click.command(cls=SuggestingCommand, context_settings=CONTEXT)
@inputs_argument
@sample_option
@budget_option("the epochs it runs and how many files like these it needs.")
@params_option
@config_option("A train config (preset name or TOML) for the parameters, instead of --params.")
@max_epochs_option
@text_column_option
@val_fraction_option
@seed_option
@tokenizer_engine_option
@json_option("the estimate")
def estimate(
    inputs,
    sample,
    budget_tokens,
    params,
    config,
    max_epochs,
    text_column,
    val_fraction,
    seed,
    tokenizer_engine,
    json_path,
):
    """Estimate documents, tokens, epochs and files needed, tokenizing (almost) nothing.

    INPUTS are parquet files, directories or globs, local or URLs, as for prepare. Answers in
    seconds from parquet footers, FineWeb's token_count column, or a small tokenized sample.
    Writes nothing (`prepare --estimate` is the same).

    \b
      fwpipe estimate 000_00000.parquet --budget-tokens 7.6e9
      fwpipe estimate 'fineweb/*.parquet' --config rtx4070-40m      # budget: 20 tokens/param
      fwpipe estimate 'hf://datasets/HuggingFaceFW/fineweb/sample/10BT/*.parquet' --budget-tokens 7.6e9
    """
    _estimate(
        _with_sample(inputs, sample),
        text_column=text_column,
        val_fraction=val_fraction,
        seed=seed,
        budget_tokens=budget_tokens,
        max_epochs=max_epochs,
        params=params,
        config=config,
        json_path=json_path,
        tokenizer_engine=tokenizer_engine,
    )


# ---------------------------------------------------------------------------------- prepare


@click.command(cls=SuggestingCommand, context_settings=CONTEXT)
@inputs_argument
@click.option(
    "-o",
    "--out",
    "out_dir",
    default=DEFAULT_DATASET,
    show_default=True,
    metavar="DATASET",
    help="Dataset directory to write.",
)
@sample_option
@text_column_option
@val_fraction_option
@seed_option
@click.option("--shard-tokens", type=TOKENS, default=100_000_000, show_default=True, help="Most tokens per shard.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["fwpipe", "nanogpt"]),
    default="fwpipe",
    show_default=True,
    help="fwpipe: llm.c-format shards; nanogpt: raw train.bin / val.bin.",
)
@workers_option("Processes that tokenize work units and assemble shards")
@click.option(
    "--buffer-mb",
    type=click.IntRange(min=1),
    default=None,
    hidden=True,
    help="Deprecated: memory follows --workers now.",
)
@click.option(
    "--dedup",
    type=click.Choice(["near", "exact", "none"]),
    default="near",
    show_default=True,
    help="Drop near (MinHash) or exact duplicates, keeping the first; clusters never straddle train/val.",
)
@click.option(
    "--filter",
    "filters",
    default=None,
    metavar="NAME[,NAME]",
    help="Drop documents that gopher, fineweb, c4 or lang=en fail, before tokenizing; each is listed in removed.parquet.  [default: none]",
)
@budget_option("stop once train holds enough tokens for it at --max-epochs.")
@max_epochs_option
@click.option(
    "--estimate", is_flag=True, help="Only estimate tokens, epochs and files needed: the same as `fwpipe estimate`."
)
@params_option
@config_option("With --estimate: a train config (preset name or TOML) for the parameters, instead of --params.")
@click.option("--overwrite", is_flag=True, help="Replace a dataset made from other inputs or options.")
@json_option("the summary")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    metavar="DIR",
    help="URL inputs: keep whole copies here (a rerun reads them locally) instead of streaming.",
)
@memory_gb_option
@tmp_dir_option("OUT/.work")
@ray_option
@tokenizer_engine_option
def prepare(
    inputs,
    out_dir,
    sample,
    text_column,
    val_fraction,
    seed,
    shard_tokens,
    fmt,
    workers,
    buffer_mb,
    dedup,
    budget_tokens,
    max_epochs,
    estimate,
    params,
    config,
    overwrite,
    json_path,
    cache_dir,
    memory_gb,
    tmp_dir,
    ray_address,
    tokenizer_engine,
    filters,
):
    """Tokenize FineWeb parquet into GPT-2 token shards.

    INPUTS are parquet files, directories (every *.parquet inside) or globs; together they
    make one dataset. They may be URLs (hf://, https://, s3://; pip install 'fwpipe[remote]'),
    streamed by row group. Interrupted? Run the same command again: it resumes.

    \b
      fwpipe prepare 000_00000.parquet
      fwpipe prepare --sample
      fwpipe prepare 'fineweb/*.parquet' -o data/fw --format nanogpt
      fwpipe prepare 'fineweb/*.parquet' --budget-tokens 7.6e9 --max-epochs 4
      fwpipe prepare 'hf://datasets/HuggingFaceFW/fineweb/sample/10BT/*.parquet' --budget-tokens 7.6e9
    """
    from fwpipe import remote
    from fwpipe.pipeline.prepare import PrepareOptions
    from fwpipe.pipeline.prepare import prepare as run_prepare
    from fwpipe.pipeline.summary import format_prepare_summary
    from fwpipe.quality.filter import parse_filters

    remote.set_cache_dir(cache_dir)
    inputs = _with_sample(inputs, sample)
    if estimate:
        _estimate(
            inputs,
            text_column=text_column,
            val_fraction=val_fraction,
            seed=seed,
            budget_tokens=budget_tokens,
            max_epochs=max_epochs,
            params=params,
            config=config,
            json_path=json_path,
            tokenizer_engine=tokenizer_engine,
        )
        return
    if params is not None or config is not None:
        raise click.UsageError(
            "--params and --config go with --estimate (or `fwpipe estimate`); train takes its own --config"
        )
    options = PrepareOptions(
        text_column=text_column,
        val_fraction=val_fraction,
        seed=seed,
        shard_tokens=shard_tokens,
        format=fmt,
        budget_tokens=budget_tokens,
        max_epochs=max_epochs,
        dedup=dedup,
        tokenizer_engine=tokenizer_engine,
        filters=parse_filters(filters),
    )
    from fwpipe.dataset import check_report_path

    check_report_path(json_path, out_dir, flag="--json")  # before anything is written
    if buffer_mb is not None:  # the threaded prepare's text-in-flight cap; units bound memory per worker
        click.echo("warning: --buffer-mb is deprecated and does nothing: memory follows --workers", err=True)
    from fwpipe.executors import make_executor

    with make_executor(workers, ray_address) as ex:
        result = run_prepare(
            inputs, out_dir, options=options, overwrite=overwrite, memory_gb=memory_gb, tmp_dir=tmp_dir, executor=ex
        )
    summary(json_path, result, format_prepare_summary(result))
