"""The `fwpipe` command: one click group, one thin command per stage.

Each command parses flags, calls one library function and prints what it returns. Every
FwpipeError becomes a single `Error: ...` line and exit code 1, here and nowhere else.
"""

from __future__ import annotations

import logging
import math
import sys

import click

from fwpipe import __version__
from fwpipe.atomic import write_json
from fwpipe.errors import FwpipeError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class TokenCount(click.ParamType):
    """A whole number of tokens, written plainly or in scientific notation: 7.6e9, 1_000_000."""

    name = "TOKENS"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            v = float(value)
        else:
            try:
                v = float(str(value).replace("_", ""))
            except ValueError:
                self.fail(f"{value!r} is not a number of tokens (e.g. 7.6e9)", param, ctx)
        if math.isnan(v) or math.isinf(v):
            self.fail(f"{value!r} is not a finite number of tokens", param, ctx)
        if v != int(v):
            self.fail(f"{value!r} is not a whole number of tokens", param, ctx)
        return int(v)


TOKENS = TokenCount()
# --ray alone: RAY_ADDRESS, else a cluster started on this machine, else a new local one (ray.init()'s
# default); --ray HOST:PORT: that cluster. Put it after DATASET/INPUTS: `--ray DATASET` reads DATASET as the address.
RAY_OPTION = click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
                          help="Run the units as tasks on a Ray cluster (pip install 'fwpipe[ray]'); ADDRESS defaults to RAY_ADDRESS.")


class FwpipeGroup(click.Group):
    """Turns library errors into one line on stderr and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FwpipeError as e:
            # one line: what is wrong, where, and what to do
            click.echo(f"Error: {e.message}" + (f"; {e.hint}" if e.hint else ""), err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)


@click.group(cls=FwpipeGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="fwpipe")
@click.option("-v", "--verbose", is_flag=True, help="Log what the library does (to stderr).")
def main(verbose: bool) -> None:
    """FineWeb parquet -> audited GPT-2 token shards -> a GPT trained to a token budget.

    \b
      fwpipe prepare shard.parquet        # parquet -> GPT-2 token shards in data/fineweb
      fwpipe audit                        # totals, duplicates, leakage, budget verdict
      fwpipe train --budget-tokens 7.6e9  # a GPT sized to the budget
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)


# ---------------------------------------------------------------------------------- prepare
# (section owned by the prepare stage)


@main.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1)
@click.option("-o", "--out", "out_dir", default="data/fineweb", show_default=True, help="Dataset directory to write.")
@click.option("--sample", is_flag=True, help="Use the bundled FineWeb sample (1,550 real documents) as input.")
@click.option("--text-column", default="text", show_default=True, help="Column that holds the documents.")
@click.option("--val-fraction", type=float, default=0.005, show_default=True, help="Share of documents (by key hash) in val.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split hash.")
@click.option("--shard-tokens", type=TOKENS, default=100_000_000, show_default=True, help="Most tokens per shard.")
@click.option("--format", "fmt", type=click.Choice(["fwpipe", "nanogpt"]), default="fwpipe", show_default=True,
              help="fwpipe: llm.c-format shards; nanogpt: raw train.bin / val.bin.")  # fmt: skip
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Tokenizing threads [default: all cores].")
@click.option("--buffer-mb", type=click.IntRange(min=1), default=256, show_default=True, help="Text held in flight; bounds memory.")
@click.option("--dedup", type=click.Choice(["near", "exact", "none"]), default="near", show_default=True,
              help="Drop near (MinHash) or exact duplicates, keeping the first; clusters never straddle train/val.")  # fmt: skip
@click.option("--budget-tokens", type=TOKENS, default=None, help="Stop once train holds enough tokens for this budget.")
@click.option("--max-epochs", type=float, default=1.0, show_default=True, help="Epochs the budget may run over the train split.")
@click.option("--estimate", is_flag=True, help="Only estimate tokens, epochs and files needed; tokenize (almost) nothing.")
@click.option("--params", type=TOKENS, default=None, help="With --estimate: model parameters (budget defaults to 20/param).")
@click.option("--config", "config", default=None, help="With --estimate: a train config (name or TOML) for the parameters.")
@click.option("--overwrite", is_flag=True, help="Replace a dataset made from other inputs or options.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write the summary as JSON.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="URL inputs: keep whole copies here (a rerun reads them locally) instead of streaming.")  # fmt: skip
@click.option("--memory-gb", type=float, default=None, help="Memory for --dedup near beyond ~50 bytes/document [default: 1].")
@click.option("--tmp-dir", type=click.Path(file_okay=False), default=None, help="Scratch for --dedup near [default: OUT/.work].")
def prepare(
    inputs, out_dir, sample, text_column, val_fraction, seed, shard_tokens, fmt, workers, buffer_mb, dedup, budget_tokens, max_epochs,
    estimate, params, config, overwrite, json_path, cache_dir, memory_gb, tmp_dir,
):  # fmt: skip
    """Tokenize FineWeb parquet into GPT-2 token shards.

    INPUTS are parquet files, directories (every *.parquet inside) or globs; together they
    make one dataset. They may be URLs (hf://, https://, s3://; pip install 'fwpipe[remote]'),
    streamed by row group. Interrupted? Run the same command again: it resumes.

    \b
      fwpipe prepare 000_00000.parquet
      fwpipe prepare --sample
      fwpipe prepare 'fineweb/*.parquet' -o data/fw --format nanogpt
      fwpipe prepare 'fineweb/*.parquet' --estimate --budget-tokens 7.6e9
      fwpipe prepare 'fineweb/*.parquet' --budget-tokens 7.6e9 --max-epochs 4
      fwpipe prepare 'hf://datasets/HuggingFaceFW/fineweb/sample/10BT/*.parquet' --estimate
    """
    from fwpipe import remote
    from fwpipe.pipeline.prepare import PrepareOptions, prepare as run_prepare

    remote.set_cache_dir(cache_dir)

    if sample:
        from fwpipe.sample import SAMPLE_FILES

        inputs = tuple(str(p) for p in SAMPLE_FILES) + tuple(inputs)
        click.echo(f"using the bundled FineWeb sample ({len(SAMPLE_FILES)} files; ODC-By 1.0, HuggingFaceFW/fineweb)", err=True)
    if estimate:
        from fwpipe.pipeline.estimate import estimate as run_estimate, format_estimate

        est = run_estimate(list(inputs), text_column=text_column, val_fraction=val_fraction, budget_tokens=budget_tokens,
                           max_epochs=max_epochs, params=params, config=config, seed=seed)  # fmt: skip
        click.echo(format_estimate(est))
        if json_path:
            write_json(json_path, est)
        return
    if params is not None or config is not None:
        raise click.UsageError("--params and --config go with --estimate (train takes its own --config)")
    options = PrepareOptions(
        text_column=text_column, val_fraction=val_fraction, seed=seed, shard_tokens=shard_tokens, format=fmt,
        budget_tokens=budget_tokens, max_epochs=max_epochs, dedup=dedup,
    )  # fmt: skip
    before = remote.STATS.snapshot()
    summary = run_prepare(list(inputs), out_dir, options=options, workers=workers, buffer_mb=buffer_mb, overwrite=overwrite,
                          memory_gb=memory_gb, tmp_dir=tmp_dir)
    fetched = remote.since(before)
    if fetched["requests"]:
        summary["fetched"] = fetched
    click.echo(format_prepare_summary(summary))
    if json_path:
        write_json(json_path, summary)


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
        lines.append(f"  fetched {g['fetched_bytes'] / 1e6:,.1f} MB in {g['requests']:,} requests" + (f", {g['retries']:,} retries" if g["retries"] else ""))
    lines.append(f"  {s['seconds']:.1f} s, {s['tokens_per_s'] / 1e6:.2f}M tokens/s on {s['workers']} worker(s)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ audit
# (section owned by the audit stage)


@main.command(context_settings=CONTEXT)
@click.argument("dataset", default="data/fineweb")
@click.option("--budget-tokens", type=TOKENS, help="Tokens you plan to train on (e.g. 7.6e9): adds epochs and a verdict.")
@click.option("--params", type=TOKENS, help="Model parameters (e.g. 40e6): adds Chinchilla sizing to the budget.")
@click.option("--block-size", type=int, default=1024, show_default=True, help="Context length for the long-document share.")
@click.option("--shingle", type=int, default=5, show_default=True, help="Tokens per MinHash shingle.")
@click.option("--threshold", type=float, default=0.8, show_default=True, help="Jaccard threshold for near duplicates.")
@click.option("--num-perm", type=int, default=128, show_default=True, help="MinHash permutations.")
@click.option("--ngram", type=int, default=13, show_default=True, help="n for train/val n-gram contamination.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the full report as JSON ('-' for stdout).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write a self-contained HTML report with plots.")
@click.option("--fail-on", "fail_on", multiple=True, metavar="RULE", help="Exit 1 if RULE holds, e.g. 'leakage.near_docs>0', 'budget.epochs>4'. Repeatable.")
@click.option("--memory-gb", type=float, default=None, help="Memory for near duplicates beyond ~50 bytes/document [default: 1].")
@click.option("--tmp-dir", type=click.Path(file_okay=False), default=None, help="Scratch for near duplicates [default: system temp].")
@click.option("--against", "against_path", default=None, metavar="EVAL",
              help="Eval set (parquet/JSONL with text, or a dataset): its exact, near and n-gram overlap with train/val.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes for the signature units [default: all cores].")
@RAY_OPTION
def audit(dataset, budget_tokens, params, block_size, shingle, threshold, num_perm, ngram, json_path, html_path, fail_on, memory_gb,
          tmp_dir, against_path, workers, ray_address):
    """Audit a tokenized dataset: totals, lengths, duplicates, train/val leakage, budget verdict.

    DATASET is a fwpipe dataset directory (default data/fineweb), a nanoGPT directory with
    train.bin/val.bin, or llm.c shards (a directory or a quoted glob).

    \b
      fwpipe audit --budget-tokens 7.6e9 --params 40e6
      fwpipe audit data/fineweb --json audit.json --html audit.html
      fwpipe audit 'shards/fineweb_*.bin' --fail-on 'leakage.near_docs>0' --fail-on 'budget.epochs>4'
      fwpipe audit data/fineweb --tmp-dir /shared/scratch --ray HEAD:6379
    """
    import json

    from fwpipe.executor import make_executor

    from fwpipe.audit import audit as run_audit
    from fwpipe.audit.report import terminal
    from fwpipe.audit.rules import failed_rules, parse_rule
    from fwpipe.progress import Progress

    # a malformed rule, an unknown key or a budget rule without --budget-tokens fails before the audit runs
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
    if json_path == "-":
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(terminal(report))
        if json_path:
            write_json(json_path, report)
            click.echo(f"\nwrote {json_path}")
    if html_path:
        from fwpipe.audit.html import write_html

        write_html(report, html_path)
        click.echo(f"wrote {html_path}", err=json_path == "-")
    failed = failed_rules(report, rules)
    for rule, value in failed:
        click.echo(f"fail-on: {rule.text} holds ({'.'.join(rule.path)} = {value:g})", err=True)
    if failed:
        sys.exit(1)


# ------------------------------------------------------------------------------------ train
# (section owned by the train stage)


@main.command(context_settings=CONTEXT)
@click.option("--budget-tokens", type=TOKENS, default=None, help="Tokens to train on, e.g. 7.6e9 (taken from the checkpoint with --resume).")
@click.option("--data", default="data/fineweb", show_default=True, help="Dataset: fwpipe dir, nanoGPT dir or llm.c shards (dir or glob).")
@click.option("--config", "config", default=None, help="Preset name (rtx4070-40m, gpt2-124m, tiny-cpu) or a TOML path.  [default: rtx4070-40m]")
@click.option("--out", "out", default=None, help="Run directory.  [default: runs/<config name>]")
@click.option("--device", type=click.Choice(["auto", "cuda", "mps", "cpu"]), default="auto", show_default=True)
@click.option("--dry-run", is_flag=True, help="Print the plan and stop.")
@click.option("--json", "json_path", default=None, help="Also write the plan as JSON to this path.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt, exactly.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. --set lr=3e-4 --set n_layer=6.")
@click.option("--allow-repeats", is_flag=True, help="Train even past 16 epochs of the same data.")
@click.option("--peak-tflops", type=float, default=None, help="The device's dense bf16 peak for MFU (default: from the GPU table).")
@click.option("--hellaswag", "hellaswag", default=None, metavar="FILE", help="hellaswag_val.jsonl (downloaded by you): acc_norm at every eval.")
def train(budget_tokens, data, config, out, device, dry_run, json_path, resume, overrides, allow_repeats, peak_tflops, hellaswag):
    """Train a GPT on DATASET for --budget-tokens tokens, with the plan printed first.

    \b
      fwpipe train --budget-tokens 7.6e9 --dry-run       # the plan: epochs, effective data, memory
      fwpipe train --budget-tokens 7.6e9                 # configs/rtx4070-40m.toml on data/fineweb
      fwpipe train --config tiny-cpu --budget-tokens 2e5 --device cpu
      fwpipe train --out runs/rtx4070-40m --resume       # continue after a crash or Ctrl-C
      torchrun --standalone --nproc_per_node 2 -m fwpipe train --budget-tokens 7.6e9   # DDP on 2 GPUs
    """
    from fwpipe.train import require_torch

    require_torch()  # first, so that a machine without torch gets the install hint and nothing else
    from fwpipe.train.loop import plan_run
    from fwpipe.train.plan import format_plan

    if peak_tflops is not None and not peak_tflops > 0:
        raise click.BadParameter("must be a positive number of TFLOPS", param_hint="--peak-tflops")
    run = plan_run(data, budget_tokens, config, out=out, device=device, resume=resume, overrides=list(overrides),
                   allow_repeats=allow_repeats, peak=peak_tflops, hellaswag=hellaswag)
    main_rank = run.world.main  # under torchrun only rank 0 prints and writes
    if main_rank:
        for line in format_plan(run.plan):
            click.echo(line)
        if json_path:
            write_json(json_path, run.plan)
    if dry_run:
        return
    from fwpipe.train.loop import train as train_run

    if main_rank:
        click.echo(f"run directory: {run.out}")
    train_run(run, on_event=_print_train_event)


def _print_train_event(e: dict) -> None:
    kind = e["kind"]
    if kind == "train":
        mfu = f" | mfu {e['mfu']:.1%}" if e.get("mfu") is not None else ""
        click.echo(f"iter {e['iter']:,} | loss {e['loss']:.4f} | lr {e['lr']:.2e} | grad {e['grad_norm']:.3f} | "
                   f"{e['tokens_per_s']:,.0f} tok/s{mfu} | epoch {e['epoch']:.3f}")
    elif kind == "eval":
        if e.get("val_loss") is None:
            return
        trend = f" | {e['improvement_per_doubling']:.3f}/doubling" if e.get("improvement_per_doubling") is not None else ""
        hs = f" | hellaswag {e['hellaswag_acc_norm']:.2%}" if e.get("hellaswag_acc_norm") is not None else ""
        click.echo(f"eval iter {e['iter']:,}: val {e['val_loss']:.4f} | train {e['train_loss']:.4f} (no dropout){trend}{hs}")
    elif kind == "diagnosis":
        for line in e["text"]:
            click.echo(line)
    elif kind == "message":
        click.echo(("warning: " if e.get("level") == "warning" else "") + e["text"], err=e.get("level") == "warning")
    elif kind == "done":
        state = "done" if e["complete"] else "stopped"
        best = f", best val {e['best_val_loss']:.4f}" if e.get("best_val_loss") is not None else ""
        click.echo(f"{state}: {e['iterations']:,}/{e['max_iterations']:,} iterations, {e['tokens']:,} tokens, "
                   f"epoch {e['epoch']:.3f}{best}; outputs in {e['out']}")


@main.command(context_settings=CONTEXT)
@click.argument("run")
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
@click.option("-n", "--num-samples", type=click.IntRange(1), default=1, show_default=True)
@click.option("--temperature", type=click.FloatRange(0, min_open=True), default=0.8, show_default=True)
@click.option("--top-k", type=click.IntRange(1), default=200, show_default=True)
@click.option("--seed", type=int, default=1337, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cuda", "mps", "cpu"]), default="auto", show_default=True)
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
@click.option("--device", type=click.Choice(["auto", "cuda", "mps", "cpu"]), default="auto", show_default=True)
def eval_(checkpoint, hellaswag, device):
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
    click.echo(f"hellaswag acc_norm {r['hellaswag_acc_norm']:.2%} ({r['hellaswag_correct']:,}/{r['hellaswag_total']:,}) on {hellaswag}")


if __name__ == "__main__":
    main()
