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


class FwpipeGroup(click.Group):
    """Turns library errors into one line on stderr and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FwpipeError as e:
            msg = e.message + (f"\n  hint: {e.hint}" if e.hint else "")
            click.echo(f"Error: {msg}", err=True)
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


# ------------------------------------------------------------------------------------ audit
# (section owned by the audit stage)


# ------------------------------------------------------------------------------------ train
# (section owned by the train stage)


if __name__ == "__main__":
    main()
