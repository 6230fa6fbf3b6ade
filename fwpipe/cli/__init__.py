"""The `fwpipe` command: one click group, one thin command per stage.

    __init__.py   the group (`main`, the entry point) and the one place where every FwpipeError,
                  and every usage error click finds, becomes a single `Error: ...` line, exit 1
    common.py     number types, the flags two commands share, --params/--config -> parameters,
                  how a summary and --json reach stdout
    prepare.py    estimate, prepare          (fwpipe.pipeline)
    audit.py      audit                      (fwpipe.audit)
    train.py      train, report, sample, eval (fwpipe.train)
    diagnose.py   diagnose                   (fwpipe.diagnosis, with train's run reader and audit's leakage)

Each command parses flags, calls one library function and prints what it returns; the text is
rendered beside its stage (pipeline/summary.py, audit/report.py, train/plan.py, train/events.py).
The CLI is the top floor: it may import every stage and the ground floor, and nothing imports it.
Stages are imported inside the commands, so `fwpipe --help` starts fast and without torch.

The conventions every command follows:
  * a command that reads a dataset takes it as its first argument, DATASET, default
    data/fineweb (`train --data DIR` still works, with a deprecation line on stderr);
  * a command that ends in a summary writes it as JSON with `--json PATH`; `--json -` puts the
    JSON alone on stdout (the text summary is left out, notes and progress go to stderr);
  * a flag two commands share is defined once, in common.py.
"""

from __future__ import annotations

import logging
import sys

import click

from fwpipe import __version__
from fwpipe.cli import audit, diagnose, prepare, train
from fwpipe.cli.common import CONTEXT
from fwpipe.clitypes import no_such_option
from fwpipe.errors import FwpipeError


class OneLineUsageError(click.ClickException):
    """A usage error shown like every other error: one line, exit code 1, no usage block."""

    exit_code = 1

    def show(self, file=None) -> None:
        click.echo(f"Error: {self.message}", err=True)


def _one_line(e: click.UsageError) -> OneLineUsageError:
    msg = e.format_message().strip().rstrip(".")
    if isinstance(e, click.NoSuchOption):  # `fwpipe --bogus`: the group's own options
        msg = no_such_option(e.option_name, e.possibilities or (), [])
    if "did you mean" in msg:  # fwpipe.clitypes already says what to type
        return OneLineUsageError(msg)
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
        except (
            click.exceptions.NoArgsIsHelpError
        ) as e:  # bare `fwpipe`: the help page, as `fwpipe -h` (click would exit 2)
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
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr
    )


for command in (
    prepare.estimate,
    prepare.prepare,
    audit.audit,
    train.train,
    train.report,
    train.sample,
    train.eval_,
    diagnose.diagnose_command,
):
    main.add_command(command)


if __name__ == "__main__":
    main()
