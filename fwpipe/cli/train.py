"""`fwpipe train`, `report`, `sample` and `eval`: a GPT trained to a token budget, and what it learned.

Thin wrappers over fwpipe.train: plan_run/train (the event lines are fwpipe.train.events'),
html.write_report, sample.sample, hellaswag.score_checkpoint. torch is imported only inside
the commands that need it (after require_torch's one-line hint), so `import fwpipe.cli` works
without it. Imports fwpipe.cli.common, the ground floor and the train stage.
"""

from __future__ import annotations

import functools
import os

import click

from fwpipe import budget
from fwpipe.cli.common import (
    CONTEXT,
    TOKENS,
    SuggestingCommand,
    budget_option,
    config_option,
    dataset_argument,
    device_option,
    json_option,
    note,
    summary,
)
from fwpipe.errors import FwpipeError
from fwpipe.train.events import event_lines, is_warning


def _config_keys() -> list[str]:
    """The keys `train --set KEY=VALUE` takes, for the did-you-mean of `train --lr 1e-3`."""
    import dataclasses

    from fwpipe.train.config import ModelConfig, TrainConfig

    return [f.name for cls in (TrainConfig, ModelConfig) for f in dataclasses.fields(cls) if f.name != "model"]


@click.command(cls=SuggestingCommand, context_settings=CONTEXT, set_keys=_config_keys)
@dataset_argument
@budget_option(
    "how long to train (taken from the checkpoint with --resume, or from a budget-sized dataset's manifest)."
)
@click.option("--data", "data_old", default=None, hidden=True, help="Deprecated spelling of DATASET.")
@config_option("Preset name (rtx4070-40m, gpt2-124m, tiny-cpu) or a TOML path.  [default: rtx4070-40m]")
@click.option("--out", "out", default=None, metavar="DIR", help="Run directory.  [default: runs/<config name>]")
@device_option
@click.option("--dry-run", is_flag=True, help="Print the plan and stop.")
@json_option("the plan")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt, exactly.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, e.g. --set lr=3e-4 --set n_layer=6.",
)
@click.option(
    "--allow-repeats",
    is_flag=True,
    help=f"Train even past {budget.REPEATS_MAX_EPOCHS} epochs, where repeats stop helping.",
)
@click.option(
    "--peak-tflops",
    type=float,
    default=None,
    help="The device's dense bf16 peak for MFU [default: from the GPU table].",
)
@click.option(
    "--hellaswag",
    "hellaswag",
    default=None,
    metavar="FILE",
    help="hellaswag_val.jsonl (downloaded by you): acc_norm at every eval.",
)
@click.option(
    "--recipe",
    type=click.Choice(["nanogpt", "modern"]),
    default=None,
    help="Training recipe under the preset: nanogpt (AdamW, cosine) or modern (RoPE, RMSNorm, Muon, WSD, ...). [default: the preset's]",
)
@click.option("--tensorboard", is_flag=True, help="Also write TensorBoard events into <out>/tensorboard.")
@click.option("--wandb", "wandb_", is_flag=True, help="Also log to Weights & Biases, offline, into <out>/wandb.")
@click.pass_context
def train(
    ctx,
    dataset,
    budget_tokens,
    data_old,
    config,
    out,
    device,
    dry_run,
    json_path,
    resume,
    overrides,
    allow_repeats,
    peak_tflops,
    hellaswag,
    recipe,
    tensorboard,
    wandb_,
):
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
        click.echo(
            f"warning: --data is deprecated; give the dataset as an argument: fwpipe train {data_old} ...", err=True
        )
        dataset = data_old
    require_torch()  # first, so that a machine without torch gets the install hint and nothing else
    from fwpipe.train.loop import plan_run
    from fwpipe.train.plan import format_plan

    if peak_tflops is not None and not peak_tflops > 0:
        raise click.BadParameter("must be a positive number of TFLOPS", param_hint="--peak-tflops")
    overrides = (
        list(overrides)
        + ([f"recipe={recipe}"] if recipe else [])
        + (["tensorboard=true"] if tensorboard else [])
        + (["wandb=true"] if wandb_ else [])
    )
    try:
        run = plan_run(
            dataset,
            budget_tokens,
            config,
            out=out,
            device=device,
            resume=resume,
            overrides=overrides,
            allow_repeats=allow_repeats,
            peak=peak_tflops,
            hellaswag=hellaswag,
        )
    except FwpipeError as e:  # a refused plan (too many epochs) is still shown first, then its one Error line
        if getattr(e, "plan", None) is not None and os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 only
            summary(json_path, e.plan, "\n".join(format_plan(e.plan)))
        raise
    main_rank = run.world.main  # under torchrun only rank 0 prints and writes
    if main_rank:
        summary(json_path, run.plan, "\n".join(format_plan(run.plan)))
    if dry_run:
        return
    from fwpipe.train.loop import train as train_run

    echo = note(json_path)  # with --json - stdout holds the plan alone; the run's lines go to stderr
    if main_rank:
        echo(f"run directory: {run.out}")
    from fwpipe.progress import RunClock

    clock = RunClock(
        run.plan["iterations"], run.checkpoint["iter"] if run.checkpoint else 0
    )  # i/N, elapsed, ETA on every line
    train_run(run, on_event=functools.partial(_print_event, echo=echo, clock=clock))


def _print_event(e: dict, echo=click.echo, clock=None) -> None:
    for line in event_lines(e, clock):
        if is_warning(e):
            click.echo(line, err=True)  # warnings to stderr, even when the run's lines go to stdout
        else:
            echo(line)


@click.command(cls=SuggestingCommand, context_settings=CONTEXT)
@click.argument("run", metavar="RUN")
def report(run):
    """Write RUN/report.html: a training run's plan, loss curves, diagnosis, throughput and MFU.

    \b
      fwpipe report runs/tiny-cpu
    """
    from fwpipe.train.html import write_report

    click.echo(f"wrote {write_report(run)}")


@click.command(cls=SuggestingCommand, context_settings=CONTEXT)
@click.argument("checkpoint")
@click.option("--prompt", default="", help="Text to continue (default: a new document).")
@click.option(
    "--tokens", "max_new_tokens", type=TOKENS, default=200, show_default=True, help="Tokens to generate per sample."
)
@click.option("-n", "--num-samples", type=click.IntRange(1), default=1, show_default=True, help="Samples to print.")
@click.option(
    "--temperature",
    type=click.FloatRange(0, min_open=True),
    default=0.8,
    show_default=True,
    help="Softmax temperature: lower is more predictable.",
)
@click.option(
    "--top-k", type=click.IntRange(1), default=200, show_default=True, help="Sample only from the k likeliest tokens."
)
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

    texts = sample_text(
        checkpoint,
        prompt,
        max_new_tokens=max_new_tokens,
        num_samples=num_samples,
        temperature=temperature,
        top_k=top_k,
        seed=seed,
        device=device,
    )
    for i, text in enumerate(texts):
        if i:
            click.echo("-" * 40)
        click.echo(text)


@click.command("eval", cls=SuggestingCommand, context_settings=CONTEXT)
@click.argument("checkpoint")
@click.option(
    "--hellaswag",
    "hellaswag",
    required=True,
    metavar="FILE",
    help="hellaswag_val.jsonl (the published file; you download it).",
)
@device_option
@json_option("the score")
def eval_(checkpoint, hellaswag, device, json_path):
    """Score a checkpoint (a .pt file, or a run directory's best.pt) on HellaSwag: acc_norm.

    \b
      fwpipe eval runs/rtx4070-40m --hellaswag hellaswag_val.jsonl   # GPT-2 124M: ~29.5%, chance: 25%
    """
    from fwpipe.train import require_torch

    require_torch()
    from fwpipe.train.hellaswag import format_score, score_checkpoint

    r = score_checkpoint(checkpoint, hellaswag, device)
    summary(json_path, r, format_score(r))
