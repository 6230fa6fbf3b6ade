"""The `fwpipe` command: one click group, one thin command per stage.

Each command parses flags, calls one library function and prints what it returns. Every
FwpipeError, and every usage error click finds (a missing argument, a bad value), becomes a
single `Error: ...` line and exit code 1, here and nowhere else.

The conventions every command follows:
  * a command that reads a dataset takes it as its first argument, DATASET, default
    data/fineweb (`train --data DIR` still works, with a deprecation line on stderr);
  * a command that ends in a summary writes it as JSON with `--json PATH`; `--json -` puts the
    JSON alone on stdout (the text summary is left out, notes and progress go to stderr);
  * a flag two commands share (--budget-tokens, --params, --device, --json, --workers,
    --ray, --memory-gb, --tmp-dir) is defined once below: the same type, metavar and help.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import sys

import click

from fwpipe import __version__
from fwpipe import budget as B
from fwpipe.atomic import write_json
from fwpipe.errors import FwpipeError
from fwpipe.fmt import count, size

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
DEFAULT_DATASET = "data/fineweb"


class WholeNumber(click.ParamType):
    """A positive whole number, written plainly or in scientific notation: 7.6e9, 40e6, 1_000_000."""

    def __init__(self, name: str, unit: str, example: str):
        self.name, self.unit, self.example = name, unit, example  # name is the metavar: TOKENS, PARAMS

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            v = float(value)
        else:
            try:
                v = float(str(value).replace("_", ""))
            except ValueError:
                self.fail(f"{value!r} is not a number of {self.unit} (e.g. {self.example})", param, ctx)
        if math.isnan(v) or math.isinf(v):
            self.fail(f"{value!r} is not a finite number of {self.unit}", param, ctx)
        if v != int(v):
            self.fail(f"{value!r} is not a whole number of {self.unit}", param, ctx)
        if v <= 0:
            self.fail(f"{value!r} is not a positive number of {self.unit} (e.g. {self.example})", param, ctx)
        return int(v)


TOKENS = WholeNumber("TOKENS", "tokens", "7.6e9")
PARAMS = WholeNumber("PARAMS", "parameters", "40e6")


class OneLineUsageError(click.ClickException):
    """A usage error shown like every other error: one line, exit code 1, no usage block."""

    exit_code = 1

    def show(self, file=None) -> None:
        click.echo(f"Error: {self.message}", err=True)


def _one_line(e: click.UsageError) -> OneLineUsageError:
    msg = e.format_message().strip().rstrip(".")
    ctx = e.ctx
    path = " ".join(["fwpipe"] + [c.info_name for c in _chain(ctx)[1:]]) if ctx else "fwpipe"
    return OneLineUsageError(f"{msg}; see `{path} --help`")


def _chain(ctx: click.Context | None) -> list[click.Context]:
    out = []
    while ctx is not None:
        out.append(ctx)
        ctx = ctx.parent
    return out[::-1]


class FwpipeGroup(click.Group):
    """Turns library errors and usage errors into one line on stderr and exit code 1."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.NoArgsIsHelpError as e:  # bare `fwpipe`: the help page, as `fwpipe -h` (click would exit 2)
            click.echo(e.ctx.get_help())
            raise click.exceptions.Exit(0) from None
        except click.UsageError as e:  # `fwpipe --bogus`
            raise _one_line(e) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as e:  # an unknown command, or a command's missing argument or bad value
            raise _one_line(e) from None
        except FwpipeError as e:
            # one line: what is wrong, where, and what to do
            click.echo(f"Error: {e.message}" + (f"; {e.hint}" if e.hint else ""), err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)


# ------------------------------------------------------------------------- shared options
# One definition per flag that more than one command takes: the same type, metavar and help.


def dataset_argument(f):
    return click.argument("dataset", default=DEFAULT_DATASET, metavar="[DATASET]")(f)


def budget_option(effect: str):
    return click.option("--budget-tokens", type=TOKENS, default=None, help=f"The training budget in tokens (e.g. 7.6e9): {effect}")


def params_option(f):
    return click.option("--params", type=PARAMS, default=None,
                        help="Model parameters (e.g. 40e6): adds tokens per parameter and the compute-optimal size (Chinchilla); without "
                             f"--budget-tokens the budget is Chinchilla's {B.CHINCHILLA_TOKENS_PER_PARAM:g} tokens per parameter.")(f)  # fmt: skip


def json_option(what: str):
    return click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True), metavar="PATH|-", default=None,
                        help=f"Also write {what} as JSON to PATH ('-': the JSON alone on stdout).")


def device_option(f):
    return click.option("--device", type=click.Choice(["auto", "cuda", "mps", "cpu"]), default="auto", show_default=True,
                        help="Where to run; auto takes cuda, then mps, then cpu.")(f)


def workers_option(what: str):
    return click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N", help=f"{what} [default: all cores].")


# --ray alone: RAY_ADDRESS, else a cluster started on this machine, else a new local one (ray.init()'s
# default); --ray HOST:PORT: that cluster. Put it after DATASET/INPUTS: `--ray DATASET` reads DATASET as the address.
ray_option = click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
                          help="Run the units as tasks on a Ray cluster (pip install 'fwpipe[ray]'); ADDRESS defaults to RAY_ADDRESS.")


def memory_gb_option(f):
    return click.option("--memory-gb", type=float, default=None, metavar="GB",
                        help="Memory for near-duplicate detection beyond ~50 bytes/document [default: 1].")(f)


def tmp_dir_option(default: str):
    return click.option("--tmp-dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
                        help=f"Scratch directory for near-duplicate detection [default: {default}].")


def _dumps(obj) -> str:
    return json.dumps(obj, indent=2, default=str)  # as atomic.write_json writes it


def _summary(json_path: str | None, data, text: str | None) -> None:
    """The text summary on stdout, and with --json the same numbers as JSON; `--json -` puts the
    JSON alone on stdout."""
    if json_path == "-":
        click.echo(_dumps(data))
        return
    if text is not None:
        click.echo(text)
    if json_path:
        write_json(json_path, data)
        click.echo(f"wrote {json_path}")


def _note(json_path: str | None):
    """Where notes go: stdout, or stderr when stdout holds JSON."""
    return functools.partial(click.echo, err=json_path == "-")


@click.group(cls=FwpipeGroup, name="fwpipe", context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="fwpipe")
@click.option("-v", "--verbose", is_flag=True, help="Log what the library does (to stderr).")
def main(verbose: bool) -> None:
    """FineWeb parquet -> audited GPT-2 token shards -> a GPT trained to a token budget.

    \b
      fwpipe estimate shard.parquet --budget-tokens 7.6e9   # tokens and epochs, before any tokenizing
      fwpipe prepare shard.parquet        # parquet -> GPT-2 token shards in data/fineweb
      fwpipe audit                        # totals, duplicates, leakage, budget verdict
      fwpipe train --budget-tokens 7.6e9  # a GPT sized to the budget

    DATASET (audit, train) defaults to data/fineweb, where prepare writes.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)


# ---------------------------------------------------------------------------------- prepare
# (section owned by the prepare stage)


def inputs_argument(f):
    return click.argument("inputs", nargs=-1, metavar="INPUTS...")(f)


def sample_option(f):
    return click.option("--sample", is_flag=True, help="Add the bundled FineWeb sample (1,550 real documents) to the inputs.")(f)


def text_column_option(f):
    return click.option("--text-column", default="text", show_default=True, help="Column that holds the documents.")(f)


def val_fraction_option(f):
    return click.option("--val-fraction", type=float, default=0.005, show_default=True, help="Share of documents (by key hash) in val.")(f)


def seed_option(f):
    return click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split hash.")(f)


def max_epochs_option(f):
    return click.option("--max-epochs", type=float, default=1.0, show_default=True,
                        help="Epochs the budget may run over the train split.")(f)


def _with_sample(inputs: tuple, sample: bool) -> list[str]:
    if not sample:
        return list(inputs)
    from fwpipe.sample import SAMPLE_FILES

    click.echo(f"using the bundled FineWeb sample ({len(SAMPLE_FILES)} files; ODC-By 1.0, HuggingFaceFW/fineweb)", err=True)
    return [str(p) for p in SAMPLE_FILES] + list(inputs)


def _estimate(inputs, *, text_column, val_fraction, seed, budget_tokens, max_epochs, params, config, json_path) -> None:
    from fwpipe.pipeline.estimate import estimate as run_estimate, format_estimate

    est = run_estimate(inputs, text_column=text_column, val_fraction=val_fraction, budget_tokens=budget_tokens,
                       max_epochs=max_epochs, params=params, config=config, seed=seed)  # fmt: skip
    _summary(json_path, est, format_estimate(est))


# --------------------------------------------------------------------------------- estimate


@main.command(context_settings=CONTEXT)
@inputs_argument
@sample_option
@budget_option("the epochs it runs and how many files like these it needs.")
@params_option
@click.option("--config", "config", default=None, metavar="NAME|TOML",
              help="A train config (preset name or TOML) for the parameters, instead of --params.")
@max_epochs_option
@text_column_option
@val_fraction_option
@seed_option
@json_option("the estimate")
def estimate(inputs, sample, budget_tokens, params, config, max_epochs, text_column, val_fraction, seed, json_path):
    """Estimate documents, tokens, epochs and files needed, tokenizing (almost) nothing.

    INPUTS are parquet files, directories or globs, local or URLs, as for prepare. Answers in
    seconds from parquet footers, FineWeb's token_count column, or a small tokenized sample.
    Writes nothing (`prepare --estimate` is the same).

    \b
      fwpipe estimate 000_00000.parquet --budget-tokens 7.6e9
      fwpipe estimate 'fineweb/*.parquet' --config rtx4070-40m      # budget: 20 tokens/param
      fwpipe estimate 'hf://datasets/HuggingFaceFW/fineweb/sample/10BT/*.parquet' --budget-tokens 7.6e9
    """
    _estimate(_with_sample(inputs, sample), text_column=text_column, val_fraction=val_fraction, seed=seed, budget_tokens=budget_tokens,
              max_epochs=max_epochs, params=params, config=config, json_path=json_path)


# ---------------------------------------------------------------------------------- prepare
# (section owned by the prepare stage)


@main.command(context_settings=CONTEXT)
@inputs_argument
@click.option("-o", "--out", "out_dir", default=DEFAULT_DATASET, show_default=True, metavar="DATASET", help="Dataset directory to write.")
@sample_option
@text_column_option
@val_fraction_option
@seed_option
@click.option("--shard-tokens", type=TOKENS, default=100_000_000, show_default=True, help="Most tokens per shard.")
@click.option("--format", "fmt", type=click.Choice(["fwpipe", "nanogpt"]), default="fwpipe", show_default=True,
              help="fwpipe: llm.c-format shards; nanogpt: raw train.bin / val.bin.")  # fmt: skip
@workers_option("Processes that tokenize work units and assemble shards")
@click.option("--buffer-mb", type=click.IntRange(min=1), default=None, hidden=True, help="Deprecated: memory follows --workers now.")
@click.option("--dedup", type=click.Choice(["near", "exact", "none"]), default="near", show_default=True,
              help="Drop near (MinHash) or exact duplicates, keeping the first; clusters never straddle train/val.")  # fmt: skip
@budget_option("stop once train holds enough tokens for it at --max-epochs.")
@max_epochs_option
@click.option("--estimate", is_flag=True, help="Only estimate tokens, epochs and files needed: the same as `fwpipe estimate`.")
@params_option
@click.option("--config", "config", default=None, metavar="NAME|TOML",
              help="With --estimate: a train config (preset name or TOML) for the parameters, instead of --params.")
@click.option("--overwrite", is_flag=True, help="Replace a dataset made from other inputs or options.")
@json_option("the summary")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="URL inputs: keep whole copies here (a rerun reads them locally) instead of streaming.")  # fmt: skip
@memory_gb_option
@tmp_dir_option("OUT/.work")
@ray_option
def prepare(
    inputs, out_dir, sample, text_column, val_fraction, seed, shard_tokens, fmt, workers, buffer_mb, dedup, budget_tokens, max_epochs,
    estimate, params, config, overwrite, json_path, cache_dir, memory_gb, tmp_dir, ray_address,
):  # fmt: skip
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
    from fwpipe.pipeline.prepare import PrepareOptions, prepare as run_prepare

    remote.set_cache_dir(cache_dir)
    inputs = _with_sample(inputs, sample)
    if estimate:
        _estimate(inputs, text_column=text_column, val_fraction=val_fraction, seed=seed, budget_tokens=budget_tokens,
                  max_epochs=max_epochs, params=params, config=config, json_path=json_path)
        return
    if params is not None or config is not None:
        raise click.UsageError("--params and --config go with --estimate (or `fwpipe estimate`); train takes its own --config")
    options = PrepareOptions(
        text_column=text_column, val_fraction=val_fraction, seed=seed, shard_tokens=shard_tokens, format=fmt,
        budget_tokens=budget_tokens, max_epochs=max_epochs, dedup=dedup,
    )  # fmt: skip
    if buffer_mb is not None:  # the threaded prepare's text-in-flight cap; units bound memory per worker
        click.echo("warning: --buffer-mb is deprecated and does nothing: memory follows --workers", err=True)
    from fwpipe.executors import make_executor

    with make_executor(workers, ray_address) as ex:
        summary = run_prepare(inputs, out_dir, options=options, overwrite=overwrite, memory_gb=memory_gb, tmp_dir=tmp_dir, executor=ex)
    _summary(json_path, summary, format_prepare_summary(summary))


def format_prepare_summary(s: dict) -> str:
    if not s.get("did_work"):
        return f"{s['out_dir']}: already prepared from these inputs, nothing to do ({s['docs']:,} documents, {s['tokens']:,} tokens)"
    lines = [f"prepared {s['out_dir']} ({s['format']}) from {s['sources']} file(s)" + (" (resumed)" if s.get("resumed") else "")]
    if s["docs"] == 0:
        lines.append("  warning: the dataset holds no documents: every row was null, empty or longer than a shard")
    for name, sp in s["splits"].items():
        lines.append(f"  {name:5s} {sp['docs']:>12,} docs {sp['tokens']:>15,} tokens  {sp['shards']} shard(s)")
    dd = s.get("dedup") or {}
    if dd.get("mode", "none") != "none":
        lines.append(f"  dedup {dd['mode']}: removed {dd['removed_docs']:,} docs ({dd['removed_exact']:,} exact, {dd['removed_near']:,} near), "
                     f"{dd['removed_tokens']:,} tokens, in {dd['clusters']:,} clusters; see removed.parquet")  # fmt: skip
    sk = s["skipped"]
    if any(sk.values()):
        lines.append(f"  skipped: {sk['null_text']:,} null text, {sk['empty_text']:,} empty text, {sk['too_long']:,} longer than a shard")
    tc = s.get("token_count_check")
    if tc:
        line = f"  token_count check: {tc['checked']:,} rows, {tc['differ']:,} differ ({tc['email_placeholder']:,} e-mail placeholders, expected; {tc['real']:,} real)"
        if tc["real"]:
            line += "; first: " + ", ".join(tc["first_real"])
        lines.append(line)
    z = s.get("sizing")
    if z:
        head = f"  budget {z['budget_tokens']:,} tokens at <= {z['max_epochs']:g} epochs needs {z['target_train_tokens']:,} train tokens: "
        if z["reached"]:
            unused = f"; {len(z['inputs_unused'])} input file(s) left untouched" if z["inputs_unused"] else ""
            lines.append(head + f"reached with {z['train_stream_tokens']:,} ({z['epochs']:.2f} epochs){unused}")
        else:
            lines.append(head + f"inputs ran out at {z['train_stream_tokens']:,}, {z['shortfall_tokens']:,} short ({z['epochs']:.2f} epochs)")
            if z.get("more_files_needed"):
                lines.append(f"  -> {z['more_files_needed']} more file(s) like these ({z['files_needed']} in all) reach <= {z['max_epochs']:g} epochs")
    g = s.get("fetched")
    if g:
        lines.append(f"  fetched {size(g['fetched_bytes'])} in {g['requests']:,} requests" + (f", {g['retries']:,} retries" if g["retries"] else ""))
    lines.append(f"  {s['seconds']:.1f} s, {count(s['tokens_per_s'])} tokens/s on {s['workers']} worker(s)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ audit
# (section owned by the audit stage)


@main.command(context_settings=CONTEXT)
@dataset_argument
@budget_option("adds epochs, effective data and a verdict.")
@params_option
@click.option("--block-size", type=int, default=1024, show_default=True, help="Context length for the long-document share.")
@click.option("--shingle", type=int, default=5, show_default=True, help="Tokens per MinHash shingle.")
@click.option("--threshold", type=float, default=0.8, show_default=True, help="Jaccard threshold for near duplicates.")
@click.option("--num-perm", type=int, default=128, show_default=True, help="MinHash permutations.")
@click.option("--ngram", type=int, default=13, show_default=True, help="n for train/val n-gram contamination.")
@json_option("the full report")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), metavar="PATH", help="Write a self-contained HTML report with plots.")
@click.option("--fail-on", "fail_on", multiple=True, metavar="RULE", help="Exit 1 if RULE holds, e.g. 'leakage.near_docs>0', 'budget.epochs>4'. Repeatable.")
@memory_gb_option
@tmp_dir_option("system temp")
@click.option("--against", "against_path", default=None, metavar="EVAL",
              help="Eval set (parquet/JSONL with text, or a dataset): its exact, near and n-gram overlap with train/val.")
@workers_option("Worker processes for the signature units")
@ray_option
def audit(dataset, budget_tokens, params, block_size, shingle, threshold, num_perm, ngram, json_path, html_path, fail_on, memory_gb,
          tmp_dir, against_path, workers, ray_address):
    """Audit a tokenized dataset: totals, lengths, duplicates, train/val leakage, budget verdict.

    DATASET is a fwpipe dataset directory (default data/fineweb), a nanoGPT directory with
    train.bin/val.bin, or llm.c shards (a directory or a quoted glob).

    \b
      fwpipe audit --budget-tokens 7.6e9 --params 40e6
      fwpipe audit --params 40e6                    # budget: Chinchilla's 20 tokens/param = 800M
      fwpipe audit data/fineweb --json audit.json --html audit.html
      fwpipe audit 'shards/fineweb_*.bin' --fail-on 'leakage.near_docs>0' --fail-on 'budget.epochs>4'
      fwpipe audit data/fineweb --tmp-dir /shared/scratch --ray HEAD:6379
    """
    from fwpipe.audit import audit as run_audit
    from fwpipe.audit.report import terminal
    from fwpipe.audit.rules import failed_rules, parse_rule
    from fwpipe.executors import make_executor
    from fwpipe.progress import Progress

    note = _note(json_path)
    if budget_tokens is None and params is not None:  # as `fwpipe estimate --params`: the compute-optimal budget
        budget_tokens = B.budget_for_params(params)
        click.echo(f"budget: Chinchilla's {B.CHINCHILLA_TOKENS_PER_PARAM:g} tokens x {params:,} params = {budget_tokens:,} tokens "
                   "(pass --budget-tokens for another)", err=True)  # fmt: skip
    # a malformed rule, an unknown key or a budget rule without a budget fails before the audit runs
    rules = [parse_rule(r, budget=budget_tokens is not None, params=params is not None) for r in fail_on]
    prog = Progress()
    try:
        with make_executor(workers, ray_address) as ex:
            report = run_audit(dataset, budget_tokens=budget_tokens, params=params, block_size=block_size, shingle=shingle,
                               threshold=threshold, num_perm=num_perm, ngram=ngram, memory_gb=memory_gb, tmp_dir=tmp_dir,
                               against_path=against_path, executor=ex,
                               on_step=lambda s: prog.update(f"audit: {s} ({prog.elapsed():.0f} s)", force=True))
    finally:
        prog.close()
    _summary(json_path, report, terminal(report))
    if html_path:
        from fwpipe.audit.html import write_html

        write_html(report, html_path)
        note(f"wrote {html_path}")
    failed = failed_rules(report, rules)
    for rule, value in failed:
        click.echo(f"fail-on: {rule.text} holds ({'.'.join(rule.path)} = {value:g})", err=True)
    if failed:
        sys.exit(1)


# ------------------------------------------------------------------------------------ train
# (section owned by the train stage)


@main.command(context_settings=CONTEXT)
@dataset_argument
@budget_option("how long to train (taken from the checkpoint with --resume, or from a budget-sized dataset's manifest).")
@click.option("--data", "data_old", default=None, hidden=True, help="Deprecated spelling of DATASET.")
@click.option("--config", "config", default=None, metavar="NAME|TOML",
              help="Preset name (rtx4070-40m, gpt2-124m, tiny-cpu) or a TOML path.  [default: rtx4070-40m]")
@click.option("--out", "out", default=None, metavar="DIR", help="Run directory.  [default: runs/<config name>]")
@device_option
@click.option("--dry-run", is_flag=True, help="Print the plan and stop.")
@json_option("the plan")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt, exactly.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. --set lr=3e-4 --set n_layer=6.")
@click.option("--allow-repeats", is_flag=True, help=f"Train even past {B.REPEATS_MAX_EPOCHS} epochs, where repeats stop helping.")
@click.option("--peak-tflops", type=float, default=None, help="The device's dense bf16 peak for MFU [default: from the GPU table].")
@click.option("--hellaswag", "hellaswag", default=None, metavar="FILE", help="hellaswag_val.jsonl (downloaded by you): acc_norm at every eval.")
@click.pass_context
def train(ctx, dataset, budget_tokens, data_old, config, out, device, dry_run, json_path, resume, overrides, allow_repeats, peak_tflops,
          hellaswag):
    """Train a GPT on DATASET (default data/fineweb) for --budget-tokens tokens, with the plan first.

    DATASET is a fwpipe dataset directory, a nanoGPT directory or llm.c shards, as for audit.

    \b
      fwpipe train --budget-tokens 7.6e9 --dry-run       # the plan: epochs, effective data, memory
      fwpipe train --budget-tokens 7.6e9                 # the rtx4070-40m preset on data/fineweb
      fwpipe train data/fw --config tiny-cpu --budget-tokens 2e5 --device cpu
      fwpipe train --out runs/rtx4070-40m --resume       # continue after a crash or Ctrl-C
      torchrun --standalone --nproc_per_node 2 -m fwpipe train --budget-tokens 7.6e9   # DDP on 2 GPUs
    """
    from click.core import ParameterSource

    from fwpipe.train import require_torch

    if data_old is not None:
        if ctx.get_parameter_source("dataset") == ParameterSource.COMMANDLINE and data_old != dataset:
            raise click.UsageError(f"the dataset is given twice ({dataset} and --data {data_old})")
        click.echo(f"warning: --data is deprecated; give the dataset as an argument: fwpipe train {data_old} ...", err=True)
        dataset = data_old
    require_torch()  # first, so that a machine without torch gets the install hint and nothing else
    from fwpipe.train.loop import plan_run
    from fwpipe.train.plan import format_plan

    if peak_tflops is not None and not peak_tflops > 0:
        raise click.BadParameter("must be a positive number of TFLOPS", param_hint="--peak-tflops")
    run = plan_run(dataset, budget_tokens, config, out=out, device=device, resume=resume, overrides=list(overrides),
                   allow_repeats=allow_repeats, peak=peak_tflops, hellaswag=hellaswag)
    main_rank = run.world.main  # under torchrun only rank 0 prints and writes
    if main_rank:
        _summary(json_path, run.plan, "\n".join(format_plan(run.plan)))
    if dry_run:
        return
    from fwpipe.train.loop import train as train_run

    echo = _note(json_path)  # with --json - stdout holds the plan alone; the run's lines go to stderr
    if main_rank:
        echo(f"run directory: {run.out}")
    train_run(run, on_event=functools.partial(_print_train_event, echo=echo))


def _print_train_event(e: dict, echo=click.echo) -> None:
    kind = e["kind"]
    if kind == "train":
        mfu = f" | mfu {e['mfu']:.1%}" if e.get("mfu") is not None else ""
        echo(f"iter {e['iter']:,} | loss {e['loss']:.4f} | lr {e['lr']:.2e} | grad {e['grad_norm']:.3f} | "
             f"{e['tokens_per_s']:,.0f} tok/s{mfu} | epoch {e['epoch']:.3f}")
    elif kind == "eval":
        if e.get("val_loss") is None:
            return
        trend = f" | {e['improvement_per_doubling']:.3f}/doubling" if e.get("improvement_per_doubling") is not None else ""
        hs = f" | hellaswag {e['hellaswag_acc_norm']:.2%}" if e.get("hellaswag_acc_norm") is not None else ""
        echo(f"eval iter {e['iter']:,}: val {e['val_loss']:.4f} | train {e['train_loss']:.4f} (no dropout){trend}{hs}")
    elif kind == "diagnosis":
        for line in e["text"]:
            echo(line)
    elif kind == "message":
        if e.get("level") == "warning":
            click.echo("warning: " + e["text"], err=True)
        else:
            echo(e["text"])
    elif kind == "done":
        state = "done" if e["complete"] else "stopped"
        best = f", best val {e['best_val_loss']:.4f}" if e.get("best_val_loss") is not None else ""
        echo(f"{state}: {e['iterations']:,}/{e['max_iterations']:,} iterations, {e['tokens']:,} tokens, "
             f"epoch {e['epoch']:.3f}{best}; outputs in {e['out']}")


@main.command(context_settings=CONTEXT)
@click.argument("run", metavar="RUN")
def report(run):
    """Write RUN/report.html: a training run's plan, loss curves, diagnosis, throughput and MFU.

    \b
      fwpipe report runs/tiny-cpu
    """
    from fwpipe.train.report import write_report

    click.echo(f"wrote {write_report(run)}")


@main.command(context_settings=CONTEXT)
@click.argument("checkpoint")
@click.option("--prompt", default="", help="Text to continue (default: a new document).")
@click.option("--tokens", "max_new_tokens", type=click.IntRange(1), default=200, show_default=True, help="Tokens to generate per sample.")
@click.option("-n", "--num-samples", type=click.IntRange(1), default=1, show_default=True, help="Samples to print.")
@click.option("--temperature", type=click.FloatRange(0, min_open=True), default=0.8, show_default=True,
              help="Softmax temperature: lower is more predictable.")
@click.option("--top-k", type=click.IntRange(1), default=200, show_default=True, help="Sample only from the k likeliest tokens.")
@click.option("--seed", type=int, default=1337, show_default=True, help="Seed of the sampler, for the same text again.")
@device_option
def sample(checkpoint, prompt, max_new_tokens, num_samples, temperature, top_k, seed, device):
    """Print text sampled from a checkpoint (a .pt file, or a run directory's best.pt).

    \b
      fwpipe sample runs/rtx4070-40m --prompt "The history of" --tokens 100 -n 3
    """
    from fwpipe.train import require_torch

    require_torch()
    from fwpipe.train.sample import sample as sample_text

    texts = sample_text(checkpoint, prompt, max_new_tokens=max_new_tokens, num_samples=num_samples,
                        temperature=temperature, top_k=top_k, seed=seed, device=device)
    for i, text in enumerate(texts):
        if i:
            click.echo("-" * 40)
        click.echo(text)


@main.command("eval", context_settings=CONTEXT)
@click.argument("checkpoint")
@click.option("--hellaswag", "hellaswag", required=True, metavar="FILE", help="hellaswag_val.jsonl (the published file; you download it).")
@device_option
@json_option("the score")
def eval_(checkpoint, hellaswag, device, json_path):
    """Score a checkpoint (a .pt file, or a run directory's best.pt) on HellaSwag: acc_norm.

    \b
      fwpipe eval runs/rtx4070-40m --hellaswag hellaswag_val.jsonl   # GPT-2 124M: ~29.5%, chance: 25%
    """
    from fwpipe.train import require_torch

    require_torch()
    from fwpipe.train import hellaswag as hs
    from fwpipe.train.device import resolve
    from fwpipe.train.sample import load_model

    examples = hs.load(hellaswag)
    dev = resolve(device, "fp32")
    model, _ = load_model(checkpoint, dev.torch_device)
    r = hs.evaluate(model, examples, dev.torch_device)
    r = {"checkpoint": checkpoint, "hellaswag": hellaswag, **r}
    text = f"hellaswag acc_norm {r['hellaswag_acc_norm']:.2%} ({r['hellaswag_correct']:,}/{r['hellaswag_total']:,}) on {hellaswag}"
    _summary(json_path, r, text)


if __name__ == "__main__":
    main()
